//! Tests of the connection state machine fed typed frames: the normal paths (requests,
//! bodies and flow control, trailers, many streams, settings, drain) and, named after
//! their `malformed_http2` differential cases, Envoy 1.40's answer to each protocol error
//! this layer decides (tests/differential/fixtures/malformed_http2.json). Request
//! validation cases are in `conn_tests_requests`, frame-level protocol errors in
//! `conn_tests_frames`.

use bytes::Bytes;

use baton_config::model::UnderscoreHeaders;

use super::conn::{ConnError, Drain, Event, ResetCause, ServerConfig, ServerConnection};
use super::frame::{ErrorCode, Field, FieldList, Frame, Setting, StreamId};
use super::request::{RequestHead, RequestLimits};

pub(super) const MIB: u32 = 1024 * 1024;

/// Envoy 1.40's defaults as Baton configures them.
pub(super) fn config() -> ServerConfig {
    ServerConfig {
        max_concurrent_streams: 1024,
        initial_stream_window: 16 * MIB,
        initial_connection_window: 24 * MIB,
        stream_error_on_invalid_http_messaging: false,
        override_stream_error_on_invalid_http_message: None,
        limits: RequestLimits {
            max_headers_count: 100,
            max_header_bytes: 60 * 1024,
            allow_connect: false,
            underscores: UnderscoreHeaders::Allow,
        },
    }
}

/// A connection with its opening frames already taken and our SETTINGS acknowledged.
pub(super) fn conn(config: ServerConfig) -> ServerConnection {
    let mut c = ServerConnection::new(config);
    c.recv(Frame::Settings {
        ack: true,
        settings: vec![],
    })
    .unwrap();
    while c.poll_frame().is_some() {}
    c
}

pub(super) fn fields(list: &[(&str, &[u8])]) -> FieldList {
    let fields: Vec<Field> = list
        .iter()
        .map(|(n, v)| Field {
            name: Bytes::copy_from_slice(n.as_bytes()),
            value: Bytes::copy_from_slice(v),
        })
        .collect();
    let list_size = fields
        .iter()
        .map(|f| f.name.len() + f.value.len() + 32)
        .sum();
    FieldList { fields, list_size }
}

/// The differential runner's `req: "METHOD /path"` block plus `extra` fields.
pub(super) fn req(method: &str, path: &str, extra: &[(&str, &[u8])]) -> FieldList {
    let mut list: Vec<(&str, &[u8])> = vec![
        (":method", method.as_bytes()),
        (":scheme", b"http"),
        (":authority", b"test"),
        (":path", path.as_bytes()),
    ];
    list.extend_from_slice(extra);
    fields(&list)
}

pub(super) fn headers(stream: StreamId, fields: FieldList, end_stream: bool) -> Frame {
    Frame::Headers {
        stream,
        fields,
        end_stream,
        priority: None,
    }
}

pub(super) fn data(stream: StreamId, bytes: &[u8], end_stream: bool) -> Frame {
    Frame::Data {
        stream,
        data: Bytes::copy_from_slice(bytes),
        end_stream,
        flow_len: bytes.len() as u32,
    }
}

pub(super) fn frames(c: &mut ServerConnection) -> Vec<Frame> {
    std::iter::from_fn(|| c.poll_frame()).collect()
}

