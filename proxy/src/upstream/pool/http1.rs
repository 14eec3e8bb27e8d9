//! HTTP/1.1 connection pool of one host on one worker: keep-alive reuse (a connection
//! returns to the pool only once hyper reports it ready again, i.e. the response body
//! was read to the end and the connection is reusable), `max_requests_per_connection`,
//! closing of idle connections after the cluster `idle_timeout`, and dedicated
//! connections with upgrades enabled for websocket-style requests.
//!
//! Pool connections have no task: the request using one drives it (`driven`), and one
//! watcher task per pool drives the idle ones, so an upstream close is handled at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;

use http::{Request, Response, Version};
use http_body::Body;
use hyper::body::Incoming;
use hyper::client::conn::http1::{Builder, Connection, SendRequest};
use hyper_util::rt::TokioIo;

use super::driven::{DrivenConnection, Lease, UpstreamBody};
use super::head_limit::{lean_within_head_limit, within_head_limit};
use super::lean::{ExchangeError, LeanBody, LeanConnection, LeanLease};
use super::lean_codec;
use super::{note, reset, with_existing_pools, with_pools, PoolKey};
use crate::tls::client::TlsOverrides;
use crate::upstream::cluster::UpstreamCluster;
use crate::upstream::connect::{connect, Protocol};
use crate::upstream::error::UpstreamError;
use crate::upstream::host::{ActiveRequest, Host, OpenConnection};
use crate::upstream::stream::UpstreamStream;
use crate::upstream::{ConnFactsSlot, RequestBody};

/// Idle and busy HTTP/1.1 connections of one host on this worker.
#[derive(Default)]
pub(super) struct Http1Pool {
    /// Ready connections, most recently used last (reused first: keeps the others idle
    /// long enough to expire).
    idle: Vec<IdleConnection>,
    /// Connections out on a request (response not finished yet).
    busy: usize,
    /// An idle reaper task is running for this pool.
    reaper_running: bool,
    /// Wakes the watcher task that drives the idle connections (registered each time
    /// it runs); `watcher_running` says one was started.
    watcher: Arc<AtomicWaker>,
    watcher_running: bool,
}

/// The waker an idle connection is driven under while parked: its wakes reach the
/// pool's watcher only while the connection is in the pool, and mark it as having
/// something to look at (a close, stray bytes). A request that takes the connection
/// sends on it before its own first poll hands the connection the request's wakers;
/// that send wakes this waker, which then does nothing. (Before, a poll of hyper's
/// dispatcher with a no-op waker at each checkout took the wakers back.)
pub(super) struct Parked {
    state: Arc<ParkedWaker>,
    waker: Waker,
}

struct ParkedWaker {
    /// In the pool: wakes matter.
    parked: AtomicBool,
    /// Woken while parked since it was last driven.
    woken: AtomicBool,
    /// The pool's watcher.
    watcher: Arc<AtomicWaker>,
}

impl Wake for ParkedWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.parked.load(Ordering::Acquire) {
            self.woken.store(true, Ordering::Release);
            self.watcher.wake();
        }
    }
}

impl Parked {
    fn new(watcher: &Arc<AtomicWaker>) -> Self {
        let state = Arc::new(ParkedWaker {
            parked: AtomicBool::new(false),
            woken: AtomicBool::new(false),
            watcher: watcher.clone(),
        });
        let waker = Waker::from(state.clone());
        Self { state, waker }
    }

    pub(super) fn waker(&self) -> &Waker {
        &self.waker
    }

    /// Leaves the pool; true when it was woken while parked (it may have changed).
    fn unpark(&self) -> bool {
        self.state.parked.store(false, Ordering::Release);
        self.state.woken.swap(false, Ordering::AcqRel)
    }

    /// True (and cleared) when it was woken since it was last driven.
    fn take_woken(&self) -> bool {
        self.state.woken.swap(false, Ordering::AcqRel)
    }
}

/// A pool connection in either form: driven by hyper's client codec, or lean (socket
/// and buffers, `lean`). Idle ones switch form when a request needs the other.
pub(super) enum PooledConnection {
    Hyper(Box<DrivenConnection>),
    Lean(Box<LeanConnection>),
}

