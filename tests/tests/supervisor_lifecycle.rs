//! `baton-supervisor` lifecycle with a stand-in `baton` that speaks the supervisor contract
//! exactly (sd_notify READY=1/STOPPING=1, LISTEN_FDS adoption, hand-over to the next
//! generation): sd_notify sequence to systemd, reload success/failure/timeout reporting,
//! upgrade checks, crash respawn with supervisor-held sockets, respawn limit, graceful stop
//! without orphans, output prefixes. Real processes and signals throughout.

mod supervisor_support;

use std::time::Duration;

use baton_tests::config::free_port;
use baton_tests::TempDir;
use nix::sys::signal::Signal;
use supervisor_support::*;

struct Fixture {
    dir: TempDir,
    fake: std::path::PathBuf,
    behaviour: std::path::PathBuf,
    bootstrap: std::path::PathBuf,
    port: u16,
}

impl Fixture {
    fn new() -> anyhow::Result<Self> {
        let dir = TempDir::new()?;
        let fake = write_fake_baton(&dir, "fake-baton")?;
        let behaviour = dir.join("behaviour");
        std::fs::write(&behaviour, "ok")?;
        let port = free_port()?;
        let bootstrap = write_direct_bootstrap(&dir, "bootstrap.json", port)?;
        Ok(Self {
            dir,
            fake,
            behaviour,
            bootstrap,
            port,
        })
    }

    fn behave(&self, behaviour: &str) -> anyhow::Result<()> {
        Ok(std::fs::write(&self.behaviour, behaviour)?)
    }

    fn options(&self, flags: &[&str]) -> SupervisorOptions {
        SupervisorOptions {
            binary: self.fake.clone(),
            flags: flags.iter().map(|s| s.to_string()).collect(),
            baton_args: vec!["-c".into(), self.bootstrap.display().to_string()],
            env: vec![(
                "FAKE_BATON_BEHAVIOUR".into(),
                self.behaviour.display().to_string(),
            )],
            launcher: Vec::new(),
        }
    }

    fn start(&self, flags: &[&str]) -> anyhow::Result<SupervisorProcess> {
        SupervisorProcess::start(&self.dir, self.options(flags))
    }

    fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

#[tokio::test]
async fn sd_notify_sequence_for_start_reload_and_stop() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let notify = NotifyReceiver::bind(&fx.dir)?;
    let mut opts = fx.options(&[]);
    opts.env
        .push(("NOTIFY_SOCKET".into(), notify.path.display().to_string()));
    let mut sup = SupervisorProcess::start(&fx.dir, opts)?;

    let ready = notify.next_state().await?;
    let lines: Vec<&str> = ready.lines().collect();
    assert_eq!(lines[0], "READY=1", "{ready}");
    assert_eq!(lines[1], format!("MAINPID={}", sup.pid), "{ready}");
    assert!(lines[2].starts_with("STATUS=generation 0 live"), "{ready}");

    sup.signal(Signal::SIGHUP)?;
    let reloading = notify.next_state().await?;
    let lines: Vec<&str> = reloading.lines().collect();
    assert_eq!(lines[0], "RELOADING=1", "{reloading}");
    let usec: u64 = lines[1]
        .strip_prefix("MONOTONIC_USEC=")
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading}"))
        .parse()?;
    assert!(usec > 0);
    let ready = notify.next_state().await?;
    assert!(
        ready.starts_with("READY=1\nSTATUS=generation 1 live"),
        "{ready}"
    );
    sup.wait_live_epoch_at_least(1).await?;

    sup.signal(Signal::SIGTERM)?;
    let stopping = notify.next_state().await?;
    assert_eq!(stopping, "STOPPING=1\nSTATUS=stopping");
    let status = sup.wait_exit(Duration::from_secs(30)).await?;
    assert_eq!(status.code(), Some(0), "{}", sup.log());
    Ok(())
}

