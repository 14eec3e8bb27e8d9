//! Envoy 1.40's answers to protocol errors in frames (`malformed_http2` differential
//! cases, one test each, named after the case): frames on the wrong stream or in the
//! wrong state, flow control, SETTINGS, PING, PRIORITY, GOAWAY, unknown frames, what the
//! wire layer reports, and Envoy's header limits.

use bytes::Bytes;

use super::conn::{Event, ResetCause};
use super::conn_tests::{
    assert_closed_silently, assert_goaway, assert_reset_and_usable, assert_usable, config, conn,
    data, events, frames, headers, req, request_of,
};
use super::frame::{ErrorCode, Frame, Priority, Setting, StreamId, WireError};
use super::request::RefusalCause;
use super::wire;

// --- malformed_http2: frames on the wrong stream, stream states (RFC 9113 §5.1) ---

#[test]
fn data_on_half_closed_stream() {
    let mut c = conn(config());
    c.recv(headers(1, req("GET", "/__probe-half-closed", &[]), true))
        .unwrap();
    let r = c.recv(data(1, b"late", true));
    assert_goaway(&mut c, r, ErrorCode::STREAM_CLOSED, 1);
}

#[test]
fn data_on_closed_stream() {
    let mut c = conn(config());
    c.recv(headers(1, req("GET", "/closed", &[]), true))
        .unwrap();
    c.send_headers(1, true).unwrap();
    c.recv(data(1, b"late", true)).unwrap();
    assert!(frames(&mut c).is_empty());
    assert_usable(&mut c, 3);
}

#[test]
fn headers_on_closed_stream() {
    let mut c = conn(config());
    c.recv(headers(1, req("GET", "/closed1", &[]), true))
        .unwrap();
    c.send_headers(1, true).unwrap();
    events(&mut c);
    c.recv(headers(1, req("GET", "/closed2", &[]), true))
        .unwrap();
    assert!(events(&mut c).is_empty());
    assert!(frames(&mut c).is_empty());
    assert_usable(&mut c, 3);
}

#[test]
fn data_on_idle_stream() {
    let mut c = conn(config());
    let r = c.recv(data(3, b"idle", true));
    assert_goaway(&mut c, r, ErrorCode::PROTOCOL_ERROR, 0);
}

#[test]
fn data_on_stream_zero() {
    let mut c = conn(config());
    let r = c.recv(data(0, b"zero", true));
    assert_goaway(&mut c, r, ErrorCode::PROTOCOL_ERROR, 0);
}

#[test]
fn headers_on_stream_zero() {
    let mut c = conn(config());
    let r = c.recv(headers(0, req("GET", "/s0", &[]), true));
    assert_closed_silently(&mut c, r);
}

#[test]
fn headers_on_even_stream() {
    let mut c = conn(config());
    let r = c.recv(headers(2, req("GET", "/even", &[]), true));
    assert_closed_silently(&mut c, r);
}

#[test]
fn decreasing_stream_id() {
    let mut c = conn(config());
    c.recv(headers(5, req("GET", "/five", &[]), true)).unwrap();
    c.send_headers(5, true).unwrap();
    events(&mut c);
    c.recv(headers(3, req("GET", "/three", &[]), true)).unwrap();
    assert!(events(&mut c).is_empty());
    assert!(frames(&mut c).is_empty());
    assert_usable(&mut c, 7);
}

#[test]
fn rst_on_idle_stream() {
    let mut c = conn(config());
    let r = c.recv(Frame::RstStream {
        stream: 1,
        code: ErrorCode::CANCEL,
    });
    assert_closed_silently(&mut c, r);
}

#[test]
fn rst_on_stream_zero() {
    let mut c = conn(config());
    let r = c.recv(Frame::RstStream {
        stream: 0,
        code: ErrorCode::CANCEL,
    });
    assert_closed_silently(&mut c, r);
}

