//! Request and trailer validation for Baton's own HTTP/2 server codec: a decoded header
//! block ([`FieldList`]) becomes `http::request::Parts` or is refused, per RFC 9113
//! §8.2-8.3 as Envoy 1.40 applies it (nghttp2's checks field by field, then Envoy's own
//! limits per field, then the request-level pseudo-header rules). What a refusal costs
//! (the stream or the connection) is the connection's decision (`conn`).

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Uri, Version};

use baton_config::model::UnderscoreHeaders;

use super::frame::FieldList;

/// Why a request or its trailers were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Malformed (RFC 9113 §8.1.1): Envoy closes the connection without a GOAWAY, or
    /// with stream errors enabled resets the stream (RST_STREAM PROTOCOL_ERROR).
    Malformed(&'static str),
    /// Refused by one of Envoy's own limits: the stream is reset (RST_STREAM
    /// INTERNAL_ERROR), the connection serves on.
    Refused(RefusalCause),
}

/// Which of Envoy's limits refused a header block (each has its `http2.*` stat).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalCause {
    /// More fields than `max_headers_count` (`http2.header_overflow`).
    TooManyHeaders,
    /// Names and values over `max_request_headers_kb` (`http2.header_list_size_too_large`).
    HeaderListTooLarge,
    /// A name with `_` under `REJECT_REQUEST`
    /// (`http2.requests_rejected_with_underscores_in_headers`).
    Underscore,
}

/// The connection manager settings request validation reads.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    /// `common_http_protocol_options.max_headers_count`, pseudo-headers included.
    pub max_headers_count: usize,
    /// `max_request_headers_kb` in bytes: names plus values.
    pub max_header_bytes: usize,
    /// `http2_protocol_options.allow_connect`: extended CONNECT (RFC 8441) accepted.
    pub allow_connect: bool,
    /// `headers_with_underscores_action`.
    pub underscores: UnderscoreHeaders,
}

/// A valid request head.
#[derive(Debug)]
pub struct RequestHead {
    /// Method, URI (scheme, authority and path as sent; authority-form for CONNECT),
    /// version HTTP/2 and the regular fields. The authority is only in the URI: a `host`
    /// field is dropped (`:authority` wins) or, without `:authority`, becomes it.
    pub parts: http::request::Parts,
    /// The `:protocol` of an extended CONNECT.
    pub protocol: Option<Bytes>,
    /// The content-length field's value, when present.
    pub content_length: Option<u64>,
    /// Fields dropped for an underscore in the name (`DROP_HEADER`), for
    /// `http2.dropped_headers_with_underscores`.
    pub dropped_underscores: u32,
}

/// Bytes a field name may hold, as nghttp2 checks them: lowercase tchar (RFC 9110 §5.6.2).
fn is_name_byte(b: u8) -> bool {
    matches!(b,
        b'a'..=b'z' | b'0'..=b'9'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.'
        | b'^' | b'_' | b'`' | b'|' | b'~')
}

/// Bytes no field value may hold (RFC 9113 §8.2.1; what nghttp2 refuses for Envoy).
fn has_forbidden_value_byte(value: &[u8]) -> bool {
    value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n')
}

/// The value without leading and trailing spaces and tabs, as Envoy forwards it.
fn trimmed(value: &Bytes) -> Bytes {
    let start = value
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    value.slice(start..end)
}

/// Connection-specific fields HTTP/2 forbids (RFC 9113 §8.2.2).
fn is_connection_specific(name: &[u8]) -> bool {
    matches!(
        name,
        b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding" | b"upgrade"
    )
}

/// What one regular field turned out to be.
enum Regular {
    Keep(HeaderName, Bytes),
    /// Dropped by `DROP_HEADER` (underscore).
    Drop,
}

