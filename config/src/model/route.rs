//! The route table model: `route_config`, virtual hosts, routes, their matchers and
//! actions (forward, redirect, direct response), and header mutations.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use regex::Regex;

use super::*;

/// `route_config`.
#[derive(Debug, Clone, Default)]
pub struct RouteConfig {
    /// `name`
    pub name: String,
    /// `virtual_hosts`, in config order.
    pub virtual_hosts: Vec<VirtualHost>,
    /// `request_headers_to_add` ... at route_config level.
    pub headers: HeaderMutations,
    /// `internal_only_headers`: stripped from requests from external clients.
    pub internal_only_headers: Vec<HeaderName>,
    /// `most_specific_header_mutations_wins`
    pub most_specific_header_mutations_wins: bool,
    /// `ignore_port_in_host_matching`: a virtual host is picked by the Host without its
    /// port (Envoy Gateway sets it on every route configuration).
    pub ignore_port_in_host_matching: bool,
    /// `typed_per_filter_config` at route config level.
    pub filter_overrides: FilterOverrides,
}

/// `virtual_hosts[]`.
#[derive(Debug, Clone)]
pub struct VirtualHost {
    /// `name`
    pub name: String,
    /// `domains`, lowercased, as configured (`*`, `*.suffix`, `prefix*`, exact,
    /// optionally with `:port`). Matching order is Envoy's: exact, then suffix
    /// wildcards (longest first), then prefix wildcards (longest first), then `*`.
    pub domains: Vec<String>,
    /// `routes`, in config order (first match wins).
    pub routes: Vec<Route>,
    /// Header mutations at virtual host level.
    pub headers: HeaderMutations,
    /// `typed_per_filter_config` at virtual host level.
    pub filter_overrides: FilterOverrides,
    /// `require_tls`: which plain-text requests are redirected to `https`.
    pub require_tls: RequireTls,
}

/// `VirtualHost.require_tls`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RequireTls {
    /// `NONE`
    #[default]
    None,
    /// `EXTERNAL_ONLY`: requests not marked `x-envoy-internal: true`.
    ExternalOnly,
    /// `ALL`
    All,
}

/// `routes[]`.
#[derive(Debug, Clone)]
pub struct Route {
    /// `name` (shared with each request's stream info for `%ROUTE_NAME%`).
    pub name: std::sync::Arc<str>,
    /// `match`
    pub matcher: RouteMatch,
    /// `route` / `redirect` / `direct_response`
    pub action: RouteAction,
    /// Header mutations at route level.
    pub headers: HeaderMutations,
    /// `typed_per_filter_config` at route level.
    pub filter_overrides: FilterOverrides,
    /// `metadata.filter_metadata` (None when empty): `%METADATA(ROUTE:...)%`.
    pub metadata: Option<std::sync::Arc<super::FilterMetadata>>,
    /// `tracing`: sampling shares that replace the connection manager's (which must have
    /// `tracing` for them to apply).
    pub tracing: Option<Box<super::TracingSampling>>,
}

/// `match`.
#[derive(Debug, Clone)]
pub struct RouteMatch {
    /// The path specifier.
    pub path: PathMatch,
    /// `case_sensitive` (default true; applies to prefix/path/path_separated_prefix).
    pub case_sensitive: bool,
    /// `headers`: all must match.
    pub headers: Vec<HeaderMatcher>,
    /// `query_parameters`: all must match.
    pub query_parameters: Vec<QueryParameterMatcher>,
    /// `grpc`: only gRPC requests (by `content-type`) match.
    pub grpc: bool,
    /// `runtime_fraction`: only this fraction of requests match.
    pub runtime_fraction: Option<RuntimeFraction>,
    /// `tls_context`: whether the downstream client presented a certificate, and
    /// whether it was validated (each `None`: not considered).
    pub tls_context: TlsContextMatch,
}

/// A route match's `tls_context` (`TlsContextMatchOptions`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsContextMatch {
    /// `presented`
    pub presented: Option<bool>,
    /// `validated`
    pub validated: Option<bool>,
}

/// A `RuntimeFractionalPercent`: `numerator` in `denominator`, unless the runtime key
/// holds a value (a whole number is a percentage; over 100 is always).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeFraction {
    /// `runtime_key`
    pub runtime_key: String,
    /// `default_value.numerator`
    pub numerator: u64,
    /// `default_value.denominator` as a number (100, 10 000 or 1 000 000)
    pub denominator: u64,
}

/// The `path_specifier` oneof.
#[derive(Debug, Clone)]
pub enum PathMatch {
    /// `prefix`
    Prefix(String),
    /// `path` (exact, query string excluded)
    Path(String),
    /// `safe_regex` (must match the whole path, query excluded)
    Regex(Regex),
    /// `path_separated_prefix`: the prefix, then end of path or `/`, `?`, `#`.
    PathSeparatedPrefix(String),
    /// `connect_matcher`: matches CONNECT requests only.
    Connect,
}

