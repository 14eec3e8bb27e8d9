//! Text -> proto: YAML/JSON into `serde_json::Value`, v2-era hints, then the proto3 JSON
//! mapping (prost-reflect) into `envoy.config.bootstrap.v3.Bootstrap`, with the failing
//! field's path taken from serde_path_to_error; and the fast way a plain bootstrap takes
//! first ([`fast_load`]: the compact tree straight to wire bytes).

use std::sync::{Mutex, PoisonError};

use baton_proto::pb::envoy::config::bootstrap::v3::bootstrap::StaticResources;
use baton_proto::pb::envoy::config::bootstrap::v3::Bootstrap;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, SerializeOptions};

use crate::error::{ConfigError, Result};
use crate::json_tree::{JsonView, Node};
use crate::static_descriptors::MessageRef;
use crate::v2_hints;

const BOOTSTRAP_TYPE: &str = "envoy.config.bootstrap.v3.Bootstrap";

/// The decoded descriptor pool while kept (see [`pool`]).
static POOL: Mutex<Option<DescriptorPool>> = Mutex::new(None);

/// The descriptor pool of every vendored proto, decoded on first use and kept until
/// [`release_descriptor_pool`] (then decoded again if something needs it). A clone is
/// cheap (the pool is reference counted) and what it hands out keeps it alive.
pub(crate) fn pool() -> DescriptorPool {
    let mut cached = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    cached
        .get_or_insert_with(|| {
            // The FDS is produced by our own build script from the vendored protos, so a
            // decode failure is a build defect, not a configuration problem.
            DescriptorPool::decode(baton_proto::FDS)
                .expect("baton-proto FDS is a valid descriptor set")
        })
        .clone()
}

/// Drops the cached descriptor pool (a few MiB of heap once decoded), and the wire
/// walk's tables built from it (the bootstrap's supported-field check builds them): a server whose
/// configuration is all static needs it again only for `/config_dump` or a later
/// xDS-style resource, which decode it anew. Anything still holding one of its
/// descriptors keeps it alive until dropped.
pub fn release_descriptor_pool() {
    crate::wire_walk::release_tables();
    POOL.lock().unwrap_or_else(PoisonError::into_inner).take();
}

/// Parses YAML (a superset of JSON) into a JSON value, applying `<<` merge keys: by the
/// subset scanner when the text is in its subset ([`crate::yaml_scan`]), else straight from
/// serde_yaml_ng's events when it can ([`crate::yaml_json`]), else through the YAML value
/// tree.
pub(crate) fn parse_text(text: &str) -> Result<serde_json::Value> {
    match crate::yaml_scan::parse(text) {
        Some(json) if json.is_null() => Ok(serde_json::Value::Object(Default::default())),
        Some(json) => Ok(json),
        None => parse_unscanned(text),
    }
}

/// [`parse_text`] of a text the subset scanner did not take.
pub(crate) fn parse_unscanned(text: &str) -> Result<serde_json::Value> {
    if let Some(json) = crate::yaml_json::parse(text) {
        if json.is_null() {
            return Ok(serde_json::Value::Object(Default::default()));
        }
        return Ok(json);
    }
    let mut yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| {
        let mut err = ConfigError::at("", format!("invalid YAML/JSON: {e}"));
        err.line = e.location().map(|l| l.line());
        err
    })?;
    yaml.apply_merge()
        .map_err(|e| ConfigError::at("", format!("invalid YAML merge key: {e}")))?;
    if yaml.is_null() {
        // An empty document is an empty bootstrap, as in Envoy.
        return Ok(serde_json::Value::Object(Default::default()));
    }
    serde_json::to_value(&yaml)
        .map_err(|e| ConfigError::at("", format!("unsupported YAML value: {e}")))
}

/// Converts a JSON value into the Bootstrap proto. The `DynamicMessage` comes back when
/// the mapping went the prost-reflect way, for the caller's supported-field check
/// ([`crate::supported::check`]); `None` when the wire fast path mapped the document and
/// found every set field supported.
pub(crate) fn to_bootstrap(
    json: &serde_json::Value,
) -> Result<(Bootstrap, Option<DynamicMessage>)> {
    v2_hints::check(json)?;
    if let Some(bootstrap) = fast_bootstrap(json) {
        return Ok((bootstrap, None));
    }
    let dynamic = to_dynamic(json, BOOTSTRAP_TYPE)?;
    let bootstrap = crate::transcode::transcode::<Bootstrap>(&dynamic)
        .map_err(|e| ConfigError::at("", format!("internal transcode error: {e}")))?;
    Ok((bootstrap, Some(dynamic)))
}

