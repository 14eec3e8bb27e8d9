//! An HTTP/1.1 keep-alive connection that idles between requests (long enough for Baton
//! to park it without its codec, see `proxy/src/http/codec_conn.rs`) keeps serving on
//! the same connection as one that does not: whole, split and pipelined requests after
//! the idle gap are answered in order, and the connection is counted once
//! (`downstream_cx_total` 1, `downstream_cx_http1_active` 1, every request in
//! `downstream_rq_total`). Envoy 1.40 answers the same way.

use std::time::Duration;

use baton_tests::config::simple_proxy;
use baton_tests::eventually::eventually;
use baton_tests::{EchoUpstream, Proxy, RawHttp1};

/// Longer than Baton waits before it parks an idle connection (100 ms).
const IDLE_GAP: Duration = Duration::from_millis(400);

fn stat(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits until every `(name, value)` of `want` shows in `/stats`.
async fn wait_stats(proxy: &Proxy, want: &[(&str, u64)]) -> anyhow::Result<()> {
    eventually(Duration::from_secs(10), || async {
        let text = proxy.admin_request("GET", "/stats").await?.body_text();
        let got: Vec<_> = want.iter().map(|(name, _)| stat(&text, name)).collect();
        let expected: Vec<_> = want.iter().map(|(_, v)| Some(*v)).collect();
        Ok((got == expected).then_some(()))
    })
    .await
}

#[tokio::test]
async fn a_keep_alive_connection_serves_after_idle_gaps_and_counts_once() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let mut conn = RawHttp1::connect(proxy.listener_addr("http").await?).await?;
    let mut requests = 0;
    for _ in 0..2 {
        conn.send_request("GET", "/whole", &[], b"").await?;
        let resp = conn.read_response().await?;
        assert_eq!(resp.status, 200);
        assert!(!resp.connection_close(), "{:?}", resp.header("connection"));
        requests += 1;
        tokio::time::sleep(IDLE_GAP).await;
    }
    // A head split around an idle gap.
    conn.send(b"GET /split HTTP/1.1\r\nhost: x\r\n").await?;
    tokio::time::sleep(IDLE_GAP).await;
    conn.send(b"x-late: 1\r\n\r\n").await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 200);
    requests += 1;
    tokio::time::sleep(IDLE_GAP).await;
    // Two pipelined requests, one with a body, after an idle gap: answered in order.
    conn.send(
        b"POST /first HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhelloGET /second HTTP/1.1\r\nhost: x\r\n\r\n",
    )
    .await?;
    let first = conn.read_response().await?;
    let second = conn.read_response().await?;
    assert_eq!((first.status, second.status), (200, 200));
    assert!(
        first.body_text().contains("/first"),
        "{}",
        first.body_text()
    );
    assert!(
        second.body_text().contains("/second"),
        "{}",
        second.body_text()
    );
    requests += 2;
    let want = [
        ("http.ingress.downstream_cx_total", 1),
        ("http.ingress.downstream_cx_active", 1),
        ("http.ingress.downstream_cx_http1_total", 1),
        ("http.ingress.downstream_cx_http1_active", 1),
        ("http.ingress.downstream_rq_total", requests),
        ("http.ingress.downstream_rq_completed", requests),
    ];
    wait_stats(&proxy, &want).await?;
    Ok(())
}

/// A keep-alive connection idle long enough to park closes as soon as the process is
/// told to stop (no successor takes over): the client sees the close without a byte
/// and the process exits. Envoy closes it as it exits.
#[tokio::test]
async fn a_parked_keep_alive_connection_closes_at_once_on_sigterm() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let mut proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let mut conn = RawHttp1::connect(proxy.listener_addr("http").await?).await?;
    conn.send_request("GET", "/", &[], b"").await?;
    assert_eq!(conn.read_response().await?.status, 200);
    tokio::time::sleep(IDLE_GAP).await;
    proxy.sigterm()?;
    let rest = tokio::time::timeout(Duration::from_secs(10), conn.read_to_close()).await??;
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    proxy.wait_exit(Duration::from_secs(10)).await?;
    Ok(())
}

