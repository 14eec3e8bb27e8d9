//! Zone-aware routing, as Envoy 1.40 does it: with a local cluster (the proxies of this
//! service, `cluster_manager.local_cluster_name`) and the node's locality, each upstream
//! cluster sends as much traffic to its hosts in the node's locality as keeps the load
//! per upstream host even, and spreads the rest over the other localities by their spare
//! capacity.
//!
//! The routing state of a cluster depends on its own hosts and on the local cluster's,
//! so it is rebuilt (off the request path) when either changes: the cluster rebuilds on
//! its own host changes; a change of the local cluster rebuilds every registered cluster
//! at once (so the `lb_*` counters move when Envoy's do) and bumps a generation that a
//! cluster not yet registered notices on its next pick (one atomic load). A pick reads
//! one immutable [`ZoneRouting`] snapshot plus a few atomics.
//!
//! Health is each host's `is_healthy()` (health checks and outlier detection will set
//! it); only priority 0 is zone routed, as in Envoy: when part of the traffic spills
//! over to lower priorities, the picks that land on priority 0 are zone routed and the
//! others are not. `force_local_zone` sends everything to the node's zone when the
//! upstream has enough healthy hosts there.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use arc_swap::{ArcSwap, ArcSwapOption};
use baton_config::model::{LbPolicy, ZoneAwareLbConfig};

use super::cluster::UpstreamCluster;
use super::host::Host;
use super::host_set::HostSet;
use super::lb::HostGroup;
use crate::stats::ZoneStats;

#[cfg(test)]
mod tests;

/// Percentages are kept in hundredths of a percent, as in Envoy.
const FULL: u64 = 10_000;

/// The node's locality and the local cluster's current shape, shared by every cluster of
/// a cluster manager.
#[derive(Debug)]
pub struct LocalZone {
    /// The node's locality as `region/zone/sub_zone` ("" when unset).
    node_locality: Arc<str>,
    /// `cluster_manager.local_cluster_name`
    local_cluster: String,
    /// The local cluster's healthy hosts per locality (None until it exists).
    local: ArcSwapOption<LocalShares>,
    /// Bumped on every change of `local`.
    generation: AtomicU64,
    /// The clusters to rebuild when the local cluster changes (control path only).
    clusters: Mutex<Vec<Weak<UpstreamCluster>>>,
}

impl LocalZone {
    /// Zone routing for a node in `node_locality` (`region/zone/sub_zone`), balanced
    /// against the cluster named `local_cluster`.
    pub fn new(node_locality: &str, local_cluster: &str) -> Arc<Self> {
        Arc::new(Self {
            node_locality: Arc::from(node_locality),
            local_cluster: local_cluster.to_string(),
            local: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            clusters: Mutex::new(Vec::new()),
        })
    }

    /// Rebuilds `cluster`'s routing whenever the local cluster changes from now on.
    pub(crate) fn register(&self, cluster: &Arc<UpstreamCluster>) {
        let mut clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        clusters.retain(|c| c.strong_count() > 0);
        clusters.push(Arc::downgrade(cluster));
    }

    /// Whether `name` is the local cluster.
    pub(crate) fn is_local_cluster(&self, name: &str) -> bool {
        self.local_cluster == name
    }

    /// Records the local cluster's hosts (it was created or its hosts changed).
    pub(crate) fn publish_local(&self, set: &HostSet) {
        let hosts = set.all();
        let loads = locality_loads(hosts.iter(), &self.node_locality);
        let healthy = hosts.iter().filter(|h| h.is_healthy()).count() as u64;
        let shares = LocalShares {
            health: LocalHealth {
                healthy,
                total: hosts.len() as u64,
            },
            has_local: loads.has_local && loads.localities.first().is_some_and(|l| l.hosts > 0),
            localities: loads.localities,
        };
        self.local.store(Some(Arc::new(shares)));
        self.generation.fetch_add(1, Ordering::Release);
        let clusters: Vec<Arc<UpstreamCluster>> = self
            .clusters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for cluster in clusters {
            cluster.rebuild_zone();
        }
    }
}

