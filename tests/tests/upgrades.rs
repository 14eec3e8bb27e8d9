//! Upgrades through the HTTP connection manager: websocket (`upgrade_configs`) relayed to an
//! upstream that switches protocols, CONNECT terminated by the proxy (`connect_config`) and
//! CONNECT forwarded to the upstream.

use std::net::SocketAddr;

use baton_tests::config::{
    bootstrap, hcm, hcm_filter, listener, route_config, static_cluster, vhost,
};
use baton_tests::{Proxy, RawHttp1, TcpServer};
use serde_json::{json, Value};

async fn start(
    hcm_extra: Value,
    routes: Vec<Value>,
    upstream: SocketAddr,
) -> anyhow::Result<(Proxy, SocketAddr)> {
    let mut typed = hcm(route_config(vec![vhost("all", &["*"], routes)]));
    baton_tests::config::merge(&mut typed, hcm_extra);
    let cfg = bootstrap(
        vec![listener("http", vec![hcm_filter(typed)])],
        vec![static_cluster("backend", &[upstream])],
    );
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    Ok((proxy, addr))
}

const WS_REQUEST: &[u8] =
    b"GET /ws HTTP/1.1\r\nhost: test\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n";

#[tokio::test]
async fn websocket_upgrade_relays_bytes_both_ways() -> anyhow::Result<()> {
    let upstream = TcpServer::upgrade_echo().await?;
    let routes = vec![json!({ "match": { "prefix": "/" }, "route": { "cluster": "backend" } })];
    let (_proxy, addr) = start(
        json!({ "upgrade_configs": [ { "upgrade_type": "websocket" } ] }),
        routes,
        upstream.addr(),
    )
    .await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(WS_REQUEST).await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 101);
    assert_eq!(resp.header("upgrade"), Some("websocket"));
    for message in [&b"first frame"[..], b"second"] {
        conn.send(message).await?;
        assert_eq!(conn.read_exact_bytes(message.len()).await?, message);
    }
    let heads = upstream.request_heads();
    assert_eq!(heads.len(), 1);
    let head = heads[0].to_ascii_lowercase();
    assert!(head.contains("upgrade: websocket"), "{head}");
    Ok(())
}

#[tokio::test]
async fn websocket_upgrade_without_upgrade_configs_is_403() -> anyhow::Result<()> {
    let upstream = TcpServer::upgrade_echo().await?;
    let routes = vec![json!({ "match": { "prefix": "/" }, "route": { "cluster": "backend" } })];
    let (_proxy, addr) = start(json!({}), routes, upstream.addr()).await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(WS_REQUEST).await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 403);
    assert_eq!(upstream.connections(), 0);
    Ok(())
}

#[tokio::test]
async fn connect_terminated_by_proxy_tunnels_tcp() -> anyhow::Result<()> {
    let upstream = TcpServer::echo().await?;
    let routes = vec![json!({
        "match": { "connect_matcher": {} },
        "route": { "cluster": "backend", "upgrade_configs": [ { "upgrade_type": "CONNECT", "connect_config": {} } ] },
    })];
    let (_proxy, addr) = start(
        json!({ "upgrade_configs": [ { "upgrade_type": "CONNECT" } ] }),
        routes,
        upstream.addr(),
    )
    .await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(b"CONNECT backend.example:443 HTTP/1.1\r\nhost: backend.example:443\r\n\r\n")
        .await?;
    let resp = conn.read_response_to("HEAD").await?;
    assert_eq!(resp.status, 200);
    conn.send(b"tunnelled bytes").await?;
    assert_eq!(conn.read_exact_bytes(15).await?, b"tunnelled bytes");
    Ok(())
}

#[tokio::test]
async fn connect_forwarded_to_upstream() -> anyhow::Result<()> {
    let upstream = TcpServer::upgrade_echo().await?;
    let routes =
        vec![json!({ "match": { "connect_matcher": {} }, "route": { "cluster": "backend" } })];
    let (_proxy, addr) = start(
        json!({ "upgrade_configs": [ { "upgrade_type": "CONNECT" } ] }),
        routes,
        upstream.addr(),
    )
    .await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(b"CONNECT backend.example:443 HTTP/1.1\r\nhost: backend.example:443\r\n\r\n")
        .await?;
    let resp = conn.read_response_to("HEAD").await?;
    assert_eq!(resp.status, 200);
    conn.send(b"through").await?;
    assert_eq!(conn.read_exact_bytes(7).await?, b"through");
    let heads = upstream.request_heads();
    assert!(
        heads
            .first()
            .is_some_and(|h| h.starts_with("CONNECT backend.example:443")),
        "{heads:?}"
    );
    Ok(())
}

/// An upstream that reads one request head, writes `reply`, then echoes bytes
/// (`echo`) or closes the connection.
async fn scripted_upstream(reply: &'static [u8], echo: bool) -> anyhow::Result<SocketAddr> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                if s.write_all(reply).await.is_err() {
                    return;
                }
                if !echo {
                    return;
                }
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

fn websocket_routes() -> Vec<Value> {
    vec![json!({ "match": { "prefix": "/" }, "route": { "cluster": "backend" } })]
}

