//! Rejects fields Baton parses but does not implement, so a config never silently loses
//! behaviour. Walks the bootstrap or one xDS resource as a `DynamicMessage` (including
//! `typed_config` Any contents) against a per-message allowlist of the fields translation
//! honours.
//!
//! Messages absent from the table are leaves whose every field is honoured (durations,
//! wrappers, matchers, metadata, locality).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use prost_reflect::{DynamicMessage, MapKey, ReflectMessage, Value};

use crate::error::{ConfigError, Result};
use crate::load::pool;

/// (message full name, fields Baton implements or that do not change behaviour).
const ALLOWED: &[(&str, &[&str])] = &[
    (
        "envoy.config.bootstrap.v3.Bootstrap",
        &[
            "node",
            "static_resources",
            "dynamic_resources",
            "admin",
            "stats_config",
            "stats_flush_interval",
            "typed_dns_resolver_config",
            "dns_resolution_config",
            "use_tcp_for_dns_lookups",
            "overload_manager",
            "layered_runtime",
            "bootstrap_extensions",
            "cluster_manager",
            "application_log_config",
            "deferred_stat_options",
            "config_sources",
            "default_config_source",
            "node_context_params",
        ],
    ),
    // `upstream_bind_config` and `load_stats_config` are not implemented; the outlier
    // event log is accepted (nothing writes to it: there is no outlier detection yet).
    (
        "envoy.config.bootstrap.v3.ClusterManager",
        &["local_cluster_name", "outlier_detection", "enable_deferred_cluster_creation"],
    ),
    ("envoy.config.bootstrap.v3.ClusterManager.OutlierDetection", &["event_log_path"]),
    // Default and custom tags shape `/stats/prometheus`, the stats matcher what the admin
    // stats endpoints export; histogram buckets and `allow_default_tag_overrides` are not
    // implemented and are refused by name.
    (
        "envoy.config.metrics.v3.StatsConfig",
        &["use_all_default_tags", "stats_tags", "stats_matcher"],
    ),
    ("envoy.config.bootstrap.v3.LayeredRuntime", &["layers"]),
    // disk and RTDS layers are refused by translation, naming the field.
    (
        "envoy.config.bootstrap.v3.RuntimeLayer",
        &["name", "static_layer", "admin_layer", "disk_layer", "rtds_layer"],
    ),
    // Only the global connection limit: other actions, load shed points and buffer
    // accounting are refused by name.
    ("envoy.config.overload.v3.OverloadManager", &["refresh_interval", "resource_monitors"]),
    ("envoy.config.overload.v3.ResourceMonitor", &["name", "typed_config"]),
    (
        "envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit",
        &["stat_prefix", "max_connections", "delay"],
    ),
    ("envoy.config.bootstrap.v3.Bootstrap.StaticResources", &["listeners", "clusters", "secrets"]),
    (
        "envoy.config.bootstrap.v3.Bootstrap.DynamicResources",
        &[
            "lds_config",
            "cds_config",
            "ads_config",
            "lds_resources_locator",
            "cds_resources_locator",
        ],
    ),
    (
        "envoy.config.core.v3.ConfigSource",
        &[
            "path",
            "path_config_source",
            "api_config_source",
            "ads",
            "initial_fetch_timeout",
            "resource_api_version",
            "authorities",
        ],
    ),
    ("xds.core.v3.Authority", &["name"]),
    ("envoy.config.core.v3.PathConfigSource", &["path", "watched_directory"]),
    // refresh_delay and request_timeout only apply to REST, which translation refuses;
    // with gRPC Envoy ignores them too.
    (
        "envoy.config.core.v3.ApiConfigSource",
        &[
            "api_type",
            "transport_api_version",
            "cluster_names",
            "grpc_services",
            "refresh_delay",
            "request_timeout",
            "rate_limit_settings",
            "set_node_on_first_message_only",
        ],
    ),
    ("envoy.config.core.v3.GrpcService", &["envoy_grpc", "google_grpc", "timeout"]),
    (
        "envoy.config.core.v3.GrpcService.EnvoyGrpc",
        &["cluster_name", "max_receive_message_length"],
    ),
    ("envoy.config.core.v3.RateLimitSettings", &["max_tokens", "fill_rate"]),
    // Admin connections never count towards the global connection limit (as in Envoy),
    // so `ignore_global_conn_limit` changes nothing.
    (
        "envoy.config.bootstrap.v3.Admin",
        &["address", "access_log", "access_log_path", "profile_path", "ignore_global_conn_limit"],
    ),
    ("envoy.config.core.v3.Node", &["id", "cluster", "metadata", "locality", "user_agent_name"]),
    // `pipe` is an upstream endpoint address only: listener, admin and DNS resolver
    // translation refuse it by name.
    ("envoy.config.core.v3.Address", &["socket_address", "pipe"]),
    ("envoy.config.core.v3.Pipe", &["path", "mode"]),
    (
        "envoy.config.core.v3.SocketAddress",
        &["protocol", "address", "port_value", "ipv4_compat"],
    ),
    (
        "envoy.config.listener.v3.Listener",
        &[
            "name",
            "address",
            "stat_prefix",
            "filter_chains",
            "default_filter_chain",
            "per_connection_buffer_limit_bytes",
            "metadata",
            "listener_filters",
            "listener_filters_timeout",
            "continue_on_listener_filters_timeout",
            "enable_reuse_port",
            "tcp_backlog_size",
            "traffic_direction",
            "drain_type",
            "ignore_global_conn_limit",
            "bypass_overload_manager",
            "max_connections_to_accept_per_socket_event",
        ],
    ),
    (
        "envoy.config.listener.v3.FilterChain",
        &[
            "filter_chain_match",
            "filters",
            "transport_socket",
            "transport_socket_connect_timeout",
            "name",
            "metadata",
        ],
    ),
    (
        "envoy.config.listener.v3.FilterChainMatch",
        &[
            "destination_port",
            "prefix_ranges",
            "server_names",
            "transport_protocol",
            "application_protocols",
            "source_prefix_ranges",
            "source_ports",
        ],
    ),
    ("envoy.config.listener.v3.Filter", &["name", "typed_config"]),
    ("envoy.config.listener.v3.ListenerFilter", &["name", "typed_config"]),
    // `rules` / `tlv_location` (TLVs to metadata) and `pass_through_tlvs` are not built.
    (
        "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol",
        &["allow_requests_without_proxy_protocol", "disallowed_versions", "stat_prefix"],
    ),
    ("envoy.config.core.v3.TransportSocket", &["name", "typed_config"]),
    (
        "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        &[
            "common_tls_context",
            "require_sni",
            "require_client_certificate",
            "session_ticket_keys",
            "session_ticket_keys_sds_secret_config",
            "disable_stateless_session_resumption",
            "disable_stateful_session_resumption",
            "session_timeout",
            "ocsp_staple_policy",
        ],
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        &["common_tls_context", "sni", "auto_host_sni", "auto_sni_san_validation"],
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext",
        &[
            "tls_params",
            "tls_certificates",
            "tls_certificate_sds_secret_configs",
            "validation_context",
            "validation_context_sds_secret_config",
            "combined_validation_context",
            "alpn_protocols",
        ],
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.CombinedCertificateValidationContext",
        &["default_validation_context", "validation_context_sds_secret_config"],
    ),
    ("envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig", &["name", "sds_config"]),
    (
        "envoy.extensions.transport_sockets.tls.v3.Secret",
        &["name", "tls_certificate", "validation_context", "session_ticket_keys"],
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.TlsParameters",
        &[
            "tls_minimum_protocol_version",
            "tls_maximum_protocol_version",
            "cipher_suites",
            "ecdh_curves",
            "signature_algorithms",
        ],
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.TlsCertificate",
        &["certificate_chain", "private_key", "ocsp_staple"],
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext",
        &[
            "trusted_ca",
            "match_typed_subject_alt_names",
            "crl",
            "allow_expired_certificate",
            "trust_chain_verification",
            "verify_certificate_hash",
            "verify_certificate_spki",
        ],
    ),
    ("envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher", &["san_type", "matcher"]),
    ("envoy.extensions.transport_sockets.tls.v3.TlsSessionTicketKeys", &["keys"]),
    ("envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer", &[]),
    ("envoy.config.accesslog.v3.AccessLog", &["name", "filter", "typed_config"]),
    (
        "envoy.extensions.access_loggers.file.v3.FileAccessLog",
        &["path", "format", "json_format", "log_format"],
    ),
    ("envoy.extensions.access_loggers.stream.v3.StdoutAccessLog", &["log_format"]),
    ("envoy.extensions.access_loggers.stream.v3.StderrAccessLog", &["log_format"]),
    (
        "envoy.config.core.v3.SubstitutionFormatString",
        &["text_format", "json_format", "text_format_source", "content_type", "omit_empty_values"],
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        &[
            "codec_type",
            "stat_prefix",
            "http_filters",
            "route_config",
            "rds",
            "common_http_protocol_options",
            "http_protocol_options",
            "http2_protocol_options",
            "server_name",
            "server_header_transformation",
            "max_request_headers_kb",
            "stream_idle_timeout",
            "request_timeout",
            "request_headers_timeout",
            "drain_timeout",
            "delayed_close_timeout",
            "access_log",
            "use_remote_address",
            "xff_num_trusted_hops",
            "internal_address_config",
            "skip_xff_append",
            "append_x_forwarded_port",
            "via",
            "generate_request_id",
            "preserve_external_request_id",
            "always_set_request_id_in_response",
            "request_id_extension",
            "tracing",
            "upgrade_configs",
            "normalize_path",
            "merge_slashes",
            "path_with_escaped_slashes_action",
            "strip_matching_host_port",
            "strip_any_host_port",
            "forward_client_cert_details",
            "set_current_client_cert_details",
            "local_reply_config",
            "scheme_header_transformation",
        ],
    ),
    // Sampling only: a `provider` is refused by name. The span-shaping fields change
    // nothing Envoy does without a provider (there are no spans).
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.Tracing",
        &[
            "client_sampling",
            "random_sampling",
            "overall_sampling",
            "verbose",
            "max_path_tag_length",
            "custom_tags",
            "spawn_upstream_span",
        ],
    ),
    (
        "envoy.config.core.v3.SchemeHeaderTransformation",
        &["scheme_to_overwrite", "match_upstream"],
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.LocalReplyConfig",
        &["mappers", "body_format"],
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.ResponseMapper",
        &["filter", "status_code", "body", "body_format_override", "headers_to_add"],
    ),
    // `extension_filter` is refused by name.
    (
        "envoy.config.accesslog.v3.AccessLogFilter",
        &[
            "status_code_filter",
            "duration_filter",
            "not_health_check_filter",
            "traceable_filter",
            "runtime_filter",
            "and_filter",
            "or_filter",
            "header_filter",
            "response_flag_filter",
            "grpc_status_filter",
            "metadata_filter",
            "log_type_filter",
        ],
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig",
        &["upgrade_type", "enabled"],
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.InternalAddressConfig",
        &["cidr_ranges", "unix_sockets"],
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter",
        &["name", "typed_config", "is_optional", "disabled"],
    ),
    (
        "envoy.extensions.filters.http.router.v3.Router",
        &["suppress_envoy_headers", "dynamic_stats", "start_child_span"],
    ),
    (
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        &[
            "stat_prefix",
            "cluster",
            "weighted_clusters",
            "idle_timeout",
            "max_connect_attempts",
            "max_downstream_connection_duration",
            "access_log",
        ],
    ),
    ("envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster", &["clusters"]),
    (
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight",
        &["name", "weight"],
    ),
    (
        "envoy.config.route.v3.RouteConfiguration",
        &[
            "name",
            "virtual_hosts",
            "internal_only_headers",
            "response_headers_to_add",
            "response_headers_to_remove",
            "request_headers_to_add",
            "request_headers_to_remove",
            "most_specific_header_mutations_wins",
            "validate_clusters",
            "max_direct_response_body_size_bytes",
            "typed_per_filter_config",
            "ignore_port_in_host_matching",
        ],
    ),
    (
        "envoy.config.route.v3.VirtualHost",
        &[
            "name",
            "domains",
            "routes",
            "require_tls",
            "request_headers_to_add",
            "request_headers_to_remove",
            "response_headers_to_add",
            "response_headers_to_remove",
            "metadata",
            "typed_per_filter_config",
        ],
    ),
    (
        "envoy.config.route.v3.Route",
        &[
            "name",
            "match",
            "route",
            "redirect",
            "direct_response",
            "metadata",
            "decorator",
            "request_headers_to_add",
            "request_headers_to_remove",
            "response_headers_to_add",
            "response_headers_to_remove",
            "typed_per_filter_config",
        ],
    ),
    // `typed_per_filter_config` values: translation refuses what Baton cannot honour.
    ("envoy.config.route.v3.FilterConfig", &["config", "is_optional", "disabled"]),
    (
        "envoy.config.route.v3.RouteAction.MaxStreamDuration",
        &["max_stream_duration", "grpc_timeout_header_max", "grpc_timeout_header_offset"],
    ),
    (
        "envoy.config.route.v3.RouteMatch",
        &[
            "prefix",
            "path",
            "safe_regex",
            "connect_matcher",
            "path_separated_prefix",
            "case_sensitive",
            "headers",
            "query_parameters",
            "grpc",
            "runtime_fraction",
            "tls_context",
        ],
    ),
    ("envoy.config.route.v3.RouteMatch.TlsContextMatchOptions", &["presented", "validated"]),
    (
        "envoy.config.route.v3.HeaderMatcher",
        &[
            "name",
            "exact_match",
            "safe_regex_match",
            "range_match",
            "present_match",
            "prefix_match",
            "suffix_match",
            "contains_match",
            "string_match",
            "invert_match",
            "treat_missing_header_as_empty",
        ],
    ),
    ("envoy.config.route.v3.QueryParameterMatcher", &["name", "string_match", "present_match"]),
    (
        "envoy.config.route.v3.RouteAction",
        &[
            "cluster",
            "cluster_header",
            "weighted_clusters",
            "prefix_rewrite",
            "regex_rewrite",
            "host_rewrite_literal",
            "auto_host_rewrite",
            "host_rewrite_header",
            "host_rewrite_path_regex",
            "append_x_forwarded_host",
            "cluster_not_found_response_code",
            "timeout",
            "idle_timeout",
            "max_stream_duration",
            "upgrade_configs",
        ],
    ),
    (
        "envoy.config.route.v3.RouteAction.UpgradeConfig",
        &["upgrade_type", "enabled", "connect_config"],
    ),
    // Presence alone selects CONNECT termination; proxy_protocol_config and allow_post
    // are not implemented.
    ("envoy.config.route.v3.RouteAction.UpgradeConfig.ConnectConfig", &[]),
    ("envoy.config.route.v3.WeightedCluster", &["clusters", "total_weight"]),
    (
        "envoy.config.route.v3.WeightedCluster.ClusterWeight",
        &[
            "name",
            "weight",
            "request_headers_to_add",
            "request_headers_to_remove",
            "response_headers_to_add",
            "response_headers_to_remove",
            "typed_per_filter_config",
        ],
    ),
    ("envoy.config.route.v3.DirectResponseAction", &["status", "body"]),
    ("envoy.config.core.v3.DataSource", &["filename", "inline_string", "inline_bytes", "environment_variable"]),
    (
        "envoy.config.core.v3.HeaderValueOption",
        &["header", "append", "append_action", "keep_empty_value"],
    ),
    ("envoy.config.core.v3.HeaderValue", &["key", "value", "raw_value"]),
    (
        "envoy.config.cluster.v3.Cluster",
        &[
            "name",
            "alt_stat_name",
            "type",
            "eds_cluster_config",
            "connect_timeout",
            "lb_policy",
            "load_balancing_policy",
            "load_assignment",
            "dns_refresh_rate",
            "respect_dns_ttl",
            "dns_lookup_family",
            "dns_failure_refresh_rate",
            "dns_jitter",
            "dns_resolvers",
            "use_tcp_for_dns_lookups",
            "dns_resolution_config",
            "typed_dns_resolver_config",
            "cluster_type",
            "http2_protocol_options",
            "http_protocol_options",
            "common_http_protocol_options",
            "typed_extension_protocol_options",
            "per_connection_buffer_limit_bytes",
            "circuit_breakers",
            "least_request_lb_config",
            "metadata",
            "protocol_selection",
            "max_requests_per_connection",
            "transport_socket",
            "transport_socket_matches",
            "transport_socket_matcher",
            "upstream_http_protocol_options",
            "common_lb_config",
            "upstream_connection_options",
            // Only matters with active health checking, which Baton does not have yet:
            // without it a host an EDS update removes goes at once, as with this set.
            "ignore_health_on_host_removal",
        ],
    ),
    // Locality balancing only: zone-aware routing or locality weights.
    (
        "envoy.config.cluster.v3.Cluster.CommonLbConfig",
        &[
            "zone_aware_lb_config",
            "locality_weighted_lb_config",
            "healthy_panic_threshold",
        ],
    ),
    (
        "envoy.config.cluster.v3.Cluster.CommonLbConfig.ZoneAwareLbConfig",
        &["routing_enabled", "min_cluster_size", "fail_traffic_on_panic"],
    ),
    (
        "envoy.extensions.load_balancing_policies.common.v3.LocalityLbConfig",
        &["zone_aware_lb_config", "locality_weighted_lb_config"],
    ),
    (
        "envoy.extensions.load_balancing_policies.common.v3.LocalityLbConfig.ZoneAwareLbConfig",
        &[
            "routing_enabled",
            "min_cluster_size",
            "fail_traffic_on_panic",
            "force_locality_direct_routing",
            "force_local_zone",
            "locality_basis",
        ],
    ),
    // Happy eyeballs is not implemented.
    (
        "envoy.config.cluster.v3.UpstreamConnectionOptions",
        &["tcp_keepalive", "set_local_interface_name_on_upstream_connections"],
    ),
    ("envoy.config.cluster.v3.Cluster.TransportSocketMatch", &["name", "match", "transport_socket"]),
    ("envoy.config.cluster.v3.Cluster.EdsClusterConfig", &["eds_config", "service_name"]),
    ("envoy.config.cluster.v3.Cluster.LeastRequestLbConfig", &["choice_count"]),
    // Typed load balancing policies (the one chosen from `load_balancing_policy`).
    ("envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin", &["locality_lb_config"]),
    (
        "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest",
        &["choice_count", "locality_lb_config"],
    ),
    ("envoy.extensions.load_balancing_policies.random.v3.Random", &["locality_lb_config"]),
    ("envoy.config.cluster.v3.Cluster.CustomClusterType", &["name", "typed_config"]),
    ("envoy.config.cluster.v3.Cluster.RefreshRate", &["base_interval", "max_interval"]),
    (
        "envoy.extensions.clusters.dns.v3.DnsCluster",
        &[
            "dns_refresh_rate",
            "dns_failure_refresh_rate",
            "respect_dns_ttl",
            "dns_jitter",
            "typed_dns_resolver_config",
            "dns_lookup_family",
            "all_addresses_in_single_endpoint",
            "dns_min_refresh_rate",
        ],
    ),
    ("envoy.extensions.clusters.dns.v3.DnsCluster.RefreshRate", &["base_interval", "max_interval"]),
    ("envoy.config.core.v3.TypedExtensionConfig", &["name", "typed_config"]),
    // filter_unroutable_families, udp_max_queries, max_udp_channel_duration,
    // reinit_channel_on_timeout and qcache_max_ttl are c-ares channel knobs Baton's
    // resolver does not have.
    (
        "envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig",
        &[
            "resolvers",
            "use_resolvers_as_fallback",
            "dns_resolver_options",
            "query_timeout_seconds",
            "query_tries",
            "rotate_nameservers",
            "edns0_max_payload_size",
        ],
    ),
    ("envoy.config.core.v3.DnsResolutionConfig", &["resolvers", "dns_resolver_options"]),
    (
        "envoy.config.core.v3.DnsResolverOptions",
        &["use_tcp_for_dns_lookups", "no_default_search_domain"],
    ),
    ("envoy.config.cluster.v3.CircuitBreakers", &["thresholds"]),
    (
        "envoy.config.cluster.v3.CircuitBreakers.Thresholds",
        &["priority", "max_connections", "max_pending_requests", "max_requests", "max_retries", "track_remaining"],
    ),
    ("envoy.config.endpoint.v3.ClusterLoadAssignment", &["cluster_name", "endpoints", "policy"]),
    ("envoy.config.endpoint.v3.ClusterLoadAssignment.Policy", &["overprovisioning_factor"]),
    (
        "envoy.config.endpoint.v3.LocalityLbEndpoints",
        &["locality", "lb_endpoints", "load_balancing_weight", "priority", "metadata"],
    ),
    (
        "envoy.config.endpoint.v3.LbEndpoint",
        &["endpoint", "health_status", "load_balancing_weight", "metadata"],
    ),
    ("envoy.config.endpoint.v3.Endpoint", &["address", "hostname"]),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        &[
            "common_http_protocol_options",
            "upstream_http_protocol_options",
            "explicit_http_config",
            "use_downstream_protocol_config",
        ],
    ),
    (
        "envoy.config.core.v3.UpstreamHttpProtocolOptions",
        &["auto_sni", "auto_san_validation", "override_auto_sni_header"],
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig",
        &["http_protocol_options", "http2_protocol_options"],
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.UseDownstreamHttpConfig",
        &["http_protocol_options", "http2_protocol_options"],
    ),
    (
        "envoy.config.core.v3.Http2ProtocolOptions",
        &[
            "max_concurrent_streams",
            "initial_stream_window_size",
            "initial_connection_window_size",
            "allow_connect",
            "hpack_table_size",
            "connection_keepalive",
        ],
    ),
    // Pings are sent exactly every `interval` (Envoy jitters them by 15% by default);
    // an explicit jitter and idle-interval pings are not implemented.
    ("envoy.config.core.v3.KeepaliveSettings", &["interval", "timeout"]),
    ("envoy.config.core.v3.Http1ProtocolOptions", &["accept_http_10", "default_host_for_http_10"]),
    (
        "envoy.config.core.v3.HttpProtocolOptions",
        &[
            "idle_timeout",
            "max_connection_duration",
            "max_stream_duration",
            "max_headers_count",
            "max_requests_per_connection",
            "max_response_headers_kb",
            // On a cluster Envoy ignores it (upstream responses are not checked).
            "headers_with_underscores_action",
        ],
    ),
];

