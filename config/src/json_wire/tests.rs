use baton_proto::pb::envoy::config::bootstrap::v3::Bootstrap;
use prost::Message;
use serde_json::json;

use super::encode;
use crate::load::{parse_text, pool, to_dynamic};
use crate::static_descriptors::MessageRef;

const BOOTSTRAP: &str = "envoy.config.bootstrap.v3.Bootstrap";

fn bootstrap_descriptor() -> MessageRef {
    MessageRef::by_name(BOOTSTRAP).expect("bootstrap descriptor")
}

/// When the encoder maps `json`, prost-reflect maps it too, to the same bytes (without
/// maps, whose order prost-reflect does not keep) and the same generated message.
/// Returns whether the encoder mapped it.
fn assert_same(json: &serde_json::Value, what: &str, same_bytes: bool) -> bool {
    let Some(fast) = encode(bootstrap_descriptor(), json) else {
        return false;
    };
    let dynamic = to_dynamic(json, BOOTSTRAP)
        .unwrap_or_else(|e| panic!("{what}: the fast path mapped what prost-reflect refuses: {e}"));
    let reference = dynamic.encode_to_vec();
    if same_bytes {
        assert_eq!(fast, reference, "{what}: bytes");
    }
    let fast = Bootstrap::decode(fast.as_slice()).expect("fast bytes decode");
    let reference = Bootstrap::decode(reference.as_slice()).expect("reference bytes decode");
    assert_eq!(fast, reference, "{what}");
    true
}

/// Oneofs, enums, durations, wrappers, packed numbers, proto3 defaults, nested `Any`
/// and lengths past one varint byte come out as prost-reflect writes them.
#[test]
fn common_shapes_match_prost_reflect_byte_for_byte() {
    let mut text = String::from(
        r#"
node: {id: n1, cluster: c}
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}
    per_connection_buffer_limit_bytes: 0
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
          codec_type: AUTO
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
          route_config:
            virtual_hosts:
            - name: v
              domains: ["*", "a.example"]
              routes:
              - match: {prefix: /}
                route:
                  cluster: c0
                  timeout: 0.25s
                  retry_policy: {retry_on: 5xx, num_retries: 2, retriable_status_codes: [503, 504, 300]}
  clusters:
"#,
    );
    for i in 0..300 {
        text.push_str(&format!(
            "  - {{name: c{i}, type: STRICT_DNS, lb_policy: ROUND_ROBIN, connect_timeout: 1.5s, load_assignment: {{cluster_name: c{i}, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 9}}}}}}, load_balancing_weight: 3}}]}}]}}}}\n"
        ));
    }
    let json = parse_text(&text).expect("YAML");
    assert!(assert_same(&json, "crafted bootstrap", true), "not mapped");
}

/// String-keyed maps decode the same (their order is prost-reflect's hash order).
#[test]
fn maps_match_prost_reflect() {
    let json = json!({
        "static_resources": {"clusters": [{
            "name": "c",
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}}
                }
            }
        }]}
    });
    assert!(assert_same(
        &json,
        "typed_extension_protocol_options",
        false
    ));
}

/// What the encoder does not map exactly as prost-reflect does is left to it.
#[test]
fn other_shapes_are_left_to_prost_reflect() {
    let cases = [
        json!({"node": null}),
        json!({"node": {"id": 1}}),
        json!({"admin": {"address": {"socket_address": {"port_value": "9"}}}}),
        json!({"admin": {"address": {"socket_address": {"port_value": 9.0}}}}),
        json!({"admin": {"address": {"socket_address": {"port_value": -1}}}}),
        json!({"admin": {"address": {"socket_address": {"port_value": 1, "named_port": "x"}}}}),
        json!({"node": {"id": "a", "bogus": 1}}),
        json!({"node": {"user_agent_name": "a", "userAgentName": "b"}}),
        json!({"node": {"metadata": {"a": 1}}}),
        json!({"stats_flush_interval": "5"}),
        json!({"stats_flush_interval": "1000000000000s"}),
        json!({"static_resources": {"clusters": [{"name": "c", "type": "NOPE"}]}}),
        json!({"static_resources": {"clusters": [{"name": "c", "type": 1}]}}),
        json!({"static_resources": {"clusters": [null]}}),
        json!({"static_resources": {"clusters": {"name": "c"}}}),
        json!({"bootstrap_extensions": [{"name": "x", "typed_config": {"@type": "type.googleapis.com/google.protobuf.Struct", "value": {}}}]}),
        json!({"bootstrap_extensions": [{"name": "x", "typed_config": {"@type": "type.googleapis.com/no.such.Type"}}]}),
        json!({"bootstrap_extensions": [{"name": "x", "typed_config": {"@type": "no-slash"}}]}),
        json!({"bootstrap_extensions": [{"name": "x", "typed_config": {"value": {}}}]}),
    ];
    for case in cases {
        assert!(
            encode(bootstrap_descriptor(), &case).is_none(),
            "{case} was mapped"
        );
    }
}

