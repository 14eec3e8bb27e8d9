//! A discovery response over the bound on one message, `max_receive_message_length` on
//! the ADS `envoy_grpc` service, over state of the world and delta: the proxy ends the
//! stream (gRPC's RESOURCE_EXHAUSTED), applies nothing of it, keeps serving its last
//! accepted config, and reconnects with its jittered backoff; once the control plane's
//! answer fits again it is applied and ACKed (observed on Envoy 1.40 first).

mod xds_support;

use std::time::Duration;

use baton_tests::config::XdsTransport;
use baton_tests::xds::{resources, ControlPlane, LoggedRequest, CLUSTER_TYPE};
use baton_tests::EchoUpstream;
use serde_json::json;
use xds_support::*;

sotw_and_delta!(an_oversized_response_closes_the_stream_and_changes_nothing);

/// The bound set on the ADS service: the usual snapshot's responses fit in it.
const MAX_MESSAGE: u32 = 4096;

/// Requests the loop must see answered in each phase.
const PER_PHASE: usize = 20;

/// Bound for the proxy to reconnect (Envoy's backoff starts around 500 ms; a bound, not
/// an expectation).
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(15);

async fn an_oversized_response_closes_the_stream_and_changes_nothing(
    transport: XdsTransport,
) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    set_all(&cp, "1", &[a.addr()], 0)?;
    let mut config = bootstrap(&cp, transport).build();
    config["dynamic_resources"]["ads_config"]["grpc_services"][0]["envoy_grpc"]
        ["max_receive_message_length"] = json!(MAX_MESSAGE);
    let proxy = baton_tests::Proxy::start(&config).await?;
    wait_all_acked(&cp, "1").await?;
    let addr = proxy.listener_addr("http").await?;
    wait_served_by(addr, "a").await?;
    let requests = RequestLoop::start(addr);
    requests.wait_more(PER_PHASE).await?;

    // Version 2: `backend` and 100 more clusters, about 10 KB in one response.
    let first_stream = cp.requests().last().map_or(0, |r| r.stream);
    let mut clusters = vec![resources::eds_cluster("backend")];
    clusters.extend((0..100).map(|i| resources::eds_cluster(&format!("padding-cluster-{i:03}"))));
    cp.set(CLUSTER_TYPE, "2", resources::clusters(&clusters)?)?;
    let later_stream = move |r: &LoggedRequest| r.stream > first_stream;
    cp.wait_for_request(
        move |r| later_stream(r) && r.type_url == CLUSTER_TYPE,
        RECONNECT_TIMEOUT,
    )
    .await?;
    requests.wait_more(PER_PHASE).await?;
    let log = cp.requests();
    assert!(
        log.iter().all(|r| !r.is_nack()),
        "an oversized response is not NACKed but ends the stream:\n{}",
        baton_tests::xds::describe_requests(&log)
    );
    assert!(
        !log.iter()
            .any(|r| r.type_url == CLUSTER_TYPE && r.version_info == "2"),
        "version 2 was never applied:\n{}",
        baton_tests::xds::describe_requests(&log)
    );
    let stats = stats(&proxy).await?;
    assert_eq!(stats.get("cluster_manager.active_clusters"), Some(&2));
    assert_eq!(stats.get("cluster_manager.cds.update_success"), Some(&1));

    // Version 3 fits: applied and ACKed on the new stream.
    let clusters = [
        resources::eds_cluster("backend"),
        resources::static_cluster("extra", &[a.addr()]),
    ];
    cp.set(CLUSTER_TYPE, "3", resources::clusters(&clusters)?)?;
    cp.wait_for_ack(CLUSTER_TYPE, "3", RECONNECT_TIMEOUT)
        .await?;
    wait_stat(&proxy, "cluster_manager.active_clusters", 3).await?;
    requests.wait_more(PER_PHASE).await?;
    let outcome = requests.finish().await?;
    assert!(outcome.failures.is_empty(), "{outcome:#?}");
    Ok(())
}
