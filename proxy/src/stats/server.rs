//! Opening the region for this generation, and the `server.*` stats.

use std::path::Path;

use baton_shared_stats::{Gauge, RegionConfig, StatsStore};

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
    /// `server.memory_allocated` (resident set size: Baton uses the system allocator).
    pub memory_allocated: Gauge,
    /// `server.memory_heap_size` (same source).
    pub memory_heap_size: Gauge,
    /// `server.version` (numeric: major*10000+minor*100+patch).
    pub version: Gauge,
    /// `server.days_until_first_cert_expiring` (`u32::MAX` without certificates, as Envoy).
    pub days_until_first_cert_expiring: Gauge,
    /// `server.seconds_until_first_ocsp_response_expiring` (0 without staples, as Envoy).
    pub seconds_until_first_ocsp_response_expiring: Gauge,
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
            version: s.gauge_never_import("version"),
            days_until_first_cert_expiring: s.gauge_never_import("days_until_first_cert_expiring"),
            seconds_until_first_ocsp_response_expiring: s
                .gauge_never_import("seconds_until_first_ocsp_response_expiring"),
        }
    }

    /// Refreshes memory figures from /proc (called by the periodic flush).
    pub fn refresh_memory(&self) {
        if let Some(rss) = resident_bytes() {
            self.memory_allocated.set(rss);
            self.memory_heap_size.set(rss);
        }
    }
}

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|p| u64::try_from(p).ok())
        .unwrap_or(4096);
    Some(pages * page)
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
