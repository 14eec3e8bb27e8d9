//! HTTP/1.1 upstream connections without a task of their own: the downstream stream that
//! uses one polls it in place (while it waits for the response head, then from the
//! response body it reads), and the pool's watcher polls the idle ones so a close by the
//! upstream is noticed at once. A request then costs no task switch and no channel hop
//! between a connection task and the stream.
//!
//! hyper's client connection is still the codec: its `Connection` future is polled here
//! instead of being spawned. Everything it completes (the response head, body frames, its
//! readiness for the next request) happens inside those polls, so the futures it hands
//! out are polled without a waker of their own.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::Response;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_util::rt::TokioIo;

use super::http1;
use super::lean::LeanBody;
use crate::upstream::host::OpenConnection;
use crate::upstream::stream::UpstreamStream;
use crate::upstream::{BoxError, RequestBody};

type Http1Connection = Connection<TokioIo<UpstreamStream>, RequestBody>;

/// One HTTP/1.1 upstream connection and the handle requests are sent through.
pub(super) struct DrivenConnection {
    pub(super) sender: SendRequest<RequestBody>,
    /// `None` once the connection ended.
    conn: Option<Http1Connection>,
    /// Keeps the connection counted (host and cluster `cx_active`) while it is open.
    open: Option<OpenConnection>,
    /// The waker it is driven under while parked in the pool (made at its first checkin).
    pub(super) parked: Option<http1::Parked>,
}

impl DrivenConnection {
    pub(super) fn new(
        sender: SendRequest<RequestBody>,
        conn: Http1Connection,
        open: Option<OpenConnection>,
    ) -> Box<Self> {
        Box::new(Self {
            sender,
            conn: Some(conn),
            open,
            parked: None,
        })
    }

    /// The connection's local address (IP hosts).
    pub(super) fn local(&self) -> Option<std::net::SocketAddr> {
        self.open.as_ref().and_then(OpenConnection::local)
    }

    /// Lets the connection write what is queued and read what arrived; `cx` is woken
    /// when it can make progress again. False once the connection has ended.
    pub(super) fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        drive_connection(&mut self.conn, &mut self.open, cx)
    }

    /// [`Self::drive`] under the waker of its parking (a no-op waker without one).
    pub(super) fn drive_parked(&mut self) -> bool {
        let waker = self.parked.as_ref().map_or(Waker::noop(), |p| p.waker());
        drive_connection(
            &mut self.conn,
            &mut self.open,
            &mut Context::from_waker(waker),
        )
    }

    /// The socket, its counting guard and parking, for the lean exchange to take over;
    /// None when hyper holds bytes no request asked for (the connection then closes).
    pub(super) fn into_stream(
        self: Box<Self>,
    ) -> Option<(
        UpstreamStream,
        Option<OpenConnection>,
        Option<http1::Parked>,
    )> {
        let Self {
            sender,
            conn,
            open,
            parked,
        } = *self;
        drop(sender);
        let parts = conn?.into_parts();
        if !parts.read_buf.is_empty() {
            return None;
        }
        Some((parts.io.into_inner(), open, parked))
    }

    /// See [`OpenConnection::set_exchange_open`].
    pub(super) fn set_exchange_open(&mut self, open: bool) {
        if let Some(guard) = &mut self.open {
            guard.set_exchange_open(open);
        }
    }

    /// Open and able to take a request now.
    pub(super) fn is_ready(&self) -> bool {
        self.conn.is_some() && self.sender.is_ready()
    }

    /// Open (possibly still busy with a request).
    pub(super) fn is_open(&self) -> bool {
        self.conn.is_some() && !self.sender.is_closed()
    }

    /// Sends `request` and drives the connection until the response head (or the
    /// failure) arrives.
    pub(super) async fn exchange<T>(
        &mut self,
        request: impl Future<Output = Result<Response<Incoming>, T>>,
    ) -> Result<Response<Incoming>, T> {
        // Unconstrained: the promise is polled without a waker (only `drive` completes
        // it), so tokio's cooperative budget must never make it return Pending.
        let mut request = std::pin::pin!(tokio::task::unconstrained(request));
        std::future::poll_fn(|cx| {
            self.drive(cx);
            request
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
        })
        .await
    }

    /// Lets one more poll settle the connection after its response (the codec becomes
    /// ready for the next request in it).
    pub(super) async fn settle(&mut self) -> bool {
        std::future::poll_fn(|cx| Poll::Ready(self.drive(cx))).await
    }

    /// Closes the connection as its own task would have: hyper finishes it (a TLS
    /// close_notify, a FIN) once the sender is gone. Only a close that cannot finish at
    /// once gets a task.
    pub(super) fn close(self: Box<Self>) {
        let Self {
            sender, conn, open, ..
        } = *self;
        drop(sender);
        let Some(mut conn) = conn else {
            return;
        };
        let finished = Pin::new(&mut conn)
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_ready();
        if !finished {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _open = open;
                    let _ = conn.await;
                });
            }
        }
    }
}