/// The local cluster, reduced to what zone routing reads.
#[derive(Debug)]
struct LocalShares {
    /// Healthy hosts per locality.
    localities: Vec<LocalityLoad>,
    /// Its healthy and total host counts: under the upstream cluster's panic threshold,
    /// no zone routing (`lb_local_cluster_not_ok`).
    health: LocalHealth,
    /// It has a healthy host in the node's locality.
    has_local: bool,
}

/// The local cluster's healthy and total host counts.
#[derive(Debug, Clone, Copy, Default)]
struct LocalHealth {
    healthy: u64,
    total: u64,
}

impl LocalHealth {
    /// Whether the local cluster is in panic under `threshold` percent (no host at all
    /// is a panic unless the threshold is 0), as Envoy checks it on each pick.
    fn in_panic(self, threshold: u64) -> bool {
        self.healthy * 100 < threshold * self.total || (self.total == 0 && threshold > 0)
    }
}

/// Healthy hosts of one locality: their number and total weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalityLoad {
    pub(crate) name: Arc<str>,
    pub(crate) hosts: u64,
    pub(crate) weight: u64,
}

/// Localities with their healthy loads, the node's locality first when present, then
/// by name (Envoy's order).
struct Loads {
    localities: Vec<LocalityLoad>,
    has_local: bool,
}

fn locality_loads<'a>(hosts: impl Iterator<Item = &'a Arc<Host>>, node: &str) -> Loads {
    let mut localities: Vec<LocalityLoad> = Vec::new();
    for host in hosts {
        let index = match localities.iter().position(|l| *l.name == *host.locality) {
            Some(i) => i,
            None => {
                localities.push(LocalityLoad {
                    name: host.locality.clone(),
                    hosts: 0,
                    weight: 0,
                });
                localities.len() - 1
            }
        };
        if host.is_healthy() {
            localities[index].hosts += 1;
            localities[index].weight += u64::from(host.weight);
        }
    }
    localities.sort_by(|a, b| {
        let local = |l: &LocalityLoad| *l.name != *node;
        (local(a), &a.name).cmp(&(local(b), &b.name))
    });
    let has_local = localities.first().is_some_and(|l| *l.name == *node);
    Loads {
        localities,
        has_local,
    }
}

/// What a cluster does with zone routing, as Envoy latches it per host-set change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RoutingState {
    /// Preconditions not met: balance over all of priority 0.
    Off,
    /// Everything to the local locality (index 0).
    Direct,
    /// `local_percent` (of 10000) to the local locality, the rest by the cumulative
    /// spare capacity of the others.
    Residual {
        local_percent: u64,
        residual_capacity: Vec<u64>,
    },
}

/// Why zone routing is off, each counted in its stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Off {
    /// Fewer than two localities upstream or in the local cluster (not counted).
    OneLocality,
    /// `lb_local_cluster_not_ok`
    LocalClusterNotOk,
    /// `lb_zone_cluster_too_small`
    ClusterTooSmall,
}

/// Each upstream locality's share of the local cluster and of the upstream cluster, in
/// hundredths of a percent; localities are matched by name. A locality without healthy
/// upstream hosts has (0, 0).
pub(crate) fn locality_percentages(
    local: &[LocalityLoad],
    upstream: &[LocalityLoad],
    by_weight: bool,
) -> Vec<(u64, u64)> {
    let basis = |l: &LocalityLoad| if by_weight { l.weight } else { l.hosts };
    let total_local: u64 = local.iter().map(basis).sum();
    let total_upstream: u64 = upstream.iter().map(basis).sum();
    upstream
        .iter()
        .map(|u| {
            if u.hosts == 0 {
                return (0, 0);
            }
            let local_weight = local.iter().find(|l| l.name == u.name).map_or(0, basis);
            let share = |part: u64, total: u64| (FULL * part).checked_div(total).unwrap_or(0);
            (
                share(local_weight, total_local),
                share(basis(u), total_upstream),
            )
        })
        .collect()
}

