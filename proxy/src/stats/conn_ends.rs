//! How connections end and when circuit breakers are open, in Envoy's names: the
//! `*_cx_destroy_{local,remote}` / `*_active_rq` counters of connection managers and
//! clusters, and a cluster's `circuit_breakers.{default,high}.*_open` gauges.

use baton_shared_stats::{Counter, Gauge};

use super::{Scope, ScopeBlock};

/// How connections of one kind ended: closed by this side (`local`) or the peer
/// (`remote`), and whether requests were in flight then (`active_rq`, and which side).
#[derive(Clone)]
pub struct DestroyCounters {
    /// `*_destroy_local`
    pub local: Counter,
    /// `*_destroy_remote`
    pub remote: Counter,
    /// `downstream_cx_destroy_active_rq` / `upstream_cx_destroy_with_active_rq`
    pub active_rq: Counter,
    /// `*_destroy_local_active_rq` / `*_destroy_local_with_active_rq`
    pub local_active_rq: Counter,
    /// `*_destroy_remote_active_rq` / `*_destroy_remote_with_active_rq`
    pub remote_active_rq: Counter,
}

impl DestroyCounters {
    /// The connection manager's `downstream_cx_destroy_*` names under `s`.
    pub fn downstream(s: &Scope) -> Self {
        Self {
            local: s.counter("downstream_cx_destroy_local"),
            remote: s.counter("downstream_cx_destroy_remote"),
            active_rq: s.counter("downstream_cx_destroy_active_rq"),
            local_active_rq: s.counter("downstream_cx_destroy_local_active_rq"),
            remote_active_rq: s.counter("downstream_cx_destroy_remote_active_rq"),
        }
    }

    /// One connection ended (`downstream_cx_destroy` / `upstream_cx_destroy` itself is
    /// counted by the caller).
    pub fn record(&self, local: bool, active_rq: bool) {
        if local {
            self.local.inc();
        } else {
            self.remote.inc();
        }
        if active_rq {
            self.active_rq.inc();
            if local {
                self.local_active_rq.inc();
            } else {
                self.remote_active_rq.inc();
            }
        }
    }
}

/// A cluster's `circuit_breakers.<priority>.*` gauges: 1 while that breaker is at its
/// limit (Baton's breakers have the DEFAULT priority only, so `high.*` stay 0).
pub struct CircuitBreakerGauges {
    /// `circuit_breakers.default.*`
    pub default: BreakerPriorityGauges,
    /// `circuit_breakers.high.*` (always 0).
    pub(super) _high: BreakerPriorityGauges,
}

/// One priority's `cx_open`, `cx_pool_open`, `rq_open`, `rq_pending_open`,
/// `rq_retry_open`.
pub struct BreakerPriorityGauges {
    /// `cx_open`: connections at `max_connections`.
    pub cx_open: Gauge,
    /// `cx_pool_open`: connection pools at `max_connection_pools` (not limited: 0).
    pub cx_pool_open: Gauge,
    /// `rq_open`: requests at `max_requests`.
    pub rq_open: Gauge,
    /// `rq_pending_open`: pending requests at `max_pending_requests`.
    pub rq_pending_open: Gauge,
    /// `rq_retry_open`: retries at `max_retries`.
    pub rq_retry_open: Gauge,
}

impl BreakerPriorityGauges {
    /// `names`: the five full names in field order (literals: no formatting per cluster).
    pub(super) fn new(s: &mut ScopeBlock<'_>, names: [&str; 5]) -> Self {
        let [cx, pool, rq, pending, retry] = names;
        Self {
            cx_open: s.gauge(cx),
            cx_pool_open: s.gauge(pool),
            rq_open: s.gauge(rq),
            rq_pending_open: s.gauge(pending),
            rq_retry_open: s.gauge(retry),
        }
    }
}
