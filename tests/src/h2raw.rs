//! A raw HTTP/2 client for hostile-input tests: writes frames by hand over TCP (prior
//! knowledge, no flow control or state machine of its own), so tests can send what a
//! well-behaved client never would (floods, resets, oversized header blocks) and see
//! exactly which frames come back (RST_STREAM codes, GOAWAY) and when the peer closes.
//!
//! Header blocks are HPACK "literal without indexing, new name", no Huffman: valid for
//! any decoder, and the block size is what the test wrote. Responses are not decoded
//! (only their frame types), except a `:status` sent as a static-table index.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::eventually::IO_TIMEOUT;

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types.
pub mod kind {
    /// DATA
    pub const DATA: u8 = 0x0;
    /// HEADERS
    pub const HEADERS: u8 = 0x1;
    /// PRIORITY
    pub const PRIORITY: u8 = 0x2;
    /// RST_STREAM
    pub const RST_STREAM: u8 = 0x3;
    /// SETTINGS
    pub const SETTINGS: u8 = 0x4;
    /// PING
    pub const PING: u8 = 0x6;
    /// GOAWAY
    pub const GOAWAY: u8 = 0x7;
    /// WINDOW_UPDATE
    pub const WINDOW_UPDATE: u8 = 0x8;
    /// CONTINUATION
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags.
pub mod flag {
    /// END_STREAM (DATA, HEADERS)
    pub const END_STREAM: u8 = 0x1;
    /// ACK (SETTINGS, PING)
    pub const ACK: u8 = 0x1;
    /// END_HEADERS (HEADERS, CONTINUATION)
    pub const END_HEADERS: u8 = 0x4;
}

/// Error codes (RST_STREAM, GOAWAY).
pub mod code {
    /// NO_ERROR
    pub const NO_ERROR: u32 = 0x0;
    /// PROTOCOL_ERROR
    pub const PROTOCOL_ERROR: u32 = 0x1;
    /// INTERNAL_ERROR
    pub const INTERNAL_ERROR: u32 = 0x2;
    /// REFUSED_STREAM
    pub const REFUSED_STREAM: u32 = 0x7;
    /// CANCEL
    pub const CANCEL: u32 = 0x8;
    /// ENHANCE_YOUR_CALM
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;
    /// COMPRESSION_ERROR
    pub const COMPRESSION_ERROR: u32 = 0x9;
}

/// One frame read from the peer.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Frame type ([`kind`]).
    pub kind: u8,
    /// Flags ([`flag`]).
    pub flags: u8,
    /// Stream identifier.
    pub stream: u32,
    /// Payload.
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of a RST_STREAM or GOAWAY frame.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            kind::RST_STREAM => 0,
            kind::GOAWAY => 4,
            _ => return None,
        };
        let b = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// `:status` of a response HEADERS frame when the server sent it as a static-table
    /// index (200, 204, 206, 304, 400, 404, 500), after any padding/priority fields.
    pub fn indexed_status(&self) -> Option<u16> {
        if self.kind != kind::HEADERS {
            return None;
        }
        let mut block = &self.payload[..];
        if self.flags & 0x8 != 0 {
            let pad = *block.first()? as usize;
            block = block.get(1..block.len().checked_sub(pad)?)?;
        }
        if self.flags & 0x20 != 0 {
            block = block.get(5..)?;
        }
        // Skip dynamic table size updates (001xxxxx) the encoder may start with.
        let mut i = 0;
        while block.get(i).is_some_and(|b| b & 0xe0 == 0x20) {
            i += 1;
            while block.get(i - 1).is_some_and(|b| b & 0x1f == 0x1f) && block.get(i)? & 0x80 != 0 {
                i += 1;
            }
        }
        match block.get(i)? {
            0x88 => Some(200),
            0x89 => Some(204),
            0x8a => Some(206),
            0x8b => Some(304),
            0x8c => Some(400),
            0x8d => Some(404),
            0x8e => Some(500),
            _ => None,
        }
    }
}

/// How a wait for the peer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// A GOAWAY with this error code (the connection may stay open briefly after it).
    GoAway(u32),
    /// The peer closed (EOF or reset) without a GOAWAY first.
    Closed,
}

/// Appends an HPACK integer with an `prefix_bits`-bit prefix whose high bits are `first`.
fn hpack_int(out: &mut Vec<u8>, first: u8, prefix_bits: u8, mut value: usize) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// One header as HPACK "literal without indexing, new name", no Huffman.
pub fn hpack_literal(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.push(0x00);
    hpack_int(out, 0x00, 7, name.len());
    out.extend_from_slice(name.as_bytes());
    hpack_int(out, 0x00, 7, value.len());
    out.extend_from_slice(value);
}

