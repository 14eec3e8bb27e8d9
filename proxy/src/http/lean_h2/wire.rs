//! The frame reader of Baton's own HTTP/2 server codec (RFC 9113 §3.4, §4, §6): bytes
//! read from the downstream socket to [`Frame`]s. It checks the client preface, the
//! 9-byte frame header, lengths against our SETTINGS_MAX_FRAME_SIZE and each type's rules,
//! padding, the stream-0 rules RFC 9113 makes connection errors, and assembles HEADERS +
//! CONTINUATION into one block that it HPACK-decodes ([`hpack::Decoder`]). The writer is
//! in `wire_write`.
//!
//! Zero copy: a DATA frame's payload and a single-frame header block's literal strings are
//! `Bytes` slices of the read buffer. Only a block split over CONTINUATION frames is
//! copied (into one buffer, capped against CONTINUATION floods). Between frames a reader
//! holds only its HPACK table's entries (at most SETTINGS_HEADER_TABLE_SIZE octets plus
//! their `Bytes` handles): no block or decode buffer stays allocated.
//!
//! Errors are [`WireError::Connection`]s with one of the `REASON_*` phrases below; Envoy
//! 1.40 (the `malformed_http2` fixtures) answers most with GOAWAY and the code given, but
//! closes without a GOAWAY for some: [`envoy_sends_goaway`] says which. Frames that decode
//! but are wrong for their stream or the connection's state (PRIORITY on stream 0, which
//! Envoy ignores; WINDOW_UPDATE of 0; SETTINGS values out of range; PUSH_PROMISE) are
//! returned for the state machine to answer.

use bytes::{Buf, Bytes, BytesMut};

use super::frame::{ErrorCode, Field, FieldList, Frame, Priority, Setting, StreamId, WireError};
use super::hpack;

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The frame header's size.
pub const FRAME_HEADER_LEN: usize = 9;

/// The frame types (RFC 9113 §6).
pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// The frame flags (RFC 9113 §6).
pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

pub const REASON_PREFACE: &str = "bad client preface";
pub const REASON_FIRST_NOT_SETTINGS: &str = "first frame is not SETTINGS";
pub const REASON_FRAME_TOO_LARGE: &str = "frame larger than SETTINGS_MAX_FRAME_SIZE";
pub const REASON_BAD_LENGTH: &str = "bad frame length";
pub const REASON_BAD_PADDING: &str = "padding longer than the payload";
pub const REASON_DATA_STREAM_ZERO: &str = "DATA on stream 0";
pub const REASON_HEADERS_STREAM_ZERO: &str = "HEADERS on stream 0";
pub const REASON_RST_STREAM_ZERO: &str = "RST_STREAM on stream 0";
pub const REASON_SETTINGS_ON_STREAM: &str = "SETTINGS on a stream";
pub const REASON_PING_ON_STREAM: &str = "PING on a stream";
pub const REASON_GOAWAY_ON_STREAM: &str = "GOAWAY on a stream";
pub const REASON_CONTINUATION_EXPECTED: &str = "another frame inside a header block";
pub const REASON_CONTINUATION_UNEXPECTED: &str = "CONTINUATION without HEADERS";
pub const REASON_HEADER_BLOCK_TOO_LARGE: &str = "header block over the CONTINUATION cap";
pub const REASON_EMPTY_FRAMES_FLOOD: &str = "too many consecutive frames with an empty payload";
pub const REASON_TOO_MANY_CONTINUATIONS: &str =
    "more than 512 CONTINUATION frames in a header block";

/// Envoy 1.40 closes the connection (without a GOAWAY) at the 513th CONTINUATION frame of
/// one header block, whatever their size (measured).
pub const MAX_CONTINUATIONS: u32 = 512;

