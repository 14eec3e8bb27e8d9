//! Opening the region for this generation, and the `server.*` stats.

use std::path::Path;

use baton_shared_stats::{Counter, Gauge, Histogram, RegionConfig, StatsStore};

use super::Scope;

/// Joins (or creates) the stats region of `base_id` in `dir` as generation `epoch`.
/// `max_stats` sizes a region this generation creates (cells and name bytes scale with
/// it); an existing region keeps its size.
pub fn open_store(
    dir: &Path,
    base_id: u32,
    epoch: u32,
    max_stats: u32,
) -> baton_shared_stats::Result<StatsStore> {
    StatsStore::open_or_create(&region_config(dir, base_id, max_stats), u64::from(epoch))
}

/// The region geometry for `max_stats` names: 4 value cells and 64 name bytes per stat
/// on average (the defaults' ratios).
pub fn region_config(dir: &Path, base_id: u32, max_stats: u32) -> RegionConfig {
    RegionConfig::for_stats(dir, base_id, max_stats)
}

/// `server.*` gauges (Envoy's names).
#[derive(Clone)]
pub struct ServerStats {
    /// `server.live`: 1 when LIVE.
    pub live: Gauge,
    /// `server.state`: 0 LIVE, 1 DRAINING, 2 PRE_INITIALIZING, 3 INITIALIZING.
    pub state: Gauge,
    /// `server.uptime` (seconds, across hot restarts).
    pub uptime: Gauge,
    /// `server.concurrency`
    pub concurrency: Gauge,
    /// `server.hot_restart_epoch`
    pub hot_restart_epoch: Gauge,
    /// `server.hot_restart_generation`
    pub hot_restart_generation: Gauge,
    /// `server.parent_connections`: connections still open in the parent.
    pub parent_connections: Gauge,
    /// `server.total_connections`: ours plus the parent's.
    pub total_connections: Gauge,
    /// `server.memory_allocated`: bytes in use by the allocator (as `/memory`'s `allocated`).
    pub memory_allocated: Gauge,
    /// `server.memory_heap_size`: bytes the allocator took from the system.
    pub memory_heap_size: Gauge,
    /// `server.memory_physical_size`: the resident set size.
    pub memory_physical_size: Gauge,
    /// `server.version` (numeric: major*10000+minor*100+patch).
    pub version: Gauge,
    /// `server.days_until_first_cert_expiring` (`u32::MAX` without certificates, as Envoy).
    pub days_until_first_cert_expiring: Gauge,
    /// `server.seconds_until_first_ocsp_response_expiring` (0 without staples, as Envoy).
    pub seconds_until_first_ocsp_response_expiring: Gauge,
    /// `server.initialization_time_ms`: start of this generation to its workers
    /// accepting, recorded once.
    pub initialization_time_ms: Histogram,
    /// `server.static_unknown_fields`: 1 when the bootstrap had unknown fields dropped
    /// (`--allow-unknown-static-fields`), as Envoy counts its one lenient re-parse.
    pub static_unknown_fields: Counter,
}

impl ServerStats {
    /// Resolves the handles.
    pub fn new(store: &StatsStore) -> Self {
        let s = Scope::new(store, "server.");
        Self {
            live: s.gauge_never_import("live"),
            state: s.gauge_never_import("state"),
            uptime: s.gauge_never_import("uptime"),
            concurrency: s.gauge_never_import("concurrency"),
            hot_restart_epoch: s.gauge_never_import("hot_restart_epoch"),
            hot_restart_generation: s.gauge_never_import("hot_restart_generation"),
            parent_connections: s.gauge_never_import("parent_connections"),
            total_connections: s.gauge_never_import("total_connections"),
            memory_allocated: s.gauge_never_import("memory_allocated"),
            memory_heap_size: s.gauge_never_import("memory_heap_size"),
            memory_physical_size: s.gauge_never_import("memory_physical_size"),
            version: s.gauge_never_import("version"),
            days_until_first_cert_expiring: s.gauge_never_import("days_until_first_cert_expiring"),
            seconds_until_first_ocsp_response_expiring: s
                .gauge_never_import("seconds_until_first_ocsp_response_expiring"),
            initialization_time_ms: s.histogram("initialization_time_ms"),
            static_unknown_fields: s.counter("static_unknown_fields"),
        }
        .with_event_counters(&s)
    }

    /// Envoy's counters of events Baton has no source of (a failed debug assertion or
    /// `ENVOY_BUG`, a notification, a dropped stats-sink flush, a work-in-progress
    /// proto): present for dashboards and alerts written against Envoy, always 0.
    fn with_event_counters(self, s: &Scope) -> Self {
        for name in [
            "debug_assertion_failures",
            "envoy_bug_failures",
            "envoy_notifications",
            "dropped_stat_flushes",
            "wip_protos",
        ] {
            s.counter(name);
        }
        self
    }

    /// Refreshes the memory figures, the same as `/memory`'s (called by the periodic
    /// flush).
    pub fn refresh_memory(&self) {
        let (allocated, heap_size, _free) = crate::base::heap::allocator_bytes();
        self.memory_allocated.set(allocated);
        self.memory_heap_size.set(heap_size);
        self.memory_physical_size
            .set(crate::base::heap::resident_bytes());
    }
}

/// What the periodic flush reads about the server.
pub struct ServerFacts {
    /// Lifecycle state as Envoy's number (0 LIVE, 1 DRAINING, 2 PRE_INITIALIZING, 3 INITIALIZING).
    pub state: u64,
    /// Seconds since the first generation started.
    pub uptime_s: u64,
    /// Worker threads.
    pub concurrency: u64,
    /// `--restart-epoch`
    pub epoch: u64,
    /// Hand-overs that led to this generation.
    pub generation: u64,
    /// Our open downstream connections.
    pub connections: u64,
    /// The parent generation's open connections (0 once it exited).
    pub parent_connections: u64,
}

impl ServerStats {
    /// Writes one flush worth of `server.*` values.
    pub fn update(&self, facts: &ServerFacts) {
        self.state.set(facts.state);
        self.live.set(u64::from(facts.state == 0));
        self.uptime.set(facts.uptime_s);
        self.concurrency.set(facts.concurrency);
        self.hot_restart_epoch.set(facts.epoch);
        self.hot_restart_generation.set(facts.generation);
        self.parent_connections.set(facts.parent_connections);
        self.total_connections
            .set(facts.connections + facts.parent_connections);
        self.days_until_first_cert_expiring
            .set(crate::tls::certs::days_until_first_cert_expiring());
        self.seconds_until_first_ocsp_response_expiring
            .set(crate::tls::certs::seconds_until_first_ocsp_response_expiring());
        self.version.set(version_number());
        self.refresh_memory();
    }
}

/// `server.version`: Baton's version as one number (major*10000 + minor*100 + patch).
fn version_number() -> u64 {
    let mut parts = crate::server::VERSION
        .split('.')
        .map(|p| p.parse::<u64>().unwrap_or(0));
    let (a, b, c) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    a * 10_000 + b * 100 + c
}
