//! The `h2raw` case kind: HTTP/2 frames written by hand (prior knowledge, cleartext), so a
//! case can send what a well-behaved client never would (malformed header blocks,
//! pseudo-headers out of order, frames on the wrong stream, bad lengths and settings), and
//! what the client observes, normalised: per stream the response (status, headers, body,
//! trailers) and/or the RST_STREAM code, the GOAWAY (code, last stream id), PING acks, and
//! whether the connection stayed usable (a probe request `GET /__probe` on a new stream
//! after the case's streams ended, unless a GOAWAY came, in which case whether the peer
//! closed).
//!
//! Header blocks are HPACK literals without indexing, new name, no Huffman
//! ([`crate::h2raw::hpack_literal`]), so any bytes can be sent; raw HPACK bytes (`hpack`,
//! hex) cover bad indexes and table size updates. Responses are decoded with
//! [`crate::hpack::Decoder`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use serde::Deserialize;
use serde_json::{json, Value};

use super::exchange::{Observed, PROBE_PATH};
use super::normalise::Ports;
use super::spec::{expand, BodyMode, CaseSpec};
use crate::h2raw::{flag, frame, hpack_literal, kind, request_block, RawH2};
use crate::hpack::Decoder;

/// Most frames read for one case (a bound, not a limit tested).
const MAX_FRAMES: usize = 10_000;

/// What a frame step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// SETTINGS (`settings` pairs, `ack`).
    Settings,
    /// HEADERS (`req` shorthand and/or `headers`, `hpack`; `end_stream` default true,
    /// `end_headers` default true; `split` sends the block as HEADERS + CONTINUATIONs of
    /// that many bytes; `depends_on`/`weight`/`exclusive` add the priority fields).
    Headers,
    /// CONTINUATION (`headers`/`hpack`; `end_headers` default true).
    Continuation,
    /// DATA (`data`; `end_stream` default true).
    Data,
    /// RST_STREAM (`code`).
    RstStream,
    /// PRIORITY (`depends_on`, `weight`, `exclusive`).
    Priority,
    /// WINDOW_UPDATE (`increment`).
    WindowUpdate,
    /// PING (8 bytes of `payload` hex, default zeros; `ack`).
    Ping,
    /// GOAWAY (`last_stream`, `code`).
    Goaway,
    /// Any frame: `frame_type`, `flags`, `payload` (hex).
    Raw,
    /// Not a frame: read until `stream` ended (response end or reset) or the connection
    /// closed, before the next step.
    Await,
}

/// One step of a case: a frame to write, or a wait.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameStep {
    /// What to send.
    #[serde(rename = "type")]
    pub kind: StepKind,
    /// Stream id (default 0 for connection frames; HEADERS/DATA/... name theirs).
    #[serde(default)]
    pub stream: u32,
    /// `"METHOD /path"`: `:method`, `:scheme: http`, `:authority: test`, `:path` first.
    #[serde(default)]
    pub req: Option<String>,
    /// Header fields, in order, sent as literals (names as written: uppercase stays).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Raw HPACK bytes (hex) appended to the block.
    #[serde(default)]
    pub hpack: Option<String>,
    /// END_STREAM (HEADERS, DATA; default true).
    #[serde(default)]
    pub end_stream: Option<bool>,
    /// END_HEADERS (HEADERS, CONTINUATION; default true).
    #[serde(default)]
    pub end_headers: Option<bool>,
    /// Split the header block into HEADERS + CONTINUATION frames of this many bytes.
    #[serde(default)]
    pub split: Option<usize>,
    /// DATA payload (`<<Nc>>` expanded).
    #[serde(default)]
    pub data: Option<String>,
    /// Error code (RST_STREAM, GOAWAY).
    #[serde(default)]
    pub code: u32,
    /// SETTINGS (id, value) pairs.
    #[serde(default)]
    pub settings: Vec<(u16, u32)>,
    /// ACK flag (SETTINGS, PING).
    #[serde(default)]
    pub ack: bool,
    /// Priority dependency (PRIORITY, HEADERS).
    #[serde(default)]
    pub depends_on: Option<u32>,
    /// Priority weight byte (default 15).
    #[serde(default)]
    pub weight: Option<u8>,
    /// Exclusive dependency bit.
    #[serde(default)]
    pub exclusive: bool,
    /// WINDOW_UPDATE increment.
    #[serde(default)]
    pub increment: u32,
    /// GOAWAY last stream id.
    #[serde(default)]
    pub last_stream: u32,
    /// Payload in hex (PING, raw).
    #[serde(default)]
    pub payload: Option<String>,
    /// Frame type byte (raw).
    #[serde(default)]
    pub frame_type: Option<u8>,
    /// Flags byte (raw; added to the computed flags of other kinds).
    #[serde(default)]
    pub flags: u8,
    /// Overrides the 24-bit length field (the payload is sent as is: a bad length).
    #[serde(default)]
    pub length: Option<u32>,
    /// HEADERS: whether the answer waits for this stream to end (default true; false for a
    /// stream the peer is expected to ignore, whose absence the probe then shows).
    #[serde(default)]
    pub wait: Option<bool>,
}

