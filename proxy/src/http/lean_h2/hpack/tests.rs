//! HPACK tests: RFC 7541 Appendix C, the `malformed_http2` fixtures' HPACK cases, round
//! trips, a bounded fuzz, and allocation counts.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::*;
use crate::http::lean_h2::frame::FieldList;

fn hex(s: &str) -> Bytes {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect::<Vec<u8>>()
        .into()
}

fn decode(decoder: &mut Decoder, block: &str) -> Result<Vec<(String, String)>, HpackError> {
    let mut list = FieldList::default();
    decoder.decode(&hex(block), usize::MAX, &mut list)?;
    Ok(pairs(&list))
}

fn pairs(list: &FieldList) -> Vec<(String, String)> {
    list.fields
        .iter()
        .map(|f| {
            (
                String::from_utf8_lossy(&f.name).into_owned(),
                String::from_utf8_lossy(&f.value).into_owned(),
            )
        })
        .collect()
}

fn fields(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn rfc7541_c2_single_representations() {
    let mut d = Decoder::new(4096);
    assert_eq!(
        decode(
            &mut d,
            "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"
        ),
        Ok(fields(&[("custom-key", "custom-header")]))
    );
    assert_eq!(d.table_size(), 55);
    let mut d = Decoder::new(4096);
    assert_eq!(
        decode(&mut d, "040c 2f73 616d 706c 652f 7061 7468"),
        Ok(fields(&[(":path", "/sample/path")]))
    );
    assert_eq!(
        decode(&mut d, "1008 7061 7373 776f 7264 0673 6563 7265 74"),
        Ok(fields(&[("password", "secret")]))
    );
    assert_eq!(decode(&mut d, "82"), Ok(fields(&[(":method", "GET")])));
    assert_eq!(d.table_size(), 0);
}

/// C.3 (plain) and C.4 (Huffman) encode the same three requests.
fn check_requests(blocks: [&str; 3]) {
    let mut d = Decoder::new(4096);
    let first = [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
    ];
    assert_eq!(decode(&mut d, blocks[0]), Ok(fields(&first)));
    assert_eq!(d.table_size(), 57);
    let mut second = first.to_vec();
    second.push(("cache-control", "no-cache"));
    assert_eq!(decode(&mut d, blocks[1]), Ok(fields(&second)));
    assert_eq!(d.table_size(), 110);
    let third = [
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/index.html"),
        (":authority", "www.example.com"),
        ("custom-key", "custom-value"),
    ];
    assert_eq!(decode(&mut d, blocks[2]), Ok(fields(&third)));
    assert_eq!(d.table_size(), 164);
}

#[test]
fn rfc7541_c3_requests_without_huffman() {
    check_requests([
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ]);
}

#[test]
fn rfc7541_c4_requests_with_huffman() {
    check_requests([
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ]);
}

/// C.5 (plain) and C.6 (Huffman): three responses through a 256-octet table, with
/// evictions.
fn check_responses(blocks: [&str; 3]) {
    let mut d = Decoder::new(256);
    let first = [
        (":status", "302"),
        ("cache-control", "private"),
        ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
        ("location", "https://www.example.com"),
    ];
    assert_eq!(decode(&mut d, blocks[0]), Ok(fields(&first)));
    assert_eq!(d.table_size(), 222);
    let mut second = first;
    second[0] = (":status", "307");
    assert_eq!(decode(&mut d, blocks[1]), Ok(fields(&second)));
    assert_eq!(d.table_size(), 222);
    let third = [
        (":status", "200"),
        ("cache-control", "private"),
        ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
        ("location", "https://www.example.com"),
        ("content-encoding", "gzip"),
        (
            "set-cookie",
            "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
        ),
    ];
    assert_eq!(decode(&mut d, blocks[2]), Ok(fields(&third)));
    assert_eq!(d.table_size(), 215);
}

#[test]
fn rfc7541_c5_responses_without_huffman() {
    check_responses([
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
         2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
         6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
         54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
         5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
         3d31",
    ]);
}

#[test]
fn rfc7541_c6_responses_with_huffman() {
    check_responses([
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
         77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
         9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ]);
}

#[test]
fn huffman_round_trips_every_byte() {
    let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let mut coded = BytesMut::new();
    huffman::encode(&all, &mut coded);
    assert_eq!(coded.len(), huffman::encoded_len(&all));
    let mut out = BytesMut::new();
    huffman::decode(&coded, &mut out).expect("valid");
    assert_eq!(&out[..], &all[..]);
    // "www.example.com" as C.4.1 codes it.
    let mut coded = BytesMut::new();
    huffman::encode(b"www.example.com", &mut coded);
    assert_eq!(coded.freeze(), hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff"));
}

#[test]
fn huffman_rejects_eos_and_bad_padding() {
    let mut out = BytesMut::new();
    // EOS (30 ones) then padding.
    assert!(huffman::decode(&[0xff, 0xff, 0xff, 0xff], &mut out).is_err());
    // '0' is 00000 (5 bits): padding with zeros is invalid.
    assert!(huffman::decode(&[0x00], &mut out).is_err());
    // 8 bits of ones padding after a whole byte.
    assert!(huffman::decode(&[0x07, 0xff], &mut out).is_err());
    // '0' then 3 ones: valid.
    out.clear();
    assert_eq!(huffman::decode(&[0x07], &mut out), Ok(()));
    assert_eq!(&out[..], b"0");
}

/// The `malformed_http2` HPACK cases: each block is the fixture's bytes after a valid
/// request (`GET /x`), as the runner appends them. Envoy answers all with GOAWAY
/// COMPRESSION_ERROR.
const REQUEST: &str = "8286 8441 0474 6573 74";

#[test]
fn hpack_index_out_of_range() {
    let mut d = Decoder::new(4096);
    assert_eq!(
        decode(&mut d, &format!("{REQUEST} ff0a")),
        Err(HpackError::BadIndex)
    );
}

#[test]
fn hpack_index_zero() {
    let mut d = Decoder::new(4096);
    assert_eq!(
        decode(&mut d, &format!("{REQUEST} 80")),
        Err(HpackError::BadIndex)
    );
}

#[test]
fn hpack_table_size_update_in_middle() {
    let mut d = Decoder::new(4096);
    assert_eq!(
        decode(&mut d, &format!("{REQUEST} 20")),
        Err(HpackError::MisplacedSizeUpdate)
    );
}

#[test]
fn hpack_table_size_update_too_large() {
    let mut d = Decoder::new(4096);
    assert_eq!(
        decode(&mut d, "3fe27f828684418474657374"),
        Err(HpackError::SizeUpdateTooLarge)
    );
    // Up to the limit is fine, and more than one at the start too.
    let mut d = Decoder::new(4096);
    assert!(decode(&mut d, "20 3fe11f 82").is_ok());
}

#[test]
fn hpack_truncated_literal() {
    let mut d = Decoder::new(4096);
    assert_eq!(
        decode(&mut d, &format!("{REQUEST} 000561")),
        Err(HpackError::Truncated)
    );
}

#[test]
fn hpack_indexed_static_fields() {
    let mut d = Decoder::new(4096);
    assert_eq!(
        decode(&mut d, "828684410474657374"),
        Ok(fields(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "test")
        ]))
    );
}

