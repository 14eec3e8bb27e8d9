//! Envoy substitution format strings (`%REQ(X?Y):N%` ...) parsed into
//! [`FormatTemplate`]s at load time, for access logs and header values.

use http::header::HeaderName;

use crate::error::{ConfigError, Result};
use crate::model::{
    DownstreamTlsField, FormatCommand, FormatOperator, FormatPart, FormatTemplate,
    GrpcStatusFormat, HeaderRef, MetadataOwner, PathSource,
};

/// Envoy's default access log line (used when a logger gives no format).
pub(crate) const DEFAULT_ACCESS_LOG_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

/// Parses a format string; `path` names the field for errors.
pub(crate) fn parse(text: &str, path: &str) -> Result<FormatTemplate> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        literal.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        if let Some(tail) = after.strip_prefix('%') {
            // `%%` is a literal percent sign.
            literal.push('%');
            rest = tail;
            continue;
        }
        let end = command_end(after).ok_or_else(|| {
            ConfigError::at(
                path,
                format!("unterminated '%' command in format string '{text}'"),
            )
        })?;
        let command = parse_command(&after[..end], path)?;
        match command {
            Parsed::Literal(value) => literal.push_str(&value),
            Parsed::Command(command) => {
                if !literal.is_empty() {
                    parts.push(FormatPart::Literal(std::mem::take(&mut literal)));
                }
                parts.push(FormatPart::Command(command));
            }
        }
        rest = &after[end + 1..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(FormatPart::Literal(literal));
    }
    Ok(FormatTemplate { parts })
}

