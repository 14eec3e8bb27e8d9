//! The hosts of one cluster arranged for load balancing: priority levels with Envoy's
//! overprovisioning spill-over (the assignment's factor, default 1.4), panic threshold
//! (the cluster's, default 50%) and total panic, and optional locality weighting. Built once per membership change (config, DNS) and swapped in
//! whole, so choosing a host reads an immutable snapshot plus a few atomics.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use baton_config::model::LbPolicy;

use super::host::Host;
use super::lb::{smooth_schedule, HostGroup};

/// How a host set splits traffic between its priority levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LevelPolicy {
    /// The assignment's `policy.overprovisioning_factor`, in percent.
    pub(crate) overprovisioning_percent: u64,
    /// A level whose healthy share is below this percentage is in panic (the cluster's
    /// `healthy_panic_threshold` or the runtime's `upstream.healthy_panic_threshold`,
    /// at most 100).
    pub(crate) panic_threshold_percent: u64,
}

impl Default for LevelPolicy {
    /// Envoy's defaults: factor 1.4, panic under 50% healthy.
    fn default() -> Self {
        Self {
            overprovisioning_percent: 140,
            panic_threshold_percent: 50,
        }
    }
}

impl LevelPolicy {
    /// The policy of `model`'s hosts when their assignment's factor is
    /// `overprovisioning_percent`: the runtime key overrides the cluster's threshold, as
    /// Envoy reads it whenever the hosts change.
    pub(crate) fn of(model: &baton_config::model::Cluster, overprovisioning_percent: u32) -> Self {
        let threshold = crate::runtime::lb_keys()
            .healthy_panic_threshold
            .unwrap_or(u64::from(model.healthy_panic_threshold_percent));
        Self {
            overprovisioning_percent: u64::from(overprovisioning_percent),
            panic_threshold_percent: threshold.min(100),
        }
    }
}
/// A stride coprime with 100: walking `n * STRIDE % 100` visits every percentage once
/// per 100 picks, spreading traffic between priority levels evenly and
/// deterministically.
const PRIORITY_STRIDE: usize = 37;

/// The hosts of one locality (`load_assignment.endpoints[]` entry).
#[derive(Debug, Clone)]
pub(crate) struct LocalityHosts {
    /// `priority`
    pub(crate) priority: u32,
    /// `load_balancing_weight` of the locality.
    pub(crate) weight: Option<u32>,
    /// Its hosts.
    pub(crate) hosts: Vec<Arc<Host>>,
}

/// One priority level that receives traffic.
#[derive(Debug)]
pub(crate) struct Level {
    /// One group per locality when locality weighting applies, else a single group.
    groups: Vec<HostGroup>,
    /// Smooth weighted order of `groups` indices (empty: always group 0).
    locality_schedule: Vec<u32>,
    locality_next: AtomicUsize,
    /// Under the panic threshold: picks ignore health (`lb_healthy_panic`).
    panic: bool,
    /// Its `priority`.
    priority: u32,
}

impl Level {
    /// Whether zone-aware routing applies to a pick from this level: Envoy zone-routes
    /// priority 0 only, and not in panic.
    pub(crate) fn zone_routable(&self) -> bool {
        self.priority == 0 && !self.panic
    }

    /// Under the panic threshold: the pick ignores health (`lb_healthy_panic`).
    pub(crate) fn panic(&self) -> bool {
        self.panic
    }

    pub(crate) fn pick(&self, policy: LbPolicy) -> Option<&Arc<Host>> {
        let group = if self.locality_schedule.is_empty() {
            self.groups.first()?
        } else {
            let n = self.locality_next.fetch_add(1, Ordering::Relaxed);
            let index = self.locality_schedule[n % self.locality_schedule.len()];
            self.groups.get(index as usize)?
        };
        group.pick(policy)
    }
}