/// The checks every regular field (request or trailer) passes: nghttp2's on the name and
/// value, then Envoy's underscore rule. Limits are counted by the caller.
fn regular_field(
    name: &Bytes,
    value: &Bytes,
    limits: &RequestLimits,
) -> Result<Regular, Rejection> {
    if name.is_empty() || !name.iter().all(|&b| is_name_byte(b)) {
        return Err(Rejection::Malformed("invalid header name"));
    }
    if has_forbidden_value_byte(value) {
        return Err(Rejection::Malformed("invalid header value"));
    }
    if is_connection_specific(name) {
        return Err(Rejection::Malformed("connection-specific header"));
    }
    let value = trimmed(value);
    if name.as_ref() == b"te" && !value.eq_ignore_ascii_case(b"trailers") {
        return Err(Rejection::Malformed("te other than trailers"));
    }
    if name.contains(&b'_') {
        match limits.underscores {
            UnderscoreHeaders::Allow => {}
            UnderscoreHeaders::Drop => return Ok(Regular::Drop),
            UnderscoreHeaders::Reject => {
                return Err(Rejection::Refused(RefusalCause::Underscore));
            }
        }
    }
    let name =
        HeaderName::from_bytes(name).map_err(|_| Rejection::Malformed("invalid header name"))?;
    Ok(Regular::Keep(name, value))
}

/// Counts one field against Envoy's limits.
struct LimitCounter<'a> {
    limits: &'a RequestLimits,
    count: usize,
    bytes: usize,
}

impl LimitCounter<'_> {
    /// The decoder stopped storing fields past its list size cap (set above both limits,
    /// see `wire::ReaderConfig::max_header_list_size`): the first field it dropped is
    /// where a limit was crossed, the count's when that field is one too many, else the
    /// size's.
    fn check_dropped(&self, fields: &FieldList) -> Result<(), Rejection> {
        let stored: usize = fields
            .fields
            .iter()
            .map(|f| f.name.len() + f.value.len() + 32)
            .sum();
        if stored >= fields.list_size {
            return Ok(());
        }
        Err(Rejection::Refused(
            if self.count + 1 > self.limits.max_headers_count {
                RefusalCause::TooManyHeaders
            } else {
                RefusalCause::HeaderListTooLarge
            },
        ))
    }

    fn add(&mut self, name: &[u8], value: &[u8]) -> Result<(), Rejection> {
        self.count += 1;
        self.bytes += name.len() + value.len();
        if self.count > self.limits.max_headers_count {
            return Err(Rejection::Refused(RefusalCause::TooManyHeaders));
        }
        if self.bytes > self.limits.max_header_bytes {
            return Err(Rejection::Refused(RefusalCause::HeaderListTooLarge));
        }
        Ok(())
    }
}

/// The pseudo-header fields of a request, each at most once.
#[derive(Default)]
struct Pseudo {
    method: Option<Bytes>,
    scheme: Option<Bytes>,
    authority: Option<Bytes>,
    path: Option<Bytes>,
    protocol: Option<Bytes>,
}

impl Pseudo {
    fn set(&mut self, name: &[u8], value: &Bytes) -> Result<(), Rejection> {
        let slot = match name {
            b":method" => &mut self.method,
            b":scheme" => &mut self.scheme,
            b":authority" => &mut self.authority,
            b":path" => &mut self.path,
            b":protocol" => &mut self.protocol,
            _ => return Err(Rejection::Malformed("unknown pseudo-header")),
        };
        if slot.is_some() {
            return Err(Rejection::Malformed("duplicate pseudo-header"));
        }
        if has_forbidden_value_byte(value) {
            return Err(Rejection::Malformed("invalid pseudo-header value"));
        }
        *slot = Some(value.clone());
        Ok(())
    }
}

/// Cookie crumbs (RFC 9113 §8.2.3), joined with `; ` into one field.
#[derive(Default)]
struct Cookies {
    first: Option<Bytes>,
    joined: Option<BytesMut>,
}

impl Cookies {
    fn add(&mut self, value: Bytes) {
        match (&mut self.first, &mut self.joined) {
            (None, _) => self.first = Some(value),
            (Some(first), joined) => {
                let joined = joined.get_or_insert_with(|| {
                    let mut b = BytesMut::with_capacity(first.len() + 2 + value.len());
                    b.extend_from_slice(first);
                    b
                });
                joined.extend_from_slice(b"; ");
                joined.extend_from_slice(&value);
            }
        }
    }

    fn finish(self) -> Option<Bytes> {
        match self.joined {
            Some(joined) => Some(joined.freeze()),
            None => self.first,
        }
    }
}

