//! Experiment (temporary).

mod xds_support;

use baton_tests::config::XdsTransport;
use baton_tests::xds::{
    describe_requests, describe_responses, resources, ControlPlane, CLUSTER_TYPE, ENDPOINT_TYPE,
    LISTENER_TYPE, ROUTE_TYPE,
};
use baton_tests::{EchoUpstream, Proxy, StartOptions};
use serde_json::json;
use xds_support::*;

const CLUSTERS: &str = "xdstp://cp.example/envoy.config.cluster.v3.Cluster/mesh/*";
const LISTENERS: &str = "xdstp://cp.example/envoy.config.listener.v3.Listener/mesh/*";
const BACKEND: &str = "xdstp://cp.example/envoy.config.cluster.v3.Cluster/mesh/backend";
const HTTP: &str = "xdstp://cp.example/envoy.config.listener.v3.Listener/mesh/http";

async fn experiment(transport: XdsTransport) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    cp.set(CLUSTER_TYPE, "1", resources::clusters(&[resources::eds_cluster(BACKEND), resources::eds_cluster("plain")])?)?;
    cp.set(ENDPOINT_TYPE, "1", resources::load_assignments(&[resources::load_assignment(BACKEND, &[a.addr()])])?)?;
    cp.set(LISTENER_TYPE, "1", resources::listeners(&[resources::rds_listener(HTTP, 0, "routes")])?)?;
    cp.set(ROUTE_TYPE, "1", resources::route_configs(&[resources::route_to("routes", BACKEND)])?)?;
    let mut config = bootstrap(&cp, transport).initial_fetch_timeout(std::time::Duration::from_secs(3)).build();
    config["dynamic_resources"]["cds_resources_locator"] = json!(CLUSTERS);
    config["dynamic_resources"]["lds_resources_locator"] = json!(LISTENERS);
    if std::env::var("NO_CDS").is_ok() {
        config["dynamic_resources"].as_object_mut().unwrap().remove("cds_config");
    }
    let proxy = Proxy::start_with(&config, StartOptions { no_wait_ready: true, ..Default::default() }).await;
    let proxy = match proxy { Ok(p) => p, Err(e) => { eprintln!("START FAILED: {e:#}"); return Ok(()); } };
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    eprintln!("REQUESTS:\n{}", describe_requests(&cp.requests()));
    eprintln!("RESPONSES:\n{}", describe_responses(&cp.responses()));
    let st = stats(&proxy).await?;
    for (k, v) in &st { if k.contains("xdstp") || k.contains("cds") || k.contains("lds") || k.starts_with("cluster_manager") || k.starts_with("listener_manager") { eprintln!("STAT {k}: {v}"); } }
    eprintln!("READY {}", ready_status(&proxy).await?);
    let dump = config_dump(&proxy).await?;
    eprintln!("DUMP {}", serde_json::to_string_pretty(&dump["configs"][1])?);
    eprintln!("DUMP {}", serde_json::to_string_pretty(&dump["configs"][2])?);
    let lst = proxy.admin_request("GET", "/listeners?format=json").await?;
    eprintln!("LISTENERS {}", lst.body_text());
    if let Ok(addr) = proxy.listener_addr(HTTP).await { eprintln!("GET {:?}", get_once(addr, "/").await); }
    // removal
    cp.set(CLUSTER_TYPE, "2", resources::clusters(&[resources::eds_cluster("plain")])?)?;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    eprintln!("REQUESTS2:\n{}", describe_requests(&cp.requests()));
    eprintln!("RESPONSES2:\n{}", describe_responses(&cp.responses()));
    let st = stats(&proxy).await?;
    for (k, v) in &st { if k.starts_with("cluster_manager") { eprintln!("STAT2 {k}: {v}"); } }
    eprintln!("LOG {}", proxy.log().lines().filter(|l| l.contains("warn") || l.contains("error")|| l.contains("xdstp")).collect::<Vec<_>>().join("\n"));
    Ok(())
}

#[tokio::test]
async fn delta() -> anyhow::Result<()> { experiment(XdsTransport::Delta).await }
#[tokio::test]
async fn sotw() -> anyhow::Result<()> { experiment(XdsTransport::Sotw).await }