/// `text` (YAML or JSON) as the message `type_name`: through the compact tree and
/// [`crate::json_wire`] when the encoder maps it (prost-reflect's encoding, so the same
/// message), else through the proto3 JSON mapping, whose errors name the field.
pub(crate) fn parse_message<T: prost::Message + Default>(text: &str, type_name: &str) -> Result<T> {
    let json = match crate::yaml_scan::parse_tree(text) {
        Some(tree) => {
            let tree = if tree.is_null() {
                Node::Object(Box::default())
            } else {
                tree
            };
            let fast = MessageRef::by_name(type_name)
                .and_then(|descriptor| crate::json_wire::encode(descriptor, &tree))
                .and_then(|bytes| T::decode(bytes.as_slice()).ok());
            if let Some(message) = fast {
                return Ok(message);
            }
            tree.into_value()
        }
        None => parse_unscanned(text)?,
    };
    crate::transcode::transcode::<T>(&to_dynamic(&json, type_name)?)
        .map_err(|e| ConfigError::at("", format!("internal transcode error: {e}")))
}

/// One bootstrap text the fast way: scanned into the compact tree
/// ([`crate::yaml_scan::parse_tree`]), which must need none of the JSON passes that run
/// before the mapping (optional configs, `TypedStruct` extensions) and pass the v2-hint
/// check, then mapped by [`fast_bootstrap`]. The tree is gone when this returns (before
/// translation). What the slow way would have done with such a document is exactly this,
/// so only speed and memory differ.
///
/// `Err(Some(json))`: the document leaves the fast path; it comes back as the
/// `serde_json::Value` [`parse_text`] would have given, for the slow way (and its
/// errors). `Err(None)`: the text is outside the scanner's subset.
pub(crate) fn fast_load(
    text: &str,
) -> std::result::Result<(Bootstrap, Option<Vec<u8>>), Option<serde_json::Value>> {
    if let Some((bootstrap, bytes)) = direct_bootstrap(text) {
        return Ok((bootstrap, Some(bytes)));
    }
    let Some(mut tree) = crate::yaml_scan::parse_tree(text) else {
        return Err(None);
    };
    if tree.is_null() {
        tree = Node::Object(Box::default());
    }
    let plain =
        !crate::typed_struct::may_unwrap(&tree) && v2_hints::passes_with_nothing_optional(&tree);
    match plain.then(|| fast_bootstrap(&tree)).flatten() {
        Some(bootstrap) => Ok((bootstrap, None)),
        None => Err(Some(tree.into_value())),
    }
}

/// The bootstrap's wire bytes written as its text is scanned ([`crate::yaml_wire`]: no
/// tree), decoded by prost, and the bytes; `None` when that gives up, and the tree way is
/// taken.
pub(crate) fn direct_bootstrap(text: &str) -> Option<(Bootstrap, Vec<u8>)> {
    let descriptor = MessageRef::by_name(BOOTSTRAP_TYPE)?;
    let encoded = crate::yaml_wire::encode_bootstrap(descriptor, text)?;
    let bootstrap = decode_sized(&encoded.bytes, encoded.listeners, encoded.clusters)?;
    Some((bootstrap, encoded.bytes))
}

/// The bootstrap through [`crate::json_wire`], checked for unsupported fields as it is
/// encoded, and decoded by prost; `None` when the encoder gave
/// up or anything failed, so the prost-reflect way maps the document again and reports
/// whatever is wrong with it as it always did. At 10,000 clusters and routes this is
/// most of the loading time the `DynamicMessage` mapping, its transcode and its walk took.
fn fast_bootstrap<J: JsonView>(json: &J) -> Option<Bootstrap> {
    let descriptor = MessageRef::by_name(BOOTSTRAP_TYPE)?;
    // The supported-field check is read while encoding (what the wire walk of the bytes
    // would answer, without walking them again).
    let bytes = crate::json_wire::encode_supported(descriptor, json)?;
    let resources = json
        .get("static_resources")
        .or_else(|| json.get("staticResources"));
    let listed = |key: &str| {
        resources
            .and_then(|resources| resources.get(key))
            .and_then(J::as_array)
            .map_or(0, <[J]>::len)
    };
    decode_sized(&bytes, listed("listeners"), listed("clusters"))
}

