//! HTTP/1 request framing check, on the downstream bytes before hyper reads them: follows
//! request heads and bodies exactly as hyper's server will, and finds the requests whose
//! framing Envoy 1.40 refuses but hyper would serve (`Content-Length` together with
//! `Transfer-Encoding`, repeated `Content-Length`, a `Transfer-Encoding` other than a lone
//! `chunked`), plus malformed chunked bodies that arrive with their head, and the
//! request lines Envoy's codec refuses or heads it reads where httparse refuses them
//! (`request_line`: unknown methods, bad targets, 426 versions, repairs). Request
//! smuggling needs two parsers that disagree about where a request ends; Envoy (and so
//! Baton) refuses every request whose end is ambiguous.
//!
//! hyper drops `Content-Length` when `Transfer-Encoding` is present and hands the service
//! a clean request, so the check has to happen on the bytes. The tracker only reports;
//! `DownstreamIo` makes hyper refuse the request (it replaces the head's final LF, so
//! hyper answers its own 400 after the responses to earlier pipelined requests) and
//! rewrites that 400 into Envoy's reply for the [`Rejection`].
//!
//! Cost: a head that arrives in one read is parsed once by httparse in place (no copy,
//! no allocation) and each header line costs a length comparison, plus a case-insensitive
//! one for the four names that matter. Heads split across reads are copied into one
//! per-connection buffer that keeps its capacity. Bodies are skipped by length, chunk
//! framing bytes are stepped through one at a time.

use std::mem::MaybeUninit;

mod request_line;

/// Connection manager settings the check needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramingLimits {
    /// hyper's HTTP/1 read buffer limit (`max_buf_size`). hyper's buffer never holds
    /// twice this, so a longer head can never be parsed and the check gives up on it.
    pub read_buffer_limit: usize,
    /// hyper's `max_headers` (the connection manager's `max_headers_count`).
    pub max_headers: usize,
    /// `http_protocol_options.accept_http_10`: without it Envoy answers 426 to an
    /// HTTP/1.0 request with `Transfer-Encoding`, which hyper refuses with 400.
    pub accept_http_10: bool,
}

/// A request the connection must refuse, and Envoy's answer to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// Which request on the connection (0: the first head).
    pub request: u64,
    /// Envoy's status: 400, 426 or 501.
    pub status: u16,
    /// Envoy's `%RESPONSE_CODE_DETAILS%` for it.
    pub details: &'static str,
    /// Offset, in the bytes just read, of the refused request's final head LF when the
    /// head ended in them (the head is not hyper's yet and can still be spoiled). None:
    /// hyper already has the head (a malformed chunk arrived in a later read), and it will
    /// fail on the body by itself, or hyper refuses the head by itself.
    pub head_end: Option<usize>,
    /// Envoy answers with an empty body and no `content-type` (a refusal of its
    /// connection manager rather than of its codec).
    pub empty_body: bool,
}

/// Fuzzing entry point for the HTTP/1 framing tracker (see `crate::fuzzing`): the first
/// byte picks the limits and the read size, the rest is fed as reads of that size.
/// Panics only on a broken invariant (a reported head end outside the read).
#[doc(hidden)]
pub fn fuzz_request_framing(input: &[u8]) {
    let Some((&control, data)) = input.split_first() else {
        return;
    };
    let limits = FramingLimits {
        read_buffer_limit: if control & 0x80 != 0 { 64 } else { 8192 },
        max_headers: if control & 0x40 != 0 { 2 } else { 100 },
        accept_http_10: control & 1 == 1,
    };
    let read_size = usize::from(control & 0x3e).max(1) * 7;
    let mut tracker = RequestFraming::new(limits);
    for read in data.chunks(read_size) {
        let mut read = read.to_vec();
        let (rejection, len) = tracker.on_read(&mut read);
        assert!(len <= read.len(), "repair grew a read");
        if let Some(rejection) = rejection {
            if let Some(end) = rejection.head_end {
                assert!(end < len, "head end {end} outside a read of {len}");
                assert_eq!(read[end], b'\n', "head end is not the head's final LF");
            }
            assert!(matches!(rejection.status, 400 | 426 | 501), "{rejection:?}");
        }
    }
    // The whole input in one read must not panic either.
    let _ = RequestFraming::new(limits).on_read(&mut data.to_vec());
}

