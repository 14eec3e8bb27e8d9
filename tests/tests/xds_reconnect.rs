//! The control plane going away and coming back, over ADS state of the world and delta:
//! the proxy keeps serving its last accepted config, reconnects, resubscribes with what it
//! has, and applies updates from the restarted control plane.

mod xds_support;

use std::time::Duration;

use baton_tests::config::XdsTransport;
use baton_tests::xds::{
    describe_requests, ControlPlane, LoggedRequest, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE,
    ROUTE_TYPE,
};
use baton_tests::EchoUpstream;
use xds_support::*;

sotw_and_delta!(control_plane_restart_reconnects_and_resubscribes);

/// Requests the loop must see answered in each phase.
const PER_PHASE: usize = 30;

/// Bound for the proxy to reconnect (Envoy retries with a jittered backoff starting
/// around 500 ms; a bound, not an expectation).
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Stops the control plane (listener closed, connections dropped) under a request loop,
/// then restarts it on the same port.
///
/// Observed on Envoy 1.40: `control_plane.connected_state` drops to 0 and requests keep
/// succeeding on the last accepted config. After the restart Envoy reconnects on a new
/// stream and asks for every type again in the startup order (CDS, EDS, LDS, RDS) with
/// an empty `response_nonce`. Over SotW each request carries the last accepted
/// `version_info` ("1") and the same resource names as before; over delta each carries
/// `initial_resource_versions` with the per-resource versions it holds (`backend`,
/// `http`, `routes` at "1") and subscribes again to the EDS/RDS names (CDS and LDS use the
/// legacy wildcard again: no names). `connected_state` returns to 1, and an update from
/// the restarted control plane applies. No request fails throughout.
async fn control_plane_restart_reconnects_and_resubscribes(
    transport: XdsTransport,
) -> anyhow::Result<()> {
    let mut cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    let b = EchoUpstream::start("b").await?;
    set_all(&cp, "1", &[a.addr()], 0)?;
    let proxy = start(&bootstrap(&cp, transport)).await?;
    wait_all_acked(&cp, "1").await?;
    let addr = proxy.listener_addr("http").await?;
    wait_served_by(addr, "a").await?;
    let requests = RequestLoop::start(addr);
    requests.wait_more(PER_PHASE).await?;

    let old_stream = cp.requests().last().map_or(0, |r| r.stream);
    cp.stop().await;
    wait_stat(&proxy, "control_plane.connected_state", 0).await?;
    requests.wait_more(PER_PHASE).await?;

    cp.restart().await?;
    let new_requests = |type_url: &'static str| {
        move |r: &LoggedRequest| r.stream > old_stream && r.type_url == type_url
    };
    for type_url in [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE] {
        cp.wait_for_request(new_requests(type_url), RECONNECT_TIMEOUT)
            .await?;
    }
    wait_stat(&proxy, "control_plane.connected_state", 1).await?;
    let log = cp.requests();
    let after: Vec<&LoggedRequest> = log.iter().filter(|r| r.stream > old_stream).collect();
    let text = describe_requests(&log);
    assert!(after.iter().all(|r| r.stream == after[0].stream), "{text}");
    let first_of = |type_url: &str| {
        after
            .iter()
            .find(|r| r.type_url == type_url)
            .copied()
            .expect("asked again")
    };
    let mut order: Vec<&str> = Vec::new();
    for request in &after {
        if !order.contains(&request.type_url.as_str()) {
            order.push(&request.type_url);
        }
    }
    assert_eq!(
        order,
        [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE],
        "{text}"
    );
    for (type_url, name) in [
        (CLUSTER_TYPE, "backend"),
        (ENDPOINT_TYPE, "backend"),
        (LISTENER_TYPE, "http"),
        (ROUTE_TYPE, "routes"),
    ] {
        let request = first_of(type_url);
        assert_eq!(request.response_nonce, "", "{text}");
        assert!(!request.is_nack(), "{text}");
        match transport {
            XdsTransport::Sotw => assert_eq!(request.version_info, "1", "{text}"),
            XdsTransport::Delta => {
                let versions: Vec<(&str, &str)> = request
                    .initial_resource_versions
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                assert_eq!(versions, [(name, "1")], "{text}");
            }
        }
    }
    let names = |r: &LoggedRequest| match transport {
        XdsTransport::Sotw => r.resource_names.clone(),
        XdsTransport::Delta => r.subscribe.clone(),
    };
    assert!(names(first_of(CLUSTER_TYPE)).is_empty(), "{text}");
    assert!(names(first_of(LISTENER_TYPE)).is_empty(), "{text}");
    assert_eq!(names(first_of(ENDPOINT_TYPE)), ["backend"], "{text}");
    assert_eq!(names(first_of(ROUTE_TYPE)), ["routes"], "{text}");

    set_endpoints(&cp, "2", &[("backend", &[b.addr()])])?;
    cp.wait_for_ack(ENDPOINT_TYPE, "2", XDS_TIMEOUT).await?;
    wait_served_by(addr, "b").await?;
    requests.wait_more(PER_PHASE).await?;
    let outcome = requests.finish().await?;
    assert!(outcome.failures.is_empty(), "{outcome:#?}");
    assert!(outcome.upstreams.contains_key("b"), "{outcome:#?}");
    Ok(())
}
