//! Values of the command operators that read a request's path, query and gRPC status and
//! count header bytes (`%PATH%`, `%QUERY_PARAM%`, `%GRPC_STATUS%`, `%*_HEADERS_BYTES%`), as
//! Envoy 1.40 renders them.

use std::borrow::Cow;

use baton_config::model::{FilterMetadata, GrpcStatusFormat, PathSource};
use http::{HeaderMap, Uri};

use super::format::{FormatInput, Value};

/// `x-envoy-original-path`, set by a path rewrite.
const ORIGINAL_PATH: &str = "x-envoy-original-path";

/// `%PATH(WQ|NQ:source)%`.
pub(super) fn path<'a>(
    input: &FormatInput<'a>,
    with_query: bool,
    source: PathSource,
) -> Option<Cow<'a, str>> {
    let original = || {
        input
            .request_headers?
            .get(ORIGINAL_PATH)
            .and_then(|v| v.to_str().ok())
    };
    let forwarded = || input.uri?.path_and_query().map(|p| p.as_str());
    let path = match source {
        PathSource::Original => original(),
        PathSource::Path => forwarded(),
        PathSource::OriginalOrPath => original().or_else(forwarded),
    }?;
    Some(Cow::Borrowed(if with_query {
        path
    } else {
        path.split_once('?').map_or(path, |(p, _)| p)
    }))
}

/// `%QUERY_PARAM(name)%`: the first value of `name` in the query, percent-decoded.
pub(super) fn query_param<'a>(uri: Option<&'a Uri>, name: &str) -> Option<Cow<'a, str>> {
    let query = uri?.query()?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode(value))
    })
}

/// `%XX` sequences decoded; anything else (a stray `%`, bytes that do not make UTF-8)
/// kept as sent.
fn percent_decode(text: &str) -> Cow<'_, str> {
    if !text.contains('%') {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(decoded) => Cow::Owned(decoded),
        Err(_) => Cow::Borrowed(text),
    }
}

/// `%CLUSTER_METADATA(ns:key...)%` and its kin: a string as is, anything else as JSON
/// (whole numbers as numbers, others as strings, as Envoy 1.40 prints them).
pub(super) fn metadata<'a>(
    metadata: Option<&'a FilterMetadata>,
    namespace: &str,
    keys: &[String],
) -> Value<'a> {
    use prost_types::value::Kind;
    let Some(root) = metadata.and_then(|m| m.get(namespace)) else {
        return Value::Missing;
    };
    let Some((first, rest)) = keys.split_first() else {
        return Value::Json(struct_json(root));
    };
    let mut value = root.fields.get(first);
    for key in rest {
        value = match value.and_then(|v| v.kind.as_ref()) {
            Some(Kind::StructValue(s)) => s.fields.get(key),
            _ => None,
        };
    }
    match value.and_then(|v| v.kind.as_ref()) {
        None => Value::Missing,
        Some(Kind::StringValue(s)) => Value::Str(Cow::Borrowed(s.as_str())),
        Some(kind) => match kind_json(kind) {
            serde_json::Value::String(number) => Value::Str(Cow::Owned(number)),
            json => Value::Json(json),
        },
    }
}

fn struct_json(s: &prost_types::Struct) -> serde_json::Value {
    let mut fields: Vec<_> = s.fields.iter().collect();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    serde_json::Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| {
                let value = v.kind.as_ref().map_or(serde_json::Value::Null, kind_json);
                (k.clone(), value)
            })
            .collect(),
    )
}

