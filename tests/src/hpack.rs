//! An HPACK decoder (RFC 7541) for the raw HTTP/2 client: turns the header blocks a server
//! sends back into (name, value) pairs, so tests that write frames by hand (`h2raw`, the
//! differential `h2raw` case kind) can compare the responses. Static and dynamic tables,
//! Huffman strings, table size updates; no encoder (requests are written as literals).
//!
//! Peer input: every malformed block is an error, never a panic.

use std::collections::VecDeque;

/// A block the decoder cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HpackError {
    /// The block ends inside a field.
    #[error("header block truncated")]
    Truncated,
    /// An integer does not fit.
    #[error("integer overflow")]
    Overflow,
    /// An index names no table entry.
    #[error("index {0} out of range")]
    BadIndex(usize),
    /// A Huffman string is not a valid code sequence.
    #[error("bad huffman string")]
    BadHuffman,
    /// A table size update above the limit the client announced.
    #[error("table size update {0} over the limit")]
    TableSize(usize),
}

/// The static table (RFC 7541 Appendix A), index 1 first.
const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Huffman code length of each byte (RFC 7541 Appendix B). The code is canonical, so the
/// codes themselves follow from the lengths (see [`huffman_codes`]).
const CODE_LENGTHS: [u8; 256] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
];

/// (length, code, byte) for every byte, sorted by length then code.
fn huffman_codes() -> &'static [(u8, u32, u8)] {
    static CODES: std::sync::OnceLock<Vec<(u8, u32, u8)>> = std::sync::OnceLock::new();
    CODES.get_or_init(|| {
        let mut symbols: Vec<u8> = (0..=255).collect();
        symbols.sort_by_key(|&s| (CODE_LENGTHS[usize::from(s)], s));
        let mut out = Vec::with_capacity(256);
        let mut code: u32 = 0;
        let mut previous = CODE_LENGTHS[usize::from(symbols[0])];
        for (i, &symbol) in symbols.iter().enumerate() {
            let len = CODE_LENGTHS[usize::from(symbol)];
            if i > 0 {
                code = (code + 1) << (len - previous);
                previous = len;
            }
            out.push((len, code, symbol));
        }
        out
    })
}

/// Decodes a Huffman string: bit by bit (test-only speed), padding of at most 7 one-bits.
fn huffman_decode(input: &[u8]) -> Result<Vec<u8>, HpackError> {
    let codes = huffman_codes();
    let mut out = Vec::with_capacity(input.len() * 2);
    let (mut acc, mut len) = (0u32, 0u8);
    for byte in input {
        for shift in (0..8).rev() {
            acc = (acc << 1) | u32::from((byte >> shift) & 1);
            len += 1;
            if len > 30 {
                return Err(HpackError::BadHuffman);
            }
            if let Some(&(_, _, symbol)) = codes.iter().find(|(l, c, _)| *l == len && *c == acc) {
                out.push(symbol);
                acc = 0;
                len = 0;
            }
        }
    }
    if len > 7 || acc != (1u32 << len) - 1 {
        return Err(HpackError::BadHuffman);
    }
    Ok(out)
}

/// One decoded header field: name and value bytes.
pub type Field = (Vec<u8>, Vec<u8>);

