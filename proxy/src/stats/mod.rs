//! Envoy-named stats for every part of the proxy, as bundles of pre-resolved handles into
//! the shared-memory region (`baton-shared-stats`). Bundles are built once per config
//! snapshot (listener, connection manager, cluster, tcp_proxy); the request path only does
//! relaxed atomic adds on them: no lookups by name, no locks.

mod admin;
mod block;
mod codec;
mod codes;
mod conn_ends;
mod eds;
mod scopes;
mod server;

pub use admin::AdminListenerStats;
pub use block::{BlockShape, ScopeBlock};
pub use codec::{downstream_http2, http1, Http2CodecStats};
pub use codes::{OriginStats, ResponseCodeStats};
pub use conn_ends::{BreakerPriorityGauges, CircuitBreakerGauges, DestroyCounters};
pub use eds::EdsStats;
pub use scopes::{
    ClusterManagerStats, ClusterStats, HttpConnManagerStats, ListenerHttpStats,
    ListenerManagerStats, ListenerStats, TcpProxyStats, TracingCounters, WorkerListenerStats,
    ZoneStats,
};
pub use server::{open_store, region_config, ServerFacts, ServerStats};

use std::sync::OnceLock;

use baton_shared_stats::{Counter, Gauge, GaugeMode, Histogram, StatsBatch, StatsStore};

/// This process's store: one region per process, installed once at startup (before
/// any listener, cluster or connection manager builds its handles).
static STORE: OnceLock<StatsStore> = OnceLock::new();

/// Installs the process's store (first call wins).
pub fn install(store: StatsStore) {
    let _ = STORE.set(store);
}

/// The process's store. Before `install` (unit tests, tools), a private fallback region
/// made in `$TMPDIR/baton-stats-<pid>` (mode 0700, as the region requires) and unlinked
/// once mapped is used so handles always work.
pub fn store() -> &'static StatsStore {
    STORE.get_or_init(|| {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let dir = std::env::temp_dir().join(format!("baton-stats-{}", std::process::id()));
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir);
        // A directory left by an earlier process with this pid may have other modes.
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        let store = StatsStore::open_or_create(&baton_shared_stats::RegionConfig::new(&dir, 0), 0)
            .unwrap_or_else(|e| {
                panic!(
                    "cannot create a fallback stats region in {}: {e}",
                    dir.display()
                )
            });
        // Nothing opens a private region by its path again: the mapping outlives the
        // file, and test processes leave no directory behind.
        let _ = std::fs::remove_dir_all(&dir);
        store
    })
}

/// True once a real store was installed.
pub fn installed() -> bool {
    STORE.get().is_some()
}

/// Builds handles under one prefix (`cluster.backend.`).
#[derive(Clone)]
pub struct Scope {
    store: StatsStore,
    prefix: String,
}

impl Scope {
    /// A scope; `prefix` ends with `.` (or is empty).
    pub fn new(store: &StatsStore, prefix: impl Into<String>) -> Self {
        Self {
            store: store.clone(),
            prefix: prefix.into(),
        }
    }

    /// The prefix every name of this scope starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The store behind this scope.
    pub fn store(&self) -> &StatsStore {
        &self.store
    }

    /// A scope nested under this one (`cluster.backend.` + `external.`).
    pub fn child(&self, name: &str) -> Scope {
        Scope::new(&self.store, format!("{}{name}", self.prefix))
    }

