//! The wire format of the lean HTTP/1.1 downstream server (issue 17), which serves the
//! common exchange in place of hyper's `http1` server connection (the loop is
//! `lean_conn`; `codec_conn` runs it). This module holds its pure, tested pieces.
//!
//! - The request head is parsed once: the framing check's httparse pass
//!   (`framing::parse_head_with`) judges it as Envoy does and, in the same pass, the
//!   `http::Request` is built from it as hyper's server builds it (method, target,
//!   version, headers in order, values sharing one copy of the head), with hyper's
//!   keep-alive and `expect: 100-continue` rules. What the lean path does not serve
//!   (upgrades, CONNECT, a head that needs repair or that hyper refuses by itself) is
//!   [`HeadParse::Fallback`]: the bytes go to hyper's server unchanged, which answers
//!   exactly as today.
//! - Request bodies (content-length, chunked with trailers) decode with the lean
//!   upstream exchange's [`BodyDecoder`].
//! - The response head is written as hyper's server writes it (same status line,
//!   header order and lowercase names, the same `content-length` / `transfer-encoding`
//!   / `connection` / `date` additions and HTTP/1.0 rules), so byte-for-byte fixtures
//!   keep matching; bodies encode as hyper's encoder does (uppercase hex chunk sizes,
//!   declared trailers only).

use std::io::Write as _;

use bytes::Bytes;
use http::header::{
    self, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, DATE, EXPECT, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, Method, Request, StatusCode, Uri, Version};

use super::copies::CopyBuffer;
use super::framing::{self, FramingLimits, HeadVerdict, ParsedWith};
use super::header_names::HeaderNameCache;
use crate::http::headers::hop_by_hop::has_token;
pub(crate) use crate::upstream::{BodyDecoder, BodyKind, Decoded};

/// The longest request target hyper takes (longer ones get its 414, which the codec
/// turns into Envoy's 431): left to hyper.
const MAX_URI_LEN: usize = (u16::MAX - 1) as usize;

/// hyper's limit on one header name (longer: its 431): left to hyper.
const MAX_HEADER_NAME_LEN: usize = 1 << 16;

/// A request head the lean server serves.
#[derive(Debug)]
pub(crate) struct RequestHead {
    /// Method, target, version and headers as hyper's server would hand them over.
    pub(crate) request: Request<()>,
    /// How the request body is delimited (never close-delimited).
    pub(crate) body: BodyKind,
    /// The client lets the connection carry another request after this one.
    pub(crate) keep_alive: bool,
    /// The client waits for `100 Continue` before sending the body.
    pub(crate) expect_continue: bool,
    /// The client accepts trailers (`te: trailers`): hyper sends a response's only then.
    pub(crate) accepts_trailers: bool,
}

/// What one parse of the bytes at the start of the read buffer came to. (Returned
/// once per request and taken apart at once: boxing the head would cost an allocation
/// per request.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum HeadParse {
    /// A whole head of `len` bytes, for the lean server.
    Request { head: RequestHead, len: usize },
    /// The head has not ended yet.
    Partial,
    /// Envoy refuses the request: its reply (status, `%RESPONSE_CODE_DETAILS%`, an
    /// empty body or the codec's text), then the connection closes. (The loop hands
    /// these to hyper, whose 400 the I/O rewrites as today; tests read the fields.)
    #[allow(dead_code)]
    Refused {
        status: u16,
        details: &'static str,
        empty_body: bool,
    },
    /// Not for the lean path: hand the connection, with every byte read, to hyper.
    Fallback,
}

/// Parses and judges the request head at the start of `data` (one httparse pass).
#[cfg(test)]
pub(crate) fn parse_request_head(data: &[u8], limits: &FramingLimits) -> HeadParse {
    parse_request_head_reusing(
        data,
        limits,
        &mut None,
        &mut CopyBuffer::default(),
        &mut HeaderNameCache::default(),
    )
}