/// Index of the `%` closing a command, skipping over a parenthesised argument (which may
/// itself contain `%`, e.g. a strftime pattern).
fn command_end(after: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in after.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '%' if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

enum Parsed {
    Literal(String),
    Command(FormatCommand),
}

/// Operators that take a `:N` length (Envoy refuses one elsewhere).
const TAKES_LENGTH: [&str; 9] = [
    "REQ",
    "RESP",
    "TRAILER",
    "DYNAMIC_METADATA",
    "FILTER_STATE",
    "UPSTREAM_FILTER_STATE",
    "ENVIRONMENT",
    "QUERY_PARAM",
    "PATH",
];

/// Operators that take an argument but no length.
const TAKES_ARGUMENT: [&str; 7] = [
    "METADATA",
    "START_TIME",
    "DOWNSTREAM_PEER_CERT_V_START",
    "DOWNSTREAM_PEER_CERT_V_END",
    "GRPC_STATUS",
    "CLUSTER_METADATA",
    "UPSTREAM_METADATA",
];

/// Envoy 1.40's operators Baton does not render yet: a config error that says so.
const NOT_YET: [&str; 44] = [
    "CEL",
    "UPSTREAM_WIRE_BYTES_SENT",
    "UPSTREAM_WIRE_BYTES_RECEIVED",
    "UPSTREAM_HEADER_BYTES_SENT",
    "UPSTREAM_HEADER_BYTES_RECEIVED",
    "DOWNSTREAM_WIRE_BYTES_SENT",
    "DOWNSTREAM_WIRE_BYTES_RECEIVED",
    "DOWNSTREAM_HEADER_BYTES_SENT",
    "DOWNSTREAM_HEADER_BYTES_RECEIVED",
    "REQUEST_TX_DURATION",
    "COMMON_DURATION",
    "DOWNSTREAM_HANDSHAKE_DURATION",
    "STREAM_ID",
    "UNIQUE_ID",
    "UPSTREAM_CONNECTION_ID",
    "FILTER_CHAIN_NAME",
    "UPSTREAM_DETECTED_CLOSE_TYPE",
    "DOWNSTREAM_DETECTED_CLOSE_TYPE",
    "UPSTREAM_LOCAL_CLOSE_REASON",
    "DOWNSTREAM_LOCAL_ADDRESS_ENDPOINT_ID",
    "DOWNSTREAM_LOCAL_IP_SAN",
    "DOWNSTREAM_LOCAL_EMAIL_SAN",
    "DOWNSTREAM_LOCAL_OTHERNAME_SAN",
    "DOWNSTREAM_PEER_OTHERNAME_SAN",
    "DOWNSTREAM_TLS_SESSION_ID",
    "DOWNSTREAM_PEER_CHAIN_FINGERPRINTS_256",
    "DOWNSTREAM_PEER_CHAIN_FINGERPRINTS_1",
    "DOWNSTREAM_PEER_CHAIN_SERIALS",
    "UPSTREAM_PEER_SUBJECT",
    "UPSTREAM_PEER_ISSUER",
    "UPSTREAM_PEER_URI_SAN",
    "UPSTREAM_PEER_DNS_SAN",
    "UPSTREAM_PEER_IP_SAN",
    "UPSTREAM_LOCAL_URI_SAN",
    "UPSTREAM_TLS_SESSION_ID",
    "UPSTREAM_TLS_CIPHER",
    "UPSTREAM_TLS_VERSION",
    "UPSTREAM_PEER_CERT",
    "UPSTREAM_PEER_CERT_V_START",
    "UPSTREAM_PEER_CERT_V_END",
    "TLS_JA3_FINGERPRINT",
    "TLS_JA4_FINGERPRINT",
    "REQ_WITHOUT_QUERY",
    "SYSTEM_TIME",
];

/// The TLS session operators that take no argument.
fn tls_field(name: &str) -> Option<DownstreamTlsField> {
    Some(match name {
        "DOWNSTREAM_TLS_CIPHER" => DownstreamTlsField::Cipher,
        "DOWNSTREAM_PEER_ISSUER" => DownstreamTlsField::PeerIssuer,
        "DOWNSTREAM_PEER_SERIAL" => DownstreamTlsField::PeerSerial,
        "DOWNSTREAM_PEER_URI_SAN" => DownstreamTlsField::PeerUriSan,
        "DOWNSTREAM_PEER_DNS_SAN" => DownstreamTlsField::PeerDnsSan,
        "DOWNSTREAM_PEER_IP_SAN" => DownstreamTlsField::PeerIpSan,
        "DOWNSTREAM_PEER_EMAIL_SAN" => DownstreamTlsField::PeerEmailSan,
        "DOWNSTREAM_PEER_FINGERPRINT_256" => DownstreamTlsField::PeerFingerprint256,
        "DOWNSTREAM_PEER_FINGERPRINT_1" => DownstreamTlsField::PeerFingerprint1,
        "DOWNSTREAM_PEER_CERT" => DownstreamTlsField::PeerCert,
        "DOWNSTREAM_LOCAL_SUBJECT" => DownstreamTlsField::LocalSubject,
        "DOWNSTREAM_LOCAL_URI_SAN" => DownstreamTlsField::LocalUriSan,
        "DOWNSTREAM_LOCAL_DNS_SAN" => DownstreamTlsField::LocalDnsSan,
        _ => return None,
    })
}

/// A metadata operator over `NAMESPACE:KEY:...`.
fn metadata_operator(source: MetadataOwner, arg: &str) -> FormatOperator {
    let mut parts = arg.split(':');
    let namespace = parts.next().unwrap_or_default().to_string();
    FormatOperator::Metadata {
        source,
        namespace,
        keys: parts.map(str::to_string).collect(),
    }
}

/// `%PATH(WQ|NQ[:ORIG|PATH|ORIG_OR_PATH])%`.
fn path_operator(arg: Option<&str>) -> std::result::Result<FormatOperator, String> {
    let (query, source) = match arg.unwrap_or("") {
        "" => ("WQ", None),
        text => match text.split_once(':') {
            Some((q, s)) => (q, Some(s)),
            None => (text, None),
        },
    };
    let with_query = match query {
        "WQ" => true,
        "NQ" => false,
        other => return Err(format!("invalid PATH option '{other}': only WQ or NQ")),
    };
    let source = match source.unwrap_or("ORIG_OR_PATH") {
        "ORIG" => PathSource::Original,
        "PATH" => PathSource::Path,
        "ORIG_OR_PATH" => PathSource::OriginalOrPath,
        other => {
            return Err(format!(
                "invalid PATH source '{other}': only ORIG, PATH or ORIG_OR_PATH"
            ))
        }
    };
    Ok(FormatOperator::Path { with_query, source })
}

/// `%FILTER_STATE(KEY[:PLAIN|TYPED|FIELD[:name]])%`: checked as Envoy checks it (Baton's
/// filters set no filter state, so the value is always `-`).
fn filter_state_argument(arg: Option<&str>) -> std::result::Result<(), String> {
    let mut parts = arg.unwrap_or("").split(':');
    if parts.next().is_none_or(str::is_empty) {
        return Err("key cannot be empty".into());
    }
    match parts.next() {
        None | Some("PLAIN") | Some("TYPED") | Some("FIELD") => Ok(()),
        Some(other) => Err(format!(
            "invalid serialize type '{other}': only PLAIN, TYPED or FIELD"
        )),
    }
}

fn parse_command(raw: &str, path: &str) -> Result<Parsed> {
    let bad = |why: &str| ConfigError::at(path, format!("invalid format command '%{raw}%': {why}"));
    // Split NAME(ARG):LEN.
    let (head, max_len) = match raw.rfind(':') {
        Some(colon)
            if raw[colon + 1..].chars().all(|c| c.is_ascii_digit())
                && colon + 1 < raw.len()
                && !raw[colon..].contains(')') =>
        {
            let len = raw[colon + 1..]
                .parse::<usize>()
                .map_err(|_| bad("bad length"))?;
            (&raw[..colon], Some(len))
        }
        _ => (raw, None),
    };
    let (name, arg) = match head.find('(') {
        Some(open) => {
            let close = head.rfind(')').ok_or_else(|| bad("missing ')'"))?;
            if close != head.len() - 1 || close < open {
                return Err(bad("text after ')'"));
            }
            (&head[..open], Some(&head[open + 1..close]))
        }
        None => (head, None),
    };
    let no_arg = |op: FormatOperator| -> Result<FormatOperator> {
        if arg.is_some() {
            Err(bad("does not take any parameters or length"))
        } else {
            Ok(op)
        }
    };
    let needs_arg = || {
        arg.filter(|a| !a.is_empty())
            .ok_or_else(|| bad("requires parameters"))
    };
    let op = if let Some(field) = tls_field(name) {
        no_arg(FormatOperator::DownstreamTls(field))?
    } else {
        match name {
            "START_TIME" => {
                FormatOperator::StartTime(arg.filter(|a| !a.is_empty()).map(str::to_string))
            }
            "REQ" | "RESP" | "TRAILER" => {
                let arg = arg.ok_or_else(|| bad("needs a header name argument"))?;
                let (primary, fallback) = match arg.split_once('?') {
                    Some((a, b)) => (a, Some(b)),
                    None => (arg, None),
                };
                if fallback.is_some_and(|f| f.contains('?')) {
                    return Err(bad("more than one alternative header"));
                }
                let primary = header_ref(primary).map_err(|e| bad(&e))?;
                let fallback = fallback.map(header_ref).transpose().map_err(|e| bad(&e))?;
                match (name, primary, fallback) {
                    ("REQ", HeaderRef::Name(p), None) => FormatOperator::Req(p, None),
                    ("REQ", HeaderRef::Name(p), Some(HeaderRef::Name(f))) => {
                        FormatOperator::Req(p, Some(f))
                    }
                    ("REQ", p, f) => FormatOperator::ReqPseudo(p, f),
                    ("RESP", HeaderRef::Name(p), None) => FormatOperator::Resp(p, None),
                    ("RESP", HeaderRef::Name(p), Some(HeaderRef::Name(f))) => {
                        FormatOperator::Resp(p, Some(f))
                    }
                    ("RESP", p, f) => FormatOperator::RespPseudo(p, f),
                    (_, HeaderRef::Name(p), _) => FormatOperator::Trailer(p),
                    _ => return Err(bad("trailers take one regular header name")),
                }
            }
            "ENVIRONMENT" => {
                let arg = arg.ok_or_else(|| bad("needs a variable name"))?;
                let value = std::env::var(arg).unwrap_or_else(|_| "-".to_string());
                let value = match max_len {
                    Some(len) => value.chars().take(len).collect(),
                    None => value,
                };
                return Ok(Parsed::Literal(value));
            }
            "PATH" => path_operator(arg).map_err(|e| bad(&e))?,
            "QUERY_PARAM" => FormatOperator::QueryParam(needs_arg()?.to_string()),
            "GRPC_STATUS" => FormatOperator::GrpcStatus(match arg.unwrap_or("") {
                "" | "CAMEL_STRING" => GrpcStatusFormat::Camel,
                "SNAKE_STRING" => GrpcStatusFormat::Snake,
                "NUMBER" => GrpcStatusFormat::Number,
                other => {
                    return Err(bad(&format!(
                        "only CAMEL_STRING, SNAKE_STRING or NUMBER, not {other}"
                    )))
                }
            }),
            "GRPC_STATUS_NUMBER" => no_arg(FormatOperator::GrpcStatus(GrpcStatusFormat::Number))?,
            "CLUSTER_METADATA" => metadata_operator(MetadataOwner::Cluster, needs_arg()?),
            "UPSTREAM_METADATA" => metadata_operator(MetadataOwner::UpstreamHost, needs_arg()?),
            "METADATA" => {
                let arg = needs_arg()?;
                let (kind, rest) = arg.split_once(':').unwrap_or((arg, ""));
                match kind {
                    "CLUSTER" => metadata_operator(MetadataOwner::Cluster, rest),
                    "UPSTREAM_HOST" => metadata_operator(MetadataOwner::UpstreamHost, rest),
                    "ROUTE" => metadata_operator(MetadataOwner::Route, rest),
                    "DYNAMIC" => FormatOperator::NeverSet("METADATA"),
                    _ => {
                        return Err(ConfigError::at(
                            path,
                            format!("format command '%{raw}%' is not supported by Baton yet"),
                        ))
                    }
                }
            }
            "DYNAMIC_METADATA" => {
                needs_arg()?;
                FormatOperator::NeverSet("DYNAMIC_METADATA")
            }
            "FILTER_STATE" | "UPSTREAM_FILTER_STATE" => {
                filter_state_argument(arg).map_err(|e| bad(&e))?;
                FormatOperator::NeverSet(if name == "FILTER_STATE" {
                    "FILTER_STATE"
                } else {
                    "UPSTREAM_FILTER_STATE"
                })
            }
            "CONNECTION_TERMINATION_DETAILS" => {
                no_arg(FormatOperator::NeverSet("CONNECTION_TERMINATION_DETAILS"))?
            }
            "DOWNSTREAM_TRANSPORT_FAILURE_REASON" => no_arg(FormatOperator::NeverSet(
                "DOWNSTREAM_TRANSPORT_FAILURE_REASON",
            ))?,
            "VIRTUAL_CLUSTER_NAME" => no_arg(FormatOperator::NeverSet("VIRTUAL_CLUSTER_NAME"))?,
            "TRACE_ID" => no_arg(FormatOperator::NeverSet("TRACE_ID"))?,
            "CUSTOM_FLAGS" => no_arg(FormatOperator::CustomFlags)?,
            "ACCESS_LOG_TYPE" => no_arg(FormatOperator::AccessLogType)?,
            "REQUEST_HEADERS_BYTES" => no_arg(FormatOperator::RequestHeadersBytes)?,
            "RESPONSE_HEADERS_BYTES" => no_arg(FormatOperator::ResponseHeadersBytes)?,
            "RESPONSE_TRAILERS_BYTES" => no_arg(FormatOperator::ResponseTrailersBytes)?,
            "RESPONSE_CODE" => no_arg(FormatOperator::ResponseCode)?,
            "RESPONSE_CODE_DETAILS" => no_arg(FormatOperator::ResponseCodeDetails)?,
            "RESPONSE_FLAGS" => no_arg(FormatOperator::ResponseFlags)?,
            "RESPONSE_FLAGS_LONG" => no_arg(FormatOperator::ResponseFlagsLong)?,
            "DURATION" => no_arg(FormatOperator::Duration)?,
            "REQUEST_DURATION" => no_arg(FormatOperator::RequestDuration)?,
            "RESPONSE_DURATION" => no_arg(FormatOperator::ResponseDuration)?,
            "RESPONSE_TX_DURATION" => no_arg(FormatOperator::ResponseTxDuration)?,
            "BYTES_RECEIVED" => no_arg(FormatOperator::BytesReceived)?,
            "BYTES_SENT" => no_arg(FormatOperator::BytesSent)?,
            "PROTOCOL" => no_arg(FormatOperator::Protocol)?,
            "UPSTREAM_PROTOCOL" => no_arg(FormatOperator::UpstreamProtocol)?,
            "UPSTREAM_HOST" => no_arg(FormatOperator::UpstreamHost)?,
            "UPSTREAM_HOST_NAME" => no_arg(FormatOperator::UpstreamHostName)?,
            "UPSTREAM_HOST_NAME_WITHOUT_PORT" => {
                no_arg(FormatOperator::UpstreamHostNameWithoutPort)?
            }
            "UPSTREAM_CLUSTER" => no_arg(FormatOperator::UpstreamCluster)?,
            "UPSTREAM_CLUSTER_RAW" => no_arg(FormatOperator::UpstreamClusterRaw)?,
            "UPSTREAM_LOCAL_ADDRESS" => no_arg(FormatOperator::UpstreamLocalAddress)?,
            "UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => {
                no_arg(FormatOperator::UpstreamLocalAddressWithoutPort)?
            }
            "UPSTREAM_LOCAL_PORT" => no_arg(FormatOperator::UpstreamLocalPort)?,
            "UPSTREAM_REMOTE_ADDRESS" => no_arg(FormatOperator::UpstreamRemoteAddress)?,
            "UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => {
                no_arg(FormatOperator::UpstreamRemoteAddressWithoutPort)?
            }
            "UPSTREAM_REMOTE_PORT" => no_arg(FormatOperator::UpstreamRemotePort)?,
            "UPSTREAM_TRANSPORT_FAILURE_REASON" => {
                no_arg(FormatOperator::UpstreamTransportFailureReason)?
            }
            "DOWNSTREAM_REMOTE_ADDRESS" => no_arg(FormatOperator::DownstreamRemoteAddress)?,
            "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => {
                no_arg(FormatOperator::DownstreamRemoteAddressWithoutPort)?
            }
            "DOWNSTREAM_REMOTE_PORT" => no_arg(FormatOperator::DownstreamRemotePort)?,
            "DOWNSTREAM_DIRECT_REMOTE_ADDRESS" => {
                no_arg(FormatOperator::DownstreamDirectRemoteAddress)?
            }
            "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT" => {
                no_arg(FormatOperator::DownstreamDirectRemoteAddressWithoutPort)?
            }
            "DOWNSTREAM_DIRECT_REMOTE_PORT" => no_arg(FormatOperator::DownstreamDirectRemotePort)?,
            "DOWNSTREAM_LOCAL_ADDRESS" => no_arg(FormatOperator::DownstreamLocalAddress)?,
            "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => {
                no_arg(FormatOperator::DownstreamLocalAddressWithoutPort)?
            }
            "DOWNSTREAM_LOCAL_PORT" => no_arg(FormatOperator::DownstreamLocalPort)?,
            "REQUESTED_SERVER_NAME" => no_arg(FormatOperator::RequestedServerName)?,
            "DOWNSTREAM_TLS_VERSION" => no_arg(FormatOperator::DownstreamTlsVersion)?,
            "DOWNSTREAM_PEER_SUBJECT" => no_arg(FormatOperator::DownstreamPeerSubject)?,
            "DOWNSTREAM_PEER_CERT_V_START" => {
                FormatOperator::DownstreamTls(DownstreamTlsField::PeerValidFrom(
                    arg.filter(|a| !a.is_empty()).map(str::to_string),
                ))
            }
            "DOWNSTREAM_PEER_CERT_V_END" => {
                FormatOperator::DownstreamTls(DownstreamTlsField::PeerValidUntil(
                    arg.filter(|a| !a.is_empty()).map(str::to_string),
                ))
            }
            "ROUTE_NAME" => no_arg(FormatOperator::RouteName)?,
            "UPSTREAM_REQUEST_ATTEMPT_COUNT" => {
                no_arg(FormatOperator::UpstreamRequestAttemptCount)?
            }
            "CONNECTION_ID" => no_arg(FormatOperator::ConnectionId)?,
            "HOSTNAME" => no_arg(FormatOperator::Hostname)?,
            "LOCAL_REPLY_BODY" => no_arg(FormatOperator::LocalReplyBody)?,
            _ if NOT_YET.contains(&name) => {
                return Err(ConfigError::at(
                    path,
                    format!("format command '%{raw}%' is not supported by Baton yet"),
                ))
            }
            _ => {
                return Err(ConfigError::at(
                    path,
                    format!("unknown format command '%{raw}%'"),
                ))
            }
        }
    };
    if max_len.is_some() && !TAKES_LENGTH.contains(&name) {
        // As Envoy: a length only where a value can be long (headers, metadata, paths).
        return Err(bad(if TAKES_ARGUMENT.contains(&name) {
            "does not allow length to be specified"
        } else {
            "does not take any parameters or length"
        }));
    }
    Ok(Parsed::Command(FormatCommand { op, max_len }))
}

