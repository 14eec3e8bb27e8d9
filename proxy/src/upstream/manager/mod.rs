//! The cluster manager: the set of clusters the data plane routes to, changing while it
//! serves. Requests read an immutable [`ClusterMap`] snapshot through one `ArcSwap` load
//! (no lock on the request path); updates (static init, CDS, EDS, DNS) build the next
//! map and swap it in.
//!
//! Lifecycle of a cluster, as Envoy's:
//! - added or updated: it *warms* (`warming_clusters`) until its hosts are known (a DNS
//!   cluster's first resolution, an EDS cluster's first assignment or its
//!   `initial_fetch_timeout`; a STATIC cluster warms at once), then replaces the old
//!   cluster of that name in one swap. In-flight requests keep the cluster they picked.
//! - unchanged (same config hash): nothing happens; its host set, pools and counters stay.
//! - removed: it leaves the map at once; requests already holding it finish on it.
//!
//! `update` holds the control side (adds, removals, warming, EDS); this file the map and
//! the read side.

mod update;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use baton_config::model;
use tokio::sync::watch;

use crate::base::fast_hash::FastBuildHasher;
use crate::stats::ClusterManagerStats;

use super::cluster::UpstreamCluster;
use super::error::UpstreamError;
use super::zone::LocalZone;

use update::Control;
pub use update::{ClusterChange, ClusterSource};

/// Facts about a cluster beyond its config, for admin (`added_via_api`, /config_dump).
#[derive(Debug, Clone)]
pub struct ClusterMeta {
    /// Came from CDS (false: static_resources).
    pub added_via_api: bool,
    /// `version_info` of the CDS response that delivered it (empty for static).
    pub version_info: String,
    /// When it was last added or updated.
    pub last_updated: SystemTime,
    /// Hash of its config (an identical update is a no-op).
    pub config_hash: u64,
    /// Its config as Envoy's /config_dump shows it, when known.
    pub config_dump: Option<baton_config::resource::ResourceDump>,
}

/// One snapshot of the active clusters. Immutable once published.
#[derive(Debug, Default)]
pub struct ClusterMap {
    clusters: Vec<Arc<UpstreamCluster>>,
    metas: Vec<ClusterMeta>,
    /// Looked up per request (also by `cluster_header` names a client sends: lookups only).
    by_name: HashMap<String, usize, FastBuildHasher>,
}

impl ClusterMap {
    /// The cluster called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<UpstreamCluster>> {
        self.by_name.get(name).and_then(|i| self.clusters.get(*i))
    }

    /// Every active cluster with its facts: static ones in config order, then the
    /// dynamic ones in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<UpstreamCluster>, &ClusterMeta)> {
        self.clusters.iter().zip(self.metas.iter())
    }

    /// Number of active clusters.
    pub fn len(&self) -> usize {
        self.clusters.len()
    }

    /// True when there is no active cluster.
    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }

    fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }
}

/// All clusters of the server. Send + Sync; shared by every worker.
#[derive(Debug)]
pub struct ClusterManager {
    active: ArcSwap<ClusterMap>,
    /// Update side only (CDS/EDS/DNS tasks on the main runtime); never locked by a request.
    control: Mutex<Control>,
    stats: ClusterManagerStats,
    /// Number of warming clusters; init waits for it to reach 0.
    warming: watch::Sender<usize>,
    /// EDS service names of active and warming clusters (what EDS must subscribe to).
    eds_services: watch::Sender<Vec<String>>,
    /// `version_info` of the last accepted CDS response (/config_dump).
    cds_version: Mutex<String>,
    /// The local cluster and node locality of zone-aware routing (None: no
    /// `local_cluster_name`).
    zone: Option<Arc<LocalZone>>,
}

impl ClusterManager {
    /// An empty cluster manager.
    pub fn new() -> Arc<Self> {
        Self::with_local_zone(None)
    }

    /// An empty cluster manager whose clusters route zone-aware against `zone`.
    pub fn with_local_zone(zone: Option<Arc<LocalZone>>) -> Arc<Self> {
        Arc::new(Self {
            zone,
            active: ArcSwap::from_pointee(ClusterMap::default()),
            control: Mutex::new(Control::default()),
            stats: ClusterManagerStats::new(crate::stats::store()),
            warming: watch::channel(0).0,
            eds_services: watch::channel(Vec::new()).0,
            cds_version: Mutex::new(String::new()),
        })
    }