impl PooledConnection {
    fn parked(&self) -> Option<&Parked> {
        match self {
            Self::Hyper(c) => c.parked.as_ref(),
            Self::Lean(c) => c.parked.as_ref(),
        }
    }

    /// A request goes out on it (`true`) or its response ended (`false`): see
    /// [`OpenConnection::set_exchange_open`].
    pub(super) fn set_exchange_open(&mut self, open: bool) {
        match self {
            Self::Hyper(c) => c.set_exchange_open(open),
            Self::Lean(c) => c.set_exchange_open(open),
        }
    }

    fn parked_mut(&mut self) -> &mut Option<Parked> {
        match self {
            Self::Hyper(c) => &mut c.parked,
            Self::Lean(c) => &mut c.parked,
        }
    }

    /// Lets it notice a close (or, for hyper's, finish its work); false once ended.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        match self {
            Self::Hyper(c) => c.drive(cx),
            Self::Lean(c) => c.poll_idle(cx),
        }
    }

    fn drive_parked(&mut self) -> bool {
        match self {
            Self::Hyper(c) => c.drive_parked(),
            Self::Lean(c) => c.poll_idle_parked(),
        }
    }

    fn is_ready(&self) -> bool {
        match self {
            Self::Hyper(c) => c.is_ready(),
            Self::Lean(c) => c.is_open(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            Self::Hyper(c) => c.is_open(),
            Self::Lean(c) => c.is_open(),
        }
    }

    fn close(self) {
        match self {
            Self::Hyper(c) => c.close(),
            Self::Lean(c) => (*c).close(),
        }
    }

    /// The lean form (None: it could not switch, and is closed).
    fn into_lean(self, limits: HeadLimits) -> Option<Box<LeanConnection>> {
        match self {
            Self::Lean(c) => Some(c),
            Self::Hyper(c) => {
                let (stream, open, parked) = c.into_stream()?;
                Some(LeanConnection::new(
                    stream,
                    open,
                    parked,
                    limits.read_buffer,
                    limits.max_headers,
                ))
            }
        }
    }

    /// hyper's form (None: it could not switch, and is closed).
    async fn into_hyper(
        self,
        cluster: &UpstreamCluster,
        host: &Arc<Host>,
    ) -> Option<Box<DrivenConnection>> {
        match self {
            Self::Hyper(c) => Some(c),
            Self::Lean(c) => {
                let (stream, open) = (*c).into_stream()?;
                let (sender, conn) = builder(cluster)
                    .handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| reset(host, &e))
                    .ok()?;
                Some(DrivenConnection::new(sender, conn, open))
            }
        }
    }
}

/// What bounds a response head on a connection (the cluster's limits).
#[derive(Clone, Copy)]
pub(super) struct HeadLimits {
    /// Read buffer, which a head must fit in.
    pub(super) read_buffer: usize,
    pub(super) max_headers: usize,
}

impl HeadLimits {
    fn of(cluster: &UpstreamCluster) -> Self {
        // The read buffer bounds the response head too: a head that does not fit is a
        // protocol error, Envoy's for a head over `max_response_headers_kb` (80 KiB by
        // default for HTTP/1).
        let head_limit = cluster
            .model
            .response_headers_limit(false)
            .max(crate::buffer_limit::MIN_HTTP1_BUFFER);
        let read_buffer =
            crate::buffer_limit::http1_read_buffer(cluster.model.per_connection_buffer_limit_bytes)
                .map_or(head_limit, |max| max.min(head_limit));
        Self {
            read_buffer,
            // Envoy's `max_headers_count` for responses: over it the response is a
            // protocol error (502, `upstream_cx_protocol_error`).
            max_headers: cluster.model.max_response_headers_count as usize,
        }
    }
}

struct IdleConnection {
    conn: PooledConnection,
    /// Requests this connection has carried.
    requests: u32,
    idle_since: Instant,
}

impl Drop for Http1Pool {
    fn drop(&mut self) {
        // The watcher ends once it finds its pool gone.
        self.watcher.wake();
    }
}

impl Http1Pool {
    pub(super) fn is_empty(&self) -> bool {
        self.idle.is_empty() && self.busy == 0
    }

