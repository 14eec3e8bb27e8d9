//! Request validation through the connection, one test per `malformed_http2` differential
//! case about a request's header block or its content-length, asserting Envoy 1.40's
//! answer from its fixture: closed without GOAWAY by default for a malformed request,
//! RST_STREAM PROTOCOL_ERROR with stream errors enabled, RST_STREAM INTERNAL_ERROR for
//! Envoy's own limits, or the request as forwarded.

use baton_config::model::UnderscoreHeaders;

use super::conn::{Event, ResetCause, ServerConfig, ServerConnection};
use super::conn_tests::{
    assert_closed_silently, assert_reset_and_usable, config, conn, data, events, fields, frames,
    headers, req, request_of,
};
use super::frame::{ErrorCode, FieldList, Frame};
use super::request::{RefusalCause, RequestHead};

/// A header block on stream 1 that Envoy refuses as malformed: by default the connection
/// closes without a GOAWAY.
fn malformed_closes(block: FieldList) {
    let mut c = conn(config());
    let r = c.recv(headers(1, block, true));
    assert_closed_silently(&mut c, r);
}

/// The same block with `config`: the stream is reset (PROTOCOL_ERROR), the connection
/// serves on.
fn malformed_resets(config: ServerConfig, block: FieldList) {
    let mut c = conn(config);
    c.recv(headers(1, block, true))
        .expect("a stream error only");
    let ev = events(&mut c);
    assert!(
        matches!(
            ev.as_slice(),
            [Event::LocalReset {
                stream: 1,
                code: ErrorCode::PROTOCOL_ERROR,
                cause: ResetCause::Malformed(_)
            }]
        ),
        "{ev:?}"
    );
    assert_reset_and_usable(&mut c, 1, ErrorCode::PROTOCOL_ERROR);
}

/// The request a valid block on stream 1 becomes.
fn forwarded(config: ServerConfig, block: FieldList) -> RequestHead {
    let mut c = conn(config);
    c.recv(headers(1, block, true)).expect("a valid request");
    assert!(frames(&mut c).is_empty());
    request_of(&mut c, 1)
}

fn stream_error() -> ServerConfig {
    let mut c = config();
    c.stream_error_on_invalid_http_messaging = true;
    c
}

fn override_stream_error() -> ServerConfig {
    let mut c = config();
    c.override_stream_error_on_invalid_http_message = Some(true);
    c
}

fn allow_connect() -> ServerConfig {
    let mut c = config();
    c.limits.allow_connect = true;
    c
}

// --- header names and connection-specific headers (RFC 9113 §8.2) ---

#[test]
fn uppercase_header_name() {
    malformed_closes(req("GET", "/upper", &[("X-Upper", b"v")]));
}

#[test]
fn connection_header() {
    malformed_closes(req("GET", "/conn", &[("connection", b"keep-alive")]));
}

#[test]
fn keep_alive_header() {
    malformed_closes(req("GET", "/ka", &[("keep-alive", b"timeout=5")]));
}

#[test]
fn proxy_connection_header() {
    malformed_closes(req("GET", "/pc", &[("proxy-connection", b"keep-alive")]));
}

#[test]
fn transfer_encoding_header() {
    malformed_closes(req("GET", "/te", &[("transfer-encoding", b"chunked")]));
}

#[test]
fn upgrade_header() {
    malformed_closes(req("GET", "/up", &[("upgrade", b"websocket")]));
}

#[test]
fn te_trailers_forwarded() {
    let head = forwarded(config(), req("GET", "/tet", &[("te", b"trailers")]));
    assert_eq!(head.parts.headers["te"], "trailers");
}

#[test]
fn te_gzip() {
    malformed_closes(req("GET", "/teg", &[("te", b"gzip")]));
}

#[test]
fn te_trailers_and_gzip() {
    malformed_closes(req("GET", "/tetg", &[("te", b"trailers, gzip")]));
}

#[test]
fn host_header_only() {
    let head = forwarded(
        config(),
        fields(&[
            (":method", b"GET"),
            (":scheme", b"http"),
            (":path", b"/hostonly"),
            ("host", b"hosty"),
        ]),
    );
    assert_eq!(head.parts.uri, "http://hosty/hostonly");
    assert!(head.parts.headers.get("host").is_none());
}

#[test]
fn authority_and_host_disagree() {
    let head = forwarded(config(), req("GET", "/auth", &[("host", b"other")]));
    assert_eq!(head.parts.uri.authority().unwrap(), "test");
    assert!(head.parts.headers.get("host").is_none());
}

