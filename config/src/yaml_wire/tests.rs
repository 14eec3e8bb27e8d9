//! The direct way against the tree way: whatever the direct way encodes, the tree way
//! (scanned tree, its checks, `json_wire::encode_supported`) encodes to the same bytes.

use super::encode_bootstrap;
use crate::load::{direct_bootstrap, fast_load, to_bootstrap};
use crate::static_descriptors::MessageRef;

const BOOTSTRAP: &str = "envoy.config.bootstrap.v3.Bootstrap";

/// The tree way's bytes for `text`, when it takes the fast path.
fn tree_bytes(text: &str) -> Option<Vec<u8>> {
    let descriptor = MessageRef::by_name(BOOTSTRAP)?;
    let tree = crate::yaml_scan::parse_tree(text)?;
    let plain = !crate::typed_struct::may_unwrap(&tree)
        && crate::v2_hints::passes_with_nothing_optional(&tree);
    plain
        .then(|| crate::json_wire::encode_supported(descriptor, &tree))
        .flatten()
}

fn direct_bytes(text: &str) -> Option<Vec<u8>> {
    let descriptor = MessageRef::by_name(BOOTSTRAP)?;
    encode_bootstrap(descriptor, text).map(|encoded| encoded.bytes)
}

/// Whatever the direct way takes, the tree way takes with the same bytes, and the whole
/// fast load gives the bootstrap the slow way gives. Answers whether it took it.
fn agrees(what: &str, text: &str) -> bool {
    let Some(direct) = direct_bytes(text) else {
        return false;
    };
    assert_eq!(Some(&direct), tree_bytes(text).as_ref(), "{what}");
    let (bootstrap, bytes) = direct_bootstrap(text).expect("decodes");
    assert_eq!(bytes, direct, "{what}");
    // What prost encodes the bootstrap to decodes to the same (the bytes are kept for
    // /config_dump instead of encoding it again).
    {
        use prost::Message;
        let again = crate::Bootstrap::decode(prost::Message::encode_to_vec(&bootstrap).as_slice());
        assert_eq!(again.ok().as_ref(), Some(&bootstrap), "{what}");
        assert_eq!(
            crate::config_dump_encoded(&bytes),
            crate::config_dump(&bootstrap),
            "{what}"
        );
    }
    let json = crate::load::parse_text(text).expect("scanned");
    let (slow, _) = to_bootstrap(&json).expect("the slow way maps it");
    assert_eq!(bootstrap, slow, "{what}");
    assert_eq!(fast_load(text).ok(), Some((slow, Some(bytes))), "{what}");
    true
}

#[test]
fn direct_way_agrees_with_the_tree_way_on_repository_files() {
    let (mut direct, mut tree_only) = (0, Vec::new());
    for (path, text) in crate::test_files::repository_configs() {
        let what = path.display().to_string();
        if agrees(&what, &text) {
            direct += 1;
        } else if tree_bytes(&text).is_some() {
            tree_only.push(what);
        }
    }
    // What the tree way takes and this does not (`@type` not first, keys with escapes,
    // the stricter stand-ins): listed when the test is run with --nocapture.
    eprintln!(
        "direct: {direct}; tree way only: {}: {tree_only:?}",
        tree_only.len()
    );
    assert!(
        direct >= 10,
        "only {direct} repository files took the direct way"
    );
}

/// bench/config-scale's bootstrap, `n` clusters and `2n` routes.
fn scale_bootstrap(n: usize, flow: bool) -> String {
    let mut out = String::from(
        "admin:\n  address: {socket_address: {address: 127.0.0.1, port_value: 9901}}\n\
static_resources:\n  listeners:\n  - name: main\n    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}\n    filter_chains:\n    - filters:\n      - name: envoy.filters.network.http_connection_manager\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n          stat_prefix: main\n          http_filters:\n          - name: envoy.filters.http.router\n            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}\n          route_config:\n            virtual_hosts:\n            - name: all\n              domains: [\"*\"]\n              routes:\n",
    );
    for i in 0..n {
        if flow {
            out += &format!(
                "              - {{match: {{path: /e{i}}}, direct_response: {{status: 200}}}}\n"
            );
        } else {
            out += &format!("              - match:\n                  path: /e{i}\n                direct_response:\n                  status: 200\n");
        }
        out += &format!(
            "              - {{direct_response: {{status: 200}}, match: {{prefix: /p{i}/}}}}\n"
        );
    }
    out += "  clusters:\n";
    for i in 0..n {
        out += &format!("  - {{name: c{i}, type: STATIC, connect_timeout: 1s, load_assignment: {{cluster_name: c{i}, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 9}}}}}}}}]}}]}}}}\n");
    }
    out
}