/// [`parse_request_head`], with the headers going into `recycled` (an emptied map from
/// an earlier exchange, as hyper's server reuses one) when there is one, and the head's
/// copy taken from the connection's `copies` and its header names through `names`.
pub(crate) fn parse_request_head_reusing(
    data: &[u8],
    limits: &FramingLimits,
    recycled: &mut Option<HeaderMap>,
    copies: &mut CopyBuffer,
    names: &mut HeaderNameCache,
) -> HeadParse {
    let parsed = framing::parse_head_with(data, limits, |req, len| {
        let body = match framing::judge(req, limits) {
            HeadVerdict::Refuse { status, details } => {
                return HeadParse::Refused {
                    status,
                    details,
                    empty_body: framing::is_connection_manager_refusal(details),
                }
            }
            HeadVerdict::Tunnel => return HeadParse::Fallback,
            HeadVerdict::NoBody => BodyKind::Empty,
            HeadVerdict::Length(n) => BodyKind::Length(n),
            HeadVerdict::Chunked => BodyKind::Chunked,
        };
        match build_request(data, req, len, body, recycled.take(), copies, names) {
            Some(head) => HeadParse::Request { head, len },
            None => HeadParse::Fallback,
        }
    });
    match parsed {
        ParsedWith::Complete(parse) => parse,
        ParsedWith::Partial => HeadParse::Partial,
        // A head to repair, or one hyper refuses with its own 400: hyper's path.
        ParsedWith::Invalid => HeadParse::Fallback,
    }
}

/// Builds the request from a complete head of `len` bytes at the start of `data`, as
/// hyper's server does. None where hyper would refuse, or for an upgrade (hyper keeps
/// those).
fn build_request(
    data: &[u8],
    parsed: &httparse::Request<'_, '_>,
    len: usize,
    body: BodyKind,
    recycled: Option<HeaderMap>,
    copies: &mut CopyBuffer,
    names: &mut HeaderNameCache,
) -> Option<RequestHead> {
    let target = parsed.path?;
    if target.len() > MAX_URI_LEN {
        return None;
    }
    let method = Method::from_bytes(parsed.method?.as_bytes()).ok()?;
    let http11 = parsed.version? == 1;
    // One copy of the head; the target and header values are slices of it.
    let head = copies.copy(&data[..len]);
    let base = data.as_ptr() as usize;
    let slice_of = |part: &[u8]| {
        let at = part.as_ptr() as usize - base;
        head.slice(at..at + part.len())
    };
    let uri = Uri::from_maybe_shared(slice_of(target.as_bytes())).ok()?;
    let mut keep_alive = http11;
    let mut saw_close = false;
    let mut expect_continue = false;
    let mut accepts_trailers = false;
    // A recycled map (a response's, with room for more than a request brings in the
    // usual case) is reserved for the request's own headers only, as hyper's server
    // does: asking for more would reallocate it. A new map gets room for what the
    // connection manager adds (forwarding headers, request id).
    let mut headers = match recycled {
        Some(mut map) => {
            map.reserve(parsed.headers.len());
            map
        }
        None => HeaderMap::with_capacity(parsed.headers.len() + 8),
    };
    for (position, line) in parsed.headers.iter().enumerate() {
        if line.name.len() >= MAX_HEADER_NAME_LEN {
            return None;
        }
        let name = names.name(position, line.name.as_bytes())?;
        let value = parsed_value(slice_of(line.value));
        match name {
            CONNECTION => {
                // Once one line asks to close, a later keep-alive does not undo it.
                if saw_close || has_token(&value, "close") {
                    saw_close = true;
                    keep_alive = false;
                } else if !keep_alive {
                    keep_alive = has_token(&value, "keep-alive");
                }
            }
            EXPECT => expect_continue = value.as_bytes().eq_ignore_ascii_case(b"100-continue"),
            // hyper readies a protocol switch for any `upgrade` (HTTP/1.1): its path.
            UPGRADE if http11 => return None,
            header::TE => accepts_trailers |= has_token(&value, "trailers"),
            _ => {}
        }
        headers.append(name, value);
    }
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = if http11 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    *request.headers_mut() = headers;
    Some(RequestHead {
        request,
        body,
        keep_alive,
        expect_continue,
        accepts_trailers,
    })
}

