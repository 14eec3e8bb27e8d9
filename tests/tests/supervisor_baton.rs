//! `baton-supervisor` driving the real `baton` (target/<profile>/baton) under load: reload
//! by SIGHUP and `ctl reload`, upgrade to another binary path, a bad config reload, SIGKILL
//! of the live generation with supervisor-held sockets, and a graceful SIGTERM. Requests
//! go through the proxy to an echo upstream; failures and refused connections are counted.

mod supervisor_support;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use baton_tests::config::{free_port, simple_proxy};
use baton_tests::{EchoUpstream, TempDir};
use nix::sys::signal::Signal;
use supervisor_support::*;

/// A supervisor over real baton, with the bootstrap (listener `http` on a fixed free port,
/// so every generation and the held socket agree on it) in a temp dir.
struct RealFixture {
    dir: TempDir,
    config_path: PathBuf,
    config: serde_json::Value,
    port: u16,
    _upstream: EchoUpstream,
}

impl RealFixture {
    async fn new() -> anyhow::Result<Self> {
        let upstream = EchoUpstream::start("a").await?;
        let dir = TempDir::new()?;
        let port = free_port()?;
        let mut config = simple_proxy(&[upstream.addr()]);
        if let Some(value) =
            config.pointer_mut("/static_resources/listeners/0/address/socket_address/port_value")
        {
            *value = serde_json::json!(port);
        }
        let config_path = dir.join("baton.json");
        std::fs::write(&config_path, serde_json::to_string_pretty(&config)?)?;
        Ok(Self {
            dir,
            config_path,
            config,
            port,
            _upstream: upstream,
        })
    }

