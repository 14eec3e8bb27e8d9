//! Clusters of the runtime model: discovery type, load balancing, endpoints, upstream
//! protocol and circuit breakers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::Http2Options;

/// `cluster.type` (discovery type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryType {
    /// `STATIC`
    Static,
    /// `STRICT_DNS`
    StrictDns,
    /// `LOGICAL_DNS`
    LogicalDns,
    /// `EDS`: endpoints from a `ClusterLoadAssignment` (see [`Cluster::eds`]).
    Eds,
}

/// `lb_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbPolicy {
    /// `ROUND_ROBIN` (default)
    RoundRobin,
    /// `LEAST_REQUEST` with `least_request_lb_config.choice_count` (default 2)
    LeastRequest {
        /// power-of-N choices
        choice_count: u32,
    },
    /// `RANDOM`
    Random,
}

/// How a cluster balances between localities: the `locality_lb_config` of its typed
/// policy, or `common_lb_config`'s `zone_aware_lb_config` / `locality_weighted_lb_config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalityLb {
    /// Zone-aware routing (Envoy's default; acts only with a local cluster).
    ZoneAware(ZoneAwareLbConfig),
    /// `locality_weighted_lb_config`: locality weights, no zone-aware routing.
    LocalityWeighted,
}

impl Default for LocalityLb {
    fn default() -> Self {
        LocalityLb::ZoneAware(ZoneAwareLbConfig::default())
    }
}

/// `zone_aware_lb_config`, with Envoy's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneAwareLbConfig {
    /// `routing_enabled` in whole percent (default 100): the share of picks that try
    /// zone-aware routing at all.
    pub routing_enabled_percent: u32,
    /// `min_cluster_size` (default 6): fewer healthy upstream hosts, no zone routing.
    pub min_cluster_size: u64,
    /// `fail_traffic_on_panic`: a cluster in panic mode fails requests instead of using
    /// every host.
    pub fail_traffic_on_panic: bool,
    /// `force_local_zone.min_size` (default 1; `force_locality_direct_routing` is a
    /// minimum of 1): everything to the local zone whenever the upstream has at least
    /// this many healthy hosts there, also with a one-zone local cluster. None: not
    /// forced.
    pub force_local_zone_min_size: Option<u32>,
    /// `locality_basis`: zone shares by healthy host count (default) or by their weights.
    pub basis_by_weight: bool,
}

impl Default for ZoneAwareLbConfig {
    fn default() -> Self {
        Self {
            routing_enabled_percent: 100,
            min_cluster_size: 6,
            fail_traffic_on_panic: false,
            force_local_zone_min_size: None,
            basis_by_weight: false,
        }
    }
}

/// `dns_lookup_family`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsLookupFamily {
    /// `AUTO` (default): IPv6 first, then IPv4... Envoy's AUTO prefers v6.
    Auto,
    /// `V4_ONLY`
    V4Only,
    /// `V6_ONLY`
    V6Only,
    /// `V4_PREFERRED`
    V4Preferred,
    /// `ALL`
    All,
}

/// DNS discovery settings of a STRICT_DNS / LOGICAL_DNS cluster besides
/// `dns_refresh_rate`, `respect_dns_ttl` and `dns_lookup_family`. They come from the
/// Cluster's own fields or from the `envoy.clusters.dns` extension (`DnsCluster`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsSettings {
    /// `DnsCluster.dns_min_refresh_rate`: floor of a TTL-derived refresh interval
    /// (zero, the default: the TTL is used as is).
    pub min_refresh_rate: Duration,
    /// `dns_failure_refresh_rate` (None: a failed resolution is retried after
    /// `dns_refresh_rate`).
    pub failure_refresh_rate: Option<DnsFailureRefreshRate>,
    /// `dns_jitter`: a random extra delay below this bound after each successful
    /// resolution (zero: none).
    pub jitter: Duration,
    /// Which name servers to ask and how: the cluster's own resolver config, else the
    /// bootstrap's, else the system's (`/etc/resolv.conf`).
    pub resolver: Arc<DnsResolverConfig>,
}

