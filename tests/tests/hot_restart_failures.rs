//! A failed child never hurts the live generation: bad config, a child that cannot bind a
//! listener after saying hello, a child killed mid-handshake, a child that never becomes
//! ready (and a second child refused meanwhile), and a child that fails after the parent
//! released its admin port. In every case the parent keeps serving under load with no
//! failed request; the admin port never refuses a connection (a child answers it while
//! it initialises and hands it back when it fails); the child exits non-zero, and then a good child takes
//! over normally (unlike Envoy 1.40, which refuses every later epoch).

mod hot_restart_support;

use std::path::Path;
use std::time::Duration;

use baton_tests::config::{
    free_port, hcm_of, merge, simple_proxy, socket_address, FILE_ACCESS_LOG_TYPE,
};
use baton_tests::EchoUpstream;
use hot_restart_support::load::assert_clean;
use hot_restart_support::{
    exited_cleanly, make_fifo, AdminProbe, ClientKind, Generation, Load, Service, EXIT_TIMEOUT,
};
use nix::sys::signal::Signal;
use serde_json::json;

const ALL_KINDS: [ClientKind; 3] = [
    ClientKind::Http1NewConnection,
    ClientKind::Http1KeepAlive,
    ClientKind::Http2,
];
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(20);
const LOG_TIMEOUT: Duration = Duration::from_secs(20);
/// What the parent logs when a child failed before taking over.
const RESTART_FAILED: &str = "hot restart failed; this generation keeps serving";

/// Epoch 0 serving `upstream`, with load and an admin probe running against it.
struct Running {
    svc: Service,
    good_config: std::path::PathBuf,
    gen0: Generation,
    load: Load,
    probe: AdminProbe,
}

async fn running(upstream: &EchoUpstream) -> anyhow::Result<Running> {
    let svc = Service::new()?;
    let good_config = svc.write_config("good", &simple_proxy(&[upstream.addr()]))?;
    let gen0 = svc.start(0, &good_config, &[]).await?;
    let load = Load::start(gen0.listener_addr("http").await?, &ALL_KINDS, 1);
    assert!(
        load.wait_served(30, PROGRESS_TIMEOUT).await,
        "no progress on epoch 0"
    );
    // A child takes the admin port while it initialises, answering /ready with 503,
    // and gives it back when it fails: the port never refuses a connection.
    let probe = AdminProbe::start(gen0.admin(), true);
    Ok(Running {
        svc,
        good_config,
        gen0,
        load,
        probe,
    })
}

impl Running {
    /// Load and admin went on untouched; then a good child takes over and epoch 0 exits 0.
    async fn finish_then_good_child(self, epoch: u32) -> anyhow::Result<()> {
        let Running {
            svc,
            good_config,
            mut gen0,
            load,
            probe,
        } = self;
        assert!(
            load.wait_served(30, PROGRESS_TIMEOUT).await,
            "epoch 0 stopped serving after the failed child"
        );
        let reports = load.finish().await;
        assert_clean(&reports);
        let (admin_ok, admin_bad) = probe.finish().await?;
        assert!(
            admin_ok > 0 && admin_bad.is_empty(),
            "admin of epoch 0: {admin_ok} ok, failures {admin_bad:?}"
        );
        let info = gen0.server_info().await?;
        assert_eq!(info["state"], "LIVE");
        assert_eq!(
            gen0.admin_get("/ready").await?.status,
            200,
            "epoch 0 has its admin back"
        );

        let gen1 = svc.start(epoch, &good_config, &[]).await?;
        let status = gen0.wait_exit(EXIT_TIMEOUT).await?;
        assert!(
            exited_cleanly(status),
            "epoch 0 exit after the good child: {status}"
        );
        let resp = baton_tests::get(gen1.listener_addr("http").await?, "/after").await?;
        assert_eq!(resp.status, 200);
        assert_eq!(gen1.hot_restart_generation().await?, 2);
        Ok(())
    }
}