/// `%RESPONSE_CODE_DETAILS%` of Envoy's codec errors.
const CODEC_ERROR: &str = "http1.codec_error";
const CL_AND_TE: &str = "http1.content_length_and_chunked_not_allowed";
const INVALID_TE: &str = "http1.invalid_transfer_encoding";
const LOW_VERSION: &str = "low_version";
const INVALID_URL: &str = "http1.invalid_url";
const PATH_NORMALIZATION_FAILED: &str = "path_normalization_failed";
const INVALID_CHARACTERS: &str = "http1.invalid_characters";

/// hyper's limit on chunk extension bytes in one body.
const CHUNK_EXTENSIONS_LIMIT: u64 = 16 * 1024;

/// Header slots parsed on the stack; more only when `max_headers` allows more and a
/// head uses them.
const STACK_HEADERS: usize = 100;

/// Where the tracker is in the request stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a request head (its earlier bytes, if any, are in `head_buf`).
    Head,
    /// Reading a body of `remaining` bytes.
    Length { remaining: u64 },
    /// Reading a chunked body.
    Chunked(Chunked),
    /// Nothing more to check: the bytes are no longer HTTP/1 requests (upgrade, CONNECT),
    /// or hyper closes the connection after what it has (a head it cannot parse or that
    /// is too long, a refused request).
    Done,
}

/// Chunked body position, step for step as hyper's decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Chunked {
    step: ChunkStep,
    /// Chunk size being read, then the chunk bytes still to come.
    size: u64,
    /// Chunk extension bytes so far in this body.
    extension_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ChunkStep {
    /// First hex digit of a chunk size.
    #[default]
    Start,
    Size,
    /// Whitespace after the size.
    SizeSpace,
    /// `;ext...` up to the CR.
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// A trailer line, up to its CR.
    Trailer,
    TrailerLf,
    /// After the last chunk or a trailer line: CR of the final empty line, or a trailer.
    EndCr,
    EndLf,
}

/// True for a refusal of Envoy's connection manager rather than of its codec: answered
/// with an empty body and no `content-type`.
pub(super) fn is_connection_manager_refusal(details: &str) -> bool {
    details == PATH_NORMALIZATION_FAILED
}

/// What a complete head says about what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HeadVerdict {
    Refuse {
        status: u16,
        details: &'static str,
    },
    NoBody,
    Length(u64),
    Chunked,
    /// An upgrade or CONNECT: what follows becomes tunnel bytes, or the connection closes
    /// after a refusal (the connection manager closes after any other answer).
    Tunnel,
}

/// Follows one downstream HTTP/1 connection's request bytes.
#[derive(Debug)]
pub struct RequestFraming {
    limits: FramingLimits,
    state: State,
    /// The current head's bytes from earlier reads.
    head_buf: Vec<u8>,
    /// Complete heads so far (the index of the next one).
    heads: u64,
    /// Where the current request's head ended in the bytes being read, if it did there.
    head_end_in_read: Option<usize>,
}

impl RequestFraming {
    /// A tracker at the start of a connection.
    pub fn new(limits: FramingLimits) -> Self {
        Self {
            limits,
            state: State::Head,
            head_buf: Vec::new(),
            heads: 0,
            head_end_in_read: None,
        }
    }

    /// Follows `data`, the next bytes read from the client, repairing in place the heads
    /// Envoy accepts and httparse refuses (`request_line::repair_head`). Returns the
    /// first request to refuse (the tracker stops there) and how many bytes of `data`
    /// are left for hyper: fewer than read when a repair shortened a head.
    pub fn on_read(&mut self, data: &mut [u8]) -> (Option<Rejection>, usize) {
        self.head_end_in_read = None;
        let mut len = data.len();
        let mut at = 0;
        while at < len {
            let rest = &mut data[at..len];
            let used = match self.state {
                State::Done => return (None, len),
                State::Head => match self.read_head(rest) {
                    HeadRead::Complete {
                        used,
                        verdict,
                        rest_len,
                    } => {
                        len = at + rest_len;
                        let head_end = at + used - 1;
                        if let Some(rejection) = self.after_head(verdict, head_end) {
                            return (Some(rejection), len);
                        }
                        used
                    }
                    HeadRead::Incomplete => rest.len(),
                    HeadRead::Refused { status, details } => {
                        self.state = State::Done;
                        let rejection = Rejection {
                            request: self.heads,
                            status,
                            details,
                            head_end: None,
                            empty_body: false,
                        };
                        return (Some(rejection), len);
                    }
                },
                State::Length { remaining } => {
                    let used = rest
                        .len()
                        .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    let remaining = remaining - used as u64;
                    self.state = if remaining == 0 {
                        State::Head
                    } else {
                        State::Length { remaining }
                    };
                    used
                }
                State::Chunked(mut chunked) => match chunked.read(rest) {
                    Ok((used, done)) => {
                        self.state = if done {
                            State::Head
                        } else {
                            State::Chunked(chunked)
                        };
                        used
                    }
                    Err(()) => {
                        self.state = State::Done;
                        let rejection = Rejection {
                            request: self.heads - 1,
                            status: 400,
                            details: CODEC_ERROR,
                            head_end: self.head_end_in_read,
                            empty_body: false,
                        };
                        return (Some(rejection), len);
                    }
                },
            };
            at += used;
        }
        (None, len)
    }

