//! Downstream clients for tests: a raw HTTP/1.1 connection over `TcpStream` (exact bytes in,
//! parsed responses out, so malformed input, pipelining and connection reuse are observable)
//! and an HTTP/2 prior-knowledge client on hyper.

use std::net::SocketAddr;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::eventually::IO_TIMEOUT;

/// One parsed HTTP/1.x response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Protocol version text from the status line (`HTTP/1.1`).
    pub version: String,
    /// Header fields in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body, de-chunked.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All values of header `name`.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Body as (lossy) UTF-8.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Body parsed as JSON (the echo upstream's reply).
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("not JSON: {}", self.body_text()))
    }

    /// Whether the response says the connection will close.
    pub fn connection_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// A raw HTTP/1.1 client connection with its own read buffer (responses may arrive together),
/// over TCP or (in TLS tests) a TLS stream.
#[derive(Debug)]
pub struct RawHttp1<S = TcpStream> {
    stream: S,
    buf: Vec<u8>,
}

impl RawHttp1 {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
            .await
            .context("connect timed out")?
            .with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::new(),
        })
    }

    /// The underlying stream's local address.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.stream.local_addr()?)
    }
}

impl<S> RawHttp1<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    /// Wraps an already connected stream.
    pub fn over(stream: S) -> Self {
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// The underlying stream.
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// Writes raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        tokio::time::timeout(IO_TIMEOUT, self.stream.write_all(bytes))
            .await
            .context("write timed out")??;
        Ok(())
    }

    /// Writes a request with `host: test`, the given extra headers and a content-length body
    /// (no body headers when `body` is empty and the method is GET/HEAD).
    pub async fn send_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<()> {
        let bytes = format_request(method, path, headers, body);
        self.send(&bytes).await
    }

    /// Reads more bytes into the buffer; Ok(false) on EOF.
    async fn fill(&mut self) -> anyhow::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(IO_TIMEOUT, self.stream.read(&mut chunk))
            .await
            .context("read timed out")??;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// Reads one response (to a request with `method`).
    pub async fn read_response_to(&mut self, method: &str) -> anyhow::Result<RawResponse> {
        let header_end = loop {
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                break pos + 4;
            }
            if !self.fill().await? {
                bail!(
                    "connection closed before response headers (got {:?})",
                    String::from_utf8_lossy(&self.buf)
                );
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..header_end]).into_owned();
        self.buf.drain(..header_end);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_string();
        let status: u16 = parts
            .next()
            .unwrap_or_default()
            .parse()
            .with_context(|| format!("status line {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let mut resp = RawResponse {
            status,
            version,
            headers,
            body: Vec::new(),
        };
        let no_body =
            method.eq_ignore_ascii_case("HEAD") || status < 200 || status == 204 || status == 304;
        if no_body {
            return Ok(resp);
        }
        if resp
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            resp.body = self.read_chunked().await?;
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().context("content-length")?;
            while self.buf.len() < len {
                if !self.fill().await? {
                    bail!("connection closed mid-body");
                }
            }
            resp.body = self.buf.drain(..len).collect();
        } else {
            // Delimited by close.
            while self.fill().await? {}
            resp.body = std::mem::take(&mut self.buf);
        }
        Ok(resp)
    }

    /// Reads one response to a GET.
    pub async fn read_response(&mut self) -> anyhow::Result<RawResponse> {
        self.read_response_to("GET").await
    }

    async fn read_chunked(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(pos) = find(&self.buf, b"\r\n") {
                    break pos;
                }
                if !self.fill().await? {
                    bail!("closed in chunk size");
                }
            };
            let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .with_context(|| format!("chunk size {size_text:?}"))?;
            self.buf.drain(..line_end + 2);
            if size == 0 {
                // Trailers (usually none) end with an empty line.
                loop {
                    if let Some(pos) = find(&self.buf, b"\r\n") {
                        let empty = pos == 0;
                        self.buf.drain(..pos + 2);
                        if empty {
                            return Ok(body);
                        }
                    } else if !self.fill().await? {
                        return Ok(body);
                    }
                }
            }
            while self.buf.len() < size + 2 {
                if !self.fill().await? {
                    bail!("closed mid-chunk");
                }
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
        }
    }

    /// Reads until the peer closes (bounded); returns what arrived. Errors if still open
    /// after the I/O timeout.
    pub async fn read_to_close(&mut self) -> anyhow::Result<Vec<u8>> {
        loop {
            match self.fill().await {
                Ok(true) => {}
                Ok(false) => return Ok(std::mem::take(&mut self.buf)),
                // A reset also means closed.
                Err(e) if is_reset(&e) => return Ok(std::mem::take(&mut self.buf)),
                Err(e) => return Err(e),
            }
        }
    }

    /// Bytes already buffered but not consumed by a response parse.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Reads exactly `n` bytes (after a protocol switch).
    pub async fn read_exact_bytes(&mut self, n: usize) -> anyhow::Result<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill().await? {
                bail!("closed after {} of {n} bytes", self.buf.len());
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Half-closes the write side.
    pub async fn shutdown_write(&mut self) -> anyhow::Result<()> {
        self.stream.shutdown().await?;
        Ok(())
    }
}

