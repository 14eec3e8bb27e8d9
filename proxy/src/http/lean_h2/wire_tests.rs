//! Frame reader tests: one per `malformed_http2` case decided at this layer
//! (named after the case; the comment gives Envoy's recorded answer), then partial reads and a
//! bounded fuzz (the writer's tests are in `wire_write_tests.rs`).

use bytes::{BufMut, Bytes, BytesMut};

use super::*;
use crate::http::lean_h2::frame::{ErrorCode, Frame, Priority, Setting, WireError};
use crate::http::lean_h2::wire_write::frame_header;

pub(crate) fn raw(frame_kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = frame_header(payload.len(), frame_kind, flags, stream).to_vec();
    v.extend_from_slice(payload);
    v
}

/// The preface and an empty SETTINGS, as the differential runner starts.
pub(super) fn start() -> Vec<u8> {
    let mut v = PREFACE.to_vec();
    v.extend(raw(kind::SETTINGS, 0, 0, &[]));
    v
}

/// `GET /x` on authority `test`: indexed :method, :scheme http, :path /, literal
/// :authority.
pub(super) const GET: &[u8] = &[0x82, 0x86, 0x84, 0x41, 0x04, b't', b'e', b's', b't'];

pub(super) fn headers(stream: u32, flags: u8, block: &[u8]) -> Vec<u8> {
    raw(kind::HEADERS, flags, stream, block)
}

/// Reads every frame of `bytes` (after the start) until an error.
pub(crate) fn read_all(bytes: &[u8]) -> (Vec<Frame>, Option<WireError>) {
    let mut reader = FrameReader::new(ReaderConfig::default());
    let mut buf = BytesMut::from(&start()[..]);
    buf.extend_from_slice(bytes);
    let mut frames = Vec::new();
    loop {
        match reader.next_frame(&mut buf) {
            Ok(Some(Frame::Settings {
                ack: false,
                ref settings,
            })) if settings.is_empty() => {}
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return (frames, None),
            Err(e) => return (frames, Some(e)),
        }
    }
}

pub(super) fn error_of(bytes: &[u8]) -> (ErrorCode, &'static str) {
    match read_all(bytes).1 {
        Some(WireError::Connection { code, reason }) => (code, reason),
        other => panic!("expected a connection error, got {other:?}"),
    }
}

pub(super) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn baseline_get() {
    let (frames, err) = read_all(&headers(1, flag::END_STREAM | flag::END_HEADERS, GET));
    assert_eq!(err, None);
    let [Frame::Headers {
        stream: 1,
        fields,
        end_stream: true,
        priority: None,
    }] = &frames[..]
    else {
        panic!("{frames:?}");
    };
    let pairs: Vec<_> = field_pairs(fields).collect();
    assert_eq!(pairs[3], (&b":authority"[..], &b"test"[..]));
}

#[test]
fn rst_bad_length() {
    // Envoy: GOAWAY FRAME_SIZE_ERROR.
    let mut b = headers(1, flag::END_HEADERS, GET);
    b.extend(raw(kind::RST_STREAM, 0, 1, &hex("000008")));
    assert_eq!(
        error_of(&b),
        (ErrorCode::FRAME_SIZE_ERROR, REASON_BAD_LENGTH)
    );
}

#[test]
fn window_update_bad_length() {
    // Envoy: GOAWAY FRAME_SIZE_ERROR.
    let b = raw(kind::WINDOW_UPDATE, 0, 0, &hex("000001"));
    assert_eq!(error_of(&b).0, ErrorCode::FRAME_SIZE_ERROR);
}

#[test]
fn data_frame_over_max_frame_size() {
    // Envoy: GOAWAY FRAME_SIZE_ERROR, decided from the frame header alone.
    let mut b = headers(1, flag::END_HEADERS, GET);
    b.extend_from_slice(&frame_header(16_385, kind::DATA, 0, 1));
    assert_eq!(
        error_of(&b),
        (ErrorCode::FRAME_SIZE_ERROR, REASON_FRAME_TOO_LARGE)
    );
}

#[test]
fn data_padding_too_long() {
    // Envoy: GOAWAY PROTOCOL_ERROR.
    let mut b = headers(1, flag::END_HEADERS, GET);
    b.extend(raw(kind::DATA, 9, 1, &hex("0a6162")));
    assert_eq!(
        error_of(&b),
        (ErrorCode::PROTOCOL_ERROR, REASON_BAD_PADDING)
    );
}

