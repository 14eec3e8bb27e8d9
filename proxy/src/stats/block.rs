//! A bundle's stats under one prefix as one block of the region ([`ScopeBlock`]): a
//! cluster's ~50 names cost one region entry, one index entry and one run of cells
//! instead of ~50 of each. The block's shape (a [`BlockShape`]) is learned from the first
//! bundle built, which resolves its names one by one; every later bundle of that kind
//! takes its handles from a block, slot by slot in the same order.

use std::sync::OnceLock;

use baton_shared_stats::{
    BlockTemplate, BlockTemplateBuilder, Counter, Gauge, GaugeMode, Histogram, StatBlock,
};

use super::{Scope, ScopeBatch};

/// The shape of one kind of bundle (a `static` per kind), learned from its first build.
pub struct BlockShape(OnceLock<BlockTemplate>);

impl BlockShape {
    /// A shape not learned yet.
    pub const fn new() -> Self {
        BlockShape(OnceLock::new())
    }
}

impl Default for BlockShape {
    fn default() -> Self {
        Self::new()
    }
}

/// Names under one [`Scope`] taken from a block, in the order the bundle's constructor
/// asks for them. A name the block does not hold at that position (or every name, when
/// there is no block: the shape's first build, a full region, a name already held
/// singly) is resolved one by one in a batch, so the stats are the same either way.
pub struct ScopeBlock<'a> {
    scope: &'a Scope,
    block: Option<StatBlock<'static>>,
    /// Position of the next name.
    next: usize,
    /// The shape being learned (first build), stored on drop.
    learning: Option<(&'static BlockShape, BlockTemplateBuilder)>,
    batch: Option<ScopeBatch<'a>>,
}

impl<'a> ScopeBlock<'a> {
    pub(super) fn new(scope: &'a Scope, shape: &'static BlockShape) -> Self {
        let (block, learning) = match shape.0.get() {
            Some(template) => (scope.store().block(scope.prefix(), template), None),
            None => (None, Some((shape, BlockTemplateBuilder::default()))),
        };
        ScopeBlock {
            scope,
            block,
            next: 0,
            learning,
            batch: None,
        }
    }

    /// The position of this name, and the block if there is one.
    fn take_slot(&mut self) -> (usize, Option<&StatBlock<'static>>) {
        let index = self.next;
        self.next += 1;
        (index, self.block.as_ref())
    }

    fn singles(&mut self) -> &mut ScopeBatch<'a> {
        self.batch.get_or_insert_with(|| self.scope.batch())
    }

    /// `prefix + name` as a counter.
    pub fn counter(&mut self, name: &str) -> Counter {
        if let (index, Some(block)) = self.take_slot() {
            if let Some(counter) = block.counter(index, name) {
                return counter;
            }
        }
        if let Some((_, builder)) = &mut self.learning {
            builder.counter(name);
        }
        self.singles().counter(name)
    }

    fn gauge_with_mode(&mut self, name: &str, mode: GaugeMode) -> Gauge {
        if let (index, Some(block)) = self.take_slot() {
            if let Some(gauge) = block.gauge(index, name) {
                return gauge;
            }
        }
        if let Some((_, builder)) = &mut self.learning {
            builder.gauge(name, mode);
        }
        match mode {
            GaugeMode::Accumulate => self.singles().gauge(name),
            GaugeMode::NeverImport => self.singles().gauge_never_import(name),
        }
    }

    /// `prefix + name` as a gauge summed over live generations.
    pub fn gauge(&mut self, name: &str) -> Gauge {
        self.gauge_with_mode(name, GaugeMode::Accumulate)
    }

    /// `prefix + name` as a gauge only the newest generation sets.
    pub fn gauge_never_import(&mut self, name: &str) -> Gauge {
        self.gauge_with_mode(name, GaugeMode::NeverImport)
    }

    /// `prefix + name` as a histogram (milliseconds, Envoy's buckets).
    pub fn histogram(&mut self, name: &str) -> Histogram {
        if let (index, Some(block)) = self.take_slot() {
            if let Some(histogram) = block.histogram(index, name) {
                return histogram;
            }
        }
        if let Some((_, builder)) = &mut self.learning {
            builder.histogram(name);
        }
        self.singles().histogram(name)
    }
}

impl Drop for ScopeBlock<'_> {
    fn drop(&mut self) {
        if let Some((shape, builder)) = self.learning.take() {
            if let Some(template) = builder.build() {
                // Two first builds at once learn the same shape: either may win.
                let _ = shape.0.set(template);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::stats::ClusterStats;

    /// The names under `prefix` with the prefix cut off, sorted, with their kinds.
    fn names_under(prefix: &str) -> Vec<String> {
        let snapshot = crate::stats::store().snapshot().expect("snapshot");
        let stats = snapshot
            .stats
            .iter()
            .map(|s| (s.name.as_str(), format!("{:?}", s.kind)));
        let histograms = snapshot
            .histograms
            .iter()
            .map(|h| (h.name.as_str(), "histogram".to_string()));
        let mut names: Vec<String> = stats
            .chain(histograms)
            .filter_map(|(name, kind)| Some(format!("{} {kind}", name.strip_prefix(prefix)?)))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_cluster_from_a_block_has_the_names_of_one_resolved_singly() {
        let store = crate::stats::store();
        // Whichever cluster is built first in this process teaches the shape; these
        // three are built after it at least once.
        let first = ClusterStats::new(store, "block_unit_first");
        let second = ClusterStats::new(store, "block_unit_second");
        let third = ClusterStats::new(store, "block_unit_third");
        second.upstream_rq_total.add(2);
        second.membership_total.set(5);
        third.eds().update_rejected.inc();
        let first_names = names_under("cluster.block_unit_first.");
        assert!(first_names.len() > 40, "{first_names:?}");
        assert_eq!(first_names, names_under("cluster.block_unit_second."));
        let value = |name: &str| {
            let snapshot = store.snapshot().expect("snapshot");
            snapshot
                .stats
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.value)
        };
        assert_eq!(
            value("cluster.block_unit_second.upstream_rq_total"),
            Some(2)
        );
        assert_eq!(value("cluster.block_unit_second.membership_total"), Some(5));
        assert_eq!(value("cluster.block_unit_third.update_rejected"), Some(1));
        // The same name resolved on its own is the block's stat.
        store
            .counter("cluster.block_unit_second.upstream_rq_total")
            .inc();
        assert_eq!(
            value("cluster.block_unit_second.upstream_rq_total"),
            Some(3)
        );
        drop((first, second, third));
    }
}
