//! Per-request facts (Envoy's StreamInfo) gathered by the HTTP connection manager and read
//! by the substitution formatter: access log lines and `%...%` header values.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use baton_config::model::FilterMetadata;
use http::{HeaderMap, Method, Uri, Version};

use crate::base::conn_info::ConnRef;
use crate::upstream::{Host, UpstreamConnFacts};

/// Envoy's response flags, in Envoy's bit order (which is also the order they print in).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseFlags(u32);

/// (short name, long name) of every flag, indexed by bit.
const FLAG_NAMES: [(&str, &str); 29] = [
    ("LH", "FailedLocalHealthCheck"),
    ("UH", "NoHealthyUpstream"),
    ("UT", "UpstreamRequestTimeout"),
    ("LR", "LocalReset"),
    ("UR", "UpstreamRemoteReset"),
    ("UF", "UpstreamConnectionFailure"),
    ("UC", "UpstreamConnectionTermination"),
    ("UO", "UpstreamOverflow"),
    ("NR", "NoRouteFound"),
    ("DI", "DelayInjected"),
    ("FI", "FaultInjected"),
    ("RL", "RateLimited"),
    ("UAEX", "UnauthorizedExternalService"),
    ("RLSE", "RateLimitServiceError"),
    ("DC", "DownstreamConnectionTermination"),
    ("URX", "UpstreamRetryLimitExceeded"),
    ("SI", "StreamIdleTimeout"),
    ("IH", "InvalidEnvoyRequestHeaders"),
    ("DPE", "DownstreamProtocolError"),
    ("UMSDR", "UpstreamMaxStreamDurationReached"),
    ("RFCF", "ResponseFromCacheFilter"),
    ("NFCF", "NoFilterConfigFound"),
    ("DT", "DurationTimeout"),
    ("UPE", "UpstreamProtocolError"),
    ("NC", "NoClusterFound"),
    ("OM", "OverloadManager"),
    ("DF", "DnsResolutionFailed"),
    ("DO", "DropOverLoad"),
    ("DR", "DownstreamRemoteReset"),
];

/// One response flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ResponseFlag {
    /// LH
    FailedLocalHealthCheck = 0,
    /// UH
    NoHealthyUpstream = 1,
    /// UT
    UpstreamRequestTimeout = 2,
    /// LR
    LocalReset = 3,
    /// UR
    UpstreamRemoteReset = 4,
    /// UF
    UpstreamConnectionFailure = 5,
    /// UC
    UpstreamConnectionTermination = 6,
    /// UO
    UpstreamOverflow = 7,
    /// NR
    NoRouteFound = 8,
    /// DC
    DownstreamConnectionTermination = 14,
    /// URX
    UpstreamRetryLimitExceeded = 15,
    /// SI
    StreamIdleTimeout = 16,
    /// DPE
    DownstreamProtocolError = 18,
    /// DT
    DurationTimeout = 22,
    /// UPE
    UpstreamProtocolError = 23,
    /// NC
    NoClusterFound = 24,
    /// DR
    DownstreamRemoteReset = 28,
}

impl ResponseFlags {
    /// Adds a flag.
    pub fn set(&mut self, flag: ResponseFlag) {
        self.0 |= 1 << (flag as u8);
    }

    /// True when `flag` is set.
    pub fn has(self, flag: ResponseFlag) -> bool {
        self.0 & (1 << (flag as u8)) != 0
    }

    /// True when the flag Envoy calls `short` (`NR`, `UH` ...) is set.
    pub fn has_named(self, short: &str) -> bool {
        FLAG_NAMES
            .iter()
            .position(|(s, _)| *s == short)
            .is_some_and(|bit| self.0 & (1 << bit) != 0)
    }

    /// True when no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Writes the flags as Envoy prints them (`UF,URX`; `-` when empty).
    pub fn write_to(self, out: &mut String, long: bool) {
        if self.0 == 0 {
            out.push('-');
            return;
        }
        let mut first = true;
        for (bit, (short, long_name)) in FLAG_NAMES.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str(if long { long_name } else { short });
            }
        }
    }
}

/// The downstream request as the formatter sees it (pseudo-headers plus headers).
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// `:method`
    pub method: Method,
    /// `:path` (path and query) and, for HTTP/2, `:authority`/`:scheme`.
    pub uri: Uri,
    /// The request headers (after the connection manager's own changes).
    pub headers: HeaderMap,
}

impl RequestHead {
    /// `:authority`: the Host header for HTTP/1.1, the URI authority for HTTP/2.
    pub fn authority(&self) -> Option<&str> {
        authority_of(&self.uri, &self.headers)
    }
}

/// `:authority` of a request: the URI authority if present, else the Host header.
pub fn authority_of<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    if let Some(a) = uri.authority() {
        return Some(a.as_str());
    }
    headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
}

