//! Listener accept queue: with no `tcp_backlog_size`, Baton listens with the system's
//! maximum (`net.core.somaxconn`), as Envoy does on Linux, so a burst of connections
//! arriving while the workers are busy is queued instead of having SYNs dropped (which
//! clients feel as 1 s+ retransmission stalls). `tcp_backlog_size` still sets it.

use std::time::Duration;

use baton_tests::config::simple_proxy;
use baton_tests::{eventually, EchoUpstream, Proxy};
use nix::sys::signal::Signal;
use tokio::net::TcpStream;

/// Connections in the burst (bounded by the system maximum).
const BURST: usize = 1000;
/// A connect that is queued completes at once. One whose SYN was dropped never completes
/// while the proxy is stopped: its retransmissions (1 s, then 3 s) meet the same full
/// queue, so any wait below 3 s tells the two apart.
const CONNECT_WAIT: Duration = Duration::from_secs(2);

fn somaxconn() -> usize {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(128)
}

/// True when every thread of `pid` is in the stopped state (`T` in /proc).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat"))
            .ok()
            // The state follows the parenthesised command name.
            .and_then(|stat| {
                stat.rsplit_once(") ")
                    .map(|(_, rest)| rest.starts_with('T'))
            })
            .unwrap_or(false)
    })
}

/// Opens `count` connections at once while the proxy is stopped (SIGSTOP: nothing is
/// accepted); returns how many completed their handshake, i.e. were queued.
async fn queued_while_stopped(proxy: &Proxy, count: usize) -> anyhow::Result<usize> {
    let addr = proxy.listener_addr("http").await?;
    proxy.signal(Signal::SIGSTOP)?;
    // The stop is asynchronous: a worker still running could accept part of the burst.
    eventually(Duration::from_secs(10), || async {
        Ok(all_threads_stopped(proxy.pid()).then_some(()))
    })
    .await?;
    let attempts = (0..count).map(|_| async move {
        tokio::time::timeout(CONNECT_WAIT, TcpStream::connect(addr))
            .await
            .ok()
            .and_then(Result::ok)
    });
    let connected: Vec<Option<TcpStream>> = futures_util::future::join_all(attempts).await;
    proxy.signal(Signal::SIGCONT)?;
    Ok(connected.iter().filter(|c| c.is_some()).count())
}

#[tokio::test]
async fn connection_burst_is_queued_with_the_default_backlog() -> anyhow::Result<()> {
    let burst = BURST.min(somaxconn().saturating_sub(8));
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let queued = queued_while_stopped(&proxy, burst).await?;
    assert_eq!(
        queued, burst,
        "connections queued while the proxy was stopped"
    );
    Ok(())
}

#[tokio::test]
async fn tcp_backlog_size_bounds_the_queue() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let mut cfg = simple_proxy(&[upstream.addr()]);
    cfg["static_resources"]["listeners"][0]["tcp_backlog_size"] = serde_json::json!(16);
    let proxy = Proxy::start(&cfg).await?;
    let queued = queued_while_stopped(&proxy, 64).await?;
    // Linux queues backlog + 1 connections.
    assert!(queued < 64, "all 64 queued with tcp_backlog_size 16");
    assert!(
        queued >= 16,
        "only {queued} queued with tcp_backlog_size 16"
    );
    Ok(())
}