/// Envoy's routing decision for priority 0: `upstream` are the upstream's localities
/// (the node's first when `upstream_has_local`).
pub(crate) fn routing_state(
    upstream: &[LocalityLoad],
    upstream_has_local: bool,
    local: &[LocalityLoad],
    local_has_local: bool,
    config: &ZoneAwareLbConfig,
) -> Result<RoutingState, Off> {
    // Measured on Envoy 1.40: one locality on either side turns routing off silently,
    // except a one-zone local cluster when the local zone is forced.
    let forced = config.force_local_zone_min_size;
    if upstream.len() < 2 || (local.len() < 2 && forced.is_none()) {
        return Err(Off::OneLocality);
    }
    if !local_has_local {
        return Err(Off::LocalClusterNotOk);
    }
    let healthy: u64 = upstream.iter().map(|l| l.hosts).sum();
    if healthy < config.min_cluster_size {
        return Err(Off::ClusterTooSmall);
    }
    let percentages = locality_percentages(local, upstream, config.basis_by_weight);
    let (local0, upstream0) = percentages[0];
    let forced_here = forced.is_some_and(|min| upstream[0].hosts >= u64::from(min));
    if upstream_has_local && ((upstream0 > 0 && upstream0 >= local0) || forced_here) {
        return Ok(RoutingState::Direct);
    }
    // The local locality takes what its hosts can (e.g. 10% of the upstream hosts for 20%
    // of the local ones: half of the picks); the others share the rest by spare capacity.
    let local_percent = if upstream_has_local && local0 > 0 {
        upstream0 * FULL / local0
    } else {
        0
    };
    let mut residual_capacity = Vec::with_capacity(percentages.len());
    let mut sum = 0;
    for (i, (local_pct, upstream_pct)) in percentages.iter().enumerate() {
        if !(i == 0 && upstream_has_local) {
            sum += upstream_pct.saturating_sub(*local_pct);
        }
        residual_capacity.push(sum);
    }
    Ok(RoutingState::Residual {
        local_percent,
        residual_capacity,
    })
}

/// A cluster's zone routing as built for one host set and one local-cluster generation.
#[derive(Debug)]
struct ZoneRouting {
    /// The [`LocalZone`] generation it was built with.
    generation: u64,
    state: RoutingState,
    /// Healthy priority-0 hosts per locality, in the order of `state`'s indices.
    groups: Vec<HostGroup>,
    /// The local cluster's health when this was built.
    local_health: LocalHealth,
}

impl ZoneRouting {
    fn off(generation: u64) -> Self {
        Self {
            generation,
            state: RoutingState::Off,
            groups: Vec::new(),
            local_health: LocalHealth::default(),
        }
    }
}

/// One cluster's zone-aware balancer.
#[derive(Debug)]
pub(crate) struct ZoneBalancer {
    zone: Arc<LocalZone>,
    config: ZoneAwareLbConfig,
    /// The upstream cluster's `healthy_panic_threshold` (percent), which Envoy also
    /// applies to the local cluster.
    panic_threshold_percent: u64,
    routing: ArcSwap<ZoneRouting>,
}

/// What zone routing made of a pick.
pub(crate) enum ZonePick {
    /// Chose this host.
    Host(Arc<Host>),
    /// Not zone routed: balance as usual.
    NotRouted,
    /// `fail_traffic_on_panic` with the local cluster in panic: no host.
    Fail,
}

impl ZoneBalancer {
    pub(crate) fn new(
        zone: Arc<LocalZone>,
        config: ZoneAwareLbConfig,
        panic_threshold_percent: u32,
    ) -> Self {
        Self {
            routing: ArcSwap::from_pointee(ZoneRouting::off(u64::MAX)),
            zone,
            config,
            panic_threshold_percent: u64::from(panic_threshold_percent),
        }
    }

    /// The cluster's config with the runtime's `upstream.zone_routing.min_cluster_size`
    /// and `.force_local_zone.min_size` applied (Envoy reads them when it rebuilds).
    fn config_now(&self, keys: crate::runtime::LbKeys) -> ZoneAwareLbConfig {
        let mut config = self.config;
        if let Some(size) = keys.zone_routing_min_cluster_size {
            config.min_cluster_size = size;
        }
        if let Some(size) = keys.force_local_zone_min_size {
            config.force_local_zone_min_size = Some(u32::try_from(size).unwrap_or(u32::MAX));
        }
        config
    }

