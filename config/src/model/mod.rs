//! Baton's immutable runtime model: plain structs with no prost or serde in them, built
//! once per snapshot by `translate` from the Envoy v3 protos. Everything derivable from
//! config (regexes, header names/values, format templates, defaults) is resolved here so
//! the request path never parses or validates anything.
//!
//! Defaults follow Envoy's documented defaults; each field's doc names the Envoy field.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderValue;

mod cluster;
mod format;
mod http_filter;
mod local_reply;
mod route;
mod runtime;
mod server;
mod socket_matcher;
mod tls;
mod xds;

pub use cluster::*;
pub use format::*;
pub use http_filter::*;
pub use local_reply::*;
pub use route::*;
pub use runtime::*;
pub use server::*;
pub use socket_matcher::*;
pub use tls::*;
pub use xds::*;

/// A whole translated bootstrap.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// `node.id` / `node.cluster` (or `--service-node` / `--service-cluster`).
    pub node: Node,
    /// `admin`, when it has an address.
    pub admin: Option<Admin>,
    /// `static_resources.listeners`, in config order.
    pub listeners: Vec<Arc<Listener>>,
    /// `static_resources.clusters`, in config order.
    pub clusters: Vec<Arc<Cluster>>,
    /// `dynamic_resources` (all None without it).
    pub dynamic: DynamicResources,
    /// `overload_manager` with the `envoy.resource_monitors.global_downstream_max_connections`
    /// monitor: its `max_active_downstream_connections`, counted across every worker and
    /// every listener that does not ignore it.
    pub global_downstream_max_connections: Option<u64>,
    /// `layered_runtime.layers`, in order (later layers overlay earlier ones). Shown by
    /// admin `/runtime`; Baton acts on one runtime key (the xDS-TP federation flag, read
    /// into `dynamic.federation`).
    pub runtime_layers: Vec<RuntimeLayer>,
    /// `stats_config`: how stat names become Prometheus names and labels, and which
    /// stats are exported.
    pub stats: StatsConfig,
    /// `cluster_manager`.
    pub cluster_manager: ClusterManagerConfig,
    /// `application_log_config.log_format` (None: the command line's `--log-format`).
    pub application_log_format: Option<ApplicationLogFormat>,
    /// `deferred_stat_options.enable_deferred_creation_stats`: Envoy creates some stat
    /// groups on first use (so `/stats` omits them until then); Baton creates every
    /// stat up front, so they are listed with 0 from the start.
    pub deferred_creation_stats: bool,
    /// `bootstrap_extensions`, in order.
    pub bootstrap_extensions: Vec<BootstrapExtension>,
}

/// Stat names one cluster may create, with headroom (about 100 today: upstream_cx_*,
/// upstream_rq_*, lb_*, membership_*, circuit breakers, per-code counters, histograms).
const STATS_PER_CLUSTER: u32 = 192;
/// Stat names one listener (and its connection manager) may create, with headroom.
const STATS_PER_LISTENER: u32 = 128;
/// Server, admin, runtime and per-host stats not tied to one cluster or listener.
const STATS_BASE: u32 = 64 * 1024;
/// Clusters a bootstrap with CDS has room for beyond its static ones: what CDS delivers
/// is unknown when the region is created, and a region never grows, so it is sized for a
/// large control plane (16 Ki clusters: about 3 M names, a sparse file of about 1.3 GiB
/// of which only the pages of stats actually created are ever touched).
const DYNAMIC_CLUSTERS_ROOM: u32 = 16 * 1024;
/// Listeners a bootstrap with LDS has room for beyond its static ones.
const DYNAMIC_LISTENERS_ROOM: u32 = 1024;

/// A name as a stat scope segment, as Envoy sanitizes scope names: one leading and one
/// trailing `.` dropped, `://`, `:/` and `:` (and NUL) each become `_` (so a cluster
/// named `xdstp://cp/envoy.config.cluster.v3.Cluster/a` counts under
/// `cluster.xdstp_cp/envoy.config.cluster.v3.Cluster/a.`).
pub fn sanitize_stat_name(name: &str) -> String {
    let name = name.strip_suffix('.').unwrap_or(name);
    let name = name.strip_prefix('.').unwrap_or(name);
    if !name.contains([':', '\0']) {
        return name.to_string();
    }
    name.replace("://", "_")
        .replace(":/", "_")
        .replace([':', '\0'], "_")
}