    /// Complete request heads followed so far.
    pub fn heads(&self) -> u64 {
        self.heads
    }

    /// The limits the tracker checks against.
    pub fn limits(&self) -> FramingLimits {
        self.limits
    }

    /// True between requests: every request read so far was whole (head and body) and
    /// no byte of the next one arrived.
    pub fn at_request_start(&self) -> bool {
        self.state == State::Head && self.head_buf.is_empty()
    }

    /// Takes note of requests read and judged elsewhere (the lean loop, which serves
    /// whole requests only): `heads` heads so far, the next byte starts a request.
    pub fn heads_served_elsewhere(&mut self, heads: u64) {
        debug_assert!(self.at_request_start() || self.state == State::Done);
        self.heads = heads;
    }

    /// Gives back the head buffer's memory (for a connection about to idle).
    pub fn release_memory(&mut self) {
        if self.head_buf.is_empty() {
            self.head_buf = Vec::new();
        }
    }

    /// [`Self::on_read`] on a copy of `data`, for tests that only want the verdict.
    #[cfg(test)]
    pub fn on_read_copy(&mut self, data: &[u8]) -> Option<Rejection> {
        self.on_read(&mut data.to_vec()).0
    }

    /// Moves on after a complete head that ended at `head_end` in the current read.
    fn after_head(&mut self, verdict: HeadVerdict, head_end: usize) -> Option<Rejection> {
        let request = self.heads;
        self.heads += 1;
        self.head_end_in_read = Some(head_end);
        let (next, rejection) = match verdict {
            HeadVerdict::Refuse { status, details } => {
                let rejection = Rejection {
                    request,
                    status,
                    details,
                    head_end: Some(head_end),
                    empty_body: is_connection_manager_refusal(details),
                };
                (State::Done, Some(rejection))
            }
            HeadVerdict::NoBody => (State::Head, None),
            HeadVerdict::Length(remaining) => (State::Length { remaining }, None),
            HeadVerdict::Chunked => (State::Chunked(Chunked::default()), None),
            HeadVerdict::Tunnel => (State::Done, None),
        };
        self.state = next;
        rejection
    }

    /// Reads head bytes from `data` (a head that began in it may be repaired in place).
    fn read_head(&mut self, data: &mut [u8]) -> HeadRead {
        let rest_len = data.len();
        let complete = |used, verdict| HeadRead::Complete {
            used,
            verdict,
            rest_len,
        };
        if self.head_buf.is_empty() {
            // The usual case: the whole head in this read, parsed where it lies.
            match parse_head(data, &self.limits) {
                Parsed::Complete(len, verdict) => return complete(len, verdict),
                Parsed::Partial => {}
                Parsed::Invalid => return self.repair_or_refuse(data),
            }
            self.keep_head_bytes(data);
            return HeadRead::Incomplete;
        }
        // The head began in an earlier read: parse only once a line ends it (hyper does
        // the same), so a head sent a byte at a time costs linear time.
        let mut used = 0;
        while let Some(end) = find_head_end(&self.head_buf, &data[used..]) {
            if !self.keep_head_bytes(&data[used..used + end]) {
                return HeadRead::Incomplete;
            }
            used += end;
            match parse_head(&self.head_buf, &self.limits) {
                Parsed::Complete(len, verdict) => {
                    // Every earlier candidate end was tried (and was only empty lines
                    // before a request line), so the head ends at this one.
                    debug_assert_eq!(len, self.head_buf.len());
                    self.release_head_buf();
                    return complete(used, verdict);
                }
                // A line ended here, yet no head: all so far were empty lines before
                // the request line, which httparse skips. Dropping them keeps a client
                // sending empty lines one read at a time from making each parse longer.
                // (A later head end never looks back past its own request line.)
                Parsed::Partial => self.head_buf.clear(),
                Parsed::Invalid => {
                    // Part of this head is hyper's already: no repair.
                    let refused = refusal_of_invalid_head(&self.head_buf);
                    self.state = State::Done;
                    self.release_head_buf();
                    return refused;
                }
            }
        }
        self.keep_head_bytes(&data[used..]);
        HeadRead::Incomplete
    }