fn with_fifo_access_log(mut cfg: serde_json::Value, fifo: &Path) -> serde_json::Value {
    hcm_of(&mut cfg, 0)["access_log"] = json!([{
        "name": "envoy.access_loggers.file",
        "typed_config": { "@type": FILE_ACCESS_LOG_TYPE, "path": fifo.display().to_string() },
    }]);
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_child_exits_and_parent_serves_on() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let run = running(&upstream).await?;
    let bad = run.svc.dir().join("bad.yaml");
    std::fs::write(
        &bad,
        "static_resources: { clusters: [ { name: x, hosts: [] } ] }\n",
    )?;
    let mut child = run.svc.spawn(1, &bad, &[])?;
    let status = child.wait_exit(EXIT_TIMEOUT).await?;
    assert!(!status.success(), "bad config must exit non-zero: {status}");
    assert!(
        child.log().contains("hosts"),
        "the error names the bad field:\n{}",
        child.log()
    );
    run.finish_then_good_child(1).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_failing_after_hello_leaves_parent_serving() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let run = running(&upstream).await?;
    // Valid config, but a listener address no interface has: the child says hello, asks
    // for the socket, binds fresh and fails.
    let mut cfg = simple_proxy(&[upstream.addr()]);
    if let Some(address) = cfg.pointer_mut("/static_resources/listeners/0/address") {
        *address = socket_address("192.0.2.1", 0);
    }
    let path = run.svc.write_config("unbindable", &cfg)?;
    let mut child = run.svc.spawn(1, &path, &[])?;
    let status = child.wait_exit(EXIT_TIMEOUT).await?;
    assert!(!status.success(), "child must exit non-zero: {status}");
    run.gen0.wait_log(RESTART_FAILED, LOG_TIMEOUT).await?;
    run.finish_then_good_child(1).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_killed_mid_handshake_leaves_parent_serving() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let run = running(&upstream).await?;
    let fifo = run.svc.dir().join("access.fifo");
    make_fifo(&fifo)?;
    let path = run.svc.write_config(
        "frozen",
        &with_fifo_access_log(simple_proxy(&[upstream.addr()]), &fifo),
    )?;
    let mut child = run.svc.spawn(1, &path, &[])?;
    // The child has the listen socket (same kernel socket as ours) and hangs in init.
    run.gen0
        .wait_log("passed listen socket", LOG_TIMEOUT)
        .await?;
    assert!(
        run.load.wait_served(30, PROGRESS_TIMEOUT).await,
        "epoch 0 stopped serving while the child hangs"
    );
    // The child serves the shared admin port while it initialises; an admin request it
    // has accepted dies with it. Kill it between two probes: every probe after the kill
    // must be answered (queued on the shared socket until the parent takes admin back).
    {
        let _no_probe_in_flight = run.probe.hold().await;
        child.signal(Signal::SIGKILL)?;
        let status = child.wait_exit(EXIT_TIMEOUT).await?;
        assert!(!status.success());
    }
    run.gen0.wait_log(RESTART_FAILED, LOG_TIMEOUT).await?;
    run.finish_then_good_child(1).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_never_ready_blocks_no_one_and_a_second_child_is_refused() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let run = running(&upstream).await?;
    let fifo = run.svc.dir().join("access.fifo");
    make_fifo(&fifo)?;
    let path = run.svc.write_config(
        "frozen",
        &with_fifo_access_log(simple_proxy(&[upstream.addr()]), &fifo),
    )?;
    let mut hung = run.svc.spawn(1, &path, &[])?;
    run.gen0
        .wait_log("passed listen socket", LOG_TIMEOUT)
        .await?;
    // While one restart is in progress, another child gets a clear error and exits non-zero.
    let mut second = run.svc.spawn(1, &run.good_config, &[])?;
    let status = second.wait_exit(EXIT_TIMEOUT).await?;
    assert!(!status.success(), "second child: {status}");
    assert!(
        second.log().contains("already in progress"),
        "second child log:\n{}",
        second.log()
    );
    assert!(run.load.wait_served(30, PROGRESS_TIMEOUT).await);
    assert!(
        hung.try_exit_status().is_none(),
        "the hung child is still initialising"
    );
    // Meanwhile the admin port answers for the child, as Envoy's child takes admin at
    // start: not ready, initialising, and epoch 1.
    let info = run.gen0.server_info().await?;
    assert_eq!(info["state"], "INITIALIZING", "{info}");
    assert_eq!(info["command_line_options"]["restart_epoch"], 1, "{info}");
    assert_eq!(run.gen0.admin_get("/ready").await?.status, 503);
    // Whoever supervises start-up gives up on it: SIGTERM before its workers accept ends
    // it (after the admin connections it accepted are answered), exit 0 as Envoy's.
    hung.signal(Signal::SIGTERM)?;
    let status = hung.wait_exit(EXIT_TIMEOUT).await?;
    assert!(exited_cleanly(status), "hung child: {status}");
    run.gen0.wait_log(RESTART_FAILED, LOG_TIMEOUT).await?;
    run.finish_then_good_child(1).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_failing_after_taking_admin_gives_it_back() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let svc = Service::new()?;
    let admin_port = free_port()?;
    let mut cfg = simple_proxy(&[upstream.addr()]);
    merge(
        &mut cfg,
        json!({ "admin": { "address": socket_address("127.0.0.1", admin_port) } }),
    );
    let good = svc.write_config("good", &cfg)?;
    let mut gen0 = svc.start(0, &good, &[]).await?;
    let load = Load::start(gen0.listener_addr("http").await?, &ALL_KINDS, 1);
    // The child wants another admin port, held by someone else: it asks the parent to
    // release admin, still cannot bind, and exits; the parent serves admin again.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0")?;
    let mut child_cfg = cfg.clone();
    merge(
        &mut child_cfg,
        json!({ "admin": { "address": socket_address("127.0.0.1", squatter.local_addr()?.port()) } }),
    );
    let child_path = svc.write_config("admin-taken", &child_cfg)?;
    let mut child = svc.spawn(1, &child_path, &[])?;
    let status = child.wait_exit(EXIT_TIMEOUT).await?;
    assert!(!status.success(), "child: {status}");
    gen0.wait_log(RESTART_FAILED, LOG_TIMEOUT).await?;
    let ready = baton_tests::eventually(LOG_TIMEOUT, || {
        let gen0 = &gen0;
        async move {
            Ok(gen0
                .admin_get("/ready")
                .await
                .ok()
                .filter(|r| r.status == 200))
        }
    })
    .await?;
    assert_eq!(ready.status, 200);
    assert_eq!(gen0.admin().port(), admin_port);
    assert!(load.wait_served(30, PROGRESS_TIMEOUT).await);
    assert_clean(&load.finish().await);
    drop(squatter);
    let gen1 = svc.start(1, &good, &[]).await?;
    assert_eq!(gen1.admin().port(), admin_port);
    let status = gen0.wait_exit(EXIT_TIMEOUT).await?;
    assert!(exited_cleanly(status));
    Ok(())
}
