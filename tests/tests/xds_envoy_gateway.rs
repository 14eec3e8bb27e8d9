//! The resources Envoy Gateway's translator generates (`examples/xds/envoy-gateway/
//! resources.yaml`: an EDS cluster with its typed least-request policy and circuit
//! breakers, its endpoints, a listener whose HCM sets what Envoy Gateway sets on every
//! listener, and a route configuration with `ignore_port_in_host_matching`) served by the
//! test control plane over ADS, state of the world and delta: every resource is ACKed,
//! and requests get the answers Envoy 1.40 gives (the test passes on both).

mod xds_support;

use baton_tests::xds::{
    resources, ControlPlane, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE,
};
use baton_tests::{get_with, EchoUpstream};
use serde_json::{json, Value};
use xds_support::*;

sotw_and_delta!(envoy_gateway_resources_serve);

/// The example's resource lists (`clusters`, `endpoints`, `listeners`, `routes`), with
/// the listener on 127.0.0.1 (any port) and the endpoint on `upstream`.
fn example(upstream: std::net::SocketAddr) -> anyhow::Result<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/xds/envoy-gateway/resources.yaml"
    );
    let mut doc: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path)?)?;
    doc["listeners"][0]["address"] =
        json!({ "socketAddress": { "address": "127.0.0.1", "portValue": 0 } });
    doc["endpoints"][0]["endpoints"][0]["lbEndpoints"][0]["endpoint"]["address"] = json!({
        "socketAddress": { "address": upstream.ip().to_string(), "portValue": upstream.port() }
    });
    Ok(doc)
}

fn list(doc: &Value, key: &str) -> Vec<Value> {
    doc[key].as_array().cloned().unwrap_or_default()
}

async fn envoy_gateway_resources_serve(
    transport: baton_tests::config::XdsTransport,
) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let up = EchoUpstream::start("backend").await?;
    let doc = example(up.addr())?;
    cp.set(
        CLUSTER_TYPE,
        "1",
        resources::clusters(&list(&doc, "clusters"))?,
    )?;
    cp.set(
        ENDPOINT_TYPE,
        "1",
        resources::load_assignments(&list(&doc, "endpoints"))?,
    )?;
    cp.set(
        LISTENER_TYPE,
        "1",
        resources::listeners(&list(&doc, "listeners"))?,
    )?;
    cp.set(
        ROUTE_TYPE,
        "1",
        resources::route_configs(&list(&doc, "routes"))?,
    )?;
    let proxy = start(&bootstrap(&cp, transport)).await?;
    wait_all_acked(&cp, "1").await?;
    let addr = proxy.listener_addr("default/eg/http").await?;

    // The Gateway's port in Host does not matter (`ignore_port_in_host_matching`).
    let resp = get_with(addr, "/a//b/../c", &[("host", "www.example.com:80")]).await?;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    assert_eq!(resp.header("x-upstream-name"), Some("backend"));
    let echoed: Value = serde_json::from_str(&resp.body_text())?;
    // `normalize_path` and `merge_slashes`.
    assert_eq!(echoed["path"], "/a/c", "{echoed}");
    // `suppress_envoy_headers`: no `x-envoy-upstream-service-time`.
    assert_eq!(resp.header("x-envoy-upstream-service-time"), None);

    // `headers_with_underscores_action: REJECT_REQUEST`.
    let resp = get_with(addr, "/", &[("host", "www.example.com"), ("x_user", "1")]).await?;
    assert_eq!(
        (resp.status, resp.body_text().as_str()),
        (400, "Bad Request")
    );

    // `path_with_escaped_slashes_action: UNESCAPE_AND_REDIRECT`.
    let resp = get_with(addr, "/a%2Fb", &[("host", "www.example.com")]).await?;
    assert_eq!(resp.status, 307, "{}", resp.body_text());
    assert_eq!(resp.header("location"), Some("/a/b"));

    // Another host: no virtual host.
    let resp = get_with(addr, "/", &[("host", "other.example.com")]).await?;
    assert_eq!(resp.status, 404);
    Ok(())
}
