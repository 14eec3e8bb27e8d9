//! The wire walk against the `DynamicMessage` walks it replaces: same findings, same
//! order, on resources as control planes write them and on unusual but valid wire forms
//! (fields out of order, a oneof written twice, explicit defaults, merged messages).

use super::*;
use crate::load::pool;
use prost::Message as _;
use prost_reflect::{DynamicMessage, ReflectMessage, Value};

fn descriptor(name: &str) -> MessageDescriptor {
    pool()
        .get_message_by_name(name)
        .expect("message in the pool")
}

fn number(message: &str, field: &str) -> u32 {
    descriptor(message)
        .get_field_by_name(field)
        .unwrap_or_else(|| panic!("{message}.{field}"))
        .number()
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_field(number: u32, v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    varint(u64::from(number) << 3, &mut out);
    varint(v, &mut out);
    out
}

fn bytes_field(number: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint((u64::from(number) << 3) | 2, &mut out);
    varint(bytes.len() as u64, &mut out);
    out.extend_from_slice(bytes);
    out
}

fn any(type_name: &str, value: &[u8]) -> Vec<u8> {
    [
        bytes_field(1, format!("type.googleapis.com/{type_name}").as_bytes()),
        bytes_field(2, value),
    ]
    .concat()
}

/// The unknown-field walk over a `DynamicMessage` (what `resource::decode` did).
fn reference_unknown(message: &DynamicMessage, path: &mut String, out: &mut Vec<(String, u32)>) {
    for field in message.unknown_fields() {
        if out.len() < MAX_UNKNOWN {
            out.push((path.clone(), field.number()));
        }
    }
    for (field, value) in message.fields() {
        if out.len() >= MAX_UNKNOWN {
            return;
        }
        let parent = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(field.name());
        match value {
            Value::Message(inner) => reference_unknown(inner, path, out),
            Value::List(items) => {
                let list = path.len();
                for (index, item) in items.iter().enumerate() {
                    if let Value::Message(inner) = item {
                        let _ = write!(path, "[{index}]");
                        reference_unknown(inner, path, out);
                        path.truncate(list);
                    }
                }
            }
            Value::Map(entries) => {
                let map = path.len();
                for (key, item) in entries {
                    if let Value::Message(inner) = item {
                        let _ = write!(path, "[{key:?}]");
                        reference_unknown(inner, path, out);
                        path.truncate(map);
                    }
                }
            }
            _ => {}
        }
        path.truncate(parent);
    }
}

/// Both walks agree on `bytes` as message `name`; returns the supported check's result.
fn same(name: &str, bytes: &[u8]) -> Result<(), String> {
    let desc = descriptor(name);
    let decoded = DynamicMessage::decode(desc.clone(), bytes).expect("decodes");
    let expected = supported::check(&decoded).map_err(|e| e.to_string());
    let got = check_supported(&desc, bytes).map_err(|e| e.to_string());
    assert_eq!(got, expected, "supported check of {name}");
    let mut expected_unknown = Vec::new();
    reference_unknown(&decoded, &mut String::new(), &mut expected_unknown);
    let got_unknown = unknown_fields(&desc, bytes).expect("walks");
    assert_eq!(got_unknown, expected_unknown, "unknown fields of {name}");
    if supported_and_no_unknown(&desc, bytes) {
        assert_eq!(
            got,
            Ok(()),
            "one walk passed {name}, the supported check did not"
        );
        assert!(
            got_unknown.is_empty(),
            "one walk passed {name} with unknown fields"
        );
    }
    got
}

const CLUSTER: &str = "envoy.config.cluster.v3.Cluster";

fn cluster_from_json(json: serde_json::Value) -> Vec<u8> {
    crate::load::to_dynamic(&json, CLUSTER)
        .expect("valid cluster")
        .encode_to_vec()
}

#[test]
fn a_control_plane_cluster_passes_both_ways() {
    let bytes = cluster_from_json(serde_json::json!({
        "name": "c0",
        "type": "EDS",
        "connect_timeout": "1s",
        "eds_cluster_config": { "eds_config": { "ads": {}, "resource_api_version": "V3" } },
        "metadata": { "filter_metadata": { "istio": { "config": "x" } } },
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": { "http2_protocol_options": {} }
            }
        }
    }));
    assert_eq!(same(CLUSTER, &bytes), Ok(()));
    // The usual resource takes one walk for both checks.
    assert!(supported_and_no_unknown(&descriptor(CLUSTER), &bytes));
}

