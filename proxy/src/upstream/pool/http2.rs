//! HTTP/2 connection pool of one host on one worker: one connection carries many
//! streams; a new connection opens when every open one is at the cluster's
//! `max_concurrent_streams` or has closed (GOAWAY, error). Requests arriving while a
//! connection is being opened wait for it instead of opening their own. A request a
//! closing connection did not take is sent again on another one. Connections without
//! streams close after the cluster `idle_timeout`.
//!
//! A stream is counted from send until its response headers arrive: the response body
//! type is hyper's `Incoming`, which offers no end-of-stream hook. Beyond our count,
//! hyper/h2 queue streams over the peer's limit on the connection itself.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::watch;

use super::{note, reset, with_existing_pools, with_pools, PoolKey};
use crate::tls::client::TlsOverrides;
use crate::upstream::cluster::UpstreamCluster;
use crate::upstream::connect::{connect, Protocol};
use crate::upstream::error::UpstreamError;
use crate::upstream::host::{ActiveRequest, Host};
use crate::upstream::{ConnFactsSlot, RequestBody};

/// How often a request re-checks the pool after waiting for another request's connect
/// before it opens a connection itself.
const MAX_WAITS: usize = 3;

/// HTTP/2 connections of one host on this worker.
#[derive(Default)]
pub(super) struct Http2Pool {
    conns: Vec<Http2Connection>,
    /// Set while a request is opening a connection; dropped (waking waiters) when done.
    connecting: Option<watch::Receiver<()>>,
    /// An idle reaper task is running for this pool.
    reaper_running: bool,
}

struct Http2Connection {
    sender: SendRequest<RequestBody>,
    /// Its local address (IP hosts).
    local: Option<std::net::SocketAddr>,
    streams: Arc<AtomicUsize>,
    /// When the reaper first saw it without streams (None: in use since).
    idle_since: Option<Instant>,
}

impl Http2Pool {
    pub(super) fn is_empty(&self) -> bool {
        self.conns.is_empty() && self.connecting.is_none()
    }

    /// Open connections (tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.conns.iter().filter(|c| !c.sender.is_closed()).count()
    }

    fn checkout(&mut self, max_streams: usize, key: PoolKey) -> Checkout {
        self.conns.retain(|c| !c.sender.is_closed());
        for conn in &mut self.conns {
            if conn.sender.is_ready() && conn.streams.load(Ordering::Relaxed) < max_streams {
                conn.idle_since = None;
                return Checkout::Ready(
                    conn.sender.clone(),
                    Stream::new(&conn.streams),
                    conn.local,
                );
            }
        }
        match &self.connecting {
            Some(rx) => Checkout::Wait(rx.clone()),
            None => {
                let (tx, rx) = watch::channel(());
                self.connecting = Some(rx);
                Checkout::Connect(Connecting { _tx: tx, key })
            }
        }
    }
}

impl Http2Pool {
    /// Drops connections that have had no stream for `idle_timeout` (dropping the last
    /// sender lets hyper finish any body still streaming, then close). Returns false
    /// when no connection is left and the reaper should stop.
    fn expire(&mut self, idle_timeout: Duration, now: Instant) -> bool {
        self.conns.retain_mut(|c| {
            if c.sender.is_closed() {
                return false;
            }
            if c.streams.load(Ordering::Relaxed) > 0 {
                c.idle_since = None;
                return true;
            }
            let since = *c.idle_since.get_or_insert(now);
            now.saturating_duration_since(since) < idle_timeout
        });
        if self.conns.is_empty() {
            self.reaper_running = false;
        }
        !self.conns.is_empty()
    }
}

/// Checks a host's HTTP/2 connections for idleness every quarter of `idle_timeout`
/// while it has connections: an idle one closes between 1 and 1.25 idle timeouts.
async fn reap_idle(key: PoolKey, idle_timeout: Duration) {
    let tick = (idle_timeout / 4).max(Duration::from_millis(1));
    loop {
        let keep_going =
            with_existing_pools(&key, |p| p.http2.expire(idle_timeout, Instant::now()));
        if keep_going != Some(true) {
            return;
        }
        tokio::time::sleep(tick).await;
    }
}

enum Checkout {
    Ready(
        SendRequest<RequestBody>,
        Stream,
        Option<std::net::SocketAddr>,
    ),
    Wait(watch::Receiver<()>),
    Connect(Connecting),
}

/// One stream counted on a connection until dropped.
struct Stream(Arc<AtomicUsize>);

