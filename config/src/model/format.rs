//! Substitution format strings (`%REQ(X)%` ...) and access loggers of the runtime model,
//! shared by access logs and header values.

use std::path::PathBuf;

use http::header::HeaderName;

/// A parsed Envoy substitution format string (access logs and header values).
#[derive(Debug, Clone, Default)]
pub struct FormatTemplate {
    /// Literal text and commands, in order.
    pub parts: Vec<FormatPart>,
}

impl FormatTemplate {
    /// A template that is only literal text (fast path: no per-request formatting).
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [FormatPart::Literal(s)] => Some(s),
            _ => None,
        }
    }
}

/// One piece of a format string.
#[derive(Debug, Clone)]
pub enum FormatPart {
    /// Text copied as is.
    Literal(String),
    /// A `%COMMAND(arg):maxlen%`.
    Command(FormatCommand),
}

/// A `%COMMAND(arg):maxlen%` substitution.
#[derive(Debug, Clone)]
pub struct FormatCommand {
    /// Which value.
    pub op: FormatOperator,
    /// `:N` truncation.
    pub max_len: Option<usize>,
}

/// The supported substitution commands (a subset of Envoy's; unknown ones are config
/// errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatOperator {
    /// `%START_TIME%` or `%START_TIME(strftime)%`
    StartTime(Option<String>),
    /// `%REQ(X?Y)%`: request header X, falling back to Y
    Req(HeaderName, Option<HeaderName>),
    /// `%RESP(X?Y)%`
    Resp(HeaderName, Option<HeaderName>),
    /// `%TRAILER(X)%`
    Trailer(HeaderName),
    /// `%RESPONSE_CODE%`
    ResponseCode,
    /// `%RESPONSE_CODE_DETAILS%`
    ResponseCodeDetails,
    /// `%RESPONSE_FLAGS%`
    ResponseFlags,
    /// `%RESPONSE_FLAGS_LONG%`
    ResponseFlagsLong,
    /// `%DURATION%`
    Duration,
    /// `%REQUEST_DURATION%`
    RequestDuration,
    /// `%RESPONSE_DURATION%`
    ResponseDuration,
    /// `%RESPONSE_TX_DURATION%`
    ResponseTxDuration,
    /// `%BYTES_RECEIVED%`
    BytesReceived,
    /// `%BYTES_SENT%`
    BytesSent,
    /// `%PROTOCOL%`
    Protocol,
    /// `%UPSTREAM_HOST%`
    UpstreamHost,
    /// `%UPSTREAM_CLUSTER%`
    UpstreamCluster,
    /// `%UPSTREAM_LOCAL_ADDRESS%`
    UpstreamLocalAddress,
    /// `%UPSTREAM_TRANSPORT_FAILURE_REASON%`
    UpstreamTransportFailureReason,
    /// `%DOWNSTREAM_REMOTE_ADDRESS%`
    DownstreamRemoteAddress,
    /// `%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%`
    DownstreamRemoteAddressWithoutPort,
    /// `%DOWNSTREAM_REMOTE_PORT%`
    DownstreamRemotePort,
    /// `%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%`
    DownstreamDirectRemoteAddress,
    /// `%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%`
    DownstreamDirectRemoteAddressWithoutPort,
    /// `%DOWNSTREAM_LOCAL_ADDRESS%`
    DownstreamLocalAddress,
    /// `%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%`
    DownstreamLocalAddressWithoutPort,
    /// `%DOWNSTREAM_LOCAL_PORT%`
    DownstreamLocalPort,
    /// `%REQUESTED_SERVER_NAME%`
    RequestedServerName,
    /// `%DOWNSTREAM_TLS_VERSION%`
    DownstreamTlsVersion,
    /// `%DOWNSTREAM_PEER_SUBJECT%`
    DownstreamPeerSubject,
    /// `%ROUTE_NAME%`
    RouteName,
    /// `%UPSTREAM_REQUEST_ATTEMPT_COUNT%`
    UpstreamRequestAttemptCount,
    /// `%CONNECTION_ID%`
    ConnectionId,
    /// `%HOSTNAME%`
    Hostname,
    /// `%LOCAL_REPLY_BODY%`: the body of a local reply (in `local_reply_config` formats).
    LocalReplyBody,
    /// `%PROTOCOL%`-like constant: `%ENVIRONMENT(X)%` resolved at load time is a literal,
    /// so it never appears here.
    /// `%UPSTREAM_REMOTE_ADDRESS%`
    UpstreamRemoteAddress,
    /// `%REQ(X?Y)%` where X or Y is a pseudo-header (`:method`, `:path`, `:authority`,
    /// `:scheme`); `Req` is used when both are regular headers.
    ReqPseudo(HeaderRef, Option<HeaderRef>),
    /// `%RESP(X?Y)%` where X or Y is a pseudo-header (`:status`).
    RespPseudo(HeaderRef, Option<HeaderRef>),
    /// `%UPSTREAM_CLUSTER_RAW%`: the cluster's name (`%UPSTREAM_CLUSTER%` shows its
    /// `alt_stat_name` when it has one).
    UpstreamClusterRaw,
    /// `%UPSTREAM_PROTOCOL%`
    UpstreamProtocol,
    /// `%UPSTREAM_HOST_NAME%`: the endpoint's hostname, else its address.
    UpstreamHostName,
    /// `%UPSTREAM_HOST_NAME_WITHOUT_PORT%`
    UpstreamHostNameWithoutPort,
    /// `%UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%`
    UpstreamRemoteAddressWithoutPort,
    /// `%UPSTREAM_REMOTE_PORT%`
    UpstreamRemotePort,
    /// `%UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%`
    UpstreamLocalAddressWithoutPort,
    /// `%UPSTREAM_LOCAL_PORT%`
    UpstreamLocalPort,
    /// `%DOWNSTREAM_DIRECT_REMOTE_PORT%`
    DownstreamDirectRemotePort,
    /// `%PATH(WQ|NQ:ORIG|PATH|ORIG_OR_PATH)%`
    Path {
        /// `WQ` (default): with the query string; `NQ`: without.
        with_query: bool,
        /// Where the path comes from.
        source: PathSource,
    },
    /// `%QUERY_PARAM(name)%`: the first value of a query parameter, percent-decoded.
    QueryParam(String),
    /// `%GRPC_STATUS(format)%` / `%GRPC_STATUS_NUMBER%` (gRPC requests only).
    GrpcStatus(GrpcStatusFormat),
    /// `%REQUEST_HEADERS_BYTES%`: names and values of the request's headers (pseudo-headers
    /// included), as the router sent them.
    RequestHeadersBytes,
    /// `%RESPONSE_HEADERS_BYTES%`
    ResponseHeadersBytes,
    /// `%RESPONSE_TRAILERS_BYTES%`
    ResponseTrailersBytes,
    /// `%CUSTOM_FLAGS%`: empty (no filter of Baton's sets custom flags).
    CustomFlags,
    /// `%ACCESS_LOG_TYPE%`: `DownstreamEnd` (HTTP) or `TcpConnectionEnd` (TCP proxy).
    AccessLogType,
    /// A fact of the downstream TLS session or its certificates.
    DownstreamTls(DownstreamTlsField),
    /// `%CLUSTER_METADATA(ns:key...)%`, `%UPSTREAM_METADATA(...)%`, `%METADATA(KIND:...)%`.
    Metadata {
        /// Whose metadata.
        source: MetadataOwner,
        /// The filter namespace.
        namespace: String,
        /// Keys into it, outermost first (empty: the whole namespace).
        keys: Vec<String>,
    },
    /// An operator Envoy knows whose value only features Baton does not have set (dynamic
    /// metadata, filter state, virtual clusters, tracing, L4 termination details): always
    /// `-`, as Envoy shows it without those features. Holds the operator's name.
    NeverSet(&'static str),
}

