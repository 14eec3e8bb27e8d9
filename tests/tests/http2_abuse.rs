//! Hostile HTTP/2 clients (issue 15 §3), each written frame by frame over TCP
//! (`h2raw`): after each abuse the abusive connection is ended, the proxy is still up, and
//! a separate, normal client is served.
//!
//! Envoy 1.40's answers, measured with these tests:
//! - rapid reset (CVE-2023-44487): HEADERS + RST_STREAM pairs. Envoy's connection manager
//!   counts a stream closed before its response started and within 1 s
//!   (`premature_reset_min_stream_lifetime_seconds`) as a premature reset; once half of
//!   `premature_reset_total_stream_count` (500) is reached (or, past 500 streams, half of
//!   them), it closes the connection and counts
//!   `http.<prefix>.downstream_rq_too_many_premature_resets`. Below that the connection
//!   keeps serving.
//! - CONTINUATION flood: the header block grows past `max_request_headers_kb`; the
//!   connection is closed.
//! - PING / SETTINGS floods from a client that does not read: Envoy closes once its
//!   queue of unwritten control frames passes `max_outbound_control_frames`; Baton's
//!   codec (h2) holds one pending answer and stops reading instead (see the README's
//!   known differences): the flood is held back and the proxy stays bounded.
//! - `max_concurrent_streams`: a stream over the limit ends the whole connection, with
//!   no GOAWAY, RST_STREAM or answer to the streams in flight (whether or not the client
//!   had acknowledged the proxy's SETTINGS).
//! - More request headers than `max_headers_count` (pseudo-headers counted), or larger
//!   ones than `max_request_headers_kb` (names and values, no per-header overhead):
//!   that stream is reset (RST_STREAM INTERNAL_ERROR, however far over the limit, as long
//!   as no single field reaches 64 KiB), counted in `downstream_rq_total` and
//!   `downstream_rq_rx_reset`; the connection keeps serving.

use std::time::Duration;

use baton_tests::config::{hcm_of, simple_proxy};
use baton_tests::eventually::eventually;
use baton_tests::h2raw::{self, code, flag, frame, kind, request_block, Ending, RawH2};
use baton_tests::{EchoUpstream, H2Client, Proxy};
use serde_json::json;

/// Bound for an abusive connection to be ended.
const END_WITHIN: Duration = Duration::from_secs(20);

fn stat(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok())
}

async fn counter(proxy: &Proxy, name: &str) -> anyhow::Result<u64> {
    let resp = proxy.admin_request("GET", "/stats").await?;
    Ok(stat(&resp.body_text(), name).unwrap_or(0))
}

/// A normal HTTP/2 client on a new connection is served.
async fn others_are_served(proxy: &Proxy) -> anyhow::Result<()> {
    let addr = proxy.listener_addr("http").await?;
    let client = H2Client::connect(addr).await?;
    let resp = client.get("/after").await?;
    assert_eq!(resp.status, 200);
    Ok(())
}

/// `n` streams, each HEADERS (a request the upstream answers only after 5 s) and at once
/// RST_STREAM CANCEL, as one write.
fn rapid_resets(first_stream: u32, n: u32) -> Vec<u8> {
    let block = request_block("GET", "/?delay_ms=5000", &[]);
    let mut out = Vec::new();
    for i in 0..n {
        let id = first_stream + 2 * i;
        out.extend_from_slice(&frame(
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            id,
            &block,
        ));
        out.extend_from_slice(&frame(kind::RST_STREAM, 0, id, &code::CANCEL.to_be_bytes()));
    }
    out
}

#[tokio::test]
async fn rapid_reset_closes_the_connection_and_counts_it() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut abuser = RawH2::connect(addr).await?;
    let (ending, _) = abuser.flood(&rapid_resets(1, 400), END_WITHIN).await?;
    eprintln!("rapid reset ended with {ending:?}");
    if let Ending::GoAway(_) = ending {
        abuser.wait_for_close(END_WITHIN).await?;
    }
    eventually(END_WITHIN, || async {
        let n = counter(
            &proxy,
            "http.ingress.downstream_rq_too_many_premature_resets",
        )
        .await?;
        Ok((n == 1).then_some(()))
    })
    .await?;
    others_are_served(&proxy).await
}

#[tokio::test]
async fn resets_below_envoys_threshold_keep_the_connection() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut client = RawH2::connect(addr).await?;
    // 200 premature resets: under half of 500.
    client.write(&rapid_resets(1, 200)).await?;
    let id = 401;
    client
        .send_headers(id, &request_block("GET", "/still", &[]), true)
        .await?;
    let frames = client.read_stream(id).await?;
    assert_eq!(frames[0].kind, kind::HEADERS, "{frames:?}");
    assert_eq!(frames[0].indexed_status(), Some(200));
    assert_eq!(
        counter(
            &proxy,
            "http.ingress.downstream_rq_too_many_premature_resets"
        )
        .await?,
        0
    );
    others_are_served(&proxy).await
}

