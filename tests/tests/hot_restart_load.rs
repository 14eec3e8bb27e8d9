//! Hot restart under load: generation 1 takes over from 0 and then 2 from 1 while HTTP/1.1
//! (new connection per request and keep-alive) and HTTP/2 clients send requests to an IPv4
//! and an IPv6 listener; no request fails, no connection is refused, each old generation
//! exits, and admin moves to the new generation on the same port. Also: connections waiting
//! in the accept queue at hand-over are served, because the child takes the same kernel
//! socket.

mod hot_restart_support;

use std::time::Duration;

use baton_tests::config::{
    free_port, hcm, hcm_filter, listener_on, merge, prefix_route, route_config, simple_proxy,
    socket_address, vhost,
};
use baton_tests::{EchoUpstream, RawHttp1};
use hot_restart_support::load::{assert_clean, total_served};
use hot_restart_support::{exited_cleanly, ClientKind, Load, Service, EXIT_TIMEOUT};
use serde_json::json;

const ALL_KINDS: [ClientKind; 3] = [
    ClientKind::Http1NewConnection,
    ClientKind::Http1KeepAlive,
    ClientKind::Http2,
];

/// Bound for the clients to make progress between two steps.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(20);

fn ipv6_available() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

/// listener `http` on 127.0.0.1:0 (and `http6` on [::1]:0 when IPv6 works) to `upstream`,
/// admin on a fixed port (so the admin hand-over is exercised on the same port).
fn service_config(upstream: std::net::SocketAddr, admin_port: u16) -> serde_json::Value {
    let mut cfg = simple_proxy(&[upstream]);
    merge(
        &mut cfg,
        json!({ "admin": { "address": socket_address("127.0.0.1", admin_port) } }),
    );
    if ipv6_available() {
        let routes = route_config(vec![vhost(
            "all",
            &["*"],
            vec![prefix_route("/", "backend")],
        )]);
        let v6 = listener_on("http6", "::1", 0, vec![hcm_filter(hcm(routes))]);
        if let Some(listeners) = cfg
            .pointer_mut("/static_resources/listeners")
            .and_then(|l| l.as_array_mut())
        {
            listeners.push(v6);
        }
    }
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hand_overs_under_load_fail_no_request() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let admin_port = free_port()?;
    let svc = Service::new()?;
    let config = svc.write_config("config", &service_config(upstream.addr(), admin_port))?;
    let mut gen0 = svc.start(0, &config, &[]).await?;
    assert_eq!(gen0.admin().port(), admin_port);
    let v4 = gen0.listener_addr("http").await?;
    let mut loads = vec![Load::start(v4, &ALL_KINDS, 2)];
    if ipv6_available() {
        let v6 = gen0.listener_addr("http6").await?;
        loads.push(Load::start(
            v6,
            &[ClientKind::Http1KeepAlive, ClientKind::Http2],
            1,
        ));
    } else {
        eprintln!("IPv6 loopback unavailable: testing the IPv4 listener only");
    }
    for load in &loads {
        assert!(
            load.wait_served(50, PROGRESS_TIMEOUT).await,
            "no progress before the first restart"
        );
    }

    let mut gen1 = svc.start(1, &config, &[]).await?;
    assert_eq!(
        gen1.admin().port(),
        admin_port,
        "admin keeps its port across the hand-over"
    );
    for load in &loads {
        assert!(
            load.wait_served(50, PROGRESS_TIMEOUT).await,
            "no progress after the first restart"
        );
    }
    let status = gen0.wait_exit(EXIT_TIMEOUT).await?;
    assert!(
        exited_cleanly(status),
        "epoch 0 exit: {status}; log:\n{}",
        gen0.log()
    );

    let mut gen2 = svc.start(2, &config, &[]).await?;
    for load in &loads {
        assert!(
            load.wait_served(50, PROGRESS_TIMEOUT).await,
            "no progress after the second restart"
        );
    }
    let status = gen1.wait_exit(EXIT_TIMEOUT).await?;
    assert!(
        exited_cleanly(status),
        "epoch 1 exit: {status}; log:\n{}",
        gen1.log()
    );

    let mut served = 0;
    for load in loads {
        let reports = load.finish().await;
        eprintln!("{reports:#?}");
        assert_clean(&reports);
        served += total_served(&reports);
    }
    // Every request the upstream saw was answered to a client, and nothing else reached it:
    // HTTP/2 requests counted as not processed (after GOAWAY) really were not.
    assert_eq!(upstream.requests() as u64, served);

    // The same sockets, the same admin port, and the epoch/generation moved on.
    assert_eq!(gen2.listener_addr("http").await?, v4);
    let info = gen2.server_info().await?;
    assert_eq!(info["state"], "LIVE");
    assert_eq!(info["command_line_options"]["restart_epoch"], 2);
    assert_eq!(gen2.hot_restart_generation().await?, 3);
    gen2.signal(nix::sys::signal::Signal::SIGTERM)?;
    let status = gen2.wait_exit(EXIT_TIMEOUT).await?;
    assert!(exited_cleanly(status), "epoch 2 exit: {status}");
    Ok(())
}

/// The inode of the TCP socket listening on `port` (from /proc/net/tcp{,6}).
fn listen_socket_inode(port: u16) -> anyhow::Result<String> {
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table)?;
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (cols.get(1), cols.get(3), cols.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if *state == "0A" && local_port == Some(port) {
                return Ok(format!("socket:[{inode}]"));
            }
        }
    }
    anyhow::bail!("no listening socket on port {port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_backlog_at_hand_over_is_served_by_the_same_socket() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let svc = Service::new()?;
    let config = svc.write_config("config", &simple_proxy(&[upstream.addr()]))?;
    let mut gen0 = svc.start(0, &config, &[]).await?;
    let addr = gen0.listener_addr("http").await?;
    let inode = listen_socket_inode(addr.port())?;
    assert!(gen0.listen_socket_inodes()?.contains(&inode));

    // Freeze epoch 0: connections complete the TCP handshake in the kernel and wait in the
    // accept queue with their request already sent.
    gen0.signal(nix::sys::signal::Signal::SIGSTOP)?;
    let mut waiting = Vec::new();
    for i in 0..20 {
        let mut conn = RawHttp1::connect(addr).await?;
        conn.send_request("GET", &format!("/backlog/{i}"), &[], b"")
            .await?;
        waiting.push(conn);
    }
    // Epoch 1 connects while its parent is frozen; both resume with the queue still full.
    let mut gen1 = svc.spawn(1, &config, &[])?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    gen0.signal(nix::sys::signal::Signal::SIGCONT)?;
    gen1.wait_live().await?;
    for (i, conn) in waiting.iter_mut().enumerate() {
        let resp = conn.read_response().await?;
        assert_eq!(resp.status, 200, "queued request {i}: {}", resp.body_text());
    }
    // Queue another batch behind the hand-over: all on the very same kernel socket.
    assert!(
        gen1.listen_socket_inodes()?.contains(&inode),
        "epoch 1 must hold the parent's listen socket {inode}"
    );
    let status = gen0.wait_exit(EXIT_TIMEOUT).await?;
    assert!(exited_cleanly(status), "epoch 0 exit: {status}");
    assert_eq!(listen_socket_inode(addr.port())?, inode);
    for i in 0..5 {
        let resp = baton_tests::get(addr, &format!("/after/{i}")).await?;
        assert_eq!(resp.status, 200);
    }
    Ok(())
}
