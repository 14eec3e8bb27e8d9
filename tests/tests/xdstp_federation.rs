//! xDS-TP federation: the bootstrap's `config_sources` (each an aggregated
//! `api_config_source` serving the `authorities` it names) and `default_config_source`
//! (serving every other authority). Envoy 1.40 accepts and checks them, but subscribes
//! through them only with the runtime flag
//! `envoy.reloadable_features.xdstp_based_config_singleton_subscriptions` (off by
//! default): then an EDS or RDS resource named `xdstp://<authority>/...` comes from the
//! source of its authority, on an ADS stream of its own, instead of from its own config
//! source. Without the flag, every resource keeps its own config source. Collections
//! (`cds_resources_locator`) always use `cds_config`. Invalid federation config is
//! refused by both with Envoy's reasons.

mod xds_support;

use baton_tests::config::XdsTransport;
use baton_tests::xds::{
    resources, ControlPlane, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE,
};
use baton_tests::{EchoUpstream, TempDir};
use serde_json::{json, Value};
use xds_support::*;

const SERVICE: &str = "xdstp://fed.example/envoy.config.endpoint.v3.ClusterLoadAssignment/backend";
const ROUTES: &str = "xdstp://fed.example/envoy.config.route.v3.RouteConfiguration/routes";
const FLAG: &str = "envoy.reloadable_features.xdstp_based_config_singleton_subscriptions";

/// A static HTTP/2 cluster `name` to `cp`.
fn control_plane_cluster(name: &str, cp: &ControlPlane) -> Value {
    let mut cluster = baton_tests::config::static_cluster(name, &[cp.addr()]);
    cluster = baton_tests::config::with_http2_upstream(cluster);
    cluster
}

/// A federated config source over cluster `cluster` serving `authorities`.
fn authority_source(cluster: &str, authorities: &[&str], transport: XdsTransport) -> Value {
    let api_type = match transport {
        XdsTransport::Sotw => "AGGREGATED_GRPC",
        XdsTransport::Delta => "AGGREGATED_DELTA_GRPC",
    };
    let mut source = json!({
        "api_config_source": {
            "api_type": api_type,
            "transport_api_version": "V3",
            "grpc_services": [ { "envoy_grpc": { "cluster_name": cluster } } ],
        },
        "resource_api_version": "V3",
    });
    if !authorities.is_empty() {
        let names: Vec<Value> = authorities.iter().map(|a| json!({ "name": a })).collect();
        source["authorities"] = json!(names);
    }
    source
}

/// How the second control plane is configured.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// `config_sources` naming the authority, flag on.
    Named,
    /// `default_config_source` only, flag on.
    Default,
    /// `config_sources` naming the authority, flag off.
    FlagOff,
}

/// Both control planes serve cluster `backend` (EDS name `SERVICE`) and listener
/// `http` (RDS name `ROUTES`); the endpoints differ (`a` on the ADS one, `b` on the
/// federated one), so the answer tells which served EDS.
async fn federation_routes_by_authority(transport: XdsTransport) -> anyhow::Result<()> {
    for mode in [Mode::Named, Mode::Default, Mode::FlagOff] {
        one_mode(transport, mode)
            .await
            .map_err(|e| e.context(format!("{mode:?}")))?;
    }
    Ok(())
}