fn is_reset(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>().is_some_and(|io| {
        matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        )
    })
}

/// Serialises an HTTP/1.1 request. Adds `host: test` unless a host header is given, and
/// `content-length` when there is a body.
pub fn format_request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        out.push_str("host: test\r\n");
    }
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    let has_length = headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
    });
    if !body.is_empty() && !has_length {
        out.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One request on a fresh connection.
pub async fn http1_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<RawResponse> {
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send_request(method, path, headers, body).await?;
    conn.read_response_to(method).await
}

/// `GET path` with `host: test` on a fresh connection.
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<RawResponse> {
    http1_request(addr, "GET", path, &[], b"").await
}

/// `GET path` with extra headers on a fresh connection.
pub async fn get_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<RawResponse> {
    http1_request(addr, "GET", path, headers, b"").await
}

/// A response read fully by the HTTP/2 client.
#[derive(Debug)]
pub struct H2Response {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// Full body.
    pub body: Bytes,
}

impl H2Response {
    /// First value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Body parsed as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// An HTTP/2 prior-knowledge client connection (many streams over one TCP connection).
#[derive(Debug, Clone)]
pub struct H2Client {
    sender: hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    authority: String,
}

impl H2Client {
    /// Connects and completes the HTTP/2 handshake (the connection task runs on the current
    /// tokio runtime).
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr)).await??;
        stream.set_nodelay(true)?;
        Self::over(stream).await
    }

    /// The HTTP/2 handshake over an already connected stream (a TLS stream in TLS tests).
    pub async fn over<S>(stream: S) -> anyhow::Result<Self>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let io = hyper_util::rt::TokioIo::new(stream);
        let (sender, conn) = tokio::time::timeout(
            IO_TIMEOUT,
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io),
        )
        .await??;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self {
            sender,
            authority: "test".to_string(),
        })
    }

    /// The same connection, sending `authority` as `:authority` from now on.
    pub fn with_authority(mut self, authority: &str) -> Self {
        self.authority = authority.to_string();
        self
    }

    /// Sends a request (`:authority` test, `:scheme` http) and reads the whole response.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<H2Response> {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.authority))
            .version(http::Version::HTTP_2);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let req = builder.body(Full::new(Bytes::copy_from_slice(body)))?;
        let mut sender = self.sender.clone();
        let fut = async move {
            sender.ready().await?;
            let resp = sender.send_request(req).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes();
            anyhow::Ok(H2Response {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(IO_TIMEOUT, fut)
            .await
            .context("h2 request timed out")?
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> anyhow::Result<H2Response> {
        self.request("GET", path, &[], b"").await
    }
}