    fn start(&self, flags: &[&str], binary: PathBuf) -> anyhow::Result<SupervisorProcess> {
        SupervisorProcess::start(
            &self.dir,
            SupervisorOptions {
                binary,
                flags: flags.iter().map(|s| s.to_string()).collect(),
                baton_args: [
                    "-c",
                    &self.config_path.display().to_string(),
                    "--concurrency",
                    "2",
                    "-l",
                    "info",
                    "--drain-time-s",
                    "1",
                    "--parent-shutdown-time-s",
                    "3",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
                env: Vec::new(),
                launcher: Vec::new(),
            },
        )
    }

    fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

fn assert_clean(counts: &LoadCounts) {
    assert_eq!(
        counts.refused.load(Ordering::Relaxed),
        0,
        "{}",
        counts.summary()
    );
    assert_eq!(
        counts.failed.load(Ordering::Relaxed),
        0,
        "{}",
        counts.summary()
    );
    assert!(
        counts.ok.load(Ordering::Relaxed) > 0,
        "{}",
        counts.summary()
    );
}

async fn more_ok(load: &Load, n: u64) -> anyhow::Result<()> {
    let before = load.counts.ok.load(Ordering::Relaxed);
    load.wait_ok(before + n).await
}

#[tokio::test]
async fn reload_under_load_by_sighup_and_ctl_fails_no_request() -> anyhow::Result<()> {
    let fx = RealFixture::new().await?;
    let mut sup = fx.start(&[], baton_binary())?;
    let (_, pid0) = sup.wait_live().await?;
    let load = Load::start_mixed(fx.addr(), 3, 2, 100_000);
    load.wait_ok(50).await?;

    sup.signal(Signal::SIGHUP)?;
    let (_, pid1) = sup.wait_live_epoch_at_least(1).await?;
    more_ok(&load, 50).await?;
    let (code, stdout, stderr) = sup.ctl(&["reload"])?;
    assert_eq!(code, 0, "{stdout} {stderr}\n{}", sup.log());
    sup.wait_live_epoch_at_least(2).await?;
    more_ok(&load, 50).await?;
    let counts = load.stop().await;
    eprintln!("reload under load: {}", counts.summary());
    assert_clean(&counts);
    // The old generations drain and exit by themselves.
    baton_tests::eventually(Duration::from_secs(30), || async move {
        Ok((process_gone(pid0) && process_gone(pid1)).then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn upgrade_to_another_binary_path_under_load_fails_no_request() -> anyhow::Result<()> {
    let fx = RealFixture::new().await?;
    let v2 = fx.dir.join("baton-v2");
    std::fs::copy(baton_binary(), &v2)?;
    let mut sup = fx.start(&[], baton_binary())?;
    sup.wait_live().await?;
    let load = Load::start_mixed(fx.addr(), 3, 2, 100_000);
    load.wait_ok(50).await?;
    let (code, stdout, stderr) = sup.ctl(&["upgrade", "--binary", &v2.display().to_string()])?;
    assert_eq!(code, 0, "{stdout} {stderr}\n{}", sup.log());
    let (epoch, _) = sup.wait_live_epoch_at_least(1).await?;
    more_ok(&load, 50).await?;
    let counts = load.stop().await;
    eprintln!("upgrade under load: {}", counts.summary());
    assert_clean(&counts);
    let status = sup.status()?;
    let live = status["generations"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|g| g["epoch"] == epoch)
        .cloned()
        .unwrap_or_default();
    assert_eq!(live["binary"], v2.display().to_string(), "{status}");
    let (_, table, _) = sup.ctl(&["status"])?;
    assert!(table.contains("baton-v2"), "{table}");
    Ok(())
}

#[tokio::test]
async fn bad_config_reload_exits_nonzero_with_the_error_and_old_generation_serves(
) -> anyhow::Result<()> {
    let fx = RealFixture::new().await?;
    let mut sup = fx.start(&[], baton_binary())?;
    let (_, pid0) = sup.wait_live().await?;
    let load = Load::start_mixed(fx.addr(), 3, 2, 100_000);
    load.wait_ok(50).await?;

    let mut bad = fx.config.clone();
    if let Some(cluster) = bad.pointer_mut("/static_resources/clusters/0") {
        cluster["hosts"] = serde_json::json!([]);
    }
    std::fs::write(&fx.config_path, serde_json::to_string_pretty(&bad)?)?;
    let (code, stdout, stderr) = sup.ctl(&["reload"])?;
    assert_eq!(code, 1, "{stdout} {stderr}");
    assert!(
        stderr.contains("error initializing configuration"),
        "{stderr}\n{}",
        sup.log()
    );
    assert!(stderr.contains("hosts"), "{stderr}");
    more_ok(&load, 50).await?;
    let status = sup.status()?;
    assert_eq!(status["generations"][0]["pid"], pid0, "{status}");
    assert_eq!(status["generations"][0]["state"], "LIVE", "{status}");

    // Fixed config: the next reload works.
    std::fs::write(&fx.config_path, serde_json::to_string_pretty(&fx.config)?)?;
    let (code, stdout, stderr) = sup.ctl(&["reload"])?;
    assert_eq!(code, 0, "{stdout} {stderr}\n{}", sup.log());
    more_ok(&load, 50).await?;
    let counts = load.stop().await;
    eprintln!("bad reload under load: {}", counts.summary());
    assert_clean(&counts);
    Ok(())
}

#[tokio::test]
async fn sigkill_of_live_baton_with_held_sockets_refuses_no_connection() -> anyhow::Result<()> {
    let fx = RealFixture::new().await?;
    let mut sup = fx.start(
        &["--hold-sockets", "--respawn-backoff-ms", "100"],
        baton_binary(),
    )?;
    let (_, pid0) = sup.wait_live().await?;
    let load = Load::start(fx.addr(), 4, 100_000);
    load.wait_ok(50).await?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid0)?),
        Signal::SIGKILL,
    )?;
    sup.wait_live_epoch_at_least(1).await?;
    more_ok(&load, 50).await?;
    let counts = load.stop().await;
    // In-flight requests on the killed process may fail; they are reported, not asserted.
    eprintln!(
        "SIGKILL with held sockets: {} (failures are requests in flight on the killed process)",
        counts.summary()
    );
    assert_eq!(
        counts.refused.load(Ordering::Relaxed),
        0,
        "{}",
        counts.summary()
    );
    assert_eq!(sup.status()?["restarts"], 1);
    Ok(())
}

#[tokio::test]
async fn sigterm_drains_baton_and_exits_zero_without_orphans() -> anyhow::Result<()> {
    let fx = RealFixture::new().await?;
    let notify = NotifyReceiver::bind(&fx.dir)?;
    let mut sup = SupervisorProcess::start(
        &fx.dir,
        SupervisorOptions {
            binary: baton_binary(),
            flags: vec!["--hold-sockets".into()],
            baton_args: vec![
                "-c".into(),
                fx.config_path.display().to_string(),
                "--drain-time-s".into(),
                "1".into(),
            ],
            env: vec![("NOTIFY_SOCKET".into(), notify.path.display().to_string())],
            launcher: Vec::new(),
        },
    )?;
    let ready = notify.next_state().await?;
    assert!(
        ready.starts_with(&format!("READY=1\nMAINPID={}", sup.pid)),
        "{ready}"
    );
    let (_, pid0) = sup.wait_live().await?;
    assert_eq!(baton_tests::get(fx.addr(), "/").await?.status, 200);
    sup.signal(Signal::SIGTERM)?;
    assert!(notify.next_state().await?.starts_with("STOPPING=1"));
    let status = sup.wait_exit(Duration::from_secs(30)).await?;
    assert_eq!(status.code(), Some(0), "{}", sup.log());
    assert!(process_gone(pid0), "baton pid {pid0} left behind");
    Ok(())
}

#[tokio::test]
async fn reload_under_load_with_supervisor_held_sockets_fails_no_request() -> anyhow::Result<()> {
    let fx = RealFixture::new().await?;
    let mut sup = fx.start(&["--hold-sockets"], baton_binary())?;
    sup.wait_live().await?;
    let load = Load::start_mixed(fx.addr(), 3, 2, 100_000);
    load.wait_ok(50).await?;
    let (code, stdout, stderr) = sup.ctl(&["reload"])?;
    assert_eq!(code, 0, "{stdout} {stderr}\n{}", sup.log());
    sup.wait_live_epoch_at_least(1).await?;
    more_ok(&load, 50).await?;
    let counts = load.stop().await;
    eprintln!("reload with held sockets under load: {}", counts.summary());
    assert_clean(&counts);
    Ok(())
}

/// `name: value` from the text `/stats` of the generation whose admin address is in
/// `admin_path`, with its `server.hot_restart_epoch`.
async fn stat_of_live(admin_path: &std::path::Path, name: &str) -> anyhow::Result<(u64, u64)> {
    let admin: std::net::SocketAddr = std::fs::read_to_string(admin_path)?.trim().parse()?;
    let text = baton_tests::get(admin, "/stats").await?.body_text();
    let value = |n: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(n)?
                .strip_prefix(": ")?
                .trim()
                .parse::<u64>()
                .ok()
        })
    };
    Ok((
        value("server.hot_restart_epoch").unwrap_or(0),
        value(name).unwrap_or(0),
    ))
}