#[tokio::test]
async fn ctl_reload_reports_live_generation_and_status_shows_it() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let mut sup = fx.start(&["--hold-sockets"])?;
    let (epoch, pid0) = sup.wait_live().await?;
    assert_eq!(epoch, 0);

    let (code, stdout, stderr) = sup.ctl(&["reload"])?;
    assert_eq!(code, 0, "{stdout} {stderr}");
    assert!(stdout.contains("generation 1 (pid"), "{stdout}");
    // The old generation may accept a little longer while it starts draining.
    let addr = fx.addr();
    baton_tests::eventually(Duration::from_secs(10), || async move {
        let resp = baton_tests::get(addr, "/").await?;
        Ok(resp.body_text().starts_with("epoch=1 ").then_some(()))
    })
    .await?;

    // The old generation drains and exits; the supervisor reaps it.
    baton_tests::eventually(Duration::from_secs(20), || async {
        Ok(process_gone(pid0).then_some(()))
    })
    .await?;
    let status = sup.status()?;
    let generations = status["generations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(generations.len(), 1, "{status}");
    assert_eq!(generations[0]["state"], "LIVE");
    assert_eq!(generations[0]["epoch"], 1);
    assert_eq!(status["last_reload"]["ok"], true, "{status}");

    let (code, table, _) = sup.ctl(&["status"])?;
    assert_eq!(code, 0);
    assert!(table.contains("LIVE"), "{table}");
    assert!(table.contains("last reload: OK"), "{table}");
    Ok(())
}

#[tokio::test]
async fn bad_reload_reports_the_child_error_and_old_generation_keeps_serving() -> anyhow::Result<()>
{
    let fx = Fixture::new()?;
    let mut sup = fx.start(&["--hold-sockets"])?;
    let (_, pid0) = sup.wait_live().await?;
    let load = Load::start(fx.addr(), 4, 100_000);
    load.wait_ok(20).await?;

    fx.behave("fail")?;
    let (code, stdout, stderr) = sup.ctl(&["reload"])?;
    assert_eq!(code, 1, "{stdout} {stderr}");
    assert!(
        stderr.contains("error initializing configuration") && stderr.contains("fake failure"),
        "{stderr}"
    );
    let status = sup.status()?;
    assert_eq!(status["last_reload"]["ok"], false, "{status}");
    assert_eq!(status["generations"][0]["pid"], pid0, "{status}");
    assert_eq!(status["generations"][0]["state"], "LIVE", "{status}");

    // The next good reload works.
    fx.behave("ok")?;
    let (code, stdout, stderr) = sup.ctl(&["reload"])?;
    assert_eq!(code, 0, "{stdout} {stderr}");
    let ok_before = load.counts.ok.load(std::sync::atomic::Ordering::Relaxed);
    load.wait_ok(ok_before + 20).await?;
    let counts = load.stop().await;
    assert_eq!(
        counts.refused.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "{}",
        counts.summary()
    );
    assert_eq!(
        counts.failed.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "{}",
        counts.summary()
    );
    Ok(())
}

/// A reload whose generation behaves as `behaviour` and never becomes ready (ready
/// timeout 1 s) fails; then, within `polls` x 50 ms, only generation 0 is left, which
/// serves on. Returns the supervisor's log.
async fn reload_times_out(behaviour: &str, polls: u32) -> anyhow::Result<String> {
    let fx = Fixture::new()?;
    let mut sup = fx.start(&["--hold-sockets", "--ready-timeout-s", "1"])?;
    let (_, pid0) = sup.wait_live().await?;
    fx.behave(behaviour)?;
    let (code, _, stderr) = sup.ctl(&["reload"])?;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("did not report READY=1"), "{stderr}");
    fx.behave("ok")?;
    let resp = baton_tests::get(fx.addr(), "/").await?;
    assert_eq!(resp.body_text(), format!("epoch=0 pid={pid0}"));
    // The late generation is gone (stopped and reaped): only generation 0 is left.
    let mut remaining = usize::MAX;
    for _ in 0..polls {
        remaining = sup.status()?["generations"].as_array().map_or(0, Vec::len);
        if remaining == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(remaining, 1, "{}", sup.log());
    Ok(sup.log())
}

#[tokio::test]
async fn reload_that_never_becomes_ready_times_out_and_is_killed() -> anyhow::Result<()> {
    reload_times_out("hang", 200).await?;
    Ok(())
}

#[tokio::test]
async fn reload_timed_out_that_ignores_sigterm_is_killed() -> anyhow::Result<()> {
    // SIGTERM first (a real baton closes the admin port it may hold gently); this one
    // ignores it, so SIGKILL follows after the grace and it is reaped.
    let log = reload_times_out("stuck", 300).await?;
    assert!(log.contains("still running after SIGTERM"), "{log}");
    Ok(())
}

