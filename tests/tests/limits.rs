//! Header limits (issue 15 §2 "Limits"), as Envoy 1.40 answers them (measured with
//! these tests):
//! - HTTP/1.1 request headers over `max_request_headers_kb`, or more of them than
//!   `common_http_protocol_options.max_headers_count`: 431 `Request Header Fields Too
//!   Large`, `connection: close`, the connection closed, nothing sent upstream.
//! - (HTTP/2: `http2_abuse.rs`.)
//! - More upstream response headers than `max_headers_count` (100): 502 with Envoy's
//!   "reset before headers. reset reason: protocol error" body, counted in
//!   `upstream_rq_502` and `upstream_cx_protocol_error` (not `upstream_rq_rx_reset`).
//! - A 70 KiB upstream response head passes with the default limits; a cluster's
//!   `common_http_protocol_options` (in `typed_extension_protocol_options`) sets the
//!   count (`max_headers_count`, every header line counted) and the size
//!   (`max_response_headers_kb`: on HTTP/1 the whole head, status line and blank line
//!   included, up to exactly that many KiB; 80 KiB by default) of the responses it
//!   accepts; over either, the same 502. On HTTP/2 upstreams (`:status` counted, sizes
//!   as names plus values) Envoy resets the stream instead: 503 "remote reset",
//!   `upstream_rq_rx_reset`.

use baton_tests::config::{hcm_of, simple_proxy, with_http2_upstream, HTTP_PROTOCOL_OPTIONS_TYPE};
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
    expect_protocol_error(&proxy, "/").await
}

/// `GET path` is answered 502 for an upstream protocol error, counted as Envoy does.
async fn expect_protocol_error(proxy: &Proxy, path: &str) -> anyhow::Result<()> {
    let listener = proxy.listener_addr("http").await?;
    let resp = get(listener, path).await?;
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

/// `GET path` is answered 503 as for a stream the HTTP/2 upstream reset, counted as
/// Envoy does (its HTTP/2 codec refuses the response headers by resetting the stream).
async fn expect_stream_reset(proxy: &Proxy, path: &str) -> anyhow::Result<()> {
    let listener = proxy.listener_addr("http").await?;
    let resp = get(listener, path).await?;
    assert_eq!(resp.status, 503);
    assert_eq!(
        resp.body_text(),
        "upstream connect error or disconnect/reset before headers. reset reason: remote reset"
    );
    let stats = proxy.admin_request("GET", "/stats").await?.body_text();
    assert_eq!(stat(&stats, "cluster.backend.upstream_rq_503"), Some(1));
    assert_eq!(
        stat(&stats, "cluster.backend.upstream_rq_rx_reset"),
        Some(1)
    );
    assert_eq!(
        stat(&stats, "cluster.backend.upstream_cx_protocol_error"),
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

/// The cluster `backend` of a simple proxy with `common_http_protocol_options`.
fn with_common_options(cfg: &mut serde_json::Value, common: serde_json::Value, http2: bool) {
    let cluster = &mut cfg["static_resources"]["clusters"][0];
    if http2 {
        *cluster = with_http2_upstream(cluster.clone());
    } else {
        cluster["typed_extension_protocol_options"] = json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": HTTP_PROTOCOL_OPTIONS_TYPE,
                "explicit_http_config": { "http_protocol_options": {} },
            }
        });
    }
    cluster["typed_extension_protocol_options"]
        ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
        ["common_http_protocol_options"] = common;
}

async fn limited_proxy(extra: String, common: serde_json::Value) -> anyhow::Result<Proxy> {
    let addr = upstream_with_headers(extra).await?;
    let mut cfg = simple_proxy(&[addr]);
    with_common_options(&mut cfg, common, false);
    Proxy::start(&cfg).await
}

#[tokio::test]
async fn cluster_max_headers_count_limits_http1_responses() -> anyhow::Result<()> {
    let common = json!({ "max_headers_count": 10 });
    // content-length and 9 more: 10 headers, within the limit.
    let nine: String = (0..9).map(|i| format!("x-h{i}: v\r\n")).collect();
    let proxy = limited_proxy(nine, common.clone()).await?;
    let resp = get(proxy.listener_addr("http").await?, "/").await?;
    assert_eq!(resp.status, 200);
    // 11 headers.
    let ten: String = (0..10).map(|i| format!("x-h{i}: v\r\n")).collect();
    let proxy = limited_proxy(ten, common).await?;
    expect_protocol_error(&proxy, "/").await
}

#[tokio::test]
async fn cluster_max_response_headers_kb_limits_http1_response_heads() -> anyhow::Result<()> {
    let common = json!({ "max_response_headers_kb": 2 });
    // "HTTP/1.1 200 OK", content-length, "x-big: ..." and the blank line: 47 bytes
    // besides the value; 2048 bytes in all is within the limit, 2049 is over.
    let exact = format!("x-big: {}\r\n", "y".repeat(2048 - 47));
    let proxy = limited_proxy(exact, common.clone()).await?;
    let resp = get(proxy.listener_addr("http").await?, "/").await?;
    assert_eq!(resp.status, 200);
    let over = format!("x-big: {}\r\n", "y".repeat(2049 - 47));
    let proxy = limited_proxy(over, common).await?;
    expect_protocol_error(&proxy, "/").await
}

#[tokio::test]
async fn default_max_response_headers_kb_is_80_kib_on_http1() -> anyhow::Result<()> {
    let over = format!("x-big: {}\r\n", "y".repeat(80 * 1024 + 1 - 47));
    let addr = upstream_with_headers(over).await?;
    let proxy = Proxy::start(&simple_proxy(&[addr])).await?;
    expect_protocol_error(&proxy, "/").await
}

async fn http2_limited_proxy(common: serde_json::Value) -> anyhow::Result<(EchoUpstream, Proxy)> {
    let upstream = EchoUpstream::start("a").await?;
    let mut cfg = simple_proxy(&[upstream.addr()]);
    with_common_options(&mut cfg, common, true);
    let proxy = Proxy::start(&cfg).await?;
    Ok((upstream, proxy))
}

/// HTTP/2 upstream responses: `:status` counts as a header, and the size is the sum of
/// names and values (no per-header overhead), both measured to the header on Envoy 1.40
/// (the echo upstream answers with `:status` and 5 headers besides those it is asked for).
#[tokio::test]
async fn cluster_header_limits_apply_to_http2_responses() -> anyhow::Result<()> {
    let common = json!({ "max_headers_count": 10, "max_response_headers_kb": 1 });
    let (_upstream, proxy) = http2_limited_proxy(common.clone()).await?;
    let listener = proxy.listener_addr("http").await?;
    let extra = |n: usize| -> String { (0..n).map(|i| format!("&header=x-h{i}:v")).collect() };
    assert_eq!(
        get(listener, &format!("/ten?x=1{}", extra(4)))
            .await?
            .status,
        200
    );
    assert_eq!(
        get(listener, &format!("/big?header=x-big:{}", "y".repeat(800)))
            .await?
            .status,
        200
    );
    expect_stream_reset(&proxy, &format!("/eleven?x=1{}", extra(5))).await?;
    let (_upstream, proxy) = http2_limited_proxy(common).await?;
    let big = format!("/big?header=x-big:{}", "y".repeat(1000));
    expect_stream_reset(&proxy, &big).await
}
