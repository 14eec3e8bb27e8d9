//! An open upstream connection: TCP, a Unix domain socket for `pipe` hosts, or TLS over
//! either (a cluster with an `UpstreamTlsContext`). A plain enum rather than a boxed
//! stream, so the plain TCP path pays one branch per poll and no allocation; pools,
//! tcp_proxy and CONNECT tunnels all carry it. A connection the pools count is
//! [`Metered`]: its bytes go to `upstream_cx_{rx,tx}_bytes_total` as they pass (one add
//! per read or write, as Envoy updates them), and it notes whether the upstream ended it
//! (`upstream_cx_destroy_remote`).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// A connected upstream stream.
#[derive(Debug)]
pub enum UpstreamStream {
    /// To an IP host.
    Tcp(TcpStream),
    /// To a `pipe` host.
    Unix(UnixStream),
    /// TLS over one of the above (boxed: the session state is large).
    Tls(Box<tokio_rustls::client::TlsStream<UpstreamStream>>),
    /// One of the above, counted in its cluster's stats (boxed: once per connection).
    Metered(Box<Metered>),
}

/// What a counted connection's stream and its [`crate::upstream::OpenConnection`] share:
/// whether the upstream ended the connection.
#[derive(Debug, Default)]
pub(crate) struct PeerClosed(AtomicBool);

impl PeerClosed {
    /// The upstream closed or reset the connection (Envoy's `RemoteClose`).
    pub(crate) fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A stream counted in `upstream_cx_rx_bytes_total` / `_tx_bytes_total`, watching for the
/// upstream's close.
pub struct Metered {
    inner: UpstreamStream,
    rx: baton_shared_stats::Counter,
    tx: baton_shared_stats::Counter,
    peer_closed: Arc<PeerClosed>,
    /// A tcp_proxy connection: as Envoy's half-close-enabled ones, the upstream's end of
    /// stream counts as its close only after the proxy shut its own write side (otherwise
    /// the proxy closes it later, locally).
    half_close: bool,
    write_shut: bool,
}

impl std::fmt::Debug for Metered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metered")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl UpstreamStream {
    /// `self` counted in `stats`; `peer_closed` is set when the upstream ends it.
    pub(crate) fn metered(
        self,
        stats: &crate::stats::ClusterStats,
        peer_closed: Arc<PeerClosed>,
        half_close: bool,
    ) -> Self {
        Self::Metered(Box::new(Metered {
            inner: self,
            rx: stats.upstream_cx_rx_bytes_total.clone(),
            tx: stats.upstream_cx_tx_bytes_total.clone(),
            peer_closed,
            half_close,
            write_shut: false,
        }))
    }
}

impl Metered {
    fn peer_closed(&self) {
        self.peer_closed.0.store(true, Ordering::Relaxed);
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &polled {
            Poll::Ready(Ok(())) => {
                let read = buf.filled().len() - before;
                if read > 0 {
                    self.rx.add(read as u64);
                } else if buf.remaining() > 0 && (!self.half_close || self.write_shut) {
                    self.peer_closed();
                }
            }
            Poll::Ready(Err(_)) => self.peer_closed(),
            Poll::Pending => {}
        }
        polled
    }

    fn counted_write(&mut self, polled: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match &polled {
            Poll::Ready(Ok(n)) => self.tx.add(*n as u64),
            Poll::Ready(Err(_)) => self.peer_closed(),
            Poll::Pending => {}
        }
        polled
    }
}

impl UpstreamStream {
    /// The local address of an IP connection (`%UPSTREAM_LOCAL_ADDRESS%`); None for a
    /// `pipe` host.
    pub fn local_ip_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Self::Tcp(tcp) => tcp.local_addr().ok(),
            Self::Unix(_) => None,
            Self::Tls(tls) => tls.get_ref().0.local_ip_addr(),
            Self::Metered(metered) => metered.inner.local_ip_addr(),
        }
    }
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::Metered(m) => m.poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Self::Metered(m) => {
                let polled = Pin::new(&mut m.inner).poll_write(cx, buf);
                m.counted_write(polled)
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Self::Metered(m) => {
                let polled = Pin::new(&mut m.inner).poll_write_vectored(cx, bufs);
                m.counted_write(polled)
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(s) => s.is_write_vectored(),
            Self::Unix(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
            Self::Metered(m) => m.inner.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Unix(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::Metered(m) => Pin::new(&mut m.inner).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Self::Metered(m) => {
                m.write_shut = true;
                Pin::new(&mut m.inner).poll_shutdown(cx)
            }
        }
    }
}