    /// A head that starts at the start of `data` and that httparse refused: repaired in
    /// place when it is all there and Envoy would read it (then judged as any head), else
    /// refused with 426 for a version Envoy answers so, else left to hyper's 400. A head
    /// split over reads is never repaired (hyper holds its first bytes already).
    fn repair_or_refuse(&mut self, data: &mut [u8]) -> HeadRead {
        if let Some(head_len) = find_head_end(&[], data) {
            if let Some(rest_len) = request_line::repair_head(data, head_len) {
                if let Parsed::Complete(used, verdict) = parse_head(&data[..rest_len], &self.limits)
                {
                    return HeadRead::Complete {
                        used,
                        verdict,
                        rest_len,
                    };
                }
            }
        }
        self.state = State::Done;
        let head_len = find_head_end(&[], data).unwrap_or(data.len());
        refusal_of_invalid_head(&data[..head_len])
    }

    /// Appends to the head being read; false (and Done) when it grows past anything hyper
    /// could parse.
    fn keep_head_bytes(&mut self, bytes: &[u8]) -> bool {
        if self.head_buf.len() + bytes.len() > self.limits.read_buffer_limit.saturating_mul(2) {
            self.state = State::Done;
            self.release_head_buf();
            return false;
        }
        self.head_buf.extend_from_slice(bytes);
        true
    }

    fn release_head_buf(&mut self) {
        // A large head's buffer is not kept for the life of the connection.
        if self.head_buf.capacity() > 16 * 1024 {
            self.head_buf = Vec::new();
        } else {
            self.head_buf.clear();
        }
    }
}

/// The end of a request head in `data` (the offset after its final LF), given the head's
/// earlier bytes in `before`: the first LF that follows `\n` or `\n\r`, which is what
/// httparse and hyper take as the end of a head (the last line break and an empty line).
pub(super) fn find_head_end(before: &[u8], data: &[u8]) -> Option<usize> {
    let byte_before = |i: usize, back: usize| -> Option<u8> {
        if i >= back {
            Some(data[i - back])
        } else {
            before.len().checked_sub(back - i).map(|j| before[j])
        }
    };
    data.iter().enumerate().find_map(|(i, &b)| {
        if b != b'\n' {
            return None;
        }
        let ends = match byte_before(i, 1) {
            Some(b'\n') => true,
            Some(b'\r') => byte_before(i, 2) == Some(b'\n'),
            _ => false,
        };
        ends.then_some(i + 1)
    })
}

