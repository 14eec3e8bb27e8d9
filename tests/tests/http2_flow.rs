//! HTTP/2 downstream bodies through Baton's own codec: request and response bodies many
//! times the 65,535-byte windows (flow control both ways), many streams sending at once,
//! request trailers, a client that stops reading (the proxy holds back, never buffers
//! without bound) and the client going away mid-body. Real sockets, the echo upstream.

use std::time::Duration;

use baton_tests::config::simple_proxy;
use baton_tests::h2raw::{frame, kind, request_block, RawH2};
use baton_tests::{eventually, EchoUpstream, H2Client, Proxy};

const WAIT: Duration = Duration::from_secs(20);

/// A counter from the admin's `/stats` (0 when absent).
async fn counter(proxy: &Proxy, name: &str) -> anyhow::Result<u64> {
    Ok(proxy.stat(name).await?.unwrap_or(0))
}

#[tokio::test]
async fn a_request_body_many_windows_long_reaches_the_upstream_whole() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let client = H2Client::connect(proxy.listener_addr("http").await?).await?;
    // 1 MiB: 16 stream windows of the initial 65,535 bytes, each given back as consumed.
    let body: Vec<u8> = (0..1024 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    let resp = client.request("POST", "/upload", &[], &body).await?;
    assert_eq!(resp.status, 200);
    let echoed: serde_json::Value = serde_json::from_slice(&resp.body)?;
    let got = echoed["body"].as_str().unwrap_or_default();
    assert_eq!(got.len(), body.len());
    assert!(got.as_bytes() == body.as_slice(), "body changed on the way");
    Ok(())
}

#[tokio::test]
async fn a_response_many_windows_long_arrives_whole_on_concurrent_streams() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let client = H2Client::connect(proxy.listener_addr("http").await?).await?;
    // Eight streams of 3 MB each at once: the connection window (and each stream's)
    // runs out many times; every byte arrives on its own stream.
    let sizes = [
        3_000_000usize,
        1,
        70_000,
        3_000_000,
        65_535,
        65_536,
        2_000_000,
        0,
    ];
    let mut calls = Vec::new();
    for size in sizes {
        let client = &client;
        calls.push(async move {
            let resp = client.get(&format!("/big?body_bytes={size}")).await?;
            anyhow::Ok((size, resp))
        });
    }
    for result in futures_util::future::join_all(calls).await {
        let (size, resp) = result?;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body.len(), size, "stream of {size} bytes");
        assert!(resp.body.iter().all(|&b| b == b'x'));
    }
    Ok(())
}

#[tokio::test]
async fn request_trailers_end_the_body_and_go_upstream() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let mut client = RawH2::connect(proxy.listener_addr("http").await?).await?;
    let id = client.next_stream_id();
    client
        .send_headers(id, &request_block("POST", "/tr", &[]), false)
        .await?;
    client.write(&frame(kind::DATA, 0, id, b"abc")).await?;
    let mut trailers = Vec::new();
    baton_tests::h2raw::hpack_literal(&mut trailers, "x-trailer", b"1");
    client
        .write(&frame(kind::HEADERS, 0x4 | 0x1, id, &trailers))
        .await?;
    let frames = client.read_stream(id).await?;
    assert_eq!(frames[0].indexed_status(), Some(200), "{frames:?}");
    let body: Vec<u8> = frames
        .iter()
        .filter(|f| f.kind == kind::DATA)
        .flat_map(|f| f.payload.iter().copied())
        .collect();
    let echoed: serde_json::Value = serde_json::from_slice(&body)?;
    assert_eq!(echoed["body"], "abc");
    assert_eq!(counter(&proxy, "http2.trailers").await?, 1);
    Ok(())
}

#[tokio::test]
async fn a_client_that_stops_reading_is_held_back_and_others_are_served() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut stalled = RawH2::connect(addr).await?;
    // Asks for 20 MB and reads nothing: the proxy sends one window's worth and waits.
    let id = stalled.next_stream_id();
    stalled
        .send_headers(
            id,
            &request_block("GET", "/big?body_bytes=20000000", &[]),
            true,
        )
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let other = H2Client::connect(addr).await?;
    assert_eq!(other.get("/other").await?.status, 200);
    // The stalled stream gets exactly its window (65,535 bytes), then nothing more.
    let mut data = 0usize;
    let deadline = tokio::time::Instant::now() + WAIT;
    while data < 65_535 && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(WAIT, stalled.read_frame()).await?? {
            Some(f) if f.kind == kind::DATA && f.stream == id => data += f.payload.len(),
            Some(_) => {}
            None => anyhow::bail!("closed"),
        }
    }
    assert_eq!(data, 65_535, "one stream window, no more");
    let more = tokio::time::timeout(Duration::from_millis(500), stalled.read_frame()).await;
    assert!(more.is_err(), "nothing past the window: {more:?}");
    Ok(())
}

#[tokio::test]
async fn a_client_leaving_mid_body_ends_its_stream_and_others_go_on() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut leaving = RawH2::connect(addr).await?;
    let id = leaving.next_stream_id();
    leaving
        .send_headers(
            id,
            &request_block("POST", "/half", &[("content-length", b"100000")]),
            false,
        )
        .await?;
    leaving
        .write(&frame(kind::DATA, 0, id, &[b'z'; 1000]))
        .await?;
    drop(leaving);
    eventually(WAIT, || async {
        let n = counter(&proxy, "http.ingress.downstream_rq_rx_reset").await?;
        Ok((n == 1).then_some(()))
    })
    .await?;
    let other = H2Client::connect(addr).await?;
    assert_eq!(other.get("/after").await?.status, 200);
    Ok(())
}
