//! `http2_protocol_options.stream_error_on_invalid_http_messaging` and
//! `override_stream_error_on_invalid_http_message`: a malformed HTTP/2 request resets only
//! its stream in Baton (the h2 crate's rule), which is what both ask for when true; asking
//! by name for Envoy's default (closing the connection) is refused.

use baton_config::load_yaml_str;

fn bootstrap(h2_options: &str) -> String {
    format!(
        r#"
static_resources:
  listeners:
  - name: main
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          http2_protocol_options: {h2_options}
          route_config:
            virtual_hosts: [ {{ name: all, domains: ["*"], routes: [ {{ match: {{ prefix: "/" }}, direct_response: {{ status: 200 }} }} ] }} ]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
"#
    )
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
