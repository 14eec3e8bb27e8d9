//! ROUND_ROBIN: plain rotation for equal weights; for unequal weights a precomputed
//! smooth weighted round-robin sequence (nginx's algorithm: interleaves hosts instead
//! of sending bursts) walked by an atomic counter.

use super::HostGroup;

/// Longest schedule we precompute; larger weight sums are scaled down proportionally.
const MAX_SCHEDULE_LEN: u64 = 4096;

pub(super) fn pick(group: &HostGroup) -> usize {
    let n = group.next_rr();
    if group.rr_schedule.is_empty() {
        n % group.hosts.len()
    } else {
        group.rr_schedule[n % group.rr_schedule.len()] as usize
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The smooth weighted round-robin order of indices for `weights` over one full cycle
/// (every index appears `weight / gcd` times). Zero weights count as 1.
pub(crate) fn smooth_schedule(weights: &[u64]) -> Vec<u32> {
    let mut weights: Vec<u64> = weights.iter().map(|w| (*w).max(1)).collect();
    let divisor = weights.iter().fold(0, |g, w| gcd(g, *w)).max(1);
    weights.iter_mut().for_each(|w| *w /= divisor);
    let mut total: u64 = weights.iter().sum();
    if total > MAX_SCHEDULE_LEN {
        weights
            .iter_mut()
            .for_each(|w| *w = (*w * MAX_SCHEDULE_LEN / total).max(1));
        total = weights.iter().sum();
    }
    let total_signed = total as i64;
    let mut current = vec![0i64; weights.len()];
    let mut schedule = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            current[i] += *w as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total_signed;
        schedule.push(best as u32);
    }
    schedule
}

#[cfg(test)]
mod tests {
    use super::super::tests::{count_picks, host};
    use super::*;
    use baton_config::model::LbPolicy;

    #[test]
    fn smooth_schedule_interleaves() {
        assert_eq!(smooth_schedule(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_schedule(&[2, 4]), vec![1, 0, 1]);
    }

    #[test]
    fn equal_weights_rotate_evenly() {
        let group = HostGroup::new(vec![host(1, 1), host(2, 1), host(3, 1)]);
        assert_eq!(
            count_picks(&group, LbPolicy::RoundRobin, 300),
            vec![100, 100, 100]
        );
    }

    #[test]
    fn weights_split_exactly_per_cycle() {
        let group = HostGroup::new(vec![host(1, 1), host(2, 3)]);
        assert_eq!(
            count_picks(&group, LbPolicy::RoundRobin, 400),
            vec![100, 300]
        );
    }

    #[test]
    fn huge_weights_are_scaled() {
        let schedule = smooth_schedule(&[1_000_000, 3_000_000, 1]);
        assert!(schedule.len() as u64 <= MAX_SCHEDULE_LEN + 3);
        assert!(schedule.contains(&2));
    }
}