/// Many parked keep-alive connections (each plaintext one watched without its own
/// registration with the runtime, see `proxy/src/http/park_socket.rs`): those whose
/// clients close while parked end at once (`downstream_cx_active` falls to the rest),
/// and the rest, each woken by its own client's bytes, serve their next request. (More
/// than the 64 parks after which the worker trims its heap, see
/// `proxy/src/http/heap_trim.rs`, and idle past that trim.)
#[tokio::test]
async fn parked_connections_end_on_client_close_and_the_rest_serve() -> anyhow::Result<()> {
    const CONNS: usize = 80;
    /// Past the heap trim's delay (1 s after the 64th park).
    const PAST_TRIM: Duration = Duration::from_millis(1500);
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut conns = Vec::new();
    for _ in 0..CONNS {
        let mut conn = RawHttp1::connect(addr).await?;
        conn.send_request("GET", "/first", &[], b"").await?;
        assert_eq!(conn.read_response().await?.status, 200);
        conns.push(conn);
    }
    tokio::time::sleep(IDLE_GAP + PAST_TRIM).await;
    // Every other client closes while its connection is parked.
    let kept: Vec<_> = conns
        .into_iter()
        .enumerate()
        .filter_map(|(i, conn)| (i % 2 == 1).then_some(conn))
        .collect();
    let active = |want: u64| {
        let proxy = &proxy;
        async move {
            eventually(Duration::from_secs(10), || async {
                let text = proxy.admin_request("GET", "/stats").await?.body_text();
                Ok((stat(&text, "http.ingress.downstream_cx_active") == Some(want)).then_some(()))
            })
            .await
        }
    };
    active(kept.len() as u64).await?;
    // The rest, in reverse order of parking.
    for mut conn in kept.into_iter().rev() {
        conn.send_request("GET", "/again", &[], b"").await?;
        let resp = conn.read_response().await?;
        assert_eq!(resp.status, 200);
        assert!(resp.body_text().contains("/again"), "{}", resp.body_text());
    }
    active(0).await?;
    Ok(())
}

/// A parked connection gives its I/O wrapper up and makes it again for the client's
/// next bytes (see `proxy/src/http/codec/parked_io.rs`): a connection that hyper's
/// server took over (a body that arrived after its head) and then parked still refuses
/// a next request's framing as before (501, then close), and connections that end
/// while or after parking leave no HTTP/1 connection counted active.
#[tokio::test]
async fn parked_connections_keep_their_checks_and_uncount_on_close() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut served_by_hyper = RawHttp1::connect(addr).await?;
    served_by_hyper
        .send(b"POST /late-body HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\n")
        .await?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    served_by_hyper.send(b"hello").await?;
    assert_eq!(served_by_hyper.read_response().await?.status, 200);
    let mut lean = RawHttp1::connect(addr).await?;
    lean.send_request("GET", "/first", &[], b"").await?;
    assert_eq!(lean.read_response().await?.status, 200);
    tokio::time::sleep(IDLE_GAP).await;
    served_by_hyper
        .send(b"POST /x HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip\r\n\r\n0\r\n\r\n")
        .await?;
    let refused = served_by_hyper.read_response().await?;
    assert_eq!(refused.status, 501);
    assert!(
        refused.connection_close(),
        "{:?}",
        refused.header("connection")
    );
    // The other client closes while its connection is parked.
    drop(lean);
    let want = [
        ("http.ingress.downstream_cx_total", 2),
        ("http.ingress.downstream_cx_active", 0),
        ("http.ingress.downstream_cx_http1_total", 2),
        ("http.ingress.downstream_cx_http1_active", 0),
    ];
    wait_stats(&proxy, &want).await?;
    Ok(())
}