impl Bootstrap {
    /// How many stat names a stats region should have room for to hold every stat this
    /// config creates, with headroom, so a big config does not overflow the region by
    /// default: the static resources, plus room for [`DYNAMIC_CLUSTERS_ROOM`] clusters
    /// when CDS is configured and [`DYNAMIC_LISTENERS_ROOM`] listeners when LDS is.
    pub fn stats_capacity_hint(&self) -> u32 {
        let dynamic_clusters = if self.dynamic.cds.is_some() {
            DYNAMIC_CLUSTERS_ROOM
        } else {
            0
        };
        let dynamic_listeners = if self.dynamic.lds.is_some() {
            DYNAMIC_LISTENERS_ROOM
        } else {
            0
        };
        let clusters = u32::try_from(self.clusters.len())
            .unwrap_or(u32::MAX)
            .saturating_add(dynamic_clusters);
        let listeners = u32::try_from(self.listeners.len())
            .unwrap_or(u32::MAX)
            .saturating_add(dynamic_listeners);
        let per_resource = clusters
            .saturating_mul(STATS_PER_CLUSTER)
            .saturating_add(listeners.saturating_mul(STATS_PER_LISTENER));
        STATS_BASE.saturating_add(per_resource)
    }

    /// Whether anything subscribes to xDS: `dynamic_resources`, an EDS cluster or an HCM
    /// with `rds` among the static resources.
    pub fn uses_xds(&self) -> bool {
        let dynamic = &self.dynamic;
        dynamic.ads.is_some()
            || dynamic.cds.is_some()
            || dynamic.lds.is_some()
            || self.clusters.iter().any(|c| c.eds.is_some())
            || self.listeners.iter().any(|l| {
                l.all_filter_chains().any(
                    |chain| matches!(&chain.network, NetworkFilter::Http(hcm) if hcm.rds.is_some()),
                )
            })
    }

    /// Whether a static listener or cluster takes a certificate or validation context
    /// from SDS (a secret file or a control plane).
    pub fn uses_sds(&self) -> bool {
        let listeners = self.listeners.iter().any(|l| {
            l.all_filter_chains().any(|chain| {
                chain.tls.as_ref().is_some_and(|t| {
                    !t.sds_certificates.is_empty()
                        || t.sds_validation.is_some()
                        || !t.xds_certificates.is_empty()
                        || t.xds_validation.is_some()
                        || t.sds_session_ticket_keys.is_some()
                        || t.xds_session_ticket_keys.is_some()
                })
            })
        });
        listeners
            || self.clusters.iter().any(|c| {
                c.tls.as_ref().is_some_and(|t| {
                    t.sds_certificate.is_some()
                        || t.sds_validation.is_some()
                        || t.xds_certificate.is_some()
                        || t.xds_validation.is_some()
                })
            })
    }

    /// Envoy refuses to subscribe (xDS, and SDS even from a file) without a node
    /// identity: call after `--service-node` / `--service-cluster` have been applied to
    /// [`Bootstrap::node`].
    pub fn check_node_for_xds(&self) -> Result<(), crate::ConfigError> {
        if (self.uses_xds() || self.uses_sds())
            && (self.node.id.is_empty() || self.node.cluster.is_empty())
        {
            return Err(crate::ConfigError::at(
                "node",
                "node 'id' and 'cluster' are required when xDS is used; set them in 'node' or with --service-node and --service-cluster",
            ));
        }
        Ok(())
    }
}

/// `node`.
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// `node.id`
    pub id: String,
    /// `node.cluster`
    pub cluster: String,
    /// `node.locality` (or `--service-zone` for its zone), as `region/zone/sub_zone`
    /// like [`LocalityEndpoints::locality`]: zone-aware routing compares the two.
    pub locality: Locality,
}

/// A `Locality`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Locality {
    /// `region`
    pub region: String,
    /// `zone`
    pub zone: String,
    /// `sub_zone`
    pub sub_zone: String,
}

