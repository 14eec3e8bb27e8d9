//! Stats across hot restarts (issues 4 and 5): counters in the shared region continue
//! from generation to generation, never going backwards and losing no increment, and the
//! `server.*` hot-restart gauges follow the newest generation.

mod hot_restart_support;

use std::time::Duration;

use baton_tests::config::simple_proxy;
use baton_tests::{client, EchoUpstream};
use hot_restart_support::{exited_cleanly, Service, EXIT_TIMEOUT};

/// `name: value` from Envoy's text `/stats`.
fn stat(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name)?
            .strip_prefix(": ")?
            .trim()
            .parse()
            .ok()
    })
}

async fn stats_text(generation: &hot_restart_support::Generation) -> anyhow::Result<String> {
    let r = generation.admin_get("/stats").await?;
    anyhow::ensure!(r.status == 200, "/stats answered {}", r.status);
    Ok(r.body_text())
}

async fn send(addr: std::net::SocketAddr, n: u64) -> anyhow::Result<()> {
    for _ in 0..n {
        let r = client::get(addr, "/").await?;
        anyhow::ensure!(r.status == 200, "request answered {}", r.status);
    }
    Ok(())
}

#[tokio::test]
async fn counters_continue_across_hot_restarts_and_gauges_follow_the_newest() -> anyhow::Result<()>
{
    let upstream = EchoUpstream::start("a").await?;
    let svc = Service::new()?;
    let config = svc.write_config("good", &simple_proxy(&[upstream.addr()]))?;

    let gen0 = svc.start(0, &config, &[]).await?;
    let addr = gen0.listener_addr("http").await?;
    send(addr, 5).await?;
    let before = stats_text(&gen0).await?;
    assert_eq!(
        stat(&before, "http.ingress.downstream_rq_2xx"),
        Some(5),
        "{before}"
    );
    assert_eq!(
        stat(&before, "cluster.backend.upstream_rq_200"),
        Some(5),
        "{before}"
    );

    let mut gen0 = gen0;
    let gen1 = svc.start(1, &config, &[]).await?;
    send(addr, 3).await?;
    let status = gen0.wait_exit(EXIT_TIMEOUT).await?;
    assert!(exited_cleanly(status), "generation 0: {status}");

    // Generation 0 is gone; its increments were folded into the region's retired column.
    let after = stats_text(&gen1).await?;
    assert_eq!(
        stat(&after, "http.ingress.downstream_rq_2xx"),
        Some(8),
        "{after}"
    );
    assert_eq!(
        stat(&after, "cluster.backend.upstream_rq_200"),
        Some(8),
        "{after}"
    );
    assert_eq!(stat(&after, "server.hot_restart_epoch"), Some(1), "{after}");
    assert_eq!(
        stat(&after, "server.hot_restart_generation"),
        Some(2),
        "{after}"
    );
    assert_eq!(stat(&after, "server.live"), Some(1), "{after}");
    // No connection of generation 0 lingers in the gauges.
    let idle = baton_tests::eventually(Duration::from_secs(10), || {
        let gen1 = &gen1;
        async move {
            let text = stats_text(gen1).await?;
            Ok((stat(&text, "http.ingress.downstream_cx_active") == Some(0)).then_some(()))
        }
    })
    .await;
    assert!(idle.is_ok(), "downstream_cx_active did not settle at 0");
    Ok(())
}
