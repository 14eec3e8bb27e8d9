//! The hot-restart socket and protocol: version mismatch is an explicit error on both
//! sides, a peer with another uid cannot connect, `--restart-epoch` without a parent starts
//! cleanly, a stale socket file left by a killed generation is replaced, and a third
//! generation makes the draining first one terminate.

mod hot_restart_support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use baton_proto::pb::baton::hot_restart::v1 as pb;
use baton_tests::config::{bootstrap, listener, simple_proxy, static_cluster, tcp_proxy_filter};
use baton_tests::{EchoUpstream, RawHttp1, TcpServer};
use hot_restart_support::protocol::{hello, Peer, PROTOCOL_VERSION};
use hot_restart_support::{exited_cleanly, Service, EXIT_TIMEOUT};
use nix::sys::signal::Signal;
use prost::Message;

const LOG_TIMEOUT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn child_with_another_protocol_version_gets_an_explicit_answer() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let svc = Service::new()?;
    let config = svc.write_config("config", &simple_proxy(&[upstream.addr()]))?;
    let mut gen0 = svc.start(0, &config, &[]).await?;
    let addr = gen0.listener_addr("http").await?;

    let mut fake = Peer::connect(&svc.socket_path()).await?;
    fake.send(&hello(PROTOCOL_VERSION + 98, 1)).await?;
    let reply: pb::Reply = fake
        .recv()
        .await?
        .expect("a hello reply naming the parent's versions");
    let Some(pb::reply::Kind::Hello(h)) = reply.kind else {
        panic!("expected a hello reply, got {reply:?}");
    };
    assert_eq!(h.protocol_version, PROTOCOL_VERSION);
    assert_eq!(h.parent_pid, gen0.pid());
    assert_eq!(h.parent_state, "LIVE");
    // The parent ends the session instead of going on with an incompatible child.
    assert!(
        fake.recv::<pb::Reply>().await?.is_none(),
        "parent must close after a mismatch"
    );
    gen0.wait_log("version mismatch", LOG_TIMEOUT).await?;
    assert_eq!(baton_tests::get(addr, "/still").await?.status, 200);
    assert_eq!(gen0.admin_get("/ready").await?.status, 200);

    // A good child still takes over afterwards.
    let gen1 = svc.start(1, &config, &[]).await?;
    assert!(exited_cleanly(gen0.wait_exit(EXIT_TIMEOUT).await?));
    assert_eq!(
        baton_tests::get(gen1.listener_addr("http").await?, "/")
            .await?
            .status,
        200
    );
    Ok(())
}

/// A fake live generation on the service's socket that answers one child's hello with
/// protocol 7 (incompatible), claiming `parent_pid`; resolves to whatever the child sends
/// next (`None` when it hangs up).
fn fake_incompatible_parent(
    svc: &Service,
    parent_pid: u32,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<Option<pb::Request>>>> {
    let listener = tokio::net::UnixListener::bind(svc.socket_path())?;
    Ok(tokio::spawn(async move {
        let (stream, _) = listener.accept().await?;
        let mut peer = Peer::from_stream(stream);
        let _hello: Option<pb::Request> = peer.recv().await?;
        let reply = pb::Reply {
            kind: Some(pb::reply::Kind::Hello(pb::HelloReply {
                protocol_version: 7,
                stats_layout_version: 1,
                parent_epoch: 0,
                parent_pid,
                parent_state: "LIVE".into(),
                parent_version: "from the future".into(),
                features: Vec::new(),
            })),
        };
        peer.send(&reply).await?;
        peer.recv().await
    }))
}

#[tokio::test]
async fn cold_restart_fallback_stops_an_incompatible_parent_and_starts_fresh() -> anyhow::Result<()>
{
    let svc = Service::new()?;
    std::fs::create_dir_all(svc.run_dir())?;
    std::fs::set_permissions(svc.run_dir(), std::fs::Permissions::from_mode(0o700))?;
    // The "old generation": a process the fallback must stop, reaped by this test.
    let mut old = tokio::process::Command::new("sleep")
        .arg("60")
        .kill_on_drop(true)
        .spawn()?;
    let old_pid = old
        .id()
        .ok_or_else(|| anyhow::anyhow!("sleep has no pid"))?;
    let reaper = tokio::spawn(async move { old.wait().await });
    // Its hot-restart socket speaks protocol 7.
    let _parent_task = fake_incompatible_parent(&svc, old_pid)?;
    let config = svc.write_config("config", &simple_proxy(&[]))?;
    let mut child = svc.spawn(
        1,
        &config,
        &["--hot-restart-version-mismatch", "cold-restart"],
    )?;
    child.wait_live().await?;
    let old_status = tokio::time::timeout(EXIT_TIMEOUT, reaper).await???;
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&old_status),
        Some(libc::SIGTERM),
        "the old generation was asked to stop: {old_status}"
    );
    assert!(child.log().contains("cold-restart"), "{}", child.log());
    Ok(())
}