/// A header argument: a regular name or one of the HTTP/2 pseudo-headers.
fn header_ref(name: &str) -> std::result::Result<HeaderRef, String> {
    let lower = name.to_ascii_lowercase();
    Ok(match lower.as_str() {
        ":method" => HeaderRef::Method,
        ":path" => HeaderRef::Path,
        ":authority" => HeaderRef::Authority,
        ":scheme" => HeaderRef::Scheme,
        ":status" => HeaderRef::Status,
        _ => HeaderRef::Name(
            HeaderName::from_bytes(lower.as_bytes())
                .map_err(|_| format!("invalid header name '{name}'"))?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(template: &FormatTemplate) -> Vec<String> {
        template
            .parts
            .iter()
            .map(|p| match p {
                FormatPart::Literal(s) => format!("lit:{s}"),
                FormatPart::Command(c) => format!("{:?}:{:?}", c.op, c.max_len),
            })
            .collect()
    }

    #[test]
    fn default_format_parses() {
        let template = parse(DEFAULT_ACCESS_LOG_FORMAT, "p").expect("default format");
        let rendered = ops(&template);
        assert_eq!(rendered[0], "lit:[");
        assert_eq!(rendered[1], "StartTime(None):None");
        assert!(rendered
            .iter()
            .any(|p| p.starts_with("ReqPseudo(Method, None)")));
        assert!(rendered
            .iter()
            .any(|p| p.contains("ReqPseudo(Name(\"x-envoy-original-path\"), Some(Path))")));
        assert_eq!(rendered.last().map(String::as_str), Some("lit:\"\n"));
    }

    #[test]
    fn commands_with_args_and_lengths() {
        let template =
            parse("%REQ(User-Agent):10% %START_TIME(%Y/%m/%d)% 100%%", "p").expect("parses");
        assert_eq!(
            ops(&template),
            vec![
                "Req(\"user-agent\", None):Some(10)".to_string(),
                "lit: ".to_string(),
                "StartTime(Some(\"%Y/%m/%d\")):None".to_string(),
                "lit: 100%".to_string(),
            ]
        );
        assert_eq!(
            parse("plain", "p").expect("literal").as_literal(),
            Some("plain")
        );
    }

    #[test]
    fn lengths_and_arguments_follow_envoy() {
        // A length only on operators whose values can be long.
        assert!(parse("%REQ(x):3% %PATH(NQ):4% %QUERY_PARAM(a):2%", "p").is_ok());
        assert!(parse("%DYNAMIC_METADATA(ns):3% %FILTER_STATE(k:PLAIN):4%", "p").is_ok());
        let err = parse("%BYTES_RECEIVED:3%", "p").expect_err("no length");
        assert!(err
            .to_string()
            .contains("does not take any parameters or length"));
        let err = parse("%START_TIME:3%", "p").expect_err("no length");
        assert!(err.to_string().contains("does not allow length"));
        assert!(parse("%RESPONSE_CODE_DETAILS:5%", "p").is_err());
        assert!(parse("%REQ(a?b?c)%", "p").is_err());
        assert!(parse("%PATH(XX)%", "p").is_err());
        assert!(parse("%PATH(WQ:NOPE)%", "p").is_err());
        assert!(parse("%GRPC_STATUS(FOO)%", "p").is_err());
        assert!(parse("%QUERY_PARAM()%", "p").is_err());
        assert!(parse("%FILTER_STATE()%", "p").is_err());
        assert!(parse("%FILTER_STATE(k:XX)%", "p").is_err());
        assert!(parse("%DYNAMIC_METADATA()%", "p").is_err());
        assert!(parse("%GRPC_STATUS_NUMBER(x)%", "p").is_err());
        let template =
            parse("%PATH% %PATH(NQ:ORIG)% %GRPC_STATUS(SNAKE_STRING)%", "p").expect("parses");
        assert_eq!(
            ops(&template),
            vec![
                "Path { with_query: true, source: OriginalOrPath }:None".to_string(),
                "lit: ".to_string(),
                "Path { with_query: false, source: Original }:None".to_string(),
                "lit: ".to_string(),
                "GrpcStatus(Snake):None".to_string(),
            ]
        );
    }

    #[test]
    fn envoy_operators_baton_lacks_say_so() {
        let err = parse("%UPSTREAM_TLS_CIPHER%", "a.b").expect_err("not yet");
        assert!(parse(
            "%DOWNSTREAM_TLS_CIPHER% %DOWNSTREAM_PEER_CERT_V_END(%s)%",
            "p"
        )
        .is_ok());
        assert!(parse("%DOWNSTREAM_PEER_ISSUER(x)%", "p").is_err());
        assert_eq!(
            err.to_string(),
            "a.b: format command '%UPSTREAM_TLS_CIPHER%' is not supported by Baton yet"
        );
        assert!(parse("%METADATA(LISTENER:ns)%", "p")
            .expect_err("not yet")
            .to_string()
            .contains("not supported by Baton yet"));
        assert!(parse("%CLUSTER_METADATA(ns:key)% %METADATA(ROUTE:ns)%", "p").is_ok());
        assert!(parse("%CLUSTER_METADATA(ns):3%", "p").is_err());
    }

    #[test]
    fn unknown_and_malformed_commands_are_errors() {
        let err = parse("%NOPE%", "a.b").expect_err("unknown");
        assert_eq!(err.to_string(), "a.b: unknown format command '%NOPE%'");
        assert!(parse("%REQ(x", "p").is_err());
        assert!(parse("%DURATION(x)%", "p").is_err());
    }
}
