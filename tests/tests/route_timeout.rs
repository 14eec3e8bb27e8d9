//! The route timeout's span, as in Envoy: from the end of the downstream request to the end
//! of the upstream response. A slow upload does not count against it; a response body
//! still streaming when it elapses is cut (HTTP/1.1: the connection closes mid-body;
//! HTTP/2: only that stream is reset), counted in `upstream_rq_timeout` and logged `UT`.
//! (The 504 before response headers is in local_replies.rs.)

use std::time::Duration;

use baton_tests::config::{hcm_of, routes_of, simple_proxy, FILE_ACCESS_LOG_TYPE};
use baton_tests::{eventually, EchoUpstream, Echoed, H2Client, Proxy, RawHttp1, TempDir};
use serde_json::json;

/// Route timeout of every test here: far below the upstream's body delay.
const ROUTE_TIMEOUT: &str = "0.3s";
/// How long the upstream holds back the second half of its body.
const BODY_DELAY: &str = "body_delay_ms=10000";

async fn proxy_with_timeout(
    upstream: &EchoUpstream,
    log: Option<&std::path::Path>,
) -> anyhow::Result<Proxy> {
    let mut cfg = simple_proxy(&[upstream.addr()]);
    *routes_of(&mut cfg, 0) = json!([{ "match": { "prefix": "/" },
        "route": { "cluster": "backend", "timeout": ROUTE_TIMEOUT } }]);
    if let Some(path) = log {
        hcm_of(&mut cfg, 0)["access_log"] = json!([{ "name": "envoy.access_loggers.file",
            "typed_config": { "@type": FILE_ACCESS_LOG_TYPE, "path": path.display().to_string(),
                "log_format": { "text_format": "%RESPONSE_CODE% %RESPONSE_FLAGS%\n" } } }]);
    }
    Proxy::start(&cfg).await
}

async fn upstream_rq_timeout(proxy: &Proxy) -> anyhow::Result<u64> {
    let stats = proxy
        .admin_request("GET", "/stats?filter=cluster.backend.upstream_rq_timeout")
        .await?;
    let text = stats.body_text();
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix("cluster.backend.upstream_rq_timeout: "))
        .ok_or_else(|| anyhow::anyhow!("no upstream_rq_timeout in {text:?}"))?;
    Ok(value.trim().parse()?)
}

#[tokio::test]
async fn http1_response_body_cut_when_the_route_timeout_elapses() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let dir = TempDir::new()?;
    let log = dir.join("access.log");
    let proxy = proxy_with_timeout(&upstream, Some(&log)).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(
        format!("GET /?body_bytes=1000&{BODY_DELAY} HTTP/1.1\r\nhost: test\r\n\r\n").as_bytes(),
    )
    .await?;
    let cut = conn.read_response().await;
    assert!(cut.is_err(), "the whole body arrived: {cut:?}");
    conn.read_to_close().await?;
    assert_eq!(upstream_rq_timeout(&proxy).await?, 1);
    let logged = eventually(Duration::from_secs(15), || async {
        let text = tokio::fs::read_to_string(&log).await.unwrap_or_default();
        Ok(text.lines().next().map(str::to_string))
    })
    .await?;
    assert_eq!(logged, "200 UT");
    Ok(())
}

#[tokio::test]
async fn http2_stream_reset_when_the_route_timeout_elapses_connection_stays() -> anyhow::Result<()>
{
    let upstream = EchoUpstream::start("a").await?;
    let proxy = proxy_with_timeout(&upstream, None).await?;
    let addr = proxy.listener_addr("http").await?;
    let client = H2Client::connect(addr).await?;
    let cut = client.get(&format!("/?body_bytes=1000&{BODY_DELAY}")).await;
    assert!(cut.is_err(), "the whole body arrived: {cut:?}");
    assert_eq!(client.get("/after").await?.status, 200);
    assert_eq!(upstream_rq_timeout(&proxy).await?, 1);
    Ok(())
}

#[tokio::test]
async fn slow_upload_does_not_count_against_the_route_timeout() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = proxy_with_timeout(&upstream, None).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(b"POST /upload HTTP/1.1\r\nhost: test\r\ncontent-length: 10\r\n\r\nhello")
        .await?;
    // Twice the route timeout passes while the request body is incomplete.
    tokio::time::sleep(Duration::from_millis(600)).await;
    conn.send(b"world").await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let echoed = resp.json()?;
    assert_eq!(echoed["body"], "helloworld");
    assert_eq!(echoed.req_path(), "/upload");
    assert_eq!(upstream_rq_timeout(&proxy).await?, 0);
    Ok(())
}
