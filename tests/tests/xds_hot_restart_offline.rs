//! Beyond Envoy: a hot restart while the control plane is unreachable loses nothing.
//!
//! Envoy 1.40's new generation goes LIVE after `initial_fetch_timeout` with only its
//! static resources and drains the old one, so every xDS listener disappears (measured:
//! most requests fail and the listener is gone afterwards). Baton's new generation takes
//! its parent's accepted resources and their versions over the hot-restart socket and,
//! since the control plane cannot be reached, starts from them: the listener is served
//! throughout and afterwards (`control_plane.inherited_resources` counts what it took),
//! and once the control plane is back it converges as usual. A new generation whose
//! bootstrap names another node inherits nothing and starts cold, as Envoy does. Baton
//! only.

mod hot_restart_support;
mod xds_support;

use std::time::Duration;

use baton_tests::config::{free_port, XdsTransport};
use baton_tests::xds::ControlPlane;
use baton_tests::{skip_for_envoy, EchoUpstream};
use hot_restart_support::{exited_cleanly, Service, EXIT_TIMEOUT};
use xds_support::*;

sotw_and_delta!(hot_restart_with_the_control_plane_down_keeps_serving);

/// Requests the loop must see answered in each phase.
const PER_PHASE: usize = 30;

async fn hot_restart_with_the_control_plane_down_keeps_serving(
    transport: XdsTransport,
) -> anyhow::Result<()> {
    skip_for_envoy!("Envoy's new generation loses the xDS listener when the control plane is down");
    let mut cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    let b = EchoUpstream::start("b").await?;
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

    cp.stop().await;
    let mut gen1 = service.spawn(1, &config, &[])?;
    gen1.wait_live().await?;
    let status = gen0.wait_exit(EXIT_TIMEOUT).await?;
    assert!(exited_cleanly(status), "epoch 0 exit: {status}");
    requests.wait_more(PER_PHASE).await?;
    assert_eq!(gen1.listener_addr("http").await?, addr);
    let stats = gen1.admin_get("/stats").await?.body_text();
    let inherited = stats
        .lines()
        .find_map(|l| l.strip_prefix("control_plane.inherited_resources: "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(inherited.is_some_and(|n| n >= 4), "{stats}");

    // The control plane comes back with new endpoints: generation 1 converges.
    cp.restart().await?;
    set_endpoints(&cp, "2", &[("backend", &[b.addr()])])?;
    wait_served_by(addr, "b").await?;
    let outcome = requests.finish().await?;
    assert!(outcome.failures.is_empty(), "{outcome:#?}");
    Ok(())
}

/// The same restart with the control plane down, but the new bootstrap names another
/// node: the parent's resources may not be this node's, so generation 1 takes none
/// (`control_plane.inherited_resources` 0), goes LIVE after its `initial_fetch_timeout`s
/// with no xDS listener, as Envoy's would.
#[tokio::test]
async fn a_changed_node_starts_cold() -> anyhow::Result<()> {
    skip_for_envoy!("Envoy never inherits");
    let mut cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    let port = free_port()?;
    set_all(&cp, "1", &[a.addr()], port)?;
    let service = Service::new()?;
    let mut first = bootstrap(&cp, XdsTransport::Sotw);
    first.cds_initial_fetch_timeout = Some(Duration::from_secs(1));
    first.lds_initial_fetch_timeout = Some(Duration::from_secs(1));
    let mut second = first.clone();
    second.node_id = "another-node".to_string();
    let config0 = service.write_config("config0", &first.build())?;
    let config1 = service.write_config("config1", &second.build())?;
    let mut gen0 = service.start(0, &config0, &[]).await?;
    wait_all_acked(&cp, "1").await?;
    wait_served_by(gen0.listener_addr("http").await?, "a").await?;

    cp.stop().await;
    let mut gen1 = service.spawn(1, &config1, &[])?;
    gen1.wait_live().await?;
    let status = gen0.wait_exit(EXIT_TIMEOUT).await?;
    assert!(exited_cleanly(status), "epoch 0 exit: {status}");
    let stats = gen1.admin_get("/stats").await?.body_text();
    let inherited = stats
        .lines()
        .find_map(|l| l.strip_prefix("control_plane.inherited_resources: "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert_eq!(inherited, Some(0), "{stats}");
    let listeners = gen1.admin_get("/listeners").await?.body_text();
    assert_eq!(
        listeners.trim(),
        "",
        "no xDS listener without the control plane"
    );
    Ok(())
}
