//! The tcp_proxy network filter: bytes echoed through, half-close propagated both ways,
//! idle_timeout closing quiet connections, weighted clusters, and a refused upstream closing
//! the downstream connection.

use baton_tests::config::{
    bootstrap, free_port, listener, static_cluster, tcp_proxy_filter, TCP_PROXY_TYPE,
};
use baton_tests::{Proxy, RawHttp1, TcpServer};
use serde_json::json;

#[tokio::test]
async fn bytes_round_trip_and_half_close_propagates() -> anyhow::Result<()> {
    let upstream = TcpServer::echo().await?;
    let cfg = bootstrap(
        vec![listener("tcp", vec![tcp_proxy_filter("echo")])],
        vec![static_cluster("echo", &[upstream.addr()])],
    );
    let proxy = Proxy::start(&cfg).await?;
    let mut conn = RawHttp1::connect(proxy.listener_addr("tcp").await?).await?;
    conn.send(b"hello over tcp").await?;
    assert_eq!(conn.read_exact_bytes(14).await?, b"hello over tcp");
    // Client half-closes; data sent before the FIN still arrives, and the upstream's FIN
    // comes back after its echo.
    conn.send(b"last words").await?;
    conn.shutdown_write().await?;
    assert_eq!(conn.read_to_close().await?, b"last words");
    assert_eq!(upstream.half_closed(), 1);
    Ok(())
}

#[tokio::test]
async fn idle_timeout_closes_quiet_connection() -> anyhow::Result<()> {
    let upstream = TcpServer::echo().await?;
    let mut filter = tcp_proxy_filter("echo");
    filter["typed_config"]["idle_timeout"] = json!("0.3s");
    let cfg = bootstrap(
        vec![listener("tcp", vec![filter])],
        vec![static_cluster("echo", &[upstream.addr()])],
    );
    let proxy = Proxy::start(&cfg).await?;
    let mut conn = RawHttp1::connect(proxy.listener_addr("tcp").await?).await?;
    conn.send(b"ping").await?;
    assert_eq!(conn.read_exact_bytes(4).await?, b"ping");
    // Nothing more is sent: the proxy closes the connection (bounded by the client I/O timeout).
    assert!(conn.read_to_close().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn weighted_clusters_spread_connections() -> anyhow::Result<()> {
    let (a, b) = (TcpServer::echo().await?, TcpServer::echo().await?);
    let filter = json!({
        "name": "envoy.filters.network.tcp_proxy",
        "typed_config": { "@type": TCP_PROXY_TYPE, "stat_prefix": "tcp", "weighted_clusters": { "clusters": [
            { "name": "a", "weight": 1 }, { "name": "b", "weight": 1 } ] } },
    });
    let cfg = bootstrap(
        vec![listener("tcp", vec![filter])],
        vec![
            static_cluster("a", &[a.addr()]),
            static_cluster("b", &[b.addr()]),
        ],
    );
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("tcp").await?;
    // 40 connections at 50/50: missing one cluster has probability 2^-39.
    for _ in 0..40 {
        let mut conn = RawHttp1::connect(addr).await?;
        conn.send(b"x").await?;
        assert_eq!(conn.read_exact_bytes(1).await?, b"x");
        if a.connections() > 0 && b.connections() > 0 {
            break;
        }
    }
    assert!(
        a.connections() > 0 && b.connections() > 0,
        "a={} b={}",
        a.connections(),
        b.connections()
    );
    Ok(())
}

#[tokio::test]
async fn refused_upstream_closes_downstream() -> anyhow::Result<()> {
    let closed = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let cfg = bootstrap(
        vec![listener("tcp", vec![tcp_proxy_filter("dead")])],
        vec![static_cluster("dead", &[closed])],
    );
    let proxy = Proxy::start(&cfg).await?;
    let mut conn = RawHttp1::connect(proxy.listener_addr("tcp").await?).await?;
    conn.send(b"anyone?").await?;
    assert!(conn.read_to_close().await?.is_empty());
    Ok(())
}