/// What reading head bytes came to.
enum HeadRead {
    /// The head ended after `used` bytes of the read (as repaired), which now holds
    /// `rest_len` bytes.
    Complete {
        used: usize,
        verdict: HeadVerdict,
        rest_len: usize,
    },
    /// All the bytes were used without ending the head, or the check stopped (Done).
    Incomplete,
    /// hyper refuses the head by itself (with 400); Envoy's status and details for it.
    Refused { status: u16, details: &'static str },
}

/// How Envoy refuses a head httparse refused (`head`: its bytes so far): 426 for a
/// version it answers so; 400 `http1.invalid_characters` when the head holds a control
/// character (NUL and the like, DEL) in a line, which Envoy's parser names; else
/// hyper's plain 400 (`http1.codec_error`) stands.
fn refusal_of_invalid_head(head: &[u8]) -> HeadRead {
    if request_line::has_unsupported_version(head) {
        return HeadRead::Refused {
            status: 426,
            details: CODEC_ERROR,
        };
    }
    let control = |b: &u8| (*b < 0x20 && !matches!(*b, b'\r' | b'\n' | b'\t')) || *b == 0x7f;
    if head.iter().any(control) {
        return HeadRead::Refused {
            status: 400,
            details: INVALID_CHARACTERS,
        };
    }
    HeadRead::Incomplete
}

enum Parsed {
    Complete(usize, HeadVerdict),
    Partial,
    /// hyper refuses this head itself.
    Invalid,
}

/// Parses a request head as hyper does (httparse, default config, `max_headers` slots)
/// and judges it.
fn parse_head(bytes: &[u8], limits: &FramingLimits) -> Parsed {
    match parse_head_with(bytes, limits, |req, len| (len, judge(req, limits))) {
        ParsedWith::Complete((len, verdict)) => Parsed::Complete(len, verdict),
        ParsedWith::Partial => Parsed::Partial,
        ParsedWith::Invalid => Parsed::Invalid,
    }
}

/// What one httparse pass over a request head came to.
pub(super) enum ParsedWith<T> {
    /// The head is complete: what the caller made of it.
    Complete(T),
    Partial,
    /// hyper refuses this head itself.
    Invalid,
}

/// Parses a request head once as hyper does (httparse, default config, `max_headers`
/// slots) and hands the complete head and its length to `on_complete`: the framing
/// check judges it, the lean server also builds the request from the same parse.
pub(super) fn parse_head_with<T>(
    bytes: &[u8],
    limits: &FramingLimits,
    on_complete: impl FnOnce(&httparse::Request<'_, '_>, usize) -> T,
) -> ParsedWith<T> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let slot_count = limits.max_headers.min(STACK_HEADERS);
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(bytes, &mut slots[..slot_count]) {
        Ok(httparse::Status::Complete(len)) => ParsedWith::Complete(on_complete(&req, len)),
        Ok(httparse::Status::Partial) => ParsedWith::Partial,
        Err(httparse::Error::TooManyHeaders) if limits.max_headers > STACK_HEADERS => {
            // Rare: a configuration allowing more headers, and a head using them.
            let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
            let mut req = httparse::Request::new(&mut slots);
            match req.parse(bytes) {
                Ok(httparse::Status::Complete(len)) => ParsedWith::Complete(on_complete(&req, len)),
                Ok(httparse::Status::Partial) => ParsedWith::Partial,
                Err(_) => ParsedWith::Invalid,
            }
        }
        Err(_) => ParsedWith::Invalid,
    }
}

/// Envoy's rules for a complete head, in Envoy's order: a method it does not know or a
/// request target it does not take (400, see `request_line`), a bad or repeated
/// `Content-Length` (400), `Content-Length` with `Transfer-Encoding` (400), a
/// `Transfer-Encoding` that is not exactly `chunked` (501; repeated lines count as one
/// comma-joined value, empty ones are skipped), then `Transfer-Encoding` on HTTP/1.0
/// (426 unless HTTP/1.0 is accepted; hyper refuses it either way), then a `#fragment`
/// in the target (400 with an empty body, from Envoy's connection manager).
pub(super) fn judge(req: &httparse::Request<'_, '_>, limits: &FramingLimits) -> HeadVerdict {
    let refuse = |status, details| HeadVerdict::Refuse { status, details };
    let method = req.method.unwrap_or_default();
    let target = req.path.unwrap_or_default();
    if !request_line::is_known_method(method) {
        return refuse(400, CODEC_ERROR);
    }
    if method != "CONNECT" && !request_line::is_acceptable_target(method, target) {
        return refuse(400, INVALID_URL);
    }
    let mut content_lengths = 0u32;
    let mut content_length = Some(0u64);
    let mut transfer_encoding = false;
    let mut codings = 0u32;
    let mut chunked = false;
    let mut upgrade: Option<bool> = None;
    let mut connection_upgrade = false;
    for header in req.headers.iter() {
        let name = header.name.as_bytes();
        let value = header.value;
        match name.len() {
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                content_lengths += 1;
                content_length = parse_content_length(value);
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                transfer_encoding = true;
                let value = trim(value);
                if !value.is_empty() {
                    codings += 1;
                    chunked = value.eq_ignore_ascii_case(b"chunked");
                }
            }
            // As the connection manager reads them (`hop_by_hop::upgrade_type`): the first
            // `upgrade` value, and the `upgrade` token in any `connection` value, each only
            // when it is visible ASCII.
            7 if name.eq_ignore_ascii_case(b"upgrade") => {
                upgrade.get_or_insert(is_visible_ascii(value));
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                connection_upgrade |= is_visible_ascii(value)
                    && value
                        .split(|&b| b == b',')
                        .any(|token| trim(token).eq_ignore_ascii_case(b"upgrade"));
            }
            _ => {}
        }
    }
    let content_length = match (content_lengths, content_length) {
        (0, _) => None,
        (1, Some(len)) => Some(len),
        _ => return refuse(400, CODEC_ERROR),
    };
    if content_length.is_some() && transfer_encoding {
        return refuse(400, CL_AND_TE);
    }
    if transfer_encoding && !(codings == 1 && chunked) {
        return refuse(501, INVALID_TE);
    }
    if transfer_encoding && req.version == Some(0) {
        return if limits.accept_http_10 {
            refuse(400, CODEC_ERROR)
        } else {
            refuse(426, LOW_VERSION)
        };
    }
    // Envoy's connection manager refuses a fragment after the codec took the head.
    if target.contains('#') {
        return refuse(400, PATH_NORMALIZATION_FAILED);
    }
    if method == "CONNECT" || (upgrade == Some(true) && connection_upgrade) {
        return HeadVerdict::Tunnel;
    }
    match content_length {
        _ if transfer_encoding => HeadVerdict::Chunked,
        Some(len) if len > 0 => HeadVerdict::Length(len),
        _ => HeadVerdict::NoBody,
    }
}

