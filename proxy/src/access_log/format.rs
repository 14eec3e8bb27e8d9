//! The substitution formatter: renders a parsed `%COMMAND%` template against one request's
//! [`StreamInfo`] and headers. Shared by access logs (text and JSON) and by header values
//! such as `%DOWNSTREAM_REMOTE_ADDRESS%` in `request_headers_to_add`.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use baton_config::model::{
    FormatOperator, FormatPart, FormatTemplate, HeaderRef, JsonFormatValue, MetadataOwner,
};
use http::{HeaderMap, HeaderName, Method, Uri, Version};

use super::operators;
use super::stream_info::{authority_of, StreamInfo};
use crate::base::address::HostAddress;

/// The request/response data a template can read, borrowed for one render.
#[derive(Debug, Clone, Copy)]
pub struct FormatInput<'a> {
    /// Stream facts.
    pub info: &'a StreamInfo,
    /// `:method`
    pub method: Option<&'a Method>,
    /// `:path` / `:authority` / `:scheme`
    pub uri: Option<&'a Uri>,
    /// Request headers.
    pub request_headers: Option<&'a HeaderMap>,
    /// Response headers.
    pub response_headers: Option<&'a HeaderMap>,
    /// Response trailers.
    pub response_trailers: Option<&'a HeaderMap>,
    /// The body of the local reply being formatted (`%LOCAL_REPLY_BODY%`).
    pub local_reply_body: Option<&'a str>,
}

impl<'a> FormatInput<'a> {
    /// Input with only stream facts (no headers yet).
    pub fn new(info: &'a StreamInfo) -> Self {
        Self {
            info,
            method: None,
            uri: None,
            request_headers: None,
            response_headers: None,
            response_trailers: None,
            local_reply_body: None,
        }
    }
}

/// One rendered command value, typed as Envoy types it in JSON logs.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// Not available: `-` in text, `null` in JSON.
    Missing,
    /// A string.
    Str(Cow<'a, str>),
    /// A number.
    Num(u64),
    /// A metadata value that is not a string: JSON text in text formats, itself in JSON
    /// ones.
    Json(serde_json::Value),
}

fn millis(d: Option<Duration>) -> Value<'static> {
    match d {
        Some(d) => Value::Num(d.as_millis() as u64),
        None => Value::Missing,
    }
}

fn addr(a: SocketAddr) -> Value<'static> {
    Value::Str(Cow::Owned(a.to_string()))
}

fn addr_ip(a: SocketAddr) -> Value<'static> {
    Value::Str(Cow::Owned(a.ip().to_string()))
}

/// The upstream connection's local address, once the request had a connection.
fn upstream_local(info: &StreamInfo) -> Option<SocketAddr> {
    info.upstream_conn.and_then(|c| c.local)
}

fn header<'a>(map: Option<&'a HeaderMap>, name: &HeaderName) -> Option<&'a str> {
    map?.get(name).and_then(|v| v.to_str().ok())
}

fn protocol_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "-",
    }
}

/// The host name of this machine (`%HOSTNAME%`), read once.
fn hostname() -> &'static str {
    static HOSTNAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOSTNAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "-".to_string())
    })
}

fn request_ref<'a>(input: &FormatInput<'a>, r: &HeaderRef) -> Option<Cow<'a, str>> {
    match r {
        HeaderRef::Name(n) => header(input.request_headers, n).map(Cow::Borrowed),
        HeaderRef::Method => input.method.map(|m| Cow::Borrowed(m.as_str())),
        HeaderRef::Path => input
            .uri
            .and_then(|u| u.path_and_query())
            .map(|p| Cow::Borrowed(p.as_str())),
        HeaderRef::Authority => {
            let uri = input.uri?;
            match input.request_headers {
                Some(h) => authority_of(uri, h).map(Cow::Borrowed),
                None => uri.authority().map(|a| Cow::Borrowed(a.as_str())),
            }
        }
        HeaderRef::Scheme => Some(Cow::Borrowed(
            input
                .uri
                .and_then(|u| u.scheme_str())
                .or(input.info.scheme)
                .unwrap_or(if input.info.conn.tls { "https" } else { "http" }),
        )),
        HeaderRef::Status => None,
    }
}