async fn one_mode(transport: XdsTransport, mode: Mode) -> anyhow::Result<()> {
    let ads = ControlPlane::start().await?;
    let federated = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    let b = EchoUpstream::start("b").await?;
    let mut backend = resources::eds_cluster("backend");
    backend["eds_cluster_config"]["service_name"] = json!(SERVICE);
    for (cp, upstream) in [(&ads, &a), (&federated, &b)] {
        cp.set(CLUSTER_TYPE, "1", resources::clusters(&[backend.clone()])?)?;
        let assignment = resources::load_assignment(SERVICE, &[upstream.addr()]);
        cp.set(
            ENDPOINT_TYPE,
            "1",
            resources::load_assignments(&[assignment])?,
        )?;
        let listener = resources::rds_listener("http", 0, ROUTES);
        cp.set(LISTENER_TYPE, "1", resources::listeners(&[listener])?)?;
        let routes = resources::route_to(ROUTES, "backend");
        cp.set(ROUTE_TYPE, "1", resources::route_configs(&[routes])?)?;
    }
    let mut config = bootstrap(&ads, transport).build();
    config["static_resources"]["clusters"]
        .as_array_mut()
        .ok_or_else(|| anyhow::anyhow!("no clusters"))?
        .push(control_plane_cluster("xds_federated", &federated));
    match mode {
        Mode::Named | Mode::FlagOff => {
            config["config_sources"] = json!([authority_source(
                "xds_federated",
                &["fed.example"],
                transport
            )]);
        }
        Mode::Default => {
            config["config_sources"] = json!([authority_source(
                "xds_federated",
                &["unused.example"],
                transport
            )]);
            config["default_config_source"] = authority_source("xds_federated", &[], transport);
        }
    }
    if mode != Mode::FlagOff {
        config["layered_runtime"] = json!({
            "layers": [ { "name": "static", "static_layer": { FLAG: true } } ],
        });
    }
    let proxy = start_config(&config).await?;
    let (serving, other, upstream) = match mode {
        Mode::Named | Mode::Default => (&federated, &ads, "b"),
        Mode::FlagOff => (&ads, &federated, "a"),
    };
    serving
        .wait_for_ack(ENDPOINT_TYPE, "1", XDS_TIMEOUT)
        .await?;
    serving.wait_for_ack(ROUTE_TYPE, "1", XDS_TIMEOUT).await?;
    wait_served_by(proxy.listener_addr("http").await?, upstream).await?;
    for (type_url, name) in [(ENDPOINT_TYPE, SERVICE), (ROUTE_TYPE, ROUTES)] {
        let asked = |cp: &ControlPlane| {
            cp.requests().iter().any(|r| {
                r.type_url == type_url
                    && (r.resource_names.iter().any(|n| n == name)
                        || r.subscribe.iter().any(|n| n == name))
            })
        };
        assert!(
            asked(serving),
            "{type_url} {name} not asked of the serving control plane"
        );
        assert!(
            !asked(other),
            "{type_url} {name} asked of the other control plane"
        );
    }
    // CDS and LDS stay on the ADS stream.
    for type_url in [CLUSTER_TYPE, LISTENER_TYPE] {
        assert!(federated.requests().iter().all(|r| r.type_url != type_url));
    }
    // The route configuration's stats are named after it as Envoy sanitizes it.
    let all = stats(&proxy).await?;
    let rds = "http.ingress.rds.xdstp_fed.example/envoy.config.route.v3.RouteConfiguration/routes.update_success";
    assert_eq!(all.get(rds), Some(&1), "{rds}");
    Ok(())
}

/// Starts the proxy with `config` and waits until it is LIVE.
async fn start_config(config: &Value) -> anyhow::Result<baton_tests::Proxy> {
    baton_tests::Proxy::start(config).await
}

sotw_and_delta!(federation_routes_by_authority);

/// Validates `config` (`--mode validate`): the exit status and the output.
fn validate(config: &Value) -> anyhow::Result<(bool, String)> {
    let dir = TempDir::new()?;
    let path = dir.join("config.yaml");
    std::fs::write(&path, serde_json::to_string_pretty(config)?)?;
    let path = path.display().to_string();
    let (status, out, err) =
        baton_tests::run_to_completion(&["--mode", "validate", "-c", path.as_str()])?;
    Ok((status.success(), format!("{out}{err}")))
}

#[tokio::test]
async fn federation_and_collection_config_is_checked_as_envoy_checks_it() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let base = bootstrap(&cp, XdsTransport::Delta).build();
    let source = authority_source("xds_cluster", &["cp.example"], XdsTransport::Delta);
    let mut grpc = source.clone();
    grpc["api_config_source"]["api_type"] = json!("GRPC");
    let mut duplicate = source.clone();
    duplicate["authorities"] = json!([ { "name": "a" }, { "name": "a" } ]);
    let ads_source = json!({ "authorities": [ { "name": "a" } ], "ads": {} });
    let no_authority = authority_source("xds_cluster", &[], XdsTransport::Sotw);
    let clusters = "xdstp://cp.example/envoy.config.cluster.v3.Cluster/*";
    let listeners = "xdstp://cp.example/envoy.config.listener.v3.Listener/mesh/*";
    // (field path, value, None = accepted, Some(what the refusal says))
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        ("/config_sources", json!([source.clone()]), None),
        ("/default_config_source", no_authority.clone(), None),
        ("/dynamic_resources/cds_resources_locator", json!(clusters), None),
        ("/dynamic_resources/lds_resources_locator", json!(listeners), None),
        (
            "/config_sources",
            json!([no_authority]),
            Some("xdstp-based non-default config source must have at least one authority."),
        ),
        (
            "/config_sources",
            json!([grpc]),
            Some("xdstp-based config source authority only supports AGGREGATED_GRPC and AGGREGATED_DELTA_GRPC types."),
        ),
        (
            "/config_sources",
            json!([duplicate]),
            Some("xdstp-based config source authority a is configured more than once in an xdstp-based config source."),
        ),
        (
            "/config_sources",
            json!([ads_source]),
            Some("Only api_config_source type is currently supported for xdstp-based config sources."),
        ),
        (
            "/dynamic_resources/cds_resources_locator",
            json!(listeners),
            Some("xdstp:// type does not match envoy.config.cluster.v3.Cluster in"),
        ),
    ];
    for (pointer, value, refusal) in cases {
        let mut config = base.clone();
        let (parent, field) = pointer.rsplit_once('/').unwrap_or(("", pointer));
        let target = if parent.is_empty() {
            &mut config
        } else {
            config
                .pointer_mut(parent)
                .ok_or_else(|| anyhow::anyhow!("no {parent}"))?
        };
        target[field] = value;
        let (ok, output) = validate(&config)?;
        match refusal {
            None => assert!(ok, "{pointer}: {output}"),
            Some(reason) => {
                assert!(!ok, "{pointer}: accepted");
                assert!(output.contains(reason), "{pointer}: {output}");
            }
        }
    }
    // A collection needs ADS or delta gRPC to come through.
    let mut config = base.clone();
    config["dynamic_resources"]["cds_resources_locator"] = json!(clusters);
    config["dynamic_resources"]["cds_config"] = json!({
        "api_config_source": {
            "api_type": "GRPC",
            "transport_api_version": "V3",
            "grpc_services": [ { "envoy_grpc": { "cluster_name": "xds_cluster" } } ],
        },
        "resource_api_version": "V3",
    });
    let (ok, output) = validate(&config)?;
    assert!(
        !ok && output.contains("Unknown xdstp:// transport API type"),
        "{output}"
    );
    Ok(())
}

