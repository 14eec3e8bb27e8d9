//! The recording upstream: a raw HTTP/1.x server (hand-written so that HTTP/1.0 answers,
//! close-delimited bodies, missing lengths and resets are exact) that records every request
//! it receives (method, path, version, headers in order, body) and answers as the current
//! case's [`UpstreamReply`] says. Cases run one at a time, so the reply is shared state the
//! runner sets before each case. Also a raw byte echo for tcp_proxy areas, and the same
//! HTTP/1.x server behind TLS (`upstream_tls`) for upstream TLS areas.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::spec::{ReplyFraming, UpstreamKind, UpstreamReply};

/// Most bytes of a request head or body the upstream accepts (a bound, not a limit tested).
const MAX_REQUEST: usize = 4 * 1024 * 1024;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Which upstream.
    pub upstream: String,
    /// Method.
    pub method: String,
    /// Request target.
    pub path: String,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: String,
    /// Headers in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
    /// The proxy's port on the upstream connection (masked as `<port:upstream-client>`).
    pub peer_port: u16,
    /// What the proxy's handshake showed a TLS upstream (None: plain text).
    pub tls: Option<super::upstream_tls::TlsSeen>,
}

#[derive(Debug)]
struct Shared {
    name: String,
    reply: Mutex<UpstreamReply>,
    received: Mutex<Vec<Received>>,
    /// The proxy's ports of the connections accepted since `prepare`.
    peer_ports: Mutex<Vec<u16>>,
}

/// A running upstream; stops accepting when dropped (open connections end with the runtime).
#[derive(Debug)]
pub struct RecordingUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Arc<Notify>,
}

impl RecordingUpstream {
    /// Starts an upstream named `name` of `kind` on 127.0.0.1:0.
    pub async fn start(name: &str, kind: UpstreamKind) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let tls = super::upstream_tls::acceptor(kind)?;
        let shared = Arc::new(Shared {
            name: name.to_string(),
            reply: Mutex::new(UpstreamReply::default()),
            received: Mutex::new(Vec::new()),
            peer_ports: Mutex::new(Vec::new()),
        });
        let shutdown = Arc::new(Notify::new());
        let (task_shared, task_shutdown) = (shared.clone(), shutdown.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = task_shutdown.notified() => return,
                };
                let Ok((stream, peer)) = accepted else {
                    continue;
                };
                if let Ok(mut ports) = task_shared.peer_ports.lock() {
                    ports.push(peer.port());
                }
                let _ = stream.set_nodelay(true);
                let shared = task_shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let _ = match (kind, tls) {
                        (UpstreamKind::Echo, _) => echo(stream, Vec::new()).await,
                        (_, Some(tls)) => match super::upstream_tls::accept(&tls, stream).await {
                            Some((stream, seen)) => {
                                serve_http(stream, peer.port(), Some(seen), &shared).await
                            }
                            None => Ok(()),
                        },
                        (_, None) => serve_http(stream, peer.port(), None, &shared).await,
                    };
                });
            }
        });
        Ok(Self {
            addr,
            shared,
            shutdown,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Sets how the next requests are answered and forgets what was received.
    pub fn prepare(&self, reply: &UpstreamReply) {
        if let Ok(mut current) = self.shared.reply.lock() {
            *current = reply.clone();
        }
        if let Ok(mut received) = self.shared.received.lock() {
            received.clear();
        }
        if let Ok(mut ports) = self.shared.peer_ports.lock() {
            ports.clear();
        }
    }

    /// The proxy's ports of the connections accepted since [`Self::prepare`].
    pub fn peer_ports(&self) -> Vec<u16> {
        self.shared
            .peer_ports
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default()
    }

    /// What was received since [`Self::prepare`].
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }
}

impl Drop for RecordingUpstream {
    fn drop(&mut self) {
        self.shutdown.notify_one();
    }
}

/// Echoes bytes (starting with `pending`) until EOF, then half-closes.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    pending: Vec<u8>,
) -> std::io::Result<()> {
    if !pending.is_empty() {
        stream.write_all(&pending).await?;
    }
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return stream.shutdown().await;
        }
        stream.write_all(&buf[..n]).await?;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads more bytes into `buf`; false on EOF or error.
async fn fill<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            buf.len() <= MAX_REQUEST
        }
    }
}

