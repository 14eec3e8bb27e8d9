//! `xdstp://` names. A singleton resource named by an `xdstp://` URL (here an EDS
//! `service_name` and an RDS `route_config_name`) is subscribed to and matched by that exact name over ADS, SotW and
//! delta, as Envoy 1.40 does when the bootstrap has no `node_context_params`. The
//! collection locators (`cds_resources_locator`, `lds_resources_locator`, glob
//! collections over delta xDS) and the bootstrap's xDS-TP federation fields
//! (`config_sources`, `default_config_source`) are refused by Baton, naming the field;
//! Envoy accepts them.

mod xds_support;

use baton_tests::config::XdsTransport;
use baton_tests::xds::{
    resources, ControlPlane, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE,
};
use baton_tests::{EchoUpstream, TempDir};
use serde_json::{json, Value};
use xds_support::*;

const SERVICE: &str = "xdstp://cp.example/envoy.config.endpoint.v3.ClusterLoadAssignment/backend";
const ROUTES: &str = "xdstp://cp.example/envoy.config.route.v3.RouteConfiguration/routes";

sotw_and_delta!(xdstp_names_are_subscribed_by_name);

async fn xdstp_names_are_subscribed_by_name(transport: XdsTransport) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    set_all(&cp, "1", &[a.addr()], 0)?;
    let mut backend = resources::eds_cluster("backend");
    backend["eds_cluster_config"]["service_name"] = json!(SERVICE);
    cp.set(CLUSTER_TYPE, "1", resources::clusters(&[backend])?)?;
    cp.set(
        ENDPOINT_TYPE,
        "1",
        resources::load_assignments(&[resources::load_assignment(SERVICE, &[a.addr()])])?,
    )?;
    let listener = resources::rds_listener("http", 0, ROUTES);
    cp.set(LISTENER_TYPE, "1", resources::listeners(&[listener])?)?;
    let routes = resources::route_to(ROUTES, "backend");
    cp.set(ROUTE_TYPE, "1", resources::route_configs(&[routes])?)?;
    let proxy = start(&bootstrap(&cp, transport)).await?;
    wait_all_acked(&cp, "1").await?;
    wait_served_by(proxy.listener_addr("http").await?, "a").await?;
    for (type_url, name) in [(ENDPOINT_TYPE, SERVICE), (ROUTE_TYPE, ROUTES)] {
        let first = cp
            .requests()
            .into_iter()
            .find(|r| r.type_url == type_url)
            .ok_or_else(|| anyhow::anyhow!("no {type_url} request"))?;
        let names = match transport {
            XdsTransport::Sotw => first.resource_names,
            XdsTransport::Delta => first.subscribe,
        };
        assert_eq!(names, [name]);
    }
    Ok(())
}

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
async fn collection_locators_and_federation_are_refused_by_baton() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let base = bootstrap(&cp, XdsTransport::Delta).build();
    // Envoy 1.40 takes only an `api_config_source` of an aggregated type here.
    let source = json!({
        "authorities": [ { "name": "cp.example" } ],
        "api_config_source": {
            "api_type": "AGGREGATED_DELTA_GRPC",
            "transport_api_version": "V3",
            "grpc_services": [ { "envoy_grpc": { "cluster_name": "xds_cluster" } } ],
        },
        "resource_api_version": "V3",
    });
    let cases = [
        (
            "cds_resources_locator",
            json!("xdstp://cp.example/envoy.config.cluster.v3.Cluster/*"),
        ),
        (
            "lds_resources_locator",
            json!("xdstp://cp.example/envoy.config.listener.v3.Listener/*"),
        ),
    ];
    for (field, value) in cases {
        let mut config = base.clone();
        config["dynamic_resources"][field] = value;
        let (ok, output) = validate(&config)?;
        if baton_tests::is_envoy() {
            assert!(ok, "{field}: {output}");
        } else {
            assert!(!ok, "{field}: {output}");
            let expected = format!("dynamic_resources.{field}: not supported by Baton yet");
            assert!(output.contains(&expected), "{field}: {output}");
        }
    }
    for (field, value) in [
        ("default_config_source", source.clone()),
        ("config_sources", json!([source])),
    ] {
        let mut config = base.clone();
        config[field] = value;
        let (ok, output) = validate(&config)?;
        if baton_tests::is_envoy() {
            assert!(ok, "{field}: {output}");
        } else {
            assert!(!ok, "{field}: {output}");
            assert!(
                output.contains(field) && output.contains("not supported by Baton yet"),
                "{field}: {output}"
            );
        }
    }
    Ok(())
}
