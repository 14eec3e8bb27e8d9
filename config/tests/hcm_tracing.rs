//! HCM `tracing` (sampling only, no provider) and `request_id_extension` translation:
//! Envoy 1.40 accepts both on every Istio listener; a tracing provider or another
//! request-id extension is refused naming its field.

mod common;

use baton_config::load_yaml_str;
use baton_config::model::{self, NetworkFilter};

const HCM: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";

fn yaml(extra: &str) -> String {
    common::hcm_bootstrap(extra)
}

fn hcm(extra: &str) -> std::sync::Arc<model::HttpConnectionManager> {
    let loaded = load_yaml_str(&yaml(extra)).unwrap_or_else(|e| panic!("{extra}: {e}"));
    match &loaded.model.listeners[0].filter_chains[0].network {
        NetworkFilter::Http(hcm) => hcm.clone(),
        other => panic!("expected an HCM, got {other:?}"),
    }
}

fn err(extra: &str) -> String {
    match load_yaml_str(&yaml(extra)) {
        Ok(_) => panic!("expected an error for {extra}"),
        Err(e) => e.to_string(),
    }
}

fn hundredths(numerator: u64) -> model::Fraction {
    model::Fraction {
        numerator,
        denominator: 10_000,
    }
}

const UUID: &str = "type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig";

#[test]
fn tracing_without_provider_samples_everything_by_default() {
    let none = hcm("generate_request_id: true");
    assert_eq!(none.tracing, None);
    assert_eq!(none.request_id, model::RequestIdOptions::default());
    let all = hcm("tracing: {}");
    assert_eq!(
        all.tracing,
        Some(model::TracingSampling {
            client: hundredths(10_000),
            random: hundredths(10_000),
            overall: hundredths(10_000)
        })
    );
}

#[test]
fn sampling_percentages_and_span_only_fields_are_accepted() {
    let t = hcm("tracing: { client_sampling: { value: 0 }, random_sampling: { value: 1.5 }, overall_sampling: { value: 99.99 }, verbose: true, max_path_tag_length: 10, spawn_upstream_span: true, custom_tags: [ { tag: t, literal: { value: v } }, { tag: h, request_header: { name: x-h } } ] }");
    assert_eq!(
        t.tracing,
        Some(model::TracingSampling {
            client: hundredths(0),
            random: hundredths(150),
            overall: hundredths(9999)
        })
    );
    let e = err("tracing: { random_sampling: { value: 101 } }");
    assert_eq!(
        e,
        format!("{HCM}.tracing.random_sampling.value: value must be inside range [0, 100]")
    );
}

#[test]
fn a_tracing_provider_is_refused_with_its_path() {
    let e = err("tracing: { provider: { name: envoy.tracers.zipkin } }");
    assert_eq!(
        e,
        format!("{HCM}.tracing.provider: not supported by Baton yet")
    );
}

#[test]
fn the_uuid_request_id_extension_is_accepted_with_its_options() {
    let defaults = hcm(&format!(
        "request_id_extension: {{ typed_config: {{ \"@type\": {UUID} }} }}"
    ));
    assert_eq!(defaults.request_id, model::RequestIdOptions::default());
    let off = hcm(&format!("request_id_extension: {{ typed_config: {{ \"@type\": {UUID}, pack_trace_reason: false, use_request_id_for_trace_sampling: false }} }}"));
    assert_eq!(
        off.request_id,
        model::RequestIdOptions {
            pack_trace_reason: false,
            use_request_id_for_trace_sampling: false
        }
    );
}

#[test]
fn another_request_id_extension_is_refused_with_its_path() {
    let e = err("request_id_extension: { typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }");
    assert_eq!(
        e,
        format!("{HCM}.request_id_extension.typed_config: request id extension 'envoy.extensions.filters.http.router.v3.Router' is not supported by Baton yet (supported: envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig)")
    );
}

/// The bootstrap with one route carrying `tracing` (`route_tracing` is its YAML).
fn route_yaml(route_tracing: &str) -> String {
    common::hcm_bootstrap("tracing: {}").replace(
        "direct_response: { status: 200 } }",
        &format!("direct_response: {{ status: 200 }}, tracing: {route_tracing} }}"),
    )
}

#[test]
fn a_routes_sampling_shares_are_fractions_all_when_unset() {
    let yaml = route_yaml("{ random_sampling: { numerator: 5, denominator: MILLION }, custom_tags: [ { tag: t, literal: { value: v } } ] }");
    let loaded = load_yaml_str(&yaml).unwrap_or_else(|e| panic!("{e}"));
    let NetworkFilter::Http(hcm) = &loaded.model.listeners[0].filter_chains[0].network else {
        panic!("expected an HCM");
    };
    let route = &hcm.route_config.virtual_hosts[0].routes[0];
    assert_eq!(
        route.tracing.as_deref(),
        Some(&model::TracingSampling {
            client: model::Fraction::ALL,
            random: model::Fraction {
                numerator: 5,
                denominator: 1_000_000
            },
            overall: model::Fraction::ALL,
        })
    );
}

#[test]
fn a_routes_unknown_denominator_is_refused_with_its_path() {
    let e = match load_yaml_str(&route_yaml(
        "{ overall_sampling: { numerator: 5, denominator: 7 } }",
    )) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("route_config.virtual_hosts[0].routes[0].tracing.overall_sampling.denominator: unknown enum value"),
        "{e}"
    );
}
