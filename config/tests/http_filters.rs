//! `http_filters` and `typed_per_filter_config` translation, each case checked against
//! Envoy 1.40 `--mode validate` (accepted / refused): unknown filters are refused unless
//! optional, optional ones Baton lacks are left out (even when Baton has no proto for
//! their config), the router must be last and cannot be disabled, and per-route configs
//! of filters Baton lacks are refused unless optional; `disabled` entries are kept.

use baton_config::load_yaml_str;
use baton_config::model::{self, FilterOverride, NetworkFilter};

const ROUTER: &str = "{ name: envoy.filters.http.router, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }";

/// A bootstrap whose HCM has `filters` (YAML flow items) and one direct-response route
/// with `route_extra` (YAML flow fields, may be empty).
fn yaml(filters: &[&str], route_extra: &str) -> String {
    let extra = if route_extra.is_empty() {
        String::new()
    } else {
        format!(", {route_extra}")
    };
    format!(
        r#"
static_resources:
  listeners:
  - name: l
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
          http_filters: [ {} ]
          route_config:
            virtual_hosts:
            - name: v
              domains: ["*"]
              routes:
              - {{ match: {{ prefix: "/" }}, direct_response: {{ status: 200 }}{extra} }}
"#,
        filters.join(", ")
    )
}

fn hcm(yaml: &str) -> model::HttpConnectionManager {
    let loaded = load_yaml_str(yaml).unwrap_or_else(|e| panic!("expected to load: {e}\n{yaml}"));
    match &loaded.model.listeners[0].filter_chains[0].network {
        NetworkFilter::Http(h) => (**h).clone(),
        other => panic!("expected HCM, got {other:?}"),
    }
}