impl Locality {
    /// `region/zone/sub_zone`, or "" when all three are empty: the form endpoints'
    /// localities take in [`LocalityEndpoints::locality`].
    pub fn name(&self) -> String {
        if self.region.is_empty() && self.zone.is_empty() && self.sub_zone.is_empty() {
            String::new()
        } else {
            format!("{}/{}/{}", self.region, self.zone, self.sub_zone)
        }
    }
}

/// `admin`.
#[derive(Debug, Clone)]
pub struct Admin {
    /// `admin.address.socket_address`
    pub address: SocketAddr,
    /// `admin.access_log`
    pub access_logs: Vec<AccessLog>,
}

/// One `listener`.
#[derive(Debug, Clone)]
pub struct Listener {
    /// `name` (Envoy generates a UUID-like name when empty; we use the address).
    pub name: String,
    /// `address.socket_address` (IPv4 or IPv6; port may be 0 in tests).
    pub address: SocketAddr,
    /// Stat prefix Envoy uses: `listener.<address>.` where address is `ip:port` with
    /// `:` sanitised to `_` (`listener.0.0.0.0_10000.`, `listener.[__1]_10000.`), or
    /// `listener.<stat_prefix>.` when `stat_prefix` is set.
    pub stat_prefix: String,
    /// `per_connection_buffer_limit_bytes` (default 1 MiB).
    pub per_connection_buffer_limit_bytes: u32,
    /// `filter_chains`
    pub filter_chains: Vec<Arc<FilterChain>>,
    /// `default_filter_chain`
    pub default_filter_chain: Option<Arc<FilterChain>>,
    /// True when `listener_filters` contains `envoy.filters.listener.tls_inspector`.
    pub tls_inspector: bool,
    /// `envoy.filters.listener.proxy_protocol` in `listener_filters` (before the TLS
    /// inspector): the PROXY header a load balancer sends ahead of the client's bytes.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// `listener_filters_timeout` (default 15 s; `None` when set to 0: no limit).
    pub listener_filters_timeout: Option<Duration>,
    /// `continue_on_listener_filters_timeout`: on timeout, pick a chain with what is
    /// known rather than close.
    pub continue_on_listener_filters_timeout: bool,
    /// `enable_reuse_port` (default true in Envoy on Linux).
    pub reuse_port: bool,
    /// `tcp_backlog_size`; 0 when unset (see [`Listener::listen_backlog`]).
    pub backlog: u32,
    /// `traffic_direction` is INBOUND (`/drain_listeners?inboundonly` drains only these).
    pub inbound: bool,
    /// `ignore_global_conn_limit` or `bypass_overload_manager`: the listener's
    /// connections are neither limited nor counted by the global connection limit.
    pub ignore_global_conn_limit: bool,
    /// `address.socket_address.ipv4_compat` (an IPv6 `::` or IPv4-mapped address only):
    /// the socket takes IPv4 connections too.
    pub ipv4_compat: bool,
    /// `max_connections_to_accept_per_socket_event` (None: accept while any is pending):
    /// after this many accepts in a row a worker's accept loop lets its other work run.
    pub max_accepts_per_event: Option<std::num::NonZeroU32>,
}

/// `envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProtocol {
    /// `allow_requests_without_proxy_protocol`: a connection without a header is served
    /// with its own addresses.
    pub allow_requests_without_proxy_protocol: bool,
    /// `disallowed_versions`: a header of these versions closes the connection.
    pub disallowed: ProxyProtocolVersions,
    /// `stat_prefix`: stats are `proxy_proto.<stat_prefix>.*` (empty: `proxy_proto.*`).
    pub stat_prefix: String,
}

/// A set of PROXY protocol versions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyProtocolVersions {
    /// Version 1 (text).
    pub v1: bool,
    /// Version 2 (binary).
    pub v2: bool,
}

impl Listener {
    /// Every filter chain: `filter_chains`, then `default_filter_chain`.
    pub fn all_filter_chains(&self) -> impl Iterator<Item = &Arc<FilterChain>> {
        self.filter_chains
            .iter()
            .chain(self.default_filter_chain.iter())
    }