#[test]
fn rst_from_the_client_is_an_event() {
    let mut c = conn(config());
    c.recv(headers(1, req("POST", "/r", &[]), false)).unwrap();
    events(&mut c);
    c.recv(Frame::RstStream {
        stream: 1,
        code: ErrorCode::CANCEL,
    })
    .unwrap();
    let ev = events(&mut c);
    assert!(matches!(
        ev.as_slice(),
        [Event::PeerReset {
            stream: 1,
            code: ErrorCode::CANCEL
        }]
    ));
    // A closed stream's reset is ignored.
    c.recv(Frame::RstStream {
        stream: 1,
        code: ErrorCode::CANCEL,
    })
    .unwrap();
    assert_usable(&mut c, 3);
}

// --- flow control (RFC 9113 §6.9) ---

#[test]
fn window_update_overflow_connection() {
    let mut c = conn(config());
    let r = c.recv(Frame::WindowUpdate {
        stream: 0,
        increment: (1 << 31) - 1,
    });
    assert_closed_silently(&mut c, r);
}

#[test]
fn window_update_overflow_stream() {
    let mut c = conn(config());
    c.recv(headers(1, req("POST", "/wuo", &[]), false)).unwrap();
    let r = c.recv(Frame::WindowUpdate {
        stream: 1,
        increment: (1 << 31) - 1,
    });
    assert_closed_silently(&mut c, r);
}

#[test]
fn window_update_zero_connection() {
    let mut c = conn(config());
    let r = c.recv(Frame::WindowUpdate {
        stream: 0,
        increment: 0,
    });
    assert_closed_silently(&mut c, r);
}

#[test]
fn window_update_zero_stream() {
    let mut c = conn(config());
    c.recv(headers(1, req("POST", "/wuz", &[]), false)).unwrap();
    let r = c.recv(Frame::WindowUpdate {
        stream: 1,
        increment: 0,
    });
    assert_closed_silently(&mut c, r);
}

#[test]
fn window_update_idle_stream() {
    let mut c = conn(config());
    let r = c.recv(Frame::WindowUpdate {
        stream: 7,
        increment: 100,
    });
    assert_closed_silently(&mut c, r);
}

// --- SETTINGS (RFC 9113 §6.5) ---

fn settings(list: &[Setting]) -> Frame {
    Frame::Settings {
        ack: false,
        settings: list.to_vec(),
    }
}

#[test]
fn settings_enable_push_2() {
    let mut c = conn(config());
    let r = c.recv(settings(&[Setting::EnablePush(2)]));
    assert_closed_silently(&mut c, r);
}

#[test]
fn settings_initial_window_too_big() {
    let mut c = conn(config());
    let r = c.recv(settings(&[Setting::InitialWindowSize(1 << 31)]));
    assert_closed_silently(&mut c, r);
}

#[test]
fn settings_max_frame_size_too_small() {
    let mut c = conn(config());
    let r = c.recv(settings(&[Setting::MaxFrameSize(16_383)]));
    assert_closed_silently(&mut c, r);
}

#[test]
fn settings_max_frame_size_too_big() {
    let mut c = conn(config());
    let r = c.recv(settings(&[Setting::MaxFrameSize(1 << 24)]));
    assert_closed_silently(&mut c, r);
}

#[test]
fn settings_unknown_id_ignored() {
    let mut c = conn(config());
    c.recv(settings(&[Setting::Unknown(153, 1)])).unwrap();
    assert_eq!(
        frames(&mut c),
        [Frame::Settings {
            ack: true,
            settings: vec![]
        }]
    );
    assert_usable(&mut c, 1);
}

#[test]
fn settings_header_table_size_zero() {
    let mut c = conn(config());
    c.recv(settings(&[Setting::HeaderTableSize(0)])).unwrap();
    assert_eq!(c.peer_settings().header_table_size, 0);
    assert_usable(&mut c, 1);
}

#[test]
fn settings_ack_with_payload() {
    let mut c = conn(config());
    let r = c.recv(Frame::Settings {
        ack: true,
        settings: vec![Setting::HeaderTableSize(4096)],
    });
    assert_goaway(&mut c, r, ErrorCode::FRAME_SIZE_ERROR, 0);
}

