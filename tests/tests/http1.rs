//! HTTP/1.1 downstream codec through the HTTP connection manager: keep-alive, chunked bodies
//! both ways, pipelining, `Expect: 100-continue`, hop-by-hop header removal, HTTP/1.0.

use baton_tests::config::simple_proxy;
use baton_tests::{EchoUpstream, Echoed, Proxy, RawHttp1};

async fn setup() -> anyhow::Result<(EchoUpstream, Proxy, std::net::SocketAddr)> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let addr = proxy.listener_addr("http").await?;
    Ok((upstream, proxy, addr))
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() -> anyhow::Result<()> {
    let (_upstream, _proxy, addr) = setup().await?;
    let mut conn = RawHttp1::connect(addr).await?;
    for i in 0..3 {
        conn.send_request("GET", &format!("/ka/{i}"), &[], b"")
            .await?;
        let resp = conn.read_response().await?;
        assert_eq!(resp.status, 200);
        assert!(
            !resp.connection_close(),
            "proxy closed a keep-alive connection"
        );
        assert_eq!(resp.json()?.req_path(), format!("/ka/{i}"));
    }
    Ok(())
}

#[tokio::test]
async fn chunked_request_body_is_forwarded_whole() -> anyhow::Result<()> {
    let (_upstream, _proxy, addr) = setup().await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(
        b"POST /chunked HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\n\r\n\
          5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 200);
    let echoed = resp.json()?;
    assert_eq!(echoed["body"], "hello world");
    assert_eq!(echoed["method"], "POST");
    Ok(())
}

#[tokio::test]
async fn chunked_response_is_relayed_chunked() -> anyhow::Result<()> {
    let (_upstream, _proxy, addr) = setup().await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send_request("GET", "/stream?chunked=1", &[], b"")
        .await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert_eq!(resp.json()?.req_path(), "/stream?chunked=1");
    // The connection stays usable after a chunked response.
    conn.send_request("GET", "/after", &[], b"").await?;
    assert_eq!(conn.read_response().await?.json()?.req_path(), "/after");
    Ok(())
}

#[tokio::test]
async fn pipelined_requests_get_responses_in_order() -> anyhow::Result<()> {
    let (_upstream, _proxy, addr) = setup().await?;
    let mut conn = RawHttp1::connect(addr).await?;
    // The first request is slower upstream; the answers must still come back in order.
    conn.send(
        b"GET /first?delay_ms=100 HTTP/1.1\r\nhost: test\r\n\r\n\
          GET /second HTTP/1.1\r\nhost: test\r\n\r\n\
          GET /third HTTP/1.1\r\nhost: test\r\n\r\n",
    )
    .await?;
    for expected in ["/first?delay_ms=100", "/second", "/third"] {
        let resp = conn.read_response().await?;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.json()?.req_path(), expected);
    }
    Ok(())
}

#[tokio::test]
async fn expect_100_continue_gets_interim_response_then_final() -> anyhow::Result<()> {
    let (_upstream, _proxy, addr) = setup().await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(
        b"POST /upload HTTP/1.1\r\nhost: test\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\n",
    )
    .await?;
    let interim = conn.read_response().await?;
    assert_eq!(interim.status, 100);
    conn.send(b"data").await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 200);
    let echoed = resp.json()?;
    assert_eq!(echoed["body"], "data");
    // The proxy answered the expectation itself, so the upstream does not see it.
    assert_eq!(echoed.req_header("expect"), None);
    Ok(())
}

#[tokio::test]
async fn hop_by_hop_request_headers_are_not_forwarded() -> anyhow::Result<()> {
    let (_upstream, _proxy, addr) = setup().await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send_request(
        "GET",
        "/hop",
        &[
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("x-end-to-end", "yes"),
        ],
        b"",
    )
    .await?;
    let resp = conn.read_response().await?;
    let echoed = resp.json()?;
    assert_eq!(echoed.req_header("keep-alive"), None);
    assert_eq!(echoed.req_header("proxy-connection"), None);
    assert_ne!(
        echoed.req_header("connection").as_deref(),
        Some("keep-alive")
    );
    assert_eq!(echoed.req_header("x-end-to-end").as_deref(), Some("yes"));
    Ok(())
}

#[tokio::test]
async fn hop_by_hop_response_headers_are_not_relayed() -> anyhow::Result<()> {
    let (_upstream, _proxy, addr) = setup().await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send_request(
        "GET",
        "/hop?header=keep-alive:timeout=9&header=x-kept:yes",
        &[],
        b"",
    )
    .await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("keep-alive"), None);
    assert_eq!(resp.header("x-kept"), Some("yes"));
    Ok(())
}

#[tokio::test]
async fn upstream_connection_close_does_not_close_downstream() -> anyhow::Result<()> {
    let (_upstream, _proxy, addr) = setup().await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send_request("GET", "/bye?close=1", &[], b"").await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 200);
    assert!(!resp.connection_close());
    conn.send_request("GET", "/again", &[], b"").await?;
    assert_eq!(conn.read_response().await?.json()?.req_path(), "/again");
    Ok(())
}

#[tokio::test]
async fn http10_is_rejected_with_426_by_default() -> anyhow::Result<()> {
    let (_upstream, _proxy, addr) = setup().await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(b"GET /old HTTP/1.0\r\nhost: test\r\n\r\n")
        .await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 426);
    Ok(())
}

#[tokio::test]
async fn head_request_gets_headers_only() -> anyhow::Result<()> {
    let (_upstream, _proxy, addr) = setup().await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send_request("HEAD", "/head", &[], b"").await?;
    let resp = conn.read_response_to("HEAD").await?;
    assert_eq!(resp.status, 200);
    assert!(resp.body.is_empty());
    conn.send_request("GET", "/next", &[], b"").await?;
    assert_eq!(conn.read_response().await?.json()?.req_path(), "/next");
    Ok(())
}

/// An `upgrade: h2c` request is served as plain HTTP/1.1 (Envoy drops the h2c upgrade
/// headers): the upstream sees none of them and the connection stays open.
#[tokio::test]
async fn h2c_upgrade_request_is_served_as_http11() -> anyhow::Result<()> {
    let (_u, _p, addr) = setup().await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send_request(
        "GET",
        "/h2c",
        &[
            ("upgrade", "h2c"),
            ("connection", "Upgrade, HTTP2-Settings"),
            ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
        ],
        b"",
    )
    .await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 200);
    assert!(!resp.connection_close());
    let echoed = resp.json()?;
    for name in ["upgrade", "http2-settings", "connection"] {
        assert_eq!(echoed.req_header(name), None, "{name} forwarded");
    }
    conn.send_request("GET", "/again", &[], b"").await?;
    assert_eq!(conn.read_response().await?.status, 200);
    Ok(())
}

/// A local reply that ends an HTTP/1.0 keep-alive connection says only `close`, in an
/// HTTP/1.0 status line.
#[tokio::test]
async fn http10_closing_local_reply_says_only_close() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let mut cfg = simple_proxy(&[upstream.addr()]);
    baton_tests::config::hcm_of(&mut cfg, 0)["http_protocol_options"] =
        serde_json::json!({ "accept_http_10": true });
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut conn = RawHttp1::connect(addr).await?;
    // No Host and no default host: 400, and the connection closes.
    conn.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.version, "HTTP/1.0");
    assert_eq!(resp.header_all("connection"), ["close"]);
    // With a Host the answer keeps the connection open.
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(b"GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
        .await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.version, "HTTP/1.0");
    assert_eq!(resp.header("connection"), Some("keep-alive"));
    Ok(())
}