/// A header value httparse has parsed, without checking its bytes a second time.
pub(crate) fn parsed_value(bytes: Bytes) -> HeaderValue {
    // httparse takes into a value exactly the bytes `HeaderValue` accepts (tab, 0x20 to
    // 0x7e, 0x80 to 0xff; obsolete line folding is off), so the check
    // `from_maybe_shared` would make again cannot fail. (Debug builds still check.)
    #[allow(unsafe_code)]
    // SAFETY: `HeaderValue` holds any such bytes (it takes obs-text, non-UTF-8 bytes, in
    // its checked constructors too; its `to_str` checks); see above.
    unsafe {
        HeaderValue::from_maybe_shared_unchecked(bytes)
    }
}

/// The response body as hyper's dispatcher sees it before writing the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyLength {
    /// The body ended already (`is_end_stream`).
    None,
    /// An exact size hint.
    Known(u64),
    /// Anything else.
    Unknown,
}

impl BodyLength {
    /// What hyper's dispatcher reads off a body.
    pub(crate) fn of<B: http_body::Body>(body: &B) -> Self {
        if body.is_end_stream() {
            return Self::None;
        }
        body.size_hint().exact().map_or(Self::Unknown, Self::Known)
    }
}

/// The exchange a response answers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exchange<'a> {
    /// The request's method.
    pub(crate) method: &'a Method,
    /// The request's version (HTTP/1.0 clients get HTTP/1.0 answers).
    pub(crate) version: Version,
    /// The connection may carry another request after this one: the client asked for
    /// it and the server is not closing (drain, an earlier `connection: close`).
    pub(crate) keep_alive: bool,
}

/// Why a response head cannot be written (hyper's user errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EncodeError {
    /// An informational status other than 101: hyper answers 500 instead.
    #[error("1xx responses are not supported")]
    Informational,
    /// A `content-length` that is not a number, or several that differ.
    #[error("invalid content-length in the response")]
    ContentLength,
    /// A length header after the length was already decided.
    #[error("unexpected framing header in the response")]
    Framing,
    /// A version hyper cannot write on HTTP/1.
    #[error("response version not writable on HTTP/1")]
    Version,
}

/// How the response body goes on the wire, once its head is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BodyEncoder {
    kind: EncoderKind,
    /// The connection closes after this response.
    last: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum EncoderKind {
    /// Exactly this many bytes are left.
    Length(u64),
    /// Chunked, with the trailer names the head declared (`trailer`), if it did.
    Chunked(Option<Vec<HeaderName>>),
    /// Until the connection closes (HTTP/1.0 without a length).
    CloseDelimited,
}

/// The body was not as long as the response head said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("response body ended {0} bytes short of its content-length")]
pub(crate) struct BodyTooShort(pub(crate) u64);

impl BodyEncoder {
    /// The connection closes after this response (`connection: close` either way, an
    /// HTTP/1.0 exchange without keep-alive, a close-delimited body).
    pub(crate) fn is_last(&self) -> bool {
        self.last || self.kind == EncoderKind::CloseDelimited
    }

    /// No body bytes may follow the head.
    pub(crate) fn is_eof(&self) -> bool {
        self.kind == EncoderKind::Length(0)
    }

    /// True for a chunked body.
    #[cfg(test)]
    pub(crate) fn is_chunked(&self) -> bool {
        matches!(self.kind, EncoderKind::Chunked(_))
    }

    /// Appends a data frame to `dst`, framed as hyper frames it; bytes past a
    /// content-length are dropped (hyper ends the body there too).
    pub(crate) fn encode_data(&mut self, dst: &mut Vec<u8>, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        match &mut self.kind {
            EncoderKind::Length(left) => {
                let n = usize::try_from(*left).map_or(data.len(), |l| l.min(data.len()));
                dst.extend_from_slice(&data[..n]);
                *left -= n as u64;
            }
            EncoderKind::Chunked(_) => {
                push_hex(dst, data.len());
                dst.extend_from_slice(b"\r\n");
                dst.extend_from_slice(data);
                dst.extend_from_slice(b"\r\n");
            }
            EncoderKind::CloseDelimited => dst.extend_from_slice(data),
        }
    }

