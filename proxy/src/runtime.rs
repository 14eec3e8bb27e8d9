//! The layered runtime's values as the data plane reads them: the static layers of
//! `layered_runtime` merged in order, then the admin layer's overrides (`/runtime_modify`)
//! when the bootstrap has an admin layer. Readers take a snapshot without locking (one
//! atomic load); writers (startup, the admin endpoint) replace it whole, counting each
//! load in Envoy's `runtime.*` stats.

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
    /// The load balancers' keys, parsed once so that a pick reads them without a lookup.
    lb: LbKeys,
}

/// The runtime keys Envoy's load balancers read (None: unset or not a whole number).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LbKeys {
    /// `upstream.healthy_panic_threshold` (percent; capped at 100 by the reader).
    pub healthy_panic_threshold: Option<u64>,
    /// `upstream.zone_routing.enabled` (percent of picks that try zone routing).
    pub zone_routing_enabled: Option<u64>,
    /// `upstream.zone_routing.min_cluster_size`
    pub zone_routing_min_cluster_size: Option<u64>,
    /// `upstream.zone_routing.force_local_zone.min_size` (0 counts as unset, as in Envoy).
    pub force_local_zone_min_size: Option<u64>,
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
        let mut snapshot = Self {
            layers,
            admin,
            values,
            lb: LbKeys::default(),
        };
        snapshot.lb = LbKeys {
            healthy_panic_threshold: snapshot.integer("upstream.healthy_panic_threshold"),
            zone_routing_enabled: snapshot.integer("upstream.zone_routing.enabled"),
            zone_routing_min_cluster_size: snapshot
                .integer("upstream.zone_routing.min_cluster_size"),
            force_local_zone_min_size: snapshot
                .integer("upstream.zone_routing.force_local_zone.min_size")
                .filter(|v| *v > 0),
        };
        snapshot
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

    /// Whether `/runtime_modify` can change values (the bootstrap has an admin layer).
    pub fn has_admin_layer(&self) -> bool {
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

/// `runtime.*`: Envoy's loader stats. Baton has no disk layers (refused in config) and
/// no load that can fail, so `override_dir_exists` and `load_error` stay 0 as Envoy's do
/// without them.
struct LoaderStats {
    load_success: baton_shared_stats::Counter,
    override_dir_not_exists: baton_shared_stats::Counter,
    num_keys: baton_shared_stats::Gauge,
    num_layers: baton_shared_stats::Gauge,
    admin_overrides_active: baton_shared_stats::Gauge,
    _load_error: baton_shared_stats::Counter,
    _override_dir_exists: baton_shared_stats::Counter,
}

/// Counts `loads` loads of `snapshot` (None: no stats store, e.g. unit tests).
fn record_loads(snapshot: &Snapshot, loads: u64) {
    static STATS: OnceLock<Option<LoaderStats>> = OnceLock::new();
    let stats = STATS.get_or_init(|| {
        crate::stats::installed().then(|| {
            let scope = crate::stats::Scope::new(crate::stats::store(), "runtime.");
            LoaderStats {
                load_success: scope.counter("load_success"),
                override_dir_not_exists: scope.counter("override_dir_not_exists"),
                num_keys: scope.gauge("num_keys"),
                num_layers: scope.gauge("num_layers"),
                admin_overrides_active: scope.gauge("admin_overrides_active"),
                _load_error: scope.counter("load_error"),
                _override_dir_exists: scope.counter("override_dir_exists"),
            }
        })
    });
    if let Some(stats) = stats {
        stats.load_success.add(loads);
        // Envoy counts a missing override directory on every load.
        stats.override_dir_not_exists.add(loads);
        stats.num_keys.set(snapshot.values.len() as u64);
        stats.num_layers.set(snapshot.layers.len() as u64);
        stats
            .admin_overrides_active
            .set(u64::from(!snapshot.admin.is_empty()));
    }
}

/// The load balancers' runtime keys now (one atomic load, no lookup: read per pick).
pub fn lb_keys() -> LbKeys {
    cell().load().lb
}

/// Installs the bootstrap's layers (at startup), keeping no admin overrides.
pub fn install(layers: &[RuntimeLayer]) {
    let snapshot = Arc::new(Snapshot::build(layers.to_vec(), Vec::new()));
    // Envoy loads twice while starting (again once its runtime discovery is ready, also
    // without RTDS layers): counted the same.
    record_loads(&snapshot, 2);
    cell().store(snapshot);
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
    let snapshot = Arc::new(Snapshot::build(current.layers.clone(), admin));
    record_loads(&snapshot, 1);
    cell().store(snapshot);
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

    #[test]
    fn load_balancer_keys_are_parsed_once_per_snapshot() {
        let layer = RuntimeLayer {
            name: "base".into(),
            kind: RuntimeLayerKind::Static(vec![
                ("upstream.healthy_panic_threshold".into(), "0".into()),
                ("upstream.zone_routing.enabled".into(), "25".into()),
                (
                    "upstream.zone_routing.force_local_zone.min_size".into(),
                    "0".into(),
                ),
            ]),
        };
        let snap = Snapshot::build(vec![layer], Vec::new());
        assert_eq!(
            snap.lb,
            LbKeys {
                healthy_panic_threshold: Some(0),
                zone_routing_enabled: Some(25),
                zone_routing_min_cluster_size: None,
                force_local_zone_min_size: None,
            }
        );
    }
}
