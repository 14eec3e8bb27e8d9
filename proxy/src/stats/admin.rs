//! `listener.admin.*`: the stats of Envoy's admin listener, which Envoy keeps as for
//! any listener (with the admin connection manager's `http.admin.*` status classes
//! under it) and counts on its main thread.

use baton_shared_stats::{Counter, Gauge, Histogram, StatsStore};

use super::{ListenerHttpStats, Scope};

/// `listener.admin.*`.
#[derive(Clone)]
pub struct AdminListenerStats {
    /// `downstream_cx_total`
    pub downstream_cx_total: Counter,
    /// `downstream_cx_active`
    pub downstream_cx_active: Gauge,
    /// `downstream_cx_destroy`
    pub downstream_cx_destroy: Counter,
    /// `main_thread.downstream_cx_total`
    pub main_thread_cx_total: Counter,
    /// `main_thread.downstream_cx_active`
    pub main_thread_cx_active: Gauge,
    /// `downstream_cx_length_ms`
    pub downstream_cx_length_ms: Histogram,
    /// `connections_accepted_per_socket_event`: one per accept here.
    pub connections_accepted_per_socket_event: Histogram,
    /// `http.admin.downstream_rq_<class>xx` and `downstream_rq_completed` under it.
    pub http: ListenerHttpStats,
    /// Names Envoy has for the admin listener that nothing moves in Baton (no
    /// listener filters, filter chains, connection limits or TLS on admin).
    _zero_counters: Vec<Counter>,
    _zero_gauge: Gauge,
    /// Keeps `listener.admin.*` shown after a hot restart's parent exits.
    _scope_lease: std::sync::Arc<baton_shared_stats::ScopeLease>,
}

impl AdminListenerStats {
    /// Handles under `listener.admin.`.
    pub fn new(store: &StatsStore) -> Self {
        let s = Scope::new(store, "listener.admin.");
        Self {
            _scope_lease: std::sync::Arc::new(store.lease_scope("listener.admin.")),
            downstream_cx_total: s.counter("downstream_cx_total"),
            downstream_cx_active: s.gauge("downstream_cx_active"),
            downstream_cx_destroy: s.counter("downstream_cx_destroy"),
            main_thread_cx_total: s.counter("main_thread.downstream_cx_total"),
            main_thread_cx_active: s.gauge("main_thread.downstream_cx_active"),
            downstream_cx_length_ms: s.histogram("downstream_cx_length_ms"),
            connections_accepted_per_socket_event: s
                .histogram("connections_accepted_per_socket_event"),
            http: ListenerHttpStats::new(store, "listener.admin.", "admin"),
            _zero_counters: [
                "downstream_cx_overflow",
                "downstream_cx_overload_reject",
                "downstream_cx_transport_socket_connect_timeout",
                "downstream_global_cx_overflow",
                "downstream_listener_filter_error",
                "downstream_listener_filter_remote_close",
                "downstream_pre_cx_timeout",
                "no_filter_chain_match",
            ]
            .iter()
            .map(|n| s.counter(n))
            .collect(),
            _zero_gauge: s.gauge("downstream_pre_cx_active"),
        }
    }

    /// An admin connection was accepted.
    pub fn opened(&self) {
        self.downstream_cx_total.inc();
        self.downstream_cx_active.inc();
        self.main_thread_cx_total.inc();
        self.main_thread_cx_active.inc();
        self.connections_accepted_per_socket_event.record(1);
    }

    /// An admin connection that lasted `lasted` ended.
    pub fn closed(&self, lasted: std::time::Duration) {
        self.downstream_cx_active.dec();
        self.main_thread_cx_active.dec();
        self.downstream_cx_destroy.inc();
        super::record_ms(&self.downstream_cx_length_ms, lasted);
    }
}

impl std::fmt::Debug for AdminListenerStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminListenerStats").finish_non_exhaustive()
    }
}