#[test]
fn integers_overflow_is_an_error() {
    let mut d = Decoder::new(4096);
    assert_eq!(
        decode(&mut d, "ff ffffffffff 7f"),
        Err(HpackError::IntegerOverflow)
    );
    assert_eq!(decode(&mut d, "ff ff"), Err(HpackError::Truncated));
    // A string length past the block.
    assert_eq!(decode(&mut d, "00 01 61 05 61"), Err(HpackError::Truncated));
    // A string length over 64 KiB, as sent, fails whatever follows (Envoy's decoder).
    assert_eq!(
        decode(&mut d, "00 7f ffffff0f"),
        Err(HpackError::StringTooLong)
    );
}

#[test]
fn a_literal_of_exactly_64_kib_is_taken_and_one_byte_more_is_not() {
    let block = |len: usize| {
        // Literal without indexing, new name "x", a raw value of `len` bytes.
        let mut b = vec![0x00, 0x01, b'x'];
        b.push(0x7f);
        let mut rest = len - 127;
        while rest >= 128 {
            b.push((rest % 128) as u8 | 0x80);
            rest /= 128;
        }
        b.push(rest as u8);
        b.extend(std::iter::repeat_n(b'v', len));
        Bytes::from(b)
    };
    let mut d = Decoder::new(4096);
    let mut list = FieldList::default();
    d.decode(&block(64 * 1024), usize::MAX, &mut list)
        .expect("64 KiB is taken");
    assert_eq!(list.fields[0].value.len(), 64 * 1024);
    let mut list = FieldList::default();
    assert_eq!(
        d.decode(&block(64 * 1024 + 1), usize::MAX, &mut list),
        Err(HpackError::StringTooLong)
    );
}

