//! tcp_proxy tests over real loopback sockets: a test listener hands each accepted
//! connection to `proxy_connection`, upstreams are raw TcpListeners.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use baton_config::model::{self, TcpClusterSpecifier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::proxy_connection;
use crate::base::conn_info::ConnInfo;
use crate::base::drain::{self, DrainPhase, DrainSignal};
use crate::upstream::test_support::{closed_port, cluster, eventually, ips};
use crate::upstream::ClusterManager;

fn tcp_proxy(spec: TcpClusterSpecifier) -> model::TcpProxy {
    model::TcpProxy {
        stat_prefix: "tcp".to_owned(),
        cluster: spec,
        idle_timeout: Some(Duration::from_secs(3600)),
        max_connect_attempts: 1,
        max_downstream_connection_duration: None,
        access_logs: Vec::new(),
    }
}

/// Starts a proxy listener; every accepted connection is proxied with `cfg`.
async fn proxy(
    cfg: model::TcpProxy,
    clusters: Vec<model::Cluster>,
    drain: DrainSignal,
) -> std::net::SocketAddr {
    let clusters: Vec<_> = clusters.into_iter().map(Arc::new).collect();
    let cm = ClusterManager::initialize(&clusters).await.expect("init");
    let rt = Arc::new(super::TcpProxyRuntime::new(Arc::new(cfg)).expect("runtime"));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, remote)) = listener.accept().await {
            let conn = ConnInfo::plain(remote, addr);
            tokio::spawn(proxy_connection(
                stream,
                conn,
                rt.clone(),
                cm.clone(),
                drain.clone(),
            ));
        }
    });
    addr
}

/// An upstream that reads until EOF, then answers `echo:<what it read>` and closes.
async fn echo_after_eof() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepts = Arc::new(AtomicUsize::new(0));
    let counter = accepts.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut got = Vec::new();
                if stream.read_to_end(&mut got).await.is_ok() {
                    let mut reply = b"echo:".to_vec();
                    reply.extend_from_slice(&got);
                    let _ = stream.write_all(&reply).await;
                }
            });
        }
    });
    (addr, accepts)
}

/// Reads until EOF, bounded.
async fn read_all(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out))
        .await
        .expect("EOF within bound")
        .expect("read");
    out
}

#[tokio::test]
async fn echoes_through_with_half_close() {
    let (up, _) = echo_after_eof().await;
    let addr = proxy(
        tcp_proxy(TcpClusterSpecifier::Name("c".into())),
        vec![cluster("c", ips(&[up]))],
        DrainSignal::never(),
    )
    .await;
    let mut client = TcpStream::connect(addr).await.expect("connect");
    client.write_all(b"hello").await.expect("write");
    // Half-close: the upstream only answers after seeing our EOF, and the reply must
    // still reach us on the open read side.
    client.shutdown().await.expect("shutdown");
    assert_eq!(read_all(&mut client).await, b"echo:hello");
}

