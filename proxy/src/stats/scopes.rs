//! Stat bundles per component, with Envoy's names: `listener.<address>.*`,
//! `http.<stat_prefix>.*`, `cluster.<name>.*`, `tcp.<stat_prefix>.*`,
//! `cluster_manager.*`, `listener_manager.*`.

use std::sync::{Arc, OnceLock};

use baton_shared_stats::{Counter, Gauge, Histogram, ScopeLease, StatsStore};

use super::codec::Http2CodecStats;
use super::codes::{OriginStats, ResponseCodeStats};
use super::conn_ends::{BreakerPriorityGauges, CircuitBreakerGauges, DestroyCounters};
use super::{BlockShape, EdsStats, Scope, StatusClassCounters};

/// `listener.<address>.*` (the prefix comes from the listener model, e.g.
/// `listener.127.0.0.1_10000.`).
#[derive(Clone)]
pub struct ListenerStats {
    /// `downstream_cx_total`
    pub downstream_cx_total: Counter,
    /// `downstream_cx_active`
    pub downstream_cx_active: Gauge,
    /// `downstream_cx_destroy`
    pub downstream_cx_destroy: Counter,
    /// `no_filter_chain_match`
    pub no_filter_chain_match: Counter,
    /// `downstream_global_cx_overflow`: refused by the global connection limit.
    pub downstream_global_cx_overflow: Counter,
    /// `downstream_pre_cx_active`: connections in listener filters.
    pub downstream_pre_cx_active: Gauge,
    /// `downstream_pre_cx_timeout`: closed by `listener_filters_timeout`.
    pub downstream_pre_cx_timeout: Counter,
    /// `downstream_cx_transport_socket_connect_timeout`: TLS handshakes cut off by
    /// `transport_socket_connect_timeout`.
    pub downstream_cx_transport_socket_connect_timeout: Counter,
    /// `downstream_cx_length_ms`
    pub downstream_cx_length_ms: Histogram,
    /// `downstream_listener_filter_remote_close`: the peer closed while a listener
    /// filter waited for its first bytes.
    pub downstream_listener_filter_remote_close: Counter,
    /// `downstream_listener_filter_error`: a socket error while a listener filter read.
    pub downstream_listener_filter_error: Counter,
    /// Keeps `listener.<address>.*` in `/stats` while anything uses these stats: after the last
    /// holder goes (a removed listener, its drain over) they leave it, as Envoy frees them.
    _scope_lease: Arc<ScopeLease>,
    /// The prefix, for the per-worker stats ([`ListenerStats::worker`]).
    prefix: String,
}

/// `listener.<address>.worker_<n>.*`: one worker's connections of a listener (Envoy's
/// per-handler stats).
pub struct WorkerListenerStats {
    /// `downstream_cx_total`
    pub downstream_cx_total: Counter,
    /// `downstream_cx_active`
    pub downstream_cx_active: Gauge,
}

impl ListenerStats {
    /// The stats of worker `index` under this listener's prefix.
    pub fn worker(&self, index: usize) -> WorkerListenerStats {
        let s = Scope::new(
            crate::stats::store(),
            format!("{}worker_{index}.", self.prefix),
        );
        WorkerListenerStats {
            downstream_cx_total: s.counter("downstream_cx_total"),
            downstream_cx_active: s.gauge("downstream_cx_active"),
        }
    }

    /// Handles under `prefix`.
    pub fn new(store: &StatsStore, prefix: &str) -> Self {
        let s = Scope::new(store, prefix);
        Self {
            prefix: prefix.to_string(),
            downstream_cx_total: s.counter("downstream_cx_total"),
            downstream_cx_active: s.gauge("downstream_cx_active"),
            downstream_cx_destroy: s.counter("downstream_cx_destroy"),
            no_filter_chain_match: s.counter("no_filter_chain_match"),
            downstream_global_cx_overflow: s.counter("downstream_global_cx_overflow"),
            downstream_pre_cx_active: s.gauge("downstream_pre_cx_active"),
            downstream_pre_cx_timeout: s.counter("downstream_pre_cx_timeout"),
            downstream_cx_transport_socket_connect_timeout: s
                .counter("downstream_cx_transport_socket_connect_timeout"),
            downstream_cx_length_ms: s.histogram("downstream_cx_length_ms"),
            downstream_listener_filter_remote_close: s
                .counter("downstream_listener_filter_remote_close"),
            downstream_listener_filter_error: s.counter("downstream_listener_filter_error"),
            _scope_lease: Arc::new(store.lease_scope(prefix)),
        }
    }
}