#[test]
fn list_size_cap_stops_storing_but_keeps_the_table_in_step() {
    let mut d = Decoder::new(4096);
    let mut list = FieldList::default();
    // custom-key: custom-header (55), indexed into the table, past a cap of 40.
    let block = hex("82 400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
    d.decode(&block, 50, &mut list).expect("valid");
    assert_eq!(list.fields.len(), 1);
    assert_eq!(list.list_size, 42 + 55);
    assert_eq!(d.table_size(), 55);
    assert_eq!(
        decode(&mut d, "be"),
        Ok(fields(&[("custom-key", "custom-header")]))
    );
}

#[test]
fn set_limit_shrinks_the_table() {
    let mut d = Decoder::new(4096);
    decode(
        &mut d,
        "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
    )
    .expect("ok");
    d.set_limit(0);
    assert_eq!(d.table_size(), 0);
    assert_eq!(
        decode(&mut d.clone(), "82"),
        Err(HpackError::SizeUpdateMissing)
    );
    assert_eq!(
        decode(&mut d.clone(), "21"),
        Err(HpackError::SizeUpdateTooLarge)
    );
    assert_eq!(decode(&mut d, "20 82"), Ok(fields(&[(":method", "GET")])));
    assert_eq!(decode(&mut d, "be"), Err(HpackError::BadIndex));
}

/// A small xorshift generator: fixed seed, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn fuzz_random_and_truncated_blocks_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut d = Decoder::new(4096);
    for _ in 0..20_000 {
        let len = (rng.next() % 64) as usize;
        let block: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let mut list = FieldList::default();
        let _ = d.decode(&Bytes::from(block), 1024, &mut list);
    }
    // Every prefix of valid blocks (a fresh decoder each time: a failed block leaves the
    // connection dead).
    let valid = hex(
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
         77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f",
    );
    for cut in 0..valid.len() {
        let mut d = Decoder::new(4096);
        let mut list = FieldList::default();
        let _ = d.decode(&valid.slice(..cut), usize::MAX, &mut list);
    }
    // Random mutations of a valid block.
    for _ in 0..5_000 {
        let mut block = valid.to_vec();
        let at = (rng.next() as usize) % block.len();
        block[at] = rng.next() as u8;
        let mut d = Decoder::new(4096);
        let mut list = FieldList::default();
        let _ = d.decode(&Bytes::from(block), usize::MAX, &mut list);
    }
}

fn response_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("server", HeaderValue::from_static("envoy"));
    h.insert(
        "date",
        HeaderValue::from_static("Mon, 07 Dec 2026 20:00:00 GMT"),
    );
    h.insert("content-type", HeaderValue::from_static("text/plain"));
    h.insert("content-length", HeaderValue::from_static("14"));
    h.insert(
        "x-envoy-upstream-service-time",
        HeaderValue::from_static("1"),
    );
    h
}

fn round_trip(enc: &mut Encoder, dec: &mut Decoder, status: StatusCode, h: &HeaderMap) -> usize {
    let mut out = BytesMut::new();
    enc.encode_response(status, h, &mut out);
    let mut list = FieldList::default();
    dec.decode(&out.clone().freeze(), usize::MAX, &mut list)
        .expect("decodes");
    let mut expected = vec![(":status".to_string(), status.as_str().to_string())];
    expected.extend(h.iter().map(|(n, v)| {
        (
            n.as_str().to_string(),
            String::from_utf8_lossy(v.as_bytes()).into_owned(),
        )
    }));
    assert_eq!(pairs(&list), expected);
    assert_eq!(enc.table_size(), dec.table_size());
    out.len()
}

