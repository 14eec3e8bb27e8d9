//! How connections end, in Envoy's stats: `http.<prefix>.downstream_cx_destroy_local` /
//! `_remote` / `_active_rq` (and `_local_active_rq`, `_remote_active_rq`),
//! `cluster.<name>.upstream_cx_destroy_local` / `_remote` / `_with_active_rq` (and
//! `_local_with_active_rq`, `_remote_with_active_rq`), `upstream_cx_{rx,tx}_bytes_total`
//! and the `circuit_breakers.{default,high}.*_open` gauges, after known traffic through real
//! sockets. The expected values are what Envoy 1.40 gave for the same config and traffic
//! (run with `BATON_BIN=.../envoy`: they pass on both).

mod stats_support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use baton_tests::config::{
    bootstrap, direct_ok_proxy, http_listener, listener, merge, prefix_route, route_config,
    simple_proxy, static_cluster, tcp_proxy_filter, vhost, with_http2_upstream,
    HTTP_PROTOCOL_OPTIONS_TYPE,
};
use baton_tests::differential::spec::{UpstreamKind, UpstreamReply};
use baton_tests::differential::upstream::RecordingUpstream;
use baton_tests::h2raw::RawH2;
use baton_tests::{
    eventually, get, EchoUpstream, H2Client, Proxy, RawHttp1, TcpServer, IO_TIMEOUT,
};
use serde_json::{json, Value};
use stats_support::wait_for;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The answer of [`FixedUpstream`]: 40 bytes on the wire.
const FIXED_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// A raw upstream answering every request head with [`FIXED_RESPONSE`] and counting the
/// bytes it read, optionally closing each connection shortly after its first answer (an
/// upstream that closes an idle pooled connection). For tcp_proxy, `greet_and_close`
/// writes [`FIXED_RESPONSE`] at once and closes before the client says anything.
struct FixedUpstream {
    addr: SocketAddr,
    received: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone, Copy, PartialEq)]
enum FixedMode {
    KeepAlive,
    CloseWhenIdle,
    GreetAndClose,
}

impl FixedUpstream {
    async fn start(mode: FixedMode) -> anyhow::Result<Self> {
        let socket = TcpListener::bind("127.0.0.1:0").await?;
        let addr = socket.local_addr()?;
        let received = Arc::new(AtomicU64::new(0));
        let counted = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = socket.accept().await {
                tokio::spawn(serve_fixed(conn, mode, counted.clone()));
            }
        });
        Ok(Self {
            addr,
            received,
            task,
        })
    }

    fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

impl Drop for FixedUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_fixed(mut conn: tokio::net::TcpStream, mode: FixedMode, counted: Arc<AtomicU64>) {
    if mode == FixedMode::GreetAndClose {
        let _ = conn.write_all(FIXED_RESPONSE).await;
        return;
    }
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let Ok(Ok(n)) = tokio::time::timeout(IO_TIMEOUT, conn.read(&mut buf)).await else {
            return;
        };
        if n == 0 {
            return;
        }
        counted.fetch_add(n as u64, Ordering::Relaxed);
        head.extend_from_slice(&buf[..n]);
        while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            // A chunked request body (this upstream's only kind) ends with its last chunk.
            let chunked = String::from_utf8_lossy(&head[..end])
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked");
            let body_end = if chunked {
                match head[end..].windows(5).position(|w| w == b"0\r\n\r\n") {
                    Some(at) => end + at + 5,
                    None => break,
                }
            } else {
                end + 4
            };
            head.drain(..body_end);
            if conn.write_all(FIXED_RESPONSE).await.is_err() {
                return;
            }
            if mode == FixedMode::CloseWhenIdle {
                // Long enough for the proxy to pool the connection first.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return;
            }
        }
    }
}