fn kind_json(kind: &prost_types::value::Kind) -> serde_json::Value {
    use prost_types::value::Kind;
    match kind {
        Kind::NullValue(_) => serde_json::Value::Null,
        Kind::BoolValue(b) => serde_json::Value::Bool(*b),
        Kind::StringValue(s) => serde_json::Value::String(s.clone()),
        Kind::NumberValue(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => {
            serde_json::Value::from(*n as i64)
        }
        // Envoy 1.40 prints a number with a fraction as a string ("0.5").
        Kind::NumberValue(n) => serde_json::Value::String(n.to_string()),
        Kind::StructValue(s) => struct_json(s),
        Kind::ListValue(l) => serde_json::Value::Array(
            l.values
                .iter()
                .map(|v| v.kind.as_ref().map_or(serde_json::Value::Null, kind_json))
                .collect(),
        ),
    }
}

/// gRPC status names by code, (camel, snake).
const GRPC_STATUS_NAMES: [(&str, &str); 17] = [
    ("OK", "OK"),
    ("Canceled", "CANCELLED"),
    ("Unknown", "UNKNOWN"),
    ("InvalidArgument", "INVALID_ARGUMENT"),
    ("DeadlineExceeded", "DEADLINE_EXCEEDED"),
    ("NotFound", "NOT_FOUND"),
    ("AlreadyExists", "ALREADY_EXISTS"),
    ("PermissionDenied", "PERMISSION_DENIED"),
    ("ResourceExhausted", "RESOURCE_EXHAUSTED"),
    ("FailedPrecondition", "FAILED_PRECONDITION"),
    ("Aborted", "ABORTED"),
    ("OutOfRange", "OUT_OF_RANGE"),
    ("Unimplemented", "UNIMPLEMENTED"),
    ("Internal", "INTERNAL"),
    ("Unavailable", "UNAVAILABLE"),
    ("DataLoss", "DATA_LOSS"),
    ("Unauthenticated", "UNAUTHENTICATED"),
];

/// The gRPC status an HTTP status stands for when a gRPC response carries none.
fn grpc_status_of_http(status: u16) -> u64 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

/// `%GRPC_STATUS%`: only for gRPC requests; from the trailers' `grpc-status`, else the
/// headers' (a trailers-only response), else mapped from the HTTP status.
pub(super) fn grpc_status(input: &FormatInput<'_>, format: GrpcStatusFormat) -> Value<'static> {
    let is_grpc = input
        .request_headers
        .and_then(|h| h.get(http::header::CONTENT_TYPE))
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if !is_grpc {
        return Value::Missing;
    }
    let carried = |map: Option<&HeaderMap>| {
        map?.get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let code = carried(input.response_trailers)
        .or_else(|| carried(input.response_headers))
        .or_else(|| input.info.response_code.map(grpc_status_of_http));
    let Some(code) = code else {
        return Value::Missing;
    };
    let names = usize::try_from(code)
        .ok()
        .and_then(|i| GRPC_STATUS_NAMES.get(i));
    match (format, names) {
        (GrpcStatusFormat::Camel, Some((camel, _))) => Value::Str(Cow::Borrowed(camel)),
        (GrpcStatusFormat::Snake, Some((_, snake))) => Value::Str(Cow::Borrowed(snake)),
        _ => Value::Num(code),
    }
}

/// Names and values of every header in `map` (Envoy's header map byte size).
pub(super) fn header_map_bytes(map: &HeaderMap) -> u64 {
    map.iter()
        .map(|(name, value)| (name.as_str().len() + value.len()) as u64)
        .sum()
}

/// `%REQUEST_HEADERS_BYTES%`: the request's headers as Envoy holds them, pseudo-headers
/// included and `host` counted as `:authority`.
pub(super) fn request_headers_bytes(input: &FormatInput<'_>) -> u64 {
    let Some(headers) = input.request_headers else {
        return 0;
    };
    let mut total = header_map_bytes(headers);
    if headers.contains_key(http::header::HOST) {
        // Counted as `:authority` (10 bytes) in place of `host` (4).
        total += 6;
    } else if let Some(authority) = input.uri.and_then(Uri::authority) {
        total += (":authority".len() + authority.as_str().len()) as u64;
    }
    if let Some(method) = input.method {
        total += (":method".len() + method.as_str().len()) as u64;
    }
    if let Some(uri) = input.uri {
        let path = uri.path_and_query().map_or(0, |p| p.as_str().len());
        let scheme = uri
            .scheme_str()
            .unwrap_or(if input.info.conn.tls { "https" } else { "http" });
        total += (":path".len() + path + ":scheme".len() + scheme.len()) as u64;
    }
    total
}

/// `%RESPONSE_HEADERS_BYTES%`: `:status` and the response's headers.
pub(super) fn response_headers_bytes(input: &FormatInput<'_>) -> u64 {
    match (input.info.response_code, input.response_headers) {
        (Some(_), Some(headers)) => ":status".len() as u64 + 3 + header_map_bytes(headers),
        (Some(_), None) => ":status".len() as u64 + 3,
        (None, _) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_found_by_name_and_decoded() {
        let uri: Uri = "/p?a=1&b=two%20words&a=3&flag&bad=%zz"
            .parse()
            .expect("uri");
        assert_eq!(query_param(Some(&uri), "a").as_deref(), Some("1"));
        assert_eq!(query_param(Some(&uri), "b").as_deref(), Some("two words"));
        assert_eq!(query_param(Some(&uri), "flag").as_deref(), Some(""));
        assert_eq!(query_param(Some(&uri), "bad").as_deref(), Some("%zz"));
        assert_eq!(query_param(Some(&uri), "missing"), None);
        let bare: Uri = "/p".parse().expect("uri");
        assert_eq!(query_param(Some(&bare), "a"), None);
    }

    #[test]
    fn http_statuses_map_to_grpc_codes() {
        assert_eq!(grpc_status_of_http(429), 14);
        assert_eq!(grpc_status_of_http(404), 12);
        assert_eq!(grpc_status_of_http(200), 2);
    }
}