    /// The `listen(2)` backlog: `tcp_backlog_size`, or when unset the system maximum
    /// (`net.core.somaxconn`; the kernel clamps larger values to it), as Envoy does on
    /// Linux. A short queue drops SYNs under connection bursts, which clients feel as
    /// 1 s+ retransmission stalls.
    pub fn listen_backlog(&self) -> i32 {
        match self.backlog {
            0 => i32::MAX,
            n => i32::try_from(n).unwrap_or(i32::MAX),
        }
    }
}

/// One `filter_chain`.
#[derive(Debug, Clone)]
pub struct FilterChain {
    /// `name`
    pub name: String,
    /// `filter_chain_match` (all-empty matches everything).
    pub matcher: FilterChainMatch,
    /// `transport_socket`: a `DownstreamTlsContext`, or `None` for plain text.
    pub tls: Option<Arc<DownstreamTlsContext>>,
    /// `transport_socket_connect_timeout`: bound on the TLS handshake (`None`: none).
    pub transport_socket_connect_timeout: Option<Duration>,
    /// `envoy.filters.network.connection_limit` before the terminal filter.
    pub connection_limit: Option<ConnectionLimit>,
    /// The terminal network filter (`filters`, last entry).
    pub network: NetworkFilter,
}

/// `envoy.filters.network.connection_limit`: at most `max_connections` open connections
/// on the filter chain; a connection over it is closed after `delay`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimit {
    /// `stat_prefix` (stats `connection_limit.<stat_prefix>.*`).
    pub stat_prefix: String,
    /// `max_connections` (at least 1).
    pub max_connections: u64,
    /// `delay` before a refused connection is closed (zero: at once).
    pub delay: std::time::Duration,
}

/// `filter_chain_match`. Empty vectors / `None` mean "any".
#[derive(Debug, Clone, Default)]
pub struct FilterChainMatch {
    /// `destination_port`
    pub destination_port: Option<u16>,
    /// `prefix_ranges` (destination IP).
    pub prefix_ranges: Vec<CidrRange>,
    /// `server_names` (exact or `*.wildcard`), lowercased.
    pub server_names: Vec<String>,
    /// `transport_protocol` (`raw_buffer` or `tls`).
    pub transport_protocol: Option<String>,
    /// `application_protocols` (ALPN).
    pub application_protocols: Vec<String>,
    /// `source_prefix_ranges`
    pub source_prefix_ranges: Vec<CidrRange>,
    /// `source_ports`
    pub source_ports: Vec<u16>,
}

/// An IP prefix (`address_prefix` / `prefix_len`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CidrRange {
    /// `address_prefix`
    pub addr: std::net::IpAddr,
    /// `prefix_len`
    pub len: u8,
}

/// The terminal network filter of a chain.
#[derive(Debug, Clone)]
pub enum NetworkFilter {
    /// `envoy.filters.network.http_connection_manager`
    Http(Arc<HttpConnectionManager>),
    /// `envoy.filters.network.tcp_proxy`
    TcpProxy(Arc<TcpProxy>),
}

/// `codec_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecType {
    /// `AUTO`: HTTP/2 by prior-knowledge preface (or ALPN), else HTTP/1.1.
    Auto,
    /// `HTTP1`
    Http1,
    /// `HTTP2`
    Http2,
}

/// `server_header_transformation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerHeaderTransformation {
    /// `OVERWRITE` (default): always set `server: <server_name>`.
    Overwrite,
    /// `APPEND_IF_ABSENT`
    AppendIfAbsent,
    /// `PASS_THROUGH`
    PassThrough,
}

/// `common_http_protocol_options.headers_with_underscores_action`: what a request header
/// whose name holds `_` gets (Envoy Gateway sets `REJECT_REQUEST` on every listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnderscoreHeaders {
    /// `ALLOW` (default): forwarded.
    #[default]
    Allow,
    /// `REJECT_REQUEST` (and any value Envoy does not name): HTTP/1 400 and close, an
    /// HTTP/2 stream reset.
    Reject,
    /// `DROP_HEADER`: removed before anything reads the request.
    Drop,
}