/// Errors in a case's frame list.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A hex string is not hex.
    #[error("bad hex {0:?}")]
    Hex(String),
}

fn hex(text: &str) -> Result<Vec<u8>, StepError> {
    let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !clean.len().is_multiple_of(2) {
        return Err(StepError::Hex(text.to_string()));
    }
    (0..clean.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&clean[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| StepError::Hex(text.to_string()))
}

/// The header block of a HEADERS or CONTINUATION step.
fn header_block(step: &FrameStep) -> Result<Vec<u8>, StepError> {
    let mut block = match &step.req {
        Some(req) => {
            let (method, path) = req.split_once(' ').unwrap_or((req.as_str(), "/"));
            request_block(method, &expand(path), &[])
        }
        None => Vec::new(),
    };
    for (name, value) in &step.headers {
        hpack_literal(&mut block, name, expand(value).as_bytes());
    }
    if let Some(raw) = &step.hpack {
        block.extend_from_slice(&hex(raw)?);
    }
    Ok(block)
}

fn priority_fields(step: &FrameStep) -> Vec<u8> {
    let dependency = step.depends_on.unwrap_or(0) | if step.exclusive { 1 << 31 } else { 0 };
    let mut out = dependency.to_be_bytes().to_vec();
    out.push(step.weight.unwrap_or(15));
    out
}

/// A frame with the length field overridden when the step says so.
fn framed(step: &FrameStep, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut bytes = frame(kind, flags | step.flags, stream, payload);
    if let Some(len) = step.length {
        bytes[..3].copy_from_slice(&len.to_be_bytes()[1..]);
    }
    bytes
}

/// The bytes of one step (empty for `await`).
fn step_bytes(step: &FrameStep) -> Result<Vec<u8>, StepError> {
    let s = step.stream;
    let end_stream = if step.end_stream.unwrap_or(true) {
        flag::END_STREAM
    } else {
        0
    };
    let end_headers = if step.end_headers.unwrap_or(true) {
        flag::END_HEADERS
    } else {
        0
    };
    Ok(match step.kind {
        StepKind::Settings => {
            let mut payload = Vec::new();
            for (id, value) in &step.settings {
                payload.extend_from_slice(&id.to_be_bytes());
                payload.extend_from_slice(&value.to_be_bytes());
            }
            let ack = if step.ack { flag::ACK } else { 0 };
            framed(step, kind::SETTINGS, ack, 0, &payload)
        }
        StepKind::Headers => {
            let block = header_block(step)?;
            let mut prefix = Vec::new();
            let mut flags = end_stream;
            if step.depends_on.is_some() {
                prefix = priority_fields(step);
                flags |= 0x20;
            }
            match step.split {
                Some(size) if size > 0 && block.len() > size => {
                    let chunks: Vec<&[u8]> = block.chunks(size).collect();
                    let mut first = prefix;
                    first.extend_from_slice(chunks[0]);
                    let mut out = framed(step, kind::HEADERS, flags, s, &first);
                    for (i, chunk) in chunks.iter().enumerate().skip(1) {
                        let last = if i + 1 == chunks.len() {
                            end_headers
                        } else {
                            0
                        };
                        out.extend_from_slice(&frame(kind::CONTINUATION, last, s, chunk));
                    }
                    out
                }
                _ => {
                    prefix.extend_from_slice(&block);
                    framed(step, kind::HEADERS, flags | end_headers, s, &prefix)
                }
            }
        }
        StepKind::Continuation => framed(
            step,
            kind::CONTINUATION,
            end_headers,
            s,
            &header_block(step)?,
        ),
        StepKind::Data => {
            let data = expand(step.data.as_deref().unwrap_or_default());
            framed(step, kind::DATA, end_stream, s, data.as_bytes())
        }
        StepKind::RstStream => framed(step, kind::RST_STREAM, 0, s, &step.code.to_be_bytes()),
        StepKind::Priority => framed(step, kind::PRIORITY, 0, s, &priority_fields(step)),
        StepKind::WindowUpdate => framed(
            step,
            kind::WINDOW_UPDATE,
            0,
            s,
            &step.increment.to_be_bytes(),
        ),
        StepKind::Ping => {
            let payload = match &step.payload {
                Some(p) => hex(p)?,
                None => vec![0; 8],
            };
            let ack = if step.ack { flag::ACK } else { 0 };
            framed(step, kind::PING, ack, s, &payload)
        }
        StepKind::Goaway => {
            let mut payload = step.last_stream.to_be_bytes().to_vec();
            payload.extend_from_slice(&step.code.to_be_bytes());
            framed(step, kind::GOAWAY, 0, s, &payload)
        }
        StepKind::Raw => {
            let payload = hex(step.payload.as_deref().unwrap_or_default())?;
            framed(step, step.frame_type.unwrap_or(0xff), 0, s, &payload)
        }
        StepKind::Await => Vec::new(),
    })
}

/// What one stream got back.
#[derive(Debug, Clone, Default)]
pub struct StreamSeen {
    /// Header blocks in order (1xx, final, trailers), or the decode error.
    pub blocks: Vec<Result<Vec<(String, String)>, String>>,
    /// DATA bytes.
    pub body: Vec<u8>,
    /// RST_STREAM code.
    pub reset: Option<u32>,
    /// END_STREAM seen or reset.
    pub ended: bool,
}

/// Everything an `h2raw` case observed.
#[derive(Debug, Clone, Default)]
pub struct H2Seen {
    /// By stream id (the probe's left out).
    pub streams: BTreeMap<u32, StreamSeen>,
    /// GOAWAY (last stream id, code) frames received.
    pub goaways: Vec<(u32, u32)>,
    /// PING ACK payloads (hex).
    pub ping_acks: Vec<String>,
    /// Whether the connection ended up closed (see the module doc; None: not probed).
    pub closed: Option<bool>,
    /// The probe stream's reset code, if it was reset.
    pub probe_reset: Option<u32>,
    /// Why reading stopped early (`timeout`, or an error text).
    pub read_error: Option<String>,
}

/// Reads and applies the server's frames.
struct Reader {
    conn: RawH2,
    decoder: Decoder,
    seen: H2Seen,
    /// A header block being continued: stream and bytes so far.
    pending_block: Option<(u32, Vec<u8>, bool)>,
    eof: bool,
    frames: usize,
    /// The server's (non-ACK) SETTINGS arrived (and was acknowledged).
    server_settings: bool,
}

impl Reader {
    /// Reads one frame and applies it; false when the connection closed or a read failed.
    async fn step(&mut self) -> bool {
        if self.eof || self.frames >= MAX_FRAMES {
            return false;
        }
        self.frames += 1;
        let f = match self.conn.read_frame().await {
            Ok(Some(f)) => f,
            Ok(None) => {
                self.eof = true;
                return false;
            }
            Err(e) => {
                let text = format!("{e:#}");
                self.seen.read_error = Some(if text.contains("timed out") {
                    "timeout".into()
                } else {
                    text
                });
                self.eof = true;
                return false;
            }
        };
        match f.kind {
            kind::GOAWAY => {
                let last = f.payload.get(..4).map_or(0, |b| {
                    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff
                });
                let code = f.error_code().unwrap_or(u32::MAX);
                self.seen.goaways.push((last, code));
            }
            kind::SETTINGS if f.flags & flag::ACK == 0 => self.server_settings = true,
            kind::PING if f.flags & flag::ACK == 0 => {
                // As a real client: h2's graceful shutdown waits for this before its
                // final GOAWAY. Best effort: the peer may be closing.
                let _ = self.conn.send(kind::PING, flag::ACK, 0, &f.payload).await;
            }
            kind::PING if f.flags & flag::ACK != 0 => {
                let text: String = f.payload.iter().map(|b| format!("{b:02x}")).collect();
                self.seen.ping_acks.push(text);
            }
            kind::RST_STREAM => {
                let stream = self.seen.streams.entry(f.stream).or_default();
                stream.reset = f.error_code();
                stream.ended = true;
            }
            kind::DATA => {
                let stream = self.seen.streams.entry(f.stream).or_default();
                stream
                    .body
                    .extend_from_slice(&unpadded(&f.payload, f.flags));
                if f.flags & flag::END_STREAM != 0 {
                    stream.ended = true;
                }
            }
            kind::HEADERS => {
                let mut block = unpadded(&f.payload, f.flags);
                if f.flags & 0x20 != 0 {
                    block = block.get(5..).unwrap_or_default().to_vec();
                }
                let end_stream = f.flags & flag::END_STREAM != 0;
                if f.flags & flag::END_HEADERS != 0 {
                    self.finish_block(f.stream, &block, end_stream);
                } else {
                    self.pending_block = Some((f.stream, block, end_stream));
                }
            }
            kind::CONTINUATION => {
                if let Some((stream, mut block, end_stream)) = self.pending_block.take() {
                    block.extend_from_slice(&f.payload);
                    if f.flags & flag::END_HEADERS != 0 {
                        self.finish_block(stream, &block, end_stream);
                    } else {
                        self.pending_block = Some((stream, block, end_stream));
                    }
                }
            }
            _ => {}
        }
        true
    }

    fn finish_block(&mut self, stream: u32, block: &[u8], end_stream: bool) {
        let decoded = self
            .decoder
            .decode(block)
            .map(|fields| {
                fields
                    .into_iter()
                    .map(|(n, v)| {
                        (
                            String::from_utf8_lossy(&n).into_owned(),
                            String::from_utf8_lossy(&v).into_owned(),
                        )
                    })
                    .collect()
            })
            .map_err(|e| e.to_string());
        let seen = self.seen.streams.entry(stream).or_default();
        seen.blocks.push(decoded);
        if end_stream {
            seen.ended = true;
        }
    }

    fn ended(&self, stream: u32) -> bool {
        self.seen.streams.get(&stream).is_some_and(|s| s.ended)
    }

    /// Reads until every stream of `streams` ended, or the connection closed / failed.
    async fn until_ended(&mut self, streams: &BTreeSet<u32>) {
        while !streams.iter().all(|s| self.ended(*s)) {
            if !self.step().await {
                return;
            }
        }
    }
}

/// A DATA/HEADERS payload without its padding.
fn unpadded(payload: &[u8], flags: u8) -> Vec<u8> {
    if flags & 0x8 == 0 {
        return payload.to_vec();
    }
    let pad = usize::from(payload.first().copied().unwrap_or(0));
    payload
        .get(1..payload.len().saturating_sub(pad).max(1))
        .unwrap_or_default()
        .to_vec()
}

/// Runs an `h2raw` case against `addr`.
pub async fn run(case: &CaseSpec, addr: SocketAddr) -> anyhow::Result<Observed> {
    let conn = RawH2::connect(addr).await?;
    let client_port = conn.local_port()?;
    let mut reader = Reader {
        conn,
        decoder: Decoder::default(),
        seen: H2Seen::default(),
        pending_block: None,
        eof: false,
        frames: 0,
        server_settings: false,
    };
    // The server's SETTINGS is read and acknowledged before the case's frames, so the
    // client writes nothing while the server reacts to them: an ACK arriving after the
    // server closed would draw a TCP reset, which drops the GOAWAY still unread.
    while !reader.server_settings {
        if !reader.step().await {
            anyhow::bail!("no SETTINGS from the server");
        }
    }
    // Streams the case opened (HEADERS sent): the answer waits for each to end.
    let mut opened = BTreeSet::new();
    let mut highest = 0;
    let mut written_all = true;
    for step in &case.frames {
        if step.kind == StepKind::Await {
            reader.until_ended(&BTreeSet::from([step.stream])).await;
            continue;
        }
        if step.kind == StepKind::Headers && step.stream != 0 && step.wait.unwrap_or(true) {
            opened.insert(step.stream);
        }
        // The probe takes a stream id no frame of the case named (nor depended on).
        highest = highest.max(step.stream).max(step.depends_on.unwrap_or(0));
        let bytes = step_bytes(step)?;
        if reader.conn.write(&bytes).await.is_err() {
            written_all = false;
            break;
        }
    }
    reader.until_ended(&opened).await;
    let probe_wanted = case.probe.unwrap_or(true);
    if probe_wanted && written_all && !reader.eof && reader.seen.goaways.is_empty() {
        let probe = (highest + 1) | 1;
        let probe = if probe <= highest { probe + 2 } else { probe };
        let block = request_block("GET", PROBE_PATH, &[]);
        let sent = reader.conn.send_headers(probe, &block, true).await.is_ok();
        if sent {
            reader.until_ended(&BTreeSet::from([probe])).await;
        }
        let answered = reader.seen.streams.remove(&probe);
        reader.seen.probe_reset = answered.as_ref().and_then(|s| s.reset);
        let got_response = answered.is_some_and(|s| s.ended && !s.blocks.is_empty());
        reader.seen.closed = Some(!got_response);
    }
    if !reader.seen.goaways.is_empty() || reader.eof || !written_all {
        // After a GOAWAY: does the peer close? (bounded by the read timeout)
        while reader.step().await {}
        reader.seen.closed = Some(reader.eof && reader.seen.read_error.is_none() || !written_all);
    }
    Ok(Observed {
        client_port,
        h2: Some(reader.seen),
        ..Observed::default()
    })
}

/// The name of an HTTP/2 error code.
pub fn code_name(code: u32) -> String {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("0x{code:x}"), |n| (*n).to_string())
}