#[test]
fn direct_way_agrees_on_generated_bootstraps() {
    for n in [1, 2, 30, 200] {
        for flow in [false, true] {
            let text = scale_bootstrap(n, flow);
            assert!(agrees(&format!("n = {n}, flow {flow}"), &text), "n = {n}");
            let encoded = encode_bootstrap(MessageRef::by_name(BOOTSTRAP).unwrap(), &text).unwrap();
            assert_eq!((encoded.listeners, encoded.clusters), (1, n));
        }
    }
}

/// Shapes the encoder writes with care: members out of field order (in messages and in
/// `Any` contents), map entries out of key order, packed numbers, an `Any` with empty
/// contents, wrappers, durations, enums, a JSON document.
#[test]
fn direct_way_agrees_on_reordered_and_special_shapes() {
    let taken = [
        "static_resources:\n  clusters:\n  - load_assignment: {cluster_name: b}\n    connect_timeout: 0.25s\n    type: STRICT_DNS\n    name: b\n    per_connection_buffer_limit_bytes: 1024\n",
        "{\"static_resources\": {\"clusters\": [{\"name\": \"a\", \"connectTimeout\": \"2s\", \"lbPolicy\": \"ROUND_ROBIN\"}]}}",
        "static_resources:\n  listeners:\n  - name: l\n    address: {socket_address: {address: 127.0.0.1, port_value: 1}}\n    filter_chains:\n    - filters:\n      - name: envoy.filters.network.http_connection_manager\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n          route_config: {name: r, virtual_hosts: [{name: v, domains: [b, a], routes: [{match: {prefix: /}, route: {cluster: c, timeout: 3s}, typed_per_filter_config: {zz: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}, aa: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}]}]}\n          stat_prefix: s\n          http_filters: [{name: envoy.filters.http.router, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]\n",
        "admin: {address: {socket_address: {port_value: 9901, address: 0.0.0.0}}}\nstats_flush_interval: 5s\n",
        "cluster_manager: {local_cluster_name: x}\nnode: {id: n, cluster: c}\n",
    ];
    for text in taken {
        // Taken here when the tree way takes it (some shapes the supported-field check
        // refuses, which both ways must agree on).
        let tree = tree_bytes(text);
        assert_eq!(agrees(text, text), tree.is_some(), "{text}");
    }
}