    /// Number of idle connections (tests, admin).
    #[cfg(test)]
    pub(super) fn idle_len(&self) -> usize {
        self.idle.len()
    }

    /// Takes the most recently used ready connection, discarding closed ones.
    fn checkout(&mut self) -> Option<IdleConnection> {
        while let Some(mut idle) = self.idle.pop() {
            // Only a connection woken since it was last driven can have changed (a close
            // the watcher has not seen yet): that one is polled, without a waker, to
            // find out. The request's own polls follow.
            let woken = idle.conn.parked().is_none_or(Parked::unpark);
            let open = !woken || idle.conn.drive(&mut Context::from_waker(Waker::noop()));
            if open && idle.conn.is_ready() {
                self.busy += 1;
                return Some(idle);
            }
            idle.conn.close();
        }
        None
    }

    /// Drops closed and expired idle connections (dropping the sender closes an idle
    /// HTTP/1.1 connection); returns when the next one expires, or None when no idle
    /// connection is left (the reaper then stops).
    fn expire(&mut self, idle_timeout: Duration, now: Instant) -> Option<Instant> {
        let mut kept = Vec::with_capacity(self.idle.len());
        for idle in self.idle.drain(..) {
            if idle.conn.is_open() && now.saturating_duration_since(idle.idle_since) < idle_timeout
            {
                kept.push(idle);
            } else {
                idle.conn.close();
            }
        }
        self.idle = kept;
        let oldest = self.idle.iter().map(|c| c.idle_since).min();
        if oldest.is_none() {
            self.reaper_running = false;
        }
        oldest.map(|t| t + idle_timeout)
    }

    /// Drives the idle connections woken since they were last driven (each under its
    /// parked waker, which reaches the watcher's `cx`), dropping those that ended.
    fn watch(&mut self, cx: &mut Context<'_>) {
        self.watcher.register(cx.waker());
        self.idle
            .retain_mut(|idle| match idle.conn.parked().map(Parked::take_woken) {
                Some(false) => true,
                Some(true) => idle.conn.drive_parked(),
                None => idle.conn.drive(cx),
            });
    }
}

/// Counts a connection as busy in this worker's pool until dropped (or until
/// [`Busy::end_in`] ends it inside a pool section the caller holds anyway).
pub(super) struct Busy {
    /// None once ended.
    key: Option<PoolKey>,
}

impl Busy {
    fn new(host: &Host, tls: &TlsOverrides) -> Self {
        Self {
            key: Some(PoolKey::new(host, tls)),
        }
    }

    /// Stops counting in `pool` (this busy connection's pool), without a second lookup.
    fn end_in(mut self, pool: &mut Http1Pool) {
        self.key = None;
        pool.busy = pool.busy.saturating_sub(1);
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(key) = &self.key {
            with_existing_pools(key, |p| p.http1.busy = p.http1.busy.saturating_sub(1));
        }
    }
}

