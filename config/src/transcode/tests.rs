use baton_proto::pb::envoy::config::bootstrap::v3::Bootstrap;

use super::{message_len, transcode};
use crate::load::{parse_text, to_dynamic};

const BOOTSTRAP: &str = "envoy.config.bootstrap.v3.Bootstrap";

/// The fast transcode and prost-reflect's give the same generated message.
fn assert_same(text: &str, what: &str) -> bool {
    let Ok(json) = parse_text(text) else {
        return false;
    };
    let Ok(dynamic) = to_dynamic(&json, BOOTSTRAP) else {
        return false;
    };
    assert!(
        message_len(&dynamic, &mut Vec::new()).is_ok(),
        "{what}: not left to prost-reflect"
    );
    let fast: Bootstrap = transcode(&dynamic).expect("fast transcode decodes");
    let reference: Bootstrap = dynamic.transcode_to().expect("reference transcode decodes");
    assert_eq!(fast, reference, "{what}");
    true
}

/// Maps (`Struct` fields, `filter_metadata`), packed repeated numbers and doubles,
/// enums, bytes, oneofs, wrappers, durations and `Any` come out the same.
#[test]
fn every_value_shape_matches_prost_reflect() {
    let text = r#"
node:
  id: n1
  metadata: {a: 1, b: [true, null, "x"], c: {d: 2.5}}
stats_config:
  histogram_bucket_settings:
  - match: {prefix: cluster.}
    buckets: [0.5, 1, 10, 100000]
static_resources:
  clusters:
  - name: c0
    type: STRICT_DNS
    lb_policy: RING_HASH
    connect_timeout: 0.25s
    per_connection_buffer_limit_bytes: 32768
    metadata:
      filter_metadata:
        envoy.lb: {canary: true}
        other: {k: v}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: example.com
        common_tls_context:
          validation_context:
            trusted_ca: {inline_bytes: "AAEC/w=="}
    load_assignment:
      cluster_name: c0
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
          load_balancing_weight: 3
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
          route_config:
            virtual_hosts:
            - name: v
              domains: ["*"]
              routes:
              - match: {prefix: /}
                route:
                  cluster: c0
                  retry_policy: {retry_on: 5xx, retriable_status_codes: [503, 504, 300]}
"#;
    assert!(assert_same(text, "crafted bootstrap"));
}

/// Nested lengths past one, two and three varint bytes (a message of 10,000 clusters).
#[test]
fn large_nested_messages_match_prost_reflect() {
    let mut text = String::from("static_resources:\n  clusters:\n");
    for i in 0..10_000 {
        text.push_str(&format!(
            "  - {{name: c{i}, type: STATIC, connect_timeout: 1s, load_assignment: {{cluster_name: c{i}, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 9}}}}}}}}]}}]}}}}\n"
        ));
    }
    assert!(assert_same(&text, "10,000 clusters"));
    // Without repeated numbers (packed by prost-reflect) the measured length is the
    // canonical encoding's: the buffer is exactly what encode_to_vec allocates.
    let dynamic = to_dynamic(&parse_text(&text).expect("YAML"), BOOTSTRAP).expect("mapping");
    let measured = message_len(&dynamic, &mut Vec::new()).ok();
    assert_eq!(measured, Some(prost::Message::encoded_len(&dynamic)));
}

/// Every repository file that maps into a bootstrap transcodes the same.
#[test]
fn repository_bootstraps_match_prost_reflect() {
    let mut mapped = 0;
    for (path, text) in crate::test_files::repository_configs() {
        if assert_same(&text, &path.display().to_string()) {
            mapped += 1;
        }
    }
    eprintln!("{mapped} repository files are bootstraps");
    assert!(mapped >= 5, "only {mapped} repository files are bootstraps");
}