/// A `Content-Length` value as Envoy and hyper accept it: decimal digits only, fitting in
/// 64 bits.
fn parse_content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |len, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        len.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

fn trim(bytes: &[u8]) -> &[u8] {
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// What `http::HeaderValue::to_str` accepts.
fn is_visible_ascii(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// The length of the whole chunked body (trailers included) at the start of `data`,
/// when the framing check would take it as it is: None when it fails or goes on.
pub(super) fn whole_chunked_len(data: &[u8]) -> Option<usize> {
    match Chunked::default().read(data) {
        Ok((used, true)) => Some(used),
        _ => None,
    }
}

impl Chunked {
    /// Reads chunked body bytes. Returns how many were used and whether the body ended,
    /// or Err where hyper's decoder fails.
    fn read(&mut self, data: &[u8]) -> Result<(usize, bool), ()> {
        let mut at = 0;
        while at < data.len() {
            let b = data[at];
            match self.step {
                ChunkStep::Data => {
                    let n = (data.len() - at).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                    self.size -= n as u64;
                    at += n;
                    if self.size == 0 {
                        self.step = ChunkStep::DataCr;
                    }
                    continue;
                }
                ChunkStep::Trailer => {
                    // Skip to the line's CR.
                    match data[at..].iter().position(|&b| b == b'\r') {
                        Some(cr) => {
                            at += cr + 1;
                            self.step = ChunkStep::TrailerLf;
                        }
                        None => at = data.len(),
                    }
                    continue;
                }
                ChunkStep::Start => {
                    self.size = u64::from(hex_digit(b).ok_or(())?);
                    self.step = ChunkStep::Size;
                }
                ChunkStep::Size => match b {
                    b'\t' | b' ' => self.step = ChunkStep::SizeSpace,
                    b';' => self.step = ChunkStep::Extension,
                    b'\r' => self.step = ChunkStep::SizeLf,
                    _ => {
                        let digit = hex_digit(b).ok_or(())?;
                        self.size = self
                            .size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(u64::from(digit)))
                            .ok_or(())?;
                    }
                },
                ChunkStep::SizeSpace => match b {
                    b'\t' | b' ' => {}
                    b';' => self.step = ChunkStep::Extension,
                    b'\r' => self.step = ChunkStep::SizeLf,
                    _ => return Err(()),
                },
                ChunkStep::Extension => match b {
                    b'\r' => self.step = ChunkStep::SizeLf,
                    b'\n' => return Err(()),
                    _ => {
                        self.extension_bytes += 1;
                        if self.extension_bytes >= CHUNK_EXTENSIONS_LIMIT {
                            return Err(());
                        }
                    }
                },
                ChunkStep::SizeLf => {
                    if b != b'\n' {
                        return Err(());
                    }
                    self.step = if self.size == 0 {
                        ChunkStep::EndCr
                    } else {
                        ChunkStep::Data
                    };
                }
                ChunkStep::DataCr => {
                    if b != b'\r' {
                        return Err(());
                    }
                    self.step = ChunkStep::DataLf;
                }
                ChunkStep::DataLf => {
                    if b != b'\n' {
                        return Err(());
                    }
                    self.step = ChunkStep::Start;
                }
                ChunkStep::TrailerLf => {
                    if b != b'\n' {
                        return Err(());
                    }
                    self.step = ChunkStep::EndCr;
                }
                ChunkStep::EndCr => {
                    self.step = if b == b'\r' {
                        ChunkStep::EndLf
                    } else {
                        ChunkStep::Trailer
                    };
                }
                ChunkStep::EndLf => {
                    if b != b'\n' {
                        return Err(());
                    }
                    return Ok((at + 1, true));
                }
            }
            at += 1;
        }
        Ok((at, false))
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