pub(super) fn events(c: &mut ServerConnection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

/// Envoy's "closed, no GOAWAY": the error, and nothing queued to write.
pub(super) fn assert_closed_silently(c: &mut ServerConnection, result: Result<(), ConnError>) {
    let err = result.expect_err("a connection error");
    assert!(!err.goaway, "{err}");
    let out = frames(c);
    assert!(
        !out.iter().any(|f| matches!(f, Frame::GoAway { .. })),
        "{out:?}"
    );
    assert_eq!(c.failure(), Some(err));
}

/// Envoy's "GOAWAY `code` naming `last`, then closed".
pub(super) fn assert_goaway(
    c: &mut ServerConnection,
    result: Result<(), ConnError>,
    code: ErrorCode,
    last: StreamId,
) {
    let err = result.expect_err("a connection error");
    assert!(err.goaway, "{err}");
    assert_eq!(err.code, code);
    let out = frames(c);
    assert!(
        out.contains(&Frame::GoAway {
            last_stream: last,
            code,
            debug: Bytes::new()
        }),
        "{out:?}"
    );
}

/// Envoy's "RST_STREAM `code`, the connection serves on" (a probe request is accepted).
pub(super) fn assert_reset_and_usable(c: &mut ServerConnection, stream: StreamId, code: ErrorCode) {
    let out = frames(c);
    assert!(out.contains(&Frame::RstStream { stream, code }), "{out:?}");
    assert!(c.failure().is_none());
    assert_usable(c, stream + 2);
}

/// A probe GET on `stream` is served.
pub(super) fn assert_usable(c: &mut ServerConnection, stream: StreamId) {
    events(c);
    c.recv(headers(stream, req("GET", "/probe", &[]), true))
        .expect("the connection serves on");
    let ev = events(c);
    assert!(
        matches!(ev.as_slice(), [Event::Request { stream: s, .. }] if *s == stream),
        "{ev:?}"
    );
}

/// The one request event of `stream`.
pub(super) fn request_of(c: &mut ServerConnection, stream: StreamId) -> RequestHead {
    let mut found = None;
    for event in events(c) {
        match event {
            Event::Request {
                stream: s, head, ..
            } if s == stream => found = Some(*head),
            other => panic!("unexpected event {other:?}"),
        }
    }
    found.expect("a request event")
}

// --- the opening and the normal paths ---

#[test]
fn opening_frames_are_envoys_settings_and_connection_window() {
    let mut c = ServerConnection::new(config());
    assert_eq!(
        frames(&mut c),
        [
            Frame::Settings {
                ack: false,
                settings: vec![
                    Setting::HeaderTableSize(4096),
                    Setting::EnableConnectProtocol(0),
                    Setting::MaxConcurrentStreams(1024),
                    Setting::InitialWindowSize(16 * MIB),
                ],
            },
            Frame::WindowUpdate {
                stream: 0,
                increment: 24 * MIB - 65_535,
            },
        ]
    );
    let mut small = config();
    small.max_concurrent_streams = 7;
    small.initial_stream_window = 70_000;
    small.initial_connection_window = 65_535;
    small.limits.allow_connect = true;
    let mut c = ServerConnection::new(small);
    assert_eq!(
        frames(&mut c),
        [Frame::Settings {
            ack: false,
            settings: vec![
                Setting::HeaderTableSize(4096),
                Setting::EnableConnectProtocol(1),
                Setting::MaxConcurrentStreams(7),
                Setting::InitialWindowSize(70_000),
            ],
        }]
    );
}

#[test]
fn baseline_get() {
    let mut c = conn(config());
    c.recv(headers(1, req("GET", "/ok", &[]), true)).unwrap();
    let head = request_of(&mut c, 1);
    assert_eq!(head.parts.method, http::Method::GET);
    assert_eq!(head.parts.uri, "http://test/ok");
    assert_eq!(head.parts.version, http::Version::HTTP_2);
    assert!(head.parts.headers.is_empty());
    assert_eq!(c.active_streams(), 1);
    c.send_headers(1, false).unwrap();
    assert_eq!(
        c.send_capacity(1),
        16_384,
        "the client's default frame size"
    );
    c.sent_data(1, 14, true).unwrap();
    assert_eq!(c.active_streams(), 0);
    assert!(frames(&mut c).is_empty());
}

#[test]
fn baseline_post_with_body() {
    let mut c = conn(config());
    c.recv(headers(1, req("POST", "/post", &[]), false))
        .unwrap();
    c.recv(data(1, b"hello", true)).unwrap();
    let ev = events(&mut c);
    assert!(matches!(
        ev[0],
        Event::Request {
            stream: 1,
            end_stream: false,
            ..
        }
    ));
    assert!(
        matches!(&ev[1], Event::Data { stream: 1, data, end_stream: true } if data == "hello"),
        "{ev:?}"
    );
    c.send_headers(1, true).unwrap();
    assert_eq!(c.active_streams(), 0);
}

#[test]
fn two_streams_in_order() {
    let mut c = conn(config());
    c.recv(headers(1, req("GET", "/one", &[]), true)).unwrap();
    c.send_headers(1, true).unwrap();
    c.recv(headers(3, req("GET", "/two", &[]), true)).unwrap();
    let ev = events(&mut c);
    assert_eq!(ev.len(), 2);
    assert_eq!(c.last_peer_stream(), 3);
}

#[test]
fn request_windows_reopen_in_batches_as_the_body_is_consumed() {
    let mut cfg = config();
    cfg.initial_stream_window = 100;
    cfg.initial_connection_window = 65_535;
    let mut c = conn(cfg);
    c.recv(headers(1, req("POST", "/up", &[]), false)).unwrap();
    c.recv(data(1, &[b'x'; 60], false)).unwrap();
    // More than the stream's window left (40): FLOW_CONTROL_ERROR on the stream.
    c.release_capacity(1, 40);
    assert!(frames(&mut c).is_empty(), "under half the window");
    c.release_capacity(1, 20);
    assert_eq!(
        frames(&mut c),
        [Frame::WindowUpdate {
            stream: 1,
            increment: 60
        }]
    );
    c.recv(data(1, &[b'x'; 100], false)).unwrap();
    c.recv(data(1, b"y", false)).unwrap();
    assert_eq!(
        frames(&mut c),
        [Frame::RstStream {
            stream: 1,
            code: ErrorCode::FLOW_CONTROL_ERROR
        }]
    );
    let ev = events(&mut c);
    assert!(matches!(
        ev.last(),
        Some(Event::LocalReset {
            stream: 1,
            cause: ResetCause::FlowControl,
            ..
        })
    ));
    // The connection window (65,535) reopens once half of it came back.
    c.release_capacity(1, 100);
    assert!(frames(&mut c).is_empty());
    c.recv(headers(3, req("POST", "/up", &[]), false)).unwrap();
    c.recv(data(3, &[b'x'; 100], false)).unwrap();
    let before = c.poll_frame();
    assert_eq!(before, None);
    for _ in 0..330 {
        c.release_capacity(3, 100);
        c.recv(data(3, &[b'x'; 100], false)).unwrap();
    }
    let out = frames(&mut c);
    assert!(
        out.iter().any(
            |f| matches!(f, Frame::WindowUpdate { stream: 0, increment } if *increment >= 32_767)
        ),
        "{out:?}"
    );
}

#[test]
fn data_beyond_the_connection_window_is_a_flow_control_error() {
    let mut cfg = config();
    cfg.initial_connection_window = 65_535;
    let mut c = conn(cfg);
    c.recv(headers(1, req("POST", "/up", &[]), false)).unwrap();
    for _ in 0..3 {
        c.recv(data(1, &[b'x'; 16_384], false)).unwrap();
    }
    let r = c.recv(data(1, &[b'x'; 16_384], false));
    assert_goaway(&mut c, r, ErrorCode::FLOW_CONTROL_ERROR, 1);
}

#[test]
fn padding_is_given_back_at_once() {
    let mut cfg = config();
    cfg.initial_stream_window = 100;
    let mut c = conn(cfg);
    c.recv(headers(1, req("POST", "/pad", &[]), false)).unwrap();
    c.recv(Frame::Data {
        stream: 1,
        data: Bytes::from_static(b"ab"),
        end_stream: false,
        flow_len: 60,
    })
    .unwrap();
    assert_eq!(
        frames(&mut c),
        [Frame::WindowUpdate {
            stream: 1,
            increment: 58
        }]
    );
}

#[test]
fn trailers_forwarded() {
    let mut c = conn(config());
    c.recv(headers(1, req("POST", "/tr", &[]), false)).unwrap();
    c.recv(data(1, b"abc", false)).unwrap();
    c.recv(headers(1, fields(&[("x-trailer", b"1")]), true))
        .unwrap();
    let ev = events(&mut c);
    assert!(
        matches!(&ev[2], Event::Trailers { stream: 1, trailers } if trailers["x-trailer"] == "1"),
        "{ev:?}"
    );
}

#[test]
fn trailers_with_pseudo_header() {
    let mut c = conn(config());
    c.recv(headers(1, req("POST", "/trp", &[]), false)).unwrap();
    c.recv(data(1, b"abc", false)).unwrap();
    let r = c.recv(headers(1, fields(&[(":path", b"/x")]), true));
    assert_closed_silently(&mut c, r);
}

#[test]
fn trailers_without_end_stream() {
    let mut c = conn(config());
    c.recv(headers(1, req("POST", "/trn", &[]), false)).unwrap();
    c.recv(data(1, b"abc", false)).unwrap();
    let r = c.recv(headers(1, fields(&[("x-trailer", b"1")]), false));
    assert_closed_silently(&mut c, r);
}

#[test]
fn many_streams_and_the_concurrent_stream_limit() {
    let mut cfg = config();
    cfg.max_concurrent_streams = 100;
    let mut c = conn(cfg);
    for i in 0..100 {
        c.recv(headers(1 + 2 * i, req("GET", "/m", &[]), true))
            .unwrap();
    }
    assert_eq!(events(&mut c).len(), 100);
    // Finished streams leave the table; the table never holds more than the limit.
    for i in 0..50 {
        c.send_headers(1 + 2 * i, true).unwrap();
    }
    for i in 100..150 {
        c.recv(headers(1 + 2 * i, req("GET", "/m", &[]), true))
            .unwrap();
    }
    assert_eq!(c.active_streams(), 100);
    // One over: Envoy closes the connection without a GOAWAY (see `h2_refusal`).
    let r = c.recv(headers(301, req("GET", "/m", &[]), true));
    assert_closed_silently(&mut c, r);
}

#[test]
fn settings_changes_move_open_stream_windows() {
    let mut c = conn(config());
    c.recv(headers(1, req("GET", "/s", &[]), true)).unwrap();
    c.send_headers(1, false).unwrap();
    assert_eq!(c.send_capacity(1), 16_384);
    c.recv(Frame::Settings {
        ack: false,
        settings: vec![
            Setting::InitialWindowSize(1000),
            Setting::MaxFrameSize(32_768),
        ],
    })
    .unwrap();
    assert_eq!(
        frames(&mut c),
        [Frame::Settings {
            ack: true,
            settings: vec![]
        }]
    );
    assert_eq!(c.send_capacity(1), 1000);
    c.sent_data(1, 1000, false).unwrap();
    assert_eq!(c.send_capacity(1), 0);
    assert!(c.sent_data(1, 1, false).is_err());
    // Smaller again: the window goes below zero and a WINDOW_UPDATE must make it up.
    c.recv(Frame::Settings {
        ack: false,
        settings: vec![Setting::InitialWindowSize(500)],
    })
    .unwrap();
    c.recv(Frame::WindowUpdate {
        stream: 1,
        increment: 600,
    })
    .unwrap();
    assert_eq!(c.send_capacity(1), 100);
    c.recv(Frame::WindowUpdate {
        stream: 0,
        increment: 1 << 20,
    })
    .unwrap();
    assert_eq!(c.peer_settings().max_frame_size, 32_768);
    assert_eq!(c.peer_settings().initial_window_size, 500);
    // The connection window: 65,535 - 1000 + 2^20.
    c.recv(Frame::WindowUpdate {
        stream: 1,
        increment: 100_000,
    })
    .unwrap();
    assert_eq!(c.send_capacity(1), 32_768);
    c.recv(Frame::Settings {
        ack: true,
        settings: vec![],
    })
    .unwrap();
    assert!(c.settings_acked());
}

#[test]
fn graceful_drain_sends_envoys_two_goaways() {
    let mut c = conn(config());
    c.recv(headers(1, req("GET", "/d", &[]), true)).unwrap();
    c.start_drain();
    let out = frames(&mut c);
    assert_eq!(
        out,
        [
            Frame::GoAway {
                last_stream: (1 << 31) - 1,
                code: ErrorCode::NO_ERROR,
                debug: Bytes::new()
            },
            Frame::Ping {
                ack: false,
                payload: super::conn_send::DRAIN_PING
            },
        ]
    );
    // Streams opened before the PING's ack are still served.
    c.recv(headers(3, req("GET", "/d", &[]), true)).unwrap();
    c.recv(Frame::Ping {
        ack: true,
        payload: super::conn_send::DRAIN_PING,
    })
    .unwrap();
    assert_eq!(
        frames(&mut c),
        [Frame::GoAway {
            last_stream: 3,
            code: ErrorCode::NO_ERROR,
            debug: Bytes::new()
        }]
    );
    assert_eq!(c.drain_state(), Drain::Final(3));
    // Later streams are ignored, their DATA too.
    c.recv(headers(5, req("POST", "/late", &[]), false))
        .unwrap();
    c.recv(data(5, b"late", true)).unwrap();
    assert_eq!(events(&mut c).len(), 2);
    assert!(frames(&mut c).is_empty());
    assert!(!c.is_drained());
    c.send_headers(1, true).unwrap();
    c.send_headers(3, true).unwrap();
    assert!(c.is_drained());
}

#[test]
fn application_reset_queues_rst_stream() {
    let mut c = conn(config());
    c.recv(headers(1, req("GET", "/r", &[]), true)).unwrap();
    c.reset(1, ErrorCode::CANCEL);
    assert_eq!(
        frames(&mut c),
        [Frame::RstStream {
            stream: 1,
            code: ErrorCode::CANCEL
        }]
    );
    assert_eq!(c.active_streams(), 0);
    c.reset(1, ErrorCode::CANCEL);
    assert!(frames(&mut c).is_empty());
}

#[test]
fn stream_windows_are_65535_until_our_settings_are_acked() {
    // Measured on Envoy 1.40: before the client's SETTINGS ack a stream takes 65,535
    // bytes and gets WINDOW_UPDATEs once half of that is consumed; after it, 16 MiB.
    let mut c = ServerConnection::new(config());
    frames(&mut c);
    c.recv(headers(1, req("POST", "/pre", &[]), false)).unwrap();
    c.recv(headers(3, req("POST", "/pre", &[]), false)).unwrap();
    c.recv(data(1, &[b'x'; 32_767], false)).unwrap();
    c.release_capacity(1, 32_767);
    assert_eq!(
        frames(&mut c),
        [Frame::WindowUpdate {
            stream: 1,
            increment: 32_767
        }]
    );
    c.recv(data(1, &[b'x'; 65_535], false)).unwrap();
    c.recv(data(1, b"x", false)).unwrap();
    assert_eq!(
        frames(&mut c),
        [Frame::RstStream {
            stream: 1,
            code: ErrorCode::FLOW_CONTROL_ERROR
        }]
    );
    c.recv(Frame::Settings {
        ack: true,
        settings: vec![],
    })
    .unwrap();
    for _ in 0..10 {
        c.recv(data(3, &[b'x'; 16_384], false)).unwrap();
        c.release_capacity(3, 16_384);
    }
    assert!(frames(&mut c).is_empty(), "16 MiB windows: no update yet");
}

#[test]
fn a_response_ending_before_the_request_resets_with_no_error() {
    // Measured on Envoy 1.40: HEADERS, DATA with END_STREAM, RST_STREAM NO_ERROR; the
    // request's later DATA is ignored and the connection serves on.
    let mut c = conn(config());
    c.recv(headers(1, req("POST", "/direct", &[]), false))
        .unwrap();
    events(&mut c);
    c.send_headers(1, false).unwrap();
    c.sent_data(1, 2, true).unwrap();
    assert_eq!(
        frames(&mut c),
        [Frame::RstStream {
            stream: 1,
            code: ErrorCode::NO_ERROR
        }]
    );
    assert!(matches!(
        events(&mut c).as_slice(),
        [Event::LocalReset {
            stream: 1,
            cause: ResetCause::ResponseComplete,
            ..
        }]
    ));
    c.recv(data(1, b"abc", true)).unwrap();
    assert!(events(&mut c).is_empty());
    assert_usable(&mut c, 3);
}

#[test]
fn closed_streams_leave_no_state() {
    // 10,000 requests one after the other: the table holds one stream at a time, the
    // queues what one exchange needs.
    let mut c = conn(config());
    for i in 0..10_000 {
        let id = 1 + 2 * i;
        c.recv(headers(id, req("POST", "/seq", &[]), false))
            .unwrap();
        c.recv(data(id, b"body", true)).unwrap();
        events(&mut c);
        c.release_capacity(id, 4);
        c.send_headers(id, false).unwrap();
        c.sent_data(id, 4, true).unwrap();
        frames(&mut c);
    }
    assert_eq!(c.active_streams(), 0);
    assert!(c.streams.capacity() <= 4, "{}", c.streams.capacity());
    assert!(c.events.capacity() <= 4, "{}", c.events.capacity());
    assert!(c.frames.capacity() <= 8, "{}", c.frames.capacity());
}

#[test]
fn interim_headers_then_the_response() {
    let mut c = conn(config());
    c.recv(headers(
        1,
        req("POST", "/continue", &[("expect", b"100-continue")]),
        false,
    ))
    .unwrap();
    c.send_interim_headers(1).unwrap();
    c.recv(data(1, b"abc", true)).unwrap();
    c.send_headers(1, false).unwrap();
    assert!(c.send_interim_headers(1).is_err());
    assert!(
        c.send_headers(1, false).is_err(),
        "a second response HEADERS"
    );
    c.send_headers(1, true).unwrap();
    assert_eq!(c.active_streams(), 0);
    assert!(frames(&mut c).is_empty());
}

#[test]
fn default_windows_reopen_at_half_as_envoy_does() {
    // Measured on Envoy 1.40 (SETTINGS acked, body forwarded as it came): the stream's
    // WINDOW_UPDATE after 8 MiB consumed, the connection's after 12 MiB.
    let mut c = conn(config());
    c.recv(headers(1, req("POST", "/sink", &[]), false))
        .unwrap();
    let chunk = [b'x'; 16_384];
    let mut updates = Vec::new();
    for i in 1..=800u32 {
        c.recv(data(1, &chunk, false)).unwrap();
        c.release_capacity(1, 16_384);
        for f in frames(&mut c) {
            updates.push((i * 16_384, f));
        }
    }
    assert_eq!(
        updates,
        [
            (
                8 * MIB,
                Frame::WindowUpdate {
                    stream: 1,
                    increment: 8 * MIB
                }
            ),
            (
                12 * MIB,
                Frame::WindowUpdate {
                    stream: 0,
                    increment: 12 * MIB
                }
            ),
        ]
    );
}