fn response_ref<'a>(input: &FormatInput<'a>, r: &HeaderRef) -> Option<Cow<'a, str>> {
    match r {
        HeaderRef::Name(n) => header(input.response_headers, n).map(Cow::Borrowed),
        HeaderRef::Status => input.info.response_code.map(|c| Cow::Owned(c.to_string())),
        _ => None,
    }
}

/// Converts Envoy's strftime extensions (`%E3S`, `%3f`, `%f`) to chrono's and formats.
pub(super) fn format_time(t: SystemTime, pattern: Option<&str>) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    let Some(pattern) = pattern else {
        return dt.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    };
    let nanos = dt.timestamp_subsec_nanos();
    let mut converted = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            converted.push(c);
            continue;
        }
        // Envoy: %E<n>S = seconds with n fractional digits; %<n>f = n fractional digits;
        // %f = 9 digits; %s = epoch seconds.
        let mut digits = String::new();
        let extended = chars.peek() == Some(&'E');
        if extended {
            chars.next();
        }
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            digits.push(*d);
            chars.next();
        }
        let n: usize = digits.parse().unwrap_or(9).clamp(1, 9);
        match chars.next() {
            Some('S') if extended => {
                let _ = write!(converted, "%S.{}", &format!("{nanos:09}")[..n]);
            }
            Some('f') => {
                let _ = write!(converted, "{}", &format!("{nanos:09}")[..n]);
            }
            Some(other) => {
                converted.push('%');
                if extended {
                    converted.push('E');
                }
                converted.push_str(&digits);
                converted.push(other);
            }
            None => converted.push('%'),
        }
    }
    let mut out = String::new();
    // chrono reports invalid patterns through fmt::Error: fall back to the raw pattern.
    if write!(out, "{}", dt.format(&converted)).is_err() {
        return pattern.to_string();
    }
    out
}

