//! What connections of the draining parent see: an in-flight HTTP/1.1 response carries
//! `connection: close`; an idle keep-alive HTTP/1.1 connection is told `connection: close`
//! on its next request instead of being cut (Envoy discourages requests during the drain,
//! it does not race the client); HTTP/2 connections get GOAWAY (NO_ERROR); a tcp_proxy
//! connection keeps working after the hand-over and is closed when the drain time ends.

mod hot_restart_support;

use anyhow::{bail, Context};
use baton_tests::config::{bootstrap, listener, simple_proxy, static_cluster, tcp_proxy_filter};
use baton_tests::{EchoUpstream, RawHttp1, TcpServer, IO_TIMEOUT};
use hot_restart_support::{exited_cleanly, Service, EXIT_TIMEOUT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Long enough that nothing in these tests is cut by the drain timer unless it is meant to.
const LONG_DRAIN: [&str; 4] = ["--drain-time-s", "20", "--parent-shutdown-time-s", "30"];

#[tokio::test]
async fn in_flight_http1_response_carries_connection_close() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let svc = Service::new()?;
    let config = svc.write_config("config", &simple_proxy(&[upstream.addr()]))?;
    let mut gen0 = svc.start(0, &config, &LONG_DRAIN).await?;
    let mut conn = RawHttp1::connect(gen0.listener_addr("http").await?).await?;
    // The upstream answers after 3 s; the hand-over happens meanwhile.
    conn.send_request("GET", "/slow?delay_ms=3000", &[], b"")
        .await?;
    let _gen1 = svc.start(1, &config, &[]).await?;
    gen0.wait_log("draining listeners", IO_TIMEOUT).await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 200);
    assert!(
        resp.connection_close(),
        "a draining HTTP/1.1 response says connection: close: {:?}",
        resp.headers
    );
    assert!(conn.read_to_close().await?.is_empty());
    assert!(exited_cleanly(gen0.wait_exit(EXIT_TIMEOUT).await?));
    Ok(())
}

#[tokio::test]
async fn idle_keep_alive_http1_gets_connection_close_on_its_next_request() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let svc = Service::new()?;
    let config = svc.write_config("config", &simple_proxy(&[upstream.addr()]))?;
    let gen0 = svc.start(0, &config, &LONG_DRAIN).await?;
    let mut conn = RawHttp1::connect(gen0.listener_addr("http").await?).await?;
    conn.send_request("GET", "/first", &[], b"").await?;
    assert_eq!(conn.read_response().await?.status, 200);
    let _gen1 = svc.start(1, &config, &[]).await?;
    gen0.wait_log("draining listeners", IO_TIMEOUT).await?;
    // A client may send on its idle keep-alive connection at any moment: closing it under
    // the client loses that request. The drain must answer it, with connection: close.
    conn.send_request("GET", "/second", &[], b"").await?;
    let resp = conn.read_response().await.context(
        "the draining parent closed an idle keep-alive HTTP/1.1 connection instead of answering \
         its next request with `connection: close` (HTTP connection manager: on drain, an idle \
         HTTP/1.1 connection must stay open until its next response or the drain time ends)",
    )?;
    assert_eq!(resp.status, 200);
    assert!(resp.connection_close(), "{:?}", resp.headers);
    Ok(())
}

/// HTTP/2 frame types used here.
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const ACK: u8 = 0x1;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// A bare HTTP/2 connection that answers SETTINGS and PING and reports GOAWAY frames.
struct RawH2 {
    stream: TcpStream,
}

impl RawH2 {
    async fn connect(addr: std::net::SocketAddr) -> anyhow::Result<Self> {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await?;
        stream.write_all(&frame(SETTINGS, 0, &[])).await?;
        let mut conn = Self { stream };
        // Until the server's SETTINGS arrived (and was acknowledged).
        loop {
            let (kind, flags, _) = conn.read_frame().await?;
            if kind == SETTINGS && flags & ACK == 0 {
                return Ok(conn);
            }
        }
    }

    /// Reads one frame, answering SETTINGS and PING as a client must.
    async fn read_frame(&mut self) -> anyhow::Result<(u8, u8, Vec<u8>)> {
        let mut head = [0u8; 9];
        tokio::time::timeout(IO_TIMEOUT, self.stream.read_exact(&mut head))
            .await
            .context("no HTTP/2 frame in time")??;
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        tokio::time::timeout(IO_TIMEOUT, self.stream.read_exact(&mut payload))
            .await
            .context("frame payload timed out")??;
        let (kind, flags) = (head[3], head[4]);
        if kind == SETTINGS && flags & ACK == 0 {
            self.stream.write_all(&frame(SETTINGS, ACK, &[])).await?;
        }
        if kind == PING && flags & ACK == 0 {
            self.stream.write_all(&frame(PING, ACK, &payload)).await?;
        }
        Ok((kind, flags, payload))
    }

