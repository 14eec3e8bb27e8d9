//! A plain start (restart epoch 0, no live parent, no supervisor) starts its stats from
//! zero, as Envoy does, even when an earlier unrelated run with the same base id left its
//! stats region behind (stopped or crashed): no old counter value and no stat name of the
//! old configuration. Sockets left in the runtime directory by exited processes are
//! removed. (Hot restart and supervisor reloads still continue: hot_restart_stats,
//! supervisor_*.)

mod hot_restart_support;

use baton_tests::config::simple_proxy;
use baton_tests::{client, is_envoy, EchoUpstream};
use hot_restart_support::{Service, EXIT_TIMEOUT};
use nix::sys::signal::Signal;

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

/// A config with another shape: no cluster `backend`, same HCM prefix.
fn other_config() -> serde_json::Value {
    baton_tests::config::direct_ok_proxy()
}

async fn earlier_run_then_fresh_start(stop: Signal) -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let svc = Service::new()?;
    let first_config = svc.write_config("first", &simple_proxy(&[upstream.addr()]))?;
    let mut first = svc.start(0, &first_config, &[]).await?;
    let addr = first.listener_addr("http").await?;
    for _ in 0..5 {
        let r = client::get(addr, "/").await?;
        anyhow::ensure!(r.status == 200, "answered {}", r.status);
    }
    let before = stats_text(&first).await?;
    assert_eq!(
        stat(&before, "cluster.backend.upstream_rq_200"),
        Some(5),
        "{before}"
    );
    first.signal(stop)?;
    first.wait_exit(EXIT_TIMEOUT).await?;

    let second_config = svc.write_config("second", &other_config())?;
    let second = svc.start(0, &second_config, &[]).await?;
    let after = stats_text(&second).await?;
    assert!(
        !after.contains("cluster.backend."),
        "stat names of the earlier run's config survived:\n{after}"
    );
    let rq = stat(&after, "http.ingress.downstream_rq_2xx").unwrap_or(0);
    assert_eq!(rq, 0, "counters continued from the earlier run:\n{after}");
    Ok(())
}

#[tokio::test]
async fn start_after_a_stopped_run_begins_at_zero() -> anyhow::Result<()> {
    earlier_run_then_fresh_start(Signal::SIGTERM).await
}

#[tokio::test]
async fn start_after_a_crashed_run_begins_at_zero() -> anyhow::Result<()> {
    earlier_run_then_fresh_start(Signal::SIGKILL).await
}

#[tokio::test]
async fn sockets_of_exited_processes_are_removed() -> anyhow::Result<()> {
    if is_envoy() {
        return Ok(()); // Envoy's hot-restart sockets are abstract: nothing on disk.
    }
    let svc = Service::new()?;
    std::fs::create_dir_all(svc.run_dir())?;
    // A private socket of a generation that died before going live (pid_max is at most
    // 2^22, so this pid cannot exist) and the public socket of another, dead service.
    let dead_private = svc
        .run_dir()
        .join(format!("baton-{}.99999999.sock", svc.base_id()));
    drop(std::os::unix::net::UnixListener::bind(&dead_private)?);
    let dead_public = svc
        .run_dir()
        .join(format!("baton-{}.sock", svc.base_id() + 1));
    drop(std::os::unix::net::UnixListener::bind(&dead_public)?);
    let config = svc.write_config("c", &other_config())?;
    let live = svc.start(0, &config, &[]).await?;
    assert!(!dead_private.exists(), "stale private socket kept");
    assert!(!dead_public.exists(), "stale public socket kept");
    assert!(
        svc.socket_path().exists(),
        "the live generation's socket is missing"
    );
    drop(live);
    Ok(())
}
