//! `rate_limit_settings` of an `api_config_source`: a token bucket on the discovery
//! requests one stream sends, as Envoy's. A request that finds the bucket empty waits in
//! order behind the others (`control_plane.pending_requests`), and each time the stream
//! is held back `control_plane.rate_limit_enforced` counts one.

use std::collections::VecDeque;
use std::time::Duration;

use baton_config::model::RateLimitSettings;
use tokio::time::Instant;

/// Tokens refill continuously at `fill_rate` per second up to `max_tokens`; the bucket
/// starts full, as Envoy's.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    max: f64,
    fill_rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(settings: RateLimitSettings, now: Instant) -> Self {
        let max = f64::from(settings.max_tokens.max(1));
        Self {
            max,
            fill_rate: settings.fill_rate,
            tokens: max,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.fill_rate).min(self.max);
        self.last = now;
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next whole token is there.
    pub(crate) fn next_token_at(&mut self, now: Instant) -> Instant {
        self.refill(now);
        let missing = (1.0 - self.tokens).max(0.0);
        now + Duration::from_secs_f64(missing / self.fill_rate)
    }
}

/// Requests held back by the bucket, oldest first.
#[derive(Debug)]
pub(crate) struct Limited<T> {
    pub(crate) bucket: TokenBucket,
    pub(crate) queue: VecDeque<T>,
}

impl<T> Limited<T> {
    pub(crate) fn new(settings: RateLimitSettings) -> Self {
        Self {
            bucket: TokenBucket::new(settings, Instant::now()),
            queue: VecDeque::new(),
        }
    }

    /// Whether `item` may go now; otherwise it is queued. Returns the item to send, and
    /// whether the bucket held something back.
    pub(crate) fn admit(&mut self, item: T) -> (Option<T>, bool) {
        if self.queue.is_empty() && self.bucket.try_take(Instant::now()) {
            return (Some(item), false);
        }
        self.queue.push_back(item);
        (None, true)
    }

    /// Queued items the bucket lets go now; whether something is still held back.
    pub(crate) fn release(&mut self) -> (Vec<T>, bool) {
        let now = Instant::now();
        let mut out = Vec::new();
        while !self.queue.is_empty() && self.bucket.try_take(now) {
            if let Some(item) = self.queue.pop_front() {
                out.push(item);
            }
        }
        let held = !self.queue.is_empty();
        (out, held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_tokens: u32, fill_rate: f64) -> RateLimitSettings {
        RateLimitSettings {
            max_tokens,
            fill_rate,
        }
    }

    #[test]
    fn starts_full_then_refills_at_the_fill_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(settings(2, 4.0), t0);
        assert!(b.try_take(t0));
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0));
        assert_eq!(b.next_token_at(t0), t0 + Duration::from_millis(250));
        assert!(!b.try_take(t0 + Duration::from_millis(200)));
        assert!(b.try_take(t0 + Duration::from_millis(260)));
        // Never above max_tokens, however long it waited.
        let later = t0 + Duration::from_secs(100);
        assert!(b.try_take(later));
        assert!(b.try_take(later));
        assert!(!b.try_take(later));
    }

    #[tokio::test(start_paused = true)]
    async fn queued_requests_keep_their_order() {
        let mut l = Limited::new(settings(1, 10.0));
        assert_eq!(l.admit(1), (Some(1), false));
        assert_eq!(l.admit(2), (None, true));
        assert_eq!(l.admit(3), (None, true));
        assert_eq!(l.release(), (vec![], true));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(l.release(), (vec![2], true));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(l.release(), (vec![3], false));
        // An empty queue and a token: straight through.
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(l.admit(4), (Some(4), false));
    }
}