#[test]
fn cookie_crumbs_joined() {
    let head = forwarded(
        config(),
        req(
            "GET",
            "/cookie",
            &[
                ("cookie", b"a=1"),
                ("x-b", b"2"),
                ("cookie", b"b=2"),
                ("cookie", b"c=3"),
            ],
        ),
    );
    let cookies: Vec<_> = head.parts.headers.get_all("cookie").iter().collect();
    assert_eq!(cookies, ["a=1; b=2; c=3"]);
    assert_eq!(head.parts.headers["x-b"], "2");
}

#[test]
fn header_name_with_underscore_default() {
    let head = forwarded(config(), req("GET", "/us", &[("x_under", b"v")]));
    assert_eq!(head.parts.headers["x_under"], "v");
}

#[test]
fn underscores_reject() {
    let mut cfg = config();
    cfg.limits.underscores = UnderscoreHeaders::Reject;
    let mut c = conn(cfg);
    c.recv(headers(1, req("GET", "/usr", &[("x_under", b"v")]), true))
        .unwrap();
    let ev = events(&mut c);
    assert!(matches!(
        ev.as_slice(),
        [Event::LocalReset {
            stream: 1,
            cause: ResetCause::Refused(RefusalCause::Underscore),
            ..
        }]
    ));
    assert_reset_and_usable(&mut c, 1, ErrorCode::INTERNAL_ERROR);
}

#[test]
fn underscores_drop() {
    let mut cfg = config();
    cfg.limits.underscores = UnderscoreHeaders::Drop;
    let head = forwarded(
        cfg,
        req("GET", "/usd", &[("x_under", b"v"), ("x-ok", b"1")]),
    );
    assert_eq!(head.parts.headers.len(), 1);
    assert_eq!(head.parts.headers["x-ok"], "1");
}

// --- pseudo-headers (RFC 9113 §8.3) ---

#[test]
fn missing_method() {
    malformed_closes(fields(&[
        (":scheme", b"http"),
        (":authority", b"test"),
        (":path", b"/nm"),
    ]));
}

#[test]
fn missing_path() {
    malformed_closes(fields(&[
        (":method", b"GET"),
        (":scheme", b"http"),
        (":authority", b"test"),
    ]));
}

#[test]
fn missing_scheme() {
    malformed_closes(fields(&[
        (":method", b"GET"),
        (":authority", b"test"),
        (":path", b"/ns"),
    ]));
}

#[test]
fn missing_authority_and_host() {
    malformed_closes(fields(&[
        (":method", b"GET"),
        (":scheme", b"http"),
        (":path", b"/na"),
    ]));
}

#[test]
fn duplicate_method() {
    malformed_closes(req("GET", "/dm", &[(":method", b"POST")]));
}

#[test]
fn duplicate_path() {
    malformed_closes(req("GET", "/dp", &[(":path", b"/other")]));
}

#[test]
fn duplicate_authority() {
    malformed_closes(req("GET", "/da", &[(":authority", b"other")]));
}

fn pseudo_after_regular_block() -> FieldList {
    fields(&[
        (":method", b"GET"),
        (":scheme", b"http"),
        ("x-a", b"1"),
        (":authority", b"test"),
        (":path", b"/par"),
    ])
}

#[test]
fn pseudo_after_regular() {
    malformed_closes(pseudo_after_regular_block());
}

#[test]
fn unknown_pseudo_header() {
    malformed_closes(req("GET", "/up", &[(":foo", b"bar")]));
}

#[test]
fn status_pseudo_in_request() {
    malformed_closes(req("GET", "/sp", &[(":status", b"200")]));
}

#[test]
fn empty_path() {
    malformed_closes(fields(&[
        (":method", b"GET"),
        (":scheme", b"http"),
        (":authority", b"test"),
        (":path", b""),
    ]));
}

#[test]
fn path_without_slash() {
    malformed_closes(req("GET", "abc", &[]));
}

#[test]
fn asterisk_path_options() {
    let head = forwarded(config(), req("OPTIONS", "*", &[]));
    assert_eq!(head.parts.method, http::Method::OPTIONS);
    assert_eq!(head.parts.uri.path(), "*");
}

#[test]
fn asterisk_path_get() {
    malformed_closes(req("GET", "*", &[]));
}

#[test]
fn scheme_https_on_cleartext() {
    let head = forwarded(
        config(),
        fields(&[
            (":method", b"GET"),
            (":scheme", b"https"),
            (":authority", b"test"),
            (":path", b"/https"),
        ]),
    );
    assert_eq!(head.parts.uri, "https://test/https");
}

