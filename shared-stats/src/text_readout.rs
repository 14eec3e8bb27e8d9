//! Text readouts (Envoy's `TextReadout` stats, such as `sds.<name>.version_text`): a
//! string per name, held in this process only. Unlike counters and gauges they are not in
//! the shared region: Envoy does not carry them over a hot restart either, and the new
//! generation sets its own (an SDS secret is re-read at start).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// One text readout's value and whether it was ever set (Envoy's "used").
#[derive(Debug, Default)]
struct TextCell {
    value: String,
    used: bool,
}

/// A text readout handle. Cloning is cheap; `set` takes a lock (control-plane paths only).
#[derive(Clone)]
pub struct TextReadout {
    cell: Arc<Mutex<TextCell>>,
}

impl TextReadout {
    /// Replaces the text.
    pub fn set(&self, value: &str) {
        let mut cell = lock(&self.cell);
        cell.value.clear();
        cell.value.push_str(value);
        cell.used = true;
    }
}

/// One text readout as rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextReadoutValue {
    /// Envoy-style dotted name.
    pub name: String,
    /// The text.
    pub value: String,
    /// Whether it was ever set.
    pub used: bool,
}

/// This process's text readouts by name.
#[derive(Default)]
pub(crate) struct TextReadouts {
    by_name: Mutex<BTreeMap<String, Arc<Mutex<TextCell>>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every mutation is a single assignment: a panicking holder leaves it consistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl TextReadouts {
    /// The readout `name`, created empty (unused) on first use.
    pub(crate) fn get(&self, name: &str) -> TextReadout {
        let mut by_name = lock(&self.by_name);
        let cell = by_name.entry(name.to_string()).or_default();
        TextReadout {
            cell: Arc::clone(cell),
        }
    }

    /// Every readout, in name order.
    pub(crate) fn values(&self) -> Vec<TextReadoutValue> {
        lock(&self.by_name)
            .iter()
            .map(|(name, cell)| {
                let cell = lock(cell);
                TextReadoutValue {
                    name: name.clone(),
                    value: cell.value.clone(),
                    used: cell.used,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_readout_is_unused_until_set_and_shared_by_name() {
        let readouts = TextReadouts::default();
        let first = readouts.get("sds.a.version_text");
        assert!(!readouts.values()[0].used);
        readouts.get("sds.a.version_text").set("v2");
        first.set("v3");
        let values = readouts.values();
        assert_eq!(values.len(), 1);
        assert_eq!(values[0].value, "v3");
        assert!(values[0].used);
    }
}