/// `%DOWNSTREAM_TLS_CIPHER%`, `%DOWNSTREAM_PEER_*%`, `%DOWNSTREAM_LOCAL_*%`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownstreamTlsField {
    /// `%DOWNSTREAM_TLS_CIPHER%` (OpenSSL's name)
    Cipher,
    /// `%DOWNSTREAM_PEER_ISSUER%` (RFC 2253)
    PeerIssuer,
    /// `%DOWNSTREAM_PEER_SERIAL%` (lowercase hex)
    PeerSerial,
    /// `%DOWNSTREAM_PEER_URI_SAN%` (comma-separated)
    PeerUriSan,
    /// `%DOWNSTREAM_PEER_DNS_SAN%`
    PeerDnsSan,
    /// `%DOWNSTREAM_PEER_IP_SAN%`
    PeerIpSan,
    /// `%DOWNSTREAM_PEER_EMAIL_SAN%`
    PeerEmailSan,
    /// `%DOWNSTREAM_PEER_FINGERPRINT_256%` (lowercase hex SHA-256 of the DER)
    PeerFingerprint256,
    /// `%DOWNSTREAM_PEER_FINGERPRINT_1%` (lowercase hex SHA-1 of the DER)
    PeerFingerprint1,
    /// `%DOWNSTREAM_PEER_CERT%` (URL-encoded PEM)
    PeerCert,
    /// `%DOWNSTREAM_PEER_CERT_V_START(pattern)%`
    PeerValidFrom(Option<String>),
    /// `%DOWNSTREAM_PEER_CERT_V_END(pattern)%`
    PeerValidUntil(Option<String>),
    /// `%DOWNSTREAM_LOCAL_SUBJECT%`: Baton's certificate's subject.
    LocalSubject,
    /// `%DOWNSTREAM_LOCAL_URI_SAN%`: Baton's certificate's URI SANs.
    LocalUriSan,
    /// `%DOWNSTREAM_LOCAL_DNS_SAN%`: Baton's certificate's DNS SANs (comma-separated).
    LocalDnsSan,
}