// --- PING, PRIORITY, GOAWAY, unknown frames ---

#[test]
fn ping_acked() {
    let mut c = conn(config());
    let payload = [1, 2, 3, 4, 5, 6, 7, 8];
    c.recv(Frame::Ping {
        ack: false,
        payload,
    })
    .unwrap();
    assert_eq!(frames(&mut c), [Frame::Ping { ack: true, payload }]);
}

#[test]
fn ping_ack_unsolicited_ignored() {
    let mut c = conn(config());
    c.recv(Frame::Ping {
        ack: true,
        payload: [1, 2, 3, 4, 5, 6, 7, 8],
    })
    .unwrap();
    assert!(frames(&mut c).is_empty());
    assert_usable(&mut c, 1);
}

#[test]
fn unknown_frame_type_ignored() {
    let mut c = conn(config());
    c.recv(Frame::Unknown {
        kind: 250,
        stream: 0,
    })
    .unwrap();
    assert_usable(&mut c, 1);
}

#[test]
fn unknown_frame_type_on_stream_ignored() {
    let mut c = conn(config());
    c.recv(Frame::Unknown {
        kind: 250,
        stream: 1,
    })
    .unwrap();
    assert_usable(&mut c, 1);
}

fn priority(dependency: StreamId) -> Priority {
    Priority {
        dependency,
        exclusive: false,
        weight: 15,
    }
}

#[test]
fn priority_self_dependency() {
    let mut c = conn(config());
    c.recv(Frame::Priority {
        stream: 1,
        priority: priority(1),
    })
    .unwrap();
    assert!(frames(&mut c).is_empty());
    assert_usable(&mut c, 1);
}

#[test]
fn priority_on_stream_zero() {
    let mut c = conn(config());
    c.recv(Frame::Priority {
        stream: 0,
        priority: priority(1),
    })
    .unwrap();
    assert_usable(&mut c, 1);
}

#[test]
fn priority_on_idle_stream_ignored() {
    let mut c = conn(config());
    c.recv(Frame::Priority {
        stream: 9,
        priority: priority(0),
    })
    .unwrap();
    assert_usable(&mut c, 1);
}

#[test]
fn headers_priority_self_dependency() {
    let mut c = conn(config());
    let r = c.recv(Frame::Headers {
        stream: 1,
        fields: req("GET", "/hpsd", &[]),
        end_stream: true,
        priority: Some(priority(1)),
    });
    assert_closed_silently(&mut c, r);
}

#[test]
fn headers_with_priority_forwarded() {
    let mut c = conn(config());
    c.recv(Frame::Headers {
        stream: 1,
        fields: req("GET", "/hp", &[]),
        end_stream: true,
        priority: Some(Priority {
            dependency: 0,
            exclusive: false,
            weight: 199,
        }),
    })
    .unwrap();
    assert_eq!(request_of(&mut c, 1).parts.uri.path(), "/hp");
}

#[test]
fn goaway_from_client() {
    let mut c = conn(config());
    c.recv(headers(1, req("GET", "/ga", &[]), true)).unwrap();
    events(&mut c);
    c.recv(Frame::GoAway {
        last_stream: 0,
        code: ErrorCode::NO_ERROR,
        debug: Bytes::new(),
    })
    .unwrap();
    let ev = events(&mut c);
    assert!(matches!(
        ev.as_slice(),
        [Event::GoAway {
            last_stream: 0,
            code: ErrorCode::NO_ERROR,
            ..
        }]
    ));
    // Stream 1 is still answered.
    c.send_headers(1, true).unwrap();
}

#[test]
fn push_promise_from_a_client_closes_the_connection() {
    // Measured on Envoy 1.40: closed without a GOAWAY.
    let mut c = conn(config());
    let r = c.recv(Frame::PushPromise {
        stream: 1,
        promised: 2,
    });
    assert_closed_silently(&mut c, r);
}