/// A request header block: `:method`, `:scheme` http, `:authority` test, `:path`, then
/// `extra` in order.
pub fn request_block(method: &str, path: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut block = Vec::new();
    hpack_literal(&mut block, ":method", method.as_bytes());
    hpack_literal(&mut block, ":scheme", b"http");
    hpack_literal(&mut block, ":authority", b"test");
    hpack_literal(&mut block, ":path", path.as_bytes());
    for (name, value) in extra {
        hpack_literal(&mut block, name, value);
    }
    block
}

/// Encodes one frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = Vec::with_capacity(9 + len);
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A raw HTTP/2 connection.
#[derive(Debug)]
pub struct RawH2 {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The peer's SETTINGS_MAX_FRAME_SIZE is not tracked: header blocks larger than
    /// 16 KiB are split into CONTINUATION frames by [`Self::send_headers`].
    next_stream: u32,
    /// Frames of other streams read while waiting for one stream (`read_stream`).
    parked: std::collections::VecDeque<Frame>,
}

/// The largest frame payload every peer accepts.
const DEFAULT_MAX_FRAME: usize = 16_384;

impl RawH2 {
    /// Connects and sends the preface with an empty SETTINGS frame (the peer's SETTINGS
    /// are acknowledged as they are read).
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr)).await??;
        stream.set_nodelay(true)?;
        let mut conn = Self {
            stream,
            buf: Vec::new(),
            next_stream: 1,
            parked: std::collections::VecDeque::new(),
        };
        let mut hello = PREFACE.to_vec();
        hello.extend_from_slice(&frame(kind::SETTINGS, 0, 0, &[]));
        conn.write(&hello).await?;
        Ok(conn)
    }

    /// The client's local port.
    pub fn local_port(&self) -> std::io::Result<u16> {
        Ok(self.stream.local_addr()?.port())
    }

    /// The next client stream id (1, 3, 5, ...).
    pub fn next_stream_id(&mut self) -> u32 {
        let id = self.next_stream;
        self.next_stream += 2;
        id
    }

    /// Records that the test opened `stream` (by hand or with [`frame`]), so
    /// [`Self::next_stream_id`] does not hand it out again.
    pub fn opened(&mut self, stream: u32) {
        if stream % 2 == 1 && stream >= self.next_stream {
            self.next_stream = stream + 2;
        }
    }

    /// Writes raw bytes (bounded).
    pub async fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        tokio::time::timeout(IO_TIMEOUT, self.stream.write_all(bytes))
            .await
            .context("write timed out")??;
        Ok(())
    }

    /// Writes one frame.
    pub async fn send(
        &mut self,
        kind: u8,
        flags: u8,
        stream: u32,
        payload: &[u8],
    ) -> anyhow::Result<()> {
        self.write(&frame(kind, flags, stream, payload)).await
    }

    /// Sends `block` on `stream` as HEADERS (+ CONTINUATION frames when over 16 KiB).
    /// [`Self::next_stream_id`] moves past `stream`: a new stream must use a higher id
    /// than every stream opened before (reusing one is a connection PROTOCOL_ERROR).
    pub async fn send_headers(
        &mut self,
        stream: u32,
        block: &[u8],
        end_stream: bool,
    ) -> anyhow::Result<()> {
        self.opened(stream);
        let mut out = Vec::new();
        let mut chunks = block.chunks(DEFAULT_MAX_FRAME).peekable();
        let mut first = true;
        if block.is_empty() {
            let flags = flag::END_HEADERS | if end_stream { flag::END_STREAM } else { 0 };
            out.extend_from_slice(&frame(kind::HEADERS, flags, stream, &[]));
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            let mut flags = if last { flag::END_HEADERS } else { 0 };
            let kind = if first {
                if end_stream {
                    flags |= flag::END_STREAM;
                }
                kind::HEADERS
            } else {
                kind::CONTINUATION
            };
            out.extend_from_slice(&frame(kind, flags, stream, chunk));
            first = false;
        }
        self.write(&out).await
    }

    /// A `GET path` on a new stream; returns its id.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<u32> {
        let id = self.next_stream_id();
        self.send_headers(id, &request_block("GET", path, &[]), true)
            .await?;
        Ok(id)
    }

    /// Reads the next frame (acknowledging SETTINGS); None when the peer closed.
    pub async fn read_frame(&mut self) -> anyhow::Result<Option<Frame>> {
        loop {
            if self.buf.len() >= 9 {
                let len = (usize::from(self.buf[0]) << 16)
                    | (usize::from(self.buf[1]) << 8)
                    | usize::from(self.buf[2]);
                if self.buf.len() >= 9 + len {
                    let head: Vec<u8> = self.buf.drain(..9 + len).collect();
                    let f = Frame {
                        kind: head[3],
                        flags: head[4],
                        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]])
                            & 0x7fff_ffff,
                        payload: head[9..].to_vec(),
                    };
                    if f.kind == kind::SETTINGS && f.flags & flag::ACK == 0 {
                        // Best effort: the peer may be closing.
                        let _ = self.send(kind::SETTINGS, flag::ACK, 0, &[]).await;
                    }
                    return Ok(Some(f));
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = match tokio::time::timeout(IO_TIMEOUT, self.stream.read(&mut chunk))
                .await
                .context("read timed out")?
            {
                Ok(n) => n,
                // A reset after the peer's GOAWAY/close counts as closed.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads until a frame on `stream` that ends it (HEADERS/DATA with END_STREAM, or
    /// RST_STREAM), returning every frame seen on that stream; fails on GOAWAY/close.
    pub async fn read_stream(&mut self, stream: u32) -> anyhow::Result<Vec<Frame>> {
        let mut seen = Vec::new();
        let mut parked = std::mem::take(&mut self.parked);
        let mut others = std::collections::VecDeque::new();
        for _ in 0..100_000 {
            let f = match parked.pop_front() {
                Some(f) => f,
                None => match self.read_frame().await? {
                    Some(f) => f,
                    None => {
                        anyhow::bail!("closed before stream {stream} ended; saw {seen:?}")
                    }
                },
            };
            if f.kind == kind::GOAWAY && f.stream == 0 {
                anyhow::bail!(
                    "GOAWAY (code {:?}) before stream {stream} ended",
                    f.error_code()
                );
            }
            if f.stream != stream {
                // Kept for a later `read_stream` of that stream.
                if f.stream != 0 {
                    others.push_back(f);
                }
                continue;
            }
            let ends = f.kind == kind::RST_STREAM
                || (matches!(f.kind, kind::HEADERS | kind::DATA)
                    && f.flags & flag::END_STREAM != 0);
            seen.push(f);
            if ends {
                others.extend(parked);
                self.parked = others;
                return Ok(seen);
            }
        }
        anyhow::bail!("stream {stream} did not end within 100000 frames")
    }

    /// Reads (and discards) frames until a GOAWAY or the close; bounded by `timeout`.
    pub async fn wait_for_end(&mut self, timeout: Duration) -> anyhow::Result<Ending> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("connection neither got GOAWAY nor closed within {timeout:?}");
            }
            match self.read_frame().await? {
                None => return Ok(Ending::Closed),
                Some(f) if f.kind == kind::GOAWAY => {
                    return Ok(Ending::GoAway(f.error_code().unwrap_or(u32::MAX)))
                }
                Some(_) => {}
            }
        }
    }

    /// Writes `bytes` while reading what the peer answers, until a GOAWAY or the close
    /// (bounded by `timeout`). A write the peer refuses (it closed) ends the writing; the
    /// peer's answer is still read. Returns how it ended and whether all of `bytes` went
    /// out.
    pub async fn flood(
        &mut self,
        bytes: &[u8],
        timeout: Duration,
    ) -> anyhow::Result<(Ending, bool)> {
        let (mut rd, mut wr) = self.stream.split();
        let mut written_all = false;
        let write = async {
            if wr.write_all(bytes).await.is_ok() {
                written_all = true;
            }
            // Writing done: keep reading.
            std::future::pending::<()>().await;
        };
        let read = async {
            let mut frames = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let n = rd.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    return Ending::Closed;
                }
                frames.extend_from_slice(&chunk[..n]);
                // Scan whole frames for a GOAWAY; keep a partial one.
                let mut at = 0;
                while frames.len() >= at + 9 {
                    let len = (usize::from(frames[at]) << 16)
                        | (usize::from(frames[at + 1]) << 8)
                        | usize::from(frames[at + 2]);
                    if frames.len() < at + 9 + len {
                        break;
                    }
                    if frames[at + 3] == kind::GOAWAY && len >= 8 {
                        let c = &frames[at + 13..at + 17];
                        return Ending::GoAway(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                    }
                    at += 9 + len;
                }
                frames.drain(..at);
            }
        };
        let ending = tokio::select! {
            ending = read => ending,
            _ = write => unreachable!("the write future never ends"),
            _ = tokio::time::sleep(timeout) => {
                anyhow::bail!("connection neither got GOAWAY nor closed within {timeout:?}")
            }
        };
        Ok((ending, written_all))
    }

    /// After a GOAWAY: reads until the peer closes (bounded).
    pub async fn wait_for_close(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() <= deadline {
            if self.read_frame().await?.is_none() {
                return Ok(());
            }
        }
        anyhow::bail!("connection not closed within {timeout:?}")
    }
}