/// `dns_failure_refresh_rate`: jittered exponential backoff after failed resolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsFailureRefreshRate {
    /// `base_interval`
    pub base_interval: Duration,
    /// `max_interval` (default 10 x `base_interval`)
    pub max_interval: Duration,
}

/// A DNS resolver configuration (`CaresDnsResolverConfig`, or the deprecated
/// `dns_resolvers` / `dns_resolution_config` / `use_tcp_for_dns_lookups` spellings).
/// The default is Envoy's: the system's name servers and search domains, 5 s per try,
/// 4 tries, UDP.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DnsResolverConfig {
    /// `resolvers` (empty: the name servers of `/etc/resolv.conf`).
    pub resolvers: Vec<SocketAddr>,
    /// `use_resolvers_as_fallback`: use `resolvers` only when the system has none.
    pub use_resolvers_as_fallback: bool,
    /// `dns_resolver_options.use_tcp_for_dns_lookups`
    pub use_tcp: bool,
    /// `dns_resolver_options.no_default_search_domain`
    pub no_default_search_domain: bool,
    /// `query_timeout_seconds` (default 5 s)
    pub query_timeout: Duration,
    /// `query_tries` (default 4)
    pub query_tries: u32,
    /// `rotate_nameservers`
    pub rotate_nameservers: bool,
    /// `edns0_max_payload_size` (None: the resolver's default)
    pub edns0_max_payload_size: Option<u16>,
}

impl Default for DnsResolverConfig {
    fn default() -> Self {
        Self {
            resolvers: Vec::new(),
            use_resolvers_as_fallback: false,
            use_tcp: false,
            no_default_search_domain: false,
            query_timeout: Duration::from_secs(5),
            query_tries: 4,
            rotate_nameservers: false,
            edns0_max_payload_size: None,
        }
    }
}

impl Cluster {
    /// The response head size limit in bytes for `protocol` (HTTP/1: the status line,
    /// header lines and blank line; HTTP/2: the header list).
    pub fn response_headers_limit(&self, http2: bool) -> usize {
        let kb = self
            .max_response_headers_kb
            .unwrap_or(if http2 { 60 } else { 80 });
        (kb as usize).saturating_mul(1024)
    }
}

/// Which HTTP protocol a cluster speaks upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// default
    Http1,
    /// `http2_protocol_options` or `typed_extension_protocol_options`
    /// `envoy.extensions.upstreams.http.v3.HttpProtocolOptions` with explicit http2.
    Http2,
    /// `use_downstream_protocol_config`
    UseDownstream,
}

/// `circuit_breakers.thresholds[priority=DEFAULT]`.
#[derive(Debug, Clone, Copy)]
pub struct CircuitBreakers {
    /// `max_connections` (default 1024)
    pub max_connections: u32,
    /// `max_pending_requests` (default 1024)
    pub max_pending_requests: u32,
    /// `max_requests` (default 1024)
    pub max_requests: u32,
    /// `max_retries` (default 3)
    pub max_retries: u32,
}

impl Default for CircuitBreakers {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
        }
    }
}