/// The flag turned on at run time (admin `/runtime_modify`): as Envoy reads it when it
/// creates a subscription, an EDS name of a cluster added afterwards goes to its
/// authority's source, while the names subscribed before stay where they are.
#[tokio::test]
async fn the_flag_turned_on_at_run_time() -> anyhow::Result<()> {
    const SERVICE2: &str =
        "xdstp://fed.example/envoy.config.endpoint.v3.ClusterLoadAssignment/backend2";
    let transport = XdsTransport::Delta;
    let ads = ControlPlane::start().await?;
    let federated = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    let mut backend = resources::eds_cluster("backend");
    backend["eds_cluster_config"]["service_name"] = json!(SERVICE);
    let mut backend2 = resources::eds_cluster("backend2");
    backend2["eds_cluster_config"]["service_name"] = json!(SERVICE2);
    for cp in [&ads, &federated] {
        cp.set(CLUSTER_TYPE, "1", resources::clusters(&[backend.clone()])?)?;
        let assignments = [
            resources::load_assignment(SERVICE, &[a.addr()]),
            resources::load_assignment(SERVICE2, &[a.addr()]),
        ];
        cp.set(
            ENDPOINT_TYPE,
            "1",
            resources::load_assignments(&assignments)?,
        )?;
        cp.set(LISTENER_TYPE, "1", Vec::new())?;
    }
    let mut config = bootstrap(&ads, transport).build();
    config["static_resources"]["clusters"]
        .as_array_mut()
        .ok_or_else(|| anyhow::anyhow!("no clusters"))?
        .push(control_plane_cluster("xds_federated", &federated));
    config["config_sources"] = json!([authority_source(
        "xds_federated",
        &["fed.example"],
        transport
    )]);
    config["layered_runtime"] = json!({
        "layers": [ { "name": "admin", "admin_layer": {} } ],
    });
    let proxy = start_config(&config).await?;
    ads.wait_for_ack(ENDPOINT_TYPE, "1", XDS_TIMEOUT).await?;
    let resp = proxy
        .admin_request("POST", &format!("/runtime_modify?{FLAG}=true"))
        .await?;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    // A cluster added now.
    ads.set(
        CLUSTER_TYPE,
        "2",
        resources::clusters(&[backend, backend2])?,
    )?;
    ads.wait_for_ack(CLUSTER_TYPE, "2", XDS_TIMEOUT).await?;
    let asked = |cp: &ControlPlane, name: &str| {
        cp.requests()
            .iter()
            .any(|r| r.type_url == ENDPOINT_TYPE && r.subscribe.iter().any(|n| n == name))
    };
    federated
        .wait_for_request(
            |r| r.type_url == ENDPOINT_TYPE && r.subscribe.iter().any(|n| n == SERVICE2),
            XDS_TIMEOUT,
        )
        .await?;
    assert!(!asked(&ads, SERVICE2), "{SERVICE2} asked of both");
    // The name subscribed before the change stays on the ADS stream.
    assert!(asked(&ads, SERVICE) && !asked(&federated, SERVICE));
    Ok(())
}