/// `http.<stat_prefix>.*` of one HTTP connection manager.
#[derive(Clone)]
pub struct HttpConnManagerStats {
    /// Keeps `http.<stat_prefix>.*` in `/stats` while anything uses these stats: after the last
    /// holder goes (a removed listener's connection manager) they leave it, as Envoy frees them.
    _scope_lease: Arc<ScopeLease>,
    /// `downstream_cx_total`
    pub downstream_cx_total: Counter,
    /// `downstream_cx_active`
    pub downstream_cx_active: Gauge,
    /// `downstream_cx_http1_total`
    pub downstream_cx_http1_total: Counter,
    /// `downstream_cx_http2_total`
    pub downstream_cx_http2_total: Counter,
    /// `downstream_cx_http1_active`
    pub downstream_cx_http1_active: Gauge,
    /// `downstream_cx_ssl_total`: connections over TLS.
    pub downstream_cx_ssl_total: Counter,
    /// `downstream_cx_ssl_active`
    pub downstream_cx_ssl_active: Gauge,
    /// `downstream_cx_http2_active`
    pub downstream_cx_http2_active: Gauge,
    /// `downstream_cx_destroy`
    pub downstream_cx_destroy: Counter,
    /// `downstream_cx_destroy_local`, `_remote`, `_active_rq`, `_local_active_rq`,
    /// `_remote_active_rq`: who closed the connection, and whether requests were in flight.
    pub downstream_cx_destroy_by: DestroyCounters,
    /// `downstream_cx_protocol_error`
    pub downstream_cx_protocol_error: Counter,
    /// `downstream_cx_idle_timeout`
    pub downstream_cx_idle_timeout: Counter,
    /// `downstream_cx_drain_close`
    pub downstream_cx_drain_close: Counter,
    /// `downstream_cx_length_ms`
    pub downstream_cx_length_ms: Histogram,
    /// `downstream_cx_max_duration_reached`
    pub downstream_cx_max_duration_reached: Counter,
    /// `downstream_cx_max_requests_reached`
    pub downstream_cx_max_requests_reached: Counter,
    /// `downstream_cx_upgrades_total`
    pub downstream_cx_upgrades_total: Counter,
    /// `downstream_cx_upgrades_active`
    pub downstream_cx_upgrades_active: Gauge,
    /// `downstream_cx_rx_bytes_total`
    pub downstream_cx_rx_bytes_total: Counter,
    /// `downstream_cx_tx_bytes_total`
    pub downstream_cx_tx_bytes_total: Counter,
    /// `downstream_rq_response_before_rq_complete`
    pub downstream_rq_response_before_rq_complete: Counter,
    /// `downstream_rq_total`
    pub downstream_rq_total: Counter,
    /// `downstream_rq_http1_total`
    pub downstream_rq_http1_total: Counter,
    /// `downstream_rq_http2_total`
    pub downstream_rq_http2_total: Counter,
    /// `downstream_rq_active`
    pub downstream_rq_active: Gauge,
    /// `downstream_rq_completed`
    pub downstream_rq_completed: Counter,
    /// `downstream_rq_1xx` .. `downstream_rq_5xx`
    pub downstream_rq_xx: StatusClassCounters,
    /// `downstream_rq_time`
    pub downstream_rq_time: Histogram,
    /// `downstream_rq_timeout` (request_timeout)
    pub downstream_rq_timeout: Counter,
    /// `downstream_rq_idle_timeout` (stream_idle_timeout)
    pub downstream_rq_idle_timeout: Counter,
    /// `downstream_rq_max_duration_reached` (`max_stream_duration`, the connection manager's or a route's)
    pub downstream_rq_max_duration_reached: Counter,
    /// `downstream_rq_header_timeout` (request_headers_timeout)
    pub downstream_rq_header_timeout: Counter,
    /// `downstream_rq_rx_reset`
    pub downstream_rq_rx_reset: Counter,
    /// `downstream_rq_tx_reset`
    pub downstream_rq_tx_reset: Counter,
    /// `downstream_rq_too_many_premature_resets` (connections closed by the rapid-reset rule)
    pub downstream_rq_too_many_premature_resets: Counter,
    /// `downstream_rq_ws_on_non_ws_route`
    pub downstream_rq_ws_on_non_ws_route: Counter,
    /// `downstream_rq_failed_path_normalization`
    pub downstream_rq_failed_path_normalization: Counter,
    /// `downstream_rq_redirected_with_normalized_path`
    pub downstream_rq_redirected_with_normalized_path: Counter,
    /// `no_route`
    pub no_route: Counter,
    /// `no_cluster`
    pub no_cluster: Counter,
    /// `rq_redirect`
    pub rq_redirect: Counter,
    /// `rq_direct_response`
    pub rq_direct_response: Counter,
    /// `rq_total` (router)
    pub rq_total: Counter,
    /// `tracing.*`: the per-request tracing decisions (all 0 without HCM `tracing`);
    /// admin's connection manager has none, as in Envoy.
    pub tracing: Option<TracingCounters>,
}

