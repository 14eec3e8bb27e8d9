//! Frame writer tests: every frame type written and read back by the reader, response
//! heads split into CONTINUATION frames, DATA headers in front of a payload.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::*;
use crate::http::lean_h2::frame::{ErrorCode, FieldList, Frame, Priority, Setting};
use crate::http::lean_h2::wire::tests::read_all;
use crate::http::lean_h2::wire::{
    field_pairs, flag, kind, FrameReader, ReaderConfig, FRAME_HEADER_LEN,
};

/// Writes `frames` behind a SETTINGS and reads them back.
fn writer_round_trip(frames: &[Frame]) -> Vec<Frame> {
    let mut writer = FrameWriter::new();
    let mut out = BytesMut::new();
    writer.write(
        &Frame::Settings {
            ack: false,
            settings: vec![],
        },
        &mut out,
    );
    for f in frames {
        writer.write(f, &mut out);
    }
    let mut reader = FrameReader::new(ReaderConfig {
        expect_preface: false,
        ..ReaderConfig::default()
    });
    let mut read = Vec::new();
    while let Some(f) = reader.next_frame(&mut out).expect("valid") {
        read.push(f);
    }
    assert!(out.is_empty());
    read.remove(0);
    read
}

#[test]
fn writer_round_trips_every_frame_type() {
    let priority = Priority {
        dependency: 3,
        exclusive: true,
        weight: 7,
    };
    let mut fields = FieldList::default();
    for (n, v) in [(":method", "GET"), ("x-custom", "v")] {
        fields.fields.push(crate::http::lean_h2::frame::Field {
            name: Bytes::from_static(n.as_bytes()),
            value: Bytes::from_static(v.as_bytes()),
        });
        fields.list_size += n.len() + v.len() + 32;
    }
    let frames = vec![
        Frame::Data {
            stream: 1,
            data: Bytes::from_static(b"abc"),
            end_stream: true,
            flow_len: 3,
        },
        Frame::Headers {
            stream: 3,
            fields,
            end_stream: false,
            priority: Some(priority),
        },
        Frame::Priority {
            stream: 5,
            priority,
        },
        Frame::RstStream {
            stream: 1,
            code: ErrorCode::CANCEL,
        },
        Frame::Settings {
            ack: false,
            settings: vec![
                Setting::MaxConcurrentStreams(100),
                Setting::EnableConnectProtocol(1),
            ],
        },
        Frame::Settings {
            ack: true,
            settings: vec![],
        },
        Frame::PushPromise {
            stream: 1,
            promised: 2,
        },
        Frame::Ping {
            ack: true,
            payload: [9; 8],
        },
        Frame::GoAway {
            last_stream: 7,
            code: ErrorCode::NO_ERROR,
            debug: Bytes::from_static(b"bye"),
        },
        Frame::WindowUpdate {
            stream: 0,
            increment: 65_535,
        },
        Frame::Unknown {
            kind: 0xfa,
            stream: 9,
        },
    ];
    assert_eq!(writer_round_trip(&frames), frames);
}

#[test]
fn response_headers_split_into_continuation_by_peer_max_frame_size() {
    let mut writer = FrameWriter::new();
    let mut h = HeaderMap::new();
    h.insert("server", HeaderValue::from_static("envoy"));
    let big = "v".repeat(40_000);
    h.insert("x-big", HeaderValue::from_str(&big).expect("value"));
    let mut out = BytesMut::new();
    writer.write(
        &Frame::Settings {
            ack: false,
            settings: vec![],
        },
        &mut out,
    );
    let after_settings = out.len();
    writer.response_headers(1, StatusCode::OK, &h, false, &mut out);
    // HEADERS, then CONTINUATION frames of at most 16,384 bytes.
    assert_eq!(out[after_settings + 3], kind::HEADERS);
    assert_eq!(out[after_settings + 4] & flag::END_HEADERS, 0);
    writer.trailers(1, &HeaderMap::new(), &mut out);
    let mut reader = FrameReader::new(ReaderConfig {
        expect_preface: false,
        ..ReaderConfig::default()
    });
    reader.next_frame(&mut out).expect("settings");
    let Ok(Some(Frame::Headers {
        fields,
        end_stream: false,
        ..
    })) = reader.next_frame(&mut out)
    else {
        panic!("no response");
    };
    let pairs: Vec<_> = field_pairs(&fields).collect();
    assert_eq!(pairs[0], (&b":status"[..], &b"200"[..]));
    assert_eq!(pairs[2].1.len(), 40_000);
    let Ok(Some(Frame::Headers {
        fields,
        end_stream: true,
        ..
    })) = reader.next_frame(&mut out)
    else {
        panic!("no trailers");
    };
    assert!(fields.fields.is_empty());
    assert!(out.is_empty());
}

#[test]
fn data_frame_header_goes_in_front_of_the_payload() {
    let header = data_frame_header(5, 3, true);
    let mut b = header.to_vec();
    b.extend_from_slice(b"abc");
    let (frames, _) = read_all(&b);
    assert_eq!(
        frames,
        [Frame::Data {
            stream: 5,
            data: Bytes::from_static(b"abc"),
            end_stream: true,
            flow_len: 3
        }]
    );
}

#[test]
fn settings_header_table_size_zero() {
    // Envoy answers normally; the response blocks must then use no dynamic table.
    let mut writer = FrameWriter::new();
    writer.set_peer_header_table_size(0);
    let mut h = HeaderMap::new();
    h.insert("server", HeaderValue::from_static("envoy"));
    let mut out = BytesMut::new();
    writer.write(
        &Frame::Settings {
            ack: false,
            settings: vec![],
        },
        &mut out,
    );
    let after_settings = out.len();
    writer.response_headers(1, StatusCode::OK, &h, true, &mut out);
    writer.response_headers(3, StatusCode::OK, &h, true, &mut out);
    // The first block opens with a size update to 0.
    assert_eq!(out[after_settings + FRAME_HEADER_LEN], 0x20);
    let mut reader = FrameReader::new(ReaderConfig {
        expect_preface: false,
        header_table_size: 0,
        ..ReaderConfig::default()
    });
    reader.next_frame(&mut out).expect("settings");
    for _ in 0..2 {
        let Ok(Some(Frame::Headers { fields, .. })) = reader.next_frame(&mut out) else {
            panic!("no response");
        };
        assert_eq!(fields.fields.len(), 2);
    }
}