#[tokio::test]
async fn upgrade_checks_the_new_binary_then_switches_to_it() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let mut sup = fx.start(&["--hold-sockets"])?;
    sup.wait_live().await?;

    let (code, _, stderr) = sup.ctl(&["upgrade", "--binary", "/bin/false"])?;
    assert_eq!(code, 1);
    assert!(stderr.contains("--version failed"), "{stderr}");
    let bad = write_fake_baton(&fx.dir, "fake-baton-badvalidate")?;
    let (code, _, stderr) = sup.ctl(&["upgrade", "--binary", &bad.display().to_string()])?;
    assert_eq!(code, 1);
    assert!(stderr.contains("fake validation failure"), "{stderr}");

    let v2 = write_fake_baton(&fx.dir, "fake-baton-v2")?;
    let load = Load::start(fx.addr(), 4, 100_000);
    load.wait_ok(20).await?;
    let (code, stdout, stderr) = sup.ctl(&["upgrade", "--binary", &v2.display().to_string()])?;
    assert_eq!(code, 0, "{stdout} {stderr}");
    let (epoch, _) = sup.wait_live_epoch_at_least(1).await?;
    let status = sup.status()?;
    let live = status["generations"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|g| g["epoch"] == epoch)
        .cloned()
        .unwrap_or_default();
    assert_eq!(live["binary"], v2.display().to_string(), "{status}");
    // Later reloads keep using the upgraded binary.
    let (code, _, stderr) = sup.ctl(&["reload"])?;
    assert_eq!(code, 0, "{stderr}");
    let status = sup.status()?;
    assert!(
        status["generations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|g| g["state"] == "LIVE")
            .all(|g| g["binary"] == v2.display().to_string()),
        "{status}"
    );
    let ok_before = load.counts.ok.load(std::sync::atomic::Ordering::Relaxed);
    load.wait_ok(ok_before + 20).await?;
    let counts = load.stop().await;
    assert_eq!(
        counts.refused.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "{}",
        counts.summary()
    );
    assert_eq!(
        counts.failed.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "{}",
        counts.summary()
    );
    Ok(())
}

#[tokio::test]
async fn sigkill_of_live_generation_refuses_no_connection_with_held_sockets() -> anyhow::Result<()>
{
    let fx = Fixture::new()?;
    let mut sup = fx.start(&["--hold-sockets", "--respawn-backoff-ms", "200"])?;
    let (_, pid0) = sup.wait_live().await?;
    let load = Load::start(fx.addr(), 4, 100_000);
    load.wait_ok(20).await?;

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid0)?),
        Signal::SIGKILL,
    )?;
    let (epoch, pid1) = sup.wait_live_epoch_at_least(1).await?;
    assert_ne!(pid1, pid0);
    let ok_before = load.counts.ok.load(std::sync::atomic::Ordering::Relaxed);
    load.wait_ok(ok_before + 20).await?;
    let counts = load.stop().await;
    // Requests in flight on the killed process may fail; none may be refused.
    eprintln!("crash respawn under load: {}", counts.summary());
    assert_eq!(
        counts.refused.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "{}",
        counts.summary()
    );
    let status = sup.status()?;
    assert_eq!(status["restarts"], 1, "{status}");
    assert!(sup.log().contains("exited unexpectedly"), "{}", sup.log());
    let resp = baton_tests::get(fx.addr(), "/").await?;
    assert!(resp.body_text().starts_with(&format!("epoch={epoch} ")));
    Ok(())
}

#[tokio::test]
async fn crash_loop_stops_at_the_respawn_limit_with_exit_code_5() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    fx.behave("crash")?;
    let mut sup = fx.start(&[
        "--hold-sockets",
        "--respawn-limit",
        "2",
        "--respawn-backoff-ms",
        "20",
    ])?;
    let status = sup.wait_exit(Duration::from_secs(30)).await?;
    assert_eq!(status.code(), Some(5), "{}", sup.log());
    assert!(
        sup.log().contains("too many consecutive crashes"),
        "{}",
        sup.log()
    );
    Ok(())
}

#[tokio::test]
async fn generation_zero_failure_exits_4_with_its_error() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    fx.behave("fail")?;
    let mut sup = fx.start(&[])?;
    let status = sup.wait_exit(Duration::from_secs(30)).await?;
    assert_eq!(status.code(), Some(4), "{}", sup.log());
    assert!(sup.log().contains("fake failure"), "{}", sup.log());
    Ok(())
}

