//! `cluster.<name>.*` of an EDS cluster's subscription, as Envoy 1.40 shows them beside
//! the cluster's own counters (the subscription and the cluster share the scope, so
//! `update_attempt` / `update_success` are the cluster's): `update_rejected`,
//! `init_fetch_timeout`, `update_time` (milliseconds since the Unix epoch of the last
//! accepted assignment, 0 before), `update_duration` and the text readout
//! `version_text` (`""` before). The `version` gauge is every cluster's (0 for
//! non-EDS clusters), kept in [`super::ClusterStats`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use baton_shared_stats::{Counter, Gauge, Histogram, TextReadout};

use super::{BlockShape, Scope};

/// The EDS subscription's own names under `cluster.<name>.`.
pub struct EdsStats {
    /// `update_rejected`: assignments for this cluster that were NACKed.
    pub update_rejected: Counter,
    /// `init_fetch_timeout`: the first assignment did not come in time.
    pub init_fetch_timeout: Counter,
    update_time: Gauge,
    update_duration: Histogram,
    version_text: TextReadout,
}

impl EdsStats {
    pub(super) fn new(scope: &Scope) -> Self {
        // One block: one region entry and one index entry for the four names (each EDS
        // cluster of a CDS push creates these).
        static SHAPE: BlockShape = BlockShape::new();
        let mut s = scope.block(&SHAPE);
        let update_rejected = s.counter("update_rejected");
        let init_fetch_timeout = s.counter("init_fetch_timeout");
        let update_time = s.gauge_never_import("update_time");
        let update_duration = s.histogram("update_duration");
        drop(s);
        Self {
            update_rejected,
            init_fetch_timeout,
            update_time,
            update_duration,
            version_text: scope.text_readout("version_text"),
        }
    }

    /// An assignment with `version_info` was applied, taking `took`.
    pub(super) fn accepted(&self, version_info: &str, took: Duration) {
        self.version_text.set(version_info);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.update_time.set(now_ms);
        super::record_ms(&self.update_duration, took);
    }
}
