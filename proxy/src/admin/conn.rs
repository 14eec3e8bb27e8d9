//! One admin connection: HTTP/1.1, or HTTP/2 with prior knowledge (h2c), as Envoy's
//! admin serves both, with two corrections to what hyper writes so that answers are
//! framed as Envoy frames them.
//!
//! - hyper answers an HTTP/1.0 request in HTTP/1.0; Envoy's 426 to it says HTTP/1.1.
//!   The 426 status line is rewritten (same length).
//! - hyper never writes `transfer-encoding` on an answer to HEAD; Envoy's admin, which
//!   streams its answers, says chunked. The handler names the header
//!   [`HEAD_CHUNKED_MARKER`] (a name as long as `transfer-encoding`), and the name is
//!   corrected on the way out.
//!
//! Only heads are looked at, and only on the admin listener.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Header name the admin handler uses for `transfer-encoding: chunked` on HEAD answers.
pub(super) const HEAD_CHUNKED_MARKER: &str = "transfer-encodin_";

const HTTP10_426: &[u8] = b"HTTP/1.0 426 ";
const MARKER_LINE: &[u8] = b"\r\ntransfer-encodin_: ";

/// The admin connection's socket, correcting response heads as they are written.
#[derive(Debug)]
pub(super) struct AdminIo<IO> {
    inner: IO,
    /// A corrected copy of the buffer being written (empty when none was needed).
    corrected: Vec<u8>,
}

impl<IO> AdminIo<IO> {
    pub(super) fn new(inner: IO) -> Self {
        Self {
            inner,
            corrected: Vec::new(),
        }
    }
}

/// `buf` with its response head corrected, or None when it needs nothing.
fn correct_head(buf: &[u8]) -> Option<Vec<u8>> {
    if !buf.starts_with(b"HTTP/1.") {
        return None;
    }
    let head_len = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(buf.len(), |p| p + 2);
    let head = &buf[..head_len];
    let is_426 = head.starts_with(HTTP10_426);
    let marker = head
        .windows(MARKER_LINE.len())
        .position(|w| w == MARKER_LINE);
    if !is_426 && marker.is_none() {
        return None;
    }
    let mut out = buf.to_vec();
    if is_426 {
        out[7] = b'1';
    }
    if let Some(at) = marker {
        // "\r\ntransfer-encodin_" -> "\r\ntransfer-encoding"
        out[at + MARKER_LINE.len() - 3] = b'g';
    }
    Some(out)
}

impl<IO: AsyncRead + Unpin> AsyncRead for AdminIo<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for AdminIo<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        // The corrections keep lengths, so a partial write maps one to one; a retried
        // write after Pending is corrected again from the same bytes.
        this.corrected = correct_head(buf).unwrap_or_default();
        let out = if this.corrected.is_empty() {
            buf
        } else {
            &this.corrected
        };
        Pin::new(&mut this.inner).poll_write(cx, out)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_corrected_in_place() {
        let head = b"HTTP/1.0 426 Upgrade Required\r\ncontent-length: 1\r\n\r\nx";
        assert_eq!(
            correct_head(head).as_deref(),
            Some(b"HTTP/1.1 426 Upgrade Required\r\ncontent-length: 1\r\n\r\nx".as_slice())
        );
        let head = b"HTTP/1.1 200 OK\r\ntransfer-encodin_: chunked\r\ndate: x\r\n\r\n";
        assert_eq!(
            correct_head(head).as_deref(),
            Some(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ndate: x\r\n\r\n".as_slice())
        );
        assert_eq!(correct_head(b"HTTP/1.0 200 OK\r\n\r\n"), None);
        // A body that looks like the marker is left alone.
        assert_eq!(
            correct_head(b"HTTP/1.1 200 OK\r\n\r\nx\r\ntransfer-encodin_: y"),
            None
        );
    }
}