/// Envoy 1.40 relays the upstream's 101 headers with lower-case names and values as
/// they were, adds `date` and `server`, and no `x-envoy-upstream-service-time`.
#[tokio::test]
async fn websocket_101_headers_as_envoy_relays_them() -> anyhow::Result<()> {
    let upstream = scripted_upstream(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: abc\r\nX-Custom-Case: Val\r\n\r\n",
        true,
    )
    .await?;
    let (_proxy, addr) = start(
        json!({ "upgrade_configs": [ { "upgrade_type": "websocket" } ] }),
        websocket_routes(),
        upstream,
    )
    .await?;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    conn.write_all(
        b"GET /ws HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await?;
    // The head as written (names in the case the proxy wrote them).
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(baton_tests::eventually::IO_TIMEOUT, conn.read(&mut byte))
            .await??;
        anyhow::ensure!(n == 1, "closed in the head: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head)?;
    let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
    assert_eq!(lines.next(), Some("HTTP/1.1 101 Switching Protocols"));
    let fields: Vec<(&str, &str)> = lines.filter_map(|l| l.split_once(": ")).collect();
    let names: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
    // The upstream's headers in its order, names in lower case; then `date`, `server`.
    assert_eq!(
        names,
        [
            "upgrade",
            "connection",
            "sec-websocket-accept",
            "x-custom-case",
            "date",
            "server"
        ],
        "{head}"
    );
    assert!(fields.contains(&("connection", "Upgrade")), "{head}");
    assert!(fields.contains(&("x-custom-case", "Val")), "{head}");
    conn.write_all(b"ping").await?;
    let mut echoed = [0u8; 4];
    tokio::time::timeout(
        baton_tests::eventually::IO_TIMEOUT,
        conn.read_exact(&mut echoed),
    )
    .await??;
    assert_eq!(&echoed, b"ping");
    Ok(())
}

/// An upstream that refuses the upgrade (403 with a body): Envoy relays its answer,
/// body and length included, without `x-envoy-upstream-service-time`, and closes.
#[tokio::test]
async fn websocket_refused_by_the_upstream_is_relayed_and_closes() -> anyhow::Result<()> {
    let upstream = scripted_upstream(
        b"HTTP/1.1 403 Forbidden\r\ncontent-length: 5\r\nX-Up: y\r\n\r\nnope!",
        false,
    )
    .await?;
    let (_proxy, addr) = start(
        json!({ "upgrade_configs": [ { "upgrade_type": "websocket" } ] }),
        websocket_routes(),
        upstream,
    )
    .await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(WS_REQUEST).await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 403);
    assert_eq!(resp.body_text(), "nope!");
    assert_eq!(resp.header("content-length"), Some("5"));
    assert_eq!(resp.header("x-up"), Some("y"));
    assert_eq!(resp.header("x-envoy-upstream-service-time"), None);
    let names: Vec<&str> = resp.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["content-length", "x-up", "date", "server", "connection"],
        "{:?}",
        resp.headers
    );
    assert!(resp.connection_close(), "{:?}", resp.headers);
    conn.read_to_close().await?;
    Ok(())
}

/// A forwarded CONNECT whose upstream answers 200 and closes at once: Envoy sends the
/// 200 head (no length, no `x-envoy-upstream-service-time`), then closes.
#[tokio::test]
async fn forwarded_connect_answered_then_closed_sends_the_head() -> anyhow::Result<()> {
    let upstream = scripted_upstream(b"HTTP/1.1 200 OK\r\n\r\n", false).await?;
    let routes =
        vec![json!({ "match": { "connect_matcher": {} }, "route": { "cluster": "backend" } })];
    let (_proxy, addr) = start(
        json!({ "upgrade_configs": [ { "upgrade_type": "CONNECT" } ] }),
        routes,
        upstream,
    )
    .await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(b"CONNECT backend.example:443 HTTP/1.1\r\nhost: backend.example:443\r\n\r\n")
        .await?;
    let resp = conn.read_response_to("HEAD").await?;
    assert_eq!(resp.status, 200);
    let names: Vec<&str> = resp.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["date", "server"], "{:?}", resp.headers);
    let rest = conn.read_to_close().await?;
    assert!(rest.is_empty(), "{rest:?}");
    Ok(())
}

/// CONNECT over HTTP/2 (RFC 9113 §8.5), terminated by the proxy: the stream's DATA is the
/// tunnel. (A connection manager with CONNECT configured is served by hyper's HTTP/2
/// server, which hands the stream over; Baton's own codec cannot yet.)
#[tokio::test]
async fn connect_over_http2_tunnels_tcp() -> anyhow::Result<()> {
    use baton_tests::h2raw::{frame, hpack_literal, kind, RawH2};
    let upstream = TcpServer::echo().await?;
    let routes = vec![json!({
        "match": { "connect_matcher": {} },
        "route": { "cluster": "backend", "upgrade_configs": [ { "upgrade_type": "CONNECT", "connect_config": {} } ] },
    })];
    let (_proxy, addr) = start(
        json!({ "upgrade_configs": [ { "upgrade_type": "CONNECT" } ] }),
        routes,
        upstream.addr(),
    )
    .await?;
    let mut client = RawH2::connect(addr).await?;
    let mut block = Vec::new();
    hpack_literal(&mut block, ":method", b"CONNECT");
    hpack_literal(&mut block, ":authority", b"backend.example:443");
    let id = client.next_stream_id();
    client.send_headers(id, &block, false).await?;
    client
        .write(&frame(kind::DATA, 0, id, b"tunnelled bytes"))
        .await?;
    let mut status = None;
    let mut echoed = Vec::new();
    for _ in 0..20 {
        let Some(f) = client.read_frame().await? else {
            break;
        };
        if f.stream != id {
            continue;
        }
        if f.kind == kind::HEADERS {
            status = f.indexed_status().or(Some(0));
        }
        if f.kind == kind::DATA {
            echoed.extend_from_slice(&f.payload);
            if echoed.len() >= 15 {
                break;
            }
        }
    }
    assert!(status.is_some(), "no response HEADERS");
    assert_eq!(echoed, b"tunnelled bytes");
    Ok(())
}