#[tokio::test]
async fn continuation_flood_ends_the_connection() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut abuser = RawH2::connect(addr).await?;
    let mut out = frame(kind::HEADERS, 0, 1, &request_block("GET", "/", &[]));
    // 100,000 CONTINUATION frames of one small header each (several MB of headers).
    let mut piece = Vec::new();
    h2raw::hpack_literal(&mut piece, "x-flood", b"0123456789abcdef");
    let one = frame(kind::CONTINUATION, 0, 1, &piece);
    for _ in 0..100_000 {
        out.extend_from_slice(&one);
    }
    let (ending, _) = abuser.flood(&out, END_WITHIN).await?;
    eprintln!("CONTINUATION flood ended with {ending:?}");
    if let Ending::GoAway(_) = ending {
        abuser.wait_for_close(END_WITHIN).await?;
    }
    assert_eq!(upstream.requests(), 0);
    others_are_served(&proxy).await
}

#[tokio::test]
async fn empty_continuation_flood_ends_the_connection() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut abuser = RawH2::connect(addr).await?;
    let mut out = frame(kind::HEADERS, 0, 1, &request_block("GET", "/", &[]));
    let one = frame(kind::CONTINUATION, 0, 1, &[]);
    for _ in 0..100_000 {
        out.extend_from_slice(&one);
    }
    let (ending, _) = abuser.flood(&out, END_WITHIN).await?;
    eprintln!("empty CONTINUATION flood ended with {ending:?}");
    if let Ending::GoAway(_) = ending {
        abuser.wait_for_close(END_WITHIN).await?;
    }
    others_are_served(&proxy).await
}

/// A client that floods `frame_bytes` without reading what the proxy answers (its
/// receive buffer kept small): the flood is ended (Envoy) or held back (h2); either
/// way the proxy stays up and serves others.
async fn unread_flood(proxy: &Proxy, one: &[u8], count: usize) -> anyhow::Result<String> {
    let addr = proxy.listener_addr("http").await?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let mut stream = tokio::time::timeout(END_WITHIN, socket.connect(addr)).await??;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut out = h2raw::PREFACE.to_vec();
    out.extend_from_slice(&frame(kind::SETTINGS, 0, 0, &[]));
    for _ in 0..count {
        out.extend_from_slice(one);
    }
    let outcome = match tokio::time::timeout(Duration::from_secs(5), stream.write_all(&out)).await {
        Ok(Ok(())) => "all written".to_string(),
        Ok(Err(e)) => format!("write failed: {e}"),
        Err(_) => "held back".to_string(),
    };
    // What did the proxy do with the connection? Read (bounded) until it closes.
    let mut sink = vec![0u8; 64 * 1024];
    let mut goaway = false;
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(3), stream.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => {
                goaway |= sink[..n]
                    .windows(4)
                    .any(|w| w[3] == kind::GOAWAY && w[..3] == [0, 0, 8]);
            }
            Err(_) => break false,
        }
    };
    Ok(format!(
        "{outcome}, goaway seen: {goaway}, closed: {closed}"
    ))
}

#[tokio::test]
async fn ping_flood_is_ended_or_held_back() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let ping = frame(kind::PING, 0, 0, &[7; 8]);
    let outcome = unread_flood(&proxy, &ping, 500_000).await?;
    eprintln!("PING flood: {outcome}");
    others_are_served(&proxy).await
}

#[tokio::test]
async fn settings_flood_is_ended_or_held_back() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let settings = frame(kind::SETTINGS, 0, 0, &[]);
    let outcome = unread_flood(&proxy, &settings, 500_000).await?;
    eprintln!("SETTINGS flood: {outcome}");
    others_are_served(&proxy).await
}

#[tokio::test]
async fn window_update_flood_is_ended_or_held_back() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut abuser = RawH2::connect(addr).await?;
    // WINDOW_UPDATE frames of 1 on the connection: the window never overflows
    // (2^31 - 1) within the flood.
    let one = frame(kind::WINDOW_UPDATE, 0, 0, &1u32.to_be_bytes());
    let mut out = Vec::new();
    for _ in 0..200_000 {
        out.extend_from_slice(&one);
    }
    let result = abuser.flood(&out, Duration::from_secs(5)).await;
    eprintln!("WINDOW_UPDATE flood: {result:?}");
    others_are_served(&proxy).await
}

