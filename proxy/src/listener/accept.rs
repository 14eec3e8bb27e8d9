//! The per-worker accept loop: accepts on a (shared) listen socket until its listener
//! stops accepting (removed, replaced, drained, shutdown), picks the filter chain from
//! the listener's current snapshot and runs the chain's network filter on this worker's
//! runtime. The connection keeps that chain (runtime and drain) to its end.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::{debug, warn};

use super::filter_chain::MatchInput;
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
        let _ = stream.set_nodelay(true);
        let conn = ConnInfo::plain(remote, local);
        let snapshot = listener.snapshot();
        let chain = snapshot.select(MatchInput {
            conn: &conn,
            transport_protocol: "raw_buffer",
        });
        let Some(chain) = chain else {
            debug!(listener = %listener.name, %remote, "no filter chain matched; closing");
            snapshot.stats.no_filter_chain_match.inc();
            continue;
        };
        let guard = (
            ctx.tracker.open(),
            ListenerConnection::open(&snapshot.stats),
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
