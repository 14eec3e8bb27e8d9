//! Load balancers: choose one host from a group of eligible hosts (one locality, or one
//! whole priority level). Everything weight-related is precomputed when the group is
//! built (on config load or DNS change), so a pick is a few atomic/arith operations and
//! never takes a lock.

mod least_request;
mod random;
mod round_robin;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use baton_config::model::LbPolicy;

use super::host::Host;

pub(crate) use round_robin::smooth_schedule;

/// Eligible hosts of one locality or priority level, with precomputed weight data.
#[derive(Debug)]
pub(crate) struct HostGroup {
    hosts: Vec<Arc<Host>>,
    /// True when every host has the same weight: plain index arithmetic suffices.
    equal_weights: bool,
    /// Smooth weighted round-robin order of host indices (empty when weights are equal).
    rr_schedule: Vec<u32>,
    /// Running sums of weights, for weighted random choices.
    cumulative: Vec<u64>,
    /// Next round-robin position (shared by workers; one relaxed add per pick).
    rr_next: AtomicUsize,
}

impl HostGroup {
    pub(crate) fn new(hosts: Vec<Arc<Host>>) -> Self {
        let weights: Vec<u32> = hosts.iter().map(|h| h.weight).collect();
        let equal_weights = weights.windows(2).all(|w| w[0] == w[1]);
        let rr_schedule = if equal_weights {
            Vec::new()
        } else {
            smooth_schedule(&weights.iter().map(|w| u64::from(*w)).collect::<Vec<_>>())
        };
        let mut total = 0u64;
        let cumulative = weights
            .iter()
            .map(|w| {
                total += u64::from(*w);
                total
            })
            .collect();
        // Start each group at a random position so that workers and fresh snapshots
        // don't all hammer the first host, as Envoy does.
        let start = if hosts.len() > 1 {
            rand::random_range(0..hosts.len())
        } else {
            0
        };
        Self {
            hosts,
            equal_weights,
            rr_schedule,
            cumulative,
            rr_next: AtomicUsize::new(start),
        }
    }

    /// The hosts of this group.
    #[cfg(test)]
    pub(crate) fn hosts(&self) -> &[Arc<Host>] {
        &self.hosts
    }

    /// Chooses a host by `policy`; None only when the group is empty.
    pub(crate) fn pick(&self, policy: LbPolicy) -> Option<&Arc<Host>> {
        match self.hosts.len() {
            0 => None,
            1 => self.hosts.first(),
            _ => {
                let index = match policy {
                    LbPolicy::RoundRobin => round_robin::pick(self),
                    LbPolicy::LeastRequest { choice_count } => {
                        least_request::pick(self, choice_count)
                    }
                    LbPolicy::Random => random::pick(self),
                };
                self.hosts.get(index)
            }
        }
    }

    fn next_rr(&self) -> usize {
        self.rr_next.fetch_add(1, Ordering::Relaxed)
    }

    /// A weighted random index (uniform when weights are equal).
    fn random_index(&self) -> usize {
        if self.equal_weights {
            return rand::random_range(0..self.hosts.len());
        }
        let total = self.cumulative.last().copied().unwrap_or(1).max(1);
        let point = rand::random_range(0..total);
        self.cumulative.partition_point(|&c| c <= point)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn host(port: u16, weight: u32) -> Arc<Host> {
        Arc::new(Host::new(
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            None,
            weight,
            Arc::from(""),
            0,
            true,
        ))
    }

    pub(crate) fn count_picks(group: &HostGroup, policy: LbPolicy, n: usize) -> Vec<usize> {
        let mut counts = vec![0; group.hosts().len()];
        for _ in 0..n {
            let picked = group.pick(policy).expect("non-empty");
            let i = group
                .hosts()
                .iter()
                .position(|h| Arc::ptr_eq(h, picked))
                .expect("member");
            counts[i] += 1;
        }
        counts
    }

    #[test]
    fn empty_group_picks_nothing() {
        let group = HostGroup::new(Vec::new());
        assert!(group.pick(LbPolicy::RoundRobin).is_none());
        assert!(group.pick(LbPolicy::Random).is_none());
    }

    #[test]
    fn weighted_random_stays_in_range_and_prefers_heavy_hosts() {
        let group = HostGroup::new(vec![host(1, 1), host(2, 1000)]);
        let counts = count_picks(&group, LbPolicy::Random, 2000);
        assert_eq!(counts.iter().sum::<usize>(), 2000);
        // 1 in 1001 for the light host; more than half would be absurd.
        assert!(counts[1] > counts[0]);
    }
}
