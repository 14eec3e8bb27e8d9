//! `StatsStore`: one generation's view of the region, handing out pre-resolved stat
//! handles whose hot path is a single relaxed atomic add into this generation's column.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::block::BlockTemplate;
use crate::error::Result;
use crate::histogram::{bucket_index, HistogramSnapshot, BUCKET_CELLS, HISTOGRAM_CELLS, SUM_CELL};
use crate::layout::{StoredKind, FIRST_GENERATION_COLUMN};
use crate::mapping::CellPtr;
use crate::name_index::{EntrySlot, Fallback, LocalIndex, NameHasher, NameIndex};
use crate::region::{GenerationInfo, Region, RegionConfig, RegionLock, OVERFLOW_STAT};
use crate::scope_lease::{ScopeLease, ScopeLeases};
use crate::snapshot::{collect_unsorted, recorded_histograms, StatKind, StatValue, StatsSnapshot};
use crate::text_readout::{TextReadout, TextReadouts};

/// How a gauge combines the values of several live generations during a hot restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GaugeMode {
    /// Sum over live generations (connections active in the old and new generation).
    Accumulate = 0,
    /// Only the newest live generation's value (`server.live`, `server.state`, ...), like
    /// Envoy's `NeverImport` gauges.
    NeverImport = 1,
}