/// Messages whose contents translation checks itself: a `load_balancing_policy` lists
/// alternatives of which only the chosen one must be supported (Envoy skips types it does
/// not know), so translation walks that one with [`check_any`].
pub(crate) const CHECKED_BY_TRANSLATION: &[&str] = &["envoy.config.cluster.v3.LoadBalancingPolicy"];

pub(crate) fn allowed_fields(message: &str) -> Option<&'static [&'static str]> {
    // A map, not a scan of ALLOWED: the walk asks once per message of every resource.
    static BY_NAME: OnceLock<HashMap<&'static str, &'static [&'static str]>> = OnceLock::new();
    BY_NAME
        .get_or_init(|| ALLOWED.iter().copied().collect())
        .get(message)
        .copied()
}

/// Fails on the first set field that Baton does not implement, with its path relative
/// to `message` (a whole bootstrap, or one xDS resource).
pub(crate) fn check(message: &DynamicMessage) -> Result<()> {
    walk(message, &mut String::new())
}

/// [`check`] for the contents of one Any, reporting paths under `path`.
pub(crate) fn check_any(any: &prost_types::Any, path: &str) -> Result<()> {
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    let Some(descriptor) = pool().get_message_by_name(name) else {
        return Err(ConfigError::at(
            join(path, "@type"),
            format!("unknown type '{}'", any.type_url),
        ));
    };
    let inner = DynamicMessage::decode(descriptor, any.value.as_slice())
        .map_err(|e| ConfigError::at(path, format!("cannot decode '{}': {e}", any.type_url)))?;
    walk(&inner, &mut path.to_string())
}

pub(crate) fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// Appends `.field` (or `field` at the root) to the path being walked.
fn push_field(path: &mut String, field: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(field);
}

/// Walks `message` at `path`. The path is one buffer extended and truncated on the way
/// (no string per field): a 10,000-route RDS update walks about a million fields.
fn walk(message: &DynamicMessage, path: &mut String) -> Result<()> {
    let descriptor = message.descriptor();
    if descriptor.full_name() == "google.protobuf.Any" {
        return walk_any(message, path);
    }
    if CHECKED_BY_TRANSLATION.contains(&descriptor.full_name()) {
        return Ok(());
    }
    let allowed = allowed_fields(descriptor.full_name());
    let optional = skips_unknown_config(message);
    for (field, value) in message.fields() {
        let parent = path.len();
        push_field(path, field.name());
        if let Some(allowed) = allowed {
            if !allowed.contains(&field.name()) {
                return Err(ConfigError::unsupported(path.clone()));
            }
        }
        if optional && is_unknown_any(value) {
            // Translation skips the optional entry whose config Baton cannot read.
            path.truncate(parent);
            continue;
        }
        walk_value(value, path)?;
        path.truncate(parent);
    }
    Ok(())
}

/// An optional `http_filters[]` entry, or a `FilterConfig` that is optional or disabled:
/// an Any inside it of a type Baton does not know is skipped, not refused (the YAML path
/// drops such configs before parsing; protos received whole still carry them).
fn skips_unknown_config(message: &DynamicMessage) -> bool {
    let flag = |name: &str| {
        message
            .get_field_by_name(name)
            .is_some_and(|v| v.as_bool() == Some(true))
    };
    match message.descriptor().full_name() {
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter" => {
            flag("is_optional")
        }
        "envoy.config.route.v3.FilterConfig" => flag("is_optional") || flag("disabled"),
        _ => false,
    }
}