/// `scheme_header_transformation`: the `:scheme` of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchemeTransformation {
    /// The client's (HTTP/2) or the connection's (HTTP/1).
    #[default]
    Keep,
    /// `scheme_to_overwrite` (`http` or `https`): every request's `:scheme` and
    /// `x-forwarded-proto`.
    Overwrite(&'static str),
    /// `match_upstream`: requests go upstream with the scheme of the upstream connection.
    MatchUpstream,
}

/// `forward_client_cert_details`: what happens to `x-forwarded-client-cert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardClientCert {
    /// `SANITIZE` (default): removed.
    #[default]
    Sanitize,
    /// `FORWARD_ONLY`: kept on mTLS connections.
    ForwardOnly,
    /// `APPEND_FORWARD`: this client's details appended on mTLS connections.
    AppendForward,
    /// `SANITIZE_SET`: replaced by this client's details on mTLS connections.
    SanitizeSet,
    /// `ALWAYS_FORWARD_ONLY`: always kept.
    AlwaysForwardOnly,
}

/// `set_current_client_cert_details`: which client certificate facts XFCC carries
/// (besides `By` and `Hash`, always there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientCertDetails {
    /// `subject`
    pub subject: bool,
    /// `cert`
    pub cert: bool,
    /// `chain`
    pub chain: bool,
    /// `dns`
    pub dns: bool,
    /// `uri`
    pub uri: bool,
}

/// `request_id_extension`: the UUID extension's options (Envoy's defaults: both true).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestIdOptions {
    /// `pack_trace_reason`: the tracing decision is written into the id's 15th character.
    pub pack_trace_reason: bool,
    /// `use_request_id_for_trace_sampling`: random sampling reads the id's leading digits.
    pub use_request_id_for_trace_sampling: bool,
}

impl Default for RequestIdOptions {
    fn default() -> Self {
        Self {
            pack_trace_reason: true,
            use_request_id_for_trace_sampling: true,
        }
    }
}

/// Tracing sampling shares: the HCM's `tracing` (each `Percent` kept as Envoy keeps it,
/// hundredths of a percent: a [`Fraction`] over 10 000) or a route's `tracing` (each a
/// `FractionalPercent`, 100 % when unset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TracingSampling {
    /// `client_sampling` (default 100 %): requests with `x-client-trace-id`.
    pub client: Fraction,
    /// `random_sampling` (default 100 %).
    pub random: Fraction,
    /// `overall_sampling` (default 100 %): a cap over every other decision.
    pub overall: Fraction,
}

/// A `FractionalPercent`: `numerator` in `denominator` (100, 10 000 or 1 000 000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fraction {
    /// `numerator`
    pub numerator: u64,
    /// `denominator` as a number.
    pub denominator: u64,
}

impl Fraction {
    /// All of them (100 in 100).
    pub const ALL: Fraction = Fraction {
        numerator: 100,
        denominator: 100,
    };
}

