//! Envoy substitution format strings (`%REQ(X?Y):N%` ...) parsed into
//! [`FormatTemplate`]s at load time, for access logs and header values.

use http::header::HeaderName;

use crate::error::{ConfigError, Result};
use crate::model::{FormatCommand, FormatOperator, FormatPart, FormatTemplate, HeaderRef};

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
            Err(bad("takes no argument"))
        } else {
            Ok(op)
        }
    };
    let op = match name {
        "START_TIME" => {
            FormatOperator::StartTime(arg.filter(|a| !a.is_empty()).map(str::to_string))
        }
        "REQ" | "RESP" | "TRAILER" => {
            let arg = arg.ok_or_else(|| bad("needs a header name argument"))?;
            let (primary, fallback) = match arg.split_once('?') {
                Some((a, b)) => (a, Some(b)),
                None => (arg, None),
            };
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
                (_, HeaderRef::Name(p), None) => FormatOperator::Trailer(p),
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
        "UPSTREAM_HOST" => no_arg(FormatOperator::UpstreamHost)?,
        "UPSTREAM_CLUSTER" => no_arg(FormatOperator::UpstreamCluster)?,
        "UPSTREAM_LOCAL_ADDRESS" => no_arg(FormatOperator::UpstreamLocalAddress)?,
        "UPSTREAM_REMOTE_ADDRESS" => no_arg(FormatOperator::UpstreamRemoteAddress)?,
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
        "DOWNSTREAM_LOCAL_ADDRESS" => no_arg(FormatOperator::DownstreamLocalAddress)?,
        "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => {
            no_arg(FormatOperator::DownstreamLocalAddressWithoutPort)?
        }
        "DOWNSTREAM_LOCAL_PORT" => no_arg(FormatOperator::DownstreamLocalPort)?,
        "REQUESTED_SERVER_NAME" => no_arg(FormatOperator::RequestedServerName)?,
        "DOWNSTREAM_TLS_VERSION" => no_arg(FormatOperator::DownstreamTlsVersion)?,
        "DOWNSTREAM_PEER_SUBJECT" => no_arg(FormatOperator::DownstreamPeerSubject)?,
        "ROUTE_NAME" => no_arg(FormatOperator::RouteName)?,
        "UPSTREAM_REQUEST_ATTEMPT_COUNT" => no_arg(FormatOperator::UpstreamRequestAttemptCount)?,
        "CONNECTION_ID" => no_arg(FormatOperator::ConnectionId)?,
        "HOSTNAME" => no_arg(FormatOperator::Hostname)?,
        "LOCAL_REPLY_BODY" => no_arg(FormatOperator::LocalReplyBody)?,
        _ => {
            return Err(ConfigError::at(
                path,
                format!("unknown format command '%{raw}%'"),
            ))
        }
    };
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
    fn unknown_and_malformed_commands_are_errors() {
        let err = parse("%NOPE%", "a.b").expect_err("unknown");
        assert_eq!(err.to_string(), "a.b: unknown format command '%NOPE%'");
        assert!(parse("%REQ(x", "p").is_err());
        assert!(parse("%DURATION(x)%", "p").is_err());
    }
}