/// `http.<stat_prefix>.tracing.*`, one counter per trace reason.
#[derive(Clone)]
pub struct TracingCounters {
    /// `tracing.random_sampling`
    pub random_sampling: Counter,
    /// `tracing.service_forced` (`x-envoy-force-trace`)
    pub service_forced: Counter,
    /// `tracing.client_enabled` (`x-client-trace-id`)
    pub client_enabled: Counter,
    /// `tracing.not_traceable`
    pub not_traceable: Counter,
    /// `tracing.health_check` (no health check filter yet: stays 0)
    pub health_check: Counter,
}

impl HttpConnManagerStats {
    /// Handles under `http.<stat_prefix>.`.
    pub fn new(store: &StatsStore, stat_prefix: &str) -> Self {
        Self::build(store, stat_prefix, true)
    }

    /// Admin's own connection manager (`http.admin.`): no `tracing.*`.
    pub fn admin(store: &StatsStore) -> Self {
        Self::build(store, "admin", false)
    }

    fn build(store: &StatsStore, stat_prefix: &str, tracing: bool) -> Self {
        let prefix = format!("http.{stat_prefix}.");
        let s = Scope::new(store, prefix.as_str());
        Self {
            _scope_lease: Arc::new(store.lease_scope(&prefix)),
            downstream_cx_total: s.counter("downstream_cx_total"),
            downstream_cx_active: s.gauge("downstream_cx_active"),
            downstream_cx_http1_total: s.counter("downstream_cx_http1_total"),
            downstream_cx_http2_total: s.counter("downstream_cx_http2_total"),
            downstream_cx_http1_active: s.gauge("downstream_cx_http1_active"),
            downstream_cx_ssl_total: s.counter("downstream_cx_ssl_total"),
            downstream_cx_ssl_active: s.gauge("downstream_cx_ssl_active"),
            downstream_cx_http2_active: s.gauge("downstream_cx_http2_active"),
            downstream_cx_destroy: s.counter("downstream_cx_destroy"),
            downstream_cx_destroy_by: DestroyCounters::downstream(&s),
            downstream_cx_protocol_error: s.counter("downstream_cx_protocol_error"),
            downstream_cx_idle_timeout: s.counter("downstream_cx_idle_timeout"),
            downstream_cx_drain_close: s.counter("downstream_cx_drain_close"),
            downstream_cx_length_ms: s.histogram("downstream_cx_length_ms"),
            downstream_cx_max_duration_reached: s.counter("downstream_cx_max_duration_reached"),
            downstream_cx_max_requests_reached: s.counter("downstream_cx_max_requests_reached"),
            downstream_cx_upgrades_total: s.counter("downstream_cx_upgrades_total"),
            downstream_cx_upgrades_active: s.gauge("downstream_cx_upgrades_active"),
            downstream_cx_rx_bytes_total: s.counter("downstream_cx_rx_bytes_total"),
            downstream_cx_tx_bytes_total: s.counter("downstream_cx_tx_bytes_total"),
            downstream_rq_response_before_rq_complete: s
                .counter("downstream_rq_response_before_rq_complete"),
            downstream_rq_total: s.counter("downstream_rq_total"),
            downstream_rq_http1_total: s.counter("downstream_rq_http1_total"),
            downstream_rq_http2_total: s.counter("downstream_rq_http2_total"),
            downstream_rq_active: s.gauge("downstream_rq_active"),
            downstream_rq_completed: s.counter("downstream_rq_completed"),
            downstream_rq_xx: StatusClassCounters::new(&s, "downstream_rq"),
            downstream_rq_time: s.histogram("downstream_rq_time"),
            downstream_rq_timeout: s.counter("downstream_rq_timeout"),
            downstream_rq_idle_timeout: s.counter("downstream_rq_idle_timeout"),
            downstream_rq_max_duration_reached: s.counter("downstream_rq_max_duration_reached"),
            downstream_rq_header_timeout: s.counter("downstream_rq_header_timeout"),
            downstream_rq_rx_reset: s.counter("downstream_rq_rx_reset"),
            downstream_rq_tx_reset: s.counter("downstream_rq_tx_reset"),
            downstream_rq_too_many_premature_resets: s
                .counter("downstream_rq_too_many_premature_resets"),
            downstream_rq_ws_on_non_ws_route: s.counter("downstream_rq_ws_on_non_ws_route"),
            downstream_rq_failed_path_normalization: s
                .counter("downstream_rq_failed_path_normalization"),
            downstream_rq_redirected_with_normalized_path: s
                .counter("downstream_rq_redirected_with_normalized_path"),
            no_route: s.counter("no_route"),
            no_cluster: s.counter("no_cluster"),
            rq_redirect: s.counter("rq_redirect"),
            rq_direct_response: s.counter("rq_direct_response"),
            rq_total: s.counter("rq_total"),
            tracing: tracing.then(|| TracingCounters {
                random_sampling: s.counter("tracing.random_sampling"),
                service_forced: s.counter("tracing.service_forced"),
                client_enabled: s.counter("tracing.client_enabled"),
                not_traceable: s.counter("tracing.not_traceable"),
                health_check: s.counter("tracing.health_check"),
            }),
        }
    }
}

