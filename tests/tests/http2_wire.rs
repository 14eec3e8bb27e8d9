//! What a downstream HTTP/2 connection shows on the wire, frame by frame (`h2raw`), as
//! Envoy 1.40 shows it.
//!
//! Envoy 1.40's answers, measured with these tests:
//! - its first SETTINGS frame is `HEADER_TABLE_SIZE` 4096, `ENABLE_CONNECT_PROTOCOL` 0,
//!   `MAX_CONCURRENT_STREAMS` 1024, `INITIAL_WINDOW_SIZE` 16 MiB, in that order, with
//!   no `MAX_FRAME_SIZE` and no `MAX_HEADER_LIST_SIZE`; a WINDOW_UPDATE raises the
//!   connection window to 24 MiB. Configured `http2_protocol_options` values replace
//!   the defaults.
//! - a header field whose name or value is longer than 64 KiB (as encoded; nghttp2's
//!   HPACK limit) fails the whole connection: GOAWAY COMPRESSION_ERROR naming the last
//!   stream opened, then the close. A field of exactly 64 KiB is only over
//!   `max_request_headers_kb`: that stream is reset (INTERNAL_ERROR), the connection
//!   serves on.
//! - codec stats: downstream HTTP/2 connections of every connection manager count in
//!   the root `http2.*` (created with the first one), upstream ones in
//!   `cluster.<name>.http2.*`: `nghttp2_downstream_connections` /
//!   `nghttp2_upstream_connections` per connection, `rx_reset` / `tx_reset` per
//!   RST_STREAM received / sent (a client's reset of a proxied stream is a downstream
//!   `rx_reset` and an upstream `tx_reset`), `trailers` per request with trailers,
//!   `header_overflow` (more headers than `max_headers_count`) and
//!   `header_list_size_too_large` (over `max_request_headers_kb`) per stream reset for it.

use std::time::Duration;

use baton_tests::config::{
    bootstrap, hcm_of, http_listener, prefix_route, route_config, simple_proxy, static_cluster,
    vhost, with_http2_upstream,
};
use baton_tests::eventually::eventually;
use baton_tests::h2raw::{code, flag, kind, request_block, Frame, RawH2};
use baton_tests::{EchoUpstream, H2Client, Proxy};
use serde_json::json;

/// (id, value) pairs of a SETTINGS payload, in order.
fn settings_of(frame: &Frame) -> Vec<(u16, u32)> {
    frame
        .payload
        .chunks(6)
        .map(|s| {
            (
                u16::from_be_bytes([s[0], s[1]]),
                u32::from_be_bytes([s[2], s[3], s[4], s[5]]),
            )
        })
        .collect()
}

/// The server's SETTINGS and the connection WINDOW_UPDATE that follows (None when
/// there is none before the SETTINGS ACK and a first response).
async fn opening(client: &mut RawH2) -> anyhow::Result<(Vec<(u16, u32)>, Option<u32>)> {
    let first = client.read_frame().await?.expect("server SETTINGS");
    assert_eq!(first.kind, kind::SETTINGS, "{first:?}");
    assert_eq!(first.flags, 0, "{first:?}");
    let settings = settings_of(&first);
    // A request makes sure something follows a missing WINDOW_UPDATE.
    let id = client.get("/").await?;
    for _ in 0..10 {
        let f = client.read_frame().await?.expect("frame");
        if f.kind == kind::WINDOW_UPDATE && f.stream == 0 {
            let v = u32::from_be_bytes([f.payload[0], f.payload[1], f.payload[2], f.payload[3]]);
            return Ok((settings, Some(v)));
        }
        if f.stream == id {
            return Ok((settings, None));
        }
    }
    anyhow::bail!("no WINDOW_UPDATE nor response within 10 frames")
}

#[tokio::test]
async fn settings_and_window_update_are_envoys() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut client = RawH2::connect(addr).await?;
    let (settings, window) = opening(&mut client).await?;
    assert_eq!(
        settings,
        [(1, 4096), (8, 0), (3, 1024), (4, 16 * 1024 * 1024)]
    );
    assert_eq!(window, Some(24 * 1024 * 1024 - 65_535));
    Ok(())
}

#[tokio::test]
async fn configured_settings_replace_the_defaults() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let mut cfg = simple_proxy(&[upstream.addr()]);
    hcm_of(&mut cfg, 0)["http2_protocol_options"] = json!({
        "max_concurrent_streams": 7,
        "initial_stream_window_size": 70000,
        "initial_connection_window_size": 65535,
    });
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut client = RawH2::connect(addr).await?;
    let (settings, window) = opening(&mut client).await?;
    assert_eq!(settings, [(1, 4096), (8, 0), (3, 7), (4, 70000)]);
    assert_eq!(window, None);
    Ok(())
}

