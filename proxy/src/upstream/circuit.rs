//! Cluster circuit breakers (`circuit_breakers.thresholds`, DEFAULT priority): counters
//! shared by all workers, checked with one atomic add and undone when over the limit.
//! Each shows in `circuit_breakers.default.<name>_open` while it is at its limit (the
//! gauge is written only when a count reaches or leaves its limit).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use baton_config::model;
use baton_shared_stats::Gauge;

use crate::stats::ClusterStats;

/// Live counts and overflow counters of one cluster.
#[derive(Debug, Default)]
pub(crate) struct CircuitBreakers {
    /// Open connections (all hosts, all workers).
    pub(crate) cx_active: Arc<BreakerCount>,
    /// Requests in flight.
    pub(crate) rq_active: Arc<BreakerCount>,
    /// Requests waiting for a connection.
    pub(crate) rq_pending: Arc<BreakerCount>,
    /// `upstream_cx_overflow`
    pub(crate) cx_overflow: AtomicU64,
    /// `upstream_rq_pending_overflow`
    pub(crate) rq_pending_overflow: AtomicU64,
    /// `upstream_rq_overflow` (Envoy counts max_requests overflows here)
    pub(crate) rq_overflow: AtomicU64,
}

/// One breaker's live count, its limit and its `*_open` gauge.
#[derive(Default)]
pub(crate) struct BreakerCount {
    count: AtomicU64,
    max: u64,
    open: Option<Gauge>,
}

impl std::fmt::Debug for BreakerCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerCount")
            .field("count", &self.count)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl BreakerCount {
    fn new(max: u32, open: Option<&Gauge>) -> Arc<Self> {
        Arc::new(Self {
            count: AtomicU64::new(0),
            max: u64::from(max),
            open: open.cloned(),
        })
    }

    /// The live count.
    pub(crate) fn load(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Gives back one slot taken by [`acquire`].
    pub(crate) fn release(&self) {
        let before = self.count.fetch_sub(1, Ordering::Relaxed);
        if before == self.max {
            self.show_open();
        }
    }

    /// The gauge from the count as it is now (re-read rather than assumed, so that a
    /// slot taken and one given back at the same time leave the gauge right).
    fn show_open(&self) {
        if let Some(open) = &self.open {
            open.set(u64::from(self.load() >= self.max));
        }
    }
}

/// A slot taken on one counter; released on drop.
#[derive(Debug)]
pub(crate) struct Slot(Arc<BreakerCount>);

impl Slot {
    /// Gives up the slot without releasing it: the count now belongs to something
    /// else that releases it (an `OpenConnection` or `ActiveRequest`).
    pub(crate) fn into_owned(self) -> Arc<BreakerCount> {
        let counter = self.0.clone();
        std::mem::forget(self);
        counter
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.release();
    }
}

fn acquire(counter: &Arc<BreakerCount>, overflow: &AtomicU64) -> Option<Slot> {
    let before = counter.count.fetch_add(1, Ordering::Relaxed);
    if before >= counter.max {
        counter.count.fetch_sub(1, Ordering::Relaxed);
        overflow.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    if before + 1 == counter.max {
        counter.show_open();
    }
    Some(Slot(counter.clone()))
}

impl CircuitBreakers {
    /// The breakers of `cfg`, shown in `stats`' `circuit_breakers.default.*` (None: not
    /// shown, in unit tests).
    pub(crate) fn new(cfg: &model::CircuitBreakers, stats: Option<&ClusterStats>) -> Self {
        let gauges = stats.map(|s| &s.circuit_breakers.default);
        Self {
            cx_active: BreakerCount::new(cfg.max_connections, gauges.map(|g| &g.cx_open)),
            rq_active: BreakerCount::new(cfg.max_requests, gauges.map(|g| &g.rq_open)),
            rq_pending: BreakerCount::new(
                cfg.max_pending_requests,
                gauges.map(|g| &g.rq_pending_open),
            ),
            ..Self::default()
        }
    }

    /// One more request in flight, or None when `max_requests` is reached.
    pub(crate) fn request(&self) -> Option<Slot> {
        acquire(&self.rq_active, &self.rq_overflow)
    }

    /// One more request waiting for a connection, or None at `max_pending_requests`.
    pub(crate) fn pending(&self) -> Option<Slot> {
        acquire(&self.rq_pending, &self.rq_pending_overflow)
    }

    /// One more connection, or None at `max_connections`.
    pub(crate) fn connection(&self) -> Option<Slot> {
        acquire(&self.cx_active, &self.cx_overflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_released() {
        let cb = CircuitBreakers::new(
            &model::CircuitBreakers {
                max_connections: 1,
                max_pending_requests: 1,
                max_requests: 2,
                max_retries: 3,
            },
            None,
        );
        let a = cb.request().expect("first");
        let _b = cb.request().expect("second");
        assert!(cb.request().is_none());
        assert_eq!(cb.rq_overflow.load(Ordering::Relaxed), 1);
        drop(a);
        assert!(cb.request().is_some());
        let c = cb.connection().expect("conn");
        assert!(cb.connection().is_none());
        let owned = c.into_owned();
        assert_eq!(owned.load(), 1);
    }

    #[test]
    fn open_gauges_follow_the_limits() {
        let stats = ClusterStats::new(crate::stats::store(), "circuit_unit_test");
        let cb = CircuitBreakers::new(
            &model::CircuitBreakers {
                max_connections: 1,
                max_pending_requests: 2,
                max_requests: 2,
                max_retries: 3,
            },
            Some(&stats),
        );
        let gauges = &stats.circuit_breakers.default;
        let a = cb.request().expect("first");
        assert_eq!(gauges.rq_open.local_value(), 0);
        let b = cb.request().expect("second: at the limit");
        assert_eq!(gauges.rq_open.local_value(), 1);
        assert!(cb.request().is_none());
        assert_eq!(
            gauges.rq_open.local_value(),
            1,
            "an overflow leaves it open"
        );
        drop(a);
        assert_eq!(gauges.rq_open.local_value(), 0);
        drop(b);
        assert_eq!(gauges.rq_open.local_value(), 0);
        // A slot handed to a connection guard closes the gauge when released there.
        let owned = cb.connection().expect("conn").into_owned();
        assert_eq!(gauges.cx_open.local_value(), 1);
        owned.release();
        assert_eq!(gauges.cx_open.local_value(), 0);
        assert_eq!(gauges.rq_pending_open.local_value(), 0);
    }
}
