//! What a downstream HTTP/2 connection shows on the wire where h2 and Envoy 1.40
//! (nghttp2) differ, fixed up in the connection's I/O:
//! - the server's first SETTINGS frame: Envoy announces `HEADER_TABLE_SIZE` 4096,
//!   `ENABLE_CONNECT_PROTOCOL`, `MAX_CONCURRENT_STREAMS` and `INITIAL_WINDOW_SIZE`, in
//!   that order, and no `MAX_FRAME_SIZE` (the protocol default either way) nor
//!   `MAX_HEADER_LIST_SIZE` (hyper always has h2 announce one; h2 still enforces it as a
//!   memory bound);
//! - a header field whose name or value is longer than 64 KiB as sent (nghttp2's HPACK
//!   limit, on the encoded length): Envoy's decoder fails the whole connection with
//!   GOAWAY COMPRESSION_ERROR, where h2 decodes it and the stream is reset. The inbound
//!   frames are followed and each header block's string lengths read (no decoding), so
//!   such a field is caught before h2 sees it.
//!
//! The follower also counts what Envoy's `http2.*` stats count from inbound frames
//! (resets, trailers).

/// Frame header length.
const HEADER_LEN: usize = 9;
/// The client connection preface, before the first frame.
const PREFACE_LEN: usize = 24;

/// Frame types.
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const CONTINUATION: u8 = 0x9;

/// Frame flags.
const ACK: u8 = 0x1;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// SETTINGS ids.
const HEADER_TABLE_SIZE: u16 = 0x1;
const MAX_FRAME_SIZE: u16 = 0x5;
const MAX_HEADER_LIST_SIZE: u16 = 0x6;
const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;

/// GOAWAY frame type and the COMPRESSION_ERROR code.
const GOAWAY: u8 = 0x7;
const COMPRESSION_ERROR: u32 = 0x9;

/// The longest header name or value (encoded length) nghttp2's HPACK decoder takes.
pub(super) const MAX_FIELD_LEN: usize = 64 * 1024;

/// The HPACK dynamic table size Envoy announces (the protocol default).
const ANNOUNCED_TABLE_SIZE: u32 = 4096;

/// When `buf` starts with the server's (non-ACK) SETTINGS frame, the length of that
/// frame and Envoy's version of it (see the module doc); None otherwise.
pub(super) fn envoy_settings(buf: &[u8]) -> Option<(usize, Vec<u8>)> {
    if buf.len() < HEADER_LEN || buf[3] != SETTINGS || buf[4] & ACK != 0 {
        return None;
    }
    let len = usize::from(buf[0]) << 16 | usize::from(buf[1]) << 8 | usize::from(buf[2]);
    let payload = buf.get(HEADER_LEN..HEADER_LEN + len)?;
    if len % 6 != 0 {
        return None;
    }
    let mut connect = 0;
    let mut kept = Vec::with_capacity(len + 12);
    for setting in payload.chunks_exact(6) {
        let id = u16::from_be_bytes([setting[0], setting[1]]);
        match id {
            HEADER_TABLE_SIZE | MAX_FRAME_SIZE | MAX_HEADER_LIST_SIZE => {}
            ENABLE_CONNECT_PROTOCOL => {
                connect = u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
            }
            _ => kept.extend_from_slice(setting),
        }
    }
    let mut out_payload = Vec::with_capacity(12 + kept.len());
    out_payload.extend_from_slice(&HEADER_TABLE_SIZE.to_be_bytes());
    out_payload.extend_from_slice(&ANNOUNCED_TABLE_SIZE.to_be_bytes());
    out_payload.extend_from_slice(&ENABLE_CONNECT_PROTOCOL.to_be_bytes());
    out_payload.extend_from_slice(&connect.to_be_bytes());
    out_payload.extend_from_slice(&kept);
    Some((HEADER_LEN + len, frame(SETTINGS, 0, 0, &out_payload)))
}