/// Parses a content-length value (digits only).
fn parse_content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Validates a request header block; `end_stream` is its HEADERS frame's flag.
pub fn validate_request(
    fields: &FieldList,
    end_stream: bool,
    limits: &RequestLimits,
) -> Result<RequestHead, Rejection> {
    let mut pseudo = Pseudo::default();
    let mut headers = HeaderMap::with_capacity(fields.fields.len());
    let mut counter = LimitCounter {
        limits,
        count: 0,
        bytes: 0,
    };
    let mut regular_seen = false;
    let mut host: Option<Bytes> = None;
    let mut cookies = Cookies::default();
    let mut content_length: Option<u64> = None;
    let mut dropped_underscores = 0u32;
    for field in &fields.fields {
        if field.name.first() == Some(&b':') {
            if regular_seen {
                return Err(Rejection::Malformed("pseudo-header after a regular field"));
            }
            pseudo.set(&field.name, &field.value)?;
            counter.add(&field.name, &field.value)?;
            continue;
        }
        regular_seen = true;
        let (name, value) = match regular_field(&field.name, &field.value, limits)? {
            Regular::Keep(name, value) => (name, value),
            Regular::Drop => {
                dropped_underscores += 1;
                continue;
            }
        };
        if name == http::header::CONTENT_LENGTH {
            if content_length.is_some() {
                return Err(Rejection::Malformed("content-length twice"));
            }
            content_length = Some(
                parse_content_length(&value)
                    .ok_or(Rejection::Malformed("content-length not a number"))?,
            );
        }
        counter.add(&field.name, &field.value)?;
        if name == http::header::HOST {
            host.get_or_insert(value);
            continue;
        }
        if name == http::header::COOKIE {
            cookies.add(value);
            continue;
        }
        let value = HeaderValue::from_maybe_shared(value)
            .map_err(|_| Rejection::Malformed("invalid header value"))?;
        headers.append(name, value);
    }
    counter.check_dropped(fields)?;
    if let Some(cookie) = cookies.finish() {
        let cookie = HeaderValue::from_maybe_shared(cookie)
            .map_err(|_| Rejection::Malformed("invalid header value"))?;
        headers.insert(http::header::COOKIE, cookie);
    }
    if end_stream && content_length.is_some_and(|n| n != 0) {
        return Err(Rejection::Malformed("content-length without DATA"));
    }
    let method = pseudo
        .method
        .ok_or(Rejection::Malformed("missing :method"))?;
    let method =
        Method::from_bytes(&method).map_err(|_| Rejection::Malformed("invalid :method"))?;
    let authority = pseudo.authority.or(host);
    let mut uri = http::uri::Parts::default();
    if method == Method::CONNECT && pseudo.protocol.is_none() {
        // RFC 9113 §8.5: only :method and :authority.
        if pseudo.scheme.is_some() || pseudo.path.is_some() {
            return Err(Rejection::Malformed("CONNECT with :scheme or :path"));
        }
        let authority = authority.ok_or(Rejection::Malformed("CONNECT without :authority"))?;
        uri.authority = Some(parse_authority(authority)?);
    } else {
        if pseudo.protocol.is_some() && (method != Method::CONNECT || !limits.allow_connect) {
            return Err(Rejection::Malformed(":protocol not allowed"));
        }
        let scheme = pseudo
            .scheme
            .ok_or(Rejection::Malformed("missing :scheme"))?;
        let path = pseudo.path.ok_or(Rejection::Malformed("missing :path"))?;
        let path = parse_path(path, &method)?;
        let authority = authority.ok_or(Rejection::Malformed("no :authority or host"))?;
        uri.scheme =
            Some(Scheme::try_from(&scheme[..]).map_err(|_| Rejection::Malformed("bad :scheme"))?);
        uri.authority = Some(parse_authority(authority)?);
        uri.path_and_query = Some(path);
    }
    let uri = Uri::from_parts(uri).map_err(|_| Rejection::Malformed("invalid request target"))?;
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = Version::HTTP_2;
    parts.headers = headers;
    Ok(RequestHead {
        parts,
        protocol: pseudo.protocol,
        content_length,
        dropped_underscores,
    })
}