/// `http_connection_manager`.
#[derive(Debug, Clone)]
pub struct HttpConnectionManager {
    /// `forward_client_cert_details`
    pub forward_client_cert: ForwardClientCert,
    /// `set_current_client_cert_details`
    pub set_current_client_cert: ClientCertDetails,
    /// `stat_prefix` (stats are `http.<stat_prefix>.`).
    pub stat_prefix: String,
    /// `codec_type`
    pub codec_type: CodecType,
    /// `route_config` (inline). With `rds` an empty table named after
    /// `rds.route_config_name`: the routes arrive by RDS.
    pub route_config: Arc<RouteConfig>,
    /// `rds`: where the route table comes from when not inline.
    pub rds: Option<Rds>,
    /// `http_filters` before the router, in config order (optional filters Baton does
    /// not implement are left out).
    pub http_filters: Vec<HttpFilter>,
    /// Router filter settings (`envoy.filters.http.router` typed_config).
    pub router: RouterConfig,
    /// `access_log`
    pub access_logs: Vec<AccessLog>,
    /// `use_remote_address` (default false)
    pub use_remote_address: bool,
    /// `xff_num_trusted_hops` (default 0)
    pub xff_num_trusted_hops: u32,
    /// `skip_xff_append` (default false)
    pub skip_xff_append: bool,
    /// `append_x_forwarded_port`: set `x-forwarded-port` to the listener's port when
    /// the request has none.
    pub append_x_forwarded_port: bool,
    /// `server_name` (default "envoy"; Baton keeps Envoy's default so dashboards and
    /// header checks written for Envoy keep working).
    pub server_name: HeaderValue,
    /// `server_header_transformation`
    pub server_header_transformation: ServerHeaderTransformation,
    /// `via`: appended to `via` on requests and responses when set.
    pub via: Option<HeaderValue>,
    /// `generate_request_id` (default true)
    pub generate_request_id: bool,
    /// `preserve_external_request_id` (default false)
    pub preserve_external_request_id: bool,
    /// `always_set_request_id_in_response` (default false)
    pub always_set_request_id_in_response: bool,
    /// `request_id_extension` (`UuidRequestIdConfig`; its defaults when absent).
    pub request_id: RequestIdOptions,
    /// `tracing` (without a provider): the per-request tracing decision; `None` when
    /// absent (no decision, no trace reason in `x-request-id`).
    pub tracing: Option<TracingSampling>,
    /// `max_request_headers_kb` (default 60).
    pub max_request_headers_kb: u32,
    /// `common_http_protocol_options.max_headers_count` (default 100).
    pub max_headers_count: u32,
    /// `common_http_protocol_options.headers_with_underscores_action`.
    pub underscore_headers: UnderscoreHeaders,
    /// `scheme_header_transformation`.
    pub scheme: SchemeTransformation,
    /// `request_headers_timeout` (default disabled).
    pub request_headers_timeout: Option<Duration>,
    /// `stream_idle_timeout` (default 300 s; 0 disables).
    pub stream_idle_timeout: Option<Duration>,
    /// `request_timeout` (default disabled).
    pub request_timeout: Option<Duration>,
    /// `common_http_protocol_options.idle_timeout` (default 1 h; 0 disables).
    pub idle_timeout: Option<Duration>,
    /// `common_http_protocol_options.max_connection_duration` (default disabled).
    pub max_connection_duration: Option<Duration>,
    /// `common_http_protocol_options.max_requests_per_connection` (None: unset or 0,
    /// unlimited): from this request on the connection drains.
    pub max_requests_per_connection: Option<u32>,
    /// `common_http_protocol_options.max_stream_duration`: every stream's duration limit
    /// from its start, unless its route sets one (None: unset or 0).
    pub max_stream_duration: Option<Duration>,
    /// `drain_timeout` (default 5 s): grace between GOAWAY/close notice and close.
    pub drain_timeout: Duration,
    /// `delayed_close_timeout` (default 1 s).
    pub delayed_close_timeout: Duration,
    /// `upgrade_configs`
    pub upgrade_configs: Vec<UpgradeConfig>,
    /// `http_protocol_options`
    pub http1: Http1Options,
    /// `http2_protocol_options`
    pub http2: Http2Options,
    /// `normalize_path` (default false): RFC 3986 normalisation of the path before
    /// routing.
    pub normalize_path: bool,
    /// `merge_slashes` (default false)
    pub merge_slashes: bool,
    /// `path_with_escaped_slashes_action` (`IMPLEMENTATION_SPECIFIC_DEFAULT` is Envoy's
    /// runtime default, keep unchanged).
    pub path_with_escaped_slashes_action: EscapedSlashesAction,
    /// `strip_matching_host_port`: drop the Host port when it is the listener's port.
    pub strip_matching_host_port: bool,
    /// `strip_any_host_port` (in the `strip_port_mode` oneof): drop any Host port.
    pub strip_any_host_port: bool,
    /// `internal_address_config`: when None, Envoy's default (RFC1918 + loopback are
    /// internal only when explicitly configured in 1.3x; we treat none as internal
    /// except what `cidr_ranges` lists).
    pub internal_cidrs: Vec<CidrRange>,
    /// `local_reply_config` (`None`: Envoy's default bodies).
    pub local_reply: Option<LocalReplyConfig>,
}

