//! `http2_protocol_options.stream_error_on_invalid_http_messaging` and
//! `override_stream_error_on_invalid_http_message`: a malformed HTTP/2 request resets only
//! its stream in Baton (the h2 crate's rule), which is what both ask for when true; asking
//! by name for Envoy's default (closing the connection) is refused.

mod common;

use baton_config::load_yaml_str;

/// A bootstrap whose connection manager has `http2_protocol_options: {h2_options}`.
fn bootstrap(h2_options: &str) -> String {
    common::hcm_bootstrap(&format!("http2_protocol_options: {h2_options}"))
}

#[test]
fn stream_error_options_are_accepted() {
    // `stream_error_on_invalid_http_messaging: false` is proto3's default: not told apart
    // from unset, so it cannot be refused.
    for options in [
        "{ stream_error_on_invalid_http_messaging: true }",
        "{ override_stream_error_on_invalid_http_message: true }",
        "{ stream_error_on_invalid_http_messaging: false }",
    ] {
        if let Err(e) = load_yaml_str(&bootstrap(options)) {
            panic!("{options}: {e}");
        }
    }
}

#[test]
fn override_false_is_refused() {
    let Err(e) = load_yaml_str(&bootstrap(
        "{ override_stream_error_on_invalid_http_message: false }",
    )) else {
        panic!("override_stream_error_on_invalid_http_message: false was accepted");
    };
    let text = e.to_string();
    assert!(
        text.contains("override_stream_error_on_invalid_http_message")
            && text.contains("false is not supported"),
        "{text}"
    );
}
