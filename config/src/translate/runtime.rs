//! `layered_runtime`: static layers (flattened to dotted keys with string values, as
//! Envoy's `/runtime` shows them; a struct with `numerator` or `denominator` stays one
//! entry, a `FractionalPercent` written as compact JSON) and admin layers. The data
//! plane reads the keys Envoy's features read (sampling, route fractions, load balancing,
//! the xDS-TP federation flag, see `xdstp.rs`); `rtds_layer` and `disk_layer` are refused
//! by `supported.rs`.

use std::collections::HashSet;

use baton_proto::pb::envoy::config::bootstrap::v3 as bootstrap_pb;
use prost_types::value::Kind;

use crate::error::{ConfigError, Result};
use crate::model::{RuntimeLayer, RuntimeLayerKind};

/// The layers of `layered_runtime`, in order (later layers overlay earlier ones).
pub(crate) fn layers(
    runtime: Option<&bootstrap_pb::LayeredRuntime>,
    path: &str,
) -> Result<Vec<RuntimeLayer>> {
    use bootstrap_pb::runtime_layer::LayerSpecifier;
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for (i, layer) in runtime.iter().flat_map(|r| r.layers.iter()).enumerate() {
        let lpath = format!("{path}.layers[{i}]");
        if !names.insert(layer.name.as_str()) {
            return Err(ConfigError::at(
                format!("{lpath}.name"),
                format!("duplicate runtime layer name '{}'", layer.name),
            ));
        }
        let kind = match &layer.layer_specifier {
            Some(LayerSpecifier::StaticLayer(fields)) => {
                let mut values = Vec::new();
                flatten(fields, "", &mut values, &format!("{lpath}.static_layer"))?;
                values.sort();
                RuntimeLayerKind::Static(values)
            }
            Some(LayerSpecifier::AdminLayer(_)) => RuntimeLayerKind::Admin,
            Some(LayerSpecifier::DiskLayer(_)) => {
                return Err(ConfigError::unsupported(format!("{lpath}.disk_layer")))
            }
            Some(LayerSpecifier::RtdsLayer(_)) => {
                return Err(ConfigError::unsupported(format!("{lpath}.rtds_layer")))
            }
            None => return Err(ConfigError::at(
                lpath,
                "a runtime layer needs one of static_layer, disk_layer, admin_layer, rtds_layer",
            )),
        };
        out.push(RuntimeLayer {
            name: layer.name.clone(),
            kind,
        });
    }
    Ok(out)
}

/// Whether the static layers leave the feature flag `key` on: the last layer setting it
/// decides; "true" or a non-zero number is on, as Envoy reads boolean runtime keys.
pub(crate) fn flag_enabled(layers: &[RuntimeLayer], key: &str) -> bool {
    let mut enabled = false;
    for layer in layers {
        if let RuntimeLayerKind::Static(values) = &layer.kind {
            if let Some((_, value)) = values.iter().find(|(k, _)| k == key) {
                enabled = value == "true" || value.parse::<f64>().is_ok_and(|n| n != 0.0);
            }
        }
    }
    enabled
}

/// Nested structs become dotted keys; numbers, booleans and strings their text. A
/// struct that is empty or names `numerator` or `denominator` is one entry, as Envoy
/// keeps it (a `FractionalPercent` value), written as compact JSON.
fn flatten(
    fields: &prost_types::Struct,
    prefix: &str,
    out: &mut Vec<(String, String)>,
    path: &str,
) -> Result<()> {
    for (name, value) in &fields.fields {
        let key = format!("{prefix}{name}");
        match &value.kind {
            Some(Kind::StructValue(inner)) if is_fraction_entry(inner) => {
                out.push((key, struct_json(inner)))
            }
            Some(Kind::StructValue(inner)) => flatten(inner, &format!("{key}."), out, path)?,
            Some(Kind::StringValue(s)) => out.push((key, s.clone())),
            Some(Kind::BoolValue(b)) => out.push((key, b.to_string())),
            Some(Kind::NumberValue(n)) => out.push((key, number_text(*n))),
            Some(Kind::ListValue(_)) | Some(Kind::NullValue(_)) | None => {
                return Err(ConfigError::at(
                    path,
                    format!("invalid runtime entry value for {key}"),
                ))
            }
        }
    }
    Ok(())
}

/// Envoy's test for a struct runtime value that is a `FractionalPercent` entry.
fn is_fraction_entry(fields: &prost_types::Struct) -> bool {
    fields.fields.is_empty()
        || fields.fields.contains_key("numerator")
        || fields.fields.contains_key("denominator")
}

/// A struct's fields as compact JSON (keys in order).
fn struct_json(fields: &prost_types::Struct) -> String {
    fn value(v: &prost_types::Value) -> serde_json::Value {
        match &v.kind {
            Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
            Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
            Some(Kind::NumberValue(n)) if n.fract() == 0.0 && n.abs() < 1e15 => {
                serde_json::Value::from(*n as i64)
            }
            Some(Kind::NumberValue(n)) => serde_json::Value::from(*n),
            Some(Kind::StructValue(s)) => serde_json::Value::Object(
                s.fields
                    .iter()
                    .map(|(k, v)| (k.clone(), value(v)))
                    .collect(),
            ),
            Some(Kind::ListValue(l)) => {
                serde_json::Value::Array(l.values.iter().map(value).collect())
            }
            Some(Kind::NullValue(_)) | None => serde_json::Value::Null,
        }
    }
    value(&prost_types::Value {
        kind: Some(Kind::StructValue(fields.clone())),
    })
    .to_string()
}

/// A number as Envoy prints it: integral values without a fraction.
fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e18 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fraction_struct_stays_one_entry() {
        let number = |n: f64| prost_types::Value {
            kind: Some(Kind::NumberValue(n)),
        };
        let text = |t: &str| prost_types::Value {
            kind: Some(Kind::StringValue(t.into())),
        };
        let fraction = prost_types::Struct {
            fields: [
                ("numerator".to_string(), number(9000.0)),
                ("denominator".to_string(), text("TEN_THOUSAND")),
            ]
            .into(),
        };
        let nested = prost_types::Struct {
            fields: [("value".to_string(), number(3.0))].into(),
        };
        let layer = prost_types::Struct {
            fields: [
                (
                    "a.fraction".to_string(),
                    prost_types::Value {
                        kind: Some(Kind::StructValue(fraction)),
                    },
                ),
                (
                    "other".to_string(),
                    prost_types::Value {
                        kind: Some(Kind::StructValue(nested)),
                    },
                ),
            ]
            .into(),
        };
        let mut out = Vec::new();
        flatten(&layer, "", &mut out, "p").expect("flattens");
        assert_eq!(
            out,
            vec![
                (
                    "a.fraction".to_string(),
                    r#"{"denominator":"TEN_THOUSAND","numerator":9000}"#.to_string()
                ),
                ("other.value".to_string(), "3".to_string()),
            ]
        );
    }

    #[test]
    fn numbers_read_as_envoy_prints_them() {
        assert_eq!(number_text(4294967295.0), "4294967295");
        assert_eq!(number_text(1000.0), "1000");
        assert_eq!(number_text(0.5), "0.5");
        assert_eq!(number_text(-3.0), "-3");
    }
}
