//! Hostile or broken peers on the hot-restart socket: a connection that sends nothing, half
//! a message, or a request before the version hello is closed after a deadline (or at
//! once) and never blocks a real hot restart; file descriptors a peer sends unasked are
//! closed. Baton-specific (Envoy's hot-restart sockets are abstract datagram sockets).

mod hot_restart_support;

use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::time::Duration;

use baton_proto::pb::baton::hot_restart::v1 as pb;
use baton_tests::config::simple_proxy;
use baton_tests::{eventually, is_envoy, EchoUpstream};
use hot_restart_support::protocol::{hello, Peer, PROTOCOL_VERSION};
use hot_restart_support::{exited_cleanly, Service, EXIT_TIMEOUT};
use prost::Message;
use tokio::io::AsyncWriteExt;

/// Longer than the parent's hello deadline, bounded.
const DEADLINE_WAIT: Duration = Duration::from_secs(30);

/// Waits until the parent closes `stream` (read returns 0 or an error).
async fn wait_closed(stream: &mut tokio::net::UnixStream) -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 256];
    let deadline = tokio::time::Instant::now() + DEADLINE_WAIT;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => anyhow::bail!("the parent kept the connection open past {DEADLINE_WAIT:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn silent_and_half_sent_peers_cannot_block_a_reload() -> anyhow::Result<()> {
    if is_envoy() {
        return Ok(());
    }
    let upstream = EchoUpstream::start("a").await?;
    let svc = Service::new()?;
    let config = svc.write_config("config", &simple_proxy(&[upstream.addr()]))?;
    let mut gen0 = svc.start(0, &config, &[]).await?;
    let addr = gen0.listener_addr("http").await?;

    // Says nothing at all.
    let silent = tokio::net::UnixStream::connect(svc.socket_path()).await?;
    // Announces a 100-byte message and sends 10 bytes of it.
    let mut half = tokio::net::UnixStream::connect(svc.socket_path()).await?;
    half.write_all(&[100, 8, 1, 16, 1, 24, 1, 32, 1, 42])
        .await?;

    // While both are connected, a real hot restart completes.
    let gen1 = svc.start(1, &config, &[]).await?;
    assert!(exited_cleanly(gen0.wait_exit(EXIT_TIMEOUT).await?));
    assert_eq!(baton_tests::get(addr, "/").await?.status, 200);

    // The same peers against the new live generation are dropped after the deadline,
    // and it still serves.
    let mut silent1 = tokio::net::UnixStream::connect(svc.socket_path()).await?;
    let mut half1 = tokio::net::UnixStream::connect(svc.socket_path()).await?;
    half1.write_all(&[100, 8, 1]).await?;
    wait_closed(&mut silent1).await?;
    wait_closed(&mut half1).await?;
    assert_eq!(baton_tests::get(addr, "/").await?.status, 200);
    assert_eq!(gen1.admin_get("/ready").await?.status, 200);
    drop((silent, half));
    Ok(())
}

#[tokio::test]
async fn a_request_before_the_hello_is_refused_and_changes_nothing() -> anyhow::Result<()> {
    if is_envoy() {
        return Ok(());
    }
    let upstream = EchoUpstream::start("a").await?;
    let svc = Service::new()?;
    let config = svc.write_config("config", &simple_proxy(&[upstream.addr()]))?;
    let gen0 = svc.start(0, &config, &[]).await?;
    let addr = gen0.listener_addr("http").await?;
    for kind in [
        pb::request::Kind::Terminate(pb::Terminate {}),
        pb::request::Kind::DrainListeners(pb::DrainListeners {}),
        pb::request::Kind::ShutdownAdmin(pb::ShutdownAdmin::default()),
    ] {
        let mut peer = Peer::connect(&svc.socket_path()).await?;
        peer.send(&pb::Request { kind: Some(kind) }).await?;
        let reply: Option<pb::Reply> = peer.recv().await?;
        assert!(
            matches!(
                reply.as_ref().and_then(|r| r.kind.as_ref()),
                Some(pb::reply::Kind::Error(_))
            ),
            "{reply:?}"
        );
        assert!(peer.recv::<pb::Reply>().await?.is_none(), "not closed");
    }
    // Still live, serving, admin up.
    assert_eq!(baton_tests::get(addr, "/").await?.status, 200);
    assert_eq!(gen0.admin_get("/ready").await?.status, 200);
    Ok(())
}

#[tokio::test]
async fn file_descriptors_sent_unasked_are_closed() -> anyhow::Result<()> {
    if is_envoy() {
        return Ok(());
    }
    let svc = Service::new()?;
    let config = svc.write_config("config", &simple_proxy(&[]))?;
    let gen0 = svc.start(0, &config, &[]).await?;
    let marker = svc.dir().join("fd-marker");
    let file = std::fs::File::create(&marker)?;
    let stream = std::os::unix::net::UnixStream::connect(svc.socket_path())?;
    let bytes = hello(PROTOCOL_VERSION, 1).encode_length_delimited_to_vec();
    let fds = [file.as_raw_fd(), file.as_raw_fd(), file.as_raw_fd()];
    nix::sys::socket::sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(&bytes)],
        &[nix::sys::socket::ControlMessage::ScmRights(&fds)],
        nix::sys::socket::MsgFlags::empty(),
        None,
    )?;
    drop(file);
    let fd_dir = format!("/proc/{}/fd", gen0.pid());
    let marker_held = || -> bool {
        std::fs::read_dir(&fd_dir)
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == marker))
            })
            .unwrap_or(false)
    };
    let closed = eventually(Duration::from_secs(10), || {
        let held = marker_held();
        async move { Ok((!held).then_some(())) }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the parent kept the file descriptors it was sent"
    );
    drop(stream);
    Ok(())
}