/// `headers[]` in a route match.
#[derive(Debug, Clone)]
pub struct HeaderMatcher {
    /// `name`, lowercased (`:authority` is `host`; ignored when `pseudo` is set).
    pub name: HeaderName,
    /// `:method`, `:path` or `:scheme`: read from the request line, not the headers.
    pub pseudo: Option<PseudoHeader>,
    /// The `header_match_specifier` oneof.
    pub spec: HeaderMatchSpec,
    /// `invert_match`
    pub invert: bool,
    /// `treat_missing_header_as_empty`
    pub treat_missing_as_empty: bool,
}

/// A request pseudo-header a route header matcher can name (other than `:authority`,
/// which is the `host` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PseudoHeader {
    /// `:method`
    Method,
    /// `:path` (with the query string)
    Path,
    /// `:scheme`
    Scheme,
}

/// `header_match_specifier`.
#[derive(Debug, Clone)]
pub enum HeaderMatchSpec {
    /// `present_match` (and a matcher with no specifier: presence)
    Present(bool),
    /// `range_match`: `start` inclusive, `end` exclusive, value parsed as i64.
    Range {
        /// inclusive
        start: i64,
        /// exclusive
        end: i64,
    },
    /// `exact_match` / `prefix_match` / `suffix_match` / `contains_match` /
    /// `safe_regex_match` / `string_match`
    String(StringMatcher),
}

/// `envoy.type.matcher.v3.StringMatcher`.
#[derive(Debug, Clone)]
pub struct StringMatcher {
    /// Which kind of match.
    pub kind: StringMatchKind,
    /// `ignore_case` (not for regex).
    pub ignore_case: bool,
}

/// `match_pattern` oneof of a StringMatcher.
#[derive(Debug, Clone)]
pub enum StringMatchKind {
    /// `exact`
    Exact(String),
    /// `prefix`
    Prefix(String),
    /// `suffix`
    Suffix(String),
    /// `contains`
    Contains(String),
    /// `safe_regex` (whole-value match)
    Regex(Regex),
}

/// `query_parameters[]`.
#[derive(Debug, Clone)]
pub struct QueryParameterMatcher {
    /// `name`
    pub name: String,
    /// `string_match`, or None for `present_match: true`.
    pub value: Option<StringMatcher>,
}

/// The route's `action` oneof.
#[derive(Debug, Clone)]
pub enum RouteAction {
    /// `route`
    Forward(Arc<ForwardAction>),
    /// `redirect`
    Redirect(Arc<RedirectAction>),
    /// `direct_response`
    DirectResponse(Arc<DirectResponseAction>),
}

/// `route` action.
#[derive(Debug, Clone)]
pub struct ForwardAction {
    /// `cluster` / `cluster_header` / `weighted_clusters`
    pub cluster: ClusterSpecifier,
    /// `prefix_rewrite`
    pub prefix_rewrite: Option<String>,
    /// `regex_rewrite` (pattern, unanchored; substitution as configured, with RE2-style
    /// `\1` group references)
    pub regex_rewrite: Option<(Regex, String)>,
    /// `host_rewrite_*`
    pub host_rewrite: HostRewrite,
    /// `append_x_forwarded_host`: a rewritten host's old value is appended to
    /// `x-forwarded-host`.
    pub append_x_forwarded_host: bool,
    /// `cluster_not_found_response_code`: the status when the cluster does not exist at
    /// request time (503, 404 or 500).
    pub cluster_not_found_status: u16,
    /// `timeout`: None when set to 0 (disabled). Default 15 s.
    pub timeout: Option<Duration>,
    /// `idle_timeout` (per-route stream idle timeout override): None when unset (use
    /// the connection manager's `stream_idle_timeout`); `Some(Duration::ZERO)` when set
    /// to 0, which disables the stream idle timeout for this route.
    pub idle_timeout: Option<Duration>,
    /// Per-route `upgrade_configs` overriding the HCM's.
    pub upgrade_configs: Vec<UpgradeConfig>,
    /// `max_stream_duration`. When it is set the route's `timeout` is not used (as
    /// Envoy: the stream's duration limit replaces the router's global timeout).
    pub max_stream_duration: Option<MaxStreamDuration>,
}

/// A route's `max_stream_duration`: how long a stream may last from its start; a
/// request's `grpc-timeout` takes over when `grpc_timeout_header_max` is set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaxStreamDuration {
    /// `max_stream_duration` (None: unset; zero: no limit).
    pub max: Option<Duration>,
    /// `grpc_timeout_header_max` (None: `grpc-timeout` is ignored; zero: no cap).
    pub grpc_header_max: Option<Duration>,
    /// `grpc_timeout_header_offset`, taken off the `grpc-timeout` value.
    pub grpc_header_offset: Option<Duration>,
}