#[test]
fn data_padding_counts_against_flow_control() {
    let b = raw(
        kind::DATA,
        flag::PADDED | flag::END_STREAM,
        1,
        &hex("02616263ffff"),
    );
    let (frames, err) = read_all(&b);
    assert_eq!(err, None);
    assert_eq!(
        frames,
        [Frame::Data {
            stream: 1,
            data: Bytes::from_static(b"abc"),
            end_stream: true,
            flow_len: 6
        }]
    );
}

#[test]
fn settings_bad_length() {
    // Envoy: GOAWAY FRAME_SIZE_ERROR.
    let b = raw(kind::SETTINGS, 0, 0, &hex("0001000010"));
    assert_eq!(error_of(&b).0, ErrorCode::FRAME_SIZE_ERROR);
}

#[test]
fn settings_ack_with_payload() {
    // Envoy: GOAWAY FRAME_SIZE_ERROR.
    let b = raw(kind::SETTINGS, flag::ACK, 0, &hex("000100001000"));
    assert_eq!(error_of(&b).0, ErrorCode::FRAME_SIZE_ERROR);
}

#[test]
fn settings_on_stream() {
    // Envoy: closes without GOAWAY.
    let err = read_all(&raw(kind::SETTINGS, 0, 1, &[])).1.expect("error");
    assert_eq!(
        err,
        WireError::Connection {
            code: ErrorCode::PROTOCOL_ERROR,
            reason: REASON_SETTINGS_ON_STREAM
        }
    );
    assert!(!envoy_sends_goaway(&err));
}

#[test]
fn settings_values_are_returned_as_sent() {
    // settings_enable_push_2, settings_initial_window_too_big, ..._max_frame_size_*,
    // settings_unknown_id_ignored: the state machine judges the values.
    let b = raw(
        kind::SETTINGS,
        0,
        0,
        &hex("000200000002 000480000000 000500003fff 009900000001"),
    );
    let (frames, err) = read_all(&b);
    assert_eq!(err, None);
    assert_eq!(
        frames,
        [Frame::Settings {
            ack: false,
            settings: vec![
                Setting::EnablePush(2),
                Setting::InitialWindowSize(0x8000_0000),
                Setting::MaxFrameSize(16_383),
                Setting::Unknown(0x99, 1),
            ],
        }]
    );
}

#[test]
fn ping_bad_length() {
    // Envoy: GOAWAY FRAME_SIZE_ERROR.
    let b = raw(kind::PING, 0, 0, &hex("01020304050607"));
    assert_eq!(error_of(&b).0, ErrorCode::FRAME_SIZE_ERROR);
}

#[test]
fn ping_on_stream() {
    // Envoy: closes without GOAWAY.
    let err = read_all(&raw(kind::PING, 0, 1, &hex("0102030405060708")))
        .1
        .expect("error");
    assert_eq!(
        err,
        WireError::Connection {
            code: ErrorCode::PROTOCOL_ERROR,
            reason: REASON_PING_ON_STREAM
        }
    );
    assert!(!envoy_sends_goaway(&err));
}

#[test]
fn ping_acked() {
    let (frames, _) = read_all(&raw(kind::PING, 0, 0, &hex("0102030405060708")));
    assert_eq!(
        frames,
        [Frame::Ping {
            ack: false,
            payload: [1, 2, 3, 4, 5, 6, 7, 8]
        }]
    );
}

#[test]
fn priority_bad_length() {
    // Envoy: GOAWAY FRAME_SIZE_ERROR (a connection error, not RFC 9113's stream error).
    let b = raw(kind::PRIORITY, 0, 1, &hex("00000000"));
    assert_eq!(error_of(&b).0, ErrorCode::FRAME_SIZE_ERROR);
}

#[test]
fn priority_on_stream_zero() {
    // Envoy keeps the connection: the frame goes to the state machine.
    let (frames, err) = read_all(&raw(kind::PRIORITY, 0, 0, &hex("0000000110")));
    assert_eq!(err, None);
    assert_eq!(
        frames,
        [Frame::Priority {
            stream: 0,
            priority: Priority {
                dependency: 1,
                exclusive: false,
                weight: 16
            }
        }]
    );
}