#[tokio::test]
async fn a_header_field_over_64_kib_fails_the_connection() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut client = RawH2::connect(addr).await?;
    let request = |n: usize| request_block("GET", "/big", &[("x-big", &vec![b'x'; n])]);
    // Exactly 64 KiB: over max_request_headers_kb only, that stream is reset.
    let id = client.next_stream_id();
    client.send_headers(id, &request(64 * 1024), true).await?;
    let frames = client.read_stream(id).await?;
    assert_eq!(frames[0].kind, kind::RST_STREAM, "{frames:?}");
    assert_eq!(frames[0].error_code(), Some(code::INTERNAL_ERROR));
    let id = client.get("/ok").await?;
    let frames = client.read_stream(id).await?;
    assert_eq!(frames[0].indexed_status(), Some(200), "{frames:?}");
    // One byte more: GOAWAY COMPRESSION_ERROR naming that stream, then the close.
    let id = client.next_stream_id();
    client
        .send_headers(id, &request(64 * 1024 + 1), true)
        .await?;
    let goaway = loop {
        match client.read_frame().await? {
            Some(f) if f.kind == kind::GOAWAY => break f,
            Some(f) => assert_ne!(f.stream, id, "{f:?}"),
            None => anyhow::bail!("closed without GOAWAY"),
        }
    };
    assert_eq!(goaway.error_code(), Some(code::COMPRESSION_ERROR));
    let last = &goaway.payload[..4];
    assert_eq!(u32::from_be_bytes([last[0], last[1], last[2], last[3]]), id);
    assert!(client.read_frame().await?.is_none(), "closed after GOAWAY");
    assert_eq!(upstream.requests(), 1);
    // Other connections are served.
    let other = H2Client::connect(addr).await?;
    assert_eq!(other.get("/after").await?.status, 200);
    Ok(())
}

/// `name`'s value in a text `/stats` answer (None when absent).
async fn stat(proxy: &Proxy, name: &str) -> anyhow::Result<Option<u64>> {
    let body = proxy.admin_request("GET", "/stats").await?.body_text();
    Ok(body
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok()))
}

/// Waits until every `(name, value)` holds.
async fn stats_become(proxy: &Proxy, expected: &[(&str, u64)]) -> anyhow::Result<()> {
    let result = eventually(Duration::from_secs(10), || async {
        for (name, value) in expected {
            if stat(proxy, name).await? != Some(*value) {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await;
    if result.is_err() {
        for (name, value) in expected {
            eprintln!("{name}: {:?} (expected {value})", stat(proxy, name).await?);
        }
    }
    result
}

#[tokio::test]
async fn http2_codec_stats_count_resets_overflows_and_trailers() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let cfg = bootstrap(
        vec![http_listener(
            "http",
            route_config(vec![vhost(
                "all",
                &["*"],
                vec![prefix_route("/", "backend")],
            )]),
        )],
        vec![with_http2_upstream(static_cluster(
            "backend",
            &[upstream.addr()],
        ))],
    );
    let proxy = Proxy::start(&cfg).await?;
    // Created with the first HTTP/2 connection.
    assert_eq!(stat(&proxy, "http2.rx_reset").await?, None);
    assert_eq!(stat(&proxy, "cluster.backend.http2.tx_reset").await?, None);
    let addr = proxy.listener_addr("http").await?;
    let mut client = RawH2::connect(addr).await?;
    // A proxied stream the client resets.
    let slow = client.get("/slow?delay_ms=5000").await?;
    eventually(Duration::from_secs(10), || async {
        Ok((upstream.requests() == 1).then_some(()))
    })
    .await?;
    client
        .send(kind::RST_STREAM, 0, slow, &code::CANCEL.to_be_bytes())
        .await?;
    stats_become(
        &proxy,
        &[
            ("http2.nghttp2_downstream_connections", 1),
            ("http2.rx_reset", 1),
            ("http2.tx_reset", 0),
            ("cluster.backend.http2.nghttp2_upstream_connections", 1),
            ("cluster.backend.http2.tx_reset", 1),
            ("cluster.backend.http2.rx_reset", 0),
        ],
    )
    .await?;
    // A request with trailers.
    let id = client.next_stream_id();
    client
        .send_headers(id, &request_block("POST", "/t", &[]), false)
        .await?;
    client.send(kind::DATA, 0, id, b"body").await?;
    let mut trailers = Vec::new();
    baton_tests::h2raw::hpack_literal(&mut trailers, "x-trailer", b"1");
    client.send_headers(id, &trailers, true).await?;
    let frames = client.read_stream(id).await?;
    assert_eq!(frames[0].indexed_status(), Some(200), "{frames:?}");
    assert_eq!(
        frames.last().map(|f| f.flags & flag::END_STREAM),
        Some(flag::END_STREAM)
    );
    // More headers than max_headers_count (100), then more bytes than 60 KiB.
    let names: Vec<String> = (0..100).map(|i| format!("x-h{i}")).collect();
    let many: Vec<(&str, &[u8])> = names
        .iter()
        .map(|n| (n.as_str(), b"v".as_slice()))
        .collect();
    let id = client.next_stream_id();
    client
        .send_headers(id, &request_block("GET", "/many", &many), true)
        .await?;
    assert_eq!(client.read_stream(id).await?[0].kind, kind::RST_STREAM);
    let big = vec![b'x'; 62_000];
    let id = client.next_stream_id();
    client
        .send_headers(id, &request_block("GET", "/big", &[("x-big", &big)]), true)
        .await?;
    assert_eq!(client.read_stream(id).await?[0].kind, kind::RST_STREAM);
    stats_become(
        &proxy,
        &[
            ("http2.trailers", 1),
            ("http2.header_overflow", 1),
            ("http2.header_list_size_too_large", 1),
            ("http2.tx_reset", 2),
            ("http2.rx_reset", 1),
            ("http2.streams_active", 0),
            ("http2.nghttp2_downstream_connections", 1),
            ("http2.goaway_sent", 0),
            ("cluster.backend.http2.nghttp2_upstream_connections", 1),
            ("cluster.backend.http2.tx_reset", 1),
            ("http2.nghttp2_upstream_connections", 0),
        ],
    )
    .await
}