/// `cluster` with cluster-level HTTP protocol options (`common_http_protocol_options`).
fn with_http_options(mut cluster: Value, common: Value) -> Value {
    merge(
        &mut cluster,
        json!({
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": HTTP_PROTOCOL_OPTIONS_TYPE,
                    "common_http_protocol_options": common,
                    "explicit_http_config": { "http_protocol_options": {} },
                }
            }
        }),
    );
    cluster
}

/// A recording upstream answering as `reply` says.
async fn recording(reply: UpstreamReply) -> anyhow::Result<RecordingUpstream> {
    let upstream = RecordingUpstream::start("upstream", UpstreamKind::Http).await?;
    upstream.prepare(&reply);
    Ok(upstream)
}

/// Where a recording upstream listens.
fn addr_of(upstream: &RecordingUpstream) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], upstream.port()))
}

/// An upstream that holds every request without answering.
async fn hanging_upstream() -> anyhow::Result<RecordingUpstream> {
    recording(UpstreamReply {
        delay_ms: 60_000,
        ..UpstreamReply::default()
    })
    .await
}

/// Waits (bounded) until `upstream` has received `n` requests.
async fn received(upstream: &RecordingUpstream, n: usize) -> anyhow::Result<()> {
    eventually(IO_TIMEOUT, || async {
        Ok((upstream.received().len() >= n).then_some(()))
    })
    .await
}

/// Sends `request` on a new connection, reads one response and closes, as most clients
/// do; returns its status.
async fn exchange_then_close(addr: SocketAddr, request: &[u8]) -> anyhow::Result<u16> {
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(request).await?;
    Ok(conn.read_response().await?.status)
}

