//! tcp_proxy network filter: picks a cluster (`cluster` or `weighted_clusters`),
//! connects to one of its hosts (up to `max_connect_attempts` tries), then copies bytes
//! both ways with half-close until both directions end, the connection has been idle
//! for `idle_timeout`, `max_downstream_connection_duration` passes, or a drain reaches
//! its Closed phase (a draining tcp_proxy connection otherwise stays open, as in Envoy).
//! Each connection counts in `tcp.<stat_prefix>.*` (see `stats`).

mod copy;
mod stats;

use std::sync::Arc;

use baton_config::model::{self, TcpClusterSpecifier};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::server::conn_info::ConnInfo;
use crate::server::drain::DrainSignal;
use crate::upstream::{ClusterManager, UpstreamError};

pub use copy::CopyOutcome;

/// Proxies one downstream connection to an upstream host until it is done.
pub async fn proxy_connection<IO>(
    io: IO,
    conn: ConnInfo,
    cfg: Arc<model::TcpProxy>,
    clusters: Arc<ClusterManager>,
    mut drain: DrainSignal,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let stats = stats::for_config(&cfg);
    stats.downstream_cx_total.inc();
    let Some(name) = pick_cluster(&cfg.cluster) else {
        tracing::debug!(conn = conn.id, "tcp_proxy has no cluster with weight");
        stats.downstream_cx_no_route.inc();
        return;
    };
    let Some(cluster) = clusters.get(name) else {
        // Envoy closes the connection when the cluster does not exist.
        tracing::debug!(conn = conn.id, cluster = %name, "tcp_proxy: unknown cluster");
        stats.downstream_cx_no_route.inc();
        return;
    };
    let attempts = cfg.max_connect_attempts.max(1);
    let mut attempt = 0;
    let (upstream, host, _counted) = loop {
        attempt += 1;
        match cluster.connect_tcp_counted().await {
            Ok(connected) => break connected,
            Err(
                e @ (UpstreamError::ConnectFailure { .. } | UpstreamError::ConnectTimeout { .. }),
            ) if attempt < attempts => {
                tracing::debug!(conn = conn.id, cluster = %name, attempt, error = %e, "tcp_proxy connect failed, retrying");
            }
            Err(e) => {
                tracing::debug!(conn = conn.id, cluster = %name, error = %e, "tcp_proxy connect failed");
                return;
            }
        }
    };
    tracing::debug!(conn = conn.id, cluster = %name, upstream = %host.address, "tcp_proxy connected");

    let counters = copy::ByteCounters {
        rx: stats.downstream_cx_rx_bytes_total.clone(),
        tx: stats.downstream_cx_tx_bytes_total.clone(),
    };
    let copying = copy::copy_both_ways(io, upstream, cfg.idle_timeout, Some(counters));
    let max_duration = async {
        match cfg.max_downstream_connection_duration {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        outcome = copying => {
            tracing::debug!(conn = conn.id, ?outcome, "tcp_proxy connection finished");
            if matches!(outcome, CopyOutcome::IdleTimeout) {
                stats.idle_timeout.inc();
            }
        }
        () = max_duration => {
            tracing::debug!(conn = conn.id, "tcp_proxy max_downstream_connection_duration reached");
            stats.max_downstream_connection_duration.inc();
        }
        () = drain.closed() => {
            tracing::debug!(conn = conn.id, "tcp_proxy connection closed by drain");
        }
    }
}

/// The cluster for a new connection: the named one, or a weighted random pick.
fn pick_cluster(spec: &TcpClusterSpecifier) -> Option<&str> {
    match spec {
        TcpClusterSpecifier::Name(name) => Some(name),
        TcpClusterSpecifier::Weighted(clusters, total) => {
            let total: u64 = if *total > 0 {
                u64::from(*total)
            } else {
                clusters.iter().map(|(_, w)| u64::from(*w)).sum()
            };
            if total == 0 {
                return None;
            }
            let mut point = rand::random_range(0..total);
            for (name, weight) in clusters {
                let weight = u64::from(*weight);
                if point < weight {
                    return Some(name);
                }
                point -= weight;
            }
            clusters.last().map(|(name, _)| name.as_str())
        }
    }
}

#[cfg(test)]
mod tests;