#[tokio::test]
async fn counters_continue_when_the_supervisor_respawns_a_killed_generation() -> anyhow::Result<()>
{
    let fx = RealFixture::new().await?;
    let admin_path = fx.dir.join("admin-address");
    let mut sup = SupervisorProcess::start(
        &fx.dir,
        SupervisorOptions {
            binary: baton_binary(),
            flags: ["--hold-sockets", "--respawn-backoff-ms", "100"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            baton_args: [
                "-c",
                &fx.config_path.display().to_string(),
                "--concurrency",
                "2",
                "--admin-address-path",
                &admin_path.display().to_string(),
                "--drain-time-s",
                "1",
                "--parent-shutdown-time-s",
                "3",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            env: Vec::new(),
            launcher: Vec::new(),
        },
    )?;
    let (_, pid0) = sup.wait_live().await?;
    for _ in 0..5 {
        assert_eq!(baton_tests::get(fx.addr(), "/").await?.status, 200);
    }
    let name = "cluster.backend.upstream_rq_200";
    let (_, before) = stat_of_live(&admin_path, name).await?;
    assert!(before >= 5, "{name} = {before}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid0)?),
        Signal::SIGKILL,
    )?;
    sup.wait_live_epoch_at_least(1).await?;
    // The respawned generation has no live parent, but the supervisor owns the region.
    let after = baton_tests::eventually(Duration::from_secs(20), || {
        let admin_path = admin_path.clone();
        async move {
            let (epoch, value) = stat_of_live(&admin_path, name).await?;
            Ok((epoch >= 1).then_some(value))
        }
    })
    .await?;
    assert!(
        after >= before,
        "{name} went from {before} to {after} across a respawn"
    );
    Ok(())
}

/// Log rotation under the supervisor: SIGUSR1 to it reaches the serving generation,
/// which reopens its access log file; the supervisor lives on.
#[tokio::test]
async fn sigusr1_to_the_supervisor_reopens_the_generations_access_logs() -> anyhow::Result<()> {
    use baton_tests::config::{hcm_of, FILE_ACCESS_LOG_TYPE};
    let mut fx = RealFixture::new().await?;
    let log = fx.dir.join("access.log");
    hcm_of(&mut fx.config, 0)["access_log"] = serde_json::json!([{
        "name": "envoy.access_loggers.file",
        "typed_config": { "@type": FILE_ACCESS_LOG_TYPE, "path": log.display().to_string() },
    }]);
    std::fs::write(&fx.config_path, serde_json::to_string_pretty(&fx.config)?)?;
    let mut sup = fx.start(&[], baton_binary())?;
    sup.wait_live().await?;
    let logged = |path: &'static str| {
        let log = log.clone();
        async move {
            baton_tests::eventually(Duration::from_secs(10), || async {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                Ok(text.contains(path).then_some(()))
            })
            .await
        }
    };
    assert_eq!(baton_tests::get(fx.addr(), "/before").await?.status, 200);
    logged("/before").await?;
    std::fs::rename(&log, fx.dir.join("access.log.1"))?;
    sup.signal(Signal::SIGUSR1)?;
    baton_tests::eventually(Duration::from_secs(10), || async {
        Ok(log.exists().then_some(()))
    })
    .await?;
    assert_eq!(baton_tests::get(fx.addr(), "/after").await?.status, 200);
    logged("/after").await?;
    let rotated = std::fs::read_to_string(fx.dir.join("access.log.1"))?;
    assert!(
        rotated.contains("/before") && !rotated.contains("/after"),
        "{rotated}"
    );
    assert!(!process_gone(sup.pid), "{}", sup.log());
    Ok(())
}