/// The normalised `h2` part of an outcome.
pub fn normalised(seen: &H2Seen, ports: &Ports, body_mode: &BodyMode) -> Value {
    let reduced = *body_mode != BodyMode::Exact;
    let mut streams = serde_json::Map::new();
    for (id, stream) in &seen.streams {
        let mut out = serde_json::Map::new();
        let mut finals = 0;
        for block in &stream.blocks {
            match block {
                Err(e) => {
                    out.insert("hpack_error".into(), json!(e));
                }
                Ok(fields) => {
                    let status = fields
                        .iter()
                        .find(|(n, _)| n == ":status")
                        .map(|(_, v)| v.clone());
                    let regular: Vec<(String, String)> = fields
                        .iter()
                        .filter(|(n, _)| n != ":status")
                        .cloned()
                        .collect();
                    let headers = ports.headers(&regular, reduced);
                    match status {
                        Some(s) if s.starts_with('1') && finals == 0 => {
                            if let Some(list) = out
                                .entry("informational")
                                .or_insert_with(|| json!([]))
                                .as_array_mut()
                            {
                                list.push(json!(s));
                            }
                        }
                        Some(s) if finals == 0 => {
                            finals += 1;
                            out.insert("status".into(), json!(s));
                            out.insert("headers".into(), headers);
                        }
                        _ => {
                            out.insert("trailers".into(), headers);
                        }
                    }
                }
            }
        }
        if !stream.body.is_empty() || out.contains_key("status") {
            out.insert("body".into(), ports.body(&stream.body, body_mode));
        }
        if let Some(code) = stream.reset {
            out.insert("rst".into(), json!(code_name(code)));
        }
        if !stream.ended {
            out.insert("ended".into(), json!(false));
        }
        streams.insert(id.to_string(), Value::Object(out));
    }
    let mut out = serde_json::Map::new();
    out.insert("streams".into(), Value::Object(streams));
    if !seen.goaways.is_empty() {
        let goaways: Vec<Value> = seen
            .goaways
            .iter()
            .map(|(last, code)| json!({ "code": code_name(*code), "last_stream": last }))
            .collect();
        out.insert("goaway".into(), json!(goaways));
    }
    if !seen.ping_acks.is_empty() {
        out.insert("ping_acks".into(), json!(seen.ping_acks));
    }
    if let Some(code) = seen.probe_reset {
        out.insert("probe_rst".into(), json!(code_name(code)));
    }
    if let Some(error) = &seen.read_error {
        out.insert("read_error".into(), json!(error));
    }
    if let Some(closed) = seen.closed {
        out.insert("closed".into(), json!(closed));
    }
    Value::Object(out)
}
