//! `layered_runtime`: static layers (flattened to dotted keys with string values, as
//! Envoy's `/runtime` shows them) and admin layers. Baton acts on one runtime key (the
//! xDS-TP federation flag, see `xdstp.rs`); the others are shown, not applied; `rtds_layer` and `disk_layer` are refused by
//! `supported.rs`.

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

/// Nested structs become dotted keys; numbers, booleans and strings their text.
fn flatten(
    fields: &prost_types::Struct,
    prefix: &str,
    out: &mut Vec<(String, String)>,
    path: &str,
) -> Result<()> {
    for (name, value) in &fields.fields {
        let key = format!("{prefix}{name}");
        match &value.kind {
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
    fn numbers_read_as_envoy_prints_them() {
        assert_eq!(number_text(4294967295.0), "4294967295");
        assert_eq!(number_text(1000.0), "1000");
        assert_eq!(number_text(0.5), "0.5");
        assert_eq!(number_text(-3.0), "-3");
    }
}