#[test]
fn priority_self_dependency() {
    // Decodable: the state machine answers (Envoy keeps the connection).
    let (frames, err) = read_all(&raw(kind::PRIORITY, 0, 1, &hex("8000000110")));
    assert_eq!(err, None);
    assert_eq!(
        frames,
        [Frame::Priority {
            stream: 1,
            priority: Priority {
                dependency: 1,
                exclusive: true,
                weight: 16
            }
        }]
    );
}

#[test]
fn headers_with_priority_forwarded() {
    let mut block = hex("00000000c8");
    block.extend_from_slice(GET);
    let (frames, err) = read_all(&headers(
        1,
        flag::END_HEADERS | flag::END_STREAM | flag::PRIORITY,
        &block,
    ));
    assert_eq!(err, None);
    let [Frame::Headers {
        priority: Some(p),
        fields,
        ..
    }] = &frames[..]
    else {
        panic!("{frames:?}");
    };
    assert_eq!(
        *p,
        Priority {
            dependency: 0,
            exclusive: false,
            weight: 200
        }
    );
    assert_eq!(fields.fields.len(), 4);
}

#[test]
fn goaway_on_stream() {
    // Envoy: closes without GOAWAY.
    let err = read_all(&raw(kind::GOAWAY, 0, 1, &[0; 8]))
        .1
        .expect("error");
    assert_eq!(
        err,
        WireError::Connection {
            code: ErrorCode::PROTOCOL_ERROR,
            reason: REASON_GOAWAY_ON_STREAM
        }
    );
    assert!(!envoy_sends_goaway(&err));
}

#[test]
fn data_on_stream_zero() {
    // Envoy: GOAWAY PROTOCOL_ERROR.
    let err = read_all(&raw(kind::DATA, 0, 0, b"zero")).1.expect("error");
    assert_eq!(
        err,
        WireError::Connection {
            code: ErrorCode::PROTOCOL_ERROR,
            reason: REASON_DATA_STREAM_ZERO
        }
    );
    assert!(envoy_sends_goaway(&err));
}

#[test]
fn headers_on_stream_zero() {
    // Envoy: closes without GOAWAY.
    let err = read_all(&headers(0, flag::END_HEADERS | flag::END_STREAM, GET))
        .1
        .expect("error");
    assert_eq!(
        err,
        WireError::Connection {
            code: ErrorCode::PROTOCOL_ERROR,
            reason: REASON_HEADERS_STREAM_ZERO
        }
    );
    assert!(!envoy_sends_goaway(&err));
}

#[test]
fn rst_on_stream_zero() {
    // Envoy: closes without GOAWAY.
    let err = read_all(&raw(kind::RST_STREAM, 0, 0, &hex("00000008")))
        .1
        .expect("error");
    assert_eq!(
        err,
        WireError::Connection {
            code: ErrorCode::PROTOCOL_ERROR,
            reason: REASON_RST_STREAM_ZERO
        }
    );
    assert!(!envoy_sends_goaway(&err));
}

#[test]
fn continuation_on_other_stream() {
    // Envoy: GOAWAY PROTOCOL_ERROR.
    let mut b = headers(1, flag::END_STREAM, GET);
    b.extend(raw(
        kind::CONTINUATION,
        flag::END_HEADERS,
        3,
        &hex("0003782d6101 31"),
    ));
    assert_eq!(
        error_of(&b),
        (ErrorCode::PROTOCOL_ERROR, REASON_CONTINUATION_EXPECTED)
    );
}

#[test]
fn continuation_without_headers() {
    // Envoy: GOAWAY PROTOCOL_ERROR.
    let b = raw(
        kind::CONTINUATION,
        flag::END_HEADERS,
        1,
        &hex("0003782d610131"),
    );
    assert_eq!(
        error_of(&b),
        (ErrorCode::PROTOCOL_ERROR, REASON_CONTINUATION_UNEXPECTED)
    );
}

#[test]
fn headers_interrupted_by_ping() {
    // Envoy: GOAWAY PROTOCOL_ERROR.
    let mut b = headers(1, flag::END_STREAM, GET);
    b.extend(raw(kind::PING, 0, 0, &[0; 8]));
    assert_eq!(
        error_of(&b),
        (ErrorCode::PROTOCOL_ERROR, REASON_CONTINUATION_EXPECTED)
    );
}

