//! `local_reply_config` of the connection manager (mappers and `body_format`) and the
//! access-log filters its mappers select with.

use super::{AccessLogFormat, HeaderMatcher, HeaderValueOption};

/// `local_reply_config`: rewrites every reply the proxy makes itself.
#[derive(Debug, Clone, Default)]
pub struct LocalReplyConfig {
    /// `mappers`, in order: the first whose filter matches applies, the rest are skipped.
    pub mappers: Vec<LocalReplyMapper>,
    /// `body_format`: `None` keeps the reply's own body (Envoy's `%LOCAL_REPLY_BODY%`
    /// as `text/plain`).
    pub body_format: Option<BodyFormat>,
}

/// One `ResponseMapper`.
#[derive(Debug, Clone)]
pub struct LocalReplyMapper {
    /// `filter`
    pub filter: AccessLogFilter,
    /// `status_code`
    pub status_code: Option<u16>,
    /// `body`: replaces the reply's body (`%LOCAL_REPLY_BODY%`).
    pub body: Option<String>,
    /// `body_format_override`
    pub body_format_override: Option<BodyFormat>,
    /// `headers_to_add` (formatted with the reply's status before `status_code` applies).
    pub headers_to_add: Vec<HeaderValueOption>,
}

/// A `SubstitutionFormatString` used as a local reply body.
#[derive(Debug, Clone)]
pub struct BodyFormat {
    /// The text or JSON template.
    pub format: AccessLogFormat,
    /// `content_type`, else `text/plain` for text and `application/json` for JSON.
    pub content_type: String,
    /// `omit_empty_values`: missing values render as nothing (text) or leave the key out
    /// (JSON).
    pub omit_empty_values: bool,
}

/// An access-log filter (`envoy.config.accesslog.v3.AccessLogFilter`).
#[derive(Debug, Clone)]
pub enum AccessLogFilter {
    /// `status_code_filter`: the response code compared with a value.
    StatusCode(Comparison),
    /// `duration_filter`: the stream's duration in milliseconds compared with a value.
    Duration(Comparison),
    /// `not_health_check_filter`: true unless the request was a health check (Baton has
    /// no health check filter, so always true).
    NotHealthCheck,
    /// `response_flag_filter`: any of these flags (short names) is set; any flag at all
    /// when the list is empty.
    ResponseFlag(Vec<String>),
    /// `header_filter`: a request header matcher.
    Header(HeaderMatcher),
    /// `traceable_filter`: whether the stream is traced. Baton does no tracing (a
    /// connection manager's `tracing` is refused), so never true, as Envoy without it.
    Traceable,
    /// `runtime_filter`
    Runtime(RuntimeFilter),
    /// `grpc_status_filter`: the gRPC status (response trailers, then headers, else
    /// mapped from the HTTP status) is one of `statuses`, or with `exclude` is not.
    GrpcStatus {
        /// `statuses` as numbers
        statuses: Vec<i32>,
        /// `exclude`
        exclude: bool,
    },
    /// `metadata_filter`: matches dynamic metadata. Baton sets none, so the result is
    /// always `match_if_key_not_found` (default true), as Envoy's for an absent key.
    Metadata {
        /// `match_if_key_not_found`
        match_if_key_not_found: bool,
    },
    /// `log_type_filter`: the entry's type is one of `types`, or with `exclude` is not.
    LogType {
        /// `types`
        types: Vec<AccessLogType>,
        /// `exclude`
        exclude: bool,
    },
    /// `and_filter`
    And(Vec<AccessLogFilter>),
    /// `or_filter`
    Or(Vec<AccessLogFilter>),
}

/// `RuntimeFilter`: logs `numerator` in `denominator` streams, the numerator read from
/// the runtime key when it is set there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeFilter {
    /// `runtime_key`
    pub runtime_key: String,
    /// `percent_sampled.numerator` (default 0)
    pub numerator: u64,
    /// `percent_sampled.denominator` as a number (100, 10 000 or 1 000 000)
    pub denominator: u64,
    /// `use_independent_randomness`: a random draw instead of one from `x-request-id`.
    pub use_independent_randomness: bool,
}

/// `envoy.data.accesslog.v3.AccessLogType`: why an entry is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogType {
    /// `NotSet` (local reply mappers)
    NotSet,
    /// `TcpConnectionEnd` (tcp_proxy)
    TcpConnectionEnd,
    /// `DownstreamEnd` (the connection manager, at the end of a stream)
    DownstreamEnd,
    /// Any other type: Baton writes no such entries.
    Other(i32),
}

/// `ComparisonFilter`: `op` with the runtime value (`value.runtime_key` when the
/// runtime has it, else `value.default_value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// `op`
    pub op: ComparisonOp,
    /// `value.default_value`
    pub value: u64,
    /// `value.runtime_key`
    pub runtime_key: String,
}

/// `ComparisonFilter.Op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComparisonOp {
    /// `EQ`
    Eq,
    /// `GE`
    Ge,
    /// `LE`
    Le,
    /// `NE`
    Ne,
}

impl Comparison {
    /// Whether `actual` passes against `value` (the runtime's, or the default).
    pub fn matches(&self, actual: u64, value: u64) -> bool {
        match self.op {
            ComparisonOp::Eq => actual == value,
            ComparisonOp::Ge => actual >= value,
            ComparisonOp::Le => actual <= value,
            ComparisonOp::Ne => actual != value,
        }
    }
}