/// `listener.<address>.http.<stat_prefix>.*`: the per-listener view of a connection
/// manager's responses, as Envoy keeps it.
#[derive(Clone)]
pub struct ListenerHttpStats {
    /// `downstream_rq_1xx` .. `downstream_rq_5xx`
    pub downstream_rq_xx: StatusClassCounters,
    /// `downstream_rq_completed`
    pub downstream_rq_completed: Counter,
}

impl ListenerHttpStats {
    /// Handles under `<listener_prefix>http.<stat_prefix>.`; `listener_prefix` is the
    /// listener model's (`listener.127.0.0.1_10000.`).
    pub fn new(store: &StatsStore, listener_prefix: &str, stat_prefix: &str) -> Self {
        let s = Scope::new(store, format!("{listener_prefix}http.{stat_prefix}."));
        Self {
            downstream_rq_xx: StatusClassCounters::new(&s, "downstream_rq"),
            downstream_rq_completed: s.counter("downstream_rq_completed"),
        }
    }
}

/// `cluster.<stat_name>.*`
pub struct ClusterStats {
    scope: Scope,
    /// Keeps `cluster.<name>.*` in `/stats` while anything uses these stats: after the last
    /// holder goes (a removed cluster) they leave it, as Envoy frees them.
    _scope_lease: Arc<ScopeLease>,
    /// `upstream_rq_total`
    pub upstream_rq_total: Counter,
    /// `upstream_rq_active`
    pub upstream_rq_active: Gauge,
    /// `upstream_rq_completed`
    pub upstream_rq_completed: Counter,
    /// `upstream_rq_<code>` and `upstream_rq_<class>xx` (created on first use).
    pub upstream_rq_codes: ResponseCodeStats,
    /// `upstream_rq_timeout`
    pub upstream_rq_timeout: Counter,
    /// `upstream_rq_retry`
    pub upstream_rq_retry: Counter,
    /// `upstream_rq_pending_overflow`
    pub upstream_rq_pending_overflow: Counter,
    /// `upstream_rq_pending_total`
    pub upstream_rq_pending_total: Counter,
    /// `upstream_rq_pending_active`
    pub upstream_rq_pending_active: Gauge,
    /// `upstream_rq_pending_failure_eject`
    pub upstream_rq_pending_failure_eject: Counter,
    /// `upstream_rq_rx_reset`
    pub upstream_rq_rx_reset: Counter,
    /// `upstream_rq_time`
    pub upstream_rq_time: Histogram,
    /// `upstream_cx_total`
    pub upstream_cx_total: Counter,
    /// `upstream_cx_active`
    pub upstream_cx_active: Gauge,
    /// `upstream_cx_http1_total`
    pub upstream_cx_http1_total: Counter,
    /// `upstream_cx_http2_total`
    pub upstream_cx_http2_total: Counter,
    /// `upstream_cx_connect_fail`
    pub upstream_cx_connect_fail: Counter,
    /// `upstream_cx_protocol_error` (a response head the codec refused)
    pub upstream_cx_protocol_error: Counter,
    /// `upstream_cx_connect_timeout`
    pub upstream_cx_connect_timeout: Counter,
    /// `upstream_cx_connect_attempts_exceeded`: tcp_proxy gave up after
    /// `max_connect_attempts` failed connects.
    pub upstream_cx_connect_attempts_exceeded: Counter,
    /// `upstream_flow_control_{paused_reading,resumed_reading,backed_up,drained}_total`,
    /// held so that they exist (Baton does not count flow-control pauses).
    _flow_control: [Counter; 4],
    /// `upstream_cx_destroy`
    pub upstream_cx_destroy: Counter,
    /// `upstream_cx_destroy_local`, `_remote`, `_with_active_rq`, `_local_with_active_rq`,
    /// `_remote_with_active_rq`
    pub upstream_cx_destroy_by: DestroyCounters,
    /// `upstream_cx_rx_bytes_total`: bytes read from upstream connections (added per read).
    pub upstream_cx_rx_bytes_total: Counter,
    /// `upstream_cx_tx_bytes_total`: bytes written to upstream connections.
    pub upstream_cx_tx_bytes_total: Counter,
    /// `circuit_breakers.{default,high}.*_open`
    pub circuit_breakers: CircuitBreakerGauges,
    /// `upstream_cx_overflow`
    pub upstream_cx_overflow: Counter,
    /// `upstream_cx_none_healthy`
    pub upstream_cx_none_healthy: Counter,
    /// `upstream_cx_connect_ms`
    pub upstream_cx_connect_ms: Histogram,
    /// `upstream_cx_length_ms`
    pub upstream_cx_length_ms: Histogram,
    /// `membership_total`
    pub membership_total: Gauge,
    /// `membership_healthy`
    pub membership_healthy: Gauge,
    /// `membership_degraded`
    pub membership_degraded: Gauge,
    /// `membership_change`
    pub membership_change: Counter,
    /// `lb_healthy_panic`
    pub lb_healthy_panic: Counter,
    /// Zone-aware routing's `lb_zone_*`, `lb_local_cluster_not_ok` and
    /// `lb_recalculate_zone_structures`.
    pub zone: ZoneStats,
    /// `update_attempt`: DNS resolutions started (one per name).
    pub update_attempt: Counter,
    /// `update_success`
    pub update_success: Counter,
    /// `update_failure`
    pub update_failure: Counter,
    /// `update_no_rebuild`: successful resolutions that changed nothing.
    pub update_no_rebuild: Counter,
    /// `update_empty` (kept at 0, as Envoy's DNS clusters keep it).
    pub update_empty: Counter,
    /// `version`: xxHash64 of the last accepted EDS `version_info` (0 for other clusters).
    pub version: Gauge,
    /// `warming_state`: 1 while a cluster added through CDS warms.
    pub warming_state: Gauge,
    /// `membership_excluded` (0: no health checker excludes hosts yet).
    pub membership_excluded: Gauge,
    /// `default.total_match_count`: hosts on the cluster's `transport_socket` (resolved
    /// here, in the cluster's one batch of names).
    pub default_match_count: Counter,
    /// `assignment_stale`, `assignment_timeout_received`, `assignment_use_cached`: 0, as
    /// Envoy's without `endpoint_stale_after` (refused) or LEDS (not supported).
    _assignment: [Counter; 3],
    /// The EDS subscription's own names, created for EDS clusters. This and the other
    /// lazily made bundles below are boxed: a cluster that never needs one pays a
    /// pointer, not its size (inline they were half of a cluster's 2.6 KB).
    eds: OnceLock<Box<EdsStats>>,
    /// `external.*` (requests without `x-envoy-internal: true`), created on first use.
    external: OnceLock<Box<OriginStats>>,
    /// `internal.*`, created on first use.
    internal: OnceLock<Box<OriginStats>>,
    /// `http2.*`, created with the first upstream HTTP/2 connection.
    http2: OnceLock<Box<Http2CodecStats>>,
}