/// `path_with_escaped_slashes_action`: what a path holding `%2F`/`%2f`/`%5C`/`%5c` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EscapedSlashesAction {
    /// Forward the path as it is (also Envoy's `IMPLEMENTATION_SPECIFIC_DEFAULT`).
    #[default]
    KeepUnchanged,
    /// Answer 400.
    RejectRequest,
    /// Answer 307 with the unescaped (and otherwise normalised) path as `location`.
    UnescapeAndRedirect,
    /// Unescape them and carry on.
    UnescapeAndForward,
}

/// `envoy.extensions.filters.http.router.v3.Router`.
#[derive(Debug, Clone, Default)]
pub struct RouterConfig {
    /// `suppress_envoy_headers` (default false)
    pub suppress_envoy_headers: bool,
}

/// `upgrade_configs[]`.
#[derive(Debug, Clone)]
pub struct UpgradeConfig {
    /// `upgrade_type`, lowercased (`websocket`, `connect`, ...).
    pub upgrade_type: String,
    /// `enabled` (default true)
    pub enabled: bool,
    /// Route-level `connect_config` is present: the proxy terminates CONNECT itself
    /// (opens a TCP connection to the cluster, answers 200 and tunnels the bytes)
    /// instead of forwarding the CONNECT request upstream. Always false at the
    /// connection manager level, whose upgrade configs have no `connect_config`.
    pub terminate_connect: bool,
}

/// `http_protocol_options` (HTTP/1.1).
#[derive(Debug, Clone, Default)]
pub struct Http1Options {
    /// `accept_http_10`
    pub accept_http_10: bool,
    /// `default_host_for_http_10`
    pub default_host_for_http_10: Option<String>,
}

/// `http2_protocol_options`.
#[derive(Debug, Clone)]
pub struct Http2Options {
    /// `max_concurrent_streams` (default 1024: what Envoy 1.40 announces and enforces
    /// when unset, downstream and upstream; its docs still say 2147483647)
    pub max_concurrent_streams: u32,
    /// `initial_stream_window_size` (default 16 MiB, as Envoy 1.40 announces)
    pub initial_stream_window_size: u32,
    /// `initial_connection_window_size` (default 24 MiB, as Envoy 1.40 announces)
    pub initial_connection_window_size: u32,
    /// `allow_connect`
    pub allow_connect: bool,
    /// `connection_keepalive` with an `interval` (upstream only).
    pub keepalive: Option<Http2Keepalive>,
    /// `override_stream_error_on_invalid_http_message` when set, else
    /// `stream_error_on_invalid_http_messaging`: a request Envoy's codec finds malformed
    /// resets only its stream (RST_STREAM PROTOCOL_ERROR) instead of ending the connection
    /// without a GOAWAY (downstream only).
    pub stream_error_on_invalid_messaging: bool,
}

impl Default for Http2Options {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 1024,
            initial_stream_window_size: 16 * 1024 * 1024,
            initial_connection_window_size: 24 * 1024 * 1024,
            allow_connect: false,
            keepalive: None,
            stream_error_on_invalid_messaging: false,
        }
    }
}

/// `tcp_proxy`.
#[derive(Debug, Clone)]
pub struct TcpProxy {
    /// `stat_prefix` (stats are `tcp.<stat_prefix>.`).
    pub stat_prefix: String,
    /// `cluster` or `weighted_clusters`.
    pub cluster: TcpClusterSpecifier,
    /// `idle_timeout` (default 1 h; 0 disables).
    pub idle_timeout: Option<Duration>,
    /// `max_connect_attempts` (default 1).
    pub max_connect_attempts: u32,
    /// `max_downstream_connection_duration`
    pub max_downstream_connection_duration: Option<Duration>,
    /// `access_log`
    pub access_logs: Vec<AccessLog>,
}

/// tcp_proxy `cluster_specifier`.
#[derive(Debug, Clone)]
pub enum TcpClusterSpecifier {
    /// `cluster`
    Name(String),
    /// `weighted_clusters` (name, weight), total
    Weighted(Vec<(String, u32)>, u32),
}