#[test]
fn scheme_unknown() {
    let head = forwarded(
        config(),
        fields(&[
            (":method", b"GET"),
            (":scheme", b"foo"),
            (":authority", b"test"),
            (":path", b"/foo"),
        ]),
    );
    assert_eq!(head.parts.uri.scheme_str(), Some("foo"));
}

#[test]
fn lowercase_method() {
    let head = forwarded(config(), req("get", "/lc", &[]));
    assert_eq!(head.parts.method.as_str(), "get");
}

#[test]
fn connect_not_allowed() {
    // A plain CONNECT is a valid request whatever allow_connect says: Envoy routes it
    // (404 from the route table).
    let head = forwarded(
        config(),
        fields(&[(":method", b"CONNECT"), (":authority", b"test:80")]),
    );
    assert_eq!(head.parts.method, http::Method::CONNECT);
    assert_eq!(head.parts.uri.authority().unwrap(), "test:80");
    assert_eq!(head.protocol, None);
}

#[test]
fn connect_with_path_and_scheme() {
    malformed_closes(req("CONNECT", "/c", &[]));
}

#[test]
fn connect_without_authority() {
    malformed_closes(fields(&[(":method", b"CONNECT")]));
}

#[test]
fn extended_connect_not_enabled() {
    malformed_closes(req("CONNECT", "/ws", &[(":protocol", b"websocket")]));
}

#[test]
fn extended_connect_with_allow_connect() {
    let head = forwarded(
        allow_connect(),
        req("CONNECT", "/ws", &[(":protocol", b"websocket")]),
    );
    assert_eq!(head.protocol.as_deref(), Some(b"websocket".as_slice()));
    assert_eq!(head.parts.uri, "http://test/ws");
}

#[test]
fn allow_connect_without_upgrade_config() {
    // Valid for the codec; the connection manager answers it (403).
    let head = forwarded(
        allow_connect(),
        fields(&[(":method", b"CONNECT"), (":authority", b"test:80")]),
    );
    assert_eq!(head.parts.method, http::Method::CONNECT);
}

#[test]
fn allow_connect_without_authority() {
    let mut c = conn(allow_connect());
    let r = c.recv(headers(1, fields(&[(":method", b"CONNECT")]), true));
    assert_closed_silently(&mut c, r);
}

#[test]
fn allow_connect_with_path() {
    let mut c = conn(allow_connect());
    let r = c.recv(headers(1, req("CONNECT", "/cp", &[]), true));
    assert_closed_silently(&mut c, r);
}

// --- content-length vs DATA (RFC 9113 §8.1.1) ---

fn post(path: &str, extra: &[(&str, &[u8])]) -> (ServerConnection, Frame) {
    (conn(config()), headers(1, req("POST", path, extra), false))
}

#[test]
fn content_length_matches() {
    let (mut c, h) = post("/clm", &[("content-length", b"3")]);
    c.recv(h).unwrap();
    c.recv(data(1, b"abc", true)).unwrap();
    let ev = events(&mut c);
    assert!(
        matches!(&ev[0], Event::Request { head, .. } if head.content_length == Some(3)),
        "{ev:?}"
    );
    assert!(matches!(
        ev[1],
        Event::Data {
            end_stream: true,
            ..
        }
    ));
    assert!(frames(&mut c).is_empty());
}

#[test]
fn content_length_more_than_data() {
    let (mut c, h) = post("/clmore", &[("content-length", b"10")]);
    c.recv(h).unwrap();
    c.recv(data(1, b"abc", true)).unwrap();
    assert_reset_and_usable(&mut c, 1, ErrorCode::PROTOCOL_ERROR);
}

#[test]
fn content_length_less_than_data() {
    let (mut c, h) = post("/clless", &[("content-length", b"2")]);
    c.recv(h).unwrap();
    c.recv(data(1, b"abcdef", true)).unwrap();
    assert_reset_and_usable(&mut c, 1, ErrorCode::PROTOCOL_ERROR);
}

#[test]
fn content_length_without_data() {
    malformed_closes(req("POST", "/clnone", &[("content-length", b"5")]));
}

#[test]
fn content_length_two_values() {
    let (mut c, h) = post(
        "/cl2",
        &[("content-length", b"3"), ("content-length", b"4")],
    );
    let r = c.recv(h);
    assert_closed_silently(&mut c, r);
}

#[test]
fn content_length_not_a_number() {
    let (mut c, h) = post("/clnan", &[("content-length", b"abc")]);
    let r = c.recv(h);
    assert_closed_silently(&mut c, r);
}

// --- forbidden bytes in names and values (RFC 9113 §8.2.1) ---

#[test]
fn nul_in_value() {
    malformed_closes(req("GET", "/nul", &[("x-a", b"b\0c")]));
}