/// A cluster's zone-aware routing counters (Envoy 1.40 has no `lb_zone_number_differs`
/// any more: localities are matched by name).
pub struct ZoneStats {
    /// `lb_local_cluster_not_ok`: the local cluster has no healthy host in this node's
    /// locality, or is in panic.
    pub local_cluster_not_ok: Counter,
    /// `lb_recalculate_zone_structures`
    pub recalculate_zone_structures: Counter,
    /// `lb_zone_cluster_too_small`
    pub cluster_too_small: Counter,
    /// `lb_zone_no_capacity_left`
    pub no_capacity_left: Counter,
    /// `lb_zone_routing_all_directly`
    pub routing_all_directly: Counter,
    /// `lb_zone_routing_cross_zone`
    pub routing_cross_zone: Counter,
    /// `lb_zone_routing_sampled`
    pub routing_sampled: Counter,
}

impl ClusterStats {
    /// How many entries of the name index a new cluster adds: its block and its EDS
    /// block; what a batch of new clusters reserves ([`StatsStore::reserve_names`]).
    pub const NAMES: usize = 2;

    /// Handles under `cluster.<stat_name>.`.
    pub fn new(store: &StatsStore, stat_name: &str) -> Self {
        let prefix = format!("cluster.{stat_name}.");
        let scope_lease = Arc::new(store.lease_scope(&prefix));
        let scope = Scope::new(store, prefix);
        // One block: a cluster's names are one region entry, one index entry and one run
        // of cells (one hold of the region lock for a new cluster).
        static SHAPE: BlockShape = BlockShape::new();
        let mut s = scope.block(&SHAPE);
        Self {
            _scope_lease: scope_lease,
            upstream_rq_total: s.counter("upstream_rq_total"),
            upstream_rq_active: s.gauge("upstream_rq_active"),
            upstream_rq_completed: s.counter("upstream_rq_completed"),
            upstream_rq_codes: ResponseCodeStats::new(scope.clone()),
            upstream_rq_timeout: s.counter("upstream_rq_timeout"),
            upstream_rq_retry: s.counter("upstream_rq_retry"),
            upstream_rq_pending_overflow: s.counter("upstream_rq_pending_overflow"),
            upstream_rq_pending_total: s.counter("upstream_rq_pending_total"),
            upstream_rq_pending_active: s.gauge("upstream_rq_pending_active"),
            upstream_rq_pending_failure_eject: s.counter("upstream_rq_pending_failure_eject"),
            upstream_rq_rx_reset: s.counter("upstream_rq_rx_reset"),
            upstream_rq_time: s.histogram("upstream_rq_time"),
            upstream_cx_total: s.counter("upstream_cx_total"),
            upstream_cx_active: s.gauge("upstream_cx_active"),
            upstream_cx_http1_total: s.counter("upstream_cx_http1_total"),
            upstream_cx_http2_total: s.counter("upstream_cx_http2_total"),
            upstream_cx_connect_fail: s.counter("upstream_cx_connect_fail"),
            upstream_cx_protocol_error: s.counter("upstream_cx_protocol_error"),
            upstream_cx_connect_timeout: s.counter("upstream_cx_connect_timeout"),
            upstream_cx_connect_attempts_exceeded: s
                .counter("upstream_cx_connect_attempts_exceeded"),
            _flow_control: [
                s.counter("upstream_flow_control_paused_reading_total"),
                s.counter("upstream_flow_control_resumed_reading_total"),
                s.counter("upstream_flow_control_backed_up_total"),
                s.counter("upstream_flow_control_drained_total"),
            ],
            upstream_cx_destroy: s.counter("upstream_cx_destroy"),
            upstream_cx_destroy_by: DestroyCounters {
                local: s.counter("upstream_cx_destroy_local"),
                remote: s.counter("upstream_cx_destroy_remote"),
                active_rq: s.counter("upstream_cx_destroy_with_active_rq"),
                local_active_rq: s.counter("upstream_cx_destroy_local_with_active_rq"),
                remote_active_rq: s.counter("upstream_cx_destroy_remote_with_active_rq"),
            },
            upstream_cx_rx_bytes_total: s.counter("upstream_cx_rx_bytes_total"),
            upstream_cx_tx_bytes_total: s.counter("upstream_cx_tx_bytes_total"),
            circuit_breakers: CircuitBreakerGauges {
                default: BreakerPriorityGauges::new(
                    &mut s,
                    [
                        "circuit_breakers.default.cx_open",
                        "circuit_breakers.default.cx_pool_open",
                        "circuit_breakers.default.rq_open",
                        "circuit_breakers.default.rq_pending_open",
                        "circuit_breakers.default.rq_retry_open",
                    ],
                ),
                _high: BreakerPriorityGauges::new(
                    &mut s,
                    [
                        "circuit_breakers.high.cx_open",
                        "circuit_breakers.high.cx_pool_open",
                        "circuit_breakers.high.rq_open",
                        "circuit_breakers.high.rq_pending_open",
                        "circuit_breakers.high.rq_retry_open",
                    ],
                ),
            },
            upstream_cx_overflow: s.counter("upstream_cx_overflow"),
            upstream_cx_none_healthy: s.counter("upstream_cx_none_healthy"),
            upstream_cx_connect_ms: s.histogram("upstream_cx_connect_ms"),
            upstream_cx_length_ms: s.histogram("upstream_cx_length_ms"),
            membership_total: s.gauge_never_import("membership_total"),
            membership_healthy: s.gauge_never_import("membership_healthy"),
            membership_degraded: s.gauge_never_import("membership_degraded"),
            membership_change: s.counter("membership_change"),
            lb_healthy_panic: s.counter("lb_healthy_panic"),
            zone: ZoneStats {
                local_cluster_not_ok: s.counter("lb_local_cluster_not_ok"),
                recalculate_zone_structures: s.counter("lb_recalculate_zone_structures"),
                cluster_too_small: s.counter("lb_zone_cluster_too_small"),
                no_capacity_left: s.counter("lb_zone_no_capacity_left"),
                routing_all_directly: s.counter("lb_zone_routing_all_directly"),
                routing_cross_zone: s.counter("lb_zone_routing_cross_zone"),
                routing_sampled: s.counter("lb_zone_routing_sampled"),
            },
            update_attempt: s.counter("update_attempt"),
            update_success: s.counter("update_success"),
            update_failure: s.counter("update_failure"),
            update_no_rebuild: s.counter("update_no_rebuild"),
            update_empty: s.counter("update_empty"),
            version: s.gauge_never_import("version"),
            warming_state: s.gauge_never_import("warming_state"),
            membership_excluded: s.gauge_never_import("membership_excluded"),
            default_match_count: s.counter("default.total_match_count"),
            _assignment: [
                s.counter("assignment_stale"),
                s.counter("assignment_timeout_received"),
                s.counter("assignment_use_cached"),
            ],
            eds: OnceLock::new(),
            external: OnceLock::new(),
            internal: OnceLock::new(),
            http2: OnceLock::new(),
            scope: scope.clone(),
        }
    }