#[tokio::test]
async fn a_stream_over_max_concurrent_streams_ends_the_connection() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let mut cfg = simple_proxy(&[upstream.addr()]);
    hcm_of(&mut cfg, 0)["http2_protocol_options"] = json!({ "max_concurrent_streams": 2 });
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut client = RawH2::connect(addr).await?;
    // The proxy's SETTINGS carry the limit (id 0x3).
    let settings = client.read_frame().await?.expect("server SETTINGS");
    assert_eq!(settings.kind, kind::SETTINGS);
    let limit = settings
        .payload
        .chunks(6)
        .find(|s| s[..2] == [0, 3])
        .map(|s| u32::from_be_bytes([s[2], s[3], s[4], s[5]]));
    assert_eq!(limit, Some(2), "{settings:?}");
    // Within the limit, streams are served one after the other on the connection.
    for _ in 0..3 {
        let id = client.get("/ok").await?;
        let frames = client.read_stream(id).await?;
        assert_eq!(frames[0].indexed_status(), Some(200), "{frames:?}");
    }
    // Three slow streams at once: the third is over the limit, and the connection ends
    // without an answer to any of them, RST_STREAM or GOAWAY (as Envoy 1.40).
    let block = request_block("GET", "/?delay_ms=1000", &[]);
    let mut out = Vec::new();
    let first = client.next_stream_id();
    for id in [first, first + 2, first + 4] {
        out.extend_from_slice(&frame(
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            id,
            &block,
        ));
    }
    client.write(&out).await?;
    let deadline = tokio::time::Instant::now() + END_WITHIN;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "connection not closed within {END_WITHIN:?}"
        );
        match client.read_frame().await? {
            None => break,
            Some(f) => assert!(
                f.kind != kind::HEADERS && f.kind != kind::RST_STREAM && f.kind != kind::GOAWAY,
                "{f:?}"
            ),
        }
    }
    others_are_served(&proxy).await
}

/// Request headers over `max_request_headers_kb`: Envoy counts names and values
/// (pseudo-headers included, no per-header overhead) and resets a stream over the limit
/// with INTERNAL_ERROR; the connection keeps serving.
#[tokio::test]
async fn request_headers_over_the_limit_reset_the_stream_only() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let mut cfg = simple_proxy(&[upstream.addr()]);
    hcm_of(&mut cfg, 0)["max_request_headers_kb"] = json!(2);
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut client = RawH2::connect(addr).await?;
    // `:method GET`, `:scheme http`, `:authority test`, `:path /big`: 44 bytes, and
    // `x-big` 5 + n: 2048 in all for n = 1999.
    let request = |n: usize| request_block("GET", "/big", &[("x-big", &vec![b'x'; n])]);
    let id = client.next_stream_id();
    client.send_headers(id, &request(2000), true).await?;
    let frames = client.read_stream(id).await?;
    assert_eq!(frames[0].kind, kind::RST_STREAM, "{frames:?}");
    assert_eq!(frames[0].error_code(), Some(code::INTERNAL_ERROR));
    assert_eq!(upstream.requests(), 0);
    let id = client.next_stream_id();
    client.send_headers(id, &request(1999), true).await?;
    let frames = client.read_stream(id).await?;
    assert_eq!(frames[0].indexed_status(), Some(200), "{frames:?}");
    // Far over the limit (27 KB of fields under 64 KB each): the same reset, no 431.
    let id = client.next_stream_id();
    let big = vec![b'x'; 9000];
    let big = big.as_slice();
    let far = request_block("GET", "/far", &[("x-1", big), ("x-2", big), ("x-3", big)]);
    client.send_headers(id, &far, true).await?;
    let frames = client.read_stream(id).await?;
    assert_eq!(frames[0].kind, kind::RST_STREAM, "{frames:?}");
    assert_eq!(frames[0].error_code(), Some(code::INTERNAL_ERROR));
    assert_eq!(upstream.requests(), 1);
    // Envoy counts each reset stream as a request the client reset.
    let resets = counter(&proxy, "http.ingress.downstream_rq_rx_reset").await?;
    assert_eq!(resets, 2);
    assert_eq!(
        counter(&proxy, "http.ingress.downstream_rq_total").await?,
        3
    );
    others_are_served(&proxy).await
}

