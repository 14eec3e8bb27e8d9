//! The frame writer of Baton's own HTTP/2 server codec (RFC 9113 §4, §6): [`Frame`]s and
//! response heads into a `BytesMut` for the socket. Response HEADERS and trailers are
//! HPACK-encoded straight from `http::StatusCode` + `&HeaderMap` ([`hpack::Encoder`]) and
//! split into CONTINUATION frames by the peer's SETTINGS_MAX_FRAME_SIZE. A DATA frame's
//! payload need not be copied: [`data_frame_header`] gives the 9 bytes to write in front
//! of a `Bytes` payload with vectored I/O (the caller splits payloads by the peer's max
//! frame size and its flow control windows). A writer holds only its HPACK table (at
//! most 4 KiB of entries); the output buffer is the caller's.

use bytes::{BufMut, BytesMut};
use http::{HeaderMap, StatusCode};

use super::frame::{Frame, Priority, Setting, StreamId};
use super::hpack;
use super::wire::{flag, kind, FRAME_HEADER_LEN};

/// The smallest SETTINGS_MAX_FRAME_SIZE (RFC 9113 §6.5.2): the default, and the floor.
const MIN_MAX_FRAME_SIZE: u32 = 16_384;
/// The largest SETTINGS_MAX_FRAME_SIZE.
const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;

/// A frame header (RFC 9113 §4.1).
pub fn frame_header(len: usize, frame_kind: u8, flags: u8, stream: StreamId) -> [u8; 9] {
    let len = len as u32;
    let s = stream.to_be_bytes();
    [
        (len >> 16) as u8,
        (len >> 8) as u8,
        len as u8,
        frame_kind,
        flags,
        s[0] & 0x7f,
        s[1],
        s[2],
        s[3],
    ]
}

/// The header of a DATA frame carrying `len` bytes (no padding): the caller writes these
/// 9 bytes and then the payload, e.g. as two slices of one vectored write.
pub fn data_frame_header(stream: StreamId, len: usize, end_stream: bool) -> [u8; 9] {
    let flags = if end_stream { flag::END_STREAM } else { 0 };
    frame_header(len, kind::DATA, flags, stream)
}

fn put_header(out: &mut BytesMut, len: usize, frame_kind: u8, flags: u8, stream: StreamId) {
    out.put_slice(&frame_header(len, frame_kind, flags, stream));
}

/// Writes one connection's frames, in order.
#[derive(Debug)]
pub struct FrameWriter {
    encoder: hpack::Encoder,
    /// The peer's SETTINGS_MAX_FRAME_SIZE.
    max_frame_size: u32,
}

impl Default for FrameWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameWriter {
    pub fn new() -> Self {
        Self {
            encoder: hpack::Encoder::new(),
            max_frame_size: MIN_MAX_FRAME_SIZE,
        }
    }

    /// The peer's SETTINGS_MAX_FRAME_SIZE (clamped to the valid range; the state machine
    /// rejects values outside it).
    pub fn set_peer_max_frame_size(&mut self, size: u32) {
        self.max_frame_size = size.clamp(MIN_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE);
    }

    /// The peer's SETTINGS_MAX_FRAME_SIZE as the writer uses it.
    pub fn peer_max_frame_size(&self) -> u32 {
        self.max_frame_size
    }

    /// The peer's SETTINGS_HEADER_TABLE_SIZE.
    pub fn set_peer_header_table_size(&mut self, size: u32) {
        self.encoder.set_peer_table_size(size);
    }

    /// A response head as HEADERS (+ CONTINUATION).
    pub fn response_headers(
        &mut self,
        stream: StreamId,
        status: StatusCode,
        headers: &HeaderMap,
        end_stream: bool,
        out: &mut BytesMut,
    ) {
        let start = self.open_headers(out);
        self.encoder.encode_response(status, headers, out);
        self.close_headers(out, start, stream, end_stream);
    }

    /// Trailers as HEADERS (+ CONTINUATION) with END_STREAM.
    pub fn trailers(&mut self, stream: StreamId, trailers: &HeaderMap, out: &mut BytesMut) {
        let start = self.open_headers(out);
        self.encoder.encode_trailers(trailers, out);
        self.close_headers(out, start, stream, true);
    }

    /// Reserves the HEADERS frame header; the block is encoded right after it.
    fn open_headers(&self, out: &mut BytesMut) -> usize {
        let start = out.len();
        out.put_slice(&[0; FRAME_HEADER_LEN]);
        start
    }