/// Keeps the memory a handle points into alive: the region's mapping, and the
/// process-local cells of stats that overflowed (the store's index keeps every one of
/// them, so one pointer serves both and a handle is two words: a cluster holds ~50).
/// The field is never read: holding it is the whole job.
#[derive(Clone)]
struct Keepalive(#[allow(dead_code)] Arc<StoreInner>);

/// A monotonic counter. Cloning is cheap; `inc`/`add` are one relaxed atomic add.
#[derive(Clone)]
pub struct Counter {
    cell: CellPtr,
    _keep: Keepalive,
}

impl Counter {
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `amount`.
    #[inline]
    pub fn add(&self, amount: u64) {
        self.cell.at(0).fetch_add(amount, Ordering::Relaxed);
    }
}

/// A gauge; this generation's contribution, combined with other live generations when
/// rendered. Cloning is cheap.
#[derive(Clone)]
pub struct Gauge {
    cell: CellPtr,
    _keep: Keepalive,
}

impl Gauge {
    #[inline]
    fn mark_used(&self) {
        // Envoy shows a gauge in `usedonly` once it was written; a load keeps the flag's
        // cache line shared after the first write.
        let flag = self.cell.at(1);
        if flag.load(Ordering::Relaxed) == 0 {
            flag.store(1, Ordering::Relaxed);
        }
    }

    /// Sets this generation's value.
    #[inline]
    pub fn set(&self, value: u64) {
        self.mark_used();
        self.cell.at(0).store(value, Ordering::Relaxed);
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Subtracts one.
    #[inline]
    pub fn dec(&self) {
        self.sub(1);
    }

    /// Adds `amount`.
    #[inline]
    pub fn add(&self, amount: u64) {
        self.mark_used();
        self.cell.at(0).fetch_add(amount, Ordering::Relaxed);
    }

    /// Subtracts `amount` (wrapping, as Envoy's unsigned gauges do).
    #[inline]
    pub fn sub(&self, amount: u64) {
        self.mark_used();
        self.cell.at(0).fetch_sub(amount, Ordering::Relaxed);
    }

    /// This generation's own value.
    pub fn local_value(&self) -> u64 {
        self.cell.at(0).load(Ordering::Relaxed)
    }
}

/// A histogram with Envoy's default buckets; `record` is two relaxed atomic adds.
#[derive(Clone)]
pub struct Histogram {
    cells: CellPtr,
    _keep: Keepalive,
}

impl Histogram {
    /// Records one value (milliseconds for Envoy's `*_time`/`*_ms` stats).
    #[inline]
    pub fn record(&self, value: u64) {
        self.cells
            .at(bucket_index(value))
            .fetch_add(1, Ordering::Relaxed);
        self.cells.at(SUM_CELL).fetch_add(value, Ordering::Relaxed);
    }
}

/// Histogram totals at the previous flush, and what the last interval recorded, keyed by
/// each histogram's first value cell (stable for the region's life). Histograms that never
/// recorded anything (most of a big config's) have no entry: their interval is all zero,
/// and neither a name copy nor 160 bytes each is kept for them.
#[derive(Default)]
struct IntervalState {
    /// Whether a flush happened (before it, interval figures are absent: `nan`).
    flushed: bool,
    previous: HashMap<u32, [u64; BUCKET_CELLS], BuildHasherDefault<NameHasher>>,
    last_interval: HashMap<u32, [u64; BUCKET_CELLS], BuildHasherDefault<NameHasher>>,
}

impl IntervalState {
    /// The last interval's bucket counts of the histogram at `cell`.
    fn interval_of(&self, cell: u32) -> Option<[u64; BUCKET_CELLS]> {
        if !self.flushed {
            return None;
        }
        Some(
            self.last_interval
                .get(&cell)
                .copied()
                .unwrap_or([0; BUCKET_CELLS]),
        )
    }
}

struct StoreInner {
    region: Region,
    intervals: Mutex<IntervalState>,
    slot: u32,
    /// Where this generation's value column starts (its cell 0).
    column_offset: u64,
    lock_timeout: Duration,
    local: Mutex<LocalIndex>,
    overflow: CellPtr,
    text_readouts: TextReadouts,
    leases: Arc<ScopeLeases>,
}

impl Drop for StoreInner {
    fn drop(&mut self) {
        // Last handle gone: this generation is done. Fold its counters into retired and
        // free the slot; if the lock cannot be had, the next reaper does it once we exit.
        if let Ok(lock) = self.region.lock(self.lock_timeout) {
            self.region.release_slot(&lock, self.slot);
        }
    }
}

/// One generation's handle on the shared stats region. Cheap to clone; share freely.
#[derive(Clone)]
pub struct StatsStore {
    inner: Arc<StoreInner>,
}

fn lock_local(mutex: &Mutex<LocalIndex>) -> MutexGuard<'_, LocalIndex> {
    // The index stays consistent even if a panic interrupted a holder: every mutation is a
    // single insert.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl StatsStore {
    /// Maps the region for `config` (creating or replacing it as `Region` allows) and
    /// joins it as a generation running restart epoch `generation_epoch`.
    pub fn open_or_create(config: &RegionConfig, generation_epoch: u64) -> Result<Self> {
        Self::join(Region::open_or_create(config)?, config, generation_epoch)
    }

    /// Joins a region as a fresh start (a plain start with no live parent or owner): a
    /// region left by exited processes is replaced by an empty one. Returns the store and
    /// whether a region some live process holds was joined instead (its stats continue).
    pub fn open_fresh(config: &RegionConfig, generation_epoch: u64) -> Result<(Self, bool)> {
        let (region, in_use) = Region::open_fresh(config)?;
        Ok((Self::join(region, config, generation_epoch)?, in_use))
    }

    /// Like `open_or_create`, but fails instead of creating or replacing a region.
    pub fn open_existing(config: &RegionConfig, generation_epoch: u64) -> Result<Self> {
        Self::join(Region::open_existing(config)?, config, generation_epoch)
    }

    fn join(region: Region, config: &RegionConfig, epoch: u64) -> Result<Self> {
        let slot = {
            let lock = region.lock(config.lock_timeout)?;
            region.claim_slot(&lock, epoch)?
        };
        let column = FIRST_GENERATION_COLUMN + slot;
        let column_offset = region.geometry().cell_offset(column, 0);
        // Entry 0 is always the overflow counter at cell 0 (written at creation).
        let overflow = region.map().cell_ptr(column_offset);
        // Room for a small config's names; a bigger one grows the table (stored hashes,
        // no re-reading). Sized up front for 16 Ki names it cost every process about
        // 800 KiB resident: names land all over the table's pages.
        let initial_names = region.geometry().max_stats.min(2 * 1024) as usize;
        Ok(StatsStore {
            inner: Arc::new(StoreInner {
                region,
                intervals: Mutex::new(IntervalState::default()),
                slot,
                column_offset,
                lock_timeout: config.lock_timeout,
                local: Mutex::new(LocalIndex::new(initial_names)),
                overflow,
                text_readouts: TextReadouts::default(),
                leases: Arc::default(),
            }),
        })
    }

    /// The region file.
    pub fn path(&self) -> &Path {
        self.inner.region.path()
    }

    /// The generation slot (value column) this store writes.
    pub fn generation_slot(&self) -> u32 {
        self.inner.slot
    }

    /// A lease on the scope `prefix` (ending with `.`, e.g. `listener.127.0.0.1_80.`):
    /// once the last lease of a prefix drops, this process's snapshots leave out the
    /// stats under it (as Envoy frees a removed listener's or cluster's stats) until it
    /// is leased again. See [`ScopeLease`].
    pub fn lease_scope(&self, prefix: &str) -> ScopeLease {
        let (lease, revived) = self.inner.leases.lease(prefix);
        if revived {
            // A region lock that times out leaves the old totals showing: only display.
            let _ = self.reset_counters_under(prefix);
        }
        lease
    }

    /// Counters under `prefix` (not those of a longer leased or retired prefix) read 0
    /// from now on, as `/reset_counters` does for all.
    fn reset_counters_under(&self, prefix: &str) -> Result<()> {
        let leases = &self.inner.leases;
        let region = &self.inner.region;
        let lock = region.lock(self.inner.lock_timeout)?;
        let entries: Vec<_> = region
            .read_entries(0)?
            .into_iter()
            .filter(|e| e.kind == StoredKind::Counter && leases.belongs_to(&e.name, prefix))
            .collect();
        region.reset_counters(&lock, &entries);
        drop(lock);
        let local = lock_local(&self.inner.local);
        for (name, fallback) in &local.fallbacks {
            if fallback.kind == StoredKind::Counter && leases.belongs_to(name, prefix) {
                fallback.cells[0].store(0, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// From now on this process's snapshots show a name under one of `families` (each
    /// ending with `.`, e.g. `listener.`) only while a [`ScopeLease`] covers it: called
    /// once a hot-restart parent has exited, whose scopes nobody holds any more.
    pub fn hide_unleased(&self, families: &[&str]) {
        self.inner.leases.hide_unleased(families);
    }

    /// The counter `name`, allocated in the region on first use.
    pub fn counter(&self, name: &str) -> Counter {
        let (cell, keep) = self.resolve(name, StoredKind::Counter, GaugeMode::Accumulate);
        Counter { cell, _keep: keep }
    }

    /// The gauge `name`, summed over live generations.
    pub fn gauge(&self, name: &str) -> Gauge {
        self.gauge_with_mode(name, GaugeMode::Accumulate)
    }

    /// The gauge `name` with an explicit hot-restart mode (fixed by the first allocator).
    pub fn gauge_with_mode(&self, name: &str, mode: GaugeMode) -> Gauge {
        let (cell, keep) = self.resolve(name, StoredKind::Gauge, mode);
        Gauge { cell, _keep: keep }
    }

    /// The histogram `name`.
    pub fn histogram(&self, name: &str) -> Histogram {
        let (cells, keep) = self.resolve(name, StoredKind::Histogram, GaugeMode::Accumulate);
        Histogram { cells, _keep: keep }
    }

    /// The text readout `name` (this process's; see [`TextReadout`]).
    pub fn text_readout(&self, name: &str) -> TextReadout {
        self.inner.text_readouts.get(name)
    }

    /// How many stats this region could not hold (`server.stats_overflow`, all generations).
    pub fn overflow_count(&self) -> u64 {
        self.inner.region.counter_total(0)
    }

    /// Makes room in this process's name index for `additional` more names: a batch of
    /// 10,000 new clusters (47 names each) then grows the table once, instead of
    /// doubling it eight times and rehashing every name each time.
    pub fn reserve_names(&self, additional: usize) {
        let mut local = lock_local(&self.inner.local);
        local.by_name.reserve(additional);
    }

    /// The block of `template`'s stats under `prefix` (`cluster.backend.`): one region
    /// entry, one index entry and one run of cells for the whole bundle, allocated on
    /// first use by any generation. `None` when the names must be resolved one by one
    /// instead: the region is full or its lock timed out, or a single stat already holds
    /// one of the block's names (a block must not name it twice).
    pub fn block<'t>(&self, prefix: &str, template: &'t BlockTemplate) -> Option<StatBlock<'t>> {
        let region = &self.inner.region;
        let mut local = lock_local(&self.inner.local);
        let hash = NameIndex::hash(prefix.as_bytes());
        let found = |local: &LocalIndex| {
            let template_index = local.template_index(template)?;
            local
                .by_name
                .find_block(region, prefix.as_bytes(), hash, template_index)
        };
        if let Some(cell) = found(&local) {
            return Some(self.stat_block(template, cell));
        }
        let lock = region.lock(self.inner.lock_timeout).ok()?;
        local.scan(region);
        if let Some(cell) = found(&local) {
            return Some(self.stat_block(template, cell));
        }
        if local.block_may_repeat(hash) {
            return None;
        }
        let template_index = match local.template_index(template) {
            Some(index) => index,
            None => {
                let stats = u32::try_from(template.len()).ok()?;
                let names = template.text().len() + prefix.len();
                if !region.has_room(2, stats, template.cells(), names) {
                    return None;
                }
                let index = region.allocate_template(&lock, template).ok()?;
                local.add_template(region, index, template);
                if local.block_may_repeat(hash) {
                    return None;
                }
                index
            }
        };
        let (index, cell) = region
            .allocate_block(&lock, prefix, template_index, template)
            .ok()?;
        local.scanned = local.scanned.max(index + 1);
        local
            .by_name
            .insert_new_block(hash, index, cell, template_index);
        Some(self.stat_block(template, cell))
    }

    fn stat_block<'t>(&self, template: &'t BlockTemplate, first_cell: u32) -> StatBlock<'t> {
        StatBlock {
            template,
            first_cell,
            store: self.inner.clone(),
        }
    }

    /// Resolves several names under one hold of the local index and of the region's
    /// allocation lock (taken at the first name not yet in the region): a cluster's 34
    /// names cost one lock round trip instead of 34. Do not resolve through the store
    /// itself (or another batch) while the batch is alive: it holds the local index.
    pub fn batch(&self) -> StatsBatch<'_> {
        StatsBatch {
            lock: BatchLock::NotTaken,
            local: lock_local(&self.inner.local),
            store: self,
        }
    }

    fn resolve(&self, name: &str, kind: StoredKind, mode: GaugeMode) -> (CellPtr, Keepalive) {
        self.batch().resolve(name, kind, mode)
    }

    fn region_or_mismatch(
        &self,
        local: &mut LocalIndex,
        name: &str,
        entry: EntrySlot,
        kind: StoredKind,
    ) -> (CellPtr, Keepalive) {
        if entry.kind != kind {
            if let Some(existing) = local.fallbacks.get(name).filter(|f| f.kind == kind) {
                return (
                    CellPtr::local(&existing.cells[0]),
                    Keepalive(self.inner.clone()),
                );
            }
            return self.fallback(local, name, kind);
        }
        let region = &self.inner.region;
        let offset = self.inner.column_offset + u64::from(entry.cell) * 8;
        (region.map().cell_ptr(offset), Keepalive(self.inner.clone()))
    }

    fn fallback(
        &self,
        local: &mut LocalIndex,
        name: &str,
        kind: StoredKind,
    ) -> (CellPtr, Keepalive) {
        self.inner.overflow.at(0).fetch_add(1, Ordering::Relaxed);
        let cell_count = match kind {
            StoredKind::Counter => 1,
            StoredKind::Gauge => 2,
            StoredKind::Histogram => HISTOGRAM_CELLS,
        };
        let cells: Arc<[AtomicU64]> = (0..cell_count).map(|_| AtomicU64::new(0)).collect();
        let cell = CellPtr::local(&cells[0]);
        // A kind clash keeps the first fallback registered under the name; the other's
        // cells are kept for its handles.
        match local.fallbacks.entry(name.to_string()) {
            std::collections::btree_map::Entry::Vacant(vacant) => {
                vacant.insert(Fallback { kind, cells });
            }
            std::collections::btree_map::Entry::Occupied(_) => local.orphans.push(cells),
        }
        (cell, Keepalive(self.inner.clone()))
    }

    /// Folds generations whose process died (counters kept, gauges dropped). Returns how
    /// many were folded. Rendering calls this too.
    pub fn reap_dead_generations(&self) -> Result<usize> {
        let lock = self.inner.region.lock(self.inner.lock_timeout)?;
        Ok(self.inner.region.reap_dead(&lock))
    }

    /// Generation slots in use.
    pub fn generations(&self) -> Vec<GenerationInfo> {
        self.inner.region.generations()
    }

    /// Every stat: the region's (all generations) plus this process's overflow fallbacks.
    pub fn snapshot(&self) -> Result<StatsSnapshot> {
        // Best effort: a wedged lock holder must not stop /stats from answering.
        let _ = self.reap_dead_generations();
        let entries = self.inner.region.read_entries(0)?;
        let mut snapshot = collect_unsorted(&self.inner.region, &entries);
        let local = lock_local(&self.inner.local);
        // A set, not a scan of the entries per fallback: an overflowing big config has
        // hundreds of thousands of both.
        let in_region: std::collections::HashSet<&str, BuildHasherDefault<NameHasher>> =
            if local.fallbacks.is_empty() {
                Default::default()
            } else {
                entries.iter().map(|e| e.name.as_str()).collect()
            };
        for (name, fallback) in &local.fallbacks {
            if in_region.contains(name.as_str()) {
                continue;
            }
            let load = |i: usize| fallback.cells[i].load(Ordering::Relaxed);
            match fallback.kind {
                StoredKind::Counter => snapshot.stats.push(StatValue {
                    name: name.clone(),
                    kind: StatKind::Counter,
                    value: load(0),
                    used: load(0) != 0,
                }),
                StoredKind::Gauge => snapshot.stats.push(StatValue {
                    name: name.clone(),
                    kind: StatKind::Gauge,
                    value: load(0),
                    used: load(1) != 0,
                }),
                StoredKind::Histogram => {
                    let mut bucket_counts = [0u64; BUCKET_CELLS];
                    for (i, count) in bucket_counts.iter_mut().enumerate() {
                        *count = load(i);
                    }
                    snapshot.histograms.push(HistogramSnapshot {
                        name: name.clone(),
                        bucket_counts,
                        interval_bucket_counts: None,
                        sum: load(SUM_CELL),
                    });
                }
            }
        }
        drop(local);
        let intervals = self
            .inner
            .intervals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // The region's histograms come first, in entry order; fallbacks have no interval.
        let region_histograms = entries.iter().filter(|e| e.kind == StoredKind::Histogram);
        for (histogram, entry) in snapshot.histograms.iter_mut().zip(region_histograms) {
            histogram.interval_bucket_counts = intervals.interval_of(entry.cell);
        }
        drop(intervals);
        snapshot.text_readouts = self.inner.text_readouts.values();
        if let Some(filter) = self.inner.leases.retired_filter() {
            snapshot.stats.retain(|s| !filter.is_retired(&s.name));
            snapshot.histograms.retain(|h| !filter.is_retired(&h.name));
            snapshot
                .text_readouts
                .retain(|t| !filter.is_retired(&t.name));
        }
        snapshot.sort();
        Ok(snapshot)
    }

    /// Closes a histogram interval, like Envoy's periodic stats flush
    /// (`stats_flush_interval`, 5 s by default): from now on each histogram's interval
    /// quantiles describe what all generations recorded between the previous call and this
    /// one. Before the first call the interval figures are `nan`.
    pub fn flush_histogram_intervals(&self) -> Result<()> {
        // Histograms only, by cell, without their names: with tens of thousands of
        // clusters, copying every name each flush (every 5 s) cost more than the flush.
        let mut cells = Vec::new();
        self.inner.region.visit_stats(
            0,
            |kind| kind == StoredKind::Histogram,
            |entry, _, _| {
                cells.push(entry.cell);
                Ok(())
            },
        )?;
        let recorded = recorded_histograms(&self.inner.region, &cells);
        let mut intervals = self
            .inner
            .intervals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let IntervalState {
            flushed,
            previous,
            last_interval,
        } = &mut *intervals;
        *flushed = true;
        last_interval.clear();
        // Histograms left out recorded nothing yet: all zero now, and so before.
        for (cell, now) in recorded {
            let before = previous.get(&cell).copied().unwrap_or([0; BUCKET_CELLS]);
            let mut delta = [0u64; BUCKET_CELLS];
            for (slot, (now, then)) in delta.iter_mut().zip(now.iter().zip(before.iter())) {
                *slot = now.saturating_sub(*then);
            }
            if delta.iter().any(|&d| d != 0) {
                last_interval.insert(cell, delta);
            }
            previous.insert(cell, now);
        }
        Ok(())
    }

    /// Envoy's `/reset_counters`: every counter reads zero from now on, for every
    /// generation (the raw totals stay monotonic underneath). Histograms and gauges keep
    /// their values, as in Envoy.
    pub fn reset_counters(&self) -> Result<()> {
        let region = &self.inner.region;
        let lock = region.lock(self.inner.lock_timeout)?;
        let entries = region.read_entries(0)?;
        region.reset_counters(&lock, &entries);
        drop(lock);
        let local = lock_local(&self.inner.local);
        for fallback in local
            .fallbacks
            .values()
            .filter(|f| f.kind == StoredKind::Counter)
        {
            fallback.cells[0].store(0, Ordering::Relaxed);
        }
        Ok(())
    }

    pub(crate) fn with_region_lock<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let _lock = self.inner.region.lock(self.inner.lock_timeout)?;
        Ok(f())
    }

    /// Name of the overflow counter.
    pub fn overflow_stat_name() -> &'static str {
        OVERFLOW_STAT
    }
}

