//! Cluster circuit breakers (`circuit_breakers.thresholds`, DEFAULT priority): counters
//! shared by all workers, checked with one atomic add and undone when over the limit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use baton_config::model;

/// Live counts and overflow counters of one cluster.
#[derive(Debug, Default)]
pub(crate) struct CircuitBreakers {
    limits: Limits,
    /// Open connections (all hosts, all workers).
    pub(crate) cx_active: Arc<AtomicU64>,
    /// Requests in flight.
    pub(crate) rq_active: Arc<AtomicU64>,
    /// Requests waiting for a connection.
    pub(crate) rq_pending: Arc<AtomicU64>,
    /// `upstream_cx_overflow`
    pub(crate) cx_overflow: AtomicU64,
    /// `upstream_rq_pending_overflow`
    pub(crate) rq_pending_overflow: AtomicU64,
    /// `upstream_rq_overflow` (Envoy counts max_requests overflows here)
    pub(crate) rq_overflow: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Limits {
    max_connections: u64,
    max_pending_requests: u64,
    max_requests: u64,
}

/// A slot taken on one counter; released on drop.
#[derive(Debug)]
pub(crate) struct Slot(Arc<AtomicU64>);

impl Slot {
    /// Gives up the slot without releasing it: the count now belongs to something
    /// else that releases it (an `OpenConnection` or `ActiveRequest`).
    pub(crate) fn into_owned(self) -> Arc<AtomicU64> {
        let counter = self.0.clone();
        std::mem::forget(self);
        counter
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn acquire(counter: &Arc<AtomicU64>, max: u64, overflow: &AtomicU64) -> Option<Slot> {
    let before = counter.fetch_add(1, Ordering::Relaxed);
    if before >= max {
        counter.fetch_sub(1, Ordering::Relaxed);
        overflow.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    Some(Slot(counter.clone()))
}

impl CircuitBreakers {
    pub(crate) fn new(cfg: &model::CircuitBreakers) -> Self {
        Self {
            limits: Limits {
                max_connections: u64::from(cfg.max_connections),
                max_pending_requests: u64::from(cfg.max_pending_requests),
                max_requests: u64::from(cfg.max_requests),
            },
            ..Self::default()
        }
    }

    /// One more request in flight, or None when `max_requests` is reached.
    pub(crate) fn request(&self) -> Option<Slot> {
        acquire(&self.rq_active, self.limits.max_requests, &self.rq_overflow)
    }

    /// One more request waiting for a connection, or None at `max_pending_requests`.
    pub(crate) fn pending(&self) -> Option<Slot> {
        acquire(
            &self.rq_pending,
            self.limits.max_pending_requests,
            &self.rq_pending_overflow,
        )
    }

    /// One more connection, or None at `max_connections`.
    pub(crate) fn connection(&self) -> Option<Slot> {
        acquire(
            &self.cx_active,
            self.limits.max_connections,
            &self.cx_overflow,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_released() {
        let cb = CircuitBreakers::new(&model::CircuitBreakers {
            max_connections: 1,
            max_pending_requests: 1,
            max_requests: 2,
            max_retries: 3,
        });
        let a = cb.request().expect("first");
        let _b = cb.request().expect("second");
        assert!(cb.request().is_none());
        assert_eq!(cb.rq_overflow.load(Ordering::Relaxed), 1);
        drop(a);
        assert!(cb.request().is_some());
        let c = cb.connection().expect("conn");
        assert!(cb.connection().is_none());
        let owned = c.into_owned();
        assert_eq!(owned.load(Ordering::Relaxed), 1);
    }
}
