//! Envoy's stats counted by the data plane, read back from a real proxy's admin `/stats`:
//! exact counts after known traffic for the connection manager (`http.<prefix>.*`), the
//! router, the cluster (`cluster.<name>.*`), the listener, the cluster manager and
//! tcp_proxy (`tcp.<prefix>.*`). The expectations are what Envoy 1.40 reports for the
//! same config and traffic (checked with `BATON_BIN=.../envoy`).

mod stats_support;

use std::net::SocketAddr;

use baton_tests::config::{
    bootstrap, direct_route, http_listener, listener, prefix_route, route_config, simple_proxy,
    static_cluster, tcp_proxy_filter, vhost,
};
use baton_tests::{get, EchoUpstream, H2Client, Proxy, RawHttp1, TcpServer};
use serde_json::json;
use stats_support::{value, wait_for, LISTENER};

/// A port nothing listens on (bound, then released).
/// A port nothing listens on, held bound (not listening) until the returned socket
/// drops, so that no other test takes it meanwhile: connects to it are refused.
fn closed_port() -> anyhow::Result<(std::os::fd::OwnedFd, SocketAddr)> {
    use nix::sys::socket::{
        bind, getsockname, socket, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )?;
    bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0))?;
    let local: SockaddrIn = getsockname(fd.as_raw_fd())?;
    Ok((
        fd,
        SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, local.port())),
    ))
}

#[tokio::test]
async fn requests_to_an_echo_upstream_count_exactly() -> anyhow::Result<()> {
    const N: u64 = 7;
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let addr = proxy.listener_addr("http").await?;
    for _ in 0..N {
        assert_eq!(get(addr, "/").await?.status, 200);
    }
    let cx_total = format!("{LISTENER}.downstream_cx_total");
    let stats = wait_for(
        &proxy,
        &[
            ("http.ingress.downstream_rq_total", N),
            ("http.ingress.downstream_rq_http1_total", N),
            ("http.ingress.downstream_rq_2xx", N),
            ("http.ingress.downstream_rq_completed", N),
            ("http.ingress.downstream_rq_active", 0),
            ("http.ingress.downstream_cx_total", N),
            ("http.ingress.downstream_cx_http1_total", N),
            ("http.ingress.rq_total", N),
            ("cluster.backend.upstream_rq_total", N),
            ("cluster.backend.upstream_rq_200", N),
            ("cluster.backend.upstream_rq_2xx", N),
            ("cluster.backend.upstream_rq_completed", N),
            ("cluster.backend.external.upstream_rq_200", N),
            ("cluster.backend.upstream_rq_active", 0),
            ("cluster.backend.membership_total", 1),
            ("cluster.backend.membership_healthy", 1),
            ("cluster.backend.membership_change", 1),
            ("cluster_manager.active_clusters", 1),
            ("cluster_manager.cluster_added", 1),
            ("listener_manager.listener_added", 1),
            // Once per worker (the harness runs --concurrency 2), as Envoy.
            ("listener_manager.listener_create_success", 2),
            ("listener_manager.total_listeners_active", 1),
            (&cx_total, N),
            (&format!("{LISTENER}.http.ingress.downstream_rq_2xx"), N),
        ],
    )
    .await?;
    for name in [
        "http.ingress.downstream_rq_1xx",
        "http.ingress.downstream_rq_3xx",
        "http.ingress.downstream_rq_4xx",
        "http.ingress.downstream_rq_5xx",
        "http.ingress.no_route",
        "cluster.backend.upstream_cx_connect_fail",
    ] {
        assert_eq!(value(&stats, name)?, 0, "{name}");
    }
    // Every request took a pooled connection or opened one: at most N, at least one.
    let cx = value(&stats, "cluster.backend.upstream_cx_total")?;
    assert!((1..=N).contains(&cx), "upstream_cx_total {cx}");
    assert_eq!(
        value(&stats, "cluster.backend.upstream_cx_http1_total")?,
        cx
    );
    assert_eq!(
        value(&stats, "cluster.backend.upstream_rq_pending_total")?,
        cx
    );
    Ok(())
}