/// The value of one command.
pub fn value<'a>(op: &FormatOperator, input: &FormatInput<'a>) -> Value<'a> {
    let info = input.info;
    let opt_str = |s: Option<Cow<'a, str>>| s.map(Value::Str).unwrap_or(Value::Missing);
    match op {
        FormatOperator::StartTime(pattern) => {
            Value::Str(Cow::Owned(format_time(info.start_time, pattern.as_deref())))
        }
        FormatOperator::Req(primary, fallback) => opt_str(
            header(input.request_headers, primary)
                .or_else(|| {
                    fallback
                        .as_ref()
                        .and_then(|f| header(input.request_headers, f))
                })
                .map(Cow::Borrowed),
        ),
        FormatOperator::ReqPseudo(primary, fallback) => opt_str(
            request_ref(input, primary)
                .or_else(|| fallback.as_ref().and_then(|f| request_ref(input, f))),
        ),
        FormatOperator::Resp(primary, fallback) => opt_str(
            header(input.response_headers, primary)
                .or_else(|| {
                    fallback
                        .as_ref()
                        .and_then(|f| header(input.response_headers, f))
                })
                .map(Cow::Borrowed),
        ),
        FormatOperator::RespPseudo(primary, fallback) => opt_str(
            response_ref(input, primary)
                .or_else(|| fallback.as_ref().and_then(|f| response_ref(input, f))),
        ),
        FormatOperator::Trailer(name) => {
            opt_str(header(input.response_trailers, name).map(Cow::Borrowed))
        }
        FormatOperator::ResponseCode => Value::Num(info.response_code.unwrap_or(0) as u64),
        FormatOperator::ResponseCodeDetails => opt_str(
            info.response_code_details
                .as_deref()
                .map(|d| Cow::Owned(d.replace(' ', "_"))),
        ),
        FormatOperator::ResponseFlags | FormatOperator::ResponseFlagsLong => {
            let mut s = String::new();
            info.flags
                .write_to(&mut s, matches!(op, FormatOperator::ResponseFlagsLong));
            Value::Str(Cow::Owned(s))
        }
        FormatOperator::Duration => millis(Some(
            info.last_downstream_tx.unwrap_or_else(|| info.elapsed()),
        )),
        FormatOperator::RequestDuration => millis(info.request_complete),
        FormatOperator::ResponseDuration => millis(info.first_upstream_rx),
        FormatOperator::ResponseTxDuration => {
            match (info.first_upstream_rx, info.last_downstream_tx) {
                (Some(rx), Some(tx)) => millis(Some(tx.saturating_sub(rx))),
                _ => Value::Missing,
            }
        }
        FormatOperator::BytesReceived => Value::Num(info.bytes_received),
        FormatOperator::BytesSent => Value::Num(info.bytes_sent),
        FormatOperator::Protocol => match info.protocol {
            Some(v) => Value::Str(Cow::Borrowed(protocol_name(v))),
            None => Value::Missing,
        },
        FormatOperator::UpstreamRemoteAddress if info.upstream_conn.is_none() => Value::Missing,
        FormatOperator::UpstreamRemoteAddressWithoutPort | FormatOperator::UpstreamRemotePort
            if info.upstream_conn.is_none() =>
        {
            Value::Missing
        }
        FormatOperator::UpstreamHost | FormatOperator::UpstreamRemoteAddress => {
            match info.upstream_host.as_deref().map(|h| &h.address) {
                Some(HostAddress::Ip(a)) => addr(*a),
                Some(HostAddress::Pipe(pipe)) => Value::Str(Cow::Borrowed(pipe.name())),
                None => Value::Missing,
            }
        }
        FormatOperator::UpstreamRemoteAddressWithoutPort => {
            match info.upstream_host.as_deref().map(|h| &h.address) {
                Some(HostAddress::Ip(a)) => addr_ip(*a),
                Some(HostAddress::Pipe(pipe)) => Value::Str(Cow::Borrowed(pipe.name())),
                None => Value::Missing,
            }
        }
        FormatOperator::UpstreamRemotePort => {
            match info.upstream_host.as_deref().map(|h| &h.address) {
                Some(HostAddress::Ip(a)) => Value::Num(u64::from(a.port())),
                _ => Value::Missing,
            }
        }
        FormatOperator::UpstreamHostName | FormatOperator::UpstreamHostNameWithoutPort => {
            let Some(host) = info.upstream_host.as_deref() else {
                return Value::Missing;
            };
            let without_port = matches!(op, FormatOperator::UpstreamHostNameWithoutPort);
            match (
                host.hostname.as_deref().filter(|n| !n.is_empty()),
                &host.address,
            ) {
                (Some(name), _) => Value::Str(Cow::Borrowed(name)),
                (None, HostAddress::Ip(a)) if without_port => addr_ip(*a),
                (None, HostAddress::Ip(a)) => addr(*a),
                (None, HostAddress::Pipe(pipe)) => Value::Str(Cow::Borrowed(pipe.name())),
            }
        }
        FormatOperator::UpstreamCluster => {
            opt_str(info.upstream_cluster.as_deref().map(Cow::Borrowed))
        }
        FormatOperator::UpstreamClusterRaw => {
            let raw = info
                .upstream_cluster_raw
                .as_ref()
                .or(info.upstream_cluster.as_ref());
            opt_str(raw.map(|name| Cow::Borrowed(&**name)))
        }
        FormatOperator::UpstreamProtocol => match info.upstream_conn.and_then(|c| c.protocol) {
            Some(v) => Value::Str(Cow::Borrowed(protocol_name(v))),
            None => Value::Missing,
        },
        FormatOperator::UpstreamLocalAddress => upstream_local(info).map_or(Value::Missing, addr),
        FormatOperator::UpstreamLocalAddressWithoutPort => {
            upstream_local(info).map_or(Value::Missing, addr_ip)
        }
        FormatOperator::UpstreamLocalPort => {
            upstream_local(info).map_or(Value::Missing, |a| Value::Num(u64::from(a.port())))
        }
        FormatOperator::DownstreamDirectRemotePort => {
            Value::Num(u64::from(info.conn.direct_remote().port()))
        }
        FormatOperator::Path { with_query, source } => {
            opt_str(operators::path(input, *with_query, *source))
        }
        FormatOperator::QueryParam(name) => opt_str(operators::query_param(input.uri, name)),
        FormatOperator::GrpcStatus(format) => operators::grpc_status(input, *format),
        FormatOperator::RequestHeadersBytes => Value::Num(operators::request_headers_bytes(input)),
        FormatOperator::ResponseHeadersBytes => {
            Value::Num(operators::response_headers_bytes(input))
        }
        FormatOperator::ResponseTrailersBytes => Value::Num(
            input
                .response_trailers
                .map_or(0, operators::header_map_bytes),
        ),
        FormatOperator::CustomFlags => Value::Str(Cow::Borrowed("")),
        // The TCP proxy's entries are the ones without an HTTP protocol.
        FormatOperator::AccessLogType => Value::Str(Cow::Borrowed(if info.protocol.is_some() {
            "DownstreamEnd"
        } else {
            "TcpConnectionEnd"
        })),
        FormatOperator::DownstreamTls(field) => super::tls_operators::value(field, info),
        FormatOperator::Metadata {
            source,
            namespace,
            keys,
        } => {
            let metadata = match source {
                MetadataOwner::Cluster => info.upstream_cluster_metadata.as_deref(),
                MetadataOwner::Route => info.route_metadata.as_deref(),
                MetadataOwner::UpstreamHost => info
                    .upstream_host
                    .as_deref()
                    .and_then(|h| h.socket_match.as_deref())
                    .map(|m| &m.endpoint),
            };
            super::operators::metadata(metadata, namespace, keys)
        }
        FormatOperator::NeverSet(_) => Value::Missing,
        FormatOperator::UpstreamTransportFailureReason => opt_str(
            info.upstream_transport_failure_reason
                .as_deref()
                .map(|d| Cow::Owned(d.replace(' ', "_"))),
        ),
        FormatOperator::DownstreamRemoteAddress => addr(info.downstream_remote),
        FormatOperator::DownstreamRemoteAddressWithoutPort => addr_ip(info.downstream_remote),
        FormatOperator::DownstreamRemotePort => Value::Num(info.downstream_remote.port() as u64),
        FormatOperator::DownstreamDirectRemoteAddress => addr(info.conn.direct_remote()),
        FormatOperator::DownstreamDirectRemoteAddressWithoutPort => {
            addr_ip(info.conn.direct_remote())
        }
        FormatOperator::DownstreamLocalAddress => addr(info.conn.local),
        FormatOperator::DownstreamLocalAddressWithoutPort => addr_ip(info.conn.local),
        FormatOperator::DownstreamLocalPort => Value::Num(info.conn.local.port() as u64),
        FormatOperator::RequestedServerName => {
            opt_str(info.conn.server_name.as_deref().map(Cow::Borrowed))
        }
        FormatOperator::DownstreamTlsVersion => opt_str(
            info.conn
                .tls_info
                .as_ref()
                .and_then(|t| t.version)
                .map(Cow::Borrowed),
        ),
        FormatOperator::DownstreamPeerSubject => opt_str(
            info.conn
                .tls_info
                .as_ref()
                .and_then(|t| t.peer.as_ref())
                .map(|p| Cow::Borrowed(p.subject.as_str())),
        ),
        FormatOperator::RouteName => opt_str(info.route_name.as_deref().map(Cow::Borrowed)),
        FormatOperator::UpstreamRequestAttemptCount => Value::Num(info.attempt_count as u64),
        FormatOperator::ConnectionId => Value::Num(info.conn.id),
        FormatOperator::Hostname => Value::Str(Cow::Borrowed(hostname())),
        FormatOperator::LocalReplyBody => opt_str(input.local_reply_body.map(Cow::Borrowed)),
    }
}