/// `cluster_specifier`.
#[derive(Debug, Clone)]
pub enum ClusterSpecifier {
    /// `cluster`
    Name(String),
    /// `cluster_header`
    Header(HeaderName),
    /// `weighted_clusters`
    Weighted(WeightedClusters),
}

/// `weighted_clusters`.
#[derive(Debug, Clone)]
pub struct WeightedClusters {
    /// `clusters[]`: (name, weight, header mutations of that entry)
    pub clusters: Vec<WeightedCluster>,
    /// Sum of weights (`total_weight` is deprecated in v3: the sum is used).
    pub total_weight: u32,
}

/// `weighted_clusters.clusters[]`.
#[derive(Debug, Clone)]
pub struct WeightedCluster {
    /// `name`
    pub name: String,
    /// `weight`
    pub weight: u32,
    /// header mutations of this entry
    pub headers: HeaderMutations,
    /// `typed_per_filter_config` of this entry (most specific of all levels).
    pub filter_overrides: FilterOverrides,
}

/// `host_rewrite_specifier`.
#[derive(Debug, Clone)]
pub enum HostRewrite {
    /// keep the Host
    None,
    /// `host_rewrite_literal`
    Literal(HeaderValue),
    /// `auto_host_rewrite`: the upstream host's hostname (DNS clusters) or address.
    Auto,
    /// `host_rewrite_header`
    Header(HeaderName),
    /// `host_rewrite_path_regex`: the pattern (unanchored) and its substitution, applied to
    /// the request's path without its query; the result becomes the Host.
    PathRegex(Regex, String),
}

/// `redirect` action.
#[derive(Debug, Clone)]
pub struct RedirectAction {
    /// `scheme_redirect`, or "https" for `https_redirect: true`.
    pub scheme: Option<String>,
    /// `host_redirect`
    pub host: Option<String>,
    /// `port_redirect`
    pub port: Option<u16>,
    /// The `path_rewrite_specifier`.
    pub path: PathRedirect,
    /// `response_code` as a status: 301 (default), 302, 303, 307, 308.
    pub response_code: u16,
    /// `strip_query`
    pub strip_query: bool,
}

/// `path_rewrite_specifier` of a redirect.
#[derive(Debug, Clone)]
pub enum PathRedirect {
    /// keep the path
    Keep,
    /// `path_redirect` (may contain a query; then the original query is dropped)
    Path(String),
    /// `prefix_rewrite`
    Prefix(String),
    /// `regex_rewrite`
    Regex(Regex, String),
}

/// `direct_response` action.
#[derive(Debug, Clone)]
pub struct DirectResponseAction {
    /// `status`
    pub status: u16,
    /// `body` (inline_string / inline_bytes / filename read at load time)
    pub body: Option<Bytes>,
}

/// `request_headers_to_add/remove`, `response_headers_to_add/remove`.
#[derive(Debug, Clone, Default)]
pub struct HeaderMutations {
    /// `request_headers_to_add`
    pub request_add: Vec<HeaderValueOption>,
    /// `request_headers_to_remove`
    pub request_remove: Vec<HeaderName>,
    /// `response_headers_to_add`
    pub response_add: Vec<HeaderValueOption>,
    /// `response_headers_to_remove`
    pub response_remove: Vec<HeaderName>,
}

impl HeaderMutations {
    /// True when nothing is configured (lets the hot path skip the whole step).
    pub fn is_empty(&self) -> bool {
        self.request_add.is_empty()
            && self.request_remove.is_empty()
            && self.response_add.is_empty()
            && self.response_remove.is_empty()
    }
}

/// `HeaderValueOption`.
#[derive(Debug, Clone)]
pub struct HeaderValueOption {
    /// `header.key`, lowercased.
    pub name: HeaderName,
    /// `header.value` as a template (`%DOWNSTREAM_REMOTE_ADDRESS%` ...).
    pub value: FormatTemplate,
    /// `append_action` (or the deprecated `append` bool mapped to it).
    pub append_action: AppendAction,
    /// `keep_empty_value`
    pub keep_empty_value: bool,
}

/// `HeaderValueOption.append_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendAction {
    /// `APPEND_IF_EXISTS_OR_ADD` (default)
    AppendIfExistsOrAdd,
    /// `ADD_IF_ABSENT`
    AddIfAbsent,
    /// `OVERWRITE_IF_EXISTS_OR_ADD`
    OverwriteIfExistsOrAdd,
    /// `OVERWRITE_IF_EXISTS`
    OverwriteIfExists,
}
