//! The HTTP/1.1 wire format of the lean upstream exchange (`lean`): the request head
//! written straight into one reusable buffer, the response head parsed once with
//! `httparse` into an `http::Response`, and the response body framing (content-length,
//! chunked with trailers, close-delimited, none). Pure functions over byte buffers: the
//! socket side lives in `lean`.
//!
//! Framing rules follow what hyper's client applied before (so upstream answers keep
//! their outcomes): 1xx heads other than 101 are skipped, HEAD/204/304 carry no body,
//! `transfer-encoding` wins over `content-length` (chunked when it is the last coding,
//! else read to the close; refused on HTTP/1.0), differing or invalid content-lengths
//! are a protocol error.

use std::mem::MaybeUninit;

use http::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};

use crate::http::codec::{CopyBuffer, HeaderNameCache};
use crate::http::headers::hop_by_hop::{has_token, is_plain_keep_alive};

/// Heads with up to this many headers parse on the stack.
const STACK_HEADERS: usize = 100;

/// Why a response (head or body) broke HTTP/1.1: Envoy's upstream protocol error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// The head does not parse (or holds a header `http` refuses).
    #[error("malformed upstream response head: {0}")]
    Head(&'static str),
    /// The head did not fit in the read buffer.
    #[error("upstream response head too large")]
    HeadTooLarge,
    /// More headers than the cluster allows.
    #[error("upstream response has too many headers")]
    TooManyHeaders,
    /// Content-length values that disagree or are not numbers.
    #[error("invalid upstream content-length")]
    ContentLength,
    /// Transfer-encoding on an HTTP/1.0 response.
    #[error("transfer-encoding on an HTTP/1.0 upstream response")]
    TransferEncodingOnHttp10,
    /// A chunk size line or chunk terminator that is not HTTP.
    #[error("malformed chunked upstream response body")]
    Chunk,
    /// Trailers that do not parse.
    #[error("malformed upstream response trailers")]
    Trailers,
    /// The upstream closed before the body's declared end.
    #[error("upstream closed before the response body ended")]
    Incomplete,
}

/// Whether the lean exchange can carry `req`: an HTTP/1.1 request that asks for no
/// protocol switch (the caller keeps upgrades and CONNECT on hyper's client), without a
/// body or with a content-length one (bodies to be chunked stay on hyper's client).
pub(super) fn handles<B: http_body::Body>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.method() != Method::CONNECT
        && !req.headers().contains_key(TRANSFER_ENCODING)
        && (req.body().is_end_stream() || declared_length(req.headers()).is_some())
}

/// The request's one content-length value.
pub(super) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(CONTENT_LENGTH).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    digits(value.to_str().ok()?)
}

/// What [`write_request_head`] read off the request's headers on the way (rather
/// than looking them up again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RequestHeadFacts {
    /// A `connection` header asks to close the connection after this exchange.
    pub(super) close_asked: bool,
    /// The request's one content-length value (see [`declared_length`]).
    pub(super) declared_length: Option<u64>,
}

