//! `TypedStruct` bootstrap extensions. Istio gives `bootstrap_extensions` as an
//! `xds.type.v3.TypedStruct` (or the older `udpa.type.v1.TypedStruct`): the extension's
//! type URL plus its config as a JSON-like Struct. Envoy converts one into the typed
//! message through the JSON mapping; this pass does the same on the JSON before it is
//! parsed, so the entry reads as if given typed (and an extension type Baton does not
//! know is refused under its own type URL, not the wrapper's).

use serde_json::{Map, Value};

/// The wrapper's type URLs (only the message name after the last `/` is compared).
const TYPED_STRUCT_TYPES: &[&str] = &["xds.type.v3.TypedStruct", "udpa.type.v1.TypedStruct"];

/// The error text for an Any whose type Baton does not know. A TypedStruct anywhere
/// but `bootstrap_extensions` is not unwrapped, so name the type it wraps (what Envoy
/// looks up) rather than the wrapper's; `value` is the Any's `value` bytes.
pub(crate) fn unknown_type_message(type_url: &str, value: &[u8]) -> String {
    let name = type_url.rsplit('/').next().unwrap_or_default();
    match TYPED_STRUCT_TYPES
        .contains(&name)
        .then(|| crate::wire_walk::string_field_1(value))
        .flatten()
        .filter(|inner| !inner.is_empty())
    {
        Some(inner) => format!("unknown type '{inner}' (given as a TypedStruct)"),
        None => format!("unknown type '{type_url}'"),
    }
}

/// Whether [`unwrap_bootstrap_extensions`] might change `bootstrap`: it has bootstrap
/// extensions at all.
pub(crate) fn may_unwrap<J: crate::json_tree::JsonView>(bootstrap: &J) -> bool {
    ["bootstrap_extensions", "bootstrapExtensions"]
        .iter()
        .any(|key| bootstrap.get(key).is_some())
}

/// Rewrites every `bootstrap_extensions[].typed_config` given as a TypedStruct into the
/// typed form `{"@type": <type_url>, ...<value>}`.
pub(crate) fn unwrap_bootstrap_extensions(bootstrap: &mut Value) {
    let Value::Object(root) = bootstrap else {
        return;
    };
    for key in ["bootstrap_extensions", "bootstrapExtensions"] {
        if let Some(Value::Array(extensions)) = root.get_mut(key) {
            for extension in extensions.iter_mut() {
                let Value::Object(extension) = extension else {
                    continue;
                };
                for config_key in ["typed_config", "typedConfig"] {
                    if let Some(config) = extension.get_mut(config_key) {
                        unwrap(config);
                    }
                }
            }
        }
    }
}

/// One Any: replaced when it is a TypedStruct with a type URL and an object value (or
/// none); anything else is left for the parser to judge.
fn unwrap(any: &mut Value) {
    let Value::Object(fields) = any else {
        return;
    };
    let is_typed_struct = fields
        .get("@type")
        .and_then(Value::as_str)
        .and_then(|url| url.rsplit('/').next())
        .is_some_and(|name| TYPED_STRUCT_TYPES.contains(&name));
    if !is_typed_struct {
        return;
    }
    let Some(type_url) = fields
        .get("type_url")
        .or_else(|| fields.get("typeUrl"))
        .and_then(Value::as_str)
        .filter(|url| !url.is_empty())
    else {
        return;
    };
    let mut typed = Map::new();
    typed.insert("@type".to_string(), Value::String(type_url.to_string()));
    match fields.get("value") {
        None | Some(Value::Null) => {}
        Some(Value::Object(value)) => {
            typed.extend(value.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Some(_) => return,
    }
    *any = Value::Object(typed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_struct_becomes_the_typed_message() {
        let mut json = serde_json::json!({
            "bootstrap_extensions": [
                { "name": "a", "typed_config": {
                    "@type": "type.googleapis.com/udpa.type.v1.TypedStruct",
                    "type_url": "type.googleapis.com/x.v3.Listener",
                    "value": { "buffer_size_kb": 64 } } },
                { "name": "b", "typed_config": {
                    "@type": "type.googleapis.com/xds.type.v3.TypedStruct",
                    "type_url": "type.googleapis.com/x.v3.Other" } },
                { "name": "c", "typed_config": { "@type": "type.googleapis.com/x.v3.Typed", "k": 1 } }
            ]
        });
        unwrap_bootstrap_extensions(&mut json);
        assert_eq!(
            json["bootstrap_extensions"],
            serde_json::json!([
                { "name": "a", "typed_config": { "@type": "type.googleapis.com/x.v3.Listener", "buffer_size_kb": 64 } },
                { "name": "b", "typed_config": { "@type": "type.googleapis.com/x.v3.Other" } },
                { "name": "c", "typed_config": { "@type": "type.googleapis.com/x.v3.Typed", "k": 1 } }
            ])
        );
    }
}