    /// Rebuilds the routing state for `set` (the cluster's hosts changed, or the local
    /// cluster did), counting Envoy's recalculation stats.
    pub(crate) fn rebuild(&self, set: &HostSet, stats: &ZoneStats) {
        let generation = self.zone.generation.load(Ordering::Acquire);
        let Some(local) = self.zone.local.load_full() else {
            // No local cluster yet: nothing to balance against.
            self.routing.store(Arc::new(ZoneRouting::off(generation)));
            return;
        };
        stats.recalculate_zone_structures.inc();
        let p0: Vec<&Arc<Host>> = set.all().iter().filter(|h| h.priority == 0).collect();
        let loads = locality_loads(p0.iter().copied(), &self.zone.node_locality);
        let state = match routing_state(
            &loads.localities,
            loads.has_local,
            &local.localities,
            local.has_local,
            &self.config_now(crate::runtime::lb_keys()),
        ) {
            Ok(state) => state,
            Err(off) => {
                match off {
                    Off::OneLocality => {}
                    Off::LocalClusterNotOk => stats.local_cluster_not_ok.inc(),
                    Off::ClusterTooSmall => stats.cluster_too_small.inc(),
                }
                self.routing.store(Arc::new(ZoneRouting::off(generation)));
                return;
            }
        };
        let groups = loads
            .localities
            .iter()
            .map(|l| {
                HostGroup::new(
                    p0.iter()
                        .filter(|h| h.locality == l.name && h.is_healthy())
                        .map(|h| Arc::clone(h))
                        .collect(),
                )
            })
            .collect();
        self.routing.store(Arc::new(ZoneRouting {
            generation,
            state,
            groups,
            local_health: local.health,
        }));
    }

    /// Zone-routes one pick from `set` (the pick landed on priority 0, which is not in
    /// panic).
    pub(crate) fn pick(&self, set: &HostSet, policy: LbPolicy, stats: &ZoneStats) -> ZonePick {
        let mut routing = self.routing.load();
        if routing.generation != self.zone.generation.load(Ordering::Acquire) {
            self.rebuild(set, stats);
            routing = self.routing.load();
        }
        if routing.state == RoutingState::Off {
            return ZonePick::NotRouted;
        }
        // Envoy reads both runtime keys on every pick that could be zone routed.
        let keys = crate::runtime::lb_keys();
        let enabled = keys
            .zone_routing_enabled
            .unwrap_or(u64::from(self.config.routing_enabled_percent));
        if enabled < 100 && rand::random_range(0..100) >= enabled {
            return ZonePick::NotRouted;
        }
        let threshold = keys
            .healthy_panic_threshold
            .unwrap_or(self.panic_threshold_percent)
            .min(100);
        if routing.local_health.in_panic(threshold) {
            stats.local_cluster_not_ok.inc();
            return if self.config.fail_traffic_on_panic {
                ZonePick::Fail
            } else {
                ZonePick::NotRouted
            };
        }
        let index = choose_locality(&routing.state, routing.groups.len(), stats);
        match routing.groups.get(index).and_then(|g| g.pick(policy)) {
            Some(host) => ZonePick::Host(host.clone()),
            None => ZonePick::NotRouted,
        }
    }
}

/// The locality index for one pick in `state` (not [`RoutingState::Off`]).
fn choose_locality(state: &RoutingState, localities: usize, stats: &ZoneStats) -> usize {
    match state {
        RoutingState::Off => 0,
        RoutingState::Direct => {
            stats.routing_all_directly.inc();
            0
        }
        RoutingState::Residual {
            local_percent,
            residual_capacity,
        } => {
            if rand::random_range(0..FULL) < *local_percent {
                stats.routing_sampled.inc();
                return 0;
            }
            stats.routing_cross_zone.inc();
            let total = residual_capacity.last().copied().unwrap_or(0);
            if total == 0 {
                // Only rounding leaves no capacity anywhere: any locality will do.
                stats.no_capacity_left.inc();
                return rand::random_range(0..localities.max(1));
            }
            let threshold = rand::random_range(0..total);
            residual_capacity.partition_point(|c| *c <= threshold)
        }
    }
}
