//! LEAST_REQUEST: power-of-N choices on active requests. With equal weights, sample
//! `choice_count` hosts and keep the one with the fewest requests in flight (every host
//! when `choice_count` covers them all). With unequal weights, the samples are weighted
//! and compared by `weight / (active + 1)`, Envoy's weighted variant with bias 1.0.

use super::HostGroup;

pub(super) fn pick(group: &HostGroup, choice_count: u32) -> usize {
    let n = group.hosts.len();
    let choices = (choice_count.max(1) as usize).min(n);
    let score = |i: usize| {
        let host = &group.hosts[i];
        // Higher is better. Cross-multiplied comparison would avoid floats, but f64 is
        // exact enough for weights (u32) and request counts.
        f64::from(host.weight) / (host.active_requests() as f64 + 1.0)
    };
    if choices == n {
        // Scan everyone, starting at a rotating position so ties spread out.
        let start = group.next_rr();
        let mut best = start % n;
        let mut best_score = score(best);
        for k in 1..n {
            let i = (start + k) % n;
            let s = score(i);
            if s > best_score {
                best = i;
                best_score = s;
            }
        }
        return best;
    }
    let mut best = group.random_index();
    let mut best_score = score(best);
    for _ in 1..choices {
        let i = group.random_index();
        let s = score(i);
        if s > best_score {
            best = i;
            best_score = s;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::super::tests::{count_picks, host};
    use super::*;
    use baton_config::model::LbPolicy;

    #[test]
    fn picks_the_host_with_fewest_active_requests() {
        let group = HostGroup::new(vec![host(1, 1), host(2, 1), host(3, 1)]);
        group.hosts()[0].rq_active.store(5, Ordering::Relaxed);
        group.hosts()[1].rq_active.store(1, Ordering::Relaxed);
        group.hosts()[2].rq_active.store(3, Ordering::Relaxed);
        let policy = LbPolicy::LeastRequest { choice_count: 3 };
        assert_eq!(count_picks(&group, policy, 50), vec![0, 50, 0]);
    }

    #[test]
    fn two_choices_over_two_hosts_is_deterministic() {
        let group = HostGroup::new(vec![host(1, 1), host(2, 1)]);
        group.hosts()[1].rq_active.store(2, Ordering::Relaxed);
        let policy = LbPolicy::LeastRequest { choice_count: 2 };
        assert_eq!(count_picks(&group, policy, 20), vec![20, 0]);
        // Ties rotate.
        group.hosts()[1].rq_active.store(0, Ordering::Relaxed);
        assert_eq!(count_picks(&group, policy, 20), vec![10, 10]);
    }

    #[test]
    fn weighted_variant_divides_weight_by_load() {
        let group = HostGroup::new(vec![host(1, 4), host(2, 1)]);
        // 4 / (3 + 1) = 1.0 vs 1 / (0 + 1) = 1.0: tie; at 4 active the light host wins.
        group.hosts()[0].rq_active.store(4, Ordering::Relaxed);
        let policy = LbPolicy::LeastRequest { choice_count: 2 };
        assert_eq!(count_picks(&group, policy, 10), vec![0, 10]);
    }
}