    /// `cluster.<stat_name>.`
    pub fn prefix(&self) -> &str {
        self.scope.prefix()
    }

    /// The EDS subscription's names (created on the first call).
    pub fn eds(&self) -> &EdsStats {
        self.eds
            .get_or_init(|| Box::new(EdsStats::new(&self.scope)))
    }

    /// An EDS assignment with `version_info` was applied in `took`; `unchanged`: its
    /// hosts were those the cluster had (`update_no_rebuild`).
    pub fn eds_accepted(&self, version_info: &str, unchanged: bool, took: std::time::Duration) {
        self.update_attempt.inc();
        self.update_success.inc();
        if unchanged {
            self.update_no_rebuild.inc();
        }
        self.version
            .set(xxhash_rust::xxh64::xxh64(version_info.as_bytes(), 0));
        self.eds().accepted(version_info, took);
    }

    /// An EDS assignment for this cluster was NACKed (`delta`: over the incremental
    /// protocol, where Envoy counts two attempts for it).
    pub fn eds_rejected(&self, delta: bool) {
        self.update_attempt.inc();
        if delta {
            self.update_attempt.inc();
        }
        self.eds().update_rejected.inc();
    }

    /// The EDS subscription's first assignment did not come in time: Envoy counts an
    /// attempt with the timeout.
    pub fn eds_fetch_timed_out(&self) {
        self.update_attempt.inc();
        self.eds().init_fetch_timeout.inc();
    }