/// A `cluster`.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// `name`
    pub name: String,
    /// `transport_socket`: an `UpstreamTlsContext`, or `None` for plain text.
    pub tls: Option<std::sync::Arc<super::UpstreamTlsContext>>,
    /// `transport_socket_matches`, in order (the first matching an endpoint wins).
    pub transport_socket_matches: Vec<TransportSocketMatch>,
    /// `transport_socket_matcher`: names the entry of `transport_socket_matches` per
    /// endpoint, in place of their `match` fields.
    pub transport_socket_matcher: Option<super::SocketMatcher>,
    /// `alt_stat_name` or name: stats are `cluster.<stat_name>.`.
    pub stat_name: String,
    /// `alt_stat_name` as given (`%UPSTREAM_CLUSTER%` shows it in place of the name).
    pub alt_stat_name: Option<Box<str>>,
    /// `metadata.filter_metadata` (None when empty): `%CLUSTER_METADATA(...)%`.
    pub metadata: Option<Arc<FilterMetadata>>,
    /// `type`
    pub discovery: DiscoveryType,
    /// `connect_timeout` (default 5 s)
    pub connect_timeout: Duration,
    /// `lb_policy`
    pub lb_policy: LbPolicy,
    /// Zone-aware routing or locality weighting.
    pub locality_lb: LocalityLb,
    /// `common_lb_config.healthy_panic_threshold` in whole percent (default 50): a
    /// priority level with a smaller healthy share is in panic (runtime key
    /// `upstream.healthy_panic_threshold` overrides it).
    pub healthy_panic_threshold_percent: u32,
    /// `dns_refresh_rate` (default 5 s)
    pub dns_refresh_rate: Duration,
    /// `respect_dns_ttl`
    pub respect_dns_ttl: bool,
    /// `dns_lookup_family`
    pub dns_lookup_family: DnsLookupFamily,
    /// The rest of the DNS discovery settings (refresh floor, failure backoff, jitter,
    /// resolver).
    pub dns: DnsSettings,
    /// `load_assignment` (empty for EDS clusters: Envoy ignores it there too).
    pub load_assignment: LoadAssignment,
    /// `eds_cluster_config` of a `type: EDS` cluster (None for every other type).
    pub eds: Option<super::EdsConfig>,
    /// Upstream protocol.
    pub protocol: UpstreamProtocol,
    /// `http2_protocol_options` when HTTP/2 is used.
    pub http2: Http2Options,
    /// `common_http_protocol_options.idle_timeout` upstream (default 1 h).
    pub idle_timeout: Option<Duration>,
    /// `common_http_protocol_options.max_requests_per_connection` (default unlimited).
    pub max_requests_per_connection: Option<u32>,
    /// `common_http_protocol_options.max_headers_count` (default 100): a response with
    /// more headers is a protocol error (502).
    pub max_response_headers_count: u32,
    /// `common_http_protocol_options.max_response_headers_kb`; None is Envoy's default
    /// (80 KiB for HTTP/1 responses, 60 KiB for HTTP/2). A larger response head is a
    /// protocol error (502).
    pub max_response_headers_kb: Option<u32>,
    /// `per_connection_buffer_limit_bytes` (default 1 MiB).
    pub per_connection_buffer_limit_bytes: u32,
    /// `circuit_breakers` default-priority thresholds.
    pub circuit_breakers: CircuitBreakers,
    /// `upstream_http_protocol_options` of the `HttpProtocolOptions`: SNI and SAN from
    /// the request.
    pub auto_sni: UpstreamAutoSni,
    /// `upstream_connection_options`: set on every connection to the cluster's hosts,
    /// the control-plane connection included.
    pub upstream_connection_options: UpstreamConnectionOptions,
}

/// `upstream_connection_options`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamConnectionOptions {
    /// `tcp_keepalive`: keepalive on with these settings (TCP hosts only; a `pipe` host
    /// has no TCP options).
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// `set_local_interface_name_on_upstream_connections`. Accepted: Envoy records the
    /// local interface's name for access logs and filters, none of which Baton has yet.
    pub set_local_interface_name: bool,
}

/// `tcp_keepalive`: each field unset keeps the system's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpKeepalive {
    /// `keepalive_probes` (`TCP_KEEPCNT`)
    pub probes: Option<u32>,
    /// `keepalive_time` in seconds (`TCP_KEEPIDLE`)
    pub time_secs: Option<u32>,
    /// `keepalive_interval` in seconds (`TCP_KEEPINTVL`)
    pub interval_secs: Option<u32>,
}

/// `upstream_http_protocol_options`: TLS names taken from each request's host (or
/// `override_auto_sni_header`), as the router sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamAutoSni {
    /// `auto_sni`: the host (port dropped) is the SNI, unless it is an IP address.
    pub sni: bool,
    /// `auto_san_validation`: the upstream's certificate must be for the host.
    pub san_validation: bool,
    /// `override_auto_sni_header`: read first; absent or empty, the host is used.
    pub override_header: Option<http::HeaderName>,
}

