//! Stream duration limits: the connection manager's
//! `common_http_protocol_options.max_stream_duration` (every stream, from its start) and a
//! route's `max_stream_duration` (which replaces it; 0 turns it off for the route), before
//! and after the response has started.
//!
//! Envoy 1.40's answers, measured with these tests: before the response starts, the
//! `downstream duration timeout` local reply, 504 once the whole request was received and
//! 408 (closing the connection) while it was still arriving; once the response has
//! started, the stream is reset (HTTP/1.1: the connection closes mid-body; HTTP/2:
//! RST_STREAM INTERNAL_ERROR on that stream only, the connection serves on). Either way
//! `downstream_rq_max_duration_reached` counts it; the access log shows no response flag.

use std::time::Duration;

use baton_tests::config::{hcm_of, routes_of, simple_proxy, FILE_ACCESS_LOG_TYPE};
use baton_tests::h2raw::{code, kind, RawH2};
use baton_tests::{eventually, EchoUpstream, H2Client, Proxy, RawHttp1, TempDir};
use serde_json::{json, Value};

/// The upstream holds back the second half of its body far longer than any limit here.
const BODY_DELAY: &str = "body_bytes=1000&body_delay_ms=10000";

/// A proxy with the connection manager's `max_stream_duration` (None: unset), `routes`
/// and an access log of `%RESPONSE_CODE% %RESPONSE_FLAGS%` lines at `log`.
async fn proxy_with(
    upstream: &EchoUpstream,
    hcm_limit: Option<&str>,
    routes: Value,
    log: &std::path::Path,
) -> anyhow::Result<Proxy> {
    let mut cfg = simple_proxy(&[upstream.addr()]);
    *routes_of(&mut cfg, 0) = routes;
    let hcm = hcm_of(&mut cfg, 0);
    if let Some(limit) = hcm_limit {
        hcm["common_http_protocol_options"] = json!({ "max_stream_duration": limit });
    }
    hcm["access_log"] = json!([{ "name": "envoy.access_loggers.file",
        "typed_config": { "@type": FILE_ACCESS_LOG_TYPE, "path": log.display().to_string(),
            "log_format": { "text_format": "%RESPONSE_CODE% %RESPONSE_FLAGS%\n" } } }]);
    Proxy::start(&cfg).await
}

/// One route with its own 0.3 s `max_stream_duration`.
fn route_limited_routes() -> Value {
    json!([{ "match": { "prefix": "/" }, "route": { "cluster": "backend",
        "max_stream_duration": { "max_stream_duration": "0.3s" } } }])
}

fn plain_routes() -> Value {
    json!([{ "match": { "prefix": "/" }, "route": { "cluster": "backend", "timeout": "0s" } }])
}

async fn reached(proxy: &Proxy) -> anyhow::Result<u64> {
    Ok(proxy
        .stat("http.ingress.downstream_rq_max_duration_reached")
        .await?
        .unwrap_or(0))
}

async fn first_log_line(log: &std::path::Path) -> anyhow::Result<String> {
    eventually(Duration::from_secs(15), || async {
        let text = tokio::fs::read_to_string(log).await.unwrap_or_default();
        Ok(text.lines().next().map(str::to_string))
    })
    .await
}

#[tokio::test]
async fn hcm_limit_answers_504_before_the_response_starts() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let dir = TempDir::new()?;
    let log = dir.join("access.log");
    let proxy = proxy_with(&upstream, Some("0.3s"), plain_routes(), &log).await?;
    let mut conn = RawHttp1::connect(proxy.listener_addr("http").await?).await?;
    conn.send_request("GET", "/?delay_ms=3000", &[], b"")
        .await?;
    let resp = conn.read_response().await?;
    let line = first_log_line(&log).await?;
    assert_eq!(resp.status, 504, "{resp:?} {line}");
    assert_eq!(resp.body_text(), "downstream duration timeout");
    assert!(!resp.connection_close(), "{resp:?}");
    assert_eq!(reached(&proxy).await?, 1);
    assert_eq!(line, "504 -");
    Ok(())
}