/// Documents the direct way must leave to the tree way, whose answer (a bootstrap or
/// the error it always gave) is then the one given.
#[test]
fn direct_way_leaves_what_it_must() {
    let left = [
        "",
        "# only a comment\n",
        "~\n",
        "[1, 2]\n",
        // v2 hints.
        "static_resources:\n  clusters:\n  - name: a\n    hosts: [{socket_address: {address: 127.0.0.1, port_value: 1}}]\n",
        "static_resources:\n  clusters:\n  - name: a\n    tls_context: {}\n",
        "static_resources:\n  listeners:\n  - name: l\n    filter_chains:\n    - filters:\n      - name: envoy.http_connection_manager\n        config: {stat_prefix: s}\n",
        "static_resources:\n  listeners:\n  - name: l\n    filter_chains:\n    - filters:\n      - name: envoy.filters.network.http_connection_manager\n",
        "static_resources:\n  listeners:\n  - name: l\n    filter_chains:\n    - filters:\n      - name: x\n        typed_config: {\"@type\": type.googleapis.com/envoy.config.filter.network.http_connection_manager.v2.HttpConnectionManager}\n",
        // Optional configs and TypedStruct extensions.
        "static_resources:\n  listeners:\n  - name: l\n    filter_chains:\n    - filters:\n      - name: envoy.filters.network.http_connection_manager\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n          stat_prefix: s\n          http_filters: [{name: x, is_optional: true, typed_config: {\"@type\": type.googleapis.com/x.Unknown}}]\n",
        "bootstrap_extensions: []\n",
        // Unknown, unsupported, duplicate, null, misplaced.
        "static_resources:\n  clusters:\n  - name: a\n    no_such_field: 1\n",
        "static_resources:\n  clusters:\n  - name: a\n    name: b\n",
        "static_resources:\n  clusters:\n  - name: a\n    connect_timeout: 1s\n    connectTimeout: 2s\n",
        "static_resources:\n  clusters:\n  - name: a\n    connect_timeout:\n",
        "static_resources:\n  clusters:\n  - name: a\n    type: NOT_A_TYPE\n",
        "static_resources:\n  clusters:\n  - name: [a]\n",
        "static_resources:\n  clusters: {name: a}\n",
        "admin: {address: {socket_address: {port_value: \"9901\"}}}\n",
        "static_resources:\n  listeners:\n  - name: l\n    filter_chains:\n    - filters:\n      - name: x\n        typed_config: {stat_prefix: s, \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy}\n",
        "static_resources:\n  listeners:\n  - name: l\n    filter_chains:\n    - filters:\n      - name: x\n        typed_config: {\"@type\": type.googleapis.com/no.such.Type}\n",
        "node: {id: \"\\x41\"}\nnode: {id: b}\n",
        "\"no\\x41de\": {id: a}\n",
        "a: &x 1\n",
    ];
    for text in left {
        assert!(direct_bytes(text).is_none(), "{text:?}");
        assert!(direct_bootstrap(text).is_none(), "{text:?}");
    }
}

/// Edits of a generated bootstrap, one at a time: whatever the direct way takes of them
/// agrees with the tree way.
#[test]
fn direct_way_agrees_on_edited_bootstraps() {
    let base = scale_bootstrap(3, true);
    let edits: &[(&str, &str)] = &[
        ("status: 200", "status: 404"),
        ("status: 200", "status: \"200\""),
        ("status: 200", "status: 2.0e2"),
        ("status: 200", "status: -1"),
        ("status: 200", "status: 0x10"),
        ("status: 200", "status: 99999999999"),
        ("type: STATIC", "type: 1"),
        ("type: STATIC", "type: static"),
        ("connect_timeout: 1s", "connect_timeout: 1.5s"),
        ("connect_timeout: 1s", "connect_timeout: -1s"),
        ("connect_timeout: 1s", "connect_timeout: 1"),
        ("connect_timeout: 1s", "connect_timeout: {seconds: 1}"),
        ("port_value: 9}", "port_value: 65536}"),
        ("port_value: 9}", "port_value: 9, ipv4_compat: true}"),
        ("name: c1,", "name: 'c''1',"),
        ("name: c1,", "name: \"c\\u00411\","),
        ("domains: [\"*\"]", "domains: []"),
        ("domains: [\"*\"]", "domains: [a, '']"),
        ("stat_prefix: main", "stat_prefix: ''"),
        ("stat_prefix: main", "statPrefix: main"),
        ("cluster_name: c0", "clusterName: c0"),
        ("{path: /e0}", "{path: /e0, prefix: /}"),
        ("{path: /e0}", "{}"),
        (
            "direct_response: {status: 200}}",
            "direct_response: {status: 200, body: {inline_string: x}}}",
        ),
        ("lb_endpoints:", "lbEndpoints:"),
        ("- name: all", "- name: all\n              require_tls: ALL"),
        (
            "http_filters:",
            "use_remote_address: true\n          http_filters:",
        ),
        (
            "http_filters:",
            "xff_num_trusted_hops: 1\n          http_filters:",
        ),
        ("http_filters:", "server_name: [x]\n          http_filters:"),
    ];
    let mut taken = 0;
    for (from, to) in edits {
        assert!(base.contains(from), "{from}");
        let text = base.replacen(from, to, 1);
        if agrees(&format!("{from} -> {to}"), &text) {
            taken += 1;
        } else {
            assert!(
                tree_bytes(&text).is_none() || text.contains('\\'),
                "{from} -> {to}"
            );
        }
    }
    eprintln!("{taken} of {} edits taken", edits.len());
    assert!(taken >= 10, "only {taken} edits taken");
}