/// `load_assignment` (or an EDS `ClusterLoadAssignment`).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadAssignment {
    /// `endpoints[]` (localities).
    pub localities: Vec<LocalityEndpoints>,
    /// `policy.overprovisioning_factor` in percent (default 140).
    pub overprovisioning_factor: u32,
}

/// Envoy's default `policy.overprovisioning_factor` (percent).
pub const DEFAULT_OVERPROVISIONING_FACTOR: u32 = 140;

impl Default for LoadAssignment {
    fn default() -> Self {
        Self {
            localities: Vec::new(),
            overprovisioning_factor: DEFAULT_OVERPROVISIONING_FACTOR,
        }
    }
}

/// `load_assignment.endpoints[]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalityEndpoints {
    /// `locality` as `region/zone/sub_zone` (may be empty).
    pub locality: String,
    /// `priority` (0 is highest).
    pub priority: u32,
    /// `load_balancing_weight` (None = not set).
    pub weight: Option<u32>,
    /// `lb_endpoints[]`
    pub endpoints: Vec<Endpoint>,
}

/// `lb_endpoints[]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// `endpoint.address` (`socket_address` or `pipe`)
    pub address: EndpointAddress,
    /// `endpoint.hostname` (used by auto_host_rewrite when set)
    pub hostname: Option<String>,
    /// `load_balancing_weight` (default 1)
    pub weight: u32,
    /// `health_status` is HEALTHY/UNKNOWN (true) or not.
    pub healthy: bool,
    /// Its and its locality's `envoy.transport_socket_match` metadata (None: neither).
    pub socket_match: Option<Arc<SocketMatchMetadata>>,
}

/// The `filter_metadata` of an endpoint and of its locality, which choose its transport
/// socket among the cluster's matches (`envoy.transport_socket_match` for
/// `transport_socket_matches`, any filter for `transport_socket_matcher`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SocketMatchMetadata {
    /// `lb_endpoints[].metadata.filter_metadata`
    pub endpoint: FilterMetadata,
    /// `endpoints[].metadata.filter_metadata` (the locality's)
    pub locality: FilterMetadata,
}

/// `metadata.filter_metadata`: a struct per filter name.
pub type FilterMetadata = std::collections::HashMap<String, prost_types::Struct>;

/// The filter `transport_socket_matches` read.
const SOCKET_MATCH_FILTER: &str = "envoy.transport_socket_match";

/// One `transport_socket_matches` entry.
#[derive(Debug, Clone)]
pub struct TransportSocketMatch {
    /// `name` (stats are `cluster.<name>.<match name>.total_match_count`).
    pub name: String,
    /// `match`: every field must be in the metadata with an equal value (empty: any
    /// endpoint matches).
    pub criteria: prost_types::Struct,
    /// `transport_socket`: TLS, or `None` for plain text.
    pub tls: Option<Arc<super::UpstreamTlsContext>>,
}

impl TransportSocketMatch {
    fn matches(&self, metadata: Option<&prost_types::Struct>) -> bool {
        self.criteria.fields.iter().all(|(key, want)| {
            metadata
                .and_then(|m| m.fields.get(key))
                .is_some_and(|have| have == want)
        })
    }
}

/// The transport socket of an endpoint with `metadata`, as Envoy picks it with
/// `transport_socket_matches` alone: the first of `matches` matching the endpoint's
/// metadata, else the first matching its locality's; `None`: the cluster's own
/// `transport_socket`.
pub fn select_transport_socket(
    matches: &[TransportSocketMatch],
    metadata: Option<&SocketMatchMetadata>,
) -> Option<usize> {
    let endpoint = metadata.and_then(|m| m.endpoint.get(SOCKET_MATCH_FILTER));
    let locality = metadata.and_then(|m| m.locality.get(SOCKET_MATCH_FILTER));
    matches
        .iter()
        .position(|m| m.matches(endpoint))
        .or_else(|| matches.iter().position(|m| m.matches(locality)))
}

