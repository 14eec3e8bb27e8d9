//! Facts about one accepted downstream connection, shared by the network filters
//! (HTTP connection manager, tcp_proxy) and access logs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// One downstream connection as seen at accept time.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Process-unique connection id (`%CONNECTION_ID%`).
    pub id: u64,
    /// Peer address (`%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%`).
    pub remote: SocketAddr,
    /// Local address the connection arrived on (`%DOWNSTREAM_LOCAL_ADDRESS%`).
    pub local: SocketAddr,
    /// TLS SNI when the transport is TLS (`%REQUESTED_SERVER_NAME%`).
    pub server_name: Option<String>,
    /// Negotiated ALPN, if any.
    pub alpn: Option<Vec<u8>>,
    /// True when the transport is TLS (x-forwarded-proto https).
    pub tls: bool,
    /// Accept time.
    pub accepted_at: SystemTime,
}

impl ConnInfo {
    /// A plaintext connection accepted now.
    pub fn plain(remote: SocketAddr, local: SocketAddr) -> Self {
        Self {
            id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
            remote,
            local,
            server_name: None,
            alpn: None,
            tls: false,
            accepted_at: SystemTime::now(),
        }
    }
}