#[test]
fn headers_on_half_closed_stream_closes_the_connection() {
    // Measured on Envoy 1.40: closed without a GOAWAY (DATA there gets GOAWAY
    // STREAM_CLOSED, see data_on_half_closed_stream).
    let mut c = conn(config());
    c.recv(headers(1, req("GET", "/hole", &[]), true)).unwrap();
    let r = c.recv(headers(1, req("GET", "/hole2", &[]), true));
    assert_closed_silently(&mut c, r);
}

#[test]
fn window_update_on_even_idle_stream() {
    // Measured on Envoy 1.40: closed without a GOAWAY.
    let mut c = conn(config());
    let r = c.recv(Frame::WindowUpdate {
        stream: 2,
        increment: 5,
    });
    assert_closed_silently(&mut c, r);
}

#[test]
fn frames_for_closed_streams_are_ignored() {
    // Measured on Envoy 1.40: WINDOW_UPDATE 0 and RST_STREAM on a finished stream.
    let mut c = conn(config());
    c.recv(headers(1, req("GET", "/direct", &[]), true))
        .unwrap();
    c.send_headers(1, true).unwrap();
    c.recv(Frame::WindowUpdate {
        stream: 1,
        increment: 0,
    })
    .unwrap();
    c.recv(Frame::RstStream {
        stream: 1,
        code: ErrorCode::CANCEL,
    })
    .unwrap();
    assert!(frames(&mut c).is_empty());
    assert_usable(&mut c, 3);
}

// --- what the wire layer reports (the GOAWAY or close is decided here) ---

fn wire(code: ErrorCode, reason: &'static str) -> WireError {
    WireError::Connection { code, reason }
}

#[test]
fn settings_on_stream() {
    let mut c = conn(config());
    let r = c.wire_error(
        &wire(ErrorCode::PROTOCOL_ERROR, wire::REASON_SETTINGS_ON_STREAM),
        None,
    );
    assert_closed_silently(&mut c, r);
}

#[test]
fn ping_on_stream() {
    let mut c = conn(config());
    let r = c.wire_error(
        &wire(ErrorCode::PROTOCOL_ERROR, wire::REASON_PING_ON_STREAM),
        None,
    );
    assert_closed_silently(&mut c, r);
}

#[test]
fn goaway_on_stream() {
    let mut c = conn(config());
    let r = c.wire_error(
        &wire(ErrorCode::PROTOCOL_ERROR, wire::REASON_GOAWAY_ON_STREAM),
        None,
    );
    assert_closed_silently(&mut c, r);
}

/// The wire layer refuses these before the state machine sees a frame; Envoy closes
/// without a GOAWAY for each (`headers_on_stream_zero`, `rst_on_stream_zero`).
#[test]
fn wire_errors_on_stream_zero_close_silently() {
    for reason in [
        wire::REASON_HEADERS_STREAM_ZERO,
        wire::REASON_RST_STREAM_ZERO,
        wire::REASON_PREFACE,
    ] {
        let mut c = conn(config());
        let r = c.wire_error(&wire(ErrorCode::PROTOCOL_ERROR, reason), None);
        assert_closed_silently(&mut c, r);
    }
}

#[test]
fn ping_bad_length() {
    let mut c = conn(config());
    let r = c.wire_error(&wire(ErrorCode::FRAME_SIZE_ERROR, "bad length"), None);
    assert_goaway(&mut c, r, ErrorCode::FRAME_SIZE_ERROR, 0);
}

#[test]
fn rst_bad_length() {
    let mut c = conn(config());
    c.recv(headers(1, req("GET", "/rbl", &[]), false)).unwrap();
    let r = c.wire_error(&wire(ErrorCode::FRAME_SIZE_ERROR, "bad length"), None);
    assert_goaway(&mut c, r, ErrorCode::FRAME_SIZE_ERROR, 1);
}

#[test]
fn hpack_index_out_of_range() {
    // The header block of stream 1 fails to decode: Envoy's GOAWAY names stream 1.
    let mut c = conn(config());
    let r = c.wire_error(&wire(ErrorCode::COMPRESSION_ERROR, "hpack"), Some(1));
    assert_goaway(&mut c, r, ErrorCode::COMPRESSION_ERROR, 1);
}

