//! The per-worker accept loop: accepts on a (shared) listen socket until draining starts,
//! picks the filter chain and runs the chain's network filter on this worker's runtime.

use std::sync::Arc;
use std::time::Duration;

use baton_config::model::{Listener, NetworkFilter};
use tokio::net::TcpListener;
use tracing::{debug, warn};

use super::filter_chain::{select_filter_chain, MatchInput};
use super::tracker::ConnectionTracker;
use crate::base::conn_info::ConnInfo;
use crate::base::drain::DrainSignal;
use crate::http::HttpContext;
use crate::stats::{record_ms, ListenerStats};
use crate::tcp::TcpContext;
use crate::upstream::ClusterManager;

/// What network filters need from the server.
pub struct NetworkContext {
    /// HTTP connection manager context (clusters, access logs, ...).
    pub http: Arc<HttpContext>,
    /// Cluster manager for tcp_proxy.
    pub clusters: Arc<ClusterManager>,
    /// Compiled tcp_proxy configs (stats, access logs).
    pub tcp: Arc<TcpContext>,
    /// Open downstream connections.
    pub tracker: Arc<ConnectionTracker>,
}

/// Accepts connections for one listener on this worker until draining starts.
pub async fn accept_loop(
    socket: TcpListener,
    listener: Arc<Listener>,
    ctx: Arc<NetworkContext>,
    mut drain: DrainSignal,
) {
    let stats = Arc::new(ListenerStats::new(
        crate::stats::store(),
        &listener.stat_prefix,
    ));
    loop {
        let accepted = tokio::select! {
            biased;
            _ = drain.draining() => break,
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
        let chain = select_filter_chain(
            &listener,
            MatchInput {
                conn: &conn,
                transport_protocol: "raw_buffer",
            },
        );
        let Some(chain) = chain else {
            debug!(listener = %listener.name, %remote, "no filter chain matched; closing");
            stats.no_filter_chain_match.inc();
            continue;
        };
        let guard = (ctx.tracker.open(), ListenerConnection::open(&stats));
        let signal = drain.clone();
        match &chain.network {
            NetworkFilter::Http(hcm) => {
                let hcm = Arc::clone(hcm);
                let http = Arc::clone(&ctx.http);
                tokio::spawn(async move {
                    crate::http::serve_connection(stream, conn, hcm, http, signal).await;
                    drop(guard);
                });
            }
            NetworkFilter::TcpProxy(cfg) => {
                let rt = ctx.tcp.runtime(cfg);
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
