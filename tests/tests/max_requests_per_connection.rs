//! The connection manager's `common_http_protocol_options.max_requests_per_connection`.
//!
//! Envoy 1.40's answers, measured with these tests and a raw client (N = 2): on HTTP/1.1
//! the Nth response carries `connection: close` and the connection closes after it;
//! requests pipelined behind the Nth are never served (nor counted in
//! `downstream_rq_total`); an HTTP/1.0 keep-alive client gets its Nth answer as HTTP/1.0
//! with `connection: close`. On HTTP/2 the Nth stream starts the drain sequence: a GOAWAY
//! (NO_ERROR) goes out as the stream arrives, before its response; streams the client
//! sent before it are still served (no REFUSED_STREAM), and the connection closes after
//! the drain timeout. `downstream_cx_max_requests_reached` counts every request at or
//! past N (once per HTTP/1 connection; on HTTP/2, three streams sent at once count 2).
//! 0 is accepted and means unlimited, as when the field is absent.

use std::time::Duration;

use baton_tests::config::{hcm_of, simple_proxy};
use baton_tests::h2raw::{code, flag, kind, RawH2};
use baton_tests::{EchoUpstream, Proxy, RawHttp1};
use serde_json::{json, Value};

/// Bound for a connection to be ended by the proxy.
const END_WITHIN: Duration = Duration::from_secs(20);

const REACHED: &str = "http.ingress.downstream_cx_max_requests_reached";

/// A proxy allowing `max` requests per downstream connection, drained for 0.1 s before
/// closing; `extra` is merged into the connection manager's config.
async fn proxy_with(upstream: &EchoUpstream, max: u32, extra: Value) -> anyhow::Result<Proxy> {
    let mut cfg = simple_proxy(&[upstream.addr()]);
    let hcm = hcm_of(&mut cfg, 0);
    hcm["common_http_protocol_options"] = json!({ "max_requests_per_connection": max });
    hcm["drain_timeout"] = json!("0.1s");
    if let (Some(hcm), Value::Object(extra)) = (hcm.as_object_mut(), extra) {
        hcm.extend(extra);
    }
    Proxy::start(&cfg).await
}

async fn counter(proxy: &Proxy, name: &str) -> anyhow::Result<u64> {
    Ok(proxy.stat(name).await?.unwrap_or(0))
}

#[tokio::test]
async fn the_nth_http1_response_closes_the_keep_alive_connection() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = proxy_with(&upstream, 2, json!({})).await?;
    let mut conn = RawHttp1::connect(proxy.listener_addr("http").await?).await?;
    conn.send_request("GET", "/1", &[], b"").await?;
    let first = conn.read_response().await?;
    assert_eq!(first.status, 200);
    assert!(
        !first.connection_close(),
        "{:?}",
        first.header("connection")
    );
    assert_eq!(counter(&proxy, REACHED).await?, 0);
    conn.send_request("GET", "/2", &[], b"").await?;
    let second = conn.read_response().await?;
    assert_eq!(second.status, 200);
    assert_eq!(second.header_all("connection"), ["close"]);
    assert!(conn.read_to_close().await?.is_empty());
    assert_eq!(counter(&proxy, REACHED).await?, 1);
    Ok(())
}

#[tokio::test]
async fn requests_pipelined_past_the_limit_are_not_served() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = proxy_with(&upstream, 2, json!({})).await?;
    let mut conn = RawHttp1::connect(proxy.listener_addr("http").await?).await?;
    let mut pipelined = Vec::new();
    for path in ["/1", "/2", "/3", "/4"] {
        pipelined.extend(baton_tests::client::format_request("GET", path, &[], b""));
    }
    conn.send(&pipelined).await?;
    let first = conn.read_response().await?;
    assert!(
        !first.connection_close(),
        "{:?}",
        first.header("connection")
    );
    let second = conn.read_response().await?;
    assert_eq!(second.status, 200);
    assert!(
        second.connection_close(),
        "{:?}",
        second.header("connection")
    );
    assert!(conn.read_to_close().await?.is_empty(), "a third response");
    assert_eq!(
        counter(&proxy, "http.ingress.downstream_rq_total").await?,
        2
    );
    assert_eq!(counter(&proxy, REACHED).await?, 1);
    Ok(())
}

#[tokio::test]
async fn an_http10_keep_alive_client_gets_close_on_the_nth_answer() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let extra = json!({ "http_protocol_options": { "accept_http_10": true } });
    let proxy = proxy_with(&upstream, 2, extra).await?;
    let mut conn = RawHttp1::connect(proxy.listener_addr("http").await?).await?;
    let request = b"GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n";
    conn.send(request).await?;
    let first = conn.read_response().await?;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("connection"), Some("keep-alive"));
    conn.send(request).await?;
    let second = conn.read_response().await?;
    assert_eq!(second.status, 200);
    assert_eq!(second.version, "HTTP/1.0");
    assert_eq!(second.header_all("connection"), ["close"]);
    assert!(conn.read_to_close().await?.is_empty());
    assert_eq!(counter(&proxy, REACHED).await?, 1);
    Ok(())
}

