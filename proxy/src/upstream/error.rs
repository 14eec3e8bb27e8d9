//! Upstream failures as the HTTP connection manager needs them: each variant maps to one
//! Envoy local reply (status, response flag, reset reason).

use std::sync::Arc;

use super::host::Host;

/// Why a request could not get a response from an upstream host.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// No healthy host in any priority level: 503 "no healthy upstream", flag UH.
    #[error("no healthy upstream")]
    NoHealthyUpstream,
    /// The TCP connect failed: 503, flag UF. `reason` is Envoy's transport failure
    /// reason, e.g. "delayed connect error: Connection refused".
    #[error("connection failure to {}: {reason}", host.address)]
    ConnectFailure {
        /// The host we tried.
        host: Arc<Host>,
        /// Transport failure reason.
        reason: String,
    },
    /// The TCP connect did not finish within `connect_timeout`: 503, flag UF.
    #[error("connection timeout to {}", host.address)]
    ConnectTimeout {
        /// The host we tried.
        host: Arc<Host>,
    },
    /// A circuit breaker is open (max_connections / max_pending_requests /
    /// max_requests): 503, flag UO, reset reason "overflow".
    #[error("overflow")]
    Overflow,
    /// The connection closed or reset before response headers: 503, flag UC.
    #[error("upstream reset from {}: {reason}", host.address)]
    Reset {
        /// The host the request went to.
        host: Arc<Host>,
        /// Reset reason, e.g. "connection termination".
        reason: String,
    },
    /// The response head broke HTTP (malformed, or over the head size / header count
    /// limits): 502, flag UPE, reset reason "protocol error".
    #[error("upstream protocol error from {}", host.address)]
    ProtocolError {
        /// The host the request went to.
        host: Arc<Host>,
    },
}

impl UpstreamError {
    /// The host involved, when one was picked.
    pub fn host(&self) -> Option<&Arc<Host>> {
        match self {
            Self::ConnectFailure { host, .. }
            | Self::ConnectTimeout { host }
            | Self::Reset { host, .. }
            | Self::ProtocolError { host } => Some(host),
            Self::NoHealthyUpstream | Self::Overflow => None,
        }
    }
}
