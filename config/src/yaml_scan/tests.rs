//! The scanner against serde_yaml_ng: every document it takes must give the value the
//! serde_yaml_ng path gives.

use super::{parse, printable_ascii, resolve_plain};

/// The serde_yaml_ng path, as `load::parse_text` takes it (an empty document is null).
fn via_serde_yaml(text: &str) -> Option<serde_json::Value> {
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).ok()?;
    serde_json::to_value(&yaml).ok()
}

fn assert_same(text: &str) {
    let scanned = parse(text).unwrap_or_else(|| panic!("not taken by the scanner: {text:?}"));
    assert_eq!(Some(scanned), via_serde_yaml(text), "{text:?}");
}

#[test]
fn block_and_flow_documents_match_serde_yaml() {
    for text in [
        "",
        "# only a comment\n",
        "a: 1\nb: [x, 2, -3, 1.5, true, null, ~, '1', \"s\"]\nc: {d: {e: []}}\n",
        "a:\n  b:\n    c: 1\n  d: 2\ne: 3",
        "list:\n- a\n- b\nnext: 1\n",
        "list:\n  - a\n  -   b  # comment\n  -\n  - c: 1\n    d: 2\n  - - x\n    - y\n",
        "- a: 1\n  b:\n  - 2\n  c: 3\n- {x: 1}\n-\n  nested: true\n",
        "a:\nb: 2\n",
        "key with spaces: value with spaces   \n",
        "url: http://example.com:80/path#frag\nregex: ^a[0-9]{2},$\nx: a#b\n",
        "q: 'it''s'\nd: \"tab\\there \\\"q\\\" \\\\ \\/ \\u00e9 \\x41 \\U0001F600\"\n",
        "'quoted key': 1\n\"dq key\": 2\n",
        "{\"json\": {\"also\": [1, 2.5, \"three\"], \"e\": {}, \"n\": null}}",
        "{\"a\":1,\"b\":[true,false],\"c\":\"x\"}",
        "{\n  \"pretty\": [\n    1,\n    2\n  ],\n  \"x\": {\"y\": \"z\"}\n}\n",
        "[1, 2, [3, {a: b}]]",
        "a: {b: , c: 1}\n",
        "a: [x, y, ]\nb: {c: d, }\n",
        "n: 18446744073709551615\nm: -9223372036854775808\nf: 1e3\ng: .inf\nh: .nan\ni: -.INF\n",
        "h: 0x1F\no: 0o17\nb: 0b101\nz: 0123\nneg: -0x10\nplus: +12\nlead: 00\nd: 1.\ne: .5\n",
        "s: 1s\nip: 127.0.0.1\nv: 1.2.3\np: /e0\nw: -foo\n",
        "a: b # c\n   # indented comment\nd: e\n",
        "top:\n  seq:\n  - {name: c0, type: STATIC, connect_timeout: 1s}\n  - {name: c1}\n",
        "a: \"\"\nb: ''\nc: \"#not comment\"\n",
        "a: [\n  1,\n  2]\n",
    ] {
        assert_same(text);
    }
}

#[test]
fn documents_outside_the_subset_are_left_to_serde_yaml() {
    for text in [
        "a: 1\na: 2\n",
        "1: x\n",
        "true: x\n",
        "~: x\n",
        "a: !tag 1\n",
        "a: &anchor {x: 1}\nb: *anchor\n",
        "s: |\n  multi\n  line\n",
        "t: >\n  folded\n",
        "a: [\n",
        "a: {b\n",
        "---\na: 1\n",
        "a: 1\n...\n",
        "%YAML 1.2\n---\na: 1\n",
        "a:\tb\n",
        "a: b\r\n",
        "a: caf\u{e9}\n",
        "a: plain\n  continued\n",
        "a: 'multi\n  line'\n",
        "a: b: c\n",
        "a: - b\n",
        "a: 1\n- b\n",
        "? complex\n: key\n",
        "{a:1}",
        "{a: b:c}",
        "a: 18446744073709551616\n",
        "a: -170141183460469231731687303715884105728\n",
        "a: \"\\N\"\n",
        "a:\n  b: 1\n c: 2\n",
        "a:\n  - x\n   - y\n",
        "a: {\n  b: 1\n}\n",
    ] {
        assert_eq!(parse(text), None, "{text:?}");
    }
}