#[test]
fn encoder_round_trips_and_indexes_repeats() {
    let mut enc = Encoder::new();
    let mut dec = Decoder::new(4096);
    let h = response_headers();
    let first = round_trip(&mut enc, &mut dec, StatusCode::OK, &h);
    let second = round_trip(&mut enc, &mut dec, StatusCode::OK, &h);
    assert!(second < first / 2, "{second} vs {first}");
    for status in [200, 204, 206, 301, 302, 304, 400, 404, 500, 503, 999] {
        round_trip(
            &mut enc,
            &mut dec,
            StatusCode::from_u16(status).expect("status"),
            &h,
        );
    }
    // Trailers.
    let mut t = HeaderMap::new();
    t.insert("grpc-status", HeaderValue::from_static("0"));
    t.append("x-trailer", HeaderValue::from_static("a"));
    t.append("x-trailer", HeaderValue::from_static("b"));
    let mut out = BytesMut::new();
    enc.encode_trailers(&t, &mut out);
    let mut list = FieldList::default();
    dec.decode(&out.freeze(), usize::MAX, &mut list)
        .expect("decodes");
    assert_eq!(
        pairs(&list),
        fields(&[("grpc-status", "0"), ("x-trailer", "a"), ("x-trailer", "b")])
    );
}

#[test]
fn encoder_never_indexes_sensitive_fields() {
    let mut enc = Encoder::new();
    let mut h = HeaderMap::new();
    h.insert("authorization", HeaderValue::from_static("secret"));
    h.insert("set-cookie", HeaderValue::from_static("a=1"));
    let mut secret = HeaderValue::from_static("x");
    secret.set_sensitive(true);
    h.insert("x-token", secret);
    let mut out = BytesMut::new();
    enc.encode_trailers(&h, &mut out);
    assert_eq!(enc.table_size(), 0);
    // Each representation starts 0001xxxx.
    assert_eq!(out[0] & 0xf0, 0x10);
    let mut dec = Decoder::new(4096);
    let mut list = FieldList::default();
    dec.decode(&out.freeze(), usize::MAX, &mut list)
        .expect("decodes");
    assert_eq!(list.fields.len(), 3);
}

#[test]
fn encoder_follows_the_peer_table_size() {
    let mut enc = Encoder::new();
    let mut dec = Decoder::new(4096);
    let h = response_headers();
    round_trip(&mut enc, &mut dec, StatusCode::OK, &h);
    enc.set_peer_table_size(0);
    enc.set_peer_table_size(100_000);
    let mut out = BytesMut::new();
    enc.encode_response(StatusCode::OK, &h, &mut out);
    // Size update to 0 then to 4096 (the encoder's own cap), then :status 200.
    assert_eq!(&out[..5], &[0x20, 0x3f, 0xe1, 0x1f, 0x88]);
    let mut list = FieldList::default();
    dec.decode(&out.freeze(), usize::MAX, &mut list)
        .expect("decodes");
    assert_eq!(enc.table_size(), dec.table_size());
    // A peer with no table: nothing is indexed.
    enc.set_peer_table_size(0);
    let mut dec = Decoder::new(0);
    let mut out = BytesMut::new();
    enc.encode_response(StatusCode::OK, &h, &mut out);
    let mut list = FieldList::default();
    dec.decode(&out.freeze(), usize::MAX, &mut list)
        .expect("decodes");
    assert_eq!(enc.table_size(), 0);
}