/// All hosts of a cluster, ready for picking.
#[derive(Debug)]
pub(crate) struct HostSet {
    localities: Vec<LocalityHosts>,
    all: Vec<Arc<Host>>,
    levels: Vec<Level>,
    /// Running sum of per-level load percentages (last entry is 100).
    cumulative_load: Vec<u32>,
    priority_next: AtomicUsize,
    /// What the levels were split by (kept for rebuilds on health changes).
    policy: LevelPolicy,
}

impl HostSet {
    /// Arranges `localities` (config order) for load balancing by `policy`, using the
    /// hosts' health as it is now. As Envoy: each level's health is its healthy share
    /// times the overprovisioning factor (capped at 100); levels take load in priority
    /// order; no level is in panic while their health adds up to 100; when every level is
    /// in panic, load follows host counts and picks ignore health.
    pub(crate) fn new(localities: Vec<LocalityHosts>, policy: LevelPolicy) -> Self {
        let all: Vec<Arc<Host>> = localities
            .iter()
            .flat_map(|l| l.hosts.iter().cloned())
            .collect();
        let mut by_priority: BTreeMap<u32, Vec<&LocalityHosts>> = BTreeMap::new();
        for locality in &localities {
            by_priority
                .entry(locality.priority)
                .or_default()
                .push(locality);
        }
        let levels_in: Vec<Vec<&LocalityHosts>> = by_priority.into_values().collect();
        let counts: Vec<(u64, u64)> = levels_in.iter().map(|l| level_counts(l)).collect();
        let health: Vec<u64> = counts
            .iter()
            .map(|(healthy, total)| {
                (healthy * policy.overprovisioning_percent)
                    .checked_div(*total)
                    .map_or(0, |h| h.min(100))
            })
            .collect();
        let normalized: u64 = health.iter().sum::<u64>().min(100);
        let threshold = policy.panic_threshold_percent;
        let panics: Vec<bool> = counts
            .iter()
            .map(|(healthy, total)| {
                // An empty level is in panic too (no healthy share), as in Envoy.
                let under = healthy * 100 < threshold * total || (*total == 0 && threshold > 0);
                normalized < 100 && under
            })
            .collect();
        let total_panic = !panics.is_empty() && panics.iter().all(|p| *p);
        let loads = if total_panic {
            let hosts: Vec<u64> = counts.iter().map(|(_, total)| *total).collect();
            total_panic_loads(&hosts)
        } else if normalized == 0 {
            // A threshold of 0 and nothing healthy: all load on the first level, which
            // has no host to give (Envoy's corner case).
            let mut loads = vec![0; health.len()];
            if let Some(first) = loads.first_mut() {
                *first = 100;
            }
            loads
        } else {
            priority_loads(&health)
        };

        let mut levels = Vec::new();
        let mut cumulative_load = Vec::new();
        let mut sum = 0;
        for ((level, load), panic) in levels_in.iter().zip(&loads).zip(&panics) {
            if *load == 0 {
                continue;
            }
            sum += load;
            cumulative_load.push(sum);
            levels.push(build_level(level, *panic, policy));
        }
        Self {
            all,
            localities,
            levels,
            cumulative_load,
            priority_next: AtomicUsize::new(0),
            policy,
        }
    }

    /// What the levels were split by.
    pub(crate) fn policy(&self) -> LevelPolicy {
        self.policy
    }

    /// Every host, in config order.
    pub(crate) fn all(&self) -> &[Arc<Host>] {
        &self.all
    }

    /// The localities this set was built from.
    pub(crate) fn localities(&self) -> &[LocalityHosts] {
        &self.localities
    }

    /// Chooses a host: priority level by load, then locality, then host by `policy`.
    #[cfg(test)]
    pub(crate) fn pick(&self, policy: LbPolicy) -> Option<&Arc<Host>> {
        self.pick_with_panic(policy).0
    }

    /// Chooses the priority level of one pick by the levels' loads (None: the set has no
    /// host at all).
    pub(crate) fn choose_level(&self) -> Option<&Level> {
        match self.levels.len() {
            0 => None,
            1 => self.levels.first(),
            _ => {
                let n = self.priority_next.fetch_add(1, Ordering::Relaxed);
                let point = (n.wrapping_mul(PRIORITY_STRIDE) % 100) as u32;
                let index = self.cumulative_load.partition_point(|c| *c <= point);
                self.levels.get(index)
            }
        }
    }