/// GOAWAY COMPRESSION_ERROR naming `last_stream` as the last stream processed.
pub(super) fn compression_error_goaway(last_stream: u32) -> Vec<u8> {
    let mut payload = Vec::with_capacity(8);
    payload.extend_from_slice(&last_stream.to_be_bytes());
    payload.extend_from_slice(&COMPRESSION_ERROR.to_be_bytes());
    frame(GOAWAY, 0, 0, &payload)
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = Vec::with_capacity(HEADER_LEN + len);
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// What inbound frames told, for the caller's stats and actions.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Inbound {
    /// RST_STREAM frames received.
    pub(super) resets: u64,
    /// HEADERS frames on a stream already opened: request trailers.
    pub(super) trailers: u64,
    /// A header field over [`MAX_FIELD_LEN`]: the connection fails with GOAWAY
    /// COMPRESSION_ERROR naming this last stream.
    pub(super) compression_error: Option<u32>,
}

/// Where in a header block the HPACK walk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hpack {
    /// At the first byte of a representation.
    Start,
    /// In the continuation bytes of an integer.
    Int {
        value: usize,
        shift: u32,
        then: IntUse,
    },
    /// At the first byte of a string (its length); `name` when the value follows.
    Str { name: bool },
    /// Inside a string: bytes left, then the value (after a name) or the next field.
    Skip { left: usize, name: bool },
}

/// What an integer being read is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IntUse {
    /// An index or table size: nothing follows.
    Done,
    /// A literal's name index: 0 means a literal name follows.
    NameIndex,
    /// A string length.
    StrLen { name: bool },
}

impl Hpack {
    /// What follows a complete integer.
    fn after_int(value: usize, then: IntUse) -> Result<Self, ()> {
        Ok(match then {
            IntUse::Done => Hpack::Start,
            IntUse::NameIndex => Hpack::Str { name: value == 0 },
            IntUse::StrLen { .. } if value > MAX_FIELD_LEN => return Err(()),
            IntUse::StrLen { name } if value == 0 => Self::after_string(name),
            IntUse::StrLen { name } => Hpack::Skip { left: value, name },
        })
    }

    fn after_string(name: bool) -> Self {
        if name {
            Hpack::Str { name: false }
        } else {
            Hpack::Start
        }
    }

    /// An integer with a `bits`-bit prefix in `byte`.
    fn int(byte: u8, bits: u32, then: IntUse) -> Result<Self, ()> {
        let max = (1usize << bits) - 1;
        let value = usize::from(byte) & max;
        if value < max {
            Self::after_int(value, then)
        } else {
            Ok(Hpack::Int {
                value,
                shift: 0,
                then,
            })
        }
    }

    /// Walks `block`; Err when a string is longer than [`MAX_FIELD_LEN`].
    fn walk(&mut self, mut block: &[u8]) -> Result<(), ()> {
        while let Some(&byte) = block.first() {
            let mut used = 1;
            *self = match *self {
                Hpack::Start => {
                    if byte & 0x80 != 0 {
                        Self::int(byte, 7, IntUse::Done)?
                    } else if byte & 0xc0 == 0x40 {
                        Self::int(byte, 6, IntUse::NameIndex)?
                    } else if byte & 0xe0 == 0x20 {
                        Self::int(byte, 5, IntUse::Done)?
                    } else {
                        Self::int(byte, 4, IntUse::NameIndex)?
                    }
                }
                Hpack::Int { value, shift, then } => {
                    // Saturates: a huge index fails in h2; a huge length here.
                    let add = usize::from(byte & 0x7f)
                        .checked_shl(shift)
                        .unwrap_or(usize::MAX);
                    let value = value.saturating_add(add);
                    if byte & 0x80 == 0 {
                        Self::after_int(value, then)?
                    } else {
                        Hpack::Int {
                            value,
                            shift: (shift + 7).min(63),
                            then,
                        }
                    }
                }
                Hpack::Str { name } => Self::int(byte, 7, IntUse::StrLen { name })?,
                Hpack::Skip { left, name } => {
                    used = left.min(block.len());
                    if used == left {
                        Self::after_string(name)
                    } else {
                        Hpack::Skip {
                            left: left - used,
                            name,
                        }
                    }
                }
            };
            block = &block[used..];
        }
        Ok(())
    }
}