#[tokio::test]
async fn parent_with_another_protocol_version_makes_the_child_exit() -> anyhow::Result<()> {
    let svc = Service::new()?;
    std::fs::create_dir_all(svc.run_dir())?;
    std::fs::set_permissions(svc.run_dir(), std::fs::Permissions::from_mode(0o700))?;
    // A fake live generation that speaks protocol 7.
    let parent_task = fake_incompatible_parent(&svc, 1)?;
    let config = svc.write_config("config", &simple_proxy(&[]))?;
    let mut child = svc.spawn(1, &config, &[])?;
    let status = child.wait_exit(EXIT_TIMEOUT).await?;
    assert!(
        !status.success(),
        "child must refuse an incompatible parent: {status}"
    );
    assert!(
        child.log().contains("version mismatch"),
        "child log:\n{}",
        child.log()
    );
    let next = tokio::time::timeout(EXIT_TIMEOUT, parent_task).await???;
    assert!(next.is_none(), "child went on after the mismatch: {next:?}");
    Ok(())
}

/// Runs `python3 -c <script> <args>` as uid/gid 65534 (nobody) with `setpriv` or `runuser`;
/// None when neither is usable (not root, or no tool).
fn run_as_nobody(script: &str, args: &[&str]) -> Option<std::process::Output> {
    if !nix::unistd::getuid().is_root() {
        return None;
    }
    let python = ["/usr/bin/python3", "/bin/python3"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let mut attempts: Vec<std::process::Command> = Vec::new();
    let mut setpriv = std::process::Command::new("setpriv");
    setpriv
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            python,
            "-c",
            script,
        ])
        .args(args);
    attempts.push(setpriv);
    let mut runuser = std::process::Command::new("runuser");
    runuser
        .args(["-u", "nobody", "--", python, "-c", script])
        .args(args);
    attempts.push(runuser);
    attempts
        .into_iter()
        .find_map(|mut c| c.output().ok().filter(|o| o.status.code() != Some(127)))
}

const CONNECT_AND_HELLO: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("connect-error", e.errno); sys.exit(0)
try:
    s.sendall(bytes.fromhex(sys.argv[2]))
    data = s.recv(4096)
except OSError as e:
    print("io-error", e.errno); sys.exit(0)
print("reply-bytes", len(data))
"#;

#[tokio::test]
async fn another_uid_cannot_use_the_socket() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let svc = Service::new()?;
    let config = svc.write_config("config", &simple_proxy(&[upstream.addr()]))?;
    // Socket mode 666: only the uid check stands between another user and the parent.
    let gen0 = svc.start(0, &config, &["--socket-mode", "666"]).await?;
    let socket = svc.socket_path();
    let hello_hex: String = hello(PROTOCOL_VERSION, 1)
        .encode_length_delimited_to_vec()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let socket_arg = socket.display().to_string();

    // 1. The runtime directory is 0700: another user cannot even reach the socket.
    let mode = std::fs::metadata(svc.run_dir())?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "runtime dir mode");
    let Some(out) = run_as_nobody(CONNECT_AND_HELLO, &[&socket_arg, &hello_hex]) else {
        eprintln!("skipped: needs root and setpriv or runuser with /usr/bin/python3 to act as another uid");
        return Ok(());
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("connect-error 13"),
        "expected EACCES, got {text:?} / {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 2. Even with the directory opened up, SO_PEERCRED refuses the other uid.
    std::fs::set_permissions(svc.dir().path(), std::fs::Permissions::from_mode(0o711))?;
    std::fs::set_permissions(svc.run_dir(), std::fs::Permissions::from_mode(0o711))?;
    let out = run_as_nobody(CONNECT_AND_HELLO, &[&socket_arg, &hello_hex]).expect("ran before");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("reply-bytes 0") || text.starts_with("io-error"),
        "another uid got an answer: {text:?} / {}",
        String::from_utf8_lossy(&out.stderr)
    );
    gen0.wait_log("refusing hot-restart peer with another uid", LOG_TIMEOUT)
        .await?;
    // Our own uid, same script: answered (the check is on the uid, not on the script).
    let own = std::process::Command::new("/usr/bin/python3")
        .args(["-c", CONNECT_AND_HELLO, &socket_arg, &hello_hex])
        .output()?;
    let own_text = String::from_utf8_lossy(&own.stdout);
    assert!(
        own_text.starts_with("reply-bytes") && !own_text.starts_with("reply-bytes 0"),
        "own uid: {own_text:?}"
    );
    assert_eq!(gen0.admin_get("/ready").await?.status, 200);
    Ok(())
}