#[tokio::test]
async fn weighted_clusters_pick_by_weight() {
    let (up, accepts) = echo_after_eof().await;
    let spec = TcpClusterSpecifier::Weighted(vec![("dead".into(), 0), ("live".into(), 5)], 5);
    let addr = proxy(
        tcp_proxy(spec),
        vec![
            cluster("dead", ips(&[closed_port().await])),
            cluster("live", ips(&[up])),
        ],
        DrainSignal::never(),
    )
    .await;
    for _ in 0..3 {
        let mut client = TcpStream::connect(addr).await.expect("connect");
        client.shutdown().await.expect("shutdown");
        assert_eq!(read_all(&mut client).await, b"echo:");
    }
    assert_eq!(accepts.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn connect_failure_closes_downstream_after_attempts() {
    let mut cfg = tcp_proxy(TcpClusterSpecifier::Name("c".into()));
    cfg.max_connect_attempts = 3;
    let dead = closed_port().await;
    let addr = proxy(cfg, vec![cluster("c", ips(&[dead]))], DrainSignal::never()).await;
    let mut client = TcpStream::connect(addr).await.expect("connect");
    assert!(read_all(&mut client).await.is_empty());
}

#[tokio::test]
async fn unknown_cluster_closes_downstream() {
    let addr = proxy(
        tcp_proxy(TcpClusterSpecifier::Name("nope".into())),
        Vec::new(),
        DrainSignal::never(),
    )
    .await;
    let mut client = TcpStream::connect(addr).await.expect("connect");
    assert!(read_all(&mut client).await.is_empty());
}

#[tokio::test]
async fn idle_timeout_closes_both_sides() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let up = listener.local_addr().expect("addr");
    let mut cfg = tcp_proxy(TcpClusterSpecifier::Name("c".into()));
    cfg.idle_timeout = Some(Duration::from_millis(100));
    let addr = proxy(cfg, vec![cluster("c", ips(&[up]))], DrainSignal::never()).await;
    let mut client = TcpStream::connect(addr).await.expect("connect");
    let (mut upstream, _) = listener.accept().await.expect("accept");
    // Traffic keeps it open...
    client.write_all(b"ping").await.expect("write");
    let mut buf = [0u8; 4];
    upstream.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"ping");
    // ...silence closes it: both ends see EOF.
    assert!(read_all(&mut client).await.is_empty());
    assert!(read_all(&mut upstream).await.is_empty());
}

#[tokio::test]
async fn drain_keeps_connection_until_closed_phase() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let up = listener.local_addr().expect("addr");
    let (trigger, signal) = drain::channel();
    let addr = proxy(
        tcp_proxy(TcpClusterSpecifier::Name("c".into())),
        vec![cluster("c", ips(&[up]))],
        signal,
    )
    .await;
    let mut client = TcpStream::connect(addr).await.expect("connect");
    let (mut upstream, _) = listener.accept().await.expect("accept");
    trigger.set(DrainPhase::Draining);
    // Still proxying while draining.
    client.write_all(b"still").await.expect("write");
    let mut buf = [0u8; 5];
    upstream.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"still");
    trigger.set(DrainPhase::Closed);
    assert!(read_all(&mut client).await.is_empty());
    assert!(read_all(&mut upstream).await.is_empty());
}

#[tokio::test]
async fn max_downstream_connection_duration_closes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let up = listener.local_addr().expect("addr");
    let mut cfg = tcp_proxy(TcpClusterSpecifier::Name("c".into()));
    cfg.max_downstream_connection_duration = Some(Duration::from_millis(50));
    let addr = proxy(cfg, vec![cluster("c", ips(&[up]))], DrainSignal::never()).await;
    let mut client = TcpStream::connect(addr).await.expect("connect");
    let (_upstream, _) = listener.accept().await.expect("accept");
    assert!(read_all(&mut client).await.is_empty());
}

#[tokio::test]
async fn upstream_connection_is_counted_while_proxying() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let up = listener.local_addr().expect("addr");
    let clusters = vec![Arc::new(cluster("c", ips(&[up])))];
    let cm = ClusterManager::initialize(&clusters).await.expect("init");
    let host = cm.get("c").expect("cluster").hosts()[0].clone();
    let rt =
        super::TcpProxyRuntime::new(Arc::new(tcp_proxy(TcpClusterSpecifier::Name("c".into()))))
            .expect("runtime");
    let (client, server) = tokio::io::duplex(64);
    let local = "127.0.0.1:1".parse().expect("addr");
    let task = tokio::spawn(proxy_connection(
        server,
        ConnInfo::plain(local, local),
        Arc::new(rt),
        cm.clone(),
        DrainSignal::never(),
    ));
    let (_upstream, _) = listener.accept().await.expect("accept");
    eventually("cx_active 1", || {
        host.cx_active.load(Ordering::Relaxed) == 1
    })
    .await;
    drop(client);
    // Downstream EOF half-closes the upstream; the upstream side is still open, so
    // drop it to finish.
    drop(_upstream);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("finishes")
        .expect("task");
    assert_eq!(host.cx_active.load(Ordering::Relaxed), 0);
}
