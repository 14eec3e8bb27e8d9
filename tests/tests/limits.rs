//! Header limits (issue 15 §2 "Limits"), as Envoy 1.40 answers them (measured with
//! these tests):
//! - HTTP/1.1 request headers over `max_request_headers_kb`, or more of them than
//!   `common_http_protocol_options.max_headers_count`: 431 `Request Header Fields Too
//!   Large`, `connection: close`, the connection closed, nothing sent upstream.
//! - (HTTP/2: `http2_abuse.rs`.)
//! - More upstream response headers than `max_headers_count` (100): 502 with Envoy's
//!   "reset before headers. reset reason: protocol error" body, counted in
//!   `upstream_rq_502` and `upstream_cx_protocol_error` (not `upstream_rq_rx_reset`).
//! - A 70 KiB upstream response head passes with the default limits.

use baton_tests::config::{hcm_of, simple_proxy};
use baton_tests::{get, EchoUpstream, Proxy, RawHttp1};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn stat(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn http1_headers_over_max_request_headers_kb_are_431_and_close() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let mut cfg = simple_proxy(&[upstream.addr()]);
    hcm_of(&mut cfg, 0)["max_request_headers_kb"] = json!(2);
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    let big = "x".repeat(4096);
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send_request("GET", "/", &[("x-big", &big)], b"")
        .await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 431);
    assert_eq!(resp.body_text(), "Request Header Fields Too Large");
    assert!(resp.connection_close(), "{:?}", resp.headers);
    assert_eq!(resp.header("content-type"), Some("text/plain"));
    conn.read_to_close().await?;
    assert_eq!(upstream.requests(), 0);
    Ok(())
}

#[tokio::test]
async fn http1_header_count_over_max_headers_count_is_431_and_closes() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let mut cfg = simple_proxy(&[upstream.addr()]);
    hcm_of(&mut cfg, 0)["common_http_protocol_options"] = json!({ "max_headers_count": 10 });
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    let names: Vec<String> = (0..20).map(|i| format!("x-h{i}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send_request("GET", "/", &headers, b"").await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 431);
    assert_eq!(resp.body_text(), "Request Header Fields Too Large");
    assert!(resp.connection_close(), "{:?}", resp.headers);
    conn.read_to_close().await?;
    assert_eq!(upstream.requests(), 0);
    // Ten headers (host included) are within the limit.
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send_request("GET", "/", &headers[..8], b"").await?;
    assert_eq!(conn.read_response().await?.status, 200);
    Ok(())
}

/// An upstream that answers every request with `headers` extra header lines.
async fn upstream_with_headers(extra: String) -> anyhow::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let extra = extra.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let resp = format!("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n{extra}\r\nok");
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.read(&mut buf).await;
            });
        }
    });
    Ok(addr)
}

async fn upstream_limit_case(extra: String) -> anyhow::Result<()> {
    let addr = upstream_with_headers(extra).await?;
    let proxy = Proxy::start(&simple_proxy(&[addr])).await?;
    let listener = proxy.listener_addr("http").await?;
    let resp = get(listener, "/").await?;
    assert_eq!(resp.status, 502);
    assert_eq!(
        resp.body_text(),
        "upstream connect error or disconnect/reset before headers. reset reason: protocol error"
    );
    let stats = proxy.admin_request("GET", "/stats").await?.body_text();
    assert_eq!(stat(&stats, "cluster.backend.upstream_rq_502"), Some(1));
    assert_eq!(
        stat(&stats, "cluster.backend.upstream_cx_protocol_error"),
        Some(1)
    );
    assert_eq!(
        stat(&stats, "cluster.backend.upstream_rq_rx_reset"),
        Some(0)
    );
    Ok(())
}

#[tokio::test]
async fn a_large_upstream_response_head_passes_with_the_default_limit() -> anyhow::Result<()> {
    // One header of 70 KiB: Envoy 1.40 relays it with the default limits.
    let addr = upstream_with_headers(format!("x-big: {}\r\n", "y".repeat(70 * 1024))).await?;
    let proxy = Proxy::start(&simple_proxy(&[addr])).await?;
    let listener = proxy.listener_addr("http").await?;
    let resp = get(listener, "/").await?;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-big").map(str::len), Some(70 * 1024));
    Ok(())
}

#[tokio::test]
async fn upstream_response_header_count_over_the_limit_is_502() -> anyhow::Result<()> {
    // 150 headers: over the default count of 100.
    let extra: String = (0..150).map(|i| format!("x-h{i}: v\r\n")).collect();
    upstream_limit_case(extra).await
}
