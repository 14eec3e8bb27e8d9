//! The HPACK encoder (RFC 7541 §6) for what a server sends: a response head from an
//! `http::StatusCode` and `&HeaderMap`, or trailers from a `&HeaderMap`, written straight
//! into a `BytesMut` (no intermediate fields).
//!
//! Choices, each bounded: `:status` from the static table when it is there; names from the
//! static table or the dynamic table; Huffman when it is shorter; dynamic-table insertion
//! for values that repeat across responses (`server`, `content-type`, `date` within its
//! second, `vary`...), not for volatile ones (`content-length`, `etag`,
//! `x-envoy-upstream-service-time`...) unless their name is in no table yet, and never
//! for entries over a quarter of the table;
//! sensitive fields (`authorization`, `proxy-authorization`, a short `cookie` or
//! `set-cookie`, a value marked sensitive) are "never indexed", as nghttp2 sends them.

use std::collections::VecDeque;

use bytes::{BufMut, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::huffman;
use super::table::{static_name_index, ENTRY_OVERHEAD, STATIC, STATIC_LEN};
use crate::http::lean_h2::frame::Field;

/// The largest dynamic table the encoder uses, whatever the peer allows (RFC 7541 §4.2
/// lets the encoder use less): the default, and what Envoy's nghttp2 uses.
pub const ENCODER_TABLE_MAX: usize = 4096;

/// Names whose values change from response to response: indexing them only evicts the
/// useful entries.
fn volatile(name: &str) -> bool {
    matches!(
        name,
        "content-length"
            | "content-range"
            | "etag"
            | "last-modified"
            | "location"
            | "age"
            | "expires"
            | "link"
            | "x-envoy-upstream-service-time"
            | "x-request-id"
            | "traceparent"
            | "grpc-message"
    )
}

/// Fields never indexed, here or by any intermediary (RFC 7541 §7.1.3).
fn sensitive(name: &str, value: &HeaderValue) -> bool {
    value.is_sensitive()
        || matches!(name, "authorization" | "proxy-authorization")
        || (matches!(name, "cookie" | "set-cookie") && value.len() < 20)
}

/// Encodes the header blocks of one connection's responses, in order.
#[derive(Debug)]
pub struct Encoder {
    /// Newest entry first (index 62), as the peer's decoder sees it.
    entries: VecDeque<(HeaderName, HeaderValue)>,
    size: usize,
    max_size: usize,
    /// A table size change to signal at the start of the next block: the smallest size
    /// since the last block, then the final one (RFC 7541 §4.2).
    pending_update: Option<(usize, usize)>,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    /// An encoder for a peer with the default SETTINGS_HEADER_TABLE_SIZE (4096).
    pub fn new() -> Self {
        Self {
            entries: VecDeque::new(),
            size: 0,
            max_size: ENCODER_TABLE_MAX,
            pending_update: None,
        }
    }

    /// The peer's SETTINGS_HEADER_TABLE_SIZE: the table follows it (up to
    /// [`ENCODER_TABLE_MAX`]) and the next block starts with a size update.
    pub fn set_peer_table_size(&mut self, peer_size: u32) {
        let size = (peer_size as usize).min(ENCODER_TABLE_MAX);
        if size == self.max_size && self.pending_update.is_none() {
            return;
        }
        let smallest = match self.pending_update {
            Some((smallest, _)) => smallest.min(size),
            None => self.max_size.min(size),
        };
        self.pending_update = Some((smallest, size));
        self.max_size = size;
        self.evict_to(size);
    }

    /// The dynamic table's current size in octets.
    pub fn table_size(&self) -> usize {
        self.size
    }

    /// A response head: `:status`, then `headers` in map order.
    pub fn encode_response(&mut self, status: StatusCode, headers: &HeaderMap, out: &mut BytesMut) {
        self.start_block(out);
        match status.as_u16() {
            200 => put_integer(out, 0x80, 7, 8),
            204 => put_integer(out, 0x80, 7, 9),
            206 => put_integer(out, 0x80, 7, 10),
            304 => put_integer(out, 0x80, 7, 11),
            400 => put_integer(out, 0x80, 7, 12),
            404 => put_integer(out, 0x80, 7, 13),
            500 => put_integer(out, 0x80, 7, 14),
            _ => {
                // Literal without indexing, name `:status` (static 8).
                put_integer(out, 0x00, 4, 8);
                put_string(out, status.as_str().as_bytes());
            }
        }
        self.encode_fields(headers, out);
    }

    /// A trailers block.
    pub fn encode_trailers(&mut self, headers: &HeaderMap, out: &mut BytesMut) {
        self.start_block(out);
        self.encode_fields(headers, out);
    }

    /// A block from a field list (tests, or frames built by hand): literals without
    /// indexing, names from the static table where they are there.
    pub fn encode_field_list(&mut self, fields: &[Field], out: &mut BytesMut) {
        self.start_block(out);
        for field in fields {
            let index = STATIC
                .iter()
                .position(|(name, _)| name.as_bytes() == &field.name[..])
                .map_or(0, |i| i + 1);
            put_integer(out, 0x00, 4, index);
            if index == 0 {
                put_string(out, &field.name);
            }
            put_string(out, &field.value);
        }
    }

    fn start_block(&mut self, out: &mut BytesMut) {
        if let Some((smallest, last)) = self.pending_update.take() {
            put_integer(out, 0x20, 5, smallest);
            if last != smallest {
                put_integer(out, 0x20, 5, last);
            }
        }
    }

    fn encode_fields(&mut self, headers: &HeaderMap, out: &mut BytesMut) {
        for (name, value) in headers {
            if is_connection_specific(name) {
                // RFC 9113 §8.2.2: not sent on HTTP/2 (hyper's server drops them too).
                continue;
            }
            self.encode_field(name, value, out);
        }
    }

    fn encode_field(&mut self, name: &HeaderName, value: &HeaderValue, out: &mut BytesMut) {
        let name_str = name.as_str();
        if sensitive(name_str, value) {
            let index = self.name_index(name).unwrap_or(0);
            put_integer(out, 0x10, 4, index);
            if index == 0 {
                put_string(out, name_str.as_bytes());
            }
            put_string(out, value.as_bytes());
            return;
        }
        let mut name_index = None;
        for (i, (n, v)) in self.entries.iter().enumerate() {
            if n == name {
                if v == value {
                    put_integer(out, 0x80, 7, STATIC_LEN + 1 + i);
                    return;
                }
                name_index.get_or_insert(STATIC_LEN + 1 + i);
            }
        }
        let static_index = static_name_index(name_str);
        let index = static_index.or(name_index).unwrap_or(0);
        let entry_size = name_str.len() + value.len() + ENTRY_OVERHEAD;
        // A volatile field is inserted only when its name is in neither table, so that
        // later responses can name it by index (`x-envoy-upstream-service-time`).
        let insert = (!volatile(name_str) || index == 0) && entry_size <= self.max_size / 4;
        if insert {
            put_integer(out, 0x40, 6, index);
        } else {
            put_integer(out, 0x00, 4, index);
        }
        if index == 0 {
            put_string(out, name_str.as_bytes());
        }
        put_string(out, value.as_bytes());
        if insert {
            self.evict_to(self.max_size - entry_size);
            self.size += entry_size;
            self.entries.push_front((name.clone(), value.clone()));
        }
    }

    fn name_index(&self, name: &HeaderName) -> Option<usize> {
        static_name_index(name.as_str()).or_else(|| {
            self.entries
                .iter()
                .position(|(n, _)| n == name)
                .map(|i| STATIC_LEN + 1 + i)
        })
    }

    fn evict_to(&mut self, target: usize) {
        while self.size > target {
            match self.entries.pop_back() {
                Some((n, v)) => self.size -= n.as_str().len() + v.len() + ENTRY_OVERHEAD,
                None => {
                    self.size = 0;
                    break;
                }
            }
        }
    }
}

/// An integer with an N-bit prefix (RFC 7541 §5.1); `flags` are the first byte's bits
/// above the prefix.
pub(crate) fn put_integer(out: &mut BytesMut, flags: u8, prefix: u8, value: usize) {
    let mask = (1usize << prefix) - 1;
    if value < mask {
        out.put_u8(flags | value as u8);
        return;
    }
    out.put_u8(flags | mask as u8);
    let mut rest = value - mask;
    while rest >= 0x80 {
        out.put_u8((rest as u8 & 0x7f) | 0x80);
        rest >>= 7;
    }
    out.put_u8(rest as u8);
}

/// A string literal (RFC 7541 §5.2), Huffman-coded when that is shorter.
pub(crate) fn put_string(out: &mut BytesMut, raw: &[u8]) {
    let coded = huffman::encoded_len(raw);
    if coded < raw.len() {
        put_integer(out, 0x80, 7, coded);
        huffman::encode(raw, out);
    } else {
        put_integer(out, 0x00, 7, raw.len());
        out.put_slice(raw);
    }
}

/// Fields RFC 9113 §8.2.2 forbids in HTTP/2 (`te` is only ever a request's).
fn is_connection_specific(name: &http::HeaderName) -> bool {
    use http::header::{CONNECTION, TRANSFER_ENCODING, UPGRADE};
    name == CONNECTION
        || name == TRANSFER_ENCODING
        || name == UPGRADE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}