/// `bytes` decoded by prost as a bootstrap with `listeners` and `clusters` static ones.
pub(crate) fn decode_sized(bytes: &[u8], listeners: usize, clusters: usize) -> Option<Bootstrap> {
    use prost::Message;
    // prost decodes a repeated field by pushing: 10,000 clusters ended in a vector grown
    // to 16,384 (55 MB, and the 27 MB one before it while the last doubling copied).
    // Given exact-size vectors first, the decode fills them (it merges into a message
    // already there, which only happens when the bytes hold `static_resources`).
    let mut bootstrap = Bootstrap::default();
    if listeners + clusters > 0 {
        bootstrap.static_resources = Some(StaticResources {
            listeners: Vec::with_capacity(listeners),
            clusters: Vec::with_capacity(clusters),
            ..StaticResources::default()
        });
    }
    bootstrap.merge(bytes).ok()?;
    Some(bootstrap)
}

/// Converts a JSON value into the message `type_name` through the proto3 JSON mapping,
/// naming the failing field's path.
pub(crate) fn to_dynamic(json: &serde_json::Value, type_name: &str) -> Result<DynamicMessage> {
    let descriptor = pool().get_message_by_name(type_name).ok_or_else(|| {
        ConfigError::at(
            "",
            format!("{type_name} descriptor missing from baton-proto"),
        )
    })?;
    let options = DeserializeOptions::new();
    // Untracked first: following the path of every field cost a fifth of the mapping of
    // a 10,000-cluster bootstrap. A failure is mapped again with the path followed, which
    // fails the same way and names the field.
    if let Ok(message) =
        DynamicMessage::deserialize_with_options(descriptor.clone(), json, &options)
    {
        return Ok(message);
    }
    let mut track = serde_path_to_error::Track::new();
    let deserializer = serde_path_to_error::Deserializer::new(json, &mut track);
    DynamicMessage::deserialize_with_options(descriptor, deserializer, &options)
        .map_err(|e| json_error(&track.path().to_string(), &e.to_string()))
}

/// Rewrites prost-reflect's messages into `path.field: unknown field` form.
fn json_error(path: &str, message: &str) -> ConfigError {
    let path = if path == "." { "" } else { path };
    let join = |field: &str| {
        if path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        }
    };
    if let Some(field) = quoted_after(message, "unrecognized field name ") {
        return ConfigError::at(join(&field), "unknown field");
    }
    if let Some(value) = quoted_after(message, "unrecognized enum value ") {
        return ConfigError::at(path, format!("unknown enum value '{value}'"));
    }
    if let Some(name) = quoted_after(message, "message ") {
        if message.ends_with("not found") {
            return ConfigError::at(
                join("@type"),
                format!("unknown or unsupported type 'type.googleapis.com/{name}'"),
            );
        }
    }
    ConfigError::at(path, message)
}

fn quoted_after(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    let rest = rest.strip_prefix('\'')?;
    let end = rest.find('\'')?;
    Some(rest[..end].to_string())
}

/// Envoy-style JSON of a message for `/config_dump`: proto field names, `@type` inlined
/// into Any, secrets redacted.
pub(crate) fn to_json(message: &DynamicMessage) -> serde_json::Value {
    let options = SerializeOptions::new().use_proto_field_name(true);
    let mut message = message.clone();
    crate::redact::redact(&mut message);
    message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }))
}

/// Merges `overlay` into `base` the way Envoy merges `--config-yaml` over `-c`: objects
/// merge field by field, repeated fields are concatenated, scalars are replaced.
pub(crate) fn merge_json(base: &mut serde_json::Value, overlay: serde_json::Value) {
    use serde_json::Value;
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) => merge_json(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (Value::Array(base), Value::Array(overlay)) => base.extend(overlay),
        (base, overlay) => *base = overlay,
    }
}

#[cfg(test)]
mod tests {
    use super::{fast_load, parse_text, to_bootstrap};

    /// Every repository file the fast way maps gives the bootstrap the slow way gives (the
    /// JSON passes before the mapping change nothing in such a document), and a file it
    /// hands back comes back as the value `parse_text` gives.
    #[test]
    fn fast_way_agrees_with_the_slow_way_on_repository_files() {
        let mut fast = 0;
        for (path, text) in crate::test_files::repository_configs() {
            let what = path.display();
            match fast_load(&text) {
                Ok((bootstrap, _)) => {
                    let json = parse_text(&text).expect("the scanner took it");
                    let (slow, dynamic) = to_bootstrap(&json).expect("the slow way maps it");
                    assert!(dynamic.is_none(), "{what}: slow way left the wire path");
                    assert_eq!(bootstrap, slow, "{what}");
                    fast += 1;
                }
                Err(Some(json)) => assert_eq!(
                    Ok(json),
                    parse_text(&text).map_err(|e| e.to_string()),
                    "{what}"
                ),
                Err(None) => {}
            }
        }
        assert!(fast >= 5, "only {fast} repository files took the fast way");
    }
}