/// The decoding state of one connection (the dynamic table persists across blocks).
#[derive(Debug, Clone)]
pub struct Decoder {
    dynamic: VecDeque<Field>,
    size: usize,
    max_size: usize,
    limit: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl Decoder {
    /// A decoder for a peer allowed a table of `limit` bytes (SETTINGS_HEADER_TABLE_SIZE).
    pub fn new(limit: usize) -> Self {
        Self {
            dynamic: VecDeque::new(),
            size: 0,
            max_size: limit,
            limit,
        }
    }

    fn evict(&mut self) {
        while self.size > self.max_size {
            match self.dynamic.pop_back() {
                Some((n, v)) => self.size -= n.len() + v.len() + 32,
                None => break,
            }
        }
    }

    fn entry(&self, index: usize) -> Result<Field, HpackError> {
        if index == 0 {
            return Err(HpackError::BadIndex(0));
        }
        if let Some((n, v)) = STATIC.get(index - 1) {
            return Ok((n.as_bytes().to_vec(), v.as_bytes().to_vec()));
        }
        self.dynamic
            .get(index - 1 - STATIC.len())
            .cloned()
            .ok_or(HpackError::BadIndex(index))
    }

    /// Decodes one whole header block.
    pub fn decode(&mut self, block: &[u8]) -> Result<Vec<Field>, HpackError> {
        let mut at = 0;
        let mut out = Vec::new();
        while at < block.len() {
            let first = block[at];
            if first & 0x80 != 0 {
                let index = integer(block, &mut at, 7)?;
                out.push(self.entry(index)?);
            } else if first & 0xe0 == 0x20 {
                let size = integer(block, &mut at, 5)?;
                if size > self.limit {
                    return Err(HpackError::TableSize(size));
                }
                self.max_size = size;
                self.evict();
            } else {
                // 01xxxxxx: incremental indexing (6-bit index); 0000/0001: without / never.
                let indexing = first & 0x40 != 0;
                let index = integer(block, &mut at, if indexing { 6 } else { 4 })?;
                let name = if index == 0 {
                    string(block, &mut at)?
                } else {
                    self.entry(index)?.0
                };
                let value = string(block, &mut at)?;
                if indexing {
                    self.size += name.len() + value.len() + 32;
                    self.dynamic.push_front((name.clone(), value.clone()));
                    self.evict();
                }
                out.push((name, value));
            }
        }
        Ok(out)
    }
}

/// Reads an integer with an `prefix`-bit prefix starting at `block[*at]`.
fn integer(block: &[u8], at: &mut usize, prefix: u8) -> Result<usize, HpackError> {
    let max = (1usize << prefix) - 1;
    let first = *block.get(*at).ok_or(HpackError::Truncated)?;
    *at += 1;
    let mut value = usize::from(first) & max;
    if value < max {
        return Ok(value);
    }
    let mut shift = 0u32;
    loop {
        let byte = *block.get(*at).ok_or(HpackError::Truncated)?;
        *at += 1;
        if shift > 28 {
            return Err(HpackError::Overflow);
        }
        value += usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
}

/// Reads a string literal (Huffman or plain).
fn string(block: &[u8], at: &mut usize) -> Result<Vec<u8>, HpackError> {
    let huffman = block.get(*at).ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = integer(block, at, 7)?;
    let end = at.checked_add(len).ok_or(HpackError::Overflow)?;
    let bytes = block.get(*at..end).ok_or(HpackError::Truncated)?;
    *at = end;
    if huffman {
        huffman_decode(bytes)
    } else {
        Ok(bytes.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7541_c4_requests_with_huffman() {
        // RFC 7541 C.4.1 and C.4.2: the second block reuses the dynamic table.
        let mut decoder = Decoder::default();
        let first = [
            0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab,
            0x90, 0xf4, 0xff,
        ];
        let headers = decoder.decode(&first).expect("valid block");
        assert_eq!(
            headers[3],
            (b":authority".to_vec(), b"www.example.com".to_vec())
        );
        let second = [
            0x82, 0x86, 0x84, 0xbe, 0x58, 0x86, 0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf,
        ];
        let headers = decoder.decode(&second).expect("valid block");
        assert_eq!(
            headers[3],
            (b":authority".to_vec(), b"www.example.com".to_vec())
        );
        assert_eq!(
            headers[4],
            (b"cache-control".to_vec(), b"no-cache".to_vec())
        );
    }

    /// Blocks written by the proxy's own HPACK encoder (`lean_h2::hpack`, its test
    /// `encoder_output_is_stable` holds the same hex): this decoder, written separately,
    /// checks them. Change both together.
    #[test]
    fn lean_h2_encoder_blocks() {
        fn hex(s: &str) -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
                .collect()
        }
        fn pairs(list: &[(&str, &str)]) -> Vec<Field> {
            list.iter()
                .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect()
        }
        let mut decoder = Decoder::default();
        let mut response = vec![
            (":status", "200"),
            ("server", "envoy"),
            ("date", "Mon, 07 Dec 2026 20:00:00 GMT"),
            ("content-type", "text/plain"),
            ("content-length", "14"),
            ("x-envoy-upstream-service-time", "1"),
            ("x-custom", "Hello, World! ~{}"),
        ];
        let first = hex(concat!(
            "8876842d5dcfeb6196d07abe9403aa5f29141004e28205c002e000a62d1bff5f87497ca58ae819aa0f0d02",
            "31344095f2b16aee7f4b5b5a1361474ac82d9dcc42ac93525f01314086f2b12d424f4f1148656c6c6f2c",
            "20576f726c6421207e7b7d",
        ));
        assert_eq!(decoder.decode(&first), Ok(pairs(&response)));
        response[0].1 = "503";
        let second = hex("0803353033c2c1c00f0d023134bfbe");
        assert_eq!(decoder.decode(&second), Ok(pairs(&response)));
        let third = hex("40889acac8b21234da8f01301f0886ba51d85b14f3");
        assert_eq!(
            decoder.decode(&third),
            Ok(pairs(&[
                ("grpc-status", "0"),
                ("authorization", "Bearer x")
            ]))
        );
    }

    #[test]
    fn malformed_blocks_are_errors() {
        let mut decoder = Decoder::default();
        assert_eq!(
            decoder.decode(&[0xff, 0x00]),
            Err(HpackError::BadIndex(127))
        );
        assert_eq!(
            decoder.decode(&[0x00, 0x05, b'a']),
            Err(HpackError::Truncated)
        );
        assert_eq!(
            decoder.decode(&[0x3f, 0xe1, 0x7f]),
            Err(HpackError::TableSize(16_384))
        );
    }
}