    /// Appends the end of the body. `trailers`: the body's trailers when the client
    /// accepts them ([`RequestHead::accepts_trailers`]); a chunked body sends those the
    /// head declared in `trailer` (and hyper allows), else the plain last chunk.
    pub(crate) fn encode_end(
        &self,
        dst: &mut Vec<u8>,
        trailers: Option<&HeaderMap>,
    ) -> Result<(), BodyTooShort> {
        match &self.kind {
            EncoderKind::Length(0) | EncoderKind::CloseDelimited => Ok(()),
            EncoderKind::Length(left) => Err(BodyTooShort(*left)),
            EncoderKind::Chunked(declared) => {
                dst.extend_from_slice(b"0\r\n");
                if let (Some(declared), Some(trailers)) = (declared, trailers) {
                    for (name, value) in trailers {
                        if declared.contains(name) && is_valid_trailer_field(name) {
                            write_line(dst, name.as_str(), value);
                        }
                    }
                }
                dst.extend_from_slice(b"\r\n");
                Ok(())
            }
        }
    }
}

/// Appends `n` in uppercase hex, as hyper writes chunk sizes.
fn push_hex(dst: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b"0123456789ABCDEF"[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    dst.extend_from_slice(&digits[at..]);
}

/// Trailer fields hyper never sends, declared or not.
fn is_valid_trailer_field(name: &HeaderName) -> bool {
    !matches!(
        *name,
        header::AUTHORIZATION
            | header::CACHE_CONTROL
            | header::CONTENT_ENCODING
            | header::CONTENT_LENGTH
            | header::CONTENT_RANGE
            | header::CONTENT_TYPE
            | header::HOST
            | header::MAX_FORWARDS
            | header::SET_COOKIE
            | header::TRAILER
            | header::TRANSFER_ENCODING
            | header::TE
    )
}

fn write_line(dst: &mut Vec<u8>, name: &str, value: &HeaderValue) {
    dst.extend_from_slice(name.as_bytes());
    dst.extend_from_slice(b": ");
    dst.extend_from_slice(value.as_bytes());
    dst.extend_from_slice(b"\r\n");
}

/// HEAD answers, 1xx, 204, 304 and successful CONNECT answers carry no body.
fn can_chunk(method: &Method, status: StatusCode) -> bool {
    if *method == Method::HEAD
        || (*method == Method::CONNECT && status.is_success())
        || status.is_informational()
    {
        return false;
    }
    !matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)
}

fn can_have_content_length(method: &Method, status: StatusCode) -> bool {
    if status.is_informational() || (*method == Method::CONNECT && status.is_success()) {
        return false;
    }
    !matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)
}

/// Adjusts the head for the client's version and the connection's keep-alive as
/// hyper's connection does before encoding; returns whether the connection stays
/// open after it.
fn enforce_version(head: &mut http::response::Parts, exchange: &Exchange<'_>) -> bool {
    let mut keep_alive = exchange.keep_alive;
    match exchange.version {
        Version::HTTP_10 => {
            let says_keep_alive = head
                .headers
                .get_all(CONNECTION)
                .iter()
                .any(|v| has_token(v, "keep-alive"));
            if !says_keep_alive {
                match head.version {
                    Version::HTTP_10 => keep_alive = false,
                    Version::HTTP_11 if keep_alive => {
                        head.headers
                            .append(CONNECTION, HeaderValue::from_static("keep-alive"));
                    }
                    _ => {}
                }
            }
            head.version = Version::HTTP_10;
        }
        Version::HTTP_11 if !keep_alive => {
            let closes = head
                .headers
                .get_all(CONNECTION)
                .iter()
                .any(|v| has_token(v, "close"));
            if !closes {
                head.headers
                    .append(CONNECTION, HeaderValue::from_static("close"));
            }
        }
        _ => {}
    }
    keep_alive
}