    /// Like [`Self::pick`], also telling whether the choice was made in panic mode
    /// (the level is under the healthy panic threshold; a set without any host counts
    /// as panicking too, as in Envoy).
    #[cfg(test)]
    pub(crate) fn pick_with_panic(&self, policy: LbPolicy) -> (Option<&Arc<Host>>, bool) {
        match self.choose_level() {
            Some(level) => (level.pick(policy), level.panic),
            None => (None, true),
        }
    }
}

/// A level's healthy and total host counts.
fn level_counts(level: &[&LocalityHosts]) -> (u64, u64) {
    let total: u64 = level.iter().map(|l| l.hosts.len() as u64).sum();
    let healthy: u64 = level
        .iter()
        .map(|l| l.hosts.iter().filter(|h| h.is_healthy()).count() as u64)
        .sum();
    (healthy, total)
}

/// Loads when every level is in panic: by each level's share of all hosts, the rounding
/// leftover to the first level with hosts (everything to the first level when there is
/// no host at all), as Envoy.
fn total_panic_loads(hosts: &[u64]) -> Vec<u32> {
    let all: u64 = hosts.iter().sum();
    let mut loads: Vec<u64> = hosts
        .iter()
        .map(|h| (h * 100).checked_div(all).unwrap_or(0))
        .collect();
    let assigned: u64 = loads.iter().sum();
    let first = hosts.iter().position(|h| *h > 0).unwrap_or(0);
    if let Some(load) = loads.get_mut(first) {
        *load += 100 - assigned;
    }
    loads.into_iter().map(|l| l as u32).collect()
}

/// Splits 100% of the traffic between levels: each takes up to its health from what
/// higher levels left; when total health is under 100, loads are scaled up.
fn priority_loads(health: &[u64]) -> Vec<u32> {
    let total: u64 = health.iter().sum();
    if total == 0 {
        return vec![0; health.len()];
    }
    let mut loads: Vec<u64> = if total >= 100 {
        let mut remaining = 100u64;
        health
            .iter()
            .map(|h| {
                let load = (*h).min(remaining);
                remaining -= load;
                load
            })
            .collect()
    } else {
        health.iter().map(|h| h * 100 / total).collect()
    };
    // Rounding leftovers go to the first level with load, as in Envoy.
    let assigned: u64 = loads.iter().sum();
    if let Some(first) = loads.iter_mut().find(|l| **l > 0) {
        *first += 100 - assigned;
    }
    loads.into_iter().map(|l| l as u32).collect()
}

/// Hosts of a locality that may receive traffic: the healthy ones, or all of them when
/// the level is under the panic threshold.
fn eligible(hosts: &[Arc<Host>], panic: bool) -> Vec<Arc<Host>> {
    hosts
        .iter()
        .filter(|h| panic || h.is_healthy())
        .cloned()
        .collect()
}