    /// Fills in the HEADERS frame header, splitting the block into CONTINUATION frames
    /// when it is larger than the peer's max frame size (rare: only that case copies).
    fn close_headers(&self, out: &mut BytesMut, start: usize, stream: StreamId, end_stream: bool) {
        let max = self.max_frame_size as usize;
        let block_len = out.len() - start - FRAME_HEADER_LEN;
        let end = if end_stream { flag::END_STREAM } else { 0 };
        if block_len <= max {
            let header = frame_header(block_len, kind::HEADERS, end | flag::END_HEADERS, stream);
            out[start..start + FRAME_HEADER_LEN].copy_from_slice(&header);
            return;
        }
        let block = out.split_off(start + FRAME_HEADER_LEN);
        out.truncate(start);
        let mut chunks = block.chunks(max).peekable();
        let mut first = true;
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            let end_headers = if last { flag::END_HEADERS } else { 0 };
            if first {
                put_header(out, chunk.len(), kind::HEADERS, end | end_headers, stream);
                first = false;
            } else {
                put_header(out, chunk.len(), kind::CONTINUATION, end_headers, stream);
            }
            out.put_slice(chunk);
        }
    }

    /// Any frame. DATA is copied (use [`data_frame_header`] to avoid that for large
    /// payloads); HEADERS from a field list is encoded without indexing (responses go
    /// through [`FrameWriter::response_headers`]); PUSH_PROMISE is never sent by a
    /// server that keeps push off, so it is written without a header block.
    pub fn write(&mut self, frame: &Frame, out: &mut BytesMut) {
        match frame {
            Frame::Data {
                stream,
                data,
                end_stream,
                ..
            } => {
                out.put_slice(&data_frame_header(*stream, data.len(), *end_stream));
                out.put_slice(data);
            }
            Frame::Headers {
                stream,
                fields,
                end_stream,
                priority,
            } => {
                let start = self.open_headers(out);
                if let Some(p) = priority {
                    put_priority(out, p);
                }
                self.encoder.encode_field_list(&fields.fields, out);
                self.close_headers(out, start, *stream, *end_stream);
                if priority.is_some() {
                    out[start + 4] |= flag::PRIORITY;
                }
            }
            Frame::Priority { stream, priority } => {
                put_header(out, 5, kind::PRIORITY, 0, *stream);
                put_priority(out, priority);
            }
            Frame::RstStream { stream, code } => {
                put_header(out, 4, kind::RST_STREAM, 0, *stream);
                out.put_u32(code.0);
            }
            Frame::Settings { ack, settings } => {
                let flags = if *ack { flag::ACK } else { 0 };
                put_header(out, settings.len() * 6, kind::SETTINGS, flags, 0);
                for s in settings {
                    let (id, value) = setting_pair(*s);
                    out.put_u16(id);
                    out.put_u32(value);
                }
            }
            Frame::PushPromise { stream, promised } => {
                put_header(out, 4, kind::PUSH_PROMISE, flag::END_HEADERS, *stream);
                out.put_u32(*promised);
            }
            Frame::Ping { ack, payload } => {
                let flags = if *ack { flag::ACK } else { 0 };
                put_header(out, 8, kind::PING, flags, 0);
                out.put_slice(payload);
            }
            Frame::GoAway {
                last_stream,
                code,
                debug,
            } => {
                put_header(out, 8 + debug.len(), kind::GOAWAY, 0, 0);
                out.put_u32(*last_stream);
                out.put_u32(code.0);
                out.put_slice(debug);
            }
            Frame::WindowUpdate { stream, increment } => {
                put_header(out, 4, kind::WINDOW_UPDATE, 0, *stream);
                out.put_u32(*increment);
            }
            Frame::Unknown { kind, stream } => put_header(out, 0, *kind, 0, *stream),
        }
    }
}

fn put_priority(out: &mut BytesMut, p: &Priority) {
    let exclusive = if p.exclusive { 0x8000_0000 } else { 0 };
    out.put_u32(p.dependency | exclusive);
    out.put_u8(p.weight);
}

fn setting_pair(s: Setting) -> (u16, u32) {
    match s {
        Setting::HeaderTableSize(v) => (0x1, v),
        Setting::EnablePush(v) => (0x2, v),
        Setting::MaxConcurrentStreams(v) => (0x3, v),
        Setting::InitialWindowSize(v) => (0x4, v),
        Setting::MaxFrameSize(v) => (0x5, v),
        Setting::MaxHeaderListSize(v) => (0x6, v),
        Setting::EnableConnectProtocol(v) => (0x8, v),
        Setting::Unknown(id, v) => (id, v),
    }
}

#[cfg(test)]
#[path = "wire_write_tests.rs"]
mod tests;