fn err(yaml: &str) -> String {
    match load_yaml_str(yaml) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

const CORS: &str = "\"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors";
const TYPED_STRUCT: &str = "\"@type\": type.googleapis.com/xds.type.v3.TypedStruct, type_url: type.googleapis.com/my.unknown.v3.Filter";

#[test]
fn optional_filters_baton_lacks_are_skipped() {
    // Envoy: all accepted (it installs cors and skips the unknown ones).
    for filter in [
        format!("{{ name: envoy.filters.http.cors, is_optional: true, typed_config: {{ {CORS} }} }}"),
        format!("{{ name: my.unknown, is_optional: true, typed_config: {{ {TYPED_STRUCT} }} }}"),
        "{ name: my.unknown, is_optional: true }".to_string(),
        format!("{{ name: my.unknown, is_optional: true, disabled: true, typed_config: {{ {TYPED_STRUCT} }} }}"),
    ] {
        let h = hcm(&yaml(&[&filter, ROUTER], ""));
        assert!(h.http_filters.is_empty(), "{filter}");
    }
    // The router may be optional: Baton has it, so it runs.
    let h = hcm(&yaml(
        &["{ name: envoy.filters.http.router, is_optional: true, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router, suppress_envoy_headers: true } }"],
        "",
    ));
    assert!(h.router.suppress_envoy_headers);
}

#[test]
fn filters_baton_lacks_are_refused() {
    // Envoy refuses the unknown ones and accepts cors; Baton refuses all of them.
    let e = err(&yaml(&["{ name: my.unknown }", ROUTER], ""));
    assert!(
        e.ends_with("http_filters[0]: HTTP filter 'my.unknown' is not supported by Baton yet"),
        "{e}"
    );
    let e = err(&yaml(
        &[
            &format!("{{ name: envoy.filters.http.cors, typed_config: {{ {CORS} }} }}"),
            ROUTER,
        ],
        "",
    ));
    assert!(
        e.contains("envoy.extensions.filters.http.cors.v3.Cors"),
        "{e}"
    );
    // Disabled is no excuse (Envoy refuses an unknown disabled filter too).
    let e = err(&yaml(
        &[
            &format!("{{ name: my.unknown, disabled: true, typed_config: {{ {TYPED_STRUCT} }} }}"),
            ROUTER,
        ],
        "",
    ));
    assert!(e.contains("TypedStruct"), "{e}");
    // An empty name fails Envoy's proto validation.
    let e = err(&yaml(&["{ name: \"\", is_optional: true }", ROUTER], ""));
    assert!(
        e.ends_with("http_filters[0].name: required field is missing or empty"),
        "{e}"
    );
}

#[test]
fn router_placement() {
    // Envoy: the router twice, or an optional filter after it, is refused; a disabled
    // router too.
    let e = err(&yaml(&[ROUTER, ROUTER], ""));
    assert!(
        e.ends_with("http_filters[0]: the router filter must be the last HTTP filter"),
        "{e}"
    );
    let e = err(&yaml(
        &[ROUTER, "{ name: my.unknown, is_optional: true }"],
        "",
    ));
    assert!(
        e.ends_with("http_filters[0]: the router filter must be the last HTTP filter"),
        "{e}"
    );
    let e = err(&yaml(
        &["{ name: envoy.filters.http.router, disabled: true, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }"],
        "",
    ));
    assert!(
        e.ends_with(
            "http_filters[0].disabled: the router filter ends the chain and cannot be disabled"
        ),
        "{e}"
    );
    // Envoy accepts a chain without the router, and then never answers a request;
    // Baton refuses it.
    let e = err(&yaml(&["{ name: my.unknown, is_optional: true }"], ""));
    assert!(e.ends_with("http_filters: http_filters must end with the router filter (envoy.filters.http.router, \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router)"), "{e}");
}

const FILTER_CONFIG: &str = "\"@type\": type.googleapis.com/envoy.config.route.v3.FilterConfig";

#[test]
fn per_route_configs_follow_envoy() {
    // Envoy accepts: optional wrappers (whatever they hold) and disabled entries.
    let h = hcm(&yaml(
        &[ROUTER],
        &format!(
            "typed_per_filter_config: {{ \
             a: {{ {FILTER_CONFIG}, is_optional: true, config: {{ {TYPED_STRUCT} }} }}, \
             b: {{ {FILTER_CONFIG}, is_optional: true, config: {{ \"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy }} }}, \
             c: {{ {FILTER_CONFIG}, disabled: true }}, \
             d: {{ {FILTER_CONFIG}, disabled: true, config: {{ {TYPED_STRUCT} }} }}, \
             envoy.filters.http.router: {{ {FILTER_CONFIG}, is_optional: true, config: {{ \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }} }}"
        ),
    ));
    let overrides = &h.route_config.virtual_hosts[0].routes[0].filter_overrides;
    assert!(overrides.get("a").is_none());
    assert!(overrides.get("b").is_none());
    assert!(matches!(overrides.get("c"), Some(FilterOverride::Disabled)));
    assert!(matches!(overrides.get("d"), Some(FilterOverride::Disabled)));
    assert!(overrides.get("envoy.filters.http.router").is_none());

    // Envoy refuses: a config for a filter it lacks, an empty wrapper, and any config
    // for the router.
    let e = err(&yaml(&[ROUTER], &format!("typed_per_filter_config: {{ my.unknown: {{ {FILTER_CONFIG}, config: {{ \"@type\": type.googleapis.com/google.protobuf.Struct, value: {{}} }} }} }}")));
    assert!(e.ends_with("typed_per_filter_config[\"my.unknown\"]: per-route config of HTTP filter 'my.unknown' ('google.protobuf.Struct') is not supported by Baton yet"), "{e}");
    let e = err(&yaml(
        &[ROUTER],
        &format!("typed_per_filter_config: {{ my.unknown: {{ {FILTER_CONFIG} }} }}"),
    ));
    assert!(e.ends_with("typed_per_filter_config[\"my.unknown\"].config: per-filter config for 'my.unknown' is empty (set config, disabled or is_optional)"), "{e}");
    let e = err(&yaml(&[ROUTER], "typed_per_filter_config: { envoy.filters.http.router: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }"));
    assert!(
        e.ends_with("the router filter has no per-route or per-virtual-host config"),
        "{e}"
    );
    let e = err(&yaml(
        &[ROUTER],
        &format!("typed_per_filter_config: {{ my.unknown: {{ {TYPED_STRUCT} }} }}"),
    ));
    assert!(e.contains("xds.type.v3.TypedStruct"), "{e}");
}

#[test]
fn per_filter_configs_at_every_level() {
    let disabled =
        format!("typed_per_filter_config: {{ f: {{ {FILTER_CONFIG}, disabled: true }} }}");
    let y = yaml(&[ROUTER], "")
        .replace(
            "          route_config:\n",
            &format!("          route_config:\n            {disabled}\n"),
        )
        .replace(
            "              domains: [\"*\"]\n",
            &format!("              domains: [\"*\"]\n              {disabled}\n"),
        );
    let h = hcm(&y);
    let is_disabled =
        |o: &model::FilterOverrides| matches!(o.get("f"), Some(FilterOverride::Disabled));
    assert!(is_disabled(&h.route_config.filter_overrides), "{y}");
    assert!(
        is_disabled(&h.route_config.virtual_hosts[0].filter_overrides),
        "{y}"
    );
    assert!(h.route_config.virtual_hosts[0].routes[0]
        .filter_overrides
        .is_empty());
}
