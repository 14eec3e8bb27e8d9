//! An upstream HTTP/2 connection's socket, following its frames both ways for
//! `cluster.<name>.http2.rx_reset` / `tx_reset` (RST_STREAM frames received and sent),
//! which h2 does not report. Only frame headers are looked at.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::stats::ClusterStats;

/// Frame header length.
const HEADER_LEN: usize = 9;
/// RST_STREAM frame type.
const RST_STREAM: u8 = 0x3;
/// The client connection preface, written before the first frame.
const CLIENT_PREFACE_LEN: usize = 24;

/// Follows frame boundaries in one direction.
#[derive(Debug, Default)]
struct FrameWalk {
    /// Bytes to pass before the next frame header (the preface, then payloads).
    skip: usize,
    header: [u8; HEADER_LEN],
    header_len: usize,
}

impl FrameWalk {
    /// Walks `data`; returns how many RST_STREAM frames started in it.
    fn resets_in(&mut self, mut data: &[u8]) -> u64 {
        let mut resets = 0;
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            let n = (HEADER_LEN - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            data = &data[n..];
            if self.header_len == HEADER_LEN {
                self.header_len = 0;
                let h = &self.header;
                self.skip = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                if h[3] == RST_STREAM {
                    resets += 1;
                }
            }
        }
        resets
    }
}

/// The socket with its RST_STREAM frames counted in the cluster's `http2.*`.
#[derive(Debug)]
pub(super) struct ResetCounting<IO> {
    inner: IO,
    stats: Arc<ClusterStats>,
    inbound: FrameWalk,
    outbound: FrameWalk,
}

impl<IO> ResetCounting<IO> {
    pub(super) fn new(inner: IO, stats: Arc<ClusterStats>) -> Self {
        Self {
            inner,
            stats,
            inbound: FrameWalk::default(),
            outbound: FrameWalk {
                skip: CLIENT_PREFACE_LEN,
                ..FrameWalk::default()
            },
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for ResetCounting<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let resets = this.inbound.resets_in(&buf.filled()[before..]);
            if resets > 0 {
                this.stats.http2().rx_reset.add(resets);
            }
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ResetCounting<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            let resets = this.outbound.resets_in(&buf[..n]);
            if resets > 0 {
                this.stats.http2().tx_reset.add(resets);
            }
        }
        polled
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
    fn counts_resets_across_split_writes() {
        let mut bytes = vec![b'P'; CLIENT_PREFACE_LEN];
        for kind in [0x4u8, RST_STREAM, 0x0, RST_STREAM] {
            bytes.extend_from_slice(&[0, 0, 4, kind, 0, 0, 0, 0, 1, 0, 0, 0, 8]);
        }
        for chunk in [1, 5, 13, 100] {
            let mut walk = FrameWalk {
                skip: CLIENT_PREFACE_LEN,
                ..FrameWalk::default()
            };
            let total: u64 = bytes.chunks(chunk).map(|c| walk.resets_in(c)).sum();
            assert_eq!(total, 2, "chunk {chunk}");
        }
    }
}