/// Everything known about one request/response exchange.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// The downstream connection.
    pub conn: ConnRef,
    /// Wall-clock start (`%START_TIME%`).
    pub start_time: SystemTime,
    /// Monotonic start (durations).
    pub start: Instant,
    /// Downstream protocol.
    pub protocol: Option<Version>,
    /// `scheme_header_transformation.scheme_to_overwrite` (`%REQ(:SCHEME)%` of HTTP/1
    /// requests, which carry none).
    pub scheme: Option<&'static str>,
    /// The client address after XFF processing (`%DOWNSTREAM_REMOTE_ADDRESS%`).
    pub downstream_remote: SocketAddr,
    /// Status sent downstream.
    pub response_code: Option<u16>,
    /// `%RESPONSE_CODE_DETAILS%` (`via_upstream`, `route_not_found`, ...).
    pub response_code_details: Option<std::borrow::Cow<'static, str>>,
    /// `%RESPONSE_FLAGS%`
    pub flags: ResponseFlags,
    /// Request body bytes received.
    pub bytes_received: u64,
    /// Response body bytes sent.
    pub bytes_sent: u64,
    /// The host that answered or failed (`%UPSTREAM_HOST%`: `ip:port`, or the socket path
    /// of a `pipe` host; `%UPSTREAM_HOST_NAME%`).
    pub upstream_host: Option<Arc<Host>>,
    /// `%UPSTREAM_CLUSTER%`: the cluster's `alt_stat_name`, else its name.
    pub upstream_cluster: Option<Arc<str>>,
    /// `%UPSTREAM_CLUSTER_RAW%`: the cluster's name, set only when `alt_stat_name` makes
    /// it differ from `upstream_cluster` (one reference count per request, not two).
    pub upstream_cluster_raw: Option<Arc<str>>,
    /// The cluster's `filter_metadata` (`%CLUSTER_METADATA%`).
    pub upstream_cluster_metadata: Option<Arc<FilterMetadata>>,
    /// The route's `filter_metadata` (`%METADATA(ROUTE:...)%`).
    pub route_metadata: Option<Arc<FilterMetadata>>,
    /// The upstream connection the request went out on, once it had one
    /// (`%UPSTREAM_LOCAL_ADDRESS%`, `%UPSTREAM_PROTOCOL%`; `%UPSTREAM_REMOTE_ADDRESS%` is
    /// shown only then, while `%UPSTREAM_HOST%` names the host picked either way).
    pub upstream_conn: Option<UpstreamConnFacts>,
    /// `%UPSTREAM_TRANSPORT_FAILURE_REASON%`
    pub upstream_transport_failure_reason: Option<String>,
    /// `%ROUTE_NAME%` (None when the route has no name).
    pub route_name: Option<Arc<str>>,
    /// `%UPSTREAM_REQUEST_ATTEMPT_COUNT%`
    pub attempt_count: u32,
    /// Time from start until the request was fully received.
    pub request_complete: Option<Duration>,
    /// Time from start until the first upstream response byte (headers).
    pub first_upstream_rx: Option<Duration>,
    /// Time from start until the first response byte went downstream.
    pub first_downstream_tx: Option<Duration>,
    /// Time from start until the last response byte went downstream.
    pub last_downstream_tx: Option<Duration>,
    /// HCM `tracing` traced the request for `x-envoy-force-trace` (Envoy's
    /// `traceable_filter` takes only those, not sampled or client traces).
    pub trace_forced: bool,
    /// The `x-request-id` to return: the request was internal and carried
    /// `x-envoy-force-trace` (see `http::trace_decision`).
    pub force_trace_request_id: Option<http::HeaderValue>,
}

impl StreamInfo {
    /// A fresh exchange on `conn`, starting now.
    pub fn new(conn: impl Into<ConnRef>, protocol: Option<Version>) -> Self {
        Self::starting_at(conn, protocol, Instant::now())
    }

    /// A fresh exchange on `conn` that started at `start` (the caller's clock read of
    /// now, shared with its other timings).
    pub fn starting_at(
        conn: impl Into<ConnRef>,
        protocol: Option<Version>,
        start: Instant,
    ) -> Self {
        let conn = conn.into();
        let remote = conn.remote;
        Self {
            conn,
            start_time: SystemTime::now(),
            start,
            protocol,
            scheme: None,
            downstream_remote: remote,
            response_code: None,
            response_code_details: None,
            flags: ResponseFlags::default(),
            bytes_received: 0,
            bytes_sent: 0,
            upstream_host: None,
            upstream_cluster: None,
            upstream_cluster_raw: None,
            upstream_cluster_metadata: None,
            route_metadata: None,
            upstream_conn: None,
            upstream_transport_failure_reason: None,
            route_name: None,
            attempt_count: 0,
            request_complete: None,
            first_upstream_rx: None,
            first_downstream_tx: None,
            last_downstream_tx: None,
            trace_forced: false,
            force_trace_request_id: None,
        }
    }

    /// Time elapsed since the start.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_print_in_envoy_order() {
        let mut f = ResponseFlags::default();
        let mut s = String::new();
        f.write_to(&mut s, false);
        assert_eq!(s, "-");
        f.set(ResponseFlag::NoClusterFound);
        f.set(ResponseFlag::UpstreamConnectionFailure);
        s.clear();
        f.write_to(&mut s, false);
        assert_eq!(s, "UF,NC");
        s.clear();
        f.write_to(&mut s, true);
        assert_eq!(s, "UpstreamConnectionFailure,NoClusterFound");
        assert!(f.has(ResponseFlag::UpstreamConnectionFailure));
    }
}