#[test]
fn cr_in_value() {
    malformed_closes(req("GET", "/cr", &[("x-a", b"b\rc")]));
}

#[test]
fn lf_in_value() {
    malformed_closes(req("GET", "/lf", &[("x-a", b"b\nc")]));
}

#[test]
fn leading_space_in_value() {
    let head = forwarded(config(), req("GET", "/lsp", &[("x-a", b" padded ")]));
    assert_eq!(head.parts.headers["x-a"], "padded");
}

#[test]
fn tab_in_value() {
    let head = forwarded(config(), req("GET", "/tab", &[("x-a", b"b\tc")]));
    assert_eq!(head.parts.headers["x-a"], "b\tc");
}

#[test]
fn space_in_name() {
    malformed_closes(req("GET", "/spn", &[("x a", b"v")]));
}

#[test]
fn colon_in_name() {
    malformed_closes(req("GET", "/coln", &[("x:a", b"v")]));
}

#[test]
fn nul_in_name() {
    malformed_closes(req("GET", "/nuln", &[("x\0a", b"v")]));
}

#[test]
fn empty_header_name() {
    malformed_closes(req("GET", "/emptyn", &[("", b"v")]));
}

#[test]
fn space_in_path() {
    malformed_closes(req("GET", "/a b", &[]));
}

#[test]
fn high_bit_in_value() {
    let head = forwarded(config(), req("GET", "/hb", &[("x-a", "café".as_bytes())]));
    assert_eq!(head.parts.headers["x-a"].as_bytes(), "café".as_bytes());
}

#[test]
fn continuation_chain_forwarded() {
    let (a, b) = (vec![b'a'; 100], vec![b'b'; 100]);
    let head = forwarded(config(), req("GET", "/cont", &[("x-a", &a), ("x-b", &b)]));
    assert_eq!(head.parts.headers["x-a"].len(), 100);
}

#[test]
fn hpack_indexed_static_fields() {
    let head = forwarded(
        config(),
        fields(&[
            (":method", b"GET"),
            (":scheme", b"http"),
            (":path", b"/"),
            (":authority", b"test"),
        ]),
    );
    assert_eq!(head.parts.uri, "http://test/");
}

// --- the same malformed requests with the options that change the answers ---

#[test]
fn stream_error_uppercase_header_name() {
    malformed_resets(stream_error(), req("GET", "/upper", &[("X-Upper", b"v")]));
}

#[test]
fn stream_error_connection_header() {
    malformed_resets(
        stream_error(),
        req("GET", "/conn", &[("connection", b"keep-alive")]),
    );
}

#[test]
fn stream_error_missing_method() {
    malformed_resets(
        stream_error(),
        fields(&[
            (":scheme", b"http"),
            (":authority", b"test"),
            (":path", b"/nm"),
        ]),
    );
}

#[test]
fn stream_error_te_gzip() {
    malformed_resets(stream_error(), req("GET", "/teg", &[("te", b"gzip")]));
}

#[test]
fn stream_error_content_length_less_than_data() {
    let mut c = conn(stream_error());
    c.recv(headers(
        1,
        req("POST", "/clless", &[("content-length", b"2")]),
        false,
    ))
    .unwrap();
    c.recv(data(1, b"abcdef", true)).unwrap();
    assert_reset_and_usable(&mut c, 1, ErrorCode::PROTOCOL_ERROR);
}

#[test]
fn stream_error_nul_in_value() {
    malformed_resets(stream_error(), req("GET", "/nul", &[("x-a", b"b\0c")]));
}

#[test]
fn stream_error_pseudo_after_regular() {
    malformed_resets(stream_error(), pseudo_after_regular_block());
}

#[test]
fn override_uppercase_header_name() {
    malformed_resets(
        override_stream_error(),
        req("GET", "/upper", &[("X-Upper", b"v")]),
    );
}

#[test]
fn override_connection_header() {
    malformed_resets(
        override_stream_error(),
        req("GET", "/conn", &[("connection", b"keep-alive")]),
    );
}

#[test]
fn override_missing_method() {
    malformed_resets(
        override_stream_error(),
        fields(&[
            (":scheme", b"http"),
            (":authority", b"test"),
            (":path", b"/nm"),
        ]),
    );
}

#[test]
fn override_content_length_less_than_data() {
    let mut c = conn(override_stream_error());
    c.recv(headers(
        1,
        req("POST", "/clless", &[("content-length", b"2")]),
        false,
    ))
    .unwrap();
    c.recv(data(1, b"abcdef", true)).unwrap();
    assert_reset_and_usable(&mut c, 1, ErrorCode::PROTOCOL_ERROR);
}

