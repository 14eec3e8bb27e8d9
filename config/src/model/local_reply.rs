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
    /// `and_filter`
    And(Vec<AccessLogFilter>),
    /// `or_filter`
    Or(Vec<AccessLogFilter>),
}

/// `ComparisonFilter`: `op` with the runtime value's `default_value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comparison {
    /// `op`
    pub op: ComparisonOp,
    /// `value.default_value`
    pub value: u64,
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
    /// Whether `actual` passes.
    pub fn matches(self, actual: u64) -> bool {
        match self.op {
            ComparisonOp::Eq => actual == self.value,
            ComparisonOp::Ge => actual >= self.value,
            ComparisonOp::Le => actual <= self.value,
            ComparisonOp::Ne => actual != self.value,
        }
    }
}