/// Whether Envoy 1.40 sends a GOAWAY before closing for this error (the
/// `malformed_http2` fixtures): it closes without one for HEADERS or RST_STREAM on stream
/// 0, SETTINGS, PING or GOAWAY on a stream, a bad preface, a flood of empty frames, and a
/// header block of more than 512 CONTINUATION frames (or, Baton's own bound, over
/// `max_header_block` bytes: Envoy would decode and drop such a block as it comes, which
/// needs no buffer, and close at its 513th CONTINUATION).
pub fn envoy_sends_goaway(error: &WireError) -> bool {
    match error {
        WireError::Connection { reason, .. } => !matches!(
            *reason,
            REASON_PREFACE
                | REASON_HEADERS_STREAM_ZERO
                | REASON_RST_STREAM_ZERO
                | REASON_SETTINGS_ON_STREAM
                | REASON_PING_ON_STREAM
                | REASON_GOAWAY_ON_STREAM
                | REASON_EMPTY_FRAMES_FLOOD
                | REASON_TOO_MANY_CONTINUATIONS
                | REASON_HEADER_BLOCK_TOO_LARGE
        ),
        WireError::Stream { .. } => false,
    }
}

fn connection(code: ErrorCode, reason: &'static str) -> WireError {
    WireError::Connection { code, reason }
}

fn frame_size() -> WireError {
    connection(ErrorCode::FRAME_SIZE_ERROR, REASON_BAD_LENGTH)
}

/// What the reader enforces; each can change when our SETTINGS are acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReaderConfig {
    /// Our SETTINGS_MAX_FRAME_SIZE (16,384 unless we announce more).
    pub max_frame_size: u32,
    /// Our SETTINGS_HEADER_TABLE_SIZE: the HPACK decoder's limit.
    pub header_table_size: u32,
    /// The decoded list size past which fields are no longer stored (the state machine
    /// sees `FieldList::list_size` over its own limit and answers); set it at or above the
    /// state machine's limit.
    pub max_header_list_size: usize,
    /// The largest header block (HEADERS + CONTINUATION payloads) the reader accumulates:
    /// past it, a connection ENHANCE_YOUR_CALM (a CONTINUATION flood).
    pub max_header_block: usize,
    /// Whether the connection starts with the client preface (h2c prior knowledge and
    /// TLS ALPN "h2" both do; an h2c upgrade has had its preface checked elsewhere).
    pub expect_preface: bool,
    /// Envoy's `max_consecutive_inbound_frames_with_empty_payload` (1): more DATA,
    /// HEADERS or CONTINUATION frames in a row with nothing in them (padding aside) and
    /// no END_STREAM end the connection without a GOAWAY.
    pub max_consecutive_empty: u32,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        Self {
            max_frame_size: 16_384,
            header_table_size: 4_096,
            max_header_list_size: 96 * 1024,
            max_header_block: 256 * 1024,
            expect_preface: true,
            max_consecutive_empty: 1,
        }
    }
}

/// A HEADERS frame whose block continues in CONTINUATION frames.
#[derive(Debug)]
struct PendingHeaders {
    stream: StreamId,
    /// CONTINUATION frames so far.
    continuations: u32,
    end_stream: bool,
    priority: Option<Priority>,
    block: BytesMut,
}

/// Where the reader is in the connection's first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    Preface,
    FirstSettings,
    Frames,
}

/// Turns one connection's bytes into frames, in order.
#[derive(Debug)]
pub struct FrameReader {
    config: ReaderConfig,
    start: Start,
    decoder: hpack::Decoder,
    pending: Option<PendingHeaders>,
    /// The stream whose header block failed to decode (the connection is over).
    failed_block: Option<StreamId>,
    /// DATA/HEADERS/CONTINUATION frames in a row with an empty payload.
    consecutive_empty: u32,
}

impl FrameReader {
    pub fn new(config: ReaderConfig) -> Self {
        Self {
            config,
            start: if config.expect_preface {
                Start::Preface
            } else {
                Start::FirstSettings
            },
            decoder: hpack::Decoder::new(config.header_table_size as usize),
            pending: None,
            failed_block: None,
            consecutive_empty: 0,
        }
    }

    /// Our SETTINGS_MAX_FRAME_SIZE, once the peer has acknowledged it.
    pub fn set_max_frame_size(&mut self, size: u32) {
        self.config.max_frame_size = size;
    }