/// Polls hyper's connection; on its end drops it and the guard that counts it open.
fn drive_connection(
    conn: &mut Option<Http1Connection>,
    open: &mut Option<OpenConnection>,
    cx: &mut Context<'_>,
) -> bool {
    let Some(polled) = conn.as_mut() else {
        return false;
    };
    match Pin::new(polled).poll(cx) {
        Poll::Pending => true,
        Poll::Ready(result) => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "upstream HTTP/1.1 connection ended with error");
            }
            *conn = None;
            // With a request on it, the guard goes with the exchange, which knows whether
            // its response ended (`upstream_cx_destroy_with_active_rq`); that is in this
            // wakeup, as the exchange sees the end too.
            if !open.as_ref().is_some_and(OpenConnection::exchange_open) {
                *open = None;
            }
            false
        }
    }
}

/// A connection out on one request until its response body ends: the request's
/// counters, and what returning it to the pool needs.
pub(super) struct Lease {
    pub(super) conn: Box<DrivenConnection>,
    pub(super) checkin: http1::Checkin,
}

impl Lease {
    /// The response is over: back to the pool once the codec is ready for another
    /// request. When it is not yet (the request body is still being sent, the response
    /// was abandoned mid-way), a task drives it there, as before inline driving.
    pub(super) fn release(mut self: Box<Self>, cx: &mut Context<'_>) {
        // Usually the codec went back to idle in the poll that read the body's end.
        if self.conn.is_ready() {
            (*self).finish(true);
            return;
        }
        let open = self.conn.drive(cx);
        if open && !self.conn.sender.is_ready() {
            self.finish_in_background();
            return;
        }
        (*self).finish(open);
    }

    /// The response ended; `ready`: the codec can take another request.
    pub(super) fn finish(self, ready: bool) {
        let Lease { conn, checkin } = self;
        checkin.finish(http1::PooledConnection::Hyper(conn), ready, true);
    }

    fn finish_in_background(mut self: Box<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let ready = std::future::poll_fn(|cx| {
                if !self.conn.drive(cx) {
                    return Poll::Ready(false);
                }
                if self.conn.sender.is_ready() {
                    Poll::Ready(true)
                } else {
                    Poll::Pending
                }
            })
            .await;
            // Abandoned mid-way: the response ended only if the codec is ready again.
            let Lease { conn, checkin } = *self;
            checkin.finish(http1::PooledConnection::Hyper(conn), ready, ready);
        });
    }
}

/// The body of an upstream response. From an HTTP/1.1 pool connection it also drives
/// that connection (whoever reads the body moves the bytes) and returns it to the pool
/// when the body ends; from HTTP/2 and upgraded connections it is hyper's body as is.
pub struct UpstreamBody {
    inner: BodySource,
}

enum BodySource {
    /// hyper's body, with the pool connection it drives (HTTP/1.1 pool connections).
    Hyper {
        inner: Incoming,
        lease: Option<Box<Lease>>,
    },
    /// Decoded from a lean HTTP/1.1 connection (`lean`).
    Lean(LeanBody),
}

impl UpstreamBody {
    pub(super) fn plain(inner: Incoming) -> Self {
        Self {
            inner: BodySource::Hyper { inner, lease: None },
        }
    }

    pub(super) fn leased(inner: Incoming, lease: Box<Lease>) -> Self {
        Self {
            inner: BodySource::Hyper {
                inner,
                lease: Some(lease),
            },
        }
    }

    pub(super) fn lean(body: LeanBody) -> Self {
        Self {
            inner: BodySource::Lean(body),
        }
    }
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            BodySource::Hyper { inner, lease } => f
                .debug_struct("UpstreamBody")
                .field("inner", inner)
                .field("leased", &lease.is_some())
                .finish(),
            BodySource::Lean(_) => f.debug_struct("UpstreamBody").field("lean", &true).finish(),
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let (inner, lease) = match &mut self.get_mut().inner {
            BodySource::Lean(body) => return body.poll_frame(cx),
            BodySource::Hyper { inner, lease } => (inner, lease),
        };
        let Some(leased) = lease.as_mut() else {
            return Pin::new(inner).poll_frame(cx).map_err(Into::into);
        };
        // Frames only arrive from `drive`, whose wakers cover this body too: a frame
        // already read is taken without polling the connection again.
        let mut polled = Pin::new(&mut *inner).poll_frame(&mut Context::from_waker(Waker::noop()));
        if polled.is_pending() {
            leased.conn.drive(cx);
            polled = Pin::new(&mut *inner).poll_frame(&mut Context::from_waker(Waker::noop()));
        }
        let ended = match &polled {
            Poll::Ready(Some(Ok(_))) => inner.is_end_stream(),
            Poll::Ready(None | Some(Err(_))) => true,
            Poll::Pending => false,
        };
        if ended {
            if let Some(lease) = lease.take() {
                lease.release(cx);
            }
        }
        polled.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            BodySource::Hyper { inner, .. } => inner.is_end_stream(),
            BodySource::Lean(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            BodySource::Hyper { inner, .. } => inner.size_hint(),
            BodySource::Lean(body) => body.size_hint(),
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // Abandoned before its end: the codec reads (or drops) the rest on its own.
        if let BodySource::Hyper { lease, .. } = &mut self.inner {
            if let Some(lease) = lease.take() {
                lease.finish_in_background();
            }
        }
    }
}
