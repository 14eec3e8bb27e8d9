//! The bootstrap's `node_context_params`: which node fields Envoy 1.40 adds to the
//! context parameters of an `xdstp://` collection subscription (CDS / LDS
//! `*_resources_locator`), named `xds.node.<field>`, and how they are written into the
//! name on the wire. Singleton `xdstp://` names get none (measured on Envoy 1.40).

use baton_proto::pb::envoy::config::core::v3 as core_pb;
use prost_types::value::Kind;

use super::xdstp::{percent_decode, percent_encode, PARAM_RESERVED};

/// `collection` (a wire name from [`super::xdstp`], parameters sorted and encoded) with
/// the context parameters `node_context_params` name, rendered from `node` (the node as
/// sent to control planes). A parameter the locator already has keeps the locator's
/// value; names Envoy does not know are ignored; the result is sorted by key.
pub fn with_node_context(collection: &str, node: &core_pb::Node, params: &[String]) -> String {
    let node_pairs = node_pairs(node, params);
    if node_pairs.is_empty() {
        return collection.to_string();
    }
    let (path, query) = collection
        .split_once('?')
        .map_or((collection, None), |(p, q)| (p, Some(q)));
    // (decoded key, encoded `key=value`)
    let mut pairs: Vec<(String, String)> = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .map(|pair| {
            let key = pair.split_once('=').map_or(pair, |(k, _)| k);
            (percent_decode(key), pair.to_string())
        })
        .collect();
    for (key, value) in node_pairs {
        if pairs.iter().all(|(k, _)| *k != key) {
            let encoded = format!(
                "{}={}",
                percent_encode(&key, PARAM_RESERVED),
                percent_encode(&value, PARAM_RESERVED)
            );
            pairs.push((key, encoded));
        }
    }
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let query: Vec<&str> = pairs.iter().map(|(_, pair)| pair.as_str()).collect();
    format!("{path}?{}", query.join("&"))
}

/// The `xds.node.*` parameters `params` select, decoded, in the order named.
fn node_pairs(node: &core_pb::Node, params: &[String]) -> Vec<(String, String)> {
    let locality = node.locality.clone().unwrap_or_default();
    let build = match &node.user_agent_version_type {
        Some(core_pb::node::UserAgentVersionType::UserAgentBuildVersion(b)) => Some(b),
        _ => None,
    };
    let mut pairs = Vec::new();
    for param in params {
        let value = match param.as_str() {
            "id" => node.id.clone(),
            "cluster" => node.cluster.clone(),
            "user_agent_name" => node.user_agent_name.clone(),
            "locality.region" => locality.region.clone(),
            "locality.zone" => locality.zone.clone(),
            "locality.sub_zone" => locality.sub_zone.clone(),
            "user_agent_version" => match &node.user_agent_version_type {
                Some(core_pb::node::UserAgentVersionType::UserAgentVersion(v)) => v.clone(),
                _ => String::new(),
            },
            "user_agent_build_version.version" => {
                let v = build.and_then(|b| b.version).unwrap_or_default();
                format!("{}.{}.{}", v.major_number, v.minor_number, v.patch)
            }
            "metadata" => {
                push_metadata(&mut pairs, node.metadata.as_ref(), "xds.node.metadata.");
                continue;
            }
            "user_agent_build_version.metadata" => {
                let metadata = build.and_then(|b| b.metadata.as_ref());
                let prefix = "xds.node.user_agent_build_version.metadata.";
                push_metadata(&mut pairs, metadata, prefix);
                continue;
            }
            _ => continue,
        };
        pairs.push((format!("xds.node.{param}"), value));
    }
    pairs
}

/// One parameter per top-level metadata key, its value as compact JSON (Envoy writes
/// the string `v` as `"v"` and the number 1 as `1`).
fn push_metadata(
    pairs: &mut Vec<(String, String)>,
    metadata: Option<&prost_types::Struct>,
    prefix: &str,
) {
    for (key, value) in metadata.into_iter().flat_map(|m| &m.fields) {
        let mut json = String::new();
        write_json(&mut json, value);
        pairs.push((format!("{prefix}{key}"), json));
    }
}