/// Writes the head of a request into `buf` (cleared first): request line, headers as
/// Baton prepared them (lowercase names), blank line. A `transfer-encoding` is left off
/// (only bodiless and content-length requests come here).
pub(super) fn write_request_head<B>(buf: &mut Vec<u8>, req: &Request<B>) -> RequestHeadFacts {
    buf.clear();
    let method = req.method().as_str();
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let headers = req.headers();
    let mut len = method.len() + target.len() + 13;
    let mut close_asked = false;
    let mut lengths = 0;
    let mut length = None;
    for (name, value) in headers {
        len += name.as_str().len() + value.len() + 4;
        if name == CONNECTION {
            close_asked |= has_token(value, "close");
        } else if name == CONTENT_LENGTH {
            lengths += 1;
            length = Some(value);
        }
    }
    buf.reserve(len);
    buf.extend_from_slice(method.as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(target.as_bytes());
    buf.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if name == TRANSFER_ENCODING {
            continue;
        }
        buf.extend_from_slice(name.as_str().as_bytes());
        buf.extend_from_slice(b": ");
        buf.extend_from_slice(value.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    buf.extend_from_slice(b"\r\n");
    RequestHeadFacts {
        close_asked,
        declared_length: length
            .filter(|_| lengths == 1)
            .and_then(|v| v.to_str().ok())
            .and_then(digits),
    }
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// No body (HEAD, 1xx, 204, 304, `content-length: 0`).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the upstream closes.
    CloseDelimited,
}

/// A parsed response head.
#[derive(Debug)]
pub(super) struct ResponseHead {
    pub(super) response: Response<()>,
    pub(super) body: BodyKind,
    /// The connection may carry another request once the body ends.
    pub(super) keep_alive: bool,
    /// Bytes of the buffer the head (with skipped 1xx heads) took.
    pub(super) consumed: usize,
}

/// Parses the response head at the start of `data`. `Ok(None)`: incomplete; the caller
/// reads more unless `data` already fills `max_head`. Skips informational heads (not
/// 101) as hyper did.
#[cfg(test)]
pub(super) fn parse_response_head(
    data: &[u8],
    max_headers: usize,
    head_request: bool,
) -> Result<Option<ResponseHead>, FramingError> {
    parse_response_head_into(
        data,
        max_headers,
        head_request,
        &mut None,
        &mut CopyBuffer::default(),
        &mut HeaderNameCache::default(),
    )
}

/// [`parse_response_head`], with the headers going into `recycled` (an emptied map, the
/// connection's last request's) when there is one, and the head's copy taken from the
/// connection's `copies` and its header names through `names`.
pub(super) fn parse_response_head_into(
    data: &[u8],
    max_headers: usize,
    head_request: bool,
    recycled: &mut Option<HeaderMap>,
    copies: &mut CopyBuffer,
    names: &mut HeaderNameCache,
) -> Result<Option<ResponseHead>, FramingError> {
    let mut start = 0;
    loop {
        let Some((len, head)) = parse_one_head(
            &data[start..],
            max_headers,
            head_request,
            recycled,
            copies,
            names,
        )?
        else {
            return Ok(None);
        };
        start += len;
        if let Some((response, body, keep_alive)) = head {
            return Ok(Some(ResponseHead {
                response,
                body,
                keep_alive,
                consumed: start,
            }));
        }
    }
}

type ParsedOne = (Response<()>, BodyKind, bool);

/// One head: its length, and the response unless it was informational.
fn parse_one_head(
    data: &[u8],
    max_headers: usize,
    head_request: bool,
    recycled: &mut Option<HeaderMap>,
    copies: &mut CopyBuffer,
    names: &mut HeaderNameCache,
) -> Result<Option<(usize, Option<ParsedOne>)>, FramingError> {
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let mut heap;
    let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if max_headers <= STACK_HEADERS {
        &mut stack[..max_headers]
    } else {
        heap = vec![MaybeUninit::uninit(); max_headers];
        &mut heap
    };
    let mut parsed = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        data,
        slots,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(FramingError::TooManyHeaders),
        Err(e) => return Err(FramingError::Head(head_error(e))),
    };
    let code = parsed.code.ok_or(FramingError::Head("status"))?;
    let status = StatusCode::from_u16(code).map_err(|_| FramingError::Head("status"))?;
    if status.is_informational() && code != 101 {
        return Ok(Some((len, None)));
    }
    let version = if parsed.version == Some(1) {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    // One copy of the head; the header values are slices of it.
    let head = copies.copy(&data[..len]);
    let mut headers = match recycled.take() {
        Some(mut map) => {
            map.reserve(parsed.headers.len());
            map
        }
        None => HeaderMap::with_capacity(parsed.headers.len()),
    };
    let mut keep_alive = version == Version::HTTP_11;
    let mut saw_close = false;
    // Whether the head's `connection` lines are left out of the response: decided by
    // its first line (see below); None until one is seen.
    let mut drop_connection = None;
    // The framing headers, read in this pass rather than looked up again.
    let mut last_transfer_encoding = None;
    let mut length = Ok(None);
    for (position, header) in parsed.headers.iter().enumerate() {
        let name = names
            .name(position, header.name.as_bytes())
            .ok_or(FramingError::Head("header name"))?;
        let offset = header.value.as_ptr() as usize - data.as_ptr() as usize;
        let value =
            crate::http::codec::parsed_value(head.slice(offset..offset + header.value.len()));
        if name == CONNECTION {
            // Once one line asks to close, a later keep-alive does not undo it.
            if saw_close || has_token(&value, "close") {
                saw_close = true;
                keep_alive = false;
            } else if !keep_alive {
                keep_alive = has_token(&value, "keep-alive");
            }
            // The only reader of these responses is the router, which strips hop-by-hop
            // headers, and when the first `connection` line names no header (the usual
            // `keep-alive`) that strip removes every `connection` line and nothing else
            // (`hop_by_hop::strip`). Left out here, they cost neither an insert nor a
            // removal (and a removal would move the head's last header into the gap).
            if *drop_connection.get_or_insert_with(|| is_plain_keep_alive(&value)) {
                continue;
            }
        } else if name == CONTENT_LENGTH {
            length = length.and_then(|seen| add_content_length(seen, &value));
        } else if name == TRANSFER_ENCODING {
            last_transfer_encoding = Some(value.clone());
        }
        headers.append(name, value);
    }
    let reason = parsed.reason.unwrap_or("");
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    if Some(reason) != status.canonical_reason() {
        let offset = reason.as_ptr() as usize - data.as_ptr() as usize;
        let phrase = hyper::ext::ReasonPhrase::try_from(head.slice(offset..offset + reason.len()))
            .map_err(|_| FramingError::Head("reason"))?;
        response.extensions_mut().insert(phrase);
    }
    let body = body_kind(
        code,
        version,
        last_transfer_encoding.as_ref(),
        length,
        head_request,
    )?;
    if code == 101 {
        // No upgrade was asked for: the connection is not reusable after it.
        keep_alive = false;
    }
    *response.headers_mut() = headers;
    Ok(Some((len, Some((response, body, keep_alive)))))
}

fn head_error(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "header name",
        httparse::Error::HeaderValue => "header value",
        httparse::Error::NewLine => "new line",
        httparse::Error::Status => "status",
        httparse::Error::Token => "token",
        httparse::Error::Version => "version",
        httparse::Error::TooManyHeaders => "too many headers",
    }
}

/// How the body is delimited. `last_transfer_encoding`: the last `transfer-encoding`
/// line, if any; `length`: the `content-length` lines read so far (see
/// [`add_content_length`]; `Ok(None)` when there were none).
fn body_kind(
    code: u16,
    version: Version,
    last_transfer_encoding: Option<&HeaderValue>,
    length: Result<Option<u64>, FramingError>,
    head_request: bool,
) -> Result<BodyKind, FramingError> {
    if matches!(code, 101 | 204 | 304) || head_request {
        return Ok(BodyKind::Empty);
    }
    if let Some(coding) = last_transfer_encoding {
        if version == Version::HTTP_10 {
            return Err(FramingError::TransferEncodingOnHttp10);
        }
        let chunked = coding
            .to_str()
            .ok()
            .and_then(|s| s.rsplit(',').next())
            .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        return Ok(if chunked {
            BodyKind::Chunked
        } else {
            BodyKind::CloseDelimited
        });
    }
    match length? {
        None => Ok(BodyKind::CloseDelimited),
        Some(0) => Ok(BodyKind::Empty),
        // hyper's largest length; above it is no length at all.
        Some(n) if n < u64::MAX - 1 => Ok(BodyKind::Length(n)),
        _ => Err(FramingError::ContentLength),
    }
}

/// Folds one `content-length` line (a list of equal values) into the length the earlier
/// lines gave: values that are not numbers or disagree are an error.
fn add_content_length(
    mut length: Option<u64>,
    value: &HeaderValue,
) -> Result<Option<u64>, FramingError> {
    let text = value.to_str().map_err(|_| FramingError::ContentLength)?;
    for part in text.split(',') {
        let n = digits(part.trim()).ok_or(FramingError::ContentLength)?;
        if length.is_some_and(|l| l != n) {
            return Err(FramingError::ContentLength);
        }
        length = Some(n);
    }
    Ok(length)
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// What decoding found in the buffered bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// Body bytes (a range of the buffer given, to be taken by the caller).
    Data(std::ops::Range<usize>),
    /// The trailers ending a chunked body (only when there were any).
    Trailers(HeaderMap),
    /// The body ended.
    End,
    /// More bytes are needed.
    NeedMore,
}

/// Where a chunked body is between reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Expecting a chunk size line.
    Size,
    /// Inside a chunk with this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailers, then the blank line.
    Trailers,
}

