//! Envoy's xDS stats: per subscription (`cluster_manager.cds.*`, `listener_manager.lds.*`,
//! `http.<prefix>.rds.<name>.*`, `cluster.<name>.*` for EDS) and per control-plane
//! connection (`control_plane.*`). `version` is the xxHash64 of the accepted
//! `version_info`, as Envoy reports it, and the text readout `version_text` the
//! `version_info` itself.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use baton_shared_stats::{Counter, Gauge, Histogram, TextReadout};

use crate::stats::Scope;

/// Which subscription: Envoy 1.40 gives them slightly different names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionKind {
    /// `cluster_manager.cds.*`: with `config_reload`, without `update_empty`.
    Cds,
    /// `listener_manager.lds.*`: without either.
    Lds,
    /// `http.<prefix>.rds.<name>.*`: with both.
    Rds,
}

/// One subscription's counters.
#[derive(Clone)]
pub struct SubscriptionStats {
    /// `update_attempt`: the initial request and every response (a NACKed one over
    /// delta twice, as Envoy counts it).
    pub update_attempt: Counter,
    /// `update_success`
    pub update_success: Counter,
    /// `update_rejected` (NACKed)
    pub update_rejected: Counter,
    /// `update_failure` (the stream failed)
    pub update_failure: Counter,
    /// `update_empty` (RDS only).
    pub update_empty: Option<Counter>,
    /// `init_fetch_timeout`
    pub init_fetch_timeout: Counter,
    /// `version`
    pub version: Gauge,
    /// `version_text`: empty until a response is accepted; a NACK leaves it.
    pub version_text: TextReadout,
    /// `update_time`: when a response was last accepted (ms since the Unix epoch).
    update_time: Gauge,
    /// `update_duration`: how long accepted responses took to apply (ms).
    update_duration: Histogram,
    /// `config_reload` and `config_reload_time_ms` (CDS and RDS): accepted responses
    /// that changed the config.
    config_reload: Option<(Counter, Gauge)>,
}

impl std::fmt::Debug for SubscriptionStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubscriptionStats")
    }
}

impl SubscriptionStats {
    /// Handles under `prefix` (`cluster_manager.cds.`).
    pub fn new(prefix: &str, kind: SubscriptionKind) -> Self {
        let s = Scope::new(crate::stats::store(), prefix);
        let reloads = matches!(kind, SubscriptionKind::Cds | SubscriptionKind::Rds);
        Self {
            update_attempt: s.counter("update_attempt"),
            update_success: s.counter("update_success"),
            update_rejected: s.counter("update_rejected"),
            update_failure: s.counter("update_failure"),
            update_empty: (kind == SubscriptionKind::Rds).then(|| s.counter("update_empty")),
            init_fetch_timeout: s.counter("init_fetch_timeout"),
            version: s.gauge_never_import("version"),
            version_text: s.text_readout("version_text"),
            update_time: s.gauge_never_import("update_time"),
            update_duration: s.histogram("update_duration"),
            config_reload: reloads.then(|| {
                (
                    s.counter("config_reload"),
                    s.gauge_never_import("config_reload_time_ms"),
                )
            }),
        }
    }

    /// A response was accepted with `version_info` after `took` applying it;
    /// `reloaded`: it changed the config.
    pub fn accepted(&self, version_info: &str, took: Duration, reloaded: bool) {
        self.update_success.inc();
        self.version_text.set(version_info);
        self.version
            .set(xxhash_rust::xxh64::xxh64(version_info.as_bytes(), 0));
        let now = epoch_ms();
        self.update_time.set(now);
        crate::stats::record_ms(&self.update_duration, took);
        if let Some((count, time)) = self.config_reload.as_ref().filter(|_| reloaded) {
            count.inc();
            time.set(now);
        }
    }

    /// A response (its attempt already counted) was NACKed; over delta Envoy counts a
    /// second attempt for it.
    pub fn rejected(&self, delta: bool) {
        if delta {
            self.update_attempt.inc();
        }
        self.update_rejected.inc();
    }

    /// The initial fetch timed out: Envoy counts an attempt with it.
    pub fn fetch_timed_out(&self) {
        self.update_attempt.inc();
        self.init_fetch_timeout.inc();
    }

    /// An accepted response held nothing (RDS counts it).
    pub fn empty(&self) {
        if let Some(c) = &self.update_empty {
            c.inc();
        }
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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
    /// The `control_plane.identifier` of the last response that carried one.
    pub(crate) identifier: TextReadout,
}

impl ControlPlaneStats {
    pub(crate) fn new() -> Self {
        let s = Scope::new(crate::stats::store(), "control_plane.");
        Self {
            connected_state: s.gauge_never_import("connected_state"),
            pending_requests: s.gauge_never_import("pending_requests"),
            rate_limit_enforced: s.counter("rate_limit_enforced"),
            inherited_resources: s.counter("inherited_resources"),
            identifier: s.text_readout("identifier"),
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