#[test]
fn continuation_without_headers() {
    let mut c = conn(config());
    let r = c.wire_error(&wire(ErrorCode::PROTOCOL_ERROR, "continuation"), None);
    assert_goaway(&mut c, r, ErrorCode::PROTOCOL_ERROR, 0);
}

#[test]
fn headers_interrupted_by_ping() {
    let mut c = conn(config());
    let r = c.wire_error(&wire(ErrorCode::PROTOCOL_ERROR, "continuation"), Some(1));
    assert_goaway(&mut c, r, ErrorCode::PROTOCOL_ERROR, 1);
    // A failed connection stays failed.
    assert!(c.recv(headers(3, req("GET", "/x", &[]), true)).is_err());
}

#[test]
fn header_block_over_limit() {
    let mut c = conn(config());
    let (a, b, c3, d) = (
        vec![b'a'; 20_000],
        vec![b'b'; 20_000],
        vec![b'c'; 20_000],
        vec![b'd'; 10_000],
    );
    let block = req(
        "GET",
        "/big",
        &[("x-a", &a), ("x-b", &b), ("x-c", &c3), ("x-d", &d)],
    );
    c.recv(headers(1, block, true)).unwrap();
    let ev = events(&mut c);
    assert!(matches!(
        ev.as_slice(),
        [Event::LocalReset {
            stream: 1,
            cause: ResetCause::Refused(RefusalCause::HeaderListTooLarge),
            ..
        }]
    ));
    assert_reset_and_usable(&mut c, 1, ErrorCode::INTERNAL_ERROR);
}

#[test]
fn more_headers_than_max_headers_count() {
    let mut c = conn(config());
    let names: Vec<String> = (0..100).map(|i| format!("x-h{i}")).collect();
    let extra: Vec<(&str, &[u8])> = names
        .iter()
        .map(|n| (n.as_str(), b"v".as_slice()))
        .collect();
    c.recv(headers(1, req("GET", "/many", &extra), true))
        .unwrap();
    assert_reset_and_usable(&mut c, 1, ErrorCode::INTERNAL_ERROR);
}

#[test]
fn a_wire_stream_error_resets_only_its_stream() {
    let mut c = conn(config());
    c.recv(headers(1, req("POST", "/w", &[]), false)).unwrap();
    events(&mut c);
    c.wire_error(
        &WireError::Stream {
            stream: 1,
            code: ErrorCode::PROTOCOL_ERROR,
            reason: "test",
        },
        None,
    )
    .unwrap();
    assert_reset_and_usable(&mut c, 1, ErrorCode::PROTOCOL_ERROR);
}

/// A wire-layer connection error (`code`, with the header block of `open_block` being
/// received) answered with GOAWAY `code` naming `last`, as in Envoy's fixture.
macro_rules! wire_case {
    ($($name:ident: $code:ident, $open_block:expr, $last:expr;)*) => {$(
        #[test]
        fn $name() {
            let mut c = conn(config());
            let r = c.wire_error(&wire(ErrorCode::$code, stringify!($name)), $open_block);
            assert_goaway(&mut c, r, ErrorCode::$code, $last);
        }
    )*};
}

wire_case! {
    priority_bad_length: FRAME_SIZE_ERROR, None, 0;
    settings_bad_length: FRAME_SIZE_ERROR, None, 0;
    window_update_bad_length: FRAME_SIZE_ERROR, None, 0;
    hpack_index_zero: COMPRESSION_ERROR, Some(1), 1;
    hpack_table_size_update_in_middle: COMPRESSION_ERROR, Some(1), 1;
    hpack_table_size_update_too_large: COMPRESSION_ERROR, Some(1), 1;
    hpack_truncated_literal: COMPRESSION_ERROR, Some(1), 1;
    continuation_on_other_stream: PROTOCOL_ERROR, Some(1), 1;
    headers_interrupted_by_unknown_frame: PROTOCOL_ERROR, Some(1), 1;
}