/// Longest chunk size line (size, extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// Longest trailer section accepted.
const MAX_TRAILERS: usize = 16 * 1024;

/// A response body's framing state.
#[derive(Debug)]
pub(crate) struct BodyDecoder {
    kind: BodyKind,
    /// Bytes left of a content-length body.
    remaining: u64,
    chunk: ChunkState,
    ended: bool,
}

impl BodyDecoder {
    pub(crate) fn new(kind: BodyKind) -> Self {
        Self {
            kind,
            remaining: match kind {
                BodyKind::Length(n) => n,
                _ => 0,
            },
            chunk: ChunkState::Size,
            ended: kind == BodyKind::Empty,
        }
    }

    pub(crate) fn is_ended(&self) -> bool {
        self.ended
    }

    /// Bytes left of a content-length body (exact size hint).
    pub(crate) fn exact_remaining(&self) -> Option<u64> {
        match self.kind {
            BodyKind::Length(_) => Some(self.remaining),
            BodyKind::Empty => Some(0),
            _ => None,
        }
    }

    /// Decodes from `data` (the unread buffered bytes); `*used` is set to the bytes
    /// consumed (a `Data` range lies within them).
    pub(crate) fn decode(
        &mut self,
        data: &[u8],
        used: &mut usize,
    ) -> Result<Decoded, FramingError> {
        *used = 0;
        if self.ended {
            return Ok(Decoded::End);
        }
        match self.kind {
            BodyKind::Empty => {
                self.ended = true;
                Ok(Decoded::End)
            }
            BodyKind::Length(_) => {
                if data.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let n = usize::try_from(self.remaining).map_or(data.len(), |r| r.min(data.len()));
                self.remaining -= n as u64;
                self.ended = self.remaining == 0;
                *used = n;
                Ok(Decoded::Data(0..n))
            }
            BodyKind::CloseDelimited => {
                if data.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                *used = data.len();
                Ok(Decoded::Data(0..data.len()))
            }
            BodyKind::Chunked => self.decode_chunked(data, used),
        }
    }