    /// `cluster.<name>.http2.*` (created on the first call).
    pub fn http2(&self) -> &Http2CodecStats {
        Http2CodecStats::get_or_create(&self.http2, &self.scope)
    }

    /// Counts one upstream response: `upstream_rq_<code>`, its class and completion.
    pub fn record_response(&self, status: u16) {
        self.upstream_rq_codes.record(status);
        self.upstream_rq_completed.inc();
    }

    /// What the router charges for one request's final response (an upstream's, or
    /// the local reply that replaced it: 503 on failures, 504 on the route timeout):
    /// [`Self::record_response`], plus the same under `external.` or `internal.`, and
    /// `upstream_rq_time` when the response came from the upstream after `elapsed`.
    pub fn record_routed_response(
        &self,
        status: u16,
        internal: bool,
        elapsed: Option<std::time::Duration>,
    ) {
        self.record_response(status);
        let origin = if internal {
            self.internal
                .get_or_init(|| Box::new(OriginStats::new(self.scope.child("internal."))))
        } else {
            self.external
                .get_or_init(|| Box::new(OriginStats::new(self.scope.child("external."))))
        };
        origin.codes.record(status);
        origin.upstream_rq_completed.inc();
        if let Some(elapsed) = elapsed {
            super::record_ms(&self.upstream_rq_time, elapsed);
            super::record_ms(&origin.upstream_rq_time, elapsed);
        }
    }
}

macro_rules! opaque_debug {
    ($($t:ty),*) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t)).finish_non_exhaustive()
            }
        }
    )*};
}

// Handles print nothing useful; the owners of these bundles derive Debug.
opaque_debug!(
    HttpConnManagerStats,
    ListenerHttpStats,
    ClusterStats,
    TcpProxyStats,
    ClusterManagerStats,
    ListenerStats,
    ListenerManagerStats,
    ZoneStats
);

/// `tcp.<stat_prefix>.*`
#[derive(Clone)]
pub struct TcpProxyStats {
    /// `downstream_cx_total`
    pub downstream_cx_total: Counter,
    /// `downstream_cx_no_route`
    pub downstream_cx_no_route: Counter,
    /// `downstream_cx_rx_bytes_total`
    pub downstream_cx_rx_bytes_total: Counter,
    /// `downstream_cx_tx_bytes_total`
    pub downstream_cx_tx_bytes_total: Counter,
    /// `idle_timeout`
    pub idle_timeout: Counter,
    /// `max_downstream_connection_duration`
    pub max_downstream_connection_duration: Counter,
    /// `upstream_flush_active`
    pub upstream_flush_active: Gauge,
    /// The rest of Envoy 1.40's names, held so that they exist: nothing in Baton moves
    /// them (no flow-control pauses counted, no early data, no on-demand routes, no
    /// overload actions, drain closes not told apart).
    _others: [Counter; 7],
    _other_gauges: [Gauge; 2],
}

