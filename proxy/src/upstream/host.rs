//! One upstream host (endpoint) with the live counters admin `/clusters` shows. Hosts are
//! shared by all workers; counters are relaxed atomics (one add on the hot path).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use baton_config::model::SocketMatchMetadata;

use super::circuit::BreakerCount;
use super::stream::{PeerClosed, UpstreamStream};
use crate::base::address::{HostAddress, PipeAddress};
use crate::stats::ClusterStats;

static NEXT_HOST_ID: AtomicU64 = AtomicU64::new(1);

/// One endpoint of a cluster.
#[derive(Debug)]
pub struct Host {
    /// Where connections go: an IP and port, or a Unix socket (`pipe`).
    pub address: HostAddress,
    /// `endpoint.hostname`, or the DNS name a DNS cluster resolved.
    pub hostname: Option<String>,
    /// `load_balancing_weight` (at least 1).
    pub weight: u32,
    /// `region/zone/sub_zone` of the locality it belongs to.
    pub locality: Arc<str>,
    /// Priority level of its locality (0 is highest).
    pub priority: u32,
    /// Process-unique id: keys this host's per-worker connection pools.
    pub(crate) id: u64,
    /// Its endpoint's and locality's `envoy.transport_socket_match` metadata, which
    /// choose its transport socket among the cluster's `transport_socket_matches`.
    pub socket_match: Option<Arc<SocketMatchMetadata>>,
    /// Health as configured (`health_status`); health checking comes later.
    pub healthy: AtomicBool,
    /// Open connections to this host (all workers).
    pub cx_active: AtomicU64,
    /// Connections ever opened.
    pub cx_total: AtomicU64,
    /// Failed connect attempts (refused, timed out).
    pub cx_connect_fail: AtomicU64,
    /// Requests in flight (until the response body ends for HTTP/1.1, until response
    /// headers for HTTP/2).
    pub rq_active: AtomicU64,
    /// Requests ever sent.
    pub rq_total: AtomicU64,
    /// Requests that failed without a response (connect failure, reset).
    pub rq_error: AtomicU64,
}

impl Host {
    /// A new host with zeroed counters.
    pub fn new(
        address: impl Into<HostAddress>,
        hostname: Option<String>,
        weight: u32,
        locality: Arc<str>,
        priority: u32,
        healthy: bool,
    ) -> Self {
        Self {
            address: address.into(),
            hostname,
            weight: weight.max(1),
            locality,
            priority,
            id: NEXT_HOST_ID.fetch_add(1, Ordering::Relaxed),
            socket_match: None,
            healthy: AtomicBool::new(healthy),
            cx_active: AtomicU64::new(0),
            cx_total: AtomicU64::new(0),
            cx_connect_fail: AtomicU64::new(0),
            rq_active: AtomicU64::new(0),
            rq_total: AtomicU64::new(0),
            rq_error: AtomicU64::new(0),
        }
    }

    /// The host with its endpoint's transport socket match metadata.
    pub fn with_socket_match(mut self, socket_match: Option<Arc<SocketMatchMetadata>>) -> Self {
        self.socket_match = socket_match;
        self
    }

    /// Current health.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Requests currently in flight.
    pub fn active_requests(&self) -> u64 {
        self.rq_active.load(Ordering::Relaxed)
    }
}

/// The host address of a `pipe` endpoint. Translation checks the path, so a failure
/// here is not expected; the endpoint is then left out (logged) rather than guessed at.
pub(crate) fn pipe_address(path: &Path) -> Option<HostAddress> {
    match PipeAddress::new(path) {
        Ok(pipe) => Some(HostAddress::Pipe(pipe)),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "pipe endpoint ignored: not a Unix socket address");
            None
        }
    }
}

/// Counts one in-flight request on a host (and its cluster's circuit breaker) until
/// dropped. Once it is [attached](Self::attach) to a connection it also counts in the
/// cluster's `upstream_rq_total` / `upstream_rq_active` (Envoy counts a request there
/// when a connection takes it, not while it waits for one).
#[derive(Debug)]
pub(crate) struct ActiveRequest {
    host: Arc<Host>,
    cluster_rq_active: Arc<BreakerCount>,
    stats: Arc<ClusterStats>,
    attached: bool,
}

