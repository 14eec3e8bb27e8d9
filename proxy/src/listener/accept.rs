//! The per-worker accept loop: accepts on a (shared) listen socket until its listener
//! stops accepting (removed, replaced, drained, shutdown), picks the filter chain from
//! the listener's current snapshot and runs the chain's network filter on this worker's
//! runtime. The connection keeps that chain (runtime and drain) to its end.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::{debug, warn};

use super::filter_chain::MatchInput;
use super::limits::GlobalConnectionLimit;
use super::snapshot::{ChainNetwork, ListenerHandle};
use super::tracker::ConnectionTracker;
use crate::base::conn_info::ConnInfo;
use crate::http::HttpContext;
use crate::stats::{record_ms, ListenerStats};
use crate::upstream::ClusterManager;

/// What network filters need from the server.
pub struct NetworkContext {
    /// HTTP connection manager context (clusters).
    pub http: Arc<HttpContext>,
    /// Cluster manager for tcp_proxy.
    pub clusters: Arc<ClusterManager>,
    /// Open downstream connections.
    pub tracker: Arc<ConnectionTracker>,
    /// The overload manager's global downstream connection limit (shared by workers).
    pub global_limit: Arc<GlobalConnectionLimit>,
}

/// Accepts connections for one listener on this worker until it stops accepting.
pub async fn accept_loop(
    socket: TcpListener,
    listener: Arc<ListenerHandle>,
    ctx: Arc<NetworkContext>,
) {
    let mut stop = listener.stopped();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            r = socket.accept() => r,
        };
        let (stream, remote) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE/ENFILE/ENOBUFS: back off instead of spinning.
                warn!(listener = %listener.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let local = match stream.local_addr() {
            Ok(a) => a,
            Err(_) => continue,
        };
        let snapshot = listener.snapshot();
        let global_slot = if snapshot.model.ignore_global_conn_limit {
            None
        } else {
            match ctx.global_limit.try_open() {
                Ok(slot) => slot,
                Err(_) => {
                    // As Envoy: closed at once, counted by the listener only here.
                    debug!(listener = %listener.name, %remote, "global connection limit reached; closing");
                    snapshot.stats.downstream_global_cx_overflow.inc();
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = ConnInfo::plain(remote, local);
        let chain = snapshot.select(MatchInput {
            conn: &conn,
            transport_protocol: "raw_buffer",
        });
        let Some(chain) = chain else {
            debug!(listener = %listener.name, %remote, "no filter chain matched; closing");
            snapshot.stats.no_filter_chain_match.inc();
            continue;
        };
        let listener_connection = ListenerConnection::open(&snapshot.stats);
        let chain_slot = match &chain.connection_limit {
            Some(limit) => match limit.try_open() {
                Ok(slot) => Some(slot),
                Err(_) => {
                    // The filter runs after the connection is counted by the listener
                    // and before the terminal filter: nothing is read, no upstream is
                    // opened, and the socket is closed after `delay`.
                    debug!(listener = %listener.name, %remote, "connection_limit reached; closing");
                    let delay = limit.delay;
                    let guard = (ctx.tracker.open(), listener_connection, global_slot);
                    tokio::spawn(async move {
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        drop(stream);
                        drop(guard);
                    });
                    continue;
                }
            },
            None => None,
        };
        let guard = (
            ctx.tracker.open(),
            listener_connection,
            global_slot,
            chain_slot,
        );
        let signal = chain.drain_signal();
        match &chain.network {
            ChainNetwork::Http(rt) => {
                let rt = Arc::clone(rt);
                let http = Arc::clone(&ctx.http);
                tokio::spawn(async move {
                    crate::http::serve_connection(stream, conn, rt, http, signal).await;
                    drop(guard);
                });
            }
            ChainNetwork::Tcp(rt) => {
                let rt = Arc::clone(rt);
                let clusters = Arc::clone(&ctx.clusters);
                tokio::spawn(async move {
                    crate::tcp::proxy_connection(stream, conn, rt, clusters, signal).await;
                    drop(guard);
                });
            }
        }
    }
    debug!(listener = %listener.name, "stopped accepting");
}

/// Counts one connection in `listener.<address>.*` until dropped.
struct ListenerConnection {
    stats: Arc<ListenerStats>,
    opened: std::time::Instant,
}

impl ListenerConnection {
    fn open(stats: &Arc<ListenerStats>) -> Self {
        stats.downstream_cx_total.inc();
        stats.downstream_cx_active.inc();
        Self {
            stats: Arc::clone(stats),
            opened: std::time::Instant::now(),
        }
    }
}

impl Drop for ListenerConnection {
    fn drop(&mut self) {
        self.stats.downstream_cx_active.dec();
        self.stats.downstream_cx_destroy.inc();
        record_ms(&self.stats.downstream_cx_length_ms, self.opened.elapsed());
    }
}
