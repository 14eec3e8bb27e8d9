//! Smoke tests: the harness starts the proxy, finds its listener via /listeners and proxies a
//! request to the echo upstream over HTTP/1.1 and HTTP/2.

use baton_tests::config::simple_proxy;
use baton_tests::{get, EchoUpstream, Echoed, H2Client, Proxy};

#[tokio::test]
async fn proxies_http1_get_to_echo_upstream() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let addr = proxy.listener_addr("http").await?;
    let resp = get(addr, "/hello?x=1").await?;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let echoed = resp.json()?;
    assert_eq!(echoed.req_path(), "/hello?x=1");
    assert_eq!(echoed["method"], "GET");
    assert_eq!(resp.header("x-upstream-name"), Some("a"));
    Ok(())
}

#[tokio::test]
async fn proxies_http2_prior_knowledge_get() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let addr = proxy.listener_addr("http").await?;
    let client = H2Client::connect(addr).await?;
    let resp = client.get("/h2").await?;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()?.req_path(), "/h2");
    Ok(())
}