async fn serve_http<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer_port: u16,
    tls: Option<super::upstream_tls::TlsSeen>,
    shared: &Shared,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(pos) = find(&buf, b"\r\n\r\n") {
                break pos + 4;
            }
            if !fill(&mut stream, &mut buf).await {
                return Ok(());
            }
        };
        let mut header_storage = [httparse::EMPTY_HEADER; 128];
        let mut request = httparse::Request::new(&mut header_storage);
        if !matches!(
            request.parse(&buf[..head_end]),
            Ok(httparse::Status::Complete(_))
        ) {
            return Ok(());
        }
        let mut received = Received {
            peer_port,
            tls: tls.clone(),
            upstream: shared.name.clone(),
            method: request.method.unwrap_or_default().to_string(),
            path: request.path.unwrap_or_default().to_string(),
            version: format!("HTTP/1.{}", request.version.unwrap_or(1)),
            headers: request
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect(),
            body: Vec::new(),
        };
        buf.drain(..head_end);
        let header = |name: &str| {
            received
                .headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.to_ascii_lowercase())
        };
        let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let length = header("content-length").and_then(|v| v.trim().parse::<usize>().ok());
        let upgrade = header("upgrade");
        if chunked {
            match read_chunked(&mut stream, &mut buf).await {
                Some(body) => received.body = body,
                None => return Ok(()),
            }
        } else if let Some(len) = length {
            while buf.len() < len {
                if !fill(&mut stream, &mut buf).await {
                    return Ok(());
                }
            }
            received.body = buf.drain(..len).collect();
        }
        let reply = shared.reply.lock().map(|r| r.clone()).unwrap_or_default();
        let head_only = received.method.eq_ignore_ascii_case("HEAD");
        if let Ok(mut all) = shared.received.lock() {
            all.push(received);
        }
        if reply.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(reply.delay_ms)).await;
        }
        if reply.reset {
            return Ok(());
        }
        if reply.switch {
            let proto = upgrade.unwrap_or_else(|| "websocket".into());
            let head = format!(
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: {proto}\r\nconnection: upgrade\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
            return echo(stream, std::mem::take(&mut buf)).await;
        }
        let (bytes, keep_open) = render_reply(&reply, head_only);
        stream.write_all(&bytes).await?;
        if !keep_open {
            stream.shutdown().await?;
            // Drain until the proxy closes, so the close is a FIN, not a reset.
            let mut sink = [0u8; 4096];
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
            return Ok(());
        }
    }
}

async fn read_chunked<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(pos) = find(buf, b"\r\n") {
                break pos;
            }
            if !fill(stream, buf).await {
                return None;
            }
        };
        let line = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        buf.drain(..line_end + 2);
        if size == 0 {
            loop {
                let pos = loop {
                    if let Some(pos) = find(buf, b"\r\n") {
                        break pos;
                    }
                    if !fill(stream, buf).await {
                        return None;
                    }
                };
                buf.drain(..pos + 2);
                if pos == 0 {
                    return Some(body);
                }
            }
        }
        while buf.len() < size + 2 {
            if !fill(stream, buf).await {
                return None;
            }
        }
        body.extend(buf.drain(..size));
        buf.drain(..2);
    }
}

fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown")
}

/// The reply's bytes (no body after `head_only`, the answer to a HEAD) and whether the
/// connection stays open after it.
fn render_reply(reply: &UpstreamReply, head_only: bool) -> (Vec<u8>, bool) {
    let http10 = reply.version == "HTTP/1.0";
    let mut head = format!(
        "{} {} {}\r\n",
        reply.version,
        reply.status,
        reason(reply.status)
    );
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let mut keep_open = !http10 && !reply.close;
    if reply.close {
        head.push_str("connection: close\r\n");
    }
    let body = reply.body.as_bytes();
    let mut out_body = Vec::new();
    match reply.framing {
        ReplyFraming::ContentLength => {
            head.push_str(&format!("content-length: {}\r\n", body.len()));
            out_body.extend_from_slice(body);
        }
        ReplyFraming::Chunked => {
            head.push_str("transfer-encoding: chunked\r\n");
            let half = body.len() / 2;
            for part in [&body[..half], &body[half..]] {
                if !part.is_empty() {
                    out_body.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                    out_body.extend_from_slice(part);
                    out_body.extend_from_slice(b"\r\n");
                }
            }
            out_body.extend_from_slice(b"0\r\n\r\n");
        }
        ReplyFraming::Close => {
            out_body.extend_from_slice(body);
            keep_open = false;
        }
        ReplyFraming::None => {}
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    if !head_only {
        bytes.extend(out_body);
    }
    (bytes, keep_open)
}
