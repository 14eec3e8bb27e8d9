//! Bidirectional byte copy for tcp_proxy with half-close (an EOF read from one side
//! shuts down the write side of the other; done when both directions are), an idle
//! timeout reset by traffic in either direction, and live downstream byte counters (the
//! listener's stats and the connection's own totals for its access log entry).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use baton_shared_stats::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// How a proxied connection ended.
#[derive(Debug)]
pub enum CopyOutcome {
    /// Both directions reached EOF: (downstream->upstream, upstream->downstream) bytes.
    Finished(u64, u64),
    /// A read or write failed (reset).
    Failed(io::Error),
    /// No byte moved for the idle timeout.
    IdleTimeout,
}

/// Last time a byte moved, as milliseconds since `base`.
#[derive(Debug)]
struct Activity {
    base: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// One connection's downstream byte totals, readable however the copy ended.
#[derive(Debug, Default)]
pub(crate) struct ConnectionBytes {
    /// Bytes read from the downstream (`%BYTES_RECEIVED%`).
    pub(crate) received: AtomicU64,
    /// Bytes written to the downstream (`%BYTES_SENT%`).
    pub(crate) sent: AtomicU64,
}

/// Where the downstream side's bytes are counted as they move
/// (`downstream_cx_rx_bytes_total` / `downstream_cx_tx_bytes_total`, and the
/// connection's own totals).
#[derive(Clone)]
pub(crate) struct ByteCounters {
    /// Bytes read from the downstream.
    pub(crate) rx: Counter,
    /// Bytes written to the downstream.
    pub(crate) tx: Counter,
    /// This connection's totals.
    pub(crate) connection: Arc<ConnectionBytes>,
}

/// A stream that records activity on successful reads and writes.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
    counters: Option<ByteCounters>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if matches!(polled, Poll::Ready(Ok(()))) && read > 0 {
            self.activity.touch();
            if let Some(c) = &self.counters {
                c.rx.add(read as u64);
                c.connection
                    .received
                    .fetch_add(read as u64, Ordering::Relaxed);
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            if n > 0 {
                self.activity.touch();
                if let Some(c) = &self.counters {
                    c.tx.add(n as u64);
                    c.connection.sent.fetch_add(n as u64, Ordering::Relaxed);
                }
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

/// Per-direction copy buffer sizes (see [`crate::buffer_limit::copy_buffer`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BufferSizes {
    /// Reads from the downstream (the listener's limit).
    pub(crate) downstream: usize,
    /// Reads from the upstream (the cluster's limit).
    pub(crate) upstream: usize,
}

/// Copies between `downstream` and `upstream` until both directions end, one fails or
/// nothing moves for `idle_timeout`, counting the downstream's bytes in
/// `downstream_counters`. Both streams are dropped (closed) on return.
pub(crate) async fn copy_both_ways<D, U>(
    downstream: D,
    upstream: U,
    buffers: BufferSizes,
    idle_timeout: Option<Duration>,
    downstream_counters: Option<ByteCounters>,
) -> CopyOutcome
where
    D: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Arc::new(Activity {
        base: Instant::now(),
        last_ms: AtomicU64::new(0),
    });
    let mut downstream = Tracked {
        inner: downstream,
        activity: activity.clone(),
        counters: downstream_counters,
    };
    let mut upstream = Tracked {
        inner: upstream,
        activity: activity.clone(),
        counters: None,
    };
    let copying = tokio::io::copy_bidirectional_with_sizes(
        &mut downstream,
        &mut upstream,
        buffers.downstream,
        buffers.upstream,
    );
    let idle = async {
        match idle_timeout {
            Some(timeout) => loop {
                let deadline = activity.last() + timeout;
                if Instant::now() >= deadline {
                    return;
                }
                tokio::time::sleep_until(deadline).await;
            },
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        result = copying => match result {
            Ok((down_to_up, up_to_down)) => CopyOutcome::Finished(down_to_up, up_to_down),
            Err(e) => CopyOutcome::Failed(e),
        },
        () = idle => CopyOutcome::IdleTimeout,
    }
}