#[test]
fn allocations_decode_h2load_request_and_encode_response() {
    use crate::http::normalize::tests::allocations_during;
    // h2load's request: literal with incremental indexing for :authority, user-agent,
    // accept (plain strings, as h2load's nghttp2 sends short ones), then all indexed.
    let first = hex("82 86 84 41 0e 31 32 37 2e 30 2e 30 2e 31 3a 38 30 38 30
         7a 0e 68 32 6c 6f 61 64 20 6e 67 68 74 74 70 32
         53 03 2a 2f 2a");
    let again = hex("82 86 84 c0 bf be");
    let mut d = Decoder::new(4096);
    let mut list = FieldList::default();
    d.decode(&first, usize::MAX, &mut list).expect("decodes");
    assert_eq!(list.fields.len(), 6);
    let mut list = FieldList::default();
    let n = allocations_during(|| d.decode(&again, usize::MAX, &mut list).expect("decodes"));
    assert_eq!(pairs(&list)[3].1, "127.0.0.1:8080");
    assert_eq!(n, 1, "decode of a warm h2load request");

    let mut enc = Encoder::new();
    let h = response_headers();
    let mut out = BytesMut::with_capacity(4096);
    enc.encode_response(StatusCode::OK, &h, &mut out);
    out.clear();
    let n = allocations_during(|| enc.encode_response(StatusCode::OK, &h, &mut out));
    assert_eq!(n, 0, "encode of a warm response head");
}

/// The encoder's bytes for three blocks in a row (a response, the same again, trailers):
/// the same hex is decoded by the tests crate's own HPACK decoder
/// (`tests/src/hpack.rs`, `lean_h2_encoder_blocks`), so two independent decoders check
/// the encoder. Change both together.
const GOLDEN_BLOCKS: [&str; 3] = [
    "8876842d5dcfeb6196d07abe9403aa5f29141004e28205c002e000a62d1bff5f87497ca58ae819aa0f0d02\
     31344095f2b16aee7f4b5b5a1361474ac82d9dcc42ac93525f01314086f2b12d424f4f1148656c6c6f2c\
     20576f726c6421207e7b7d",
    "0803353033c2c1c00f0d023134bfbe",
    "40889acac8b21234da8f01301f0886ba51d85b14f3",
];

fn golden_blocks() -> [String; 3] {
    let mut enc = Encoder::new();
    let mut h = response_headers();
    h.insert("x-custom", HeaderValue::from_static("Hello, World! ~{}"));
    let mut hex = |f: &dyn Fn(&mut Encoder, &mut BytesMut)| {
        let mut out = BytesMut::new();
        f(&mut enc, &mut out);
        out.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let first = hex(&|e, o| e.encode_response(StatusCode::OK, &h, o));
    let second = hex(&|e, o| e.encode_response(StatusCode::from_u16(503).expect("status"), &h, o));
    let mut t = HeaderMap::new();
    t.insert("grpc-status", HeaderValue::from_static("0"));
    t.insert("authorization", HeaderValue::from_static("Bearer x"));
    let third = hex(&|e, o| e.encode_trailers(&t, o));
    [first, second, third]
}

#[test]
fn encoder_output_is_stable() {
    let golden = GOLDEN_BLOCKS.map(|b| b.split_whitespace().collect::<String>());
    assert_eq!(golden_blocks(), golden);
}

#[test]
fn fuzz_encoder_decoder_round_trips_under_table_pressure() {
    // Random response heads from a pool of names and values (some repeating, some large,
    // some sensitive), with the peer's table size changing now and then: the decoder must
    // read back every field and both sides' tables must stay the same size.
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let names = [
        "server",
        "content-type",
        "date",
        "vary",
        "x-a",
        "x-b",
        "x-envoy-upstream-service-time",
        "content-length",
        "set-cookie",
        "authorization",
        "cache-control",
        "x-long-name-here",
    ];
    let mut enc = Encoder::new();
    let mut dec = Decoder::new(4096);
    for round in 0..2_000u64 {
        if round % 97 == 0 {
            let size = [0u32, 64, 256, 4096, 100_000][(rng.next() % 5) as usize];
            enc.set_peer_table_size(size);
        }
        let mut h = HeaderMap::new();
        for _ in 0..(rng.next() % 8) {
            let name = names[(rng.next() % names.len() as u64) as usize];
            let len = match rng.next() % 10 {
                0 => 900 + (rng.next() % 200) as usize,
                _ => (rng.next() % 12) as usize,
            };
            let value: String = (0..len)
                .map(|_| char::from(b' ' + (rng.next() % 3 + round % 90) as u8))
                .collect();
            let Ok(value) = HeaderValue::from_str(value.trim()) else {
                continue;
            };
            h.append(http::HeaderName::from_static(name), value);
        }
        let status = StatusCode::from_u16(200 + (rng.next() % 400) as u16).expect("status");
        round_trip(&mut enc, &mut dec, status, &h);
    }
}