    /// Reads until a GOAWAY arrives; returns its error code.
    async fn goaway(&mut self) -> anyhow::Result<u32> {
        for _ in 0..1000 {
            let (kind, _, payload) = self.read_frame().await?;
            if kind == GOAWAY {
                let Some(code) = payload.get(4..8) else {
                    bail!("short GOAWAY frame");
                };
                return Ok(u32::from_be_bytes([code[0], code[1], code[2], code[3]]));
            }
        }
        bail!("no GOAWAY among 1000 frames")
    }
}

impl RawH2 {
    /// Sends `GET /` on stream `id` (HPACK: static-table method/scheme/path, literal
    /// authority) and reads frames until that stream ends.
    async fn get_root(&mut self, id: u8) -> anyhow::Result<()> {
        let block = [0x82, 0x86, 0x84, 0x01, 0x04, b't', b'e', b's', b't'];
        let mut headers = frame(HEADERS, END_STREAM | END_HEADERS, &block);
        headers[8] = id;
        self.stream.write_all(&headers).await?;
        for _ in 0..1000 {
            let (kind, flags, _) = self.read_frame().await?;
            if (kind == DATA || kind == HEADERS) && flags & END_STREAM != 0 {
                return Ok(());
            }
            if kind == GOAWAY || kind == RST_STREAM {
                bail!("request refused (frame type {kind})");
            }
        }
        bail!("no end of stream among 1000 frames")
    }

    /// Reads (and answers) frames until the server closes the connection.
    async fn read_until_closed(&mut self) -> anyhow::Result<()> {
        for _ in 0..1000 {
            if let Err(e) = self.read_frame().await {
                let closed = e.downcast_ref::<std::io::Error>().is_some_and(|io| {
                    matches!(
                        io.kind(),
                        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                    )
                });
                return if closed { Ok(()) } else { Err(e) };
            }
        }
        bail!("connection still open after 1000 frames")
    }
}

fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = vec![
        (len >> 16) as u8,
        (len >> 8) as u8,
        len as u8,
        kind,
        flags,
        0,
        0,
        0,
        0,
    ];
    out.extend_from_slice(payload);
    out
}

#[tokio::test]
async fn http2_connection_gets_goaway() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let svc = Service::new()?;
    let config = svc.write_config("config", &simple_proxy(&[upstream.addr()]))?;
    let mut gen0 = svc.start(0, &config, &LONG_DRAIN).await?;
    let mut h2 = RawH2::connect(gen0.listener_addr("http").await?).await?;
    // A connection in use: one request answered before the hand-over.
    h2.get_root(1).await?;
    let _gen1 = svc.start(1, &config, &[]).await?;
    assert_eq!(h2.goaway().await?, 0, "GOAWAY with NO_ERROR");
    // Keep answering (the graceful GOAWAY is confirmed with a PING) until the parent closes.
    h2.read_until_closed().await?;
    // With no stream open, the parent has nothing left on this connection and exits early.
    assert!(exited_cleanly(gen0.wait_exit(EXIT_TIMEOUT).await?));
    Ok(())
}

#[tokio::test]
async fn tcp_proxy_connection_lives_until_the_drain_time_ends() -> anyhow::Result<()> {
    let echo = TcpServer::echo().await?;
    let svc = Service::new()?;
    let cfg = bootstrap(
        vec![listener("tcp", vec![tcp_proxy_filter("echo")])],
        vec![static_cluster("echo", &[echo.addr()])],
    );
    let config = svc.write_config("config", &cfg)?;
    // Default test drain time (2 s): the connection is closed by the drain, not by the test.
    let mut gen0 = svc.start(0, &config, &[]).await?;
    let addr = gen0.listener_addr("tcp").await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(b"before").await?;
    assert_eq!(conn.read_exact_bytes(6).await?, b"before");

    let _gen1 = svc.start(1, &config, &[]).await?;
    gen0.wait_log("draining listeners", IO_TIMEOUT).await?;
    // Still proxied by the draining parent after the hand-over...
    conn.send(b"during").await?;
    assert_eq!(conn.read_exact_bytes(6).await?, b"during");
    assert!(
        gen0.try_exit_status().is_none(),
        "the parent waits for its tcp_proxy connection"
    );
    // ...new connections go to the child...
    let mut fresh = RawHttp1::connect(addr).await?;
    fresh.send(b"new").await?;
    assert_eq!(fresh.read_exact_bytes(3).await?, b"new");
    // ...and the drain time closes it, then the parent exits.
    conn.read_to_close().await?;
    assert!(exited_cleanly(gen0.wait_exit(EXIT_TIMEOUT).await?));
    Ok(())
}