#[test]
fn override_nul_in_value() {
    malformed_resets(
        override_stream_error(),
        req("GET", "/nul", &[("x-a", b"b\0c")]),
    );
}

#[test]
fn override_false_wins_over_stream_error() {
    let mut cfg = stream_error();
    cfg.override_stream_error_on_invalid_http_message = Some(false);
    let mut c = conn(cfg);
    let r = c.recv(headers(1, req("GET", "/nul", &[("x-a", b"b\0c")]), true));
    assert_closed_silently(&mut c, r);
}

#[test]
fn stream_error_trailers_without_end_stream() {
    let mut c = conn(stream_error());
    c.recv(headers(1, req("POST", "/trn", &[]), false)).unwrap();
    c.recv(headers(1, fields(&[("x-trailer", b"1")]), false))
        .unwrap();
    assert_reset_and_usable(&mut c, 1, ErrorCode::PROTOCOL_ERROR);
}

#[test]
fn path_with_quotes_braces_and_high_bit_bytes_is_forwarded() {
    // Measured on Envoy 1.40: both are routed.
    let head = forwarded(config(), req("GET", "/a\"b{c}", &[]));
    assert_eq!(head.parts.uri.path(), "/a\"b{c}");
    let head = forwarded(config(), req("GET", "/caf\u{e9}", &[]));
    assert!(head.parts.uri.path().starts_with("/caf"));
}

#[test]
fn te_trailers_any_case_and_control_bytes_in_values() {
    // Measured on Envoy 1.40: `te: TRAILERS` is served; DEL or another control byte in
    // a value closes the connection.
    forwarded(config(), req("GET", "/te", &[("te", b"TRAILERS")]));
    malformed_closes(req("GET", "/del", &[("x-a", b"a\x7fb")]));
    malformed_closes(req("GET", "/ctl", &[("x-a", b"a\x01b")]));
    malformed_closes(req(
        "GET",
        "/cl",
        &[("content-length", b"0"), ("content-length", b"0")],
    ));
}

#[test]
fn malformed_trailers_close_the_connection() {
    // Measured on Envoy 1.40: an uppercase or connection-specific trailer.
    for trailer in ["X-T", "connection"] {
        let mut c = conn(config());
        c.recv(headers(1, req("POST", "/hole", &[]), false))
            .unwrap();
        c.recv(data(1, b"a", false)).unwrap();
        let r = c.recv(headers(1, fields(&[(trailer, b"1")]), true));
        assert_closed_silently(&mut c, r);
    }
}

#[test]
fn stream_errors_cover_every_malformed_request_class() {
    // Measured on Envoy 1.40 with stream_error_on_invalid_http_messaging: true: each
    // resets only its stream (PROTOCOL_ERROR) and a probe request is served.
    malformed_resets(
        stream_error(),
        req("POST", "/direct", &[("content-length", b"5")]),
    );
    malformed_resets(
        stream_error(),
        fields(&[
            (":method", b"GET"),
            (":scheme", b"http"),
            (":path", b"/direct"),
        ]),
    );
    malformed_resets(stream_error(), req("CONNECT", "/c", &[]));
    let mut c = conn(stream_error());
    c.recv(headers(
        1,
        req("POST", "/direct", &[("content-length", b"abc")]),
        false,
    ))
    .unwrap();
    assert_reset_and_usable(&mut c, 1, ErrorCode::PROTOCOL_ERROR);
    let mut c = conn(stream_error());
    c.recv(headers(1, req("POST", "/hole", &[]), false))
        .unwrap();
    c.recv(data(1, b"abc", false)).unwrap();
    c.recv(headers(1, fields(&[(":path", b"/x")]), true))
        .unwrap();
    assert_reset_and_usable(&mut c, 1, ErrorCode::PROTOCOL_ERROR);
}

#[test]
fn stream_errors_leave_connection_errors_alone() {
    // Measured on Envoy 1.40 with stream_error_on_invalid_http_messaging: true: a
    // stream depending on itself or HEADERS on an even stream still close the connection.
    let mut c = conn(stream_error());
    let r = c.recv(Frame::Headers {
        stream: 1,
        fields: req("GET", "/direct", &[]),
        end_stream: true,
        priority: Some(super::frame::Priority {
            dependency: 1,
            exclusive: false,
            weight: 15,
        }),
    });
    assert_closed_silently(&mut c, r);
    let mut c = conn(stream_error());
    let r = c.recv(headers(2, req("GET", "/direct", &[]), true));
    assert_closed_silently(&mut c, r);
}