/// Writes the head of `head` (consumed: its headers are drained as hyper drains them)
/// into `dst`, as hyper's server writes it, and returns the body's encoder.
pub(crate) fn encode_response_head(
    dst: &mut Vec<u8>,
    head: &mut http::response::Parts,
    body: BodyLength,
    exchange: &Exchange<'_>,
) -> Result<BodyEncoder, EncodeError> {
    let keep_alive = enforce_version(head, exchange);
    let status = head.status;
    let method = exchange.method;
    let mut wrote_len = false;
    let mut is_last = if status == StatusCode::SWITCHING_PROTOCOLS {
        true
    } else if *method == Method::CONNECT && status.is_success() {
        wrote_len = true;
        true
    } else if status.is_informational() {
        return Err(EncodeError::Informational);
    } else {
        !keep_alive
    };
    let orig_len = dst.len();
    let result = encode_head_lines(dst, head, body, method, &mut wrote_len, &mut is_last);
    if result.is_err() {
        dst.truncate(orig_len);
    }
    let kind = result?;
    Ok(BodyEncoder {
        kind,
        last: is_last,
    })
}

fn encode_head_lines(
    dst: &mut Vec<u8>,
    head: &mut http::response::Parts,
    body: BodyLength,
    method: &Method,
    wrote_len: &mut bool,
    is_last: &mut bool,
) -> Result<EncoderKind, EncodeError> {
    let status = head.status;
    let reason = head.extensions.get::<hyper::ext::ReasonPhrase>();
    dst.reserve(30 + head.headers.len() * 30);
    match (head.version, status, reason) {
        (Version::HTTP_11, StatusCode::OK, None) => dst.extend_from_slice(b"HTTP/1.1 200 OK\r\n"),
        (version, _, _) => {
            dst.extend_from_slice(match version {
                Version::HTTP_10 => b"HTTP/1.0 ",
                Version::HTTP_11 | Version::HTTP_2 => b"HTTP/1.1 ",
                _ => return Err(EncodeError::Version),
            });
            dst.extend_from_slice(status.as_str().as_bytes());
            dst.push(b' ');
            match reason {
                Some(reason) => dst.extend_from_slice(reason.as_bytes()),
                None => {
                    dst.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes())
                }
            }
            dst.extend_from_slice(b"\r\n");
        }
    }

    let mut kind = EncoderKind::Length(0);
    let mut trailer_fields: Option<Vec<HeaderName>> = None;
    let mut wrote_date = false;
    let mut must_write_chunked = false;
    let mut prev_len: Option<u64> = None;
    // A framing line (length, coding, connection, trailer) is open: later values of the
    // same name join it with `, ` and it ends when the name changes.
    let mut line_open = false;
    // Drained rather than looked up name by name (each lookup hashes again); the
    // emptied map goes back into `head`, for the caller to reuse.
    let mut headers = std::mem::take(&mut head.headers);
    let mut current: Option<HeaderName> = None;
    for (next_name, value) in headers.drain() {
        if let Some(next_name) = next_name {
            if line_open {
                close_line(dst, must_write_chunked);
                line_open = false;
            }
            current = Some(next_name);
        }
        let Some(name) = &current else { continue };
        let value = &value;
        {
            match *name {
                CONTENT_LENGTH => {
                    if *wrote_len && !line_open {
                        return Err(EncodeError::Framing);
                    }
                    match body {
                        BodyLength::Known(known) => {
                            if !line_open {
                                kind = EncoderKind::Length(known);
                                dst.extend_from_slice(b"content-length: ");
                                dst.extend_from_slice(value.as_bytes());
                                *wrote_len = true;
                                line_open = true;
                            }
                            continue;
                        }
                        BodyLength::Unknown => {
                            let len =
                                parse_content_length(value).ok_or(EncodeError::ContentLength)?;
                            match prev_len {
                                Some(prev) if prev != len => {
                                    return Err(EncodeError::ContentLength)
                                }
                                Some(_) => {}
                                None => {
                                    kind = EncoderKind::Length(len);
                                    dst.extend_from_slice(b"content-length: ");
                                    dst.extend_from_slice(value.as_bytes());
                                    *wrote_len = true;
                                    line_open = true;
                                    prev_len = Some(len);
                                }
                            }
                            continue;
                        }
                        BodyLength::None => {
                            if *method != Method::HEAD {
                                continue;
                            }
                        }
                    }
                    *wrote_len = true;
                }
                TRANSFER_ENCODING => {
                    if *wrote_len && !line_open {
                        return Err(EncodeError::Framing);
                    }
                    if head.version == Version::HTTP_10 || !can_chunk(method, status) {
                        continue;
                    }
                    *wrote_len = true;
                    must_write_chunked = !is_chunked(value);
                    if !line_open {
                        kind = EncoderKind::Chunked(None);
                        line_open = true;
                        dst.extend_from_slice(b"transfer-encoding: ");
                    } else {
                        dst.extend_from_slice(b", ");
                    }
                    dst.extend_from_slice(value.as_bytes());
                    continue;
                }
                CONNECTION => {
                    if !*is_last && has_token(value, "close") {
                        *is_last = true;
                    }
                    if !line_open {
                        line_open = true;
                        dst.extend_from_slice(b"connection: ");
                    } else {
                        dst.extend_from_slice(b", ");
                    }
                    dst.extend_from_slice(value.as_bytes());
                    continue;
                }
                DATE => wrote_date = true,
                TRAILER => {
                    if head.version == Version::HTTP_10 || !can_chunk(method, status) {
                        continue;
                    }
                    if !line_open {
                        line_open = true;
                        dst.extend_from_slice(b"trailer: ");
                    } else {
                        dst.extend_from_slice(b", ");
                    }
                    dst.extend_from_slice(value.as_bytes());
                    if let Ok(text) = value.to_str() {
                        let names = text
                            .split(',')
                            .filter_map(|s| HeaderName::from_bytes(s.trim().as_bytes()).ok());
                        trailer_fields.get_or_insert_with(Vec::new).extend(names);
                    }
                    continue;
                }
                _ => {}
            }
            write_line(dst, name.as_str(), value);
        }
    }
    head.headers = headers;
    if line_open {
        close_line(dst, must_write_chunked);
    }

    if !*wrote_len {
        kind = match body {
            BodyLength::Unknown => {
                if head.version == Version::HTTP_10 || !can_chunk(method, status) {
                    EncoderKind::CloseDelimited
                } else {
                    dst.extend_from_slice(b"transfer-encoding: chunked\r\n");
                    EncoderKind::Chunked(None)
                }
            }
            BodyLength::None | BodyLength::Known(0) => {
                if can_have_content_length(method, status) && *method != Method::HEAD {
                    dst.extend_from_slice(b"content-length: 0\r\n");
                }
                EncoderKind::Length(0)
            }
            BodyLength::Known(len) => {
                if can_have_content_length(method, status) {
                    dst.extend_from_slice(b"content-length: ");
                    // Writing to a Vec cannot fail.
                    let _ = write!(dst, "{len}");
                    dst.extend_from_slice(b"\r\n");
                    EncoderKind::Length(len)
                } else {
                    EncoderKind::Length(0)
                }
            }
        };
    }
    if !can_chunk(method, status) {
        kind = EncoderKind::Length(0);
    }
    if !wrote_date {
        dst.extend_from_slice(b"date: ");
        append_http_date(dst);
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
    if let (EncoderKind::Chunked(declared), Some(fields)) = (&mut kind, trailer_fields) {
        *declared = Some(fields);
    }
    Ok(kind)
}

/// Ends an open framing line (adding `chunked` when a coding list lacked it last).
fn close_line(dst: &mut Vec<u8>, must_write_chunked: bool) {
    if must_write_chunked {
        dst.extend_from_slice(b", chunked\r\n");
    } else {
        dst.extend_from_slice(b"\r\n");
    }
}

/// True when the last coding of a `transfer-encoding` value is `chunked`.
fn is_chunked(value: &HeaderValue) -> bool {
    value
        .to_str()
        .ok()
        .and_then(|s| s.rsplit(',').next())
        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
}

/// A `content-length` value as hyper reads one (digits; a list of equal values).
fn parse_content_length(value: &HeaderValue) -> Option<u64> {
    let mut length = None;
    for part in value.to_str().ok()?.split(',') {
        let part = part.trim();
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u64 = part.parse().ok()?;
        if length.is_some_and(|l| l != n) {
            return None;
        }
        length = Some(n);
    }
    length
}

/// Appends the current time as an HTTP date (this thread's cached `date` value).
pub(crate) fn append_http_date(dst: &mut Vec<u8>) {
    dst.extend_from_slice(crate::http::headers::date::now().as_bytes());
}

#[cfg(test)]
#[path = "lean_server_tests.rs"]
pub(super) mod tests;
