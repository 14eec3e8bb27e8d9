//! `transport_socket_matcher` translation: what it selects per endpoint metadata and the
//! configs it refuses (inputs over the downstream connection, `keep_matching`, empty
//! lists, duplicate entry names).

use baton_config::load_yaml_str;
use baton_config::model::{FilterMetadata, SocketMatchMetadata};

const INPUTS: &str =
    "type.googleapis.com/envoy.extensions.matching.common_inputs.transport_socket.v3";

fn cluster(matcher: &str) -> String {
    format!(
        "static_resources:\n  clusters:\n  - name: c\n    transport_socket_matches: [ {{ name: a }}, {{ name: b }} ]\n    transport_socket_matcher: {matcher}\n"
    )
}

fn input(kind: &str, key: &str) -> String {
    format!("{{ name: i, typed_config: {{ '@type': {INPUTS}.{kind}, filter: f, path: [ {{ key: {key} }} ] }} }}")
}

fn action(name: &str) -> String {
    format!("{{ action: {{ name: n, typed_config: {{ '@type': {INPUTS}.TransportSocketNameAction, name: {name} }} }} }}")
}

fn filters(json: &str) -> FilterMetadata {
    let value: serde_json::Value = serde_json::from_str(json).expect("test JSON");
    let mut out = FilterMetadata::new();
    for (filter, fields) in value.as_object().expect("object") {
        let s = prost_types::Struct {
            fields: fields
                .as_object()
                .expect("object")
                .iter()
                .map(|(k, v)| (k.clone(), to_value(v)))
                .collect(),
        };
        out.insert(filter.clone(), s);
    }
    out
}

fn to_value(v: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(to_value).collect(),
        }),
        serde_json::Value::Object(o) => Kind::StructValue(prost_types::Struct {
            fields: o.iter().map(|(k, v)| (k.clone(), to_value(v))).collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

fn select(matcher: &str, endpoint: &str, locality: &str) -> Option<usize> {
    let config = load_yaml_str(&cluster(matcher)).expect("matcher accepted");
    let md = SocketMatchMetadata {
        endpoint: filters(endpoint),
        locality: filters(locality),
    };
    config.model.clusters[0].transport_socket_for(Some(&md))
}

fn err(matcher: &str) -> String {
    match load_yaml_str(&cluster(matcher)) {
        Ok(_) => panic!("accepted: {matcher}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn lists_nested_matchers_and_trees_select_as_envoy() {
    // A nested matcher that does not match lets the list go on to the next matcher.
    let nested = format!(
        "{{ matcher_list: {{ matchers: [ {{ predicate: {{ single_predicate: {{ input: {}, value_match: {{ exact: zz }} }} }}, on_match: {} }} ] }} }}",
        input("EndpointMetadataInput", "k"),
        action("a")
    );
    let list = format!(
        "{{ matcher_list: {{ matchers: [ {{ predicate: {{ single_predicate: {{ input: {i}, value_match: {{ exact: x }} }} }}, on_match: {{ matcher: {nested} }} }}, {{ predicate: {{ not_matcher: {{ single_predicate: {{ input: {i}, value_match: {{ exact: y }} }} }} }}, on_match: {b} }} ] }} }}",
        i = input("EndpointMetadataInput", "k"),
        b = action("b"),
    );
    assert_eq!(select(&list, r#"{"f":{"k":"x"}}"#, "{}"), Some(1));
    // A missing value fails the predicate, so its negation holds.
    assert_eq!(select(&list, "{}", "{}"), Some(1));
    assert_eq!(select(&list, r#"{"f":{"k":"y"}}"#, "{}"), None);
    // Non-string values are read as Envoy prints them.
    let tree = format!(
        "{{ matcher_tree: {{ input: {}, exact_match_map: {{ map: {{ 'true': {}, '1e+06': {} }} }} }}, on_no_match: {} }}",
        input("LocalityMetadataInput", "k"),
        action("a"),
        action("b"),
        action("missing"),
    );
    assert_eq!(select(&tree, "{}", r#"{"f":{"k":true}}"#), Some(0));
    assert_eq!(select(&tree, "{}", r#"{"f":{"k":1000000}}"#), Some(1));
    assert_eq!(select(&tree, "{}", r#"{"f":{"k":"other"}}"#), None);
}

#[test]
fn refused_configs_name_the_field() {
    let fs = format!(
        "{{ matcher_tree: {{ input: {{ name: fs, typed_config: {{ '@type': {INPUTS}.FilterStateInput, key: k }} }}, exact_match_map: {{ map: {{ x: {} }} }} }} }}",
        action("a")
    );
    let e = err(&fs);
    assert!(
        e.starts_with("static_resources.clusters[0].transport_socket_matcher.matcher_tree.input.typed_config: transport socket matcher input 'fs'")
            && e.contains("not supported by Baton yet"),
        "{e}"
    );
    let keep = format!(
        "{{ on_no_match: {{ keep_matching: true, action: {{ name: n, typed_config: {{ '@type': {INPUTS}.TransportSocketNameAction, name: a }} }} }} }}"
    );
    let e = err(&keep);
    assert!(
        e.starts_with("static_resources.clusters[0].transport_socket_matcher.on_no_match.keep_matching: not supported by Baton yet"),
        "{e}"
    );
    let e = err("{ matcher_list: { matchers: [] } }");
    assert!(
        e.starts_with("static_resources.clusters[0].transport_socket_matcher.matcher_list.matchers: value must contain at least 1 item(s)"),
        "{e}"
    );
    let e = load_yaml_str(&format!(
        "static_resources:\n  clusters:\n  - name: c\n    transport_socket_matches: [ {{ name: a }}, {{ name: a }} ]\n    transport_socket_matcher: {{ on_no_match: {} }}\n",
        action("a")
    ))
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        e.starts_with("static_resources.clusters[0].transport_socket_matches[1].name: Duplicate transport socket name 'a'"),
        "{e}"
    );
}