#[tokio::test]
async fn sigterm_drains_exits_zero_and_leaves_no_orphans() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let mut sup = fx.start(&["--hold-sockets"])?;
    let (_, pid0) = sup.wait_live().await?;
    sup.ctl(&["reload"])?;
    let (_, pid1) = sup.wait_live_epoch_at_least(1).await?;
    // Output is forwarded line by line with the generation prefix.
    sup.wait_log(&format!("[gen 1 pid {pid1}] fake baton epoch 1 live"))
        .await?;
    sup.signal(Signal::SIGTERM)?;
    let status = sup.wait_exit(Duration::from_secs(30)).await?;
    assert_eq!(status.code(), Some(0), "{}", sup.log());
    for pid in [pid0, pid1] {
        assert!(process_gone(pid), "generation pid {pid} still exists");
    }
    assert!(!sup.control_socket().exists(), "control socket removed");
    Ok(())
}

#[tokio::test]
async fn ctl_stop_answers_then_supervisor_exits_zero() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let mut sup = fx.start(&[])?;
    let (_, pid0) = sup.wait_live().await?;
    let (code, stdout, stderr) = sup.ctl(&["stop"])?;
    assert_eq!(code, 0, "{stdout} {stderr}");
    let status = sup.wait_exit(Duration::from_secs(30)).await?;
    assert_eq!(status.code(), Some(0));
    assert!(process_gone(pid0));
    // Nobody listens now: ctl says "unreachable" with exit code 3.
    let (code, _, stderr) = sup.ctl(&["status"])?;
    assert_eq!(code, 3, "{stderr}");
    Ok(())
}

#[tokio::test]
async fn supervisor_sigkill_takes_its_generations_down() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let mut sup = fx.start(&[])?;
    let (_, pid0) = sup.wait_live().await?;
    sup.signal(Signal::SIGKILL)?;
    sup.wait_exit(Duration::from_secs(10)).await?;
    // PR_SET_PDEATHSIG: the generation gets SIGTERM and exits.
    baton_tests::eventually(Duration::from_secs(20), || async move {
        Ok(process_gone(pid0).then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn socket_activation_names_the_fd_after_the_bootstrap_listener() -> anyhow::Result<()> {
    let Some(activate) = which("systemd-socket-activate") else {
        eprintln!(
            "skipped: systemd-socket-activate not installed (run systemd/install-test-deps.sh)"
        );
        return Ok(());
    };
    let fx = Fixture::new()?;
    let mut opts = fx.options(&[]);
    opts.launcher = vec![
        activate,
        "-l".into(),
        format!("127.0.0.1:{}", fx.port),
        "--fdname=web".into(),
        // Pass our environment (the behaviour file) on to the supervisor.
        "-E".into(),
        "FAKE_BATON_BEHAVIOUR".into(),
        "-E".into(),
        "PATH".into(),
    ];
    let mut sup = SupervisorProcess::start(&fx.dir, opts)?;
    // systemd-socket-activate starts the supervisor on the first connection; that
    // connection waits in the backlog and is answered by generation 0.
    let addr = fx.addr();
    let resp = baton_tests::eventually(Duration::from_secs(20), || async move {
        Ok(Some(baton_tests::get(addr, "/").await?))
    })
    .await?;
    assert!(
        resp.body_text().starts_with("epoch=0 "),
        "{}",
        resp.body_text()
    );
    sup.wait_live().await?;
    let listeners = fake_listeners(&sup.runtime_dir, 0)?;
    assert_eq!(listeners, vec![("http".to_owned(), addr)]);
    // The same socket goes to the next generation.
    let (code, _, stderr) = sup.ctl(&["reload"])?;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        fake_listeners(&sup.runtime_dir, 1)?,
        vec![("http".to_owned(), addr)]
    );
    Ok(())
}

fn which(program: &str) -> Option<String> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
            .map(|p| p.display().to_string())
    })
}

#[tokio::test]
async fn watchdog_pings_when_systemd_asks_for_them() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let notify = NotifyReceiver::bind(&fx.dir)?;
    let mut opts = fx.options(&[]);
    opts.env.extend([
        ("NOTIFY_SOCKET".into(), notify.path.display().to_string()),
        ("WATCHDOG_USEC".into(), "200000".into()),
    ]);
    let _sup = SupervisorProcess::start(&fx.dir, opts)?;
    let mut pings = 0;
    for _ in 0..100 {
        if notify.next_state().await? == "WATCHDOG=1" {
            pings += 1;
            if pings == 2 {
                break;
            }
        }
    }
    assert_eq!(pings, 2);
    Ok(())
}