#[tokio::test]
async fn connect_failure_counts_a_503_for_the_cluster_and_the_connection_manager(
) -> anyhow::Result<()> {
    let (_held, closed) = closed_port()?;
    let proxy = Proxy::start(&simple_proxy(&[closed])).await?;
    let addr = proxy.listener_addr("http").await?;
    assert_eq!(get(addr, "/").await?.status, 503);
    wait_for(
        &proxy,
        &[
            ("cluster.backend.upstream_cx_connect_fail", 1),
            ("cluster.backend.upstream_cx_total", 1),
            ("cluster.backend.upstream_cx_destroy", 1),
            ("cluster.backend.upstream_cx_active", 0),
            ("cluster.backend.upstream_rq_pending_failure_eject", 1),
            ("cluster.backend.upstream_rq_503", 1),
            ("cluster.backend.upstream_rq_5xx", 1),
            ("cluster.backend.upstream_rq_completed", 1),
            // Envoy counts a request in upstream_rq_total only once a connection takes it.
            ("cluster.backend.upstream_rq_total", 0),
            ("http.ingress.downstream_rq_5xx", 1),
            ("http.ingress.downstream_rq_completed", 1),
        ],
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn router_local_replies_count_like_envoy() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let routes = vec![
        direct_route("/direct", 200, "hi"),
        json!({ "match": { "prefix": "/redirect" }, "redirect": { "path_redirect": "/x" } }),
        // Envoy refuses a route to an unknown cluster at load; a header names it instead.
        json!({ "match": { "prefix": "/missing" }, "route": { "cluster_header": "x-cluster" } }),
        prefix_route("/echo", "backend"),
    ];
    let config = bootstrap(
        vec![http_listener(
            "http",
            route_config(vec![vhost("all", &["*"], routes)]),
        )],
        vec![static_cluster("backend", &[upstream.addr()])],
    );
    let proxy = Proxy::start(&config).await?;
    let addr = proxy.listener_addr("http").await?;
    assert_eq!(get(addr, "/direct").await?.status, 200);
    assert_eq!(get(addr, "/redirect").await?.status, 301);
    assert_eq!(get(addr, "/nothing-matches").await?.status, 404);
    assert_eq!(get(addr, "/missing").await?.status, 503);
    wait_for(
        &proxy,
        &[
            ("http.ingress.rq_total", 4),
            // Envoy answers redirects as direct responses too.
            ("http.ingress.rq_direct_response", 2),
            ("http.ingress.rq_redirect", 0),
            ("http.ingress.no_route", 1),
            ("http.ingress.no_cluster", 1),
            ("http.ingress.downstream_rq_2xx", 1),
            ("http.ingress.downstream_rq_3xx", 1),
            ("http.ingress.downstream_rq_4xx", 1),
            ("http.ingress.downstream_rq_5xx", 1),
            ("http.ingress.downstream_rq_completed", 4),
            ("cluster.backend.upstream_rq_total", 0),
        ],
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn malformed_request_counts_a_protocol_error() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(b"GARBAGE\r\n\r\n").await?;
    let reply = conn.read_response().await?;
    assert_eq!(reply.status, 400);
    wait_for(
        &proxy,
        &[
            ("http.ingress.downstream_cx_protocol_error", 1),
            ("http.ingress.downstream_rq_4xx", 1),
            ("http.ingress.downstream_rq_total", 1),
            ("http.ingress.downstream_cx_http1_total", 1),
            ("http.ingress.rq_total", 0),
        ],
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn http2_connection_and_requests_count_as_http2() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let addr = proxy.listener_addr("http").await?;
    let client = H2Client::connect(addr).await?;
    for _ in 0..3 {
        assert_eq!(client.get("/").await?.status, 200);
    }
    wait_for(
        &proxy,
        &[
            ("http.ingress.downstream_cx_http2_total", 1),
            ("http.ingress.downstream_cx_http2_active", 1),
            ("http.ingress.downstream_cx_http1_total", 0),
            ("http.ingress.downstream_rq_http2_total", 3),
            ("http.ingress.downstream_rq_2xx", 3),
            ("cluster.backend.upstream_rq_200", 3),
        ],
    )
    .await?;
    drop(client);
    wait_for(
        &proxy,
        &[
            ("http.ingress.downstream_cx_http2_active", 0),
            ("http.ingress.downstream_cx_active", 0),
            ("http.ingress.downstream_cx_destroy", 1),
        ],
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn tcp_proxy_counts_connections_and_bytes() -> anyhow::Result<()> {
    let echo = TcpServer::echo().await?;
    let config = bootstrap(
        vec![listener("tcp", vec![tcp_proxy_filter("backend")])],
        vec![static_cluster("backend", &[echo.addr()])],
    );
    let proxy = Proxy::start(&config).await?;
    let addr = proxy.listener_addr("tcp").await?;
    let mut conn = RawHttp1::connect(addr).await?;
    let payload = b"hello through tcp_proxy";
    conn.send(payload).await?;
    let echoed = conn.read_exact_bytes(payload.len()).await?;
    assert_eq!(echoed, payload);
    conn.shutdown_write().await?;
    let _ = conn.read_to_close().await?;
    let len = payload.len() as u64;
    wait_for(
        &proxy,
        &[
            ("tcp.tcp.downstream_cx_total", 1),
            ("tcp.tcp.downstream_cx_rx_bytes_total", len),
            ("tcp.tcp.downstream_cx_tx_bytes_total", len),
            ("tcp.tcp.downstream_cx_no_route", 0),
            ("cluster.backend.upstream_cx_total", 1),
            ("cluster.backend.upstream_rq_total", 1),
            ("cluster.backend.upstream_cx_destroy", 1),
            ("cluster.backend.upstream_cx_active", 0),
            (&format!("{LISTENER}.downstream_cx_total"), 1),
        ],
    )
    .await?;
    Ok(())
}