/// `s` cut to at most `max_len` bytes (`%OP(...):N%`), on a character boundary.
pub(crate) fn truncate(s: &str, max_len: Option<usize>) -> &str {
    match max_len {
        Some(n) if s.len() > n => {
            let mut end = n;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            &s[..end]
        }
        _ => s,
    }
}

/// Renders a template as text (`-` for missing values), appending to `out`.
pub fn render_text(template: &FormatTemplate, input: &FormatInput<'_>, out: &mut String) {
    render_text_with(template, input, out, false);
}

/// Renders a template as text, missing values as `-` or, with `omit_empty_values`, as
/// nothing.
pub fn render_text_with(
    template: &FormatTemplate,
    input: &FormatInput<'_>,
    out: &mut String,
    omit_empty_values: bool,
) {
    for part in &template.parts {
        match part {
            FormatPart::Literal(s) => out.push_str(s),
            FormatPart::Command(cmd) => match value(&cmd.op, input) {
                Value::Missing if omit_empty_values => {}
                Value::Missing => out.push('-'),
                Value::Str(s) => out.push_str(truncate(&s, cmd.max_len)),
                Value::Num(n) => {
                    let _ = write!(out, "{n}");
                }
                Value::Json(v) => {
                    let _ = write!(out, "{v}");
                }
            },
        }
    }
}

