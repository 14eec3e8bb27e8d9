//! `/runtime`: the `layered_runtime` layers and, per key, its value in each layer (`""`
//! where the layer does not set it) and the final value (the last layer's that sets it),
//! in Envoy's shape: the bootstrap's layers, the admin layer showing `/runtime_modify`'s overrides.

use baton_config::model::{RuntimeLayer, RuntimeLayerKind};
use serde_json::{json, Map, Value};

/// The (key, value) pairs a layer sets, sorted by key.
fn layer_values(layer: &RuntimeLayer) -> &[(String, String)] {
    match &layer.kind {
        RuntimeLayerKind::Static(values) => values,
        RuntimeLayerKind::Admin => &[],
    }
}

/// The `/runtime` body for `layers`.
pub(super) fn runtime_json(layers: &[RuntimeLayer]) -> Value {
    let mut keys: Vec<&str> = layers
        .iter()
        .flat_map(|l| layer_values(l).iter().map(|(k, _)| k.as_str()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let mut entries = Map::new();
    for key in keys {
        let per_layer: Vec<&str> = layers
            .iter()
            .map(|l| {
                layer_values(l)
                    .binary_search_by(|(k, _)| k.as_str().cmp(key))
                    .map_or("", |i| layer_values(l)[i].1.as_str())
            })
            .collect();
        let final_value = per_layer
            .iter()
            .rev()
            .find(|v| !v.is_empty())
            .copied()
            .unwrap_or("");
        entries.insert(
            key.to_string(),
            json!({ "layer_values": per_layer, "final_value": final_value }),
        );
    }
    json!({
        "entries": entries,
        "layers": layers.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_layers_overlay_and_empty_means_unset() {
        let layers = vec![
            RuntimeLayer {
                name: "base".into(),
                kind: RuntimeLayerKind::Static(vec![
                    ("a".into(), "1".into()),
                    ("b.c".into(), "x".into()),
                ]),
            },
            RuntimeLayer {
                name: "top".into(),
                kind: RuntimeLayerKind::Static(vec![("a".into(), "2".into())]),
            },
            RuntimeLayer {
                name: "admin".into(),
                kind: RuntimeLayerKind::Admin,
            },
        ];
        let body = runtime_json(&layers);
        assert_eq!(body["layers"], json!(["base", "top", "admin"]));
        assert_eq!(
            body["entries"]["a"],
            json!({ "layer_values": ["1", "2", ""], "final_value": "2" })
        );
        assert_eq!(
            body["entries"]["b.c"],
            json!({ "layer_values": ["x", "", ""], "final_value": "x" })
        );
        assert_eq!(runtime_json(&[]), json!({ "entries": {}, "layers": [] }));
    }
}
