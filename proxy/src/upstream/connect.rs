//! Opening a TCP connection to an upstream host: `connect_timeout`, the cluster's
//! `max_connections` breaker, per-host counters, the cluster's `upstream_cx_*` stats and
//! Envoy's transport failure reasons.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpStream;

use super::cluster::UpstreamCluster;
use super::error::UpstreamError;
use super::host::{Host, OpenConnection};

/// What the connection will carry (`upstream_cx_http1_total` / `_http2_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// Raw bytes (tcp_proxy, CONNECT).
    Tcp,
    /// HTTP/1.1
    Http1,
    /// HTTP/2
    Http2,
}

/// Connects to `host`; the returned guard counts the connection until dropped. As in
/// Envoy, a connection counts in `upstream_cx_total` (and its protocol's total) once the
/// breaker admits it, whether or not the connect then succeeds; a failed one counts in
/// `upstream_cx_connect_fail` (plus `_connect_timeout`) and `upstream_cx_destroy`.
pub(crate) async fn connect(
    cluster: &UpstreamCluster,
    host: &Arc<Host>,
    protocol: Protocol,
) -> Result<(TcpStream, OpenConnection), UpstreamError> {
    let stats = cluster.stats();
    let Some(slot) = cluster.breakers().connection() else {
        stats.upstream_cx_overflow.inc();
        return Err(UpstreamError::Overflow);
    };
    stats.upstream_cx_total.inc();
    match protocol {
        Protocol::Http1 => stats.upstream_cx_http1_total.inc(),
        Protocol::Http2 => stats.upstream_cx_http2_total.inc(),
        Protocol::Tcp => {}
    }
    let started = Instant::now();
    let attempt = TcpStream::connect(host.address);
    match tokio::time::timeout(cluster.model.connect_timeout, attempt).await {
        Err(_elapsed) => {
            stats.upstream_cx_connect_timeout.inc();
            stats.upstream_cx_connect_fail.inc();
            stats.upstream_cx_destroy.inc();
            host.cx_connect_fail.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(cluster = %cluster.model.name, host = %host.address, "upstream connect timeout");
            Err(UpstreamError::ConnectTimeout { host: host.clone() })
        }
        Ok(Err(e)) => {
            stats.upstream_cx_connect_fail.inc();
            stats.upstream_cx_destroy.inc();
            host.cx_connect_fail.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(cluster = %cluster.model.name, host = %host.address, error = %e, "upstream connect failed");
            Err(UpstreamError::ConnectFailure {
                host: host.clone(),
                reason: transport_failure_reason(&e),
            })
        }
        Ok(Ok(stream)) => {
            // Envoy sets TCP_NODELAY on upstream connections; a failure here only
            // costs latency, so it is not fatal.
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY upstream");
            }
            crate::stats::record_ms(&stats.upstream_cx_connect_ms, started.elapsed());
            let open = OpenConnection::new(host.clone(), slot.into_owned(), stats.clone());
            Ok((stream, open))
        }
    }
}

/// Envoy's wording for a failed non-blocking connect: "delayed connect error: <strerror>".
pub(crate) fn transport_failure_reason(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => format!(
            "delayed connect error: {}",
            nix::errno::Errno::from_raw(code).desc()
        ),
        None => format!("delayed connect error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_reason_reads_like_envoy() {
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(
            transport_failure_reason(&e),
            "delayed connect error: Connection refused"
        );
    }
}