impl Stream {
    fn new(streams: &Arc<AtomicUsize>) -> Self {
        streams.fetch_add(1, Ordering::Relaxed);
        Self(streams.clone())
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Marks a connect in progress; dropping it (success, failure or cancellation)
/// clears the mark and wakes the requests waiting for it.
struct Connecting {
    _tx: watch::Sender<()>,
    key: PoolKey,
}

impl Drop for Connecting {
    fn drop(&mut self) {
        with_existing_pools(&self.key, |p| p.http2.connecting = None);
    }
}

/// Sends `req` (already in HTTP/2 form) to `host`.
pub(super) async fn send(
    cluster: &UpstreamCluster,
    host: &Arc<Host>,
    tls: &TlsOverrides,
    req: Request<RequestBody>,
    mut active: ActiveRequest,
    facts: &ConnFactsSlot,
) -> Result<Response<Incoming>, UpstreamError> {
    let max_streams = cluster.model.http2.max_concurrent_streams.max(1) as usize;
    let mut req = req;
    let mut waits = 0;
    let mut unsent_retries = 0;
    loop {
        let (mut sender, stream, local) = match with_pools(host, tls, |p| {
            p.http2.checkout(max_streams, PoolKey::new(host, tls))
        }) {
            Checkout::Ready(sender, stream, local) => (sender, stream, local),
            Checkout::Wait(mut rx) if waits < MAX_WAITS => {
                waits += 1;
                // Err means the connecting request finished (sender dropped): recheck.
                let _ = rx.changed().await;
                continue;
            }
            Checkout::Wait(_) => open(cluster, host, tls, None).await?,
            Checkout::Connect(connecting) => open(cluster, host, tls, Some(connecting)).await?,
        };
        note(facts, local, Version::HTTP_2);
        active.attach();
        let result = sender.try_send_request(req).await;
        drop(stream);
        match result {
            Ok(response) => {
                drop(active);
                return within_header_limits(cluster, host, response);
            }
            Err(mut e) => match e.take_message() {
                // The connection was closing (GOAWAY, peer close) before the request
                // left: it is pruned at the next checkout; try again on another.
                Some(unsent) if unsent_retries < MAX_WAITS => {
                    unsent_retries += 1;
                    req = unsent;
                }
                _ => return Err(reset(host, e.error())),
            },
        }
    }
}

/// The `max_header_list_size` the connection announces: h2 refuses a larger header
/// list as it decodes it (memory bound). It counts 32 bytes per header on top of
/// names and values, so it is raised by that for every header the count limit allows;
/// the exact limit is [`within_header_limits`]'.
fn header_list_bound(cluster: &UpstreamCluster) -> u32 {
    let overhead = 32 * (cluster.model.max_response_headers_count as usize + 1);
    let bound = cluster.model.response_headers_limit(true) + overhead;
    u32::try_from(bound).unwrap_or(u32::MAX)
}

/// The response, or Envoy's stream reset when it has more headers than the cluster's
/// `max_headers_count` or their names and values (`:status` included) add up to more
/// than `max_response_headers_kb` (both measured on Envoy 1.40 to the header).
fn within_header_limits(
    cluster: &UpstreamCluster,
    host: &Arc<Host>,
    response: Response<Incoming>,
) -> Result<Response<Incoming>, UpstreamError> {
    let headers = response.headers();
    // `:status` counts as a header.
    let count = headers.len() + 1;
    let bytes: usize = ":status".len()
        + 3
        + headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum::<usize>();
    if count <= cluster.model.max_response_headers_count as usize
        && bytes <= cluster.model.response_headers_limit(true)
    {
        return Ok(response);
    }
    tracing::debug!(host = %host.address, count, bytes, "upstream HTTP/2 response headers over the limits");
    Err(super::http2_headers_refused(host))
}

/// Opens a connection, adds it to the pool and returns it with one stream counted.
async fn open(
    cluster: &UpstreamCluster,
    host: &Arc<Host>,
    tls: &TlsOverrides,
    connecting: Option<Connecting>,
) -> Result<
    (
        SendRequest<RequestBody>,
        Stream,
        Option<std::net::SocketAddr>,
    ),
    UpstreamError,
> {
    let pending = cluster.pending_slot()?;
    let (stream, mut open) = connect(cluster, host, tls, Protocol::Http2)
        .await
        .inspect_err(|e| pending.failed(e))?;
    let local = open.local();
    let streams = Arc::new(AtomicUsize::new(0));
    open.count_streams(streams.clone());
    let options = &cluster.model.http2;
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .initial_stream_window_size(options.initial_stream_window_size)
        .initial_connection_window_size(options.initial_connection_window_size)
        .max_header_list_size(header_list_bound(cluster));
    if let Some(keepalive) = &options.keepalive {
        // As Envoy's, the pings run whether or not streams are open.
        builder
            .keep_alive_interval(keepalive.interval)
            .keep_alive_timeout(keepalive.timeout)
            .keep_alive_while_idle(true);
    }
    let codec_stats = cluster.stats().http2();
    codec_stats.upstream_connections.inc();
    let stream = super::h2_resets::ResetCounting::new(stream, cluster.stats().clone());
    let (sender, conn) = builder
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| reset(host, &e))
        .inspect_err(|e| pending.failed(e))?;
    let address = host.address.clone();
    tokio::spawn(async move {
        let _open = open;
        if let Err(e) = conn.await {
            tracing::debug!(host = %address, error = %e, "upstream HTTP/2 connection ended with error");
        }
    });
    drop(pending);
    let stream = Stream::new(&streams);
    let idle_timeout = cluster.model.idle_timeout;
    let start_reaper = with_pools(host, tls, |p| {
        p.http2.conns.push(Http2Connection {
            sender: sender.clone(),
            local,
            streams,
            idle_since: None,
        });
        let start = idle_timeout.is_some() && !p.http2.reaper_running;
        if start {
            p.http2.reaper_running = true;
        }
        start
    });
    if let (true, Some(timeout)) = (start_reaper, idle_timeout) {
        tokio::spawn(reap_idle(PoolKey::new(host, tls), timeout));
    }
    // Only now wake the waiters: they find the new connection.
    drop(connecting);
    Ok((sender, stream, local))
}

/// This worker's open HTTP/2 connection count for a host (tests).
#[cfg(test)]
pub(crate) fn open_connections(host: &Arc<Host>) -> usize {
    with_pools(host, &TlsOverrides::default(), |p| p.http2.len())
}