/// Sends `req` (already in HTTP/1.1 form) to `host`.
pub(super) async fn send(
    cluster: &UpstreamCluster,
    host: &Arc<Host>,
    tls: &TlsOverrides,
    mut req: Request<RequestBody>,
    upgrade: bool,
    mut active: ActiveRequest,
    facts: &ConnFactsSlot,
) -> Result<Response<UpstreamBody>, UpstreamError> {
    // Boxed, as the new connection below: the rare paths' futures (a connect, a TLS
    // handshake) would otherwise size every request's future, which moves as it nests.
    if upgrade {
        return Box::pin(send_upgrade(cluster, host, tls, req, active, facts)).await;
    }
    if lean_codec::handles(&req) {
        return std::pin::pin!(send_lean(cluster, host, tls, req, active, facts)).await;
    }
    let mut yielded = false;
    loop {
        let (idle, busy) = with_pools(host, tls, |p| (p.http1.checkout(), p.http1.busy));
        match idle {
            Some(idle) => {
                let busy = Busy::new(host, tls);
                let Some(mut conn) = Box::pin(idle.conn.into_hyper(cluster, host)).await else {
                    continue;
                };
                note(facts, conn.local(), Version::HTTP_11);
                conn.set_exchange_open(true);
                active.attach();
                let sent = conn.sender.try_send_request(req);
                // Pinned in place, not copied into this future (see
                // `http::stream::handle`).
                let exchanged = {
                    let exchange = std::pin::pin!(conn.exchange(sent));
                    exchange.await
                };
                match exchanged {
                    Ok(response) => {
                        // Over the head limit: the connection is dropped, not reused.
                        let response = within_head_limit(cluster, host, response)?;
                        let lease =
                            lease(cluster, host, tls, conn, idle.requests + 1, busy, active);
                        return Ok(std::pin::pin!(with_lease(response, lease)).await);
                    }
                    Err(mut e) => match e.take_message() {
                        // The connection closed before the request left: try another.
                        Some(unsent) => req = unsent,
                        None => return Err(reset(host, e.error())),
                    },
                }
            }
            // A connection of this worker may be about to come back (its response body
            // just ended and the task returning it is queued): let it run once before
            // paying for a new connection.
            None if busy > 0 && !yielded => {
                yielded = true;
                tokio::task::yield_now().await;
            }
            None => break,
        }
    }

    let pending = cluster.pending_slot()?;
    let (stream, open) = Box::pin(connect(cluster, host, tls, Protocol::Http1))
        .await
        .inspect_err(|e| pending.failed(e))?;
    drop(pending);
    note(facts, open.local(), Version::HTTP_11);
    let (sender, conn) = builder(cluster)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| reset(host, &e))?;
    let mut conn = DrivenConnection::new(sender, conn, Some(open));
    with_pools(host, tls, |p| p.http1.busy += 1);
    let busy = Busy::new(host, tls);
    conn.set_exchange_open(true);
    active.attach();
    let sent = conn.sender.send_request(req);
    let exchanged = {
        let exchange = std::pin::pin!(conn.exchange(sent));
        exchange.await
    };
    match exchanged {
        Ok(response) => {
            let response = within_head_limit(cluster, host, response)?;
            let lease = lease(cluster, host, tls, conn, 1, busy, active);
            Ok(std::pin::pin!(with_lease(response, lease)).await)
        }
        Err(e) => Err(reset(host, &e)),
    }
}

/// Sends a request over the lean exchange (`lean`): a pooled connection when
/// one is idle, else a new one.
async fn send_lean(
    cluster: &UpstreamCluster,
    host: &Arc<Host>,
    tls: &TlsOverrides,
    mut req: Request<RequestBody>,
    mut active: ActiveRequest,
    facts: &ConnFactsSlot,
) -> Result<Response<UpstreamBody>, UpstreamError> {
    let limits = HeadLimits::of(cluster);
    let mut yielded = false;
    loop {
        let (idle, busy) = with_pools(host, tls, |p| (p.http1.checkout(), p.http1.busy));
        let (conn, requests, reused) = match idle {
            Some(idle) => {
                let busy = Busy::new(host, tls);
                let Some(conn) = idle.conn.into_lean(limits) else {
                    continue;
                };
                (conn, idle.requests, busy)
            }
            None if busy > 0 && !yielded => {
                yielded = true;
                tokio::task::yield_now().await;
                continue;
            }
            None => {
                let pending = cluster.pending_slot()?;
                let (stream, open) = Box::pin(connect(cluster, host, tls, Protocol::Http1))
                    .await
                    .inspect_err(|e| pending.failed(e))?;
                drop(pending);
                with_pools(host, tls, |p| p.http1.busy += 1);
                let conn = LeanConnection::new(
                    stream,
                    Some(open),
                    None,
                    limits.read_buffer,
                    limits.max_headers,
                );
                (conn, 0, Busy::new(host, tls))
            }
        };
        let busy = reused;
        let mut conn = conn;
        note(facts, conn.local(), Version::HTTP_11);
        conn.set_exchange_open(true);
        active.attach();
        let exchanged = {
            let exchange = std::pin::pin!(conn.exchange(&mut req, requests > 0));
            exchange.await
        };
        let (response, decoder, keep_alive) = match exchanged {
            Ok(head) => head,
            // Written nowhere: another connection may carry it.
            Err(ExchangeError::Unsent) => {
                (*conn).close();
                continue;
            }
            Err(ExchangeError::Reset(e)) => {
                tracing::debug!(host = %host.address, error = %e, "upstream request failed before response headers");
                return Err(UpstreamError::Reset {
                    host: host.clone(),
                    reason: "connection termination".to_owned(),
                });
            }
            Err(ExchangeError::Protocol(e)) => {
                tracing::debug!(host = %host.address, error = %e, "upstream response head refused");
                return Err(UpstreamError::ProtocolError { host: host.clone() });
            }
        };
        let response = lean_within_head_limit(cluster, host, response, conn.last_head_len)?;
        let requests = requests + 1;
        let lease = Box::new(LeanLease {
            conn,
            decoder,
            keep_alive,
            checkin: Checkin::new(cluster, host, tls, requests, busy, active),
        });
        return Ok(response.map(|()| UpstreamBody::lean(LeanBody::new(lease))));
    }
}