#[test]
fn plain_scalars_resolve_as_serde_yaml_resolves_them() {
    for scalar in [
        "0",
        "-0",
        "+0",
        "1",
        "-1",
        "+1",
        "01",
        "-01",
        "+01",
        "00",
        "0.0",
        "-0.0",
        "1.5e3",
        "1E-3",
        "1e400",
        "-1e400",
        ".5",
        "5.",
        "+.5",
        "-.5",
        ".",
        "+",
        "0x",
        "0x1g",
        "0xFF",
        "+0xFF",
        "-0xFF",
        "0x-1",
        "-0x-1",
        "0o7",
        "0o8",
        "0b2",
        "-0b11",
        "0b",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "18446744073709551615",
        ".inf",
        "+.inf",
        "-.inf",
        ".Inf",
        "+.INF",
        ".nan",
        "+.nan",
        ".NaN",
        "inf",
        "nan",
        "NaN",
        "infinity",
        "1_000",
        "1,000",
        "12:30",
        "1s",
        "1.2.3",
        "127.0.0.1",
        "1..2",
        "..",
        "1.5e.3",
        "200",
        "1234567890123456789",
        "12345678901234567890",
        "99999999999999999999",
        "Alpha",
        "b12",
        "x.y.z",
        "true",
        "True",
        "TRUE",
        "tRue",
        "yes",
        "no",
        "on",
        "off",
        "null",
        "Null",
        "NULL",
        "nULL",
        "~",
        "e5",
        "0e5",
        "-e5",
        "+-1",
        "--1",
        "1-",
    ] {
        let text = format!("k: {scalar}\n");
        let expected = via_serde_yaml(&text);
        match resolve_plain(scalar).map(crate::json_tree::Node::into_value) {
            Some(value) => assert_eq!(
                Some(serde_json::json!({ "k": value })),
                expected,
                "{scalar:?}"
            ),
            // 128-bit integers: the JSON value path cannot take them either.
            None => assert!(
                crate::yaml_json::parse(&text).is_none(),
                "{scalar:?} left out but the serde path takes it"
            ),
        }
    }
}

/// Every YAML and JSON file in the repository the scanner takes gives serde_yaml_ng's value.
#[test]
fn repository_configs_match_serde_yaml() {
    let (mut taken, mut seen) = (0, 0);
    for (path, text) in crate::test_files::repository_configs() {
        seen += 1;
        if let Some(scanned) = parse(&text) {
            taken += 1;
            assert_eq!(Some(scanned), via_serde_yaml(&text), "{}", path.display());
        }
    }
    eprintln!("the scanner took {taken} of {seen} files");
    assert!(
        taken * 2 >= seen,
        "the scanner took only {taken} of {seen} files"
    );
}

/// `bench/config-scale`'s bootstrap (flow entries in block sequences) is in the subset.
#[test]
fn config_scale_bootstrap_is_taken() {
    let mut text = String::from(
        "admin:\n  address: {socket_address: {address: 127.0.0.1, port_value: 9901}}\n\
         static_resources:\n  listeners:\n  - name: main\n    filter_chains:\n    - filters:\n      \
         - name: envoy.filters.network.http_connection_manager\n        typed_config:\n          \
         \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n          \
         route_config:\n            virtual_hosts:\n            - name: all\n              domains: [\"*\"]\n              routes:\n",
    );
    for i in 0..3 {
        text.push_str(&format!(
            "              - {{match: {{path: /e{i}}}, direct_response: {{status: 200}}}}\n"
        ));
    }
    text.push_str("  clusters:\n");
    for i in 0..3 {
        text.push_str(&format!("  - {{name: c{i}, type: STATIC, connect_timeout: 1s, load_assignment: {{cluster_name: c{i}, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 9}}}}}}}}]}}]}}}}\n"));
    }
    assert_same(&text);
}

/// The block-wise check finds a byte outside printable ASCII wherever it sits (first,
/// last, on either side of a block boundary).
#[test]
fn printable_check_finds_any_other_byte() {
    let text = vec![b'a'; 1000];
    assert!(printable_ascii(&text));
    assert!(printable_ascii(b""));
    assert!(printable_ascii(b"a: b\n~"));
    for at in [0, 1, 255, 256, 257, 511, 512, 999] {
        for bad in [b'\t', b'\r', 0x7f, 0x80, 0xff, 0] {
            let mut text = text.clone();
            text[at] = bad;
            assert!(!printable_ascii(&text), "{bad:#x} at {at}");
        }
    }
}

/// Plain scalars end where serde_yaml_ng ends them: trailing spaces, ` #`, `: `, and in
/// flow context the flow indicators.
#[test]
fn plain_scalars_end_where_serde_yaml_ends_them() {
    for text in [
        "a: b c   \n",
        "a: b c   # comment\n",
        "a: x:y\n",
        "a: x,y]{}\n",
        "a: [x , y ,z]\n",
        "a: {b: x y , c:  z  }\n",
        "a: b#c d\n",
    ] {
        assert_same(text);
    }
}