impl Cluster {
    /// Which of `transport_socket_matches` an endpoint with `metadata` connects with
    /// (`None`: the cluster's `transport_socket`): by `transport_socket_matcher` when set
    /// (the entries' `match` fields are then ignored, as Envoy), else by the entries.
    pub fn transport_socket_for(&self, metadata: Option<&SocketMatchMetadata>) -> Option<usize> {
        match &self.transport_socket_matcher {
            Some(matcher) => matcher.select(metadata),
            None => select_transport_socket(&self.transport_socket_matches, metadata),
        }
    }
}

/// An endpoint address: an IP (STATIC, EDS), a Unix domain socket (STATIC, EDS) or a
/// name resolved by DNS clusters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointAddress {
    /// A literal IP and port.
    Ip(SocketAddr),
    /// A Unix domain socket (`pipe.path`), validated as Envoy does: not empty, shorter
    /// than `sun_path` (108 bytes), no NUL byte unless abstract. A leading `@` names a
    /// Linux abstract socket (the `@` stands for the leading NUL byte). `pipe.mode` only
    /// matters for listeners and is not kept.
    Pipe(PathBuf),
    /// A DNS name and port (`STRICT_DNS` / `LOGICAL_DNS`).
    Dns {
        /// hostname
        host: String,
        /// port
        port: u16,
    },
}

/// An upstream HTTP/2 connection's `connection_keepalive`: a PING every `interval`; a
/// connection whose PING is not answered within `timeout` is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Keepalive {
    /// `interval`
    pub interval: Duration,
    /// `timeout`
    pub timeout: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::value::Kind;

    fn fields(pairs: &[(&str, Kind)]) -> prost_types::Struct {
        prost_types::Struct {
            fields: pairs
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        prost_types::Value {
                            kind: Some(v.clone()),
                        },
                    )
                })
                .collect(),
        }
    }

    fn matcher(name: &str, criteria: &[(&str, Kind)]) -> TransportSocketMatch {
        TransportSocketMatch {
            name: name.to_string(),
            criteria: fields(criteria),
            tls: None,
        }
    }

    #[test]
    fn endpoint_first_then_locality_then_default() {
        let matches = [
            matcher(
                "a",
                &[
                    ("tls", Kind::BoolValue(true)),
                    ("tier", Kind::StringValue("gold".into())),
                ],
            ),
            matcher("b", &[("tls", Kind::BoolValue(true))]),
        ];
        let filters = |s: Option<prost_types::Struct>| -> FilterMetadata {
            s.map(|s| (SOCKET_MATCH_FILTER.to_string(), s))
                .into_iter()
                .collect()
        };
        let md = |endpoint, locality| SocketMatchMetadata {
            endpoint: filters(endpoint),
            locality: filters(locality),
        };
        let tls = fields(&[("tls", Kind::BoolValue(true))]);
        let gold = fields(&[
            ("tls", Kind::BoolValue(true)),
            ("tier", Kind::StringValue("gold".into())),
        ]);
        let other = fields(&[("tls", Kind::StringValue("true".into()))]);
        assert_eq!(select_transport_socket(&matches, None), None);
        assert_eq!(
            select_transport_socket(&matches, Some(&md(Some(tls.clone()), None))),
            Some(1)
        );
        assert_eq!(
            select_transport_socket(&matches, Some(&md(Some(gold.clone()), None))),
            Some(0)
        );
        assert_eq!(
            select_transport_socket(&matches, Some(&md(Some(tls.clone()), Some(gold)))),
            Some(1),
            "an endpoint match wins over an earlier locality one"
        );
        assert_eq!(
            select_transport_socket(&matches, Some(&md(Some(other), Some(tls)))),
            Some(1)
        );
        let any = [matcher("any", &[])];
        assert_eq!(
            select_transport_socket(&any, None),
            Some(0),
            "empty criteria match everything"
        );
    }
}