#[tokio::test]
async fn clients_closing_after_their_response_count_as_remote_closes() -> anyhow::Result<()> {
    let proxy = Proxy::start(&direct_ok_proxy()).await?;
    let addr = proxy.listener_addr("http").await?;
    // Envoy closes the connections it decided to end after a delay in which a client
    // that read its response goes first: all of these are remote closes in Envoy's stats.
    for (request, status) in [
        // An idle keep-alive connection.
        (&b"GET / HTTP/1.1\r\nhost: a\r\n\r\n"[..], 200),
        // The client asked for `connection: close`.
        (
            b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
            200,
        ),
        // A malformed request.
        (b"GET / HTTP/1.1\r\nhost: a\r\nbad header\r\n\r\n", 400),
    ] {
        assert_eq!(exchange_then_close(addr, request).await?, status);
    }
    // An HTTP/2 client closes after its request.
    let client = H2Client::connect(addr).await?;
    assert_eq!(client.get("/").await?.status, 200);
    drop(client);

    wait_for(
        &proxy,
        &[
            ("http.ingress.downstream_cx_destroy", 4),
            ("http.ingress.downstream_cx_destroy_remote", 4),
            ("http.ingress.downstream_cx_destroy_local", 0),
            ("http.ingress.downstream_cx_destroy_active_rq", 0),
            ("http.ingress.downstream_cx_destroy_local_active_rq", 0),
            ("http.ingress.downstream_cx_destroy_remote_active_rq", 0),
        ],
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_client_leaving_mid_request_counts_a_request_in_flight_on_both_sides(
) -> anyhow::Result<()> {
    let upstream = hanging_upstream().await?;
    let proxy = Proxy::start(&simple_proxy(&[addr_of(&upstream)])).await?;
    let addr = proxy.listener_addr("http").await?;

    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(b"GET /held HTTP/1.1\r\nhost: a\r\n\r\n").await?;
    received(&upstream, 1).await?;
    drop(conn);
    let mut h2 = RawH2::connect(addr).await?;
    h2.get("/held").await?;
    received(&upstream, 2).await?;
    drop(h2);

    wait_for(
        &proxy,
        &[
            ("http.ingress.downstream_cx_destroy", 2),
            ("http.ingress.downstream_cx_destroy_remote", 2),
            ("http.ingress.downstream_cx_destroy_active_rq", 2),
            ("http.ingress.downstream_cx_destroy_remote_active_rq", 2),
            ("http.ingress.downstream_cx_destroy_local", 0),
            ("http.ingress.downstream_rq_rx_reset", 2),
            // The proxy gives up the upstream request: it closes those connections.
            ("cluster.backend.upstream_cx_destroy", 2),
            ("cluster.backend.upstream_cx_destroy_local", 2),
            ("cluster.backend.upstream_cx_destroy_with_active_rq", 2),
            (
                "cluster.backend.upstream_cx_destroy_local_with_active_rq",
                2,
            ),
            ("cluster.backend.upstream_cx_destroy_remote", 0),
        ],
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn upstream_connection_ends_count_as_envoys() -> anyhow::Result<()> {
    upstream_connection_ends("GET", "").await
}

/// The same over hyper's HTTP/1 client (Baton's lean exchange takes bodiless and
/// fixed-length requests, hyper's the chunked ones).
#[tokio::test]
async fn upstream_connection_ends_with_chunked_requests_count_as_envoys() -> anyhow::Result<()> {
    upstream_connection_ends("POST", "transfer-encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n").await
}

/// Requests `method` with `rest` after the host header (more headers, then the body
/// after an empty line) to upstreams that end their connections each way.
async fn upstream_connection_ends(method: &str, rest: &str) -> anyhow::Result<()> {
    let idle = FixedUpstream::start(FixedMode::KeepAlive).await?;
    let closer = FixedUpstream::start(FixedMode::CloseWhenIdle).await?;
    let close = recording(UpstreamReply {
        close: true,
        ..UpstreamReply::default()
    })
    .await?;
    let reset = recording(UpstreamReply {
        reset: true,
        ..UpstreamReply::default()
    })
    .await?;
    let hang = hanging_upstream().await?;
    let clusters = vec![
        with_http_options(
            static_cluster("idle", &[idle.addr]),
            json!({ "idle_timeout": "0.3s" }),
        ),
        static_cluster("closer", &[closer.addr]),
        static_cluster("close", &[addr_of(&close)]),
        static_cluster("reset", &[addr_of(&reset)]),
        with_http_options(
            static_cluster("maxreq", &[idle.addr]),
            json!({ "max_requests_per_connection": 1 }),
        ),
        static_cluster("hang", &[addr_of(&hang)]),
    ];
    let mut routes: Vec<Value> = ["idle", "closer", "close", "reset", "maxreq"]
        .iter()
        .map(|name| prefix_route(&format!("/{name}"), name))
        .collect();
    routes.push(json!({
        "match": { "prefix": "/hang" },
        "route": { "cluster": "hang", "timeout": "0.2s" },
    }));
    let config = bootstrap(
        vec![http_listener(
            "http",
            route_config(vec![vhost("all", &["*"], routes)]),
        )],
        clusters,
    );
    let proxy = Proxy::start(&config).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut conn = RawHttp1::connect(addr).await?;
    for (path, status) in [
        ("/idle", 200),
        ("/closer", 200),
        ("/close", 200),
        ("/reset", 503),
        ("/maxreq", 200),
        ("/hang", 504),
    ] {
        conn.send(format!("{method} {path} HTTP/1.1\r\nhost: a\r\n{rest}\r\n").as_bytes())
            .await?;
        assert_eq!(conn.read_response().await?.status, status, "{path}");
    }

    let stats = wait_for(
        &proxy,
        &[
            // The pool's idle timeout closes it: local.
            ("cluster.idle.upstream_cx_destroy", 1),
            ("cluster.idle.upstream_cx_destroy_local", 1),
            ("cluster.idle.upstream_cx_destroy_remote", 0),
            ("cluster.idle.upstream_cx_destroy_with_active_rq", 0),
            // As Envoy, bytes are counted as they cross the wire.
            (
                "cluster.idle.upstream_cx_rx_bytes_total",
                FIXED_RESPONSE.len() as u64,
            ),
            // The upstream closes an idle pooled connection: remote.
            ("cluster.closer.upstream_cx_destroy_remote", 1),
            ("cluster.closer.upstream_cx_destroy_local", 0),
            ("cluster.closer.upstream_cx_destroy_with_active_rq", 0),
            // An answer with `connection: close`: the proxy closes it, local.
            ("cluster.close.upstream_cx_destroy_local", 1),
            ("cluster.close.upstream_cx_destroy_remote", 0),
            ("cluster.close.upstream_cx_destroy_with_active_rq", 0),
            // The upstream closes instead of answering: remote, with the request on it.
            ("cluster.reset.upstream_cx_destroy_remote", 1),
            ("cluster.reset.upstream_cx_destroy_remote_with_active_rq", 1),
            ("cluster.reset.upstream_cx_destroy_with_active_rq", 1),
            ("cluster.reset.upstream_cx_destroy_local", 0),
            // `max_requests_per_connection` reached: local.
            ("cluster.maxreq.upstream_cx_destroy_local", 1),
            ("cluster.maxreq.upstream_cx_destroy_with_active_rq", 0),
            // The route timeout gives the request up: local, with the request on it.
            ("cluster.hang.upstream_cx_destroy_local", 1),
            ("cluster.hang.upstream_cx_destroy_local_with_active_rq", 1),
            ("cluster.hang.upstream_rq_timeout", 1),
        ],
    )
    .await?;
    // What the upstreams read is what the proxy wrote (its request heads are its own).
    let written = stats_support::value(&stats, "cluster.idle.upstream_cx_tx_bytes_total")?
        + stats_support::value(&stats, "cluster.maxreq.upstream_cx_tx_bytes_total")?;
    assert_eq!(written, idle.received());
    assert_eq!(
        stats_support::value(&stats, "cluster.closer.upstream_cx_tx_bytes_total")?,
        closer.received()
    );
    Ok(())
}

#[tokio::test]
async fn an_idle_http2_upstream_connection_closed_by_the_pool_is_a_local_close(
) -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("h2").await?;
    let mut cluster = with_http2_upstream(static_cluster("backend", &[upstream.addr()]));
    merge(
        &mut cluster,
        json!({ "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "common_http_protocol_options": { "idle_timeout": "0.3s" }
            }
        } }),
    );
    let mut config = simple_proxy(&[upstream.addr()]);
    config["static_resources"]["clusters"] = json!([cluster]);
    let proxy = Proxy::start(&config).await?;
    assert_eq!(
        get(proxy.listener_addr("http").await?, "/").await?.status,
        200
    );
    let stats = wait_for(
        &proxy,
        &[
            ("cluster.backend.upstream_cx_http2_total", 1),
            ("cluster.backend.upstream_cx_destroy", 1),
            ("cluster.backend.upstream_cx_destroy_local", 1),
            ("cluster.backend.upstream_cx_destroy_remote", 0),
            ("cluster.backend.upstream_cx_destroy_with_active_rq", 0),
        ],
    )
    .await?;
    // Frames of both sides' own choosing: some bytes each way.
    for name in [
        "cluster.backend.upstream_cx_rx_bytes_total",
        "cluster.backend.upstream_cx_tx_bytes_total",
    ] {
        assert!(stats_support::value(&stats, name)? > 0, "{name}");
    }
    Ok(())
}

#[tokio::test]
async fn tcp_proxy_upstream_ends_count_a_request_in_flight() -> anyhow::Result<()> {
    let echo = TcpServer::echo().await?;
    let greeter = FixedUpstream::start(FixedMode::GreetAndClose).await?;
    let config = bootstrap(
        vec![
            listener("echo", vec![tcp_proxy_filter("echo")]),
            listener("greeter", vec![tcp_proxy_filter("greeter")]),
        ],
        vec![
            static_cluster("echo", &[echo.addr()]),
            static_cluster("greeter", &[greeter.addr]),
        ],
    );
    let proxy = Proxy::start(&config).await?;

    // The client ends first; the upstream closes after it: remote.
    let mut conn = RawHttp1::connect(proxy.listener_addr("echo").await?).await?;
    conn.send(b"ping").await?;
    assert_eq!(conn.read_exact_bytes(4).await?, b"ping");
    conn.shutdown_write().await?;
    conn.read_to_close().await?;
    drop(conn);
    // The upstream ends first; the proxy closes it after the client: local.
    let mut conn = RawHttp1::connect(proxy.listener_addr("greeter").await?).await?;
    assert_eq!(conn.read_to_close().await?, FIXED_RESPONSE);
    drop(conn);

    let len = FIXED_RESPONSE.len() as u64;
    wait_for(
        &proxy,
        &[
            ("cluster.echo.upstream_cx_destroy_remote", 1),
            ("cluster.echo.upstream_cx_destroy_remote_with_active_rq", 1),
            ("cluster.echo.upstream_cx_destroy_with_active_rq", 1),
            ("cluster.echo.upstream_cx_destroy_local", 0),
            ("cluster.echo.upstream_cx_rx_bytes_total", 4),
            ("cluster.echo.upstream_cx_tx_bytes_total", 4),
            ("cluster.greeter.upstream_cx_destroy_local", 1),
            (
                "cluster.greeter.upstream_cx_destroy_local_with_active_rq",
                1,
            ),
            ("cluster.greeter.upstream_cx_destroy_with_active_rq", 1),
            ("cluster.greeter.upstream_cx_destroy_remote", 0),
            ("cluster.greeter.upstream_cx_rx_bytes_total", len),
            ("cluster.greeter.upstream_cx_tx_bytes_total", 0),
        ],
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn circuit_breaker_gauges_show_a_breaker_at_its_limit() -> anyhow::Result<()> {
    let upstream = hanging_upstream().await?;
    let mut config = simple_proxy(&[addr_of(&upstream)]);
    merge(
        config
            .pointer_mut("/static_resources/clusters/0")
            .expect("the cluster"),
        json!({ "circuit_breakers": { "thresholds": [
            { "max_connections": 1, "max_pending_requests": 4, "max_requests": 1 }
        ] } }),
    );
    let proxy = Proxy::start(&config).await?;
    let addr = proxy.listener_addr("http").await?;
    let all_closed = [
        ("cluster.backend.circuit_breakers.default.cx_open", 0),
        ("cluster.backend.circuit_breakers.default.cx_pool_open", 0),
        ("cluster.backend.circuit_breakers.default.rq_open", 0),
        (
            "cluster.backend.circuit_breakers.default.rq_pending_open",
            0,
        ),
        ("cluster.backend.circuit_breakers.default.rq_retry_open", 0),
        ("cluster.backend.circuit_breakers.high.cx_open", 0),
        ("cluster.backend.circuit_breakers.high.cx_pool_open", 0),
        ("cluster.backend.circuit_breakers.high.rq_open", 0),
        ("cluster.backend.circuit_breakers.high.rq_pending_open", 0),
        ("cluster.backend.circuit_breakers.high.rq_retry_open", 0),
    ];
    wait_for(&proxy, &all_closed).await?;

    // One request in flight on one connection: both breakers at their limit of 1.
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").await?;
    received(&upstream, 1).await?;
    wait_for(
        &proxy,
        &[
            ("cluster.backend.circuit_breakers.default.cx_open", 1),
            ("cluster.backend.circuit_breakers.default.rq_open", 1),
            (
                "cluster.backend.circuit_breakers.default.rq_pending_open",
                0,
            ),
            ("cluster.backend.circuit_breakers.high.cx_open", 0),
            ("cluster.backend.circuit_breakers.high.rq_open", 0),
        ],
    )
    .await?;
    // The client leaves: the request and its connection go, the breakers close.
    drop(conn);
    wait_for(&proxy, &all_closed).await?;
    Ok(())
}