fn build_level(level: &[&LocalityHosts], panic: bool, policy: LevelPolicy) -> Level {
    let priority = level.first().map_or(0, |l| l.priority);
    let locality_weighted = level.iter().any(|l| l.weight.is_some());
    if locality_weighted {
        let mut groups = Vec::new();
        let mut weights = Vec::new();
        for locality in level {
            let hosts = eligible(&locality.hosts, panic);
            let weight = u64::from(locality.weight.unwrap_or(0));
            if hosts.is_empty() || weight == 0 {
                continue;
            }
            // Effective weight: weight x availability, availability being
            // min(1, factor x healthy share); kept in integer hundredths.
            let n = locality.hosts.len() as u64;
            let availability = if panic {
                100
            } else {
                (hosts.len() as u64 * policy.overprovisioning_percent / n).min(100)
            };
            weights.push(weight * availability);
            groups.push(HostGroup::new(hosts));
        }
        if !groups.is_empty() {
            let locality_schedule = if groups.len() > 1 {
                smooth_schedule(&weights)
            } else {
                Vec::new()
            };
            return Level {
                groups,
                locality_schedule,
                locality_next: AtomicUsize::new(0),
                panic,
                priority,
            };
        }
    }
    let hosts: Vec<Arc<Host>> = level
        .iter()
        .flat_map(|l| eligible(&l.hosts, panic))
        .collect();
    Level {
        groups: vec![HostGroup::new(hosts)],
        locality_schedule: Vec::new(),
        locality_next: AtomicUsize::new(0),
        panic,
        priority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(port: u16, healthy: bool) -> Arc<Host> {
        Arc::new(Host::new(
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            None,
            1,
            Arc::from(""),
            0,
            healthy,
        ))
    }

    fn locality(priority: u32, weight: Option<u32>, hosts: Vec<Arc<Host>>) -> LocalityHosts {
        LocalityHosts {
            priority,
            weight,
            hosts,
        }
    }

    fn picks_per_port(set: &HostSet, n: usize) -> BTreeMap<u16, usize> {
        let mut counts = BTreeMap::new();
        for _ in 0..n {
            let host = set.pick(LbPolicy::RoundRobin).expect("a host");
            *counts
                .entry(host.address.ip().expect("IP host").port())
                .or_insert(0) += 1;
        }
        counts
    }

    #[test]
    fn highest_healthy_priority_takes_everything() {
        let set = HostSet::new(
            vec![
                locality(0, None, vec![host(1, true), host(2, true)]),
                locality(1, None, vec![host(3, true)]),
            ],
            LevelPolicy::default(),
        );
        assert_eq!(
            picks_per_port(&set, 100),
            BTreeMap::from([(1, 50), (2, 50)])
        );
    }

    #[test]
    fn unhealthy_priority_fails_over() {
        let set = HostSet::new(
            vec![
                locality(0, None, vec![host(1, false), host(2, false)]),
                locality(1, None, vec![host(3, true)]),
            ],
            LevelPolicy::default(),
        );
        assert_eq!(picks_per_port(&set, 100), BTreeMap::from([(3, 100)]));
    }

    #[test]
    fn partially_healthy_priority_spills_over_by_overprovisioning() {
        // P0 is 50% healthy -> 70% of traffic (1.4 x 50), P1 takes the other 30%.
        let set = HostSet::new(
            vec![
                locality(0, None, vec![host(1, true), host(2, false)]),
                locality(1, None, vec![host(3, true)]),
            ],
            LevelPolicy::default(),
        );
        assert_eq!(
            picks_per_port(&set, 1000),
            BTreeMap::from([(1, 700), (3, 300)])
        );
    }

    #[test]
    fn all_unhealthy_panics_to_all_hosts_of_first_level() {
        let set = HostSet::new(
            vec![locality(0, None, vec![host(1, false), host(2, false)])],
            LevelPolicy::default(),
        );
        assert_eq!(picks_per_port(&set, 10), BTreeMap::from([(1, 5), (2, 5)]));
    }

    #[test]
    fn empty_set_picks_nothing() {
        let set = HostSet::new(Vec::new(), LevelPolicy::default());
        assert!(set.pick(LbPolicy::RoundRobin).is_none());
        assert!(
            set.pick_with_panic(LbPolicy::RoundRobin).1,
            "no host is a panic"
        );
    }

    #[test]
    fn panic_is_reported_only_under_the_threshold() {
        let healthy = HostSet::new(
            vec![locality(0, None, vec![host(1, true), host(2, false)])],
            LevelPolicy::default(),
        );
        assert!(!healthy.pick_with_panic(LbPolicy::RoundRobin).1);
        let panicking = HostSet::new(
            vec![locality(
                0,
                None,
                vec![host(1, true), host(2, false), host(3, false)],
            )],
            LevelPolicy::default(),
        );
        let (picked, panic) = panicking.pick_with_panic(LbPolicy::RoundRobin);
        assert!(picked.is_some() && panic);
    }

    #[test]
    fn locality_weights_split_traffic() {
        let set = HostSet::new(
            vec![
                locality(0, Some(1), vec![host(1, true)]),
                locality(0, Some(3), vec![host(2, true), host(3, true)]),
            ],
            LevelPolicy::default(),
        );
        assert_eq!(
            picks_per_port(&set, 400),
            BTreeMap::from([(1, 100), (2, 150), (3, 150)])
        );
    }

    fn policy(overprovisioning_percent: u64, panic_threshold_percent: u64) -> LevelPolicy {
        LevelPolicy {
            overprovisioning_percent,
            panic_threshold_percent,
        }
    }

    #[test]
    fn overprovisioning_factor_sets_how_much_a_level_keeps() {
        let localities = || {
            vec![
                locality(0, None, vec![host(1, true), host(2, false)]),
                locality(1, None, vec![host(3, true)]),
            ]
        };
        let whole = HostSet::new(localities(), policy(200, 50));
        assert_eq!(picks_per_port(&whole, 100), BTreeMap::from([(1, 100)]));
        let half = HostSet::new(localities(), policy(100, 50));
        assert_eq!(
            picks_per_port(&half, 100),
            BTreeMap::from([(1, 50), (3, 50)])
        );
    }

    #[test]
    fn no_level_panics_while_the_levels_add_up_to_full_health() {
        // P0 is a quarter healthy (35), P1 whole (100): P0 keeps to its healthy host.
        let set = HostSet::new(
            vec![
                locality(
                    0,
                    None,
                    vec![
                        host(1, true),
                        host(2, false),
                        host(3, false),
                        host(4, false),
                    ],
                ),
                locality(1, None, vec![host(5, true)]),
            ],
            LevelPolicy::default(),
        );
        let counts = picks_per_port(&set, 100);
        assert_eq!(counts, BTreeMap::from([(1, 35), (5, 65)]));
        assert!(!set.levels.iter().any(|l| l.panic));
    }

    #[test]
    fn total_panic_splits_by_host_counts() {
        // Both levels under 50% healthy and under 100 together: loads 4/7 and 3/7 of the
        // hosts (57 + the leftover, 42), every host picked.
        let set = HostSet::new(
            vec![
                locality(
                    0,
                    None,
                    vec![
                        host(1, true),
                        host(2, false),
                        host(3, false),
                        host(4, false),
                    ],
                ),
                locality(1, None, vec![host(5, true), host(6, false), host(7, false)]),
            ],
            LevelPolicy::default(),
        );
        assert_eq!(set.cumulative_load, vec![58, 100]);
        assert!(set.levels.iter().all(|l| l.panic));
    }

    #[test]
    fn threshold_zero_never_panics() {
        let set = HostSet::new(
            vec![locality(
                0,
                None,
                vec![host(1, true), host(2, false), host(3, false)],
            )],
            policy(140, 0),
        );
        assert_eq!(picks_per_port(&set, 10), BTreeMap::from([(1, 10)]));
        let none = HostSet::new(
            vec![locality(0, None, vec![host(1, false)])],
            policy(140, 0),
        );
        assert!(none.pick(LbPolicy::RoundRobin).is_none());
    }

    #[test]
    fn loads_follow_envoy_arithmetic() {
        assert_eq!(priority_loads(&[100, 100]), vec![100, 0]);
        assert_eq!(priority_loads(&[70, 100]), vec![70, 30]);
        assert_eq!(priority_loads(&[0, 100]), vec![0, 100]);
        assert_eq!(priority_loads(&[35, 35]), vec![50, 50]);
        assert_eq!(priority_loads(&[0, 0]), vec![0, 0]);
        assert_eq!(total_panic_loads(&[4, 3]), vec![58, 42]);
        assert_eq!(total_panic_loads(&[0, 3]), vec![0, 100]);
        assert_eq!(total_panic_loads(&[0, 0]), vec![100, 0]);
    }
}