#[test]
fn one_walk_defers_to_both_walks_for_an_unknown_field_or_an_unsupported_one() {
    let name = bytes_field(1, b"c");
    assert!(supported_and_no_unknown(&descriptor(CLUSTER), &name));
    let unknown = [name.clone(), varint_field(900, 1)].concat();
    assert!(!supported_and_no_unknown(&descriptor(CLUSTER), &unknown));
    let health_checks = number(CLUSTER, "health_checks");
    let unsupported = [name, bytes_field(health_checks, &[])].concat();
    assert!(!supported_and_no_unknown(
        &descriptor(CLUSTER),
        &unsupported
    ));
}

#[test]
fn the_first_unsupported_field_is_the_lowest_numbered_whatever_the_wire_order() {
    let health_checks = number(CLUSTER, "health_checks");
    let outlier = number(CLUSTER, "outlier_detection");
    let bytes = [
        bytes_field(1, b"c"),
        bytes_field(outlier, &[]),
        bytes_field(health_checks, &[]),
    ]
    .concat();
    let err = same(CLUSTER, &bytes).expect_err("unsupported");
    assert!(err.contains("health_checks"), "{err}");
}

#[test]
fn a_scalar_written_as_its_default_is_not_set() {
    let field = number(CLUSTER, "close_connections_on_host_health_failure");
    let off = [bytes_field(1, b"c"), varint_field(field, 0)].concat();
    assert_eq!(same(CLUSTER, &off), Ok(()));
    let on = [bytes_field(1, b"c"), varint_field(field, 1)].concat();
    assert!(same(CLUSTER, &on).is_err());
    // Last value wins.
    let on_then_off = [varint_field(field, 1), varint_field(field, 0)].concat();
    assert_eq!(same(CLUSTER, &on_then_off), Ok(()));
}

#[test]
fn only_the_last_member_of_a_oneof_is_set() {
    let ring_hash = number(CLUSTER, "ring_hash_lb_config");
    let least_request = number(CLUSTER, "least_request_lb_config");
    let unknown_inside = varint_field(900, 1);
    let replaced = [
        bytes_field(ring_hash, &unknown_inside),
        bytes_field(least_request, &[]),
    ]
    .concat();
    assert_eq!(same(CLUSTER, &replaced), Ok(()));
    let last = [
        bytes_field(least_request, &unknown_inside),
        bytes_field(ring_hash, &[]),
        bytes_field(least_request, &[]),
    ]
    .concat();
    assert_eq!(same(CLUSTER, &last), Ok(()));
    let reversed = [bytes_field(least_request, &[]), bytes_field(ring_hash, &[])].concat();
    assert!(same(CLUSTER, &reversed).is_err());
}

#[test]
fn unknown_fields_are_found_at_every_depth() {
    let eds = number(CLUSTER, "eds_cluster_config");
    let matches = number(CLUSTER, "transport_socket_matches");
    let metadata = number(CLUSTER, "metadata");
    let filter_metadata = number("envoy.config.core.v3.Metadata", "filter_metadata");
    let entry = [bytes_field(1, b"key"), bytes_field(2, &varint_field(77, 5))].concat();
    let bytes = [
        varint_field(999, 1),
        bytes_field(1, b"c"),
        bytes_field(eds, &varint_field(55, 1)),
        bytes_field(matches, &[]),
        bytes_field(
            matches,
            &[bytes_field(1, b"m"), varint_field(66, 2)].concat(),
        ),
        bytes_field(metadata, &bytes_field(filter_metadata, &entry)),
        varint_field(998, 1),
    ]
    .concat();
    same(CLUSTER, &bytes).ok();
    let unknown = unknown_fields(&descriptor(CLUSTER), &bytes).expect("walks");
    assert_eq!(unknown.len(), 5, "{unknown:?}");
}