fn parse_authority(authority: Bytes) -> Result<Authority, Rejection> {
    Authority::from_maybe_shared(authority).map_err(|_| Rejection::Malformed("invalid :authority"))
}

/// `:path`: not empty, `*` only with OPTIONS, otherwise starting with `/`, no spaces or
/// control bytes.
fn parse_path(path: Bytes, method: &Method) -> Result<PathAndQuery, Rejection> {
    if path.is_empty() {
        return Err(Rejection::Malformed("empty :path"));
    }
    if path.as_ref() == b"*" {
        if method != Method::OPTIONS {
            return Err(Rejection::Malformed(":path * without OPTIONS"));
        }
    } else if path[0] != b'/' {
        return Err(Rejection::Malformed(":path without /"));
    }
    if path.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(Rejection::Malformed("invalid :path"));
    }
    PathAndQuery::from_maybe_shared(path).map_err(|_| Rejection::Malformed("invalid :path"))
}

/// Validates a trailer block: regular fields only, the same checks as a request's.
pub fn validate_trailers(
    fields: &FieldList,
    limits: &RequestLimits,
) -> Result<HeaderMap, Rejection> {
    let mut trailers = HeaderMap::with_capacity(fields.fields.len());
    let mut counter = LimitCounter {
        limits,
        count: 0,
        bytes: 0,
    };
    for field in &fields.fields {
        if field.name.first() == Some(&b':') {
            return Err(Rejection::Malformed("pseudo-header in trailers"));
        }
        let (name, value) = match regular_field(&field.name, &field.value, limits)? {
            Regular::Keep(name, value) => (name, value),
            Regular::Drop => continue,
        };
        counter.add(&field.name, &field.value)?;
        let value = HeaderValue::from_maybe_shared(value)
            .map_err(|_| Rejection::Malformed("invalid header value"))?;
        trailers.append(name, value);
    }
    counter.check_dropped(fields)?;
    Ok(trailers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::lean_h2::frame::Field;

    fn limits() -> RequestLimits {
        RequestLimits {
            max_headers_count: 100,
            max_header_bytes: 60 * 1024,
            allow_connect: false,
            underscores: UnderscoreHeaders::Drop,
        }
    }

    fn block(extra: &[(&str, usize)]) -> FieldList {
        let mut list = FieldList::default();
        let mut push = |name: &str, value: Vec<u8>| {
            list.list_size += name.len() + value.len() + 32;
            list.fields.push(Field {
                name: Bytes::copy_from_slice(name.as_bytes()),
                value: Bytes::from(value),
            });
        };
        for (name, value) in [
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "test"),
        ] {
            push(name, value.as_bytes().to_vec());
        }
        for (name, len) in extra {
            push(name, vec![b'v'; *len]);
        }
        list
    }

    /// `header_block_over_limit`: the decoder stopped storing fields at its cap; the
    /// fields it dropped crossed Envoy's size limit.
    #[test]
    fn fields_the_decoder_dropped_are_over_a_limit() {
        let mut list = block(&[("x-a", 20_000), ("x-b", 20_000), ("x-c", 20_000)]);
        assert!(validate_request(&list, true, &limits()).is_ok());
        // A fourth field was decoded, counted and not stored.
        list.list_size += 3 + 10_000 + 32;
        assert_eq!(
            validate_request(&list, true, &limits()).err(),
            Some(Rejection::Refused(RefusalCause::HeaderListTooLarge))
        );
        // At the count limit, the dropped field is one too many.
        let mut tight = limits();
        tight.max_headers_count = 7;
        assert_eq!(
            validate_request(&list, true, &tight).err(),
            Some(Rejection::Refused(RefusalCause::TooManyHeaders))
        );
    }

    #[test]
    fn underscored_names_dropped_are_counted() {
        let head = validate_request(
            &block(&[("x_a", 1), ("x-b", 1), ("y_z", 2)]),
            true,
            &limits(),
        )
        .expect("valid");
        assert_eq!(head.dropped_underscores, 2);
        assert_eq!(head.parts.headers.len(), 1);
    }
}