/// What a leased connection needs to go back to the pool after this request, whichever
/// codec carries it.
pub(super) struct Checkin {
    host: Arc<Host>,
    tls: TlsOverrides,
    /// Requests it has carried, this one included.
    requests: u32,
    /// Under `max_requests_per_connection`: it may carry another request.
    reusable: bool,
    idle_timeout: Option<Duration>,
    busy: Busy,
    active: ActiveRequest,
}

impl Checkin {
    fn new(
        cluster: &UpstreamCluster,
        host: &Arc<Host>,
        tls: &TlsOverrides,
        requests: u32,
        busy: Busy,
        active: ActiveRequest,
    ) -> Self {
        Self {
            host: host.clone(),
            tls: tls.clone(),
            requests,
            reusable: cluster
                .model
                .max_requests_per_connection
                .is_none_or(|max| requests < max),
            idle_timeout: cluster.model.idle_timeout,
            busy,
            active,
        }
    }

    /// The request is over: `conn` goes back to the pool when `ready` (it can carry
    /// another request) and under `max_requests_per_connection`, and closes otherwise.
    /// `completed`: its response ended (otherwise it was abandoned, and a close counts
    /// as one with a request in flight).
    pub(super) fn finish(self, mut conn: PooledConnection, ready: bool, completed: bool) {
        if completed {
            conn.set_exchange_open(false);
        }
        let Self {
            host,
            tls,
            requests,
            reusable,
            idle_timeout,
            busy,
            active,
        } = self;
        drop(active);
        if ready && reusable {
            checkin(&host, &tls, conn, busy, requests, idle_timeout);
        } else {
            drop(busy);
            conn.close();
        }
    }
}

/// What returning `conn` to the pool after this request needs.
fn lease(
    cluster: &UpstreamCluster,
    host: &Arc<Host>,
    tls: &TlsOverrides,
    conn: Box<DrivenConnection>,
    requests: u32,
    busy: Busy,
    active: ActiveRequest,
) -> Box<Lease> {
    Box::new(Lease {
        conn,
        checkin: Checkin::new(cluster, host, tls, requests, busy, active),
    })
}

/// The response with its body driving the connection; a response without a body (HEAD,
/// 204, 304, `content-length: 0`) gives the connection back at once.
async fn with_lease(response: Response<Incoming>, mut lease: Box<Lease>) -> Response<UpstreamBody> {
    let (parts, body) = response.into_parts();
    if body.is_end_stream() {
        let open = lease.conn.is_ready() || lease.conn.settle().await;
        let ready = open && lease.conn.sender.is_ready();
        if ready || !open {
            lease.finish(ready);
            return Response::from_parts(parts, UpstreamBody::plain(body));
        }
    }
    Response::from_parts(parts, UpstreamBody::leased(body, lease))
}

/// Upgrade requests get their own connection with upgrades enabled, driven by its own
/// task; it never returns to the pool (after a 101 it belongs to the tunnel).
async fn send_upgrade(
    cluster: &UpstreamCluster,
    host: &Arc<Host>,
    tls: &TlsOverrides,
    req: Request<RequestBody>,
    mut active: ActiveRequest,
    facts: &ConnFactsSlot,
) -> Result<Response<UpstreamBody>, UpstreamError> {
    let pending = cluster.pending_slot()?;
    let (mut sender, conn, mut open) = new_connection(cluster, host, tls)
        .await
        .inspect_err(|e| pending.failed(e))?;
    drop(pending);
    note(facts, open.local(), Version::HTTP_11);
    // It carries this one exchange, then the tunnel, until it closes.
    open.set_exchange_open(true);
    tokio::spawn(async move {
        let _open = open;
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream HTTP/1.1 connection ended with error");
        }
    });
    active.attach();
    let response = sender
        .send_request(req)
        .await
        .map_err(|e| reset(host, &e))?;
    let response = within_head_limit(cluster, host, response)?;
    Ok(response.map(UpstreamBody::plain))
}