/// Every repository file the encoder maps, prost-reflect maps to the same message.
#[test]
fn repository_bootstraps_match_prost_reflect() {
    let mut mapped = 0;
    for (path, text) in crate::test_files::repository_configs() {
        let Ok(json) = parse_text(&text) else {
            continue;
        };
        if assert_same(&json, &path.display().to_string(), false) {
            mapped += 1;
        }
    }
    eprintln!("{mapped} repository files mapped by the fast path");
    assert!(
        mapped >= 5,
        "only {mapped} repository files mapped by the fast path"
    );
}

/// The compact tree the scanner builds encodes to the bytes its `serde_json::Value` does.
#[test]
fn compact_tree_encodes_as_its_value() {
    let mut documents = vec![String::from(
        "static_resources:\n  clusters:\n  - {name: 'it''s', alt_stat_name: \"c\\u0041\", type: STATIC, connect_timeout: \"1.5s\"}\n",
    )];
    documents.extend(
        crate::test_files::repository_configs()
            .into_iter()
            .map(|(_, text)| text),
    );
    let descriptor = bootstrap_descriptor();
    let mut encoded = 0;
    for text in &documents {
        let Some(tree) = crate::yaml_scan::parse_tree(text) else {
            continue;
        };
        let value = tree.clone().into_value();
        let from_tree = encode(descriptor, &tree);
        assert_eq!(from_tree, encode(descriptor, &value), "{text}");
        encoded += usize::from(from_tree.is_some());
    }
    assert!(encoded >= 5, "only {encoded} documents encoded");
}

/// `encode_supported` answers what the supported-field walk of `encode`'s bytes answers:
/// on every repository file and on documents setting a refused field at the top, inside
/// an `Any`'s contents, in a list, in a map's value, with its default (not set), and
/// inside a message translation checks (not looked into).
#[test]
fn encode_supported_agrees_with_the_wire_walk() {
    let hcm = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
    let listener = |extra: &str| {
        format!(
            "static_resources:\n  listeners:\n  - name: l\n    address: {{socket_address: {{address: 127.0.0.1, port_value: 1}}}}\n    filter_chains:\n    - filters:\n      - name: envoy.filters.network.http_connection_manager\n        typed_config: {{\"@type\": {hcm}, stat_prefix: s, {extra} http_filters: [{{name: envoy.filters.http.router, typed_config: {{\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}], route_config: {{virtual_hosts: [{{name: v, domains: ['*'], routes: [{{match: {{prefix: /}}, direct_response: {{status: 200}}}}]}}]}}}}\n"
        )
    };
    let mut documents: Vec<String> = vec![
        "stats_sinks: [{name: envoy.stat_sinks.statsd}]\n".into(),
        "cluster_manager: {upstream_bind_config: {source_address: {address: 1.2.3.4, port_value: 0}}}\n".into(),
        "cluster_manager: {local_cluster_name: x}\n".into(),
        "static_resources:\n  clusters:\n  - {name: c, connect_timeout: 1s, upstream_bind_config: {source_address: {address: 1.2.3.4, port_value: 0}}}\n".into(),
        "static_resources:\n  clusters:\n  - {name: c, connect_timeout: 1s, load_balancing_policy: {policies: [{typed_extension_config: {name: r, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin}}}]}}\n".into(),
        "static_resources:\n  clusters:\n  - {name: c, connect_timeout: 1s, typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {\"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, explicit_http_config: {http2_protocol_options: {}}}}}\n".into(),
        listener(""),
        listener("tracing: {},"),
        listener("add_user_agent: true,"),
        listener("add_user_agent: false,"),
        listener("proxy_100_continue: true,"),
    ];
    documents.extend(
        crate::test_files::repository_configs()
            .into_iter()
            .map(|(_, text)| text),
    );
    let descriptor = bootstrap_descriptor();
    let pool_bootstrap = pool().get_message_by_name(BOOTSTRAP).expect("in the pool");
    let (mut passed, mut refused) = (0, 0);
    for text in &documents {
        let Some(tree) = crate::yaml_scan::parse_tree(text) else {
            continue;
        };
        let walked = encode(descriptor, &tree)
            .map(|bytes| crate::wire_walk::check_supported(&pool_bootstrap, &bytes).is_ok());
        let fused = super::encode_supported(descriptor, &tree);
        match walked {
            Some(true) => {
                assert_eq!(fused, encode(descriptor, &tree), "{text}");
                passed += 1;
            }
            Some(false) => {
                assert_eq!(fused, None, "{text}");
                refused += 1;
            }
            None => assert_eq!(fused, None, "{text}"),
        }
    }
    assert!(
        passed >= 10 && refused >= 4,
        "passed {passed}, refused {refused}"
    );
}
