//! The write side of [`DownstreamIo`]: hyper's automatic error responses become
//! Envoy's replies, an HTTP/1.0 client's 426 speaks `HTTP/1.1`, a HEAD answer without a
//! length gets `transfer-encoding: chunked`, HTTP/2 frames go out as Envoy's (its
//! SETTINGS, streams over `max_concurrent_streams` refused), and a flush tells an idle
//! HTTP/1 connection that it may park.

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

use super::reply::automatic_error;
use super::{h2_wire, Codec, DownstreamIo};

/// The header line added to a HEAD answer without a length.
const CHUNKED_LINE: &[u8] = b"transfer-encoding: chunked\r\n";

/// Where the blank line of a response head starts, when `buf` is one whole HTTP/1.1
/// response head and nothing else (a HEAD answer; anything else, such as a pipelined
/// answer before it in the same write, is left alone).
pub(super) fn head_only(buf: &[u8]) -> Option<usize> {
    if !buf.starts_with(b"HTTP/1.1 ") || !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let end = buf.len() - 2;
    // The first blank line must be the last one.
    let first_blank = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    (first_blank + 2 == end).then_some(end)
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for DownstreamIo<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.flushed = false;
        std::task::ready!(this.poll_pending(cx))?;
        if this.own_h2 && this.codec == Codec::Http2 {
            let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
            if let Poll::Ready(Ok(n)) = polled {
                this.on_written(n);
            }
            return polled;
        }
        if let Some(automatic) = automatic_error(buf) {
            let reply = this.automatic_reply(automatic);
            this.pending = this.codec_reply(reply);
            this.written = 0;
            // Report the whole original buffer as written; the replacement drains on
            // the next write/flush/shutdown.
            let _ = this.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        if this.codec != Codec::Http2 {
            if let Some(conn) = &this.conn {
                // hyper writes `HTTP/1.0` to an HTTP/1.0 client; Envoy's 426 refusing
                // HTTP/1.0 says `HTTP/1.1`. The version goes out from `pending`, the
                // rest of the head as hyper wrote it.
                if buf.starts_with(b"HTTP/1.0 ")
                    && conn.http11_status_line.swap(false, Ordering::Relaxed)
                {
                    this.pending = b"HTTP/1.1".to_vec();
                    this.written = 0;
                    let _ = this.poll_pending(cx)?;
                    return Poll::Ready(Ok(8));
                }
                if conn.head_chunked.swap(false, Ordering::Relaxed) {
                    if let Some(cut) = head_only(buf) {
                        // The head up to its last header line, then the header; the
                        // blank line follows from hyper's buffer.
                        let mut head = Vec::with_capacity(cut + CHUNKED_LINE.len());
                        head.extend_from_slice(&buf[..cut]);
                        head.extend_from_slice(CHUNKED_LINE);
                        this.pending = head;
                        this.written = 0;
                        let _ = this.poll_pending(cx)?;
                        return Poll::Ready(Ok(cut));
                    }
                }
            }
            let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
            if let Poll::Ready(Ok(n)) = polled {
                this.on_written(n);
            }
            return polled;
        }
        if !this.h2_settings_seen {
            this.h2_settings_seen = true;
            if let Some((len, settings)) = h2_wire::envoy_settings(buf) {
                // Envoy's SETTINGS go out in place of h2's, which count as written.
                this.pending = settings;
                this.written = 0;
                let _ = this.poll_pending(cx)?;
                return Poll::Ready(Ok(len));
            }
        }
        let frames = &mut this.h2.get_or_insert_with(Default::default).outbound;
        let plan = frames.plan(buf);
        if plan.len == 0 && plan.refusal {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "client exceeded max_concurrent_streams",
            )));
        }
        let buf = &buf[..plan.len];
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            let resets_before = frames.resets;
            frames.commit(&plan, &buf[..n]);
            let resets = frames.resets - resets_before;
            if resets > 0 && this.stats.is_some() {
                crate::stats::downstream_http2().tx_reset.add(resets);
            }
            this.on_written(n);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        let flushed = std::task::ready!(Pin::new(&mut self.inner).poll_flush(cx));
        if flushed.is_ok() && self.park_enabled {
            self.flushed = true;
            self.flushed_streams = self
                .conn
                .as_ref()
                .map_or(0, |c| c.streams_ended.load(Ordering::Relaxed));
            // hyper reads before it writes: its read that found nothing came before
            // this flush of the last response's end, and it reads again only when
            // woken. The connection is idle now if it may park.
            if self.may_park() {
                if let Some(conn) = &self.conn {
                    conn.idle_read.store(true, Ordering::Relaxed);
                }
            }
        }
        Poll::Ready(flushed)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.parked {
            // hyper's connection ended to park: the socket stays open.
            return Poll::Ready(Ok(()));
        }
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