fn write_json(out: &mut String, value: &prost_types::Value) {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => out.push_str("null"),
        Some(Kind::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Kind::NumberValue(n)) => out.push_str(&number(*n)),
        Some(Kind::StringValue(s)) => {
            out.push_str(&serde_json::Value::from(s.as_str()).to_string())
        }
        Some(Kind::ListValue(list)) => {
            out.push('[');
            for (i, v) in list.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, v);
            }
            out.push(']');
        }
        Some(Kind::StructValue(s)) => {
            out.push('{');
            for (i, (k, v)) in s.fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::from(k.as_str()).to_string());
                out.push(':');
                write_json(out, v);
            }
            out.push('}');
        }
    }
}

/// A JSON number as protobuf writes a `Value`'s double: whole numbers without `.0`.
fn number(n: f64) -> String {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if n.fract() == 0.0 && n.abs() < EXACT {
        // Whole and exactly representable: the cast is lossless.
        #[allow(clippy::cast_possible_truncation)]
        let whole = n as i64;
        whole.to_string()
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The node and parameters of the Envoy 1.40 measurement in
    /// `tests/tests/xdstp_names.rs`.
    #[test]
    fn node_parameters_are_envoys() {
        use prost_types::{ListValue, Struct, Value};
        let v = |kind| Value { kind: Some(kind) };
        let object = |fields: Vec<(&str, Value)>| Struct {
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        };
        let list = ListValue {
            values: vec![v(Kind::NumberValue(1.0)), v(Kind::StringValue("y".into()))],
        };
        let metadata = object(vec![
            ("k", v(Kind::StringValue("v".into()))),
            ("n", v(Kind::NumberValue(1.0))),
            (
                "o",
                v(Kind::StructValue(object(vec![(
                    "x",
                    v(Kind::ListValue(list)),
                )]))),
            ),
        ]);
        let node = core_pb::Node {
            id: "test-node".into(),
            cluster: "test-cluster".into(),
            locality: Some(core_pb::Locality {
                region: "r 1".into(),
                zone: "z&1".into(),
                sub_zone: "s".into(),
            }),
            metadata: Some(metadata),
            user_agent_name: "envoy".into(),
            user_agent_version_type: Some(
                core_pb::node::UserAgentVersionType::UserAgentBuildVersion(core_pb::BuildVersion {
                    version: Some(baton_proto::pb::envoy::r#type::v3::SemanticVersion {
                        major_number: 1,
                        minor_number: 40,
                        patch: 0,
                    }),
                    metadata: None,
                }),
            ),
            ..Default::default()
        };
        let params: Vec<String> = [
            "id",
            "cluster",
            "locality.zone",
            "metadata",
            "user_agent_name",
            "locality.region",
            "user_agent_version",
            "user_agent_build_version.version",
            "bogus",
        ]
        .map(String::from)
        .to_vec();
        let name = with_node_context("xdstp://cp/T/mesh/*?b=2&zz=1", &node, &params);
        assert_eq!(
            name,
            "xdstp://cp/T/mesh/*?b=2&xds.node.cluster=test-cluster&xds.node.id=test-node\
             &xds.node.locality.region=r 1&xds.node.locality.zone=z%261\
             &xds.node.metadata.k=\"v\"&xds.node.metadata.n=1\
             &xds.node.metadata.o={\"x\":%5B1,\"y\"%5D}\
             &xds.node.user_agent_build_version.version=1.40.0\
             &xds.node.user_agent_name=envoy&xds.node.user_agent_version=&zz=1"
        );
    }

    #[test]
    fn locator_parameters_win_and_no_parameters_change_nothing() {
        let node = core_pb::Node {
            id: "n".into(),
            ..Default::default()
        };
        let id = vec!["id".to_string()];
        assert_eq!(
            with_node_context("xdstp://cp/T/*?xds.node.id=mine", &node, &id),
            "xdstp://cp/T/*?xds.node.id=mine"
        );
        assert_eq!(
            with_node_context("xdstp://cp/T/*", &node, &[]),
            "xdstp://cp/T/*"
        );
        assert_eq!(
            with_node_context("xdstp://cp/T/*", &node, &id),
            "xdstp://cp/T/*?xds.node.id=n"
        );
    }
}
