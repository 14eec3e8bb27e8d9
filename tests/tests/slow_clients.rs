//! Slow clients (issue 15 §3), as Envoy 1.40 answers them (measured with these tests):
//! - `request_headers_timeout` is off by default: a head sent in two parts a while apart
//!   is served.
//! - `stream_idle_timeout` restarts on every byte of a slow body: a body trickled faster
//!   than the timeout is served; a body that stalls gets 408 `stream timeout`
//!   (`local_replies.rs`), on HTTP/2 too.
//! - 5,000 clients trickling a head or a body do not stop a normal client being served.
//! - A client that never reads a large response holds the proxy back: what the proxy
//!   takes from the upstream is bounded by `per_connection_buffer_limit_bytes` (plus
//!   socket buffers), and so is its memory.

use std::time::Duration;

use baton_tests::config::{hcm_of, simple_proxy};
use baton_tests::eventually::eventually;
use baton_tests::h2raw::{kind, request_block, RawH2};
use baton_tests::{get, EchoUpstream, Proxy, RawHttp1};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn request_headers_timeout_is_off_by_default() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(b"GET / HTTP/1.1\r\nhost: te").await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    conn.send(b"st\r\n\r\n").await?;
    assert_eq!(conn.read_response().await?.status, 200);
    Ok(())
}

#[tokio::test]
async fn a_body_trickled_within_stream_idle_timeout_is_served() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let mut cfg = simple_proxy(&[upstream.addr()]);
    hcm_of(&mut cfg, 0)["stream_idle_timeout"] = json!("1s");
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(b"POST / HTTP/1.1\r\nhost: test\r\ncontent-length: 8\r\n\r\n")
        .await?;
    // 8 bytes over ~2 s: longer than the timeout in total, never idle for as long.
    for byte in b"abcdefgh" {
        tokio::time::sleep(Duration::from_millis(250)).await;
        conn.send(&[*byte]).await?;
    }
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    Ok(())
}

#[tokio::test]
async fn a_stalled_http2_body_is_408_stream_timeout() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let mut cfg = simple_proxy(&[upstream.addr()]);
    hcm_of(&mut cfg, 0)["stream_idle_timeout"] = json!("0.3s");
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut client = RawH2::connect(addr).await?;
    let id = client.next_stream_id();
    client
        .send_headers(
            id,
            &request_block("POST", "/", &[("content-length", b"10")]),
            false,
        )
        .await?;
    client.send(kind::DATA, 0, id, b"ab").await?;
    let frames = client.read_stream(id).await?;
    assert_eq!(frames[0].kind, kind::HEADERS, "{frames:?}");
    let body: Vec<u8> = frames
        .iter()
        .filter(|f| f.kind == kind::DATA)
        .flat_map(|f| f.payload.clone())
        .collect();
    assert_eq!(String::from_utf8_lossy(&body), "stream timeout");
    // The connection serves the next stream.
    let id = client.get("/next").await?;
    // (Its `:status` may come from the HPACK dynamic table: only the frame is checked.)
    assert_eq!(client.read_stream(id).await?[0].kind, kind::HEADERS);
    Ok(())
}

/// This process's (and so the proxy's) soft open-file limit, from `/proc/self/limits`.
/// (Raising it needs `setrlimit`, which the tests' `unsafe`-free lints and nix's
/// features leave out; CI and dev machines run with a high soft limit.)
fn nofile_limit() -> anyhow::Result<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no open files limit in /proc/self/limits"))
}

/// Clients holding a connection each, trickling.
const TRICKLERS: usize = 5000;

#[tokio::test]
async fn five_thousand_trickling_clients_do_not_stop_others() -> anyhow::Result<()> {
    let limit = nofile_limit()?;
    if limit < (TRICKLERS as u64) * 3 {
        eprintln!("skipped: RLIMIT_NOFILE soft limit {limit} is too low for {TRICKLERS} clients");
        return Ok(());
    }
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut held = Vec::with_capacity(TRICKLERS);
    for i in 0..TRICKLERS {
        let mut s =
            tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr)).await??;
        // Most trickle a head; one in ten a body (those reach the upstream, and the
        // cluster's default circuit breakers allow 1024 requests at once).
        let first: &[u8] = if i % 10 != 0 {
            b"GET / HTTP/1.1\r\nhost: te"
        } else {
            b"POST / HTTP/1.1\r\nhost: test\r\ncontent-length: 1000\r\n\r\nab"
        };
        tokio::time::timeout(Duration::from_secs(10), s.write_all(first)).await??;
        held.push(s);
    }
    // One more byte from each, as trickling clients do.
    for s in &mut held {
        tokio::time::timeout(Duration::from_secs(10), s.write_all(b"x")).await??;
    }
    // A normal client is served, on HTTP/1.1 and on a new connection each time.
    for _ in 0..3 {
        let resp = get(addr, "/normal").await?;
        assert_eq!(resp.status, 200);
    }
    // The proxy still holds the trickling connections open (not dropped to cope).
    let mut probe = [0u8; 1];
    let still_open =
        tokio::time::timeout(Duration::from_millis(200), held[0].read(&mut probe)).await;
    assert!(
        still_open.is_err(),
        "a trickling connection was closed: {still_open:?}"
    );
    drop(held);
    Ok(())
}

/// Resident memory of `pid` in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/{pid}/status"))
}

/// The response body the upstream tries to send: far more than any buffer on the path.
const LARGE_BODY: usize = 256 * 1024 * 1024;

#[tokio::test]
async fn a_client_that_never_reads_holds_the_proxy_back() -> anyhow::Result<()> {
    // An upstream that answers with a huge body and counts what it managed to write.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let up_addr = listener.local_addr()?;
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = written.clone();
    let upstream = tokio::spawn(async move {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let mut buf = vec![0u8; 16 * 1024];
        let mut seen = Vec::new();
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {LARGE_BODY}\r\n\r\n");
        if s.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = vec![b'z'; 64 * 1024];
        let mut sent = 0;
        while sent < LARGE_BODY {
            if s.write_all(&chunk).await.is_err() {
                return;
            }
            sent += chunk.len();
            counter.store(sent, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let proxy = Proxy::start(&simple_proxy(&[up_addr])).await?;
    let addr = proxy.listener_addr("http").await?;
    let baseline = rss_kib(proxy.pid())?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(b"GET /large HTTP/1.1\r\nhost: test\r\n\r\n")
        .await?;
    // The client reads nothing. Wait until the upstream is held back: its count stops
    // moving between two looks 500 ms apart (bounded).
    let mut last = usize::MAX;
    let held_at = eventually(Duration::from_secs(60), || {
        let now = written.load(std::sync::atomic::Ordering::Relaxed);
        let stalled = now == last && now > 0;
        last = now;
        async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(stalled.then_some(now))
        }
    })
    .await?;
    let grown = rss_kib(proxy.pid())?.saturating_sub(baseline);
    eprintln!("upstream held back after {held_at} bytes; proxy RSS grew {grown} KiB");
    assert!(held_at < LARGE_BODY / 4, "upstream wrote {held_at} bytes");
    // Bounded memory: far less than what the upstream wrote into the path.
    assert!(grown < 64 * 1024, "proxy RSS grew {grown} KiB");
    drop(conn);
    upstream.abort();
    Ok(())
}
