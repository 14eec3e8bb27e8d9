//! Opening a TCP connection to an upstream host: `connect_timeout`, the cluster's
//! `max_connections` breaker, per-host counters and Envoy's transport failure reasons.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::cluster::UpstreamCluster;
use super::error::UpstreamError;
use super::host::{Host, OpenConnection};

/// Connects to `host`; the returned guard counts the connection until dropped.
pub(crate) async fn connect(
    cluster: &UpstreamCluster,
    host: &Arc<Host>,
) -> Result<(TcpStream, OpenConnection), UpstreamError> {
    let slot = cluster
        .breakers()
        .connection()
        .ok_or(UpstreamError::Overflow)?;
    let attempt = TcpStream::connect(host.address);
    match tokio::time::timeout(cluster.model.connect_timeout, attempt).await {
        Err(_elapsed) => {
            host.cx_connect_fail.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(cluster = %cluster.model.name, host = %host.address, "upstream connect timeout");
            Err(UpstreamError::ConnectTimeout { host: host.clone() })
        }
        Ok(Err(e)) => {
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
            Ok((stream, OpenConnection::new(host.clone(), slot.into_owned())))
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
