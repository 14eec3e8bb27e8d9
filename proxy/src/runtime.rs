//! The layered runtime's values as the data plane reads them: the static layers of
//! `layered_runtime` merged in order, then the admin layer's overrides (`/runtime_modify`)
//! when the bootstrap has an admin layer. Readers take a snapshot without locking (one
//! atomic load); writers (startup, the admin endpoint) replace it whole.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use baton_config::model::{RuntimeLayer, RuntimeLayerKind};

/// The runtime at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The bootstrap's layers (names and static values), in order.
    layers: Vec<RuntimeLayer>,
    /// Overrides set through `/runtime_modify`, sorted by key.
    admin: Vec<(String, String)>,
    /// The final value of every key.
    values: HashMap<String, String>,
}

impl Snapshot {
    fn build(layers: Vec<RuntimeLayer>, admin: Vec<(String, String)>) -> Self {
        let mut values = HashMap::new();
        for layer in &layers {
            let set = match &layer.kind {
                RuntimeLayerKind::Static(values) => values.as_slice(),
                RuntimeLayerKind::Admin => admin.as_slice(),
            };
            for (key, value) in set {
                values.insert(key.clone(), value.clone());
            }
        }
        Self {
            layers,
            admin,
            values,
        }
    }

    /// The value of `key`, if any layer sets it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// `key` as an unsigned integer (Envoy's `getInteger`): None when unset or not a
    /// whole number.
    pub fn integer(&self, key: &str) -> Option<u64> {
        let value = self.get(key)?.trim();
        value.parse::<u64>().ok().or_else(|| {
            // Envoy also accepts a number written as a float with no fraction.
            let f: f64 = value.parse().ok()?;
            (f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64).then_some(f as u64)
        })
    }

    /// The layers with the values each sets (the admin layer: its overrides).
    pub fn layers(&self) -> impl Iterator<Item = (&str, &[(String, String)])> {
        self.layers.iter().map(|l| {
            let values = match &l.kind {
                RuntimeLayerKind::Static(values) => values.as_slice(),
                RuntimeLayerKind::Admin => self.admin.as_slice(),
            };
            (l.name.as_str(), values)
        })
    }

    /// The layers with the admin layer's overrides as its values (for `/runtime`).
    pub fn layers_as_set(&self) -> Vec<RuntimeLayer> {
        self.layers()
            .map(|(name, values)| RuntimeLayer {
                name: name.to_string(),
                kind: RuntimeLayerKind::Static(values.to_vec()),
            })
            .collect()
    }

    fn has_admin_layer(&self) -> bool {
        self.layers
            .iter()
            .any(|l| matches!(l.kind, RuntimeLayerKind::Admin))
    }
}

fn cell() -> &'static ArcSwap<Snapshot> {
    static CELL: OnceLock<ArcSwap<Snapshot>> = OnceLock::new();
    CELL.get_or_init(|| ArcSwap::from_pointee(Snapshot::default()))
}

/// The current runtime.
pub fn snapshot() -> Arc<Snapshot> {
    cell().load_full()
}

/// Installs the bootstrap's layers (at startup), keeping no admin overrides.
pub fn install(layers: &[RuntimeLayer]) {
    cell().store(Arc::new(Snapshot::build(layers.to_vec(), Vec::new())));
}

/// `/runtime_modify` could not apply its overrides.
#[derive(Debug, thiserror::Error)]
pub enum ModifyError {
    /// The bootstrap has no admin layer to hold them.
    #[error("No admin layer specified")]
    NoAdminLayer,
}

/// Sets admin-layer overrides (an empty value removes the key's override).
pub fn modify(pairs: &[(String, String)]) -> Result<(), ModifyError> {
    let current = snapshot();
    if !current.has_admin_layer() {
        return Err(ModifyError::NoAdminLayer);
    }
    let mut admin: HashMap<String, String> = current.admin.iter().cloned().collect();
    for (key, value) in pairs {
        if value.is_empty() {
            admin.remove(key);
        } else {
            admin.insert(key.clone(), value.clone());
        }
    }
    let mut admin: Vec<(String, String)> = admin.into_iter().collect();
    admin.sort();
    cell().store(Arc::new(Snapshot::build(current.layers.clone(), admin)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers() -> Vec<RuntimeLayer> {
        vec![
            RuntimeLayer {
                name: "base".into(),
                kind: RuntimeLayerKind::Static(vec![
                    ("a".into(), "1".into()),
                    ("b".into(), "7.0".into()),
                ]),
            },
            RuntimeLayer {
                name: "admin".into(),
                kind: RuntimeLayerKind::Admin,
            },
        ]
    }

    #[test]
    fn admin_overrides_win_and_an_empty_value_removes_them() {
        let snap = Snapshot::build(layers(), vec![("a".into(), "5".into())]);
        assert_eq!(snap.integer("a"), Some(5));
        assert_eq!(snap.integer("b"), Some(7));
        assert_eq!(snap.integer("c"), None);
        let base = Snapshot::build(layers(), Vec::new());
        assert_eq!(base.integer("a"), Some(1));
    }
}