#[tokio::test]
async fn hcm_limit_answers_408_and_closes_while_the_request_body_arrives() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let dir = TempDir::new()?;
    let log = dir.join("access.log");
    let proxy = proxy_with(&upstream, Some("0.3s"), plain_routes(), &log).await?;
    let mut conn = RawHttp1::connect(proxy.listener_addr("http").await?).await?;
    conn.send(b"POST /upload HTTP/1.1\r\nhost: test\r\ncontent-length: 10\r\n\r\nhello")
        .await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 408, "{resp:?}");
    assert_eq!(resp.body_text(), "downstream duration timeout");
    assert!(resp.connection_close(), "{resp:?}");
    assert!(conn.read_to_close().await?.is_empty());
    assert_eq!(reached(&proxy).await?, 1);
    assert_eq!(first_log_line(&log).await?, "408 -");
    Ok(())
}

#[tokio::test]
async fn hcm_limit_cuts_an_http1_response_already_started() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let dir = TempDir::new()?;
    let log = dir.join("access.log");
    let proxy = proxy_with(&upstream, Some("0.3s"), plain_routes(), &log).await?;
    assert_http1_response_cut(&proxy, &log).await
}

/// A response whose body the upstream holds back is cut: the connection closes before
/// the whole body, the cut is counted, and the access log shows the 200 with no flag.
async fn assert_http1_response_cut(proxy: &Proxy, log: &std::path::Path) -> anyhow::Result<()> {
    let mut conn = RawHttp1::connect(proxy.listener_addr("http").await?).await?;
    conn.send_request("GET", &format!("/?{BODY_DELAY}"), &[], b"")
        .await?;
    let cut = conn.read_response().await;
    assert!(cut.is_err(), "the whole body arrived: {cut:?}");
    conn.read_to_close().await?;
    assert_eq!(reached(proxy).await?, 1);
    assert_eq!(first_log_line(log).await?, "200 -");
    Ok(())
}

#[tokio::test]
async fn route_limit_resets_only_that_http2_stream_once_the_response_started() -> anyhow::Result<()>
{
    let upstream = EchoUpstream::start("a").await?;
    let dir = TempDir::new()?;
    let log = dir.join("access.log");
    let routes = route_limited_routes();
    let proxy = proxy_with(&upstream, None, routes, &log).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut conn = RawH2::connect(addr).await?;
    let stream = conn.get(&format!("/?{BODY_DELAY}")).await?;
    let frames = conn.read_stream(stream).await?;
    assert_eq!(frames[0].indexed_status(), Some(200), "{frames:?}");
    let last = frames.last().expect("frames");
    assert_eq!(last.kind, kind::RST_STREAM, "{frames:?}");
    assert_eq!(last.error_code(), Some(code::INTERNAL_ERROR), "{frames:?}");
    // The connection serves on.
    let client = H2Client::connect(addr).await?;
    assert_eq!(client.get("/after").await?.status, 200);
    assert_eq!(reached(&proxy).await?, 1);
    assert_eq!(first_log_line(&log).await?, "200 -");
    Ok(())
}

#[tokio::test]
async fn route_limit_cuts_an_http1_response_already_started() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let dir = TempDir::new()?;
    let log = dir.join("access.log");
    let routes = route_limited_routes();
    let proxy = proxy_with(&upstream, None, routes, &log).await?;
    assert_http1_response_cut(&proxy, &log).await
}

#[tokio::test]
async fn a_route_limit_replaces_the_hcm_one_and_zero_turns_it_off() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let dir = TempDir::new()?;
    let log = dir.join("access.log");
    let routes = json!([
        { "match": { "prefix": "/off" }, "route": { "cluster": "backend",
            "max_stream_duration": { "max_stream_duration": "0s" } } },
        { "match": { "prefix": "/longer" }, "route": { "cluster": "backend",
            "max_stream_duration": { "max_stream_duration": "5s" } } },
        // Only gRPC settings: a request without grpc-timeout falls back to the HCM's limit.
        { "match": { "prefix": "/grpc" }, "route": { "cluster": "backend",
            "max_stream_duration": { "grpc_timeout_header_max": "0s" } } },
    ]);
    let proxy = proxy_with(&upstream, Some("0.3s"), routes, &log).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send_request("GET", "/off?delay_ms=600", &[], b"")
        .await?;
    assert_eq!(conn.read_response().await?.status, 200);
    conn.send_request("GET", "/longer?delay_ms=600", &[], b"")
        .await?;
    assert_eq!(conn.read_response().await?.status, 200);
    assert_eq!(reached(&proxy).await?, 0);
    conn.send_request("GET", "/grpc?delay_ms=3000", &[], b"")
        .await?;
    assert_eq!(conn.read_response().await?.status, 504);
    assert_eq!(reached(&proxy).await?, 1);
    Ok(())
}
