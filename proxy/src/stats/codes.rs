//! Per-response-code upstream stats (`upstream_rq_<code>`, `upstream_rq_<class>xx`) and
//! the `external.` / `internal.` request-origin scopes of a cluster. Envoy creates these
//! names the first time a response needs them (they are absent from its `/stats` until
//! then), so they are resolved lazily here too: once per name, after which recording is
//! an atomic load plus relaxed adds.

use std::sync::OnceLock;

use baton_shared_stats::{Counter, Histogram};

use super::Scope;

/// Codes 100..=599: five classes of one hundred.
const CLASSES: usize = 5;
const CODES_PER_CLASS: usize = 100;

/// `<scope>upstream_rq_<code>` and `<scope>upstream_rq_<class>xx`, created on first use.
pub struct ResponseCodeStats {
    scope: Scope,
    classes: [OnceLock<Counter>; CLASSES],
    /// One table per class, allocated when the class is first seen (a cluster that only
    /// answers 2xx pays for one table).
    codes: [OnceLock<Box<[OnceLock<Counter>]>>; CLASSES],
}

impl ResponseCodeStats {
    /// Stats under `scope` (e.g. `cluster.backend.` or `cluster.backend.external.`).
    pub fn new(scope: Scope) -> Self {
        Self {
            scope,
            classes: Default::default(),
            codes: Default::default(),
        }
    }

    /// Counts one response with `status` (codes outside 100..=599 are ignored, as Envoy
    /// ignores them for these names).
    pub fn record(&self, status: u16) {
        let class = usize::from(status / 100);
        if !(1..=CLASSES).contains(&class) {
            return;
        }
        let index = class - 1;
        self.classes[index]
            .get_or_init(|| self.scope.counter(&format!("upstream_rq_{class}xx")))
            .inc();
        let table = self.codes[index].get_or_init(|| {
            (0..CODES_PER_CLASS)
                .map(|_| OnceLock::new())
                .collect::<Vec<_>>()
                .into_boxed_slice()
        });
        if let Some(slot) = table.get(usize::from(status) % CODES_PER_CLASS) {
            slot.get_or_init(|| self.scope.counter(&format!("upstream_rq_{status}")))
                .inc();
        }
    }
}

/// `cluster.<name>.external.*` or `cluster.<name>.internal.*`: the response stats of
/// requests by origin (`x-envoy-internal: true` marks internal ones).
pub struct OriginStats {
    /// `upstream_rq_<code>` / `upstream_rq_<class>xx`
    pub codes: ResponseCodeStats,
    /// `upstream_rq_completed`
    pub upstream_rq_completed: Counter,
    /// `upstream_rq_time`
    pub upstream_rq_time: Histogram,
}

impl OriginStats {
    /// Handles under `scope`.
    pub fn new(scope: Scope) -> Self {
        Self {
            upstream_rq_completed: scope.counter("upstream_rq_completed"),
            upstream_rq_time: scope.histogram("upstream_rq_time"),
            codes: ResponseCodeStats::new(scope),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(name: &str) -> Option<u64> {
        let snapshot = crate::stats::store().snapshot().expect("snapshot");
        snapshot
            .stats
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.value)
    }

    #[test]
    fn codes_and_classes_appear_on_first_use() {
        let store = crate::stats::store();
        let stats = ResponseCodeStats::new(Scope::new(store, "cluster.codes_test."));
        assert_eq!(value("cluster.codes_test.upstream_rq_2xx"), None);
        stats.record(200);
        stats.record(200);
        stats.record(503);
        stats.record(99);
        stats.record(600);
        assert_eq!(value("cluster.codes_test.upstream_rq_200"), Some(2));
        assert_eq!(value("cluster.codes_test.upstream_rq_2xx"), Some(2));
        assert_eq!(value("cluster.codes_test.upstream_rq_503"), Some(1));
        assert_eq!(value("cluster.codes_test.upstream_rq_5xx"), Some(1));
        assert_eq!(value("cluster.codes_test.upstream_rq_4xx"), None);
    }
}
