//! Envoy's jittered exponential backoff for control-plane reconnects: the n-th retry
//! waits a random time below `base * (2^n - 1)`, capped at `max` (Envoy's gRPC mux uses
//! 500 ms and 30 s). A connection that delivered a response resets it.

use std::time::Duration;

/// Reconnect delays.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    retry: u32,
}

/// Envoy's `RETRY_INITIAL_DELAY_MS`.
pub(crate) const BASE: Duration = Duration::from_millis(500);
/// Envoy's `RETRY_MAX_DELAY_MS`.
pub(crate) const MAX: Duration = Duration::from_secs(30);

impl Default for Backoff {
    fn default() -> Self {
        Self::new(BASE, MAX)
    }
}

impl Backoff {
    pub(crate) fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            retry: 1,
        }
    }

    /// The next delay.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let multiplier = (1u64 << self.retry.min(32)) - 1;
        let ceiling = self
            .base
            .saturating_mul(u32::try_from(multiplier).unwrap_or(u32::MAX));
        if ceiling <= self.max {
            self.retry += 1;
        }
        let ceiling_ms = u64::try_from(ceiling.min(self.max).as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        Duration::from_millis(rand::random_range(0..ceiling_ms))
    }

    /// A connection worked: start over.
    pub(crate) fn reset(&mut self) {
        self.retry = 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_stay_under_the_cap() {
        let mut b = Backoff::default();
        for _ in 0..3 {
            assert!(b.next_delay() < BASE);
            b.reset();
        }
        let delays: Vec<Duration> = (0..20).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d < MAX));
        assert!(delays[..2].iter().all(|d| *d < Duration::from_millis(1500)));
    }
}