/// Whose `filter_metadata` a metadata operator reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataOwner {
    /// The upstream cluster's.
    Cluster,
    /// The upstream host's (its endpoint's).
    UpstreamHost,
    /// The route's.
    Route,
}

/// Where `%PATH%` takes the path from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathSource {
    /// `ORIG`: `x-envoy-original-path` (set by a rewrite).
    Original,
    /// `PATH`: `:path` as forwarded.
    Path,
    /// `ORIG_OR_PATH` (default): the original path if rewritten, else `:path`.
    OriginalOrPath,
}

/// How `%GRPC_STATUS%` prints a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcStatusFormat {
    /// `CAMEL_STRING` (default): `Unavailable`.
    Camel,
    /// `SNAKE_STRING`: `UNAVAILABLE`.
    Snake,
    /// `NUMBER`: `14`.
    Number,
}

/// A header named in a format command: a regular header or an HTTP pseudo-header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderRef {
    /// A regular header (lowercased).
    Name(HeaderName),
    /// `:method`
    Method,
    /// `:path` (path and query as received)
    Path,
    /// `:authority` (HTTP/1.1 `host`)
    Authority,
    /// `:scheme`
    Scheme,
    /// `:status`
    Status,
}

/// One access logger.
#[derive(Debug, Clone)]
pub struct AccessLog {
    /// `filter`: the entry is written only when it passes.
    pub filter: Option<super::AccessLogFilter>,
    /// Where lines go.
    pub sink: AccessLogSink,
    /// How a line is formatted.
    pub format: AccessLogFormat,
    /// `log_format.omit_empty_values`: missing values render as nothing (text) or leave
    /// their key out (JSON).
    pub omit_empty_values: bool,
}

/// Access log destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogSink {
    /// `envoy.access_loggers.file` with `path` (`/dev/stdout` maps to Stdout).
    File(PathBuf),
    /// `envoy.access_loggers.stdout`
    Stdout,
    /// `envoy.access_loggers.stderr`
    Stderr,
}

/// Access log line format.
#[derive(Debug, Clone)]
pub enum AccessLogFormat {
    /// `text_format_source` / `format` / Envoy's default format when absent. Includes
    /// the trailing newline when the config's text has one (the default does).
    Text(FormatTemplate),
    /// `json_format`: keys in config order, each value a template (a value that is a
    /// single command keeps its type: numbers stay numbers, as in Envoy).
    Json(Vec<(String, JsonFormatValue)>),
}

/// A `json_format` value.
#[derive(Debug, Clone)]
pub enum JsonFormatValue {
    /// A string template.
    Template(FormatTemplate),
    /// A nested object.
    Object(Vec<(String, JsonFormatValue)>),
    /// A constant number/bool/null copied as is.
    Constant(serde_json::Value),
}