/// Follows a downstream connection's inbound HTTP/2 frames across reads.
#[derive(Debug, Clone)]
pub(super) struct InboundFrames {
    /// Preface bytes still to pass.
    preface_left: usize,
    header: [u8; HEADER_LEN],
    header_len: usize,
    /// Payload bytes of the current frame read so far, and its length.
    payload_at: usize,
    payload_len: usize,
    /// The current frame is a header block fragment (HEADERS or CONTINUATION).
    in_block: bool,
    /// Bytes before the fragment (pad length, priority) and padding after it.
    block_start: usize,
    padding: usize,
    padded: bool,
    hpack: Hpack,
    /// The highest stream a HEADERS frame opened.
    last_stream: u32,
    /// Failed: nothing more is followed.
    failed: bool,
}

impl Default for InboundFrames {
    fn default() -> Self {
        Self {
            preface_left: PREFACE_LEN,
            header: [0; HEADER_LEN],
            header_len: 0,
            payload_at: 0,
            payload_len: 0,
            in_block: false,
            block_start: 0,
            padding: 0,
            padded: false,
            hpack: Hpack::Start,
            last_stream: 0,
            failed: false,
        }
    }
}

impl InboundFrames {
    /// Follows `data`, the next bytes the client sent.
    pub(super) fn on_read(&mut self, mut data: &[u8]) -> Inbound {
        let mut seen = Inbound::default();
        if self.failed {
            return seen;
        }
        let skip = self.preface_left.min(data.len());
        self.preface_left -= skip;
        data = &data[skip..];
        while !data.is_empty() {
            if self.payload_at < self.payload_len {
                let n = (self.payload_len - self.payload_at).min(data.len());
                if self.in_block && self.walk_payload(&data[..n]).is_err() {
                    self.failed = true;
                    seen.compression_error = Some(self.last_stream);
                    return seen;
                }
                self.payload_at += n;
                data = &data[n..];
                continue;
            }
            let n = (HEADER_LEN - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            data = &data[n..];
            if self.header_len == HEADER_LEN {
                self.header_len = 0;
                self.start_frame(&mut seen);
            }
        }
        seen
    }

    fn start_frame(&mut self, seen: &mut Inbound) {
        let h = self.header;
        self.payload_len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
        self.payload_at = 0;
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        let flags = h[4];
        self.in_block = false;
        match h[3] {
            HEADERS => {
                self.in_block = true;
                self.hpack = Hpack::Start;
                self.padded = flags & PADDED != 0;
                self.padding = 0;
                self.block_start =
                    usize::from(self.padded) + if flags & PRIORITY != 0 { 5 } else { 0 };
                if stream <= self.last_stream {
                    seen.trailers += 1;
                }
                self.last_stream = self.last_stream.max(stream);
            }
            CONTINUATION => {
                self.in_block = true;
                self.padded = false;
                self.padding = 0;
                self.block_start = 0;
            }
            RST_STREAM => seen.resets += 1,
            _ => {}
        }
    }

    /// Walks payload bytes `data` of a header block frame (at `payload_at`).
    fn walk_payload(&mut self, data: &[u8]) -> Result<(), ()> {
        let mut at = self.payload_at;
        let mut data = data;
        if self.padded && at == 0 {
            if let Some(&pad) = data.first() {
                self.padding = usize::from(pad);
            }
        }
        if at < self.block_start {
            let n = (self.block_start - at).min(data.len());
            at += n;
            data = &data[n..];
        }
        let block_end = self.payload_len.saturating_sub(self.padding);
        let usable = block_end.saturating_sub(at).min(data.len());
        self.hpack.walk(&data[..usable])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(name: &[u8], value_len: usize) -> Vec<u8> {
        let mut out = vec![0x00];
        int(&mut out, name.len(), 7);
        out.extend_from_slice(name);
        int(&mut out, value_len, 7);
        out.extend(std::iter::repeat_n(b'a', value_len));
        out
    }

    fn int(out: &mut Vec<u8>, mut v: usize, bits: u32) {
        let max = (1usize << bits) - 1;
        if v < max {
            out.push(v as u8);
            return;
        }
        out.push(max as u8);
        v -= max;
        while v >= 128 {
            out.push((v & 127) as u8 | 128);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// HEADERS then CONTINUATIONs of at most 16 KiB.
    fn block_frames(stream: u32, block: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, chunk) in block.chunks(16384).enumerate() {
            let kind = if i == 0 { HEADERS } else { CONTINUATION };
            out.extend(frame(kind, 0, stream, chunk));
        }
        out
    }

    fn follow(bytes: &[u8], read: usize) -> Inbound {
        let mut f = InboundFrames::default();
        let mut total = Inbound::default();
        let mut conn = vec![0u8; PREFACE_LEN];
        conn.extend_from_slice(bytes);
        for chunk in conn.chunks(read) {
            let seen = f.on_read(chunk);
            total.resets += seen.resets;
            if seen.compression_error.is_some() {
                total.compression_error = seen.compression_error;
            }
        }
        total
    }

    #[test]
    fn a_field_over_64_kib_is_a_compression_error_however_it_is_read() {
        let mut block = vec![0x82, 0x86];
        block.extend(literal(b"x-ok", MAX_FIELD_LEN));
        let ok = block_frames(1, &block);
        let mut over = ok.clone();
        let mut block3 = vec![0x82];
        block3.extend(literal(b"x-big", MAX_FIELD_LEN + 1));
        over.extend(block_frames(3, &block3));
        for read in [1, 7, 100, 20000, 1 << 20] {
            assert_eq!(follow(&ok, read).compression_error, None, "read {read}");
            assert_eq!(
                follow(&over, read).compression_error,
                Some(3),
                "read {read}"
            );
        }
    }

    #[test]
    fn padding_priority_and_indexed_names_are_skipped() {
        // Indexed name (literal with incremental indexing, index 4 = :path) then a
        // long value in a padded, prioritised HEADERS frame.
        let mut block = vec![0x44];
        int(&mut block, 70_000, 7);
        let mut payload = vec![3];
        payload.extend_from_slice(&[0, 0, 0, 0, 16]);
        payload.extend_from_slice(&block);
        // The value's bytes are not all sent: the length alone fails it.
        payload.extend_from_slice(&[0, 0, 0]);
        let bytes = frame(HEADERS, PADDED | PRIORITY, 5, &payload);
        assert_eq!(follow(&bytes, 3).compression_error, Some(5));
        let mut fine = vec![0x44];
        int(&mut fine, 10, 7);
        fine.extend_from_slice(b"/0123456789");
        let mut payload = vec![200];
        payload.extend_from_slice(&fine);
        payload.extend(std::iter::repeat_n(0xff, 200));
        let bytes = frame(HEADERS, PADDED, 1, &payload);
        assert_eq!(follow(&bytes, 5).compression_error, None);
    }

    #[test]
    fn resets_are_counted() {
        let mut bytes = frame(RST_STREAM, 0, 1, &8u32.to_be_bytes());
        bytes.extend(frame(0x6, 0, 0, &[0; 8]));
        bytes.extend(frame(RST_STREAM, 0, 3, &8u32.to_be_bytes()));
        assert_eq!(follow(&bytes, 4).resets, 2);
    }

    #[test]
    fn settings_become_envoys() {
        let mut payload = Vec::new();
        for (id, v) in [(3u16, 1024u32), (4, 16 << 20), (5, 16384), (6, 130_336)] {
            payload.extend_from_slice(&id.to_be_bytes());
            payload.extend_from_slice(&v.to_be_bytes());
        }
        let mut out = frame(SETTINGS, 0, 0, &payload);
        let whole = out.len();
        out.extend(frame(0x8, 0, 0, &[0, 0, 1, 0]));
        let (len, replaced) = envoy_settings(&out).expect("settings");
        assert_eq!(len, whole);
        let settings: Vec<(u16, u32)> = replaced[HEADER_LEN..]
            .chunks(6)
            .map(|s| {
                (
                    u16::from_be_bytes([s[0], s[1]]),
                    u32::from_be_bytes([s[2], s[3], s[4], s[5]]),
                )
            })
            .collect();
        assert_eq!(settings, [(1, 4096), (8, 0), (3, 1024), (4, 16 << 20)]);
        assert_eq!(envoy_settings(&frame(SETTINGS, ACK, 0, &[])), None);
    }
}