#[test]
fn occurrences_of_one_message_field_merge() {
    let eds = number(CLUSTER, "eds_cluster_config");
    let service_name = number(
        "envoy.config.cluster.v3.Cluster.EdsClusterConfig",
        "service_name",
    );
    let bytes = [
        bytes_field(eds, &bytes_field(service_name, b"s")),
        bytes_field(1, b"c"),
        bytes_field(eds, &varint_field(55, 1)),
    ]
    .concat();
    same(CLUSTER, &bytes).ok();
}

#[test]
fn any_contents_are_checked_with_their_type() {
    let transport_socket = number(CLUSTER, "transport_socket");
    let tls = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
    let max_session_keys = number(tls, "max_session_keys");
    let socket = |inner: &[u8], type_name: &str| {
        [
            bytes_field(1, b"envoy.transport_sockets.tls"),
            bytes_field(3, &any(type_name, inner)),
        ]
        .concat()
    };
    // A UInt32Value wrapper.
    let keys = bytes_field(max_session_keys, &varint_field(1, 3));
    let unsupported = bytes_field(transport_socket, &socket(&keys, tls));
    let err = same(CLUSTER, &unsupported).expect_err("unsupported");
    assert!(err.contains("max_session_keys"), "{err}");
    let malformed = bytes_field(
        transport_socket,
        &socket(&varint_field(max_session_keys, 3), tls),
    );
    let err = same(CLUSTER, &malformed).expect_err("malformed");
    assert!(err.contains("cannot decode"), "{err}");
    let unknown_type = bytes_field(transport_socket, &socket(&[], "no.such.Type"));
    let err = same(CLUSTER, &unknown_type).expect_err("unknown type");
    assert!(err.contains("@type"), "{err}");
    // A TypedStruct (as Istio sends its own filters) is named by the type it wraps.
    let wrapped = bytes_field(1, b"type.googleapis.com/io.istio.Config");
    let typed_struct = bytes_field(
        transport_socket,
        &socket(&wrapped, "udpa.type.v1.TypedStruct"),
    );
    let err = same(CLUSTER, &typed_struct).expect_err("TypedStruct");
    assert!(
        err.ends_with(
            "unknown type 'type.googleapis.com/io.istio.Config' (given as a TypedStruct)"
        ),
        "{err}"
    );
    let options = number(CLUSTER, "typed_extension_protocol_options");
    let http = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
    let bad = number(http, "upstream_http_protocol_options");
    let auto_sni_off = number(
        "envoy.config.core.v3.UpstreamHttpProtocolOptions",
        "auto_sni",
    );
    let entry = |inner: &[u8]| {
        bytes_field(
            options,
            &[bytes_field(1, b"k"), bytes_field(2, &any(http, inner))].concat(),
        )
    };
    assert_eq!(
        same(
            CLUSTER,
            &entry(&bytes_field(bad, &varint_field(auto_sni_off, 1)))
        ),
        Ok(())
    );
    // A key written twice keeps its last entry.
    let twice = [entry(&varint_field(900, 1)), entry(&[])].concat();
    assert_eq!(same(CLUSTER, &twice), Ok(()));
}

#[test]
fn an_optional_filter_of_an_unknown_type_is_skipped() {
    const FILTER: &str = "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter";
    let typed_config = number(FILTER, "typed_config");
    let is_optional = number(FILTER, "is_optional");
    let filter = [
        bytes_field(1, b"f"),
        bytes_field(typed_config, &any("no.such.Filter", &[])),
    ]
    .concat();
    assert!(same(FILTER, &filter).is_err());
    let optional = [filter.clone(), varint_field(is_optional, 1)].concat();
    assert_eq!(same(FILTER, &optional), Ok(()));
}

#[test]
fn a_route_table_as_rds_sends_it() {
    let json = serde_json::json!({
        "name": "routes",
        "virtual_hosts": [{
            "name": "all",
            "domains": ["*"],
            "routes": [
                { "match": { "path": "/c0" }, "route": { "cluster": "c0" } },
                { "match": { "prefix": "/" }, "route": { "cluster": "c1", "timeout": "5s" } }
            ]
        }]
    });
    let message = crate::load::to_dynamic(&json, "envoy.config.route.v3.RouteConfiguration")
        .expect("valid route configuration");
    let name = message.descriptor().full_name().to_string();
    assert_eq!(same(&name, &message.encode_to_vec()), Ok(()));
}
