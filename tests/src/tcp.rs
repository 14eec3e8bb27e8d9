//! Raw TCP upstreams: a byte echo server (for tcp_proxy and CONNECT termination) that
//! half-closes its write side when the client half-closes, and an "upgrade echo" HTTP/1.1
//! server that answers `Upgrade:` requests with 101 (and `CONNECT` with 200) and then echoes
//! bytes, recording each request head it received.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// State shared with the test.
#[derive(Debug, Default)]
struct TcpStats {
    connections: AtomicUsize,
    /// Connections whose client half-closed (EOF seen) and that then half-closed back.
    half_closed: AtomicUsize,
    heads: Mutex<Vec<String>>,
}

/// A running raw TCP server; stops accepting when dropped.
#[derive(Debug)]
pub struct TcpServer {
    addr: SocketAddr,
    stats: Arc<TcpStats>,
    shutdown: Arc<Notify>,
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Echo,
    UpgradeEcho,
}

impl TcpServer {
    /// Starts a byte echo server on 127.0.0.1:0.
    pub async fn echo() -> anyhow::Result<Self> {
        Self::start(Mode::Echo).await
    }

    /// Starts an HTTP/1.1 upgrade (websocket-ish) / CONNECT echo server on 127.0.0.1:0.
    pub async fn upgrade_echo() -> anyhow::Result<Self> {
        Self::start(Mode::UpgradeEcho).await
    }

    async fn start(mode: Mode) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(TcpStats::default());
        let shutdown = Arc::new(Notify::new());
        let (task_stats, task_shutdown) = (stats.clone(), shutdown.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = task_shutdown.notified() => return,
                };
                let Ok((stream, _)) = accepted else { continue };
                task_stats.connections.fetch_add(1, Ordering::SeqCst);
                let stats = task_stats.clone();
                tokio::spawn(async move {
                    let _ = match mode {
                        Mode::Echo => echo_bytes(stream, Vec::new(), &stats).await,
                        Mode::UpgradeEcho => upgrade_then_echo(stream, &stats).await,
                    };
                });
            }
        });
        Ok(Self {
            addr,
            stats,
            shutdown,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.stats.connections.load(Ordering::SeqCst)
    }

    /// Connections that saw the client's EOF and half-closed back.
    pub fn half_closed(&self) -> usize {
        self.stats.half_closed.load(Ordering::SeqCst)
    }

    /// Request heads received by the upgrade echo server, in order.
    pub fn request_heads(&self) -> Vec<String> {
        self.stats
            .heads
            .lock()
            .map(|heads| heads.clone())
            .unwrap_or_default()
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.shutdown.notify_one();
    }
}

/// Echoes everything (starting with `pending`), then on EOF shuts down the write side.
async fn echo_bytes(
    mut stream: TcpStream,
    pending: Vec<u8>,
    stats: &TcpStats,
) -> std::io::Result<()> {
    if !pending.is_empty() {
        stream.write_all(&pending).await?;
    }
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            stream.shutdown().await?;
            stats.half_closed.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}

async fn upgrade_then_echo(mut stream: TcpStream, stats: &TcpStats) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let rest = buf[head_end..].to_vec();
    if let Ok(mut heads) = stats.heads.lock() {
        heads.push(head.clone());
    }
    let is_connect = head.starts_with("CONNECT ");
    let upgrade = head
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("upgrade"))
        .map(|(_, v)| v.trim().to_string());
    let reply = match (is_connect, upgrade) {
        (true, _) => "HTTP/1.1 200 OK\r\n\r\n".to_string(),
        (false, Some(proto)) => {
            format!("HTTP/1.1 101 Switching Protocols\r\nupgrade: {proto}\r\nconnection: upgrade\r\n\r\n")
        }
        (false, None) => {
            let body = "expected an upgrade";
            stream
                .write_all(
                    format!(
                        "HTTP/1.1 400 Bad Request\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await?;
            return Ok(());
        }
    };
    stream.write_all(reply.as_bytes()).await?;
    echo_bytes(stream, rest, stats).await
}