fn is_unknown_any(value: &Value) -> bool {
    let Value::Message(any) = value else {
        return false;
    };
    if any.descriptor().full_name() != "google.protobuf.Any" {
        return false;
    }
    let type_url = any
        .get_field_by_name("type_url")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let name = type_url.rsplit('/').next().unwrap_or_default();
    pool().get_message_by_name(name).is_none()
}

fn walk_value(value: &Value, path: &mut String) -> Result<()> {
    match value {
        Value::Message(message) => walk(message, path),
        Value::List(items) => {
            let parent = path.len();
            for (i, item) in items.iter().enumerate() {
                let _ = write!(path, "[{i}]");
                walk_value(item, path)?;
                path.truncate(parent);
            }
            Ok(())
        }
        Value::Map(entries) => {
            let parent = path.len();
            for (key, item) in entries {
                let _ = match key {
                    MapKey::String(s) => write!(path, "[\"{s}\"]"),
                    other => write!(path, "[\"{other:?}\"]"),
                };
                walk_value(item, path)?;
                path.truncate(parent);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Any contents: decode through the pool and keep walking (the path stays the Any's own,
/// matching how the YAML nests the message under `typed_config`).
fn walk_any(any: &DynamicMessage, path: &mut String) -> Result<()> {
    let type_url = any
        .get_field_by_name("type_url")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let bytes = any
        .get_field_by_name("value")
        .and_then(|v| v.as_bytes().cloned())
        .unwrap_or_default();
    let name = type_url.rsplit('/').next().unwrap_or_default();
    let Some(descriptor) = pool().get_message_by_name(name) else {
        return Err(ConfigError::at(
            join(path, "@type"),
            format!("unknown type '{type_url}'"),
        ));
    };
    let inner = DynamicMessage::decode(descriptor, bytes.as_ref())
        .map_err(|e| ConfigError::at(path.as_str(), format!("cannot decode '{type_url}': {e}")))?;
    walk(&inner, path)
}
