//! Codec setup for one downstream connection: hyper's HTTP/1.1 and HTTP/2 servers
//! configured from the connection manager (limits, timeouts, windows), and an I/O
//! wrapper that replaces hyper's bare automatic error responses (400 / 431 on malformed
//! or oversized requests) with Envoy's (`Bad Request` / `Request Header Fields Too
//! Large` text bodies, `connection: close`) and counts the connection's bytes and codec
//! in `http.<stat_prefix>.*`.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use baton_config::model::{CodecType, HttpConnectionManager};

use super::context::HcmRuntime;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A hyper server builder for this connection manager.
pub fn builder(hcm: &HttpConnectionManager) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b = match hcm.codec_type {
        CodecType::Auto => b,
        CodecType::Http1 => b.http1_only(),
        CodecType::Http2 => b.http2_only(),
    };
    let max_header_bytes = (hcm.max_request_headers_kb as usize).saturating_mul(1024);
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(hcm.request_headers_timeout)
        .max_buf_size(max_header_bytes.max(8192))
        .max_headers(hcm.max_headers_count as usize)
        .keep_alive(true)
        .half_close(false);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(hcm.http2.max_concurrent_streams)
        .initial_stream_window_size(hcm.http2.initial_stream_window_size)
        .initial_connection_window_size(hcm.http2.initial_connection_window_size)
        .max_header_list_size(max_header_bytes as u32);
    if hcm.http2.allow_connect {
        b.http2().enable_connect_protocol();
    }
    b
}

/// The automatic responses hyper writes on parse errors, and Envoy's replacement.
const REWRITES: &[(&[u8], u16, &str)] = &[
    (b"HTTP/1.1 400 Bad Request\r\n", 400, "Bad Request"),
    (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
        431,
        "Request Header Fields Too Large",
    ),
    (
        b"HTTP/1.1 414 URI Too Long\r\n",
        431,
        "Request Header Fields Too Large",
    ),
];

/// True when `buf` is exactly one of hyper's automatic error responses: the status line,
/// an optional `connection: close`, `content-length: 0`, an optional `date`, and nothing
/// else. Responses the connection
/// manager builds always carry `server`/`date` before the length, so they never match.
fn automatic_error(buf: &[u8]) -> Option<(u16, &'static str)> {
    for (line, status, text) in REWRITES {
        let Some(rest) = buf.strip_prefix(*line) else {
            continue;
        };
        let rest = rest
            .strip_prefix(b"connection: close\r\n".as_slice())
            .unwrap_or(rest);
        let Some(rest) = rest.strip_prefix(b"content-length: 0\r\n".as_slice()) else {
            continue;
        };
        let rest = match rest.strip_prefix(b"date: ".as_slice()) {
            Some(after) => match after.windows(2).position(|w| w == b"\r\n") {
                Some(end) => &after[end + 2..],
                None => continue,
            },
            None => rest,
        };
        if rest == b"\r\n" {
            return Some((*status, text));
        }
    }
    None
}

fn envoy_error_response(status: u16, text: &str, server: &str) -> Vec<u8> {
    let reason = if status == 400 {
        "Bad Request"
    } else {
        "Request Header Fields Too Large"
    };
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-length: {}\r\ncontent-type: text/plain\r\ndate: {date}\r\nserver: {server}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    )
    .into_bytes()
}

/// The HTTP/2 connection preface a client sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Which codec serves the connection, for `downstream_cx_http1_*` / `_http2_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    /// AUTO and nothing read yet.
    Unknown,
    Http1,
    Http2,
}

/// Downstream I/O with hyper's automatic error responses rewritten.
#[derive(Debug)]
pub struct DownstreamIo<IO> {
    inner: IO,
    pending: Vec<u8>,
    written: usize,
    server: String,
    /// Status of a rewritten error reply (0 = none), for the access log.
    pub error_status: Arc<AtomicU16>,
    /// Where bytes and the codec are counted (none: not counted).
    stats: Option<Arc<HcmRuntime>>,
    codec: Codec,
}