    /// Our SETTINGS_HEADER_TABLE_SIZE, once the peer has acknowledged it.
    pub fn set_header_table_size(&mut self, size: u32) {
        self.config.header_table_size = size;
        self.decoder.set_limit(size as usize);
    }

    /// The list size cap handed to the HPACK decoder.
    pub fn set_max_header_list_size(&mut self, size: usize) {
        self.config.max_header_list_size = size;
    }

    /// Whether a header block is open (a CONTINUATION is expected next).
    pub fn in_header_block(&self) -> bool {
        self.pending.is_some()
    }

    /// The stream whose header block is open, or whose block failed to decode: a
    /// connection error then names it as the last stream (as Envoy's GOAWAY does).
    pub fn open_block_stream(&self) -> Option<StreamId> {
        self.pending
            .as_ref()
            .map(|p| p.stream)
            .or(self.failed_block)
    }

    /// The next whole frame at the front of `buf`, consuming its bytes; `Ok(None)` when
    /// `buf` holds no whole frame yet (or only a HEADERS/CONTINUATION whose block goes
    /// on, which is consumed). After an error the connection is done: call no more.
    pub fn next_frame(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        loop {
            if self.start == Start::Preface {
                let n = buf.len().min(PREFACE.len());
                if buf[..n] != PREFACE[..n] {
                    return Err(connection(ErrorCode::PROTOCOL_ERROR, REASON_PREFACE));
                }
                if n < PREFACE.len() {
                    return Ok(None);
                }
                buf.advance(PREFACE.len());
                self.start = Start::FirstSettings;
            }
            if buf.len() < FRAME_HEADER_LEN {
                return Ok(None);
            }
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]);
            let frame_kind = buf[3];
            let flags = buf[4];
            let stream =
                u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & super::frame::MAX_STREAM_ID;
            // Decided on the header alone, without waiting for the payload.
            if self.start == Start::FirstSettings {
                if frame_kind != kind::SETTINGS {
                    return Err(connection(
                        ErrorCode::PROTOCOL_ERROR,
                        REASON_FIRST_NOT_SETTINGS,
                    ));
                }
                self.start = Start::Frames;
            }
            if let Some(pending) = &self.pending {
                if frame_kind != kind::CONTINUATION || stream != pending.stream {
                    return Err(connection(
                        ErrorCode::PROTOCOL_ERROR,
                        REASON_CONTINUATION_EXPECTED,
                    ));
                }
            }
            if len > self.config.max_frame_size {
                return Err(connection(
                    ErrorCode::FRAME_SIZE_ERROR,
                    REASON_FRAME_TOO_LARGE,
                ));
            }
            let total = FRAME_HEADER_LEN + len as usize;
            if buf.len() < total {
                buf.reserve(total - buf.len());
                return Ok(None);
            }
            buf.advance(FRAME_HEADER_LEN);
            let payload = buf.split_to(len as usize).freeze();
            if let Some(frame) = self.frame(frame_kind, flags, stream, payload)? {
                return Ok(Some(frame));
            }
        }
    }

    /// One whole frame; `None` for a HEADERS or CONTINUATION whose block goes on.
    fn frame(
        &mut self,
        frame_kind: u8,
        flags: u8,
        stream: StreamId,
        payload: Bytes,
    ) -> Result<Option<Frame>, WireError> {
        if matches!(frame_kind, kind::DATA | kind::HEADERS | kind::CONTINUATION) {
            self.count_empty(frame_kind, flags, &payload)?;
        }
        let frame = match frame_kind {
            kind::DATA => {
                if stream == 0 {
                    return Err(connection(
                        ErrorCode::PROTOCOL_ERROR,
                        REASON_DATA_STREAM_ZERO,
                    ));
                }
                let flow_len = payload.len() as u32;
                let data = unpad(payload, flags)?;
                Frame::Data {
                    stream,
                    data,
                    end_stream: flags & flag::END_STREAM != 0,
                    flow_len,
                }
            }
            kind::HEADERS => {
                if stream == 0 {
                    return Err(connection(
                        ErrorCode::PROTOCOL_ERROR,
                        REASON_HEADERS_STREAM_ZERO,
                    ));
                }
                let mut block = unpad(payload, flags)?;
                let priority = if flags & flag::PRIORITY != 0 {
                    if block.len() < 5 {
                        return Err(frame_size());
                    }
                    let p = priority(&block[..5]);
                    block.advance(5);
                    Some(p)
                } else {
                    None
                };
                let end_stream = flags & flag::END_STREAM != 0;
                if flags & flag::END_HEADERS == 0 {
                    if block.len() > self.config.max_header_block {
                        return Err(too_large());
                    }
                    let mut owned = BytesMut::with_capacity(block.len() * 2);
                    owned.extend_from_slice(&block);
                    self.pending = Some(PendingHeaders {
                        stream,
                        continuations: 0,
                        end_stream,
                        priority,
                        block: owned,
                    });
                    return Ok(None);
                }
                self.headers(stream, end_stream, priority, &block)?
            }
            kind::CONTINUATION => {
                let Some(mut pending) = self.pending.take() else {
                    return Err(connection(
                        ErrorCode::PROTOCOL_ERROR,
                        REASON_CONTINUATION_UNEXPECTED,
                    ));
                };
                if pending.block.len() + payload.len() > self.config.max_header_block {
                    return Err(too_large());
                }
                pending.continuations += 1;
                if pending.continuations > MAX_CONTINUATIONS {
                    return Err(connection(
                        ErrorCode::ENHANCE_YOUR_CALM,
                        REASON_TOO_MANY_CONTINUATIONS,
                    ));
                }
                pending.block.extend_from_slice(&payload);
                if flags & flag::END_HEADERS == 0 {
                    self.pending = Some(pending);
                    return Ok(None);
                }
                let block = pending.block.freeze();
                self.headers(pending.stream, pending.end_stream, pending.priority, &block)?
            }
            kind::PRIORITY => {
                if payload.len() != 5 {
                    return Err(frame_size());
                }
                Frame::Priority {
                    stream,
                    priority: priority(&payload),
                }
            }
            kind::RST_STREAM => {
                if payload.len() != 4 {
                    return Err(frame_size());
                }
                if stream == 0 {
                    return Err(connection(
                        ErrorCode::PROTOCOL_ERROR,
                        REASON_RST_STREAM_ZERO,
                    ));
                }
                Frame::RstStream {
                    stream,
                    code: ErrorCode(be32(&payload)),
                }
            }
            kind::SETTINGS => {
                if stream != 0 {
                    return Err(connection(
                        ErrorCode::PROTOCOL_ERROR,
                        REASON_SETTINGS_ON_STREAM,
                    ));
                }
                let ack = flags & flag::ACK != 0;
                if (ack && !payload.is_empty()) || !payload.len().is_multiple_of(6) {
                    return Err(frame_size());
                }
                Frame::Settings {
                    ack,
                    settings: payload.chunks_exact(6).map(setting).collect(),
                }
            }
            kind::PUSH_PROMISE => {
                let body = unpad(payload, flags)?;
                if body.len() < 4 {
                    return Err(frame_size());
                }
                Frame::PushPromise {
                    stream,
                    promised: be32(&body) & super::frame::MAX_STREAM_ID,
                }
            }
            kind::PING => {
                if stream != 0 {
                    return Err(connection(ErrorCode::PROTOCOL_ERROR, REASON_PING_ON_STREAM));
                }
                let Ok(payload) = <[u8; 8]>::try_from(&payload[..]) else {
                    return Err(frame_size());
                };
                Frame::Ping {
                    ack: flags & flag::ACK != 0,
                    payload,
                }
            }
            kind::GOAWAY => {
                if stream != 0 {
                    return Err(connection(
                        ErrorCode::PROTOCOL_ERROR,
                        REASON_GOAWAY_ON_STREAM,
                    ));
                }
                if payload.len() < 8 {
                    return Err(frame_size());
                }
                Frame::GoAway {
                    last_stream: be32(&payload) & super::frame::MAX_STREAM_ID,
                    code: ErrorCode(be32(&payload[4..])),
                    debug: payload.slice(8..),
                }
            }
            kind::WINDOW_UPDATE => {
                if payload.len() != 4 {
                    return Err(frame_size());
                }
                Frame::WindowUpdate {
                    stream,
                    increment: be32(&payload) & super::frame::MAX_STREAM_ID,
                }
            }
            other => Frame::Unknown {
                kind: other,
                stream,
            },
        };
        Ok(Some(frame))
    }

    /// Envoy's flood rule for frames that carry nothing (see
    /// [`ReaderConfig::max_consecutive_empty`]); other frame types leave the count alone.
    fn count_empty(&mut self, frame_kind: u8, flags: u8, payload: &Bytes) -> Result<(), WireError> {
        let padding = if frame_kind != kind::CONTINUATION && flags & flag::PADDED != 0 {
            payload.first().map_or(0, |&pad| usize::from(pad) + 1)
        } else {
            0
        };
        let end_stream = frame_kind != kind::CONTINUATION && flags & flag::END_STREAM != 0;
        if payload.len() <= padding && !end_stream {
            self.consecutive_empty += 1;
            if self.consecutive_empty > self.config.max_consecutive_empty {
                return Err(connection(
                    ErrorCode::ENHANCE_YOUR_CALM,
                    REASON_EMPTY_FRAMES_FLOOD,
                ));
            }
        } else {
            self.consecutive_empty = 0;
        }
        Ok(())
    }

    fn headers(
        &mut self,
        stream: StreamId,
        end_stream: bool,
        priority: Option<Priority>,
        block: &Bytes,
    ) -> Result<Frame, WireError> {
        let mut fields = FieldList::default();
        if let Err(e) = self
            .decoder
            .decode(block, self.config.max_header_list_size, &mut fields)
        {
            self.failed_block = Some(stream);
            return Err(connection(ErrorCode::COMPRESSION_ERROR, e.reason()));
        }
        Ok(Frame::Headers {
            stream,
            fields,
            end_stream,
            priority,
        })
    }
}