#[tokio::test]
async fn zero_means_unlimited() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = proxy_with(&upstream, 0, json!({})).await?;
    let mut conn = RawHttp1::connect(proxy.listener_addr("http").await?).await?;
    for path in ["/1", "/2", "/3"] {
        conn.send_request("GET", path, &[], b"").await?;
        let resp = conn.read_response().await?;
        assert_eq!(resp.status, 200);
        assert!(!resp.connection_close(), "{:?}", resp.header("connection"));
    }
    assert_eq!(counter(&proxy, REACHED).await?, 0);
    Ok(())
}

/// What an HTTP/2 connection showed until `streams` all ended: each stream's status
/// (None: reset or not indexed) in order, and whether a GOAWAY came before the last of
/// them ended, with the GOAWAY error codes seen.
struct H2Outcome {
    statuses: Vec<Option<u16>>,
    goaway_before_last_end: bool,
    goaway_codes: Vec<Option<u32>>,
}

async fn read_streams(conn: &mut RawH2, streams: &[u32]) -> anyhow::Result<H2Outcome> {
    let mut statuses = vec![None; streams.len()];
    let mut ended = vec![false; streams.len()];
    let mut goaway_codes = Vec::new();
    let mut goaway_before_last_end = false;
    for _ in 0..10_000 {
        if ended.iter().all(|e| *e) {
            break;
        }
        let Some(frame) = conn.read_frame().await? else {
            anyhow::bail!("closed before the streams ended: {ended:?}, GOAWAYs {goaway_codes:?}");
        };
        if frame.kind == kind::GOAWAY {
            goaway_codes.push(frame.error_code());
            goaway_before_last_end = true;
            continue;
        }
        let Some(i) = streams.iter().position(|s| *s == frame.stream) else {
            continue;
        };
        assert_ne!(
            frame.kind,
            kind::RST_STREAM,
            "stream {} reset",
            frame.stream
        );
        if frame.kind == kind::HEADERS && statuses[i].is_none() {
            statuses[i] = frame.indexed_status();
        }
        if frame.flags & flag::END_STREAM != 0 {
            ended[i] = true;
        }
    }
    anyhow::ensure!(ended.iter().all(|e| *e), "streams did not end: {ended:?}");
    Ok(H2Outcome {
        statuses,
        goaway_before_last_end,
        goaway_codes,
    })
}

#[tokio::test]
async fn the_nth_http2_stream_gets_goaway_before_its_response_then_the_close() -> anyhow::Result<()>
{
    let upstream = EchoUpstream::start("a").await?;
    let proxy = proxy_with(&upstream, 2, json!({})).await?;
    let mut conn = RawH2::connect(proxy.listener_addr("http").await?).await?;
    let first = conn.get("/1").await?;
    let outcome = read_streams(&mut conn, &[first]).await?;
    assert_eq!(outcome.statuses, [Some(200)]);
    assert!(
        outcome.goaway_codes.is_empty(),
        "{:?}",
        outcome.goaway_codes
    );
    // The Nth stream's answer is slow: the GOAWAY goes out as the stream arrives.
    let second = conn.get("/2?delay_ms=1000").await?;
    let outcome = read_streams(&mut conn, &[second]).await?;
    assert_eq!(outcome.statuses, [Some(200)]);
    assert!(
        outcome.goaway_before_last_end,
        "no GOAWAY before the response"
    );
    assert!(
        outcome
            .goaway_codes
            .iter()
            .all(|c| *c == Some(code::NO_ERROR)),
        "{:?}",
        outcome.goaway_codes
    );
    conn.wait_for_close(END_WITHIN).await?;
    assert_eq!(counter(&proxy, REACHED).await?, 1);
    Ok(())
}

#[tokio::test]
async fn http2_streams_sent_past_the_limit_before_the_goaway_are_served_and_counted(
) -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = proxy_with(&upstream, 2, json!({})).await?;
    let mut conn = RawH2::connect(proxy.listener_addr("http").await?).await?;
    // Three streams in one write: all arrive before the proxy's GOAWAY can.
    let mut burst = Vec::new();
    let mut streams = Vec::new();
    for path in ["/1", "/2", "/3"] {
        let id = conn.next_stream_id();
        let block = baton_tests::h2raw::request_block("GET", path, &[]);
        burst.extend(baton_tests::h2raw::frame(
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            id,
            &block,
        ));
        streams.push(id);
    }
    conn.write(&burst).await?;
    let outcome = read_streams(&mut conn, &streams).await?;
    assert_eq!(outcome.statuses, [Some(200); 3]);
    conn.wait_for_close(END_WITHIN).await?;
    // Streams 2 and 3 are at or past the limit.
    assert_eq!(counter(&proxy, REACHED).await?, 2);
    Ok(())
}
