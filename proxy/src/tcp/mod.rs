//! tcp_proxy network filter: picks a cluster (`cluster` or `weighted_clusters`),
//! connects to one of its hosts (up to `max_connect_attempts` tries), then copies bytes
//! both ways with half-close until both directions end, the connection has been idle
//! for `idle_timeout`, `max_downstream_connection_duration` passes, or a drain reaches
//! its Closed phase (a draining tcp_proxy connection otherwise stays open, as in Envoy).
//! Each connection counts in `tcp.<stat_prefix>.*` and, with `access_log`, is logged
//! once when it closes (`context` holds the compiled configs).

mod context;
mod copy;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use baton_config::model::TcpClusterSpecifier;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::access_log::{FormatInput, ResponseFlag, StreamInfo};
use crate::base::conn_info::ConnInfo;
use crate::base::drain::DrainSignal;
use crate::upstream::{ClusterManager, UpstreamConnFacts, UpstreamError};

pub use context::TcpProxyRuntime;
pub use copy::CopyOutcome;

/// Proxies one downstream connection to an upstream host until it is done.
pub async fn proxy_connection<IO>(
    io: IO,
    conn: ConnInfo,
    rt: Arc<TcpProxyRuntime>,
    clusters: Arc<ClusterManager>,
    drain: DrainSignal,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Collected only when someone will read it.
    let mut info = (!rt.loggers.is_empty()).then(|| StreamInfo::new(Arc::new(conn.clone()), None));
    let bytes = Arc::new(copy::ConnectionBytes::default());
    proxy(io, &conn, &rt, &clusters, drain, info.as_mut(), &bytes).await;
    if let Some(mut info) = info {
        info.bytes_received = bytes.received.load(Ordering::Relaxed);
        info.bytes_sent = bytes.sent.load(Ordering::Relaxed);
        info.last_downstream_tx = Some(info.elapsed());
        rt.loggers.log(&FormatInput::new(&info));
    }
}

/// The connection's life up to close; fills `info` (when logging) on the way.
async fn proxy<IO>(
    io: IO,
    conn: &ConnInfo,
    rt: &TcpProxyRuntime,
    clusters: &ClusterManager,
    mut drain: DrainSignal,
    mut info: Option<&mut StreamInfo>,
    bytes: &Arc<copy::ConnectionBytes>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (cfg, stats) = (&rt.cfg, &rt.stats);
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
        if let Some(info) = info.as_deref_mut() {
            info.upstream_cluster = Some(name.into());
            info.flags.set(ResponseFlag::NoClusterFound);
        }
        return;
    };
    if let Some(info) = info.as_deref_mut() {
        info.upstream_cluster = Some(cluster.observability_name.clone());
        info.upstream_cluster_raw = cluster.raw_name_if_renamed();
        info.upstream_cluster_metadata = cluster.model.metadata.clone();
    }
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
                if matches!(
                    e,
                    UpstreamError::ConnectFailure { .. } | UpstreamError::ConnectTimeout { .. }
                ) {
                    cluster.stats().upstream_cx_connect_attempts_exceeded.inc();
                }
                if let Some(info) = info.as_deref_mut() {
                    info.attempt_count = attempt;
                    record_connect_failure(info, &e);
                }
                return;
            }
        }
    };
    tracing::debug!(conn = conn.id, cluster = %name, upstream = %host.address, "tcp_proxy connected");
    if let Some(info) = info.as_deref_mut() {
        info.upstream_host = Some(host.clone());
        info.upstream_conn = Some(UpstreamConnFacts {
            local: upstream.local_ip_addr(),
            protocol: None,
        });
        info.attempt_count = attempt;
    }

    let counters = copy::ByteCounters {
        rx: stats.downstream_cx_rx_bytes_total.clone(),
        tx: stats.downstream_cx_tx_bytes_total.clone(),
        connection: bytes.clone(),
    };
    let buffers = copy::BufferSizes {
        downstream: crate::buffer_limit::copy_buffer(rt.downstream_buffer_limit),
        upstream: crate::buffer_limit::copy_buffer(cluster.model.per_connection_buffer_limit_bytes),
    };
    let copying = copy::copy_both_ways(io, upstream, buffers, cfg.idle_timeout, Some(counters));
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
            if let Some(info) = info {
                info.flags.set(ResponseFlag::DurationTimeout);
            }
        }
        () = drain.closed() => {
            tracing::debug!(conn = conn.id, "tcp_proxy connection closed by drain");
        }
    }
}

/// Envoy's flags for a connection that never reached an upstream: `UH` (no healthy
/// host), `UO` (circuit breaker), or `UF` plus `URX` (connect attempts exhausted).
fn record_connect_failure(info: &mut StreamInfo, error: &UpstreamError) {
    if let Some(host) = error.host() {
        info.upstream_host = Some(host.clone());
    }
    match error {
        UpstreamError::NoHealthyUpstream => info.flags.set(ResponseFlag::NoHealthyUpstream),
        UpstreamError::Overflow => info.flags.set(ResponseFlag::UpstreamOverflow),
        _ => {
            info.flags.set(ResponseFlag::UpstreamConnectionFailure);
            info.flags.set(ResponseFlag::UpstreamRetryLimitExceeded);
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