fn too_large() -> WireError {
    connection(ErrorCode::ENHANCE_YOUR_CALM, REASON_HEADER_BLOCK_TOO_LARGE)
}

/// The payload without its padding (RFC 9113 §6.1): a pad length at least the rest of the
/// payload is a PROTOCOL_ERROR; a padded frame too short for its pad length byte, a
/// FRAME_SIZE_ERROR.
fn unpad(mut payload: Bytes, flags: u8) -> Result<Bytes, WireError> {
    if flags & flag::PADDED == 0 {
        return Ok(payload);
    }
    let Some(&pad) = payload.first() else {
        return Err(frame_size());
    };
    let pad = usize::from(pad);
    if pad >= payload.len() {
        return Err(connection(ErrorCode::PROTOCOL_ERROR, REASON_BAD_PADDING));
    }
    payload.advance(1);
    payload.truncate(payload.len() - pad);
    Ok(payload)
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn priority(b: &[u8]) -> Priority {
    let word = be32(b);
    Priority {
        dependency: word & super::frame::MAX_STREAM_ID,
        exclusive: word & 0x8000_0000 != 0,
        weight: b[4],
    }
}

fn setting(b: &[u8]) -> Setting {
    let value = be32(&b[2..]);
    match u16::from_be_bytes([b[0], b[1]]) {
        0x1 => Setting::HeaderTableSize(value),
        0x2 => Setting::EnablePush(value),
        0x3 => Setting::MaxConcurrentStreams(value),
        0x4 => Setting::InitialWindowSize(value),
        0x5 => Setting::MaxFrameSize(value),
        0x6 => Setting::MaxHeaderListSize(value),
        0x8 => Setting::EnableConnectProtocol(value),
        id => Setting::Unknown(id, value),
    }
}

/// Fields of a decoded list as (name, value) byte slices, for tests and logs.
pub fn field_pairs(list: &FieldList) -> impl Iterator<Item = (&[u8], &[u8])> {
    list.fields
        .iter()
        .map(|Field { name, value }| (&name[..], &value[..]))
}

#[cfg(test)]
#[path = "wire_tests.rs"]
pub(crate) mod tests;

#[cfg(test)]
#[path = "wire_tests_floods.rs"]
mod flood_tests;
