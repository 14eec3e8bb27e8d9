//! Envoy's xDS stats: per subscription (`cluster_manager.cds.*`, `listener_manager.lds.*`,
//! `http.<prefix>.rds.<name>.*`, `cluster.<name>.*` for EDS) and per control-plane
//! connection (`control_plane.*`). `version` is the xxHash64 of the accepted
//! `version_info`, as Envoy reports it, and the text readout `version_text` the
//! `version_info` itself.

use baton_shared_stats::{Counter, Gauge, TextReadout};

use crate::stats::Scope;

/// One subscription's counters.
#[derive(Clone)]
pub struct SubscriptionStats {
    /// `update_attempt`: the initial request and every response.
    pub update_attempt: Counter,
    /// `update_success`
    pub update_success: Counter,
    /// `update_rejected` (NACKed)
    pub update_rejected: Counter,
    /// `update_failure` (the stream failed)
    pub update_failure: Counter,
    /// `update_empty`
    pub update_empty: Counter,
    /// `init_fetch_timeout`
    pub init_fetch_timeout: Counter,
    /// `version`
    pub version: Gauge,
    /// `version_text`: empty until a response is accepted; a NACK leaves it.
    pub version_text: TextReadout,
}

impl std::fmt::Debug for SubscriptionStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubscriptionStats")
    }
}

impl SubscriptionStats {
    /// Handles under `prefix` (`cluster_manager.cds.`).
    pub fn new(prefix: &str) -> Self {
        let s = Scope::new(crate::stats::store(), prefix);
        Self {
            update_attempt: s.counter("update_attempt"),
            update_success: s.counter("update_success"),
            update_rejected: s.counter("update_rejected"),
            update_failure: s.counter("update_failure"),
            update_empty: s.counter("update_empty"),
            init_fetch_timeout: s.counter("init_fetch_timeout"),
            version: s.gauge_never_import("version"),
            version_text: crate::stats::store().text_readout(&format!("{prefix}version_text")),
        }
    }

    /// A response was accepted with `version_info`.
    pub fn accepted(&self, version_info: &str) {
        self.update_success.inc();
        self.version_text.set(version_info);
        self.version
            .set(xxhash_rust::xxh64::xxh64(version_info.as_bytes(), 0));
    }
}

/// `control_plane.*` of one gRPC stream.
#[derive(Clone)]
pub(crate) struct ControlPlaneStats {
    pub(crate) connected_state: Gauge,
    /// Requests held back by `rate_limit_settings`.
    pub(crate) pending_requests: Gauge,
    /// Times `rate_limit_settings` held the stream back.
    pub(crate) rate_limit_enforced: Counter,
    /// Baton's: resources started from a parent generation's state while the control
    /// plane was unavailable.
    pub(crate) inherited_resources: Counter,
}

impl ControlPlaneStats {
    pub(crate) fn new() -> Self {
        let s = Scope::new(crate::stats::store(), "control_plane.");
        Self {
            connected_state: s.gauge_never_import("connected_state"),
            pending_requests: s.gauge_never_import("pending_requests"),
            rate_limit_enforced: s.counter("rate_limit_enforced"),
            inherited_resources: s.counter("inherited_resources"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_hash_is_envoys() {
        // Envoy 1.40 reports cluster_manager.cds.version 13237225503670494420 for "1".
        assert_eq!(
            xxhash_rust::xxh64::xxh64(b"1", 0),
            13_237_225_503_670_494_420
        );
    }
}