fn fed_source(cp: &ControlPlane, cluster: &str, authorities: &[&str], delta: bool) -> (serde_json::Value, serde_json::Value) {
    let mut c = baton_tests::config::with_http2_upstream(json!({
        "name": cluster, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": { "cluster_name": cluster, "endpoints": [ { "lb_endpoints": [ { "endpoint": { "address": baton_tests::config::socket_address("127.0.0.1", cp.addr().port()) } } ] } ] },
    }));
    c["name"] = json!(cluster);
    let auths: Vec<_> = authorities.iter().map(|a| json!({"name": a})).collect();
    let src = json!({
        "authorities": auths,
        "api_config_source": {
            "api_type": if delta { "AGGREGATED_DELTA_GRPC" } else { "AGGREGATED_GRPC" },
            "transport_api_version": "V3",
            "grpc_services": [ { "envoy_grpc": { "cluster_name": cluster } } ],
        },
        "resource_api_version": "V3",
    });
    (c, src)
}

async fn federation(transport: XdsTransport) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let cp2 = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    let b = EchoUpstream::start("b").await?;
    const FB: &str = "xdstp://fed.example/envoy.config.cluster.v3.Cluster/mesh/backend";
    const FSVC: &str = "xdstp://fed.example/envoy.config.endpoint.v3.ClusterLoadAssignment/backend";
    const FR: &str = "xdstp://fed.example/envoy.config.route.v3.RouteConfiguration/routes";
    let mut c1 = resources::eds_cluster("backend");
    c1["eds_cluster_config"]["service_name"] = json!(FSVC);
    for (c, who) in [(&cp, &a), (&cp2, &b)] {
        c.set(CLUSTER_TYPE, "1", resources::clusters(&[c1.clone(), resources::eds_cluster(FB)])?)?;
        c.set(ENDPOINT_TYPE, "1", resources::load_assignments(&[resources::load_assignment(FSVC, &[who.addr()]), resources::load_assignment(FB, &[who.addr()])])?)?;
        c.set(LISTENER_TYPE, "1", resources::listeners(&[resources::rds_listener("http", 0, FR)])?)?;
        c.set(ROUTE_TYPE, "1", resources::route_configs(&[resources::route_to(FR, "backend")])?)?;
    }
    let mut config = bootstrap(&cp, transport).initial_fetch_timeout(std::time::Duration::from_secs(3)).build();
    let delta = matches!(transport, XdsTransport::Delta);
    let (c2, src) = fed_source(&cp2, "xds2", &["fed.example"], delta);
    config["static_resources"]["clusters"].as_array_mut().unwrap().push(c2);
    match std::env::var("FED").as_deref() {
        Ok("default") => { let mut s = src.clone(); s.as_object_mut().unwrap().remove("authorities"); config["default_config_source"] = s; }
        Ok("both") => { config["config_sources"] = json!([src]); }
        _ => { config["config_sources"] = json!([src]); }
    }
    if std::env::var("COLL").is_ok() {
        config["dynamic_resources"]["cds_resources_locator"] = json!("xdstp://fed.example/envoy.config.cluster.v3.Cluster/mesh/*");
    }
    if std::env::var("FLAG").is_ok() {
        config["layered_runtime"] = json!({"layers": [{"name": "static", "static_layer": {"envoy.reloadable_features.xdstp_based_config_singleton_subscriptions": true}}]});
    }
    let proxy = Proxy::start_with(&config, StartOptions { no_wait_ready: true, ..Default::default() }).await;
    let proxy = match proxy { Ok(p) => p, Err(e) => { eprintln!("START FAILED: {e:#}"); return Ok(()); } };
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    eprintln!("CP1 REQUESTS:\n{}", describe_requests(&cp.requests()));
    eprintln!("CP2 REQUESTS:\n{}", describe_requests(&cp2.requests()));
    let st = stats(&proxy).await?;
    for (k, v) in &st { if k.starts_with("control_plane") || k.contains("cds.") || k.contains("lds.") || k.contains("rds") || k.ends_with("update_success") { eprintln!("STAT {k}: {v}"); } }
    eprintln!("READY {}", ready_status(&proxy).await?);
    if let Ok(addr) = proxy.listener_addr("http").await { eprintln!("GET {:?}", get_once(addr, "/").await); }
    eprintln!("LOG {}", proxy.log().lines().filter(|l| !l.contains("server.cc:467")).filter(|l| l.contains("warn") || l.contains("error")|| l.contains("xdstp") || l.contains("critical")).collect::<Vec<_>>().join("\n"));
    Ok(())
}

#[tokio::test]
async fn fed_delta() -> anyhow::Result<()> { federation(XdsTransport::Delta).await }
#[tokio::test]
async fn fed_sotw() -> anyhow::Result<()> { federation(XdsTransport::Sotw).await }