/// More request headers than `max_headers_count` (the pseudo-headers count): Envoy
/// resets that stream with INTERNAL_ERROR and keeps serving the connection.
#[tokio::test]
async fn request_header_count_over_the_limit_on_http2() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let mut cfg = simple_proxy(&[upstream.addr()]);
    hcm_of(&mut cfg, 0)["common_http_protocol_options"] = json!({ "max_headers_count": 10 });
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut client = RawH2::connect(addr).await?;
    let names: Vec<String> = (0..20).map(|i| format!("x-h{i}")).collect();
    let extra: Vec<(&str, &[u8])> = names
        .iter()
        .map(|n| (n.as_str(), b"v".as_slice()))
        .collect();
    // Four pseudo-headers and seven more: 11.
    let id = client.next_stream_id();
    client
        .send_headers(id, &request_block("GET", "/many", &extra[..7]), true)
        .await?;
    let frames = client.read_stream(id).await?;
    assert_eq!(frames[0].kind, kind::RST_STREAM, "{frames:?}");
    assert_eq!(frames[0].error_code(), Some(code::INTERNAL_ERROR));
    // Exactly ten: served, on the same connection.
    let id = client.next_stream_id();
    client
        .send_headers(id, &request_block("GET", "/ten", &extra[..6]), true)
        .await?;
    let frames = client.read_stream(id).await?;
    assert_eq!(frames[0].indexed_status(), Some(200), "{frames:?}");
    let id = client.get("/few").await?;
    let frames = client.read_stream(id).await?;
    assert_eq!(frames[0].indexed_status(), Some(200), "{frames:?}");
    assert_eq!(upstream.requests(), 2);
    Ok(())
}

/// A header block of literal fields, in order.
fn block_of(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in fields {
        h2raw::hpack_literal(&mut block, name, value.as_bytes());
    }
    block
}

/// Requests h2 passes on and Envoy's codec refuses (RFC 9113 §8.3.1: neither
/// `:authority` nor `host`, `:path: *` on a GET, CONNECT without an authority): Envoy 1.40
/// ends the connection without a GOAWAY, counts `downstream_cx_protocol_error`,
/// `http2.rx_messaging_error` and a request the client reset, and the connection's end
/// as local with the request in flight. The upstream sees nothing.
#[tokio::test]
async fn invalid_messaging_ends_the_connection_without_goaway() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let addr = proxy.listener_addr("http").await?;
    let requests = [
        block_of(&[(":method", "GET"), (":scheme", "http"), (":path", "/na")]),
        request_block("GET", "*", &[]),
        block_of(&[(":method", "CONNECT")]),
    ];
    for block in &requests {
        let mut client = RawH2::connect(addr).await?;
        let id = client.next_stream_id();
        client.send_headers(id, block, true).await?;
        assert_eq!(client.wait_for_end(END_WITHIN).await?, Ending::Closed);
    }
    eventually(END_WITHIN, || async {
        let destroyed =
            counter(&proxy, "http.ingress.downstream_cx_destroy_local_active_rq").await?;
        Ok((destroyed == 3).then_some(()))
    })
    .await?;
    for (name, want) in [
        ("http.ingress.downstream_cx_protocol_error", 3),
        ("http2.rx_messaging_error", 3),
        ("http.ingress.downstream_rq_rx_reset", 3),
        ("http.ingress.downstream_rq_total", 3),
    ] {
        assert_eq!(counter(&proxy, name).await?, want, "{name}");
    }
    assert_eq!(upstream.requests(), 0);
    others_are_served(&proxy).await
}

/// The same requests with `override_stream_error_on_invalid_http_message: true`: only
/// the stream is reset (RST_STREAM PROTOCOL_ERROR) and the connection serves on;
/// `OPTIONS *` is a valid request either way.
#[tokio::test]
async fn invalid_messaging_resets_the_stream_when_configured() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let mut cfg = simple_proxy(&[upstream.addr()]);
    hcm_of(&mut cfg, 0)["http2_protocol_options"] =
        json!({ "override_stream_error_on_invalid_http_message": true });
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut client = RawH2::connect(addr).await?;
    for block in [
        block_of(&[(":method", "GET"), (":scheme", "http"), (":path", "/na")]),
        request_block("GET", "*", &[]),
    ] {
        let id = client.next_stream_id();
        client.send_headers(id, &block, true).await?;
        let frames = client.read_stream(id).await?;
        assert_eq!(frames[0].kind, kind::RST_STREAM, "{frames:?}");
        assert_eq!(frames[0].error_code(), Some(code::PROTOCOL_ERROR));
    }
    let id = client.next_stream_id();
    client
        .send_headers(id, &request_block("OPTIONS", "*", &[]), true)
        .await?;
    let frames = client.read_stream(id).await?;
    assert_eq!(frames[0].kind, kind::HEADERS, "{frames:?}");
    assert_eq!(counter(&proxy, "http2.rx_messaging_error").await?, 2);
    assert_eq!(
        counter(&proxy, "http.ingress.downstream_cx_protocol_error").await?,
        0
    );
    // `*` matches no `prefix: /` route: answered locally (404), as Envoy does.
    assert_eq!(upstream.requests(), 0);
    Ok(())
}