    fn decode_chunked(&mut self, data: &[u8], used: &mut usize) -> Result<Decoded, FramingError> {
        let mut pos = 0;
        loop {
            let rest = &data[pos..];
            match self.chunk {
                ChunkState::Size => {
                    let Some(line_end) = find_crlf(rest) else {
                        if rest.len() > MAX_CHUNK_LINE {
                            return Err(FramingError::Chunk);
                        }
                        *used = pos;
                        return Ok(Decoded::NeedMore);
                    };
                    let size = chunk_size(&rest[..line_end])?;
                    pos += line_end + 2;
                    self.chunk = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    if rest.is_empty() {
                        *used = pos;
                        return Ok(Decoded::NeedMore);
                    }
                    let n = usize::try_from(left).map_or(rest.len(), |l| l.min(rest.len()));
                    let left = left - n as u64;
                    self.chunk = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                    *used = pos + n;
                    return Ok(Decoded::Data(pos..pos + n));
                }
                ChunkState::DataEnd => {
                    if rest.len() < 2 {
                        *used = pos;
                        return Ok(Decoded::NeedMore);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(FramingError::Chunk);
                    }
                    pos += 2;
                    self.chunk = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    if rest.starts_with(b"\r\n") {
                        *used = pos + 2;
                        self.ended = true;
                        return Ok(Decoded::End);
                    }
                    let Some(end) = find(rest, b"\r\n\r\n") else {
                        if rest.len() > MAX_TRAILERS {
                            return Err(FramingError::Trailers);
                        }
                        *used = pos;
                        return Ok(Decoded::NeedMore);
                    };
                    let section = &rest[..end + 4];
                    let trailers = parse_trailers(section)?;
                    *used = pos + end + 4;
                    self.ended = true;
                    return Ok(if trailers.is_empty() {
                        Decoded::End
                    } else {
                        Decoded::Trailers(trailers)
                    });
                }
            }
        }
    }

    /// The upstream closed: the end of a close-delimited body, an error otherwise.
    pub(super) fn on_eof(&mut self) -> Result<(), FramingError> {
        if self.ended || self.kind == BodyKind::CloseDelimited {
            self.ended = true;
            return Ok(());
        }
        Err(FramingError::Incomplete)
    }

    /// The connection can carry another request after this body (it is delimited by
    /// its framing, not by the close).
    pub(super) fn reusable(&self) -> bool {
        self.kind != BodyKind::CloseDelimited
    }
}

fn find_crlf(data: &[u8]) -> Option<usize> {
    find(data, b"\r\n")
}

fn find(data: &[u8], needle: &[u8]) -> Option<usize> {
    data.windows(needle.len()).position(|w| w == needle)
}

/// The size of a chunk size line (hex digits, optional whitespace and extensions).
fn chunk_size(line: &[u8]) -> Result<u64, FramingError> {
    let mut size: u64 = 0;
    let mut digits = 0;
    let mut rest = line;
    while let Some((&b, tail)) = rest.split_first() {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => break,
        };
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(digit)))
            .ok_or(FramingError::Chunk)?;
        digits += 1;
        rest = tail;
    }
    if digits == 0 {
        return Err(FramingError::Chunk);
    }
    // After the digits: optional spaces or tabs, then nothing or `;extensions`.
    let after = rest
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .map_or(&[][..], |i| &rest[i..]);
    if !after.is_empty() && after[0] != b';' {
        return Err(FramingError::Chunk);
    }
    if after.iter().any(|&b| b == b'\r' || b == b'\n') {
        return Err(FramingError::Chunk);
    }
    Ok(size)
}

fn parse_trailers(section: &[u8]) -> Result<HeaderMap, FramingError> {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let (_, parsed) = match httparse::parse_headers(section, &mut slots) {
        Ok(httparse::Status::Complete(done)) => done,
        _ => return Err(FramingError::Trailers),
    };
    let mut trailers = HeaderMap::with_capacity(parsed.len());
    for header in parsed {
        let name =
            HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| FramingError::Trailers)?;
        let value = HeaderValue::from_bytes(header.value).map_err(|_| FramingError::Trailers)?;
        trailers.append(name, value);
    }
    Ok(trailers)
}

#[cfg(test)]
#[path = "lean_codec_tests.rs"]
mod tests;