    /// Calls `f` with `prefix + name`, built in a per-thread buffer (no allocation, no
    /// formatting machinery): a CDS update of 10,000 clusters resolves 330,000 names.
    fn with_full_name<R>(&self, name: &str, f: impl FnOnce(&str) -> R) -> R {
        thread_local! {
            static NAME: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        NAME.with(|buffer| match buffer.try_borrow_mut() {
            Ok(mut full) => {
                full.clear();
                full.push_str(&self.prefix);
                full.push_str(name);
                f(&full)
            }
            // Only if `f` itself built a name (it does not): fall back to a fresh string.
            Err(_) => f(&format!("{}{name}", self.prefix)),
        })
    }

    /// `prefix + name` as a counter.
    pub fn counter(&self, name: &str) -> Counter {
        self.with_full_name(name, |full| self.store.counter(full))
    }

    /// `prefix + name` as a gauge summed over live generations.
    pub fn gauge(&self, name: &str) -> Gauge {
        self.with_full_name(name, |full| self.store.gauge(full))
    }

    /// `prefix + name` as a gauge only the newest generation sets.
    pub fn gauge_never_import(&self, name: &str) -> Gauge {
        self.with_full_name(name, |full| {
            self.store.gauge_with_mode(full, GaugeMode::NeverImport)
        })
    }

    /// `prefix + name` as a histogram (milliseconds, Envoy's buckets).
    pub fn histogram(&self, name: &str) -> Histogram {
        self.with_full_name(name, |full| self.store.histogram(full))
    }

    /// `prefix + name` as a text readout.
    pub fn text_readout(&self, name: &str) -> baton_shared_stats::TextReadout {
        self.with_full_name(name, |full| self.store.text_readout(full))
    }

    /// Takes this scope's names from one block of the region shaped like `shape` (see
    /// [`ScopeBlock`]): for bundles built many times over, such as a cluster's stats.
    pub fn block(&self, shape: &'static BlockShape) -> ScopeBlock<'_> {
        ScopeBlock::new(self, shape)
    }

    /// Resolves several names under this prefix in one batch: one hold of the store's
    /// locks for all of them (a CDS update of 10,000 clusters resolves 340,000 names, and
    /// taking the region lock per name was most of its cost). Nothing else may resolve
    /// through this store while the batch lives (see [`StatsStore::batch`]).
    pub fn batch(&self) -> ScopeBatch<'_> {
        let mut name = String::with_capacity(self.prefix.len() + 48);
        name.push_str(&self.prefix);
        ScopeBatch {
            prefix_len: self.prefix.len(),
            name,
            batch: self.store.batch(),
        }
    }
}

/// Names under one [`Scope`] resolved in one batch ([`Scope::batch`]).
pub struct ScopeBatch<'a> {
    prefix_len: usize,
    /// The prefix, then the current name.
    name: String,
    batch: StatsBatch<'a>,
}

impl ScopeBatch<'_> {
    fn full_name(&mut self, name: &str) -> &str {
        self.name.truncate(self.prefix_len);
        self.name.push_str(name);
        &self.name
    }

    /// `prefix + name` as a counter.
    pub fn counter(&mut self, name: &str) -> Counter {
        self.full_name(name);
        self.batch.counter(&self.name)
    }

    /// `prefix + name` as a gauge summed over live generations.
    pub fn gauge(&mut self, name: &str) -> Gauge {
        self.full_name(name);
        self.batch
            .gauge_with_mode(&self.name, GaugeMode::Accumulate)
    }

    /// `prefix + name` as a gauge only the newest generation sets.
    pub fn gauge_never_import(&mut self, name: &str) -> Gauge {
        self.full_name(name);
        self.batch
            .gauge_with_mode(&self.name, GaugeMode::NeverImport)
    }

    /// `prefix + name` as a histogram (milliseconds, Envoy's buckets).
    pub fn histogram(&mut self, name: &str) -> Histogram {
        self.full_name(name);
        self.batch.histogram(&self.name)
    }
}

/// `_1xx` .. `_5xx` counters, indexed by status class.
#[derive(Clone)]
pub struct StatusClassCounters {
    classes: [Counter; 5],
}

impl StatusClassCounters {
    /// `<base>_1xx` .. `<base>_5xx` under `scope`.
    pub fn new(scope: &Scope, base: &str) -> Self {
        Self {
            classes: [1, 2, 3, 4, 5].map(|c| scope.counter(&format!("{base}_{c}xx"))),
        }
    }

    /// Counts one response with `status`.
    pub fn record(&self, status: u16) {
        if let Some(c) = usize::from(status / 100)
            .checked_sub(1)
            .and_then(|i| self.classes.get(i))
        {
            c.inc();
        }
    }
}

/// Records a duration as whole milliseconds.
pub fn record_ms(h: &Histogram, d: std::time::Duration) {
    h.record(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
}