impl<IO> DownstreamIo<IO> {
    /// Wraps `inner`; `server` is the `server` header value to use.
    pub fn new(inner: IO, server: String) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            written: 0,
            server,
            error_status: Arc::new(AtomicU16::new(0)),
            stats: None,
            codec: Codec::Unknown,
        }
    }

    /// Counts this connection in `runtime`'s stats: rx/tx bytes, and its codec
    /// (`downstream_cx_http1_total` / `_http2_total` and their `_active` gauges): fixed
    /// by `codec_type`, or with AUTO decided by the first bytes as hyper decides it (the
    /// HTTP/2 preface, or anything else for HTTP/1).
    pub(crate) fn with_stats(mut self, runtime: Arc<HcmRuntime>) -> Self {
        let codec = match runtime.hcm.codec_type {
            CodecType::Auto => Codec::Unknown,
            CodecType::Http1 => Codec::Http1,
            CodecType::Http2 => Codec::Http2,
        };
        self.stats = Some(runtime);
        self.set_codec(codec);
        self
    }

    fn set_codec(&mut self, codec: Codec) {
        self.codec = codec;
        let Some(rt) = &self.stats else { return };
        match codec {
            Codec::Unknown => {}
            Codec::Http1 => {
                rt.stats.downstream_cx_http1_total.inc();
                rt.stats.downstream_cx_http1_active.inc();
            }
            Codec::Http2 => {
                rt.stats.downstream_cx_http2_total.inc();
                rt.stats.downstream_cx_http2_active.inc();
            }
        }
    }

    /// Counts bytes just read; the first ones decide an AUTO codec.
    fn on_read(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.codec == Codec::Unknown && self.stats.is_some() {
            let n = data.len().min(H2_PREFACE.len());
            let codec = if data[..n] == H2_PREFACE[..n] {
                Codec::Http2
            } else {
                Codec::Http1
            };
            self.set_codec(codec);
        }
        if let Some(rt) = &self.stats {
            rt.stats.downstream_cx_rx_bytes_total.add(data.len() as u64);
        }
    }

    fn on_written(&self, n: usize) {
        if let Some(rt) = &self.stats {
            rt.stats.downstream_cx_tx_bytes_total.add(n as u64);
        }
    }
}

impl<IO> Drop for DownstreamIo<IO> {
    fn drop(&mut self) {
        let Some(rt) = &self.stats else { return };
        match self.codec {
            Codec::Unknown => {}
            Codec::Http1 => rt.stats.downstream_cx_http1_active.dec(),
            Codec::Http2 => rt.stats.downstream_cx_http2_active.dec(),
        }
    }
}

impl<IO: AsyncWrite + Unpin> DownstreamIo<IO> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n = std::task::ready!(
                Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.on_written(n);
            self.written += n;
        }
        if !self.pending.is_empty() {
            self.pending = Vec::new();
            self.written = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for DownstreamIo<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if polled.is_ready() {
            let this = &mut *self;
            this.on_read(&buf.filled()[before..]);
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for DownstreamIo<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        std::task::ready!(this.poll_pending(cx))?;
        if let Some((status, text)) = automatic_error(buf) {
            this.error_status.store(status, Ordering::Relaxed);
            this.pending = envoy_error_response(status, text, &this.server);
            this.written = 0;
            // Report the whole original buffer as written; the replacement drains on
            // the next write/flush/shutdown.
            let _ = this.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.on_written(n);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_only_bare_automatic_errors() {
        assert_eq!(
            automatic_error(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Mon, 23 Nov 2026 13:46:38 GMT\r\n\r\n"),
            Some((400, "Bad Request"))
        );
        assert_eq!(
            automatic_error(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n"
            ),
            Some((431, "Request Header Fields Too Large"))
        );
        assert_eq!(
            automatic_error(
                b"HTTP/1.1 400 Bad Request\r\nserver: envoy\r\ncontent-length: 0\r\n\r\n"
            ),
            None
        );
        assert_eq!(
            automatic_error(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nx: y\r\n\r\n"),
            None
        );
    }
}