/// A block of stats in the region ([`StatsStore::block`]): hands out the handles of its
/// slots, each checked against the template (slot `index` must be that kind and name).
pub struct StatBlock<'t> {
    template: &'t BlockTemplate,
    first_cell: u32,
    store: Arc<StoreInner>,
}

impl StatBlock<'_> {
    fn cell(&self, index: usize, kind: StoredKind, suffix: &str) -> Option<CellPtr> {
        let slot = self.template.slot_if(index, kind, suffix)?;
        let cell = u64::from(self.first_cell) + u64::from(slot.cell);
        let region = &self.store.region;
        Some(region.map().cell_ptr(self.store.column_offset + cell * 8))
    }

    /// Slot `index` as a counter, if the template's slot `index` is the counter `suffix`.
    pub fn counter(&self, index: usize, suffix: &str) -> Option<Counter> {
        let cell = self.cell(index, StoredKind::Counter, suffix)?;
        Some(Counter {
            cell,
            _keep: Keepalive(self.store.clone()),
        })
    }

    /// Slot `index` as a gauge, if the template's slot `index` is the gauge `suffix` (its
    /// mode is the template's, as a name's is its first allocator's).
    pub fn gauge(&self, index: usize, suffix: &str) -> Option<Gauge> {
        let cell = self.cell(index, StoredKind::Gauge, suffix)?;
        Some(Gauge {
            cell,
            _keep: Keepalive(self.store.clone()),
        })
    }

    /// Slot `index` as a histogram, if the template's slot `index` is the histogram
    /// `suffix`.
    pub fn histogram(&self, index: usize, suffix: &str) -> Option<Histogram> {
        let cells = self.cell(index, StoredKind::Histogram, suffix)?;
        Some(Histogram {
            cells,
            _keep: Keepalive(self.store.clone()),
        })
    }
}

