//! xDS updates while serving, each over ADS state of the world and delta: endpoint, cluster
//! and route updates under a bounded request loop fail nothing, and a removed cluster's
//! requests get Envoy's local reply.

mod xds_support;

use std::net::SocketAddr;

use baton_tests::config::{prefix_route, vhost, XdsTransport};
use baton_tests::xds::{resources, ControlPlane, CLUSTER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE};
use baton_tests::EchoUpstream;
use xds_support::*;

sotw_and_delta!(
    updates_under_load_fail_nothing,
    removed_cluster_gets_envoys_local_reply,
);

/// Requests the loop must see answered after each step, so that every step is exercised
/// under traffic.
const PER_STEP: usize = 30;

/// A request loop over one keep-alive connection (reconnecting if closed) runs while the
/// control plane: adds an endpoint, removes the old one, modifies the cluster (it warms,
/// then replaces the old one), adds a second cluster and moves the route to it. Every
/// request succeeds, and every upstream answered some.
///
/// The cluster modification needs the assignment again to finish warming (see
/// `xds_ads.rs`, `xds_stats`): over SotW Envoy asks for it, over delta the control plane
/// pushes it. The new cluster is ACKed (warm) before the route moves to it, the order a
/// control plane keeps for make-before-break.
async fn updates_under_load_fail_nothing(transport: XdsTransport) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    let b = EchoUpstream::start("b").await?;
    let c = EchoUpstream::start("c").await?;
    set_all(&cp, "1", &[a.addr()], 0)?;
    let proxy = start(&bootstrap(&cp, transport)).await?;
    wait_all_acked(&cp, "1").await?;
    let addr = proxy.listener_addr("http").await?;
    wait_served_by(addr, "a").await?;
    let requests = RequestLoop::start(addr);
    requests.wait_more(PER_STEP).await?;

    // Endpoints: add b, then drop a.
    set_endpoints(&cp, "2", &[("backend", &[a.addr(), b.addr()])])?;
    cp.wait_for_ack(ENDPOINT_TYPE, "2", XDS_TIMEOUT).await?;
    requests.wait_more(PER_STEP).await?;
    set_endpoints(&cp, "3", &[("backend", &[b.addr()])])?;
    cp.wait_for_ack(ENDPOINT_TYPE, "3", XDS_TIMEOUT).await?;
    requests.wait_more(PER_STEP).await?;

    // Cluster: modify `backend` (it warms and replaces the old one).
    let mut modified = resources::eds_cluster("backend");
    modified["connect_timeout"] = serde_json::json!("0.5s");
    cp.set(CLUSTER_TYPE, "4", resources::clusters(&[modified.clone()])?)?;
    if transport == XdsTransport::Delta {
        cp.resend(ENDPOINT_TYPE);
    }
    cp.wait_for_ack(CLUSTER_TYPE, "4", XDS_TIMEOUT).await?;
    wait_stat(&proxy, "cluster_manager.cluster_modified", 1).await?;
    requests.wait_more(PER_STEP).await?;

    // A second cluster, then the route moves to it.
    let clusters = [modified, resources::eds_cluster("backend2")];
    cp.set(CLUSTER_TYPE, "5", resources::clusters(&clusters)?)?;
    let b_addrs: &[SocketAddr] = &[b.addr()];
    let c_addrs: &[SocketAddr] = &[c.addr()];
    set_endpoints(&cp, "5", &[("backend", b_addrs), ("backend2", c_addrs)])?;
    cp.wait_for_ack(CLUSTER_TYPE, "5", XDS_TIMEOUT).await?;
    cp.wait_for_ack(ENDPOINT_TYPE, "5", XDS_TIMEOUT).await?;
    set_routes(&cp, "5", "backend2")?;
    cp.wait_for_ack(ROUTE_TYPE, "5", XDS_TIMEOUT).await?;
    wait_served_by(addr, "c").await?;
    requests.wait_more(PER_STEP).await?;

    let outcome = requests.finish().await?;
    assert!(outcome.failures.is_empty(), "{outcome:#?}");
    for name in ["a", "b", "c"] {
        assert!(outcome.upstreams.contains_key(name), "{outcome:#?}");
    }
    Ok(())
}

/// Cluster `other` (routed from `/other`) is removed by CDS while the route still names
/// it.
///
/// Observed on Envoy 1.40: requests to `/other` get 503 with an empty body
/// (`content-length: 0`, no `x-envoy-upstream-service-time`: the router's "cluster not
/// found" local reply; RDS does not validate cluster names, so the route stays) while `/`
/// keeps serving; `cluster_manager.cluster_removed` counts 1 and `/clusters` no longer lists
/// `other`. Envoy drops the cluster's EDS subscription: over SotW the next EDS request
/// names only `backend`, over delta it unsubscribes `other`.
async fn removed_cluster_gets_envoys_local_reply(transport: XdsTransport) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    let b = EchoUpstream::start("b").await?;
    set_clusters(&cp, "1", &["backend", "other"])?;
    let a_addrs: &[SocketAddr] = &[a.addr()];
    let b_addrs: &[SocketAddr] = &[b.addr()];
    set_endpoints(&cp, "1", &[("backend", a_addrs), ("other", b_addrs)])?;
    set_listener(&cp, "1", 0)?;
    let routes = resources::route_config(
        "routes",
        vec![vhost(
            "all",
            &["*"],
            vec![
                prefix_route("/other", "other"),
                prefix_route("/", "backend"),
            ],
        )],
    );
    cp.set(ROUTE_TYPE, "1", resources::route_configs(&[routes])?)?;
    let proxy = start(&bootstrap(&cp, transport)).await?;
    wait_all_acked(&cp, "1").await?;
    let addr = proxy.listener_addr("http").await?;
    assert_eq!(get_once(addr, "/other").await?, (200, "b".to_string()));

    set_clusters(&cp, "2", &["backend"])?;
    cp.wait_for_ack(CLUSTER_TYPE, "2", XDS_TIMEOUT).await?;
    wait_stat(&proxy, "cluster_manager.cluster_removed", 1).await?;
    let resp = baton_tests::get(addr, "/other").await?;
    assert_eq!(resp.status, 503, "{}", resp.body_text());
    assert_eq!(resp.body_text(), "");
    assert_eq!(resp.header("content-length"), Some("0"));
    assert_eq!(resp.header("x-envoy-upstream-service-time"), None);
    assert_eq!(get_once(addr, "/").await?, (200, "a".to_string()));
    let clusters = proxy.admin_request("GET", "/clusters").await?.body_text();
    assert!(!clusters.contains("other::"), "{clusters}");
    assert!(clusters.contains("backend::"), "{clusters}");

    let unsubscribed = cp
        .wait_for_request(
            |r| {
                r.type_url == ENDPOINT_TYPE
                    && match transport {
                        XdsTransport::Sotw => {
                            !r.response_nonce.is_empty() && r.resource_names == ["backend"]
                        }
                        XdsTransport::Delta => r.unsubscribe == ["other"],
                    }
            },
            XDS_TIMEOUT,
        )
        .await;
    assert!(unsubscribed.is_ok(), "{unsubscribed:?}");
    Ok(())
}
