//! Connection-level deadlines of the HTTP connection manager, which Baton arms only when
//! they can fire (no periodic per-connection wakeup): the connection idle timeout counts
//! from the end of the last stream, not from when it was armed, on HTTP/1.1 and HTTP/2,
//! and `max_connection_duration` ends a keep-alive connection with no idle timeout.
//!
//! Envoy 1.40's answers, measured with these tests: a request that outlives the idle
//! timeout is answered in full, and the connection is closed after it has been idle for
//! the timeout (`downstream_cx_idle_timeout` 1); HTTP/2 gets a GOAWAY (NO_ERROR) and the
//! close; at `max_connection_duration` a keep-alive HTTP/1.1 connection is closed
//! (`downstream_cx_max_duration_reached` 1).

use std::time::Duration;

use baton_tests::config::{hcm_of, simple_proxy};
use baton_tests::eventually::eventually;
use baton_tests::h2raw::{code, flag, kind, Ending, RawH2};
use baton_tests::{EchoUpstream, Proxy, RawHttp1};
use serde_json::json;

/// Bound for a connection to be ended by the proxy.
const END_WITHIN: Duration = Duration::from_secs(20);

fn stat(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
        .and_then(|v| v.trim().parse().ok())
}

async fn counter(proxy: &Proxy, name: &str) -> anyhow::Result<u64> {
    let resp = proxy.admin_request("GET", "/stats").await?;
    Ok(stat(&resp.body_text(), name).unwrap_or(0))
}

/// A proxy whose connections time out after `idle` idle; drained for 0.1 s before closing.
async fn proxy_with(
    upstream: &EchoUpstream,
    protocol_options: serde_json::Value,
) -> anyhow::Result<Proxy> {
    let mut cfg = simple_proxy(&[upstream.addr()]);
    let hcm = hcm_of(&mut cfg, 0);
    hcm["common_http_protocol_options"] = protocol_options;
    hcm["drain_timeout"] = json!("0.1s");
    Proxy::start(&cfg).await
}

#[tokio::test]
async fn an_http1_request_longer_than_the_idle_timeout_is_answered_then_the_idle_connection_closes(
) -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = proxy_with(&upstream, json!({ "idle_timeout": "0.3s" })).await?;
    let mut conn = RawHttp1::connect(proxy.listener_addr("http").await?).await?;
    // The upstream answers after three idle timeouts: the connection is busy, not idle.
    conn.send_request("GET", "/?delay_ms=1000", &[], b"")
        .await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 200);
    assert!(!resp.connection_close(), "{:?}", resp.header("connection"));
    // Idle from now on: closed once the timeout has passed since the response.
    assert!(conn.read_to_close().await?.is_empty());
    let name = "http.ingress.downstream_cx_idle_timeout";
    eventually(END_WITHIN, || async {
        Ok((counter(&proxy, name).await? == 1).then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn an_http2_connection_gets_goaway_after_its_idle_timeout() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = proxy_with(&upstream, json!({ "idle_timeout": "0.3s" })).await?;
    let mut conn = RawH2::connect(proxy.listener_addr("http").await?).await?;
    let stream = conn.get("/?delay_ms=1000").await?;
    let frames = conn.read_stream(stream).await?;
    assert_eq!(frames[0].indexed_status(), Some(200), "{frames:?}");
    match conn.wait_for_end(END_WITHIN).await? {
        Ending::GoAway(error) => assert_eq!(error, code::NO_ERROR),
        Ending::Closed => anyhow::bail!("closed without GOAWAY"),
    }
    conn.wait_for_close(END_WITHIN).await?;
    assert_eq!(
        counter(&proxy, "http.ingress.downstream_cx_idle_timeout").await?,
        1
    );
    Ok(())
}

#[tokio::test]
async fn max_connection_duration_closes_a_keep_alive_connection() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = proxy_with(&upstream, json!({ "max_connection_duration": "0.3s" })).await?;
    let mut conn = RawHttp1::connect(proxy.listener_addr("http").await?).await?;
    // No idle timeout is configured: only the duration deadline ends the connection.
    conn.send_request("GET", "/", &[], b"").await?;
    assert_eq!(conn.read_response().await?.status, 200);
    conn.read_to_close().await?;
    assert_eq!(
        counter(&proxy, "http.ingress.downstream_cx_max_duration_reached").await?,
        1
    );
    Ok(())
}

#[tokio::test]
async fn max_connection_duration_lets_an_http1_request_in_flight_finish_with_close(
) -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = proxy_with(&upstream, json!({ "max_connection_duration": "0.3s" })).await?;
    let mut conn = RawHttp1::connect(proxy.listener_addr("http").await?).await?;
    // The deadline and the drain timeout after it pass while the upstream waits.
    conn.send_request("GET", "/?delay_ms=1000", &[], b"")
        .await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 200);
    assert!(resp.connection_close(), "{:?}", resp.header("connection"));
    assert!(conn.read_to_close().await?.is_empty());
    assert_eq!(
        counter(&proxy, "http.ingress.downstream_cx_max_duration_reached").await?,
        1
    );
    Ok(())
}

#[tokio::test]
async fn max_connection_duration_sends_goaway_and_lets_an_http2_stream_finish() -> anyhow::Result<()>
{
    let upstream = EchoUpstream::start("a").await?;
    let proxy = proxy_with(&upstream, json!({ "max_connection_duration": "0.3s" })).await?;
    let mut conn = RawH2::connect(proxy.listener_addr("http").await?).await?;
    let stream = conn.get("/?delay_ms=1000").await?;
    let mut goaways = Vec::new();
    let mut status = None;
    let mut ended = false;
    for _ in 0..1000 {
        let Some(frame) = conn.read_frame().await? else {
            break;
        };
        if frame.kind == kind::GOAWAY {
            goaways.push(frame.error_code());
        }
        if frame.stream == stream {
            if frame.kind == kind::HEADERS && status.is_none() {
                status = frame.indexed_status();
            }
            assert_ne!(frame.kind, kind::RST_STREAM, "stream reset");
            if frame.flags & flag::END_STREAM != 0 {
                ended = true;
                break;
            }
        }
    }
    assert!(ended, "the stream did not end; GOAWAYs {goaways:?}");
    assert_eq!(status, Some(200));
    assert!(!goaways.is_empty(), "no GOAWAY before the response");
    assert!(
        goaways.iter().all(|c| *c == Some(code::NO_ERROR)),
        "{goaways:?}"
    );
    conn.wait_for_close(END_WITHIN).await?;
    assert_eq!(
        counter(&proxy, "http.ingress.downstream_cx_max_duration_reached").await?,
        1
    );
    Ok(())
}
