//! Envoy's premature-reset rule against HTTP/2 "rapid reset" (CVE-2023-44487), applied by
//! the connection manager whatever the codec: a stream that ends before its response
//! started, within its first `MIN_STREAM_LIFETIME_SECONDS` whole seconds, is a premature
//! reset. Once half of `TOTAL_STREAM_COUNT` streams on one connection were premature
//! resets, or, past `TOTAL_STREAM_COUNT` closed streams, at least half of them were, the
//! connection is closed and `downstream_rq_too_many_premature_resets` counted.
//!
//! Envoy reads both numbers from its runtime (`overload.premature_reset_total_stream_count`,
//! `overload.premature_reset_min_stream_lifetime_seconds`); Baton has no runtime layer,
//! so they are Envoy's defaults. The h2 codec's own limit on streams reset before they
//! were accepted sits above this (`codec::builder`), so this rule decides first.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Envoy's default `overload.premature_reset_total_stream_count`.
pub const TOTAL_STREAM_COUNT: u64 = 500;

/// Envoy's default `overload.premature_reset_min_stream_lifetime_seconds`: a stream that
/// lived longer than this many whole seconds is never premature.
pub const MIN_STREAM_LIFETIME_SECONDS: u64 = 1;

/// True when a stream that lived `lived` and ended with (`responded`) or without its
/// response started counts as a premature reset.
pub fn is_premature(responded: bool, lived: Duration) -> bool {
    !responded && lived.as_secs() <= MIN_STREAM_LIFETIME_SECONDS
}

/// True when `premature` premature resets among `closed` closed streams close the
/// connection.
fn too_many(closed: u64, premature: u64) -> bool {
    let floor = if closed < TOTAL_STREAM_COUNT {
        TOTAL_STREAM_COUNT
    } else {
        closed
    };
    premature.saturating_mul(2) >= floor
}

/// The premature-reset accounting of one connection (relaxed atomics: streams of one
/// connection end on any worker thread).
#[derive(Debug, Default)]
pub struct PrematureResets {
    closed: AtomicU64,
    premature: AtomicU64,
    tripped: AtomicBool,
}

impl PrematureResets {
    /// True once the rule closed the connection.
    pub fn tripped(&self) -> bool {
        self.tripped.load(Ordering::Relaxed)
    }

    /// A stream ended; true (once per connection) when the connection must now close
    /// (the caller wakes the connection: `ConnShared::conn_events`).
    pub fn stream_closed(&self, premature: bool) -> bool {
        let closed = self.closed.fetch_add(1, Ordering::Relaxed) + 1;
        if !premature {
            // Only a premature reset can newly cross the threshold.
            return false;
        }
        let premature = self.premature.fetch_add(1, Ordering::Relaxed) + 1;
        if !too_many(closed, premature) || self.tripped.swap(true, Ordering::Relaxed) {
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn premature_means_unanswered_and_young() {
        assert!(is_premature(false, Duration::from_millis(10)));
        assert!(is_premature(false, Duration::from_millis(1999)));
        assert!(!is_premature(false, Duration::from_secs(2)));
        assert!(!is_premature(true, Duration::ZERO));
    }

    #[test]
    fn closes_at_half_of_the_total_then_at_half_of_all_closed() {
        let resets = PrematureResets::default();
        for _ in 0..249 {
            assert!(!resets.stream_closed(true));
        }
        assert!(resets.stream_closed(true), "250 of 500");
        assert!(!resets.stream_closed(true), "only once");

        let mixed = PrematureResets::default();
        for _ in 0..600 {
            assert!(!mixed.stream_closed(false));
        }
        for _ in 0..599 {
            assert!(!mixed.stream_closed(true));
        }
        assert!(mixed.stream_closed(true), "600 of 1200");
    }
}
