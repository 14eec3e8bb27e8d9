//! The layered runtime's values as the data plane reads them: the static layers of
//! `layered_runtime` merged in order, then the admin layer's overrides (`/runtime_modify`)
//! when the bootstrap has an admin layer. Readers take a snapshot without locking (one
//! atomic load); writers (startup, the admin endpoint) replace it whole, counting each
//! load in Envoy's `runtime.*` stats.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use baton_config::model::{Fraction, RuntimeLayer, RuntimeLayerKind};

/// The runtime at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The bootstrap's layers (names and static values), in order.
    layers: Vec<RuntimeLayer>,
    /// Overrides set through `/runtime_modify`, sorted by key.
    admin: Vec<(String, String)>,
    /// The final value of every key.
    values: HashMap<String, String>,
    /// The final values that are `FractionalPercent`s (a static layer's struct entries).
    fractions: HashMap<String, Fraction>,
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
        let fractions = values
            .iter()
            .filter_map(|(key, value)| Some((key.clone(), fraction_value(value)?)))
            .collect();
        let mut snapshot = Self {
            layers,
            admin,
            values,
            fractions,
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

    /// Envoy's `featureEnabled` with a `FractionalPercent` default: the key's
    /// `FractionalPercent` value, else its whole number as a percentage (over 100:
    /// always), else `default`; then `drawn() % denominator < numerator`. `drawn` runs only
    /// when the answer is not certain.
    pub fn feature_enabled(
        &self,
        key: &str,
        default: Fraction,
        drawn: impl FnOnce() -> u64,
    ) -> bool {
        let share = match self.fractions.get(key) {
            Some(fraction) => *fraction,
            None => match self.integer(key) {
                Some(percent) if percent > 100 => return true,
                Some(percent) => Fraction {
                    numerator: percent,
                    denominator: 100,
                },
                None => default,
            },
        };
        match share.numerator {
            0 => false,
            n if n >= share.denominator => true,
            n => drawn() % share.denominator < n,
        }
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

/// A runtime value written as a `FractionalPercent` (compact JSON from a static layer's
/// struct): `numerator` (default 0) and `denominator` by name or number (default
/// `HUNDRED`). Anything else is not one.
fn fraction_value(value: &str) -> Option<Fraction> {
    if !value.starts_with('{') {
        return None;
    }
    let serde_json::Value::Object(fields) = serde_json::from_str(value).ok()? else {
        return None;
    };
    let numerator = match fields.get("numerator") {
        None => 0,
        Some(n) => n.as_u64().or_else(|| {
            let f = n.as_f64()?;
            (f >= 0.0 && f.fract() == 0.0 && f <= f64::from(u32::MAX)).then_some(f as u64)
        })?,
    };
    let denominator = match fields.get("denominator") {
        None => 100,
        Some(serde_json::Value::String(name)) => match name.as_str() {
            "HUNDRED" => 100,
            "TEN_THOUSAND" => 10_000,
            "MILLION" => 1_000_000,
            _ => return None,
        },
        Some(number) => match number.as_u64()? {
            0 => 100,
            1 => 10_000,
            2 => 1_000_000,
            _ => return None,
        },
    };
    Some(Fraction {
        numerator,
        denominator,
    })
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

    #[test]
    fn feature_checks_read_fractions_then_percentages_then_the_default() {
        let layer = RuntimeLayer {
            name: "base".into(),
            kind: RuntimeLayerKind::Static(vec![
                (
                    "f".into(),
                    r#"{"denominator":"TEN_THOUSAND","numerator":9000}"#.into(),
                ),
                ("g".into(), r#"{"numerator":1}"#.into()),
                ("p".into(), "50".into()),
                ("over".into(), "101".into()),
                ("bad".into(), r#"{"denominator":"HALF"}"#.into()),
            ]),
        };
        let snap = Snapshot::build(vec![layer], Vec::new());
        let ten_percent = Fraction {
            numerator: 10,
            denominator: 100,
        };
        let at = |key: &str, drawn: u64| snap.feature_enabled(key, ten_percent, || drawn);
        assert!(at("f", 8_999) && !at("f", 9_000) && at("f", 18_999));
        assert!(
            at("g", 100) && !at("g", 101),
            "denominator HUNDRED by default"
        );
        assert!(at("p", 49) && !at("p", 50) && at("p", 149));
        assert!(at("over", 99));
        assert!(
            at("bad", 9) && !at("bad", 10),
            "not a fraction: the default"
        );
        assert!(at("unset", 9) && !at("unset", 10));
        let never = Fraction {
            numerator: 0,
            denominator: 100,
        };
        assert!(!snap.feature_enabled("unset", never, || unreachable!("certain")));
        assert!(snap.feature_enabled("unset", Fraction::ALL, || unreachable!("certain")));
    }
}
