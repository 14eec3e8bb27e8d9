//! Frame reader tests for Envoy's flood rules (empty frames, CONTINUATION chains) and
//! what a failed header block names (the rest are in `wire_tests.rs`).

use bytes::BytesMut;

use super::tests::{error_of, headers, hex, raw, read_all, start, GET};
use super::*;
use crate::http::lean_h2::frame::{ErrorCode, Frame, WireError};

/// Frames with nothing in them, as Envoy's `max_consecutive_inbound_frames_with_empty_payload`
/// (1) counts them: `empty_data_once`, `empty_data_end_stream`, `empty_data_between_data`
/// and `empty_continuation_once` are served; `empty_data_twice` and
/// `empty_continuation_twice` close the connection without a GOAWAY.
#[test]
fn empty_frames_in_a_row_past_one_end_the_connection() {
    let post = headers(1, flag::END_HEADERS, GET);
    let data = |payload: &[u8], end: bool| {
        raw(
            kind::DATA,
            if end { flag::END_STREAM } else { 0 },
            1,
            payload,
        )
    };
    let served = [
        [post.clone(), data(b"", false), data(b"abc", true)].concat(),
        [post.clone(), data(b"", false), data(b"", true)].concat(),
        [
            post.clone(),
            data(b"a", false),
            data(b"", false),
            data(b"b", false),
            data(b"", false),
            data(b"c", true),
        ]
        .concat(),
        // Padding alone is empty too, but one is allowed.
        [
            post.clone(),
            raw(kind::DATA, flag::PADDED, 1, &[2, 0, 0]),
            data(b"x", true),
        ]
        .concat(),
    ];
    for bytes in served {
        let (frames, err) = read_all(&bytes);
        assert_eq!(err, None, "{frames:?}");
    }
    let flooded = [
        [
            post.clone(),
            data(b"", false),
            data(b"", false),
            data(b"abc", true),
        ]
        .concat(),
        [
            post.clone(),
            raw(kind::DATA, flag::PADDED, 1, &[0]),
            data(b"", false),
        ]
        .concat(),
        [
            headers(1, 0, GET),
            raw(kind::CONTINUATION, 0, 1, &[]),
            raw(kind::CONTINUATION, 0, 1, &[]),
        ]
        .concat(),
    ];
    for bytes in flooded {
        let (code, reason) = error_of(&bytes);
        assert_eq!(reason, REASON_EMPTY_FRAMES_FLOOD);
        assert_eq!(code, ErrorCode::ENHANCE_YOUR_CALM);
        assert!(!envoy_sends_goaway(&WireError::Connection { code, reason }));
    }
    // `empty_continuation_once`: one empty CONTINUATION in a block is fine.
    let once = [
        headers(1, 0, GET),
        raw(kind::CONTINUATION, 0, 1, &[]),
        raw(kind::CONTINUATION, flag::END_HEADERS, 1, &[]),
    ]
    .concat();
    assert_eq!(error_of(&once).1, REASON_EMPTY_FRAMES_FLOOD, "two in a row");
    let once = [
        headers(1, 0, GET),
        raw(kind::CONTINUATION, 0, 1, &[]),
        raw(
            kind::CONTINUATION,
            flag::END_HEADERS,
            1,
            &hex("4003782d610131"),
        ),
    ]
    .concat();
    let (frames, err) = read_all(&once);
    assert_eq!(err, None);
    assert!(
        matches!(frames[..], [Frame::Headers { stream: 1, .. }]),
        "{frames:?}"
    );
}

/// `hpack_*`: Envoy's GOAWAY names the stream whose block failed to decode.
#[test]
fn a_failed_header_block_names_its_stream() {
    let mut reader = FrameReader::new(ReaderConfig::default());
    let mut buf = BytesMut::from(&start()[..]);
    let mut block = GET.to_vec();
    block.extend(hex("ff0a"));
    buf.extend_from_slice(&headers(3, flag::END_HEADERS | flag::END_STREAM, &block));
    assert!(matches!(
        reader.next_frame(&mut buf),
        Ok(Some(Frame::Settings { .. }))
    ));
    assert!(reader.next_frame(&mut buf).is_err());
    assert_eq!(reader.open_block_stream(), Some(3));
}

/// `continuation_512_frames` / `continuation_513_frames`: Envoy closes without a GOAWAY at
/// the 513th CONTINUATION of one block, whatever their size.
#[test]
fn more_than_512_continuations_end_the_connection() {
    let block = |continuations: usize| {
        let mut b = headers(1, flag::END_STREAM, &[GET[0]]);
        let rest = &GET[1..];
        for i in 0..continuations {
            // The rest of GET one byte at a time, then one-byte pieces of a literal.
            let byte = rest.get(i).copied().unwrap_or(0x20);
            let end = if i + 1 == continuations {
                flag::END_HEADERS
            } else {
                0
            };
            b.extend(raw(kind::CONTINUATION, end, 1, &[byte]));
        }
        b
    };
    let err = read_all(&block(513)).1;
    assert_eq!(
        err,
        Some(WireError::Connection {
            code: ErrorCode::ENHANCE_YOUR_CALM,
            reason: REASON_TOO_MANY_CONTINUATIONS
        })
    );
    assert!(!envoy_sends_goaway(&err.expect("error")));
    // 512 are taken (the block's content is not this test's concern).
    let (_, err) = read_all(&block(512));
    assert_ne!(
        err.map(|e| format!("{e}")),
        Some(format!(
            "{}",
            WireError::Connection {
                code: ErrorCode::ENHANCE_YOUR_CALM,
                reason: REASON_TOO_MANY_CONTINUATIONS
            }
        ))
    );
}