    /// A manager holding the static clusters of a bootstrap, initialised as Envoy's
    /// primary init does: every STRICT_DNS / LOGICAL_DNS cluster resolved once (each
    /// lookup bounded by the resolver's timeouts) before this returns. A name that
    /// fails to resolve leaves its target without hosts until a refresh succeeds.
    /// EDS clusters are active at once without hosts until their assignment arrives.
    pub async fn initialize(clusters: &[Arc<model::Cluster>]) -> Result<Arc<Self>, UpstreamError> {
        let manager = Self::new();
        manager.add_static(clusters).await;
        Ok(manager)
    }

    /// The cluster called `name` now (the request path: one lock-free load).
    pub fn get(&self, name: &str) -> Option<Arc<UpstreamCluster>> {
        self.active.load().get(name).cloned()
    }

    /// The current snapshot of active clusters.
    pub fn snapshot(&self) -> Arc<ClusterMap> {
        self.active.load_full()
    }

    /// Every active cluster, in map order (admin /clusters).
    pub fn clusters(&self) -> Vec<Arc<UpstreamCluster>> {
        self.active.load().clusters.clone()
    }

    /// Whether a cluster of that name is active or warming (route validation).
    pub fn has_cluster(&self, name: &str) -> bool {
        self.active.load().contains(name) || self.lock().is_warming(name)
    }

    /// Waits until no cluster is warming (init: CDS clusters are initialised).
    pub async fn wait_warm(&self) {
        let mut rx = self.warming.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Names of the warming clusters (/init_dump, `ctl status`).
    pub fn warming_names(&self) -> Vec<String> {
        self.lock().warming_names()
    }

    /// Warming clusters with their facts, for /config_dump.
    pub fn warming_clusters(&self) -> Vec<(Arc<UpstreamCluster>, ClusterMeta)> {
        self.lock().warming_clusters()
    }

    /// Watches the EDS service names that active and warming clusters need.
    pub fn eds_services(&self) -> watch::Receiver<Vec<String>> {
        self.eds_services.subscribe()
    }

    /// Records the last accepted CDS `version_info`.
    pub fn set_cds_version(&self, version: &str) {
        *self.cds_version.lock().unwrap_or_else(|e| e.into_inner()) = version.to_string();
    }

    /// The last accepted CDS `version_info` (empty before any).
    pub fn cds_version(&self) -> String {
        self.cds_version
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A cluster of this manager (zone-aware when it has a local cluster) over
    /// `localities`, from an assignment whose overprovisioning factor is
    /// `overprovisioning_percent`.
    fn new_cluster(
        &self,
        model: Arc<model::Cluster>,
        localities: Vec<super::host_set::LocalityHosts>,
        overprovisioning_percent: u32,
    ) -> Arc<UpstreamCluster> {
        let cluster = Arc::new(UpstreamCluster::with_zone(
            model,
            localities,
            overprovisioning_percent,
            self.zone.clone(),
        ));
        if let Some(zone) = &self.zone {
            zone.register(&cluster);
        }
        cluster
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes a new active map built from `f` applied to a copy of the current one.
    fn publish(&self, f: impl FnOnce(&mut Vec<(Arc<UpstreamCluster>, ClusterMeta)>)) {
        let current = self.active.load();
        let mut list: Vec<(Arc<UpstreamCluster>, ClusterMeta)> = current
            .clusters
            .iter()
            .cloned()
            .zip(current.metas.iter().cloned())
            .collect();
        f(&mut list);
        let mut map = ClusterMap {
            clusters: Vec::with_capacity(list.len()),
            metas: Vec::with_capacity(list.len()),
            by_name: HashMap::with_capacity_and_hasher(list.len(), FastBuildHasher::default()),
        };
        for (cluster, meta) in list {
            map.by_name
                .insert(cluster.name().to_string(), map.clusters.len());
            map.clusters.push(cluster);
            map.metas.push(meta);
        }
        self.stats.active_clusters.set(map.clusters.len() as u64);
        self.active.store(Arc::new(map));
    }
}

impl Drop for ClusterManager {
    fn drop(&mut self) {
        self.lock().abort_all();
    }
}

#[cfg(test)]
mod tests;