/// The region's allocation lock as a batch holds it.
enum BatchLock<'a> {
    /// Every name so far was already indexed.
    NotTaken,
    Held(RegionLock<'a>),
    /// Taking it timed out: the rest of the batch counts in fallbacks without waiting
    /// again for each name.
    Failed,
}

/// Several names resolved under one hold of the locks ([`StatsStore::batch`]).
pub struct StatsBatch<'a> {
    // Declared first so the region lock is released before the local index.
    lock: BatchLock<'a>,
    local: MutexGuard<'a, LocalIndex>,
    store: &'a StatsStore,
}

impl StatsBatch<'_> {
    /// The counter `name` ([`StatsStore::counter`]).
    pub fn counter(&mut self, name: &str) -> Counter {
        let (cell, keep) = self.resolve(name, StoredKind::Counter, GaugeMode::Accumulate);
        Counter { cell, _keep: keep }
    }

    /// The gauge `name` with `mode` ([`StatsStore::gauge_with_mode`]).
    pub fn gauge_with_mode(&mut self, name: &str, mode: GaugeMode) -> Gauge {
        let (cell, keep) = self.resolve(name, StoredKind::Gauge, mode);
        Gauge { cell, _keep: keep }
    }

    /// The histogram `name` ([`StatsStore::histogram`]).
    pub fn histogram(&mut self, name: &str) -> Histogram {
        let (cells, keep) = self.resolve(name, StoredKind::Histogram, GaugeMode::Accumulate);
        Histogram { cells, _keep: keep }
    }

    fn resolve(&mut self, name: &str, kind: StoredKind, mode: GaugeMode) -> (CellPtr, Keepalive) {
        let store = self.store;
        let inner = &*store.inner;
        let region = &inner.region;
        // Hashed once: looked up, maybe looked up again after a scan, then inserted.
        let hash = NameIndex::hash(name.as_bytes());
        if let BatchLock::Held(lock) = &self.lock {
            return Self::resolve_locked(store, lock, &mut self.local, name, hash, kind, mode);
        }
        if let Some(found) = self.local.by_name.get(region, name, hash) {
            return store.region_or_mismatch(&mut self.local, name, found, kind);
        }
        if let Some(fallback) = self.local.fallbacks.get(name).filter(|f| f.kind == kind) {
            return (
                CellPtr::local(&fallback.cells[0]),
                Keepalive(store.inner.clone()),
            );
        }
        if let BatchLock::NotTaken = self.lock {
            self.lock = match region.lock(inner.lock_timeout) {
                Err(_) => BatchLock::Failed,
                Ok(lock) => {
                    // Names other generations allocated since we last looked; while the
                    // lock is held nobody else allocates.
                    self.local.scan(region);
                    BatchLock::Held(lock)
                }
            };
        }
        match &self.lock {
            BatchLock::Held(lock) => {
                Self::resolve_locked(store, lock, &mut self.local, name, hash, kind, mode)
            }
            BatchLock::NotTaken | BatchLock::Failed => store.fallback(&mut self.local, name, kind),
        }
    }

    /// [`Self::resolve`] once the batch holds the region lock: the index then holds every
    /// name and block in the region (what other generations added was scanned in when
    /// the lock was taken), so a name it misses is new, and is inserted without a second
    /// probe comparing names.
    fn resolve_locked(
        store: &StatsStore,
        lock: &RegionLock<'_>,
        local: &mut LocalIndex,
        name: &str,
        hash: u64,
        kind: StoredKind,
        mode: GaugeMode,
    ) -> (CellPtr, Keepalive) {
        let region = &store.inner.region;
        if let Some(found) = local.by_name.get(region, name, hash) {
            return store.region_or_mismatch(local, name, found, kind);
        }
        // A slot of a block is found through its block's prefix.
        if let Some(found) = local.in_block(region, name) {
            return store.region_or_mismatch(local, name, found, kind);
        }
        if let Some(fallback) = local.fallbacks.get(name).filter(|f| f.kind == kind) {
            return (
                CellPtr::local(&fallback.cells[0]),
                Keepalive(store.inner.clone()),
            );
        }
        match region.allocate(lock, name, kind, mode as u8) {
            Ok(entry) => {
                local.scanned = local.scanned.max(entry.index + 1);
                // The lookups above missed under this hold of the index and of the region
                // lock (names other generations added were scanned in first).
                local.by_name.insert_new_single(hash, entry);
                local.note_single(name.as_bytes());
                store.region_or_mismatch(local, name, EntrySlot::from(entry), kind)
            }
            Err(_) => store.fallback(local, name, kind),
        }
    }
}
