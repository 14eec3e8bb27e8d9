//! HTTP/2 (prior knowledge) downstream and `codec_type` AUTO/HTTP1/HTTP2: concurrent streams
//! on one connection, request bodies, local replies over HTTP/2, HTTP/2 to an HTTP/1.1
//! upstream, and each forced codec refusing the other protocol.

use baton_tests::config::{hcm_of, simple_proxy};
use baton_tests::{get, EchoUpstream, Echoed, H2Client, Proxy, RawHttp1};
use serde_json::json;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[tokio::test]
async fn concurrent_streams_on_one_connection() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let client = H2Client::connect(proxy.listener_addr("http").await?).await?;
    let requests = (0..10).map(|i| {
        let client = client.clone();
        async move { client.get(&format!("/s/{i}?delay_ms=30")).await }
    });
    for (i, resp) in futures_util::future::join_all(requests)
        .await
        .into_iter()
        .enumerate()
    {
        let resp = resp?;
        assert_eq!(resp.status, 200);
        let echoed = resp.json()?;
        assert_eq!(echoed.req_path(), format!("/s/{i}?delay_ms=30"));
        // The HTTP/1.1 upstream sees a Host header made from :authority.
        assert_eq!(echoed["version"], "HTTP/1.1");
        assert_eq!(echoed.req_header("host").as_deref(), Some("test"));
    }
    Ok(())
}

#[tokio::test]
async fn request_body_and_local_replies_over_http2() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let mut cfg = simple_proxy(&[upstream.addr()]);
    hcm_of(&mut cfg, 0)["route_config"]["virtual_hosts"][0]["domains"] = json!(["test"]);
    let proxy = Proxy::start(&cfg).await?;
    let client = H2Client::connect(proxy.listener_addr("http").await?).await?;
    let resp = client
        .request(
            "POST",
            "/post",
            &[("content-type", "text/plain")],
            b"h2 body",
        )
        .await?;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()?["body"], "h2 body");
    let upstream_status = client.get("/?status=503").await?;
    assert_eq!(upstream_status.status, 503);
    let mut other = H2Client::connect(proxy.listener_addr("http").await?).await?;
    other = other.with_authority("elsewhere");
    let missing = other.get("/").await?;
    assert_eq!(missing.status, 404);
    Ok(())
}

#[tokio::test]
async fn codec_http2_only_serves_http2() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let mut cfg = simple_proxy(&[upstream.addr()]);
    hcm_of(&mut cfg, 0)["codec_type"] = json!("HTTP2");
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    assert_eq!(H2Client::connect(addr).await?.get("/").await?.status, 200);
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n").await?;
    let bytes = conn.read_to_close().await?;
    assert!(
        !bytes.starts_with(b"HTTP/1.1"),
        "{:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(upstream.requests(), 1);
    Ok(())
}

#[tokio::test]
async fn codec_http1_only_serves_http1() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let mut cfg = simple_proxy(&[upstream.addr()]);
    hcm_of(&mut cfg, 0)["codec_type"] = json!("HTTP1");
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    assert_eq!(get(addr, "/").await?.status, 200);
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(H2_PREFACE).await?;
    let bytes = conn.read_to_close().await?;
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 4"), "{text}");
    assert_eq!(upstream.requests(), 1);
    Ok(())
}

#[tokio::test]
async fn codec_auto_serves_both() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let mut cfg = simple_proxy(&[upstream.addr()]);
    hcm_of(&mut cfg, 0)["codec_type"] = json!("AUTO");
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    assert_eq!(get(addr, "/").await?.status, 200);
    assert_eq!(H2Client::connect(addr).await?.get("/").await?.status, 200);
    Ok(())
}
