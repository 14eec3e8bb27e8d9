//! When a DNS name is resolved again: after a success, `dns_refresh_rate`, or with
//! `respect_dns_ttl` the answer's TTL (floored by `dns_min_refresh_rate`; a TTL of 0, an
//! empty answer or one from `/etc/hosts` keeps `dns_refresh_rate`), plus a random part of
//! `dns_jitter`; after a failure, `dns_refresh_rate` again, or the jittered exponential
//! backoff of `dns_failure_refresh_rate`. These are Envoy's rules.

use std::time::Duration;

use baton_config::model::{self, DnsFailureRefreshRate};

/// Shortest wait between two resolutions of one name, so that a zero jittered backoff
/// cannot spin.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// The wait after a successful resolution, before jitter. `ttl` is the answer's TTL (the
/// smallest of the addresses kept), None when the answer had no addresses.
pub(crate) fn after_success(cluster: &model::Cluster, ttl: Option<Duration>) -> Duration {
    match ttl {
        Some(ttl) if cluster.respect_dns_ttl && !ttl.is_zero() => {
            ttl.max(cluster.dns.min_refresh_rate)
        }
        _ => cluster.dns_refresh_rate,
    }
}

/// A uniformly random extra wait below `jitter` (zero when `jitter` is below 1 ms).
pub(crate) fn jitter(jitter: Duration) -> Duration {
    let bound = jitter.as_millis().min(u128::from(u64::MAX)) as u64;
    if bound == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(rand::random_range(0..bound))
}

/// The wait after failed resolutions of one name: fixed at `dns_refresh_rate`, or
/// Envoy's jittered exponential backoff between `base_interval` and `max_interval`.
#[derive(Debug, Clone)]
pub(crate) enum FailureBackoff {
    /// No `dns_failure_refresh_rate`: retry after `dns_refresh_rate`.
    Fixed(Duration),
    /// `dns_failure_refresh_rate`.
    Exponential {
        /// The configured bounds.
        rate: DnsFailureRefreshRate,
        /// Upper bound of the next wait; doubles after each failure up to `max_interval`.
        next: Duration,
    },
}

impl FailureBackoff {
    /// The backoff of `cluster`, reset.
    pub(crate) fn new(cluster: &model::Cluster) -> Self {
        match cluster.dns.failure_refresh_rate {
            Some(rate) => Self::Exponential {
                rate,
                next: rate.base_interval,
            },
            None => Self::Fixed(cluster.dns_refresh_rate),
        }
    }

    /// The wait after one more failure, given a random draw in `0..bound` (ms).
    pub(crate) fn next_with(&mut self, draw: impl FnOnce(u64) -> u64) -> Duration {
        match self {
            Self::Fixed(every) => *every,
            Self::Exponential { rate, next } => {
                let bound = next.as_millis().clamp(1, u128::from(u64::MAX)) as u64;
                *next = if *next > rate.max_interval / 2 {
                    rate.max_interval
                } else {
                    *next * 2
                };
                Duration::from_millis(draw(bound))
                    .min(rate.max_interval)
                    .max(MIN_INTERVAL)
            }
        }
    }

    /// The wait after one more failure.
    pub(crate) fn next(&mut self) -> Duration {
        self.next_with(|bound| rand::random_range(0..bound))
    }

    /// A success: the next failure starts from `base_interval` again.
    pub(crate) fn reset(&mut self) {
        if let Self::Exponential { rate, next } = self {
            *next = rate.base_interval;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::test_support::cluster;

    const SECOND: Duration = Duration::from_secs(1);

    fn dns_cluster(respect_ttl: bool, refresh: Duration, min: Duration) -> model::Cluster {
        let mut c = cluster("dns", Vec::new());
        c.respect_dns_ttl = respect_ttl;
        c.dns_refresh_rate = refresh;
        c.dns.min_refresh_rate = min;
        c
    }

    #[test]
    fn ttl_is_used_only_when_respected() {
        let hour = 3600 * SECOND;
        let respect = dns_cluster(true, hour, Duration::ZERO);
        assert_eq!(after_success(&respect, Some(30 * SECOND)), 30 * SECOND);
        // A TTL longer than the refresh rate is still the TTL.
        assert_eq!(after_success(&respect, Some(2 * hour)), 2 * hour);
        let ignore = dns_cluster(false, hour, Duration::ZERO);
        assert_eq!(after_success(&ignore, Some(30 * SECOND)), hour);
    }

    #[test]
    fn min_refresh_rate_floors_the_ttl() {
        let c = dns_cluster(true, 3600 * SECOND, 5 * SECOND);
        assert_eq!(after_success(&c, Some(SECOND)), 5 * SECOND);
        assert_eq!(after_success(&c, Some(5 * SECOND)), 5 * SECOND);
        assert_eq!(after_success(&c, Some(60 * SECOND)), 60 * SECOND);
        // No floor unless configured: a 1 s TTL means 1 s.
        let c = dns_cluster(true, 3600 * SECOND, Duration::ZERO);
        assert_eq!(after_success(&c, Some(SECOND)), SECOND);
    }

    #[test]
    fn zero_ttl_and_empty_answers_keep_the_refresh_rate() {
        let c = dns_cluster(true, 7 * SECOND, 2 * SECOND);
        assert_eq!(after_success(&c, Some(Duration::ZERO)), 7 * SECOND);
        assert_eq!(after_success(&c, None), 7 * SECOND);
    }

    #[test]
    fn jitter_stays_below_its_bound() {
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
        assert_eq!(jitter(Duration::from_micros(900)), Duration::ZERO);
        for _ in 0..100 {
            assert!(jitter(Duration::from_millis(50)) < Duration::from_millis(50));
        }
    }

    #[test]
    fn failures_retry_at_the_refresh_rate_without_a_failure_rate() {
        let c = dns_cluster(true, 7 * SECOND, Duration::ZERO);
        let mut backoff = FailureBackoff::new(&c);
        assert_eq!(backoff.next(), 7 * SECOND);
        assert_eq!(backoff.next(), 7 * SECOND);
    }

    #[test]
    fn failure_backoff_doubles_up_to_max_and_resets() {
        let mut c = dns_cluster(true, 7 * SECOND, Duration::ZERO);
        c.dns.failure_refresh_rate = Some(DnsFailureRefreshRate {
            base_interval: SECOND,
            max_interval: 5 * SECOND,
        });
        let mut backoff = FailureBackoff::new(&c);
        // With the largest draw the waits show the bounds: 1, 2, 4, then capped at 5 s.
        let largest = |bound: u64| bound - 1;
        let waits: Vec<Duration> = (0..5).map(|_| backoff.next_with(largest)).collect();
        assert_eq!(
            waits,
            [999, 1999, 3999, 4999, 4999].map(Duration::from_millis)
        );
        // A zero draw is floored so a failing name cannot spin.
        assert_eq!(backoff.next_with(|_| 0), MIN_INTERVAL);
        backoff.reset();
        assert_eq!(backoff.next_with(largest), Duration::from_millis(999));
        for _ in 0..100 {
            assert!(backoff.next() <= 5 * SECOND);
        }
    }
}
