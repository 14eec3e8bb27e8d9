//! Hot restart under a control plane, over ADS state of the world and delta: the new
//! generation initialises from the control plane itself, and while the control plane
//! delays its answers the old generation keeps serving; the hand-over happens only once
//! the new one is LIVE.

mod hot_restart_support;
mod xds_support;

use std::time::Duration;

use baton_tests::config::{free_port, XdsTransport};
use baton_tests::xds::{ControlPlane, LoggedRequest, CLUSTER_TYPE};
use baton_tests::EchoUpstream;
use hot_restart_support::{exited_cleanly, Service, EXIT_TIMEOUT};
use xds_support::*;

sotw_and_delta!(hot_restart_waits_for_the_new_generations_xds);

/// Requests the loop must see answered in each phase.
const PER_PHASE: usize = 30;

/// How long the control plane withholds CDS from the new generation (well inside the
/// default 15 s `initial_fetch_timeout`).
const HOLD: Duration = Duration::from_secs(2);

/// Generation 0 serves a listener from LDS (fixed port, so the child can take over the
/// socket). CDS is then held at the control plane and generation 1 starts: it opens its
/// own stream, asks for CDS and waits. Meanwhile generation 0 keeps serving (Envoy 1.40
/// shuts the parent's admin listener down as soon as the child starts, so only traffic
/// shows it). Once CDS is released generation 1 completes
/// EDS, LDS and RDS, goes LIVE, and only then does generation 0 drain and exit. A request
/// loop over the listener sees no failure throughout (observed on Envoy 1.40).
async fn hot_restart_waits_for_the_new_generations_xds(
    transport: XdsTransport,
) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    let port = free_port()?;
    set_all(&cp, "1", &[a.addr()], port)?;
    let service = Service::new()?;
    let config = service.write_config("config", &bootstrap(&cp, transport).build())?;
    let mut gen0 = service.start(0, &config, &[]).await?;
    wait_all_acked(&cp, "1").await?;
    let addr = gen0.listener_addr("http").await?;
    wait_served_by(addr, "a").await?;
    let requests = RequestLoop::start(addr);
    requests.wait_more(PER_PHASE).await?;

    let gen0_stream = cp.requests().last().map_or(0, |r| r.stream);
    cp.hold(CLUSTER_TYPE);
    let mut gen1 = service.spawn(1, &config, &[])?;
    let new_stream = move |r: &LoggedRequest| r.stream > gen0_stream;
    cp.wait_for_request(
        move |r| new_stream(r) && r.type_url == CLUSTER_TYPE,
        XDS_TIMEOUT,
    )
    .await?;
    let deadline = tokio::time::Instant::now() + HOLD;
    while tokio::time::Instant::now() < deadline {
        assert!(gen0.try_exit_status().is_none(), "{}", gen0.log());
        assert!(gen1.try_exit_status().is_none(), "{}", gen1.log());
        requests.wait_more(1).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        gen0.try_exit_status().is_none(),
        "generation 0 left before generation 1 was initialised"
    );
    // Generation 0 is not draining yet: with `--drain-strategy immediate` every response
    // of a draining listener would close its connection.
    assert_eq!(requests.closes(), 0, "generation 0 drained early");

    cp.release(CLUSTER_TYPE);
    gen1.wait_live().await?;
    let status = gen0.wait_exit(EXIT_TIMEOUT).await?;
    assert!(exited_cleanly(status), "epoch 0 exit: {status}");
    requests.wait_more(PER_PHASE).await?;
    assert_eq!(gen1.listener_addr("http").await?, addr);
    let outcome = requests.finish().await?;
    assert!(outcome.failures.is_empty(), "{outcome:#?}");
    Ok(())
}