/// Renders a header-value template: like text, but a template that is a single command
/// whose value is missing renders empty (Envoy then leaves the header out).
pub fn render_header_value(template: &FormatTemplate, input: &FormatInput<'_>) -> String {
    if let Some(lit) = template.as_literal() {
        return lit.to_string();
    }
    let mut out = String::new();
    for part in &template.parts {
        match part {
            FormatPart::Literal(s) => out.push_str(s),
            FormatPart::Command(cmd) => match value(&cmd.op, input) {
                Value::Missing => {}
                Value::Str(s) => out.push_str(truncate(&s, cmd.max_len)),
                Value::Num(n) => {
                    let _ = write!(out, "{n}");
                }
                Value::Json(v) => {
                    let _ = write!(out, "{v}");
                }
            },
        }
    }
    out
}

fn json_template(template: &FormatTemplate, input: &FormatInput<'_>) -> serde_json::Value {
    if let [FormatPart::Command(cmd)] = template.parts.as_slice() {
        return match value(&cmd.op, input) {
            Value::Missing => serde_json::Value::Null,
            Value::Num(n) => serde_json::Value::from(n),
            Value::Str(s) => serde_json::Value::String(truncate(&s, cmd.max_len).to_string()),
            Value::Json(v) => v,
        };
    }
    let mut s = String::new();
    render_text(template, input, &mut s);
    serde_json::Value::String(s)
}

/// Renders a `json_format` object as a JSON value (keys sorted, as Envoy prints them).
pub fn json_object(
    fields: &[(String, JsonFormatValue)],
    input: &FormatInput<'_>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut map = serde_json::Map::with_capacity(fields.len());
    // Envoy prints keys sorted; insert in sorted order so the output is sorted whether or
    // not serde_json's `preserve_order` feature is on in the build.
    let mut sorted: Vec<&(String, JsonFormatValue)> = fields.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, v) in sorted {
        let rendered = match v {
            JsonFormatValue::Template(t) => json_template(t, input),
            JsonFormatValue::Object(o) => serde_json::Value::Object(json_object(o, input)),
            JsonFormatValue::Constant(c) => c.clone(),
        };
        map.insert(key.clone(), rendered);
    }
    map
}

/// Renders a `json_format` line (with trailing newline) into `out`. Keys are sorted, as
/// Envoy prints them.
pub fn render_json(
    fields: &[(String, JsonFormatValue)],
    input: &FormatInput<'_>,
    out: &mut String,
    omit_empty_values: bool,
) {
    let mut object = json_object(fields, input);
    if omit_empty_values {
        omit_empty(&mut object);
    }
    let _ = write!(out, "{}", serde_json::Value::Object(object));
    out.push('\n');
}