#[tokio::test]
async fn restart_epoch_without_a_parent_starts_cleanly() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let svc = Service::new()?;
    let config = svc.write_config("config", &simple_proxy(&[upstream.addr()]))?;
    let gen = svc.start(3, &config, &[]).await?;
    assert!(
        gen.log().contains("no parent generation found"),
        "log:\n{}",
        gen.log()
    );
    let info = gen.server_info().await?;
    assert_eq!(info["command_line_options"]["restart_epoch"], 3);
    assert_eq!(
        baton_tests::get(gen.listener_addr("http").await?, "/")
            .await?
            .status,
        200
    );
    Ok(())
}

#[tokio::test]
async fn stale_socket_of_a_killed_generation_is_replaced() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let svc = Service::new()?;
    let config = svc.write_config("config", &simple_proxy(&[upstream.addr()]))?;
    let mut gen0 = svc.start(0, &config, &[]).await?;
    gen0.signal(Signal::SIGKILL)?;
    gen0.wait_exit(EXIT_TIMEOUT).await?;
    assert!(
        svc.socket_path().exists(),
        "a killed generation leaves its socket file"
    );

    let gen1 = svc.start(1, &config, &[]).await?;
    assert!(
        gen1.log().contains("stale hot-restart socket"),
        "log:\n{}",
        gen1.log()
    );
    assert_eq!(
        baton_tests::get(gen1.listener_addr("http").await?, "/")
            .await?
            .status,
        200
    );
    // The path now leads to epoch 1.
    let mut peer = Peer::connect(&svc.socket_path()).await?;
    peer.send(&hello(PROTOCOL_VERSION + 1, 2)).await?;
    let reply: pb::Reply = peer.recv().await?.expect("reply");
    match reply.kind {
        Some(pb::reply::Kind::Hello(h)) => assert_eq!(h.parent_pid, gen1.pid()),
        other => panic!("unexpected {other:?}"),
    }
    // And the next epoch takes over from it normally.
    drop(peer);
    gen1.wait_log("hot restart failed", LOG_TIMEOUT).await?;
    let _gen2 = svc.start(2, &config, &[]).await?;
    Ok(())
}

#[tokio::test]
async fn third_generation_terminates_the_draining_first() -> anyhow::Result<()> {
    let echo = TcpServer::echo().await?;
    let svc = Service::new()?;
    let cfg = bootstrap(
        vec![listener("tcp", vec![tcp_proxy_filter("echo")])],
        vec![static_cluster("echo", &[echo.addr()])],
    );
    let config = svc.write_config("config", &cfg)?;
    // Long drain: epoch 0 would stay up for a minute with a connection open.
    let long = ["--drain-time-s", "60", "--parent-shutdown-time-s", "90"];
    let mut gen0 = svc.start(0, &config, &long).await?;
    let addr = gen0.listener_addr("tcp").await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(b"held").await?;
    assert_eq!(conn.read_exact_bytes(4).await?, b"held");

    let mut gen1 = svc.start(1, &config, &long).await?;
    gen0.wait_log("draining listeners", LOG_TIMEOUT).await?;
    assert!(
        gen0.try_exit_status().is_none(),
        "epoch 0 drains while the connection is open"
    );

    let _gen2 = svc.start(2, &config, &long).await?;
    // Epoch 1 told epoch 0 to terminate: it exits long before its 60 s drain time.
    let status = gen0.wait_exit(EXIT_TIMEOUT).await?;
    assert!(status.code().is_some(), "epoch 0 ended by itself: {status}");
    assert!(
        gen0.log().contains("asked to terminate"),
        "log:\n{}",
        gen0.log()
    );
    assert!(conn.read_to_close().await.is_ok());
    // Epoch 1 (no connections left) drains and exits by itself.
    assert!(exited_cleanly(gen1.wait_exit(EXIT_TIMEOUT).await?));
    Ok(())
}