/// `tcp.<stat_prefix>.*` counters Envoy 1.40 exports that Baton keeps at 0.
const TCP_PROXY_OTHER_COUNTERS: [&str; 7] = [
    "downstream_cx_drain_close",
    "downstream_cx_overload_close",
    "downstream_flow_control_paused_reading_total",
    "downstream_flow_control_resumed_reading_total",
    "early_data_received_count_total",
    "route_delayed_total",
    "upstream_flush_total",
];

impl TcpProxyStats {
    /// Handles under `tcp.<stat_prefix>.`.
    pub fn new(store: &StatsStore, stat_prefix: &str) -> Self {
        let s = Scope::new(store, format!("tcp.{stat_prefix}."));
        Self {
            downstream_cx_total: s.counter("downstream_cx_total"),
            downstream_cx_no_route: s.counter("downstream_cx_no_route"),
            downstream_cx_rx_bytes_total: s.counter("downstream_cx_rx_bytes_total"),
            downstream_cx_tx_bytes_total: s.counter("downstream_cx_tx_bytes_total"),
            idle_timeout: s.counter("idle_timeout"),
            max_downstream_connection_duration: s.counter("max_downstream_connection_duration"),
            upstream_flush_active: s.gauge("upstream_flush_active"),
            _others: TCP_PROXY_OTHER_COUNTERS.map(|name| s.counter(name)),
            _other_gauges: [
                s.gauge("downstream_cx_rx_bytes_buffered"),
                s.gauge("downstream_cx_tx_bytes_buffered"),
            ],
        }
    }
}

/// `cluster_manager.*`
#[derive(Clone)]
pub struct ClusterManagerStats {
    /// `cluster_added`
    pub cluster_added: Counter,
    /// `cluster_modified`
    pub cluster_modified: Counter,
    /// `cluster_removed`
    pub cluster_removed: Counter,
    /// `active_clusters`
    pub active_clusters: Gauge,
    /// `warming_clusters`
    pub warming_clusters: Gauge,
}

impl ClusterManagerStats {
    /// Handles under `cluster_manager.`.
    pub fn new(store: &StatsStore) -> Self {
        let s = Scope::new(store, "cluster_manager.");
        Self {
            cluster_added: s.counter("cluster_added"),
            cluster_modified: s.counter("cluster_modified"),
            cluster_removed: s.counter("cluster_removed"),
            active_clusters: s.gauge_never_import("active_clusters"),
            warming_clusters: s.gauge_never_import("warming_clusters"),
        }
    }
}

/// `listener_manager.*`
#[derive(Clone)]
pub struct ListenerManagerStats {
    /// `listener_added`
    pub listener_added: Counter,
    /// `listener_modified`
    pub listener_modified: Counter,
    /// `listener_removed`
    pub listener_removed: Counter,
    /// `listener_create_success`
    pub listener_create_success: Counter,
    /// `listener_create_failure`
    pub listener_create_failure: Counter,
    /// `listener_in_place_updated`
    pub listener_in_place_updated: Counter,
    /// `listener_stopped`
    pub listener_stopped: Counter,
    /// `total_filter_chains_draining`
    pub total_filter_chains_draining: Gauge,
    /// `total_listeners_active`
    pub total_listeners_active: Gauge,
    /// `total_listeners_warming`
    pub total_listeners_warming: Gauge,
    /// `total_listeners_draining`
    pub total_listeners_draining: Gauge,
    /// `workers_started`: 1 once the workers accept (the server is LIVE).
    pub workers_started: Gauge,
}

impl ListenerManagerStats {
    /// Handles under `listener_manager.`.
    pub fn new(store: &StatsStore) -> Self {
        let s = Scope::new(store, "listener_manager.");
        Self {
            listener_added: s.counter("listener_added"),
            listener_modified: s.counter("listener_modified"),
            listener_removed: s.counter("listener_removed"),
            listener_create_success: s.counter("listener_create_success"),
            listener_create_failure: s.counter("listener_create_failure"),
            listener_in_place_updated: s.counter("listener_in_place_updated"),
            listener_stopped: s.counter("listener_stopped"),
            total_filter_chains_draining: s.gauge_never_import("total_filter_chains_draining"),
            total_listeners_active: s.gauge_never_import("total_listeners_active"),
            total_listeners_warming: s.gauge_never_import("total_listeners_warming"),
            total_listeners_draining: s.gauge_never_import("total_listeners_draining"),
            workers_started: s.gauge_never_import("workers_started"),
        }
    }
}