/// `omit_empty_values` in JSON: keys whose value is missing (null) go; empty strings
/// stay (as in Envoy 1.40).
fn omit_empty(object: &mut serde_json::Map<String, serde_json::Value>) {
    object.retain(|_, v| match v {
        serde_json::Value::Null => false,
        serde_json::Value::Object(inner) => {
            omit_empty(inner);
            true
        }
        _ => true,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::stream_info::{ResponseFlag, StreamInfo};
    use crate::base::conn_info::ConnInfo;
    use baton_config::model::FormatCommand;
    use std::sync::Arc;

    fn cmd(op: FormatOperator) -> FormatPart {
        FormatPart::Command(FormatCommand { op, max_len: None })
    }

    fn info() -> StreamInfo {
        let conn = ConnInfo::plain(
            "10.0.0.1:5555".parse().expect("addr"),
            "127.0.0.1:8080".parse().expect("addr"),
        );
        let mut info = StreamInfo::new(Arc::new(conn), Some(Version::HTTP_11));
        info.start_time = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        info.response_code = Some(200);
        info.bytes_sent = 42;
        info.last_downstream_tx = Some(Duration::from_millis(7));
        info
    }

    #[test]
    fn text_renders_values_and_dashes() {
        let info = info();
        let mut headers = HeaderMap::new();
        headers.insert("user-agent", "curl/8".parse().expect("value"));
        let uri: Uri = "/a?b=1".parse().expect("uri");
        let input = FormatInput {
            method: Some(&Method::GET),
            uri: Some(&uri),
            request_headers: Some(&headers),
            ..FormatInput::new(&info)
        };
        let t = FormatTemplate {
            parts: vec![
                FormatPart::Literal("[".into()),
                cmd(FormatOperator::StartTime(None)),
                FormatPart::Literal("] ".into()),
                cmd(FormatOperator::ReqPseudo(HeaderRef::Method, None)),
                FormatPart::Literal(" ".into()),
                cmd(FormatOperator::ReqPseudo(
                    HeaderRef::Name(HeaderName::from_static("x-envoy-original-path")),
                    Some(HeaderRef::Path),
                )),
                FormatPart::Literal(" ".into()),
                cmd(FormatOperator::Protocol),
                FormatPart::Literal(" ".into()),
                cmd(FormatOperator::ResponseCode),
                FormatPart::Literal(" ".into()),
                cmd(FormatOperator::ResponseFlags),
                FormatPart::Literal(" ".into()),
                cmd(FormatOperator::UpstreamHost),
                FormatPart::Literal(" ".into()),
                FormatPart::Command(FormatCommand {
                    op: FormatOperator::Req(HeaderName::from_static("user-agent"), None),
                    max_len: Some(3),
                }),
                FormatPart::Literal(" ".into()),
                cmd(FormatOperator::Duration),
            ],
        };
        let mut out = String::new();
        render_text(&t, &input, &mut out);
        assert_eq!(
            out,
            "[2023-11-14T22:13:20.123Z] GET /a?b=1 HTTP/1.1 200 - - cur 7"
        );
    }

    #[test]
    fn start_time_custom_patterns() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(
            format_time(t, Some("%Y/%m/%d %H:%M:%E3S")),
            "2023/11/14 22:13:20.123"
        );
        assert_eq!(format_time(t, Some("%s.%6f")), "1700000000.123000");
    }

    #[test]
    fn json_keeps_types() {
        let mut info = info();
        info.flags.set(ResponseFlag::UpstreamConnectionFailure);
        let input = FormatInput::new(&info);
        let fields = vec![
            (
                "code".to_string(),
                JsonFormatValue::Template(FormatTemplate {
                    parts: vec![cmd(FormatOperator::ResponseCode)],
                }),
            ),
            (
                "host".to_string(),
                JsonFormatValue::Template(FormatTemplate {
                    parts: vec![cmd(FormatOperator::UpstreamHost)],
                }),
            ),
            (
                "mixed".to_string(),
                JsonFormatValue::Template(FormatTemplate {
                    parts: vec![
                        FormatPart::Literal("a ".into()),
                        cmd(FormatOperator::ResponseFlags),
                    ],
                }),
            ),
            (
                "k".to_string(),
                JsonFormatValue::Constant(serde_json::json!(true)),
            ),
        ];
        let mut out = String::new();
        render_json(&fields, &input, &mut out, false);
        assert_eq!(
            out,
            "{\"code\":200,\"host\":null,\"k\":true,\"mixed\":\"a UF\"}\n"
        );
    }

    #[test]
    fn header_value_drops_missing() {
        let info = info();
        let input = FormatInput::new(&info);
        let t = FormatTemplate {
            parts: vec![cmd(FormatOperator::DownstreamRemoteAddress)],
        };
        assert_eq!(render_header_value(&t, &input), "10.0.0.1:5555");
        let t = FormatTemplate {
            parts: vec![cmd(FormatOperator::UpstreamHost)],
        };
        assert_eq!(render_header_value(&t, &input), "");
    }
}