#[test]
fn headers_interrupted_by_unknown_frame() {
    // Envoy: GOAWAY PROTOCOL_ERROR.
    let mut b = headers(1, flag::END_STREAM, GET);
    b.extend(raw(250, 0, 0, b"abcd"));
    assert_eq!(
        error_of(&b),
        (ErrorCode::PROTOCOL_ERROR, REASON_CONTINUATION_EXPECTED)
    );
}

/// A plain (not Huffman) HPACK string literal.
fn put_plain_string(out: &mut BytesMut, s: &[u8]) {
    let mut len = s.len();
    if len < 127 {
        out.put_u8(len as u8);
    } else {
        out.put_u8(127);
        len -= 127;
        while len >= 128 {
            out.put_u8((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        out.put_u8(len as u8);
    }
    out.put_slice(s);
}

/// A block of `GET` plus literal fields `x-a`, `x-b`... of `sizes[i]` bytes each.
fn big_block(sizes: &[usize]) -> Vec<u8> {
    let mut enc = BytesMut::new();
    enc.extend_from_slice(GET);
    for (i, &size) in sizes.iter().enumerate() {
        // Literal without indexing, new name.
        enc.put_u8(0x00);
        put_plain_string(&mut enc, &[b'x', b'-', b'a' + i as u8]);
        put_plain_string(&mut enc, &vec![b'a' + i as u8; size]);
    }
    enc.to_vec()
}

fn split_headers(stream: u32, block: &[u8], split: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let chunks: Vec<&[u8]> = block.chunks(split).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let flags = if last { flag::END_HEADERS } else { 0 };
        if i == 0 {
            out.extend(raw(kind::HEADERS, flags | flag::END_STREAM, stream, chunk));
        } else {
            out.extend(raw(kind::CONTINUATION, flags, stream, chunk));
        }
    }
    out
}

#[test]
fn continuation_chain_forwarded() {
    let block = big_block(&[100, 100]);
    let (frames, err) = read_all(&split_headers(1, &block, 50));
    assert_eq!(err, None);
    let [Frame::Headers {
        stream: 1,
        fields,
        end_stream: true,
        ..
    }] = &frames[..]
    else {
        panic!("{frames:?}");
    };
    assert_eq!(fields.fields.len(), 6);
    assert_eq!(&fields.fields[5].value[..], &[b'b'; 100][..]);
}

#[test]
fn header_block_over_limit() {
    // Envoy resets the stream (INTERNAL_ERROR) and keeps the connection: the reader
    // decodes the whole block, stores fields up to its cap and reports the full size.
    let block = big_block(&[20_000, 20_000, 20_000, 10_000]);
    let mut reader = FrameReader::new(ReaderConfig {
        max_header_list_size: 60 * 1024,
        ..ReaderConfig::default()
    });
    let mut buf = BytesMut::from(&start()[..]);
    buf.extend_from_slice(&split_headers(1, &block, 16_384));
    assert!(matches!(
        reader.next_frame(&mut buf),
        Ok(Some(Frame::Settings { .. }))
    ));
    let Ok(Some(Frame::Headers { fields, .. })) = reader.next_frame(&mut buf) else {
        panic!("no headers");
    };
    assert!(fields.list_size > 70_000, "{}", fields.list_size);
    assert_eq!(fields.fields.len(), 7, "x-d is past the cap");
    assert!(buf.is_empty());
}

#[test]
fn continuation_flood_is_capped() {
    let mut b = headers(1, flag::END_STREAM, GET);
    for _ in 0..40 {
        b.extend(raw(kind::CONTINUATION, 0, 1, &[0x20; 16_000]));
    }
    assert_eq!(
        error_of(&b),
        (ErrorCode::ENHANCE_YOUR_CALM, REASON_HEADER_BLOCK_TOO_LARGE)
    );
}

#[test]
fn unknown_frame_type_ignored() {
    let mut b = raw(250, 0, 0, b"abcd");
    b.extend(raw(250, 0xff, 1, b""));
    let (frames, err) = read_all(&b);
    assert_eq!(err, None);
    assert_eq!(
        frames,
        [
            Frame::Unknown {
                kind: 250,
                stream: 0
            },
            Frame::Unknown {
                kind: 250,
                stream: 1
            }
        ]
    );
}

#[test]
fn reserved_bit_is_ignored() {
    let mut b = raw(kind::WINDOW_UPDATE, 0, 0, &hex("80000010"));
    b[5] |= 0x80;
    let (frames, err) = read_all(&b);
    assert_eq!(err, None);
    assert_eq!(
        frames,
        [Frame::WindowUpdate {
            stream: 0,
            increment: 16
        }]
    );
}

#[test]
fn hpack_errors_are_compression_errors() {
    // hpack_index_out_of_range, hpack_index_zero, hpack_table_size_update_in_middle,
    // hpack_table_size_update_too_large, hpack_truncated_literal: Envoy answers all with
    // GOAWAY COMPRESSION_ERROR.
    for tail in ["ff0a", "80", "20", "000561"] {
        let mut block = GET.to_vec();
        block.extend(hex(tail));
        let err = read_all(&headers(1, flag::END_HEADERS | flag::END_STREAM, &block)).1;
        assert!(
            matches!(
                err,
                Some(WireError::Connection {
                    code: ErrorCode::COMPRESSION_ERROR,
                    ..
                })
            ),
            "{tail}: {err:?}"
        );
    }
    let err = read_all(&headers(
        1,
        flag::END_HEADERS,
        &hex("3fe27f828684418474657374"),
    ))
    .1;
    assert_eq!(err.map(|e| envoy_sends_goaway(&e)), Some(true));
}

#[test]
fn bad_preface_is_a_connection_error_at_the_first_wrong_byte() {
    let mut reader = FrameReader::new(ReaderConfig::default());
    let mut buf = BytesMut::from(&b"PRI * HTTP/2"[..]);
    assert_eq!(reader.next_frame(&mut buf), Ok(None));
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
    let err = reader.next_frame(&mut buf).expect_err("bad preface");
    assert_eq!(
        err,
        WireError::Connection {
            code: ErrorCode::PROTOCOL_ERROR,
            reason: REASON_PREFACE
        }
    );
    assert!(!envoy_sends_goaway(&err));
}

#[test]
fn first_frame_must_be_settings() {
    let mut reader = FrameReader::new(ReaderConfig::default());
    let mut buf = BytesMut::from(&PREFACE[..]);
    buf.extend(raw(kind::PING, 0, 0, &[0; 8]));
    let err = reader.next_frame(&mut buf).expect_err("not SETTINGS");
    assert_eq!(
        err,
        WireError::Connection {
            code: ErrorCode::PROTOCOL_ERROR,
            reason: REASON_FIRST_NOT_SETTINGS
        }
    );
}

#[test]
fn byte_at_a_time_reads_the_same_frames() {
    let mut b = headers(1, flag::END_HEADERS, GET);
    b.extend(raw(kind::DATA, flag::END_STREAM, 1, b"hello"));
    b.extend(split_headers(3, &big_block(&[300]), 100));
    let (whole, err) = read_all(&b);
    assert_eq!(err, None);
    let mut reader = FrameReader::new(ReaderConfig::default());
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for byte in start().into_iter().chain(b) {
        buf.put_u8(byte);
        while let Some(f) = reader.next_frame(&mut buf).expect("valid") {
            frames.push(f);
        }
    }
    assert_eq!(frames[1..], whole[..]);
}

#[test]
fn data_is_a_slice_of_the_read_buffer() {
    let mut reader = FrameReader::new(ReaderConfig::default());
    let mut buf = BytesMut::from(&start()[..]);
    buf.extend(raw(kind::DATA, 0, 1, &[7; 1000]));
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    reader.next_frame(&mut buf).expect("settings");
    let Ok(Some(Frame::Data { data, .. })) = reader.next_frame(&mut buf) else {
        panic!("no data");
    };
    assert!(range.contains(&(data.as_ptr() as usize)));
}

#[test]
fn fuzz_random_frames_never_panic() {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3_000 {
        let mut b = Vec::new();
        for _ in 0..(next() % 6) {
            let len = (next() % 40) as usize;
            let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let frame_kind = (next() % 12) as u8;
            b.extend(raw(frame_kind, next() as u8, (next() % 4) as u32, &payload));
        }
        // Sometimes lie about a length.
        if !b.is_empty() && next() % 4 == 0 {
            b[2] = next() as u8;
        }
        let _ = read_all(&b);
    }
}