impl ActiveRequest {
    pub(crate) fn new(
        host: Arc<Host>,
        cluster_rq_active: Arc<BreakerCount>,
        stats: Arc<ClusterStats>,
    ) -> Self {
        host.rq_active.fetch_add(1, Ordering::Relaxed);
        host.rq_total.fetch_add(1, Ordering::Relaxed);
        Self {
            host,
            cluster_rq_active,
            stats,
            attached: false,
        }
    }

    /// A connection took the request (counted once, however often it is retried on
    /// another connection before it leaves).
    pub(crate) fn attach(&mut self) {
        if !self.attached {
            self.attached = true;
            self.stats.upstream_rq_total.inc();
            self.stats.upstream_rq_active.inc();
        }
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.host.rq_active.fetch_sub(1, Ordering::Relaxed);
        self.cluster_rq_active.release();
        if self.attached {
            self.stats.upstream_rq_active.dec();
        }
    }
}

/// Counts one open connection on a host (and its cluster: breaker, `upstream_cx_active`,
/// `upstream_cx_destroy`, `upstream_cx_length_ms`) until dropped; lives in the task that
/// drives the connection.
#[derive(Debug)]
pub(crate) struct OpenConnection {
    host: Arc<Host>,
    cluster_cx_active: Arc<BreakerCount>,
    stats: Arc<ClusterStats>,
    opened: std::time::Instant,
    /// The connection's local address (IP hosts).
    local: Option<std::net::SocketAddr>,
    /// Set by the connection's [`super::stream::Metered`] stream when the upstream ends
    /// it: `upstream_cx_destroy_remote`, otherwise `_local`.
    peer_closed: Arc<PeerClosed>,
    /// A tcp_proxy connection: Envoy counts it as a request in flight until it closes
    /// (`upstream_cx_destroy_with_active_rq`).
    tunnel: bool,
    /// HTTP/1: a request is on it whose response has not ended.
    exchange_open: bool,
    /// HTTP/2: the connection's streams in flight (counted until their response head).
    streams: Option<Arc<std::sync::atomic::AtomicUsize>>,
}

impl OpenConnection {
    /// Registers a connection that the cluster breaker already counted.
    pub(crate) fn new(
        host: Arc<Host>,
        cluster_cx_active: Arc<BreakerCount>,
        stats: Arc<ClusterStats>,
        local: Option<std::net::SocketAddr>,
    ) -> Self {
        host.cx_active.fetch_add(1, Ordering::Relaxed);
        host.cx_total.fetch_add(1, Ordering::Relaxed);
        stats.upstream_cx_active.inc();
        Self {
            host,
            cluster_cx_active,
            stats,
            opened: std::time::Instant::now(),
            local,
            peer_closed: Arc::default(),
            tunnel: false,
            exchange_open: false,
            streams: None,
        }
    }

    /// The connection's local address (IP hosts).
    pub(crate) fn local(&self) -> Option<std::net::SocketAddr> {
        self.local
    }

    /// HTTP/1: a request goes out on it (`true`) or its response ended (`false`); a
    /// connection that closes between the two closed with a request in flight.
    pub(crate) fn set_exchange_open(&mut self, open: bool) {
        self.exchange_open = open;
    }

    /// A request is on it whose response has not ended.
    pub(crate) fn exchange_open(&self) -> bool {
        self.exchange_open
    }

    /// HTTP/2: the connection's stream count, looked at when it closes.
    pub(crate) fn count_streams(&mut self, streams: Arc<std::sync::atomic::AtomicUsize>) {
        self.streams = Some(streams);
    }

    fn had_active_rq(&self) -> bool {
        self.tunnel
            || self.exchange_open
            || self
                .streams
                .as_ref()
                .is_some_and(|s| s.load(Ordering::Relaxed) > 0)
    }

    /// `stream`, counted as this connection's (`upstream_cx_{rx,tx}_bytes_total`, who
    /// closed it); `tunnel`: a tcp_proxy connection.
    pub(crate) fn meter(&mut self, stream: UpstreamStream, tunnel: bool) -> UpstreamStream {
        self.tunnel = tunnel;
        stream.metered(&self.stats, self.peer_closed.clone(), tunnel)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.host.cx_active.fetch_sub(1, Ordering::Relaxed);
        self.cluster_cx_active.release();
        self.stats.upstream_cx_active.dec();
        self.stats.upstream_cx_destroy.inc();
        let local = !self.peer_closed.get();
        self.stats
            .upstream_cx_destroy_by
            .record(local, self.had_active_rq());
        crate::stats::record_ms(&self.stats.upstream_cx_length_ms, self.opened.elapsed());
    }
}