/// Connects and handshakes; the caller drives (or spawns) the connection.
async fn new_connection(
    cluster: &UpstreamCluster,
    host: &Arc<Host>,
    tls: &TlsOverrides,
) -> Result<
    (
        SendRequest<RequestBody>,
        Connection<TokioIo<UpstreamStream>, RequestBody>,
        OpenConnection,
    ),
    UpstreamError,
> {
    let (stream, open) = connect(cluster, host, tls, Protocol::Http1).await?;
    let (sender, conn) = builder(cluster)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| reset(host, &e))?;
    Ok((sender, conn, open))
}

/// hyper's client codec with the cluster's response head limits (`HeadLimits`).
fn builder(cluster: &UpstreamCluster) -> Builder {
    let limits = HeadLimits::of(cluster);
    let mut builder = Builder::new();
    builder.max_buf_size(limits.read_buffer);
    builder.max_headers(limits.max_headers);
    builder
}

/// Parks a connection that can carry another request in this worker's pool, under the
/// pool's watcher; it stops counting as busy in the same pool section.
pub(super) fn checkin(
    host: &Arc<Host>,
    tls: &TlsOverrides,
    mut conn: PooledConnection,
    busy: Busy,
    requests: u32,
    idle_timeout: Option<Duration>,
) {
    let (start_reaper, start_watcher) = with_pools(host, tls, |p| {
        let pool = &mut p.http1;
        busy.end_in(pool);
        // From now on the watcher is woken when the upstream closes it or sends data
        // (a waker made once per connection, again only for a pool made anew).
        let parked = match conn.parked_mut().take() {
            Some(parked) if Arc::ptr_eq(&parked.state.watcher, &pool.watcher) => parked,
            _ => Parked::new(&pool.watcher),
        };
        parked.state.woken.store(false, Ordering::Release);
        parked.state.parked.store(true, Ordering::Release);
        *conn.parked_mut() = Some(parked);
        if !conn.drive_parked() {
            return (false, false);
        }
        pool.idle.push(IdleConnection {
            conn,
            requests,
            idle_since: Instant::now(),
        });
        let start_reaper = idle_timeout.is_some() && !pool.reaper_running;
        if start_reaper {
            pool.reaper_running = true;
        }
        let start_watcher = !pool.watcher_running;
        pool.watcher_running = true;
        (start_reaper, start_watcher)
    });
    if start_watcher {
        tokio::spawn(watch_idle(PoolKey::new(host, tls)));
    }
    if let (true, Some(timeout)) = (start_reaper, idle_timeout) {
        tokio::spawn(reap_idle(PoolKey::new(host, tls), timeout));
    }
}

/// Drives the pool's idle connections whenever one of them has something to say (an
/// upstream close, stray bytes); ends with the pool.
async fn watch_idle(key: PoolKey) {
    std::future::poll_fn(
        |cx| match with_existing_pools(&key, |p| p.http1.watch(cx)) {
            Some(()) => Poll::Pending,
            None => Poll::Ready(()),
        },
    )
    .await;
}

/// Closes idle connections of one host once they have been idle for `idle_timeout`;
/// runs only while the pool has idle connections.
async fn reap_idle(key: PoolKey, idle_timeout: Duration) {
    loop {
        let next =
            with_existing_pools(&key, |p| p.http1.expire(idle_timeout, Instant::now())).flatten();
        match next {
            Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
            None => return,
        }
    }
}

/// This worker's idle connection count for a host (tests).
#[cfg(test)]
pub(crate) fn idle_connections(host: &Arc<Host>) -> usize {
    with_pools(host, &TlsOverrides::default(), |p| p.http1.idle_len())
}
