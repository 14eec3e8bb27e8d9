//! Reading a consistent view of every stat out of the region: counter totals across all
//! columns minus the reset baseline, gauges of live generations only, histogram buckets.
//! Also the offline reader used by `baton stats --base-id N`.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::error::Result;
use crate::histogram::{HistogramSnapshot, BUCKET_CELLS, SUM_CELL};
use crate::layout::{StoredKind, BASELINE_COLUMN, FIRST_GENERATION_COLUMN};
use crate::region::{region_path, EntryInfo, GenerationInfo, Region};
use crate::store::GaugeMode;
use crate::text_readout::TextReadoutValue;

/// Whether a plain stat is a counter or a gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatKind {
    /// Monotonic counter.
    Counter,
    /// Gauge.
    Gauge,
}

/// One counter or gauge value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatValue {
    /// Envoy-style dotted name.
    pub name: String,
    /// Counter or gauge.
    pub kind: StatKind,
    /// Counter: total since the last reset. Gauge: sum over live generations (or the
    /// newest live generation's value for `GaugeMode::NeverImport`).
    pub value: u64,
    /// Envoy's "used": a counter was ever incremented, a gauge ever written.
    pub used: bool,
}

/// Every stat at one moment, sorted by name as Envoy sorts (byte order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsSnapshot {
    /// Counters and gauges.
    pub stats: Vec<StatValue>,
    /// Histograms.
    pub histograms: Vec<HistogramSnapshot>,
    /// Text readouts (this process's; none from the offline reader).
    pub text_readouts: Vec<TextReadoutValue>,
}

impl StatsSnapshot {
    /// The value of the counter or gauge `name`, if present.
    pub fn value(&self, name: &str) -> Option<u64> {
        self.stats.iter().find(|s| s.name == name).map(|s| s.value)
    }

    /// The histogram `name`, if present.
    pub fn histogram(&self, name: &str) -> Option<&HistogramSnapshot> {
        self.histograms.iter().find(|h| h.name == name)
    }

    pub(crate) fn sort(&mut self) {
        self.stats
            .sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        self.histograms
            .sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        self.text_readouts
            .sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    }
}

/// Reads all `entries` from `region`, retrying (bounded) while a fold is moving values
/// between columns so a counter is never seen twice or not at all.
pub(crate) fn collect(region: &Region, entries: &[EntryInfo]) -> StatsSnapshot {
    let mut snapshot = collect_unsorted(region, entries);
    snapshot.sort();
    snapshot
}

/// [`collect`] in entry order (the histogram interval flush needs no order).
pub(crate) fn collect_unsorted(region: &Region, entries: &[EntryInfo]) -> StatsSnapshot {
    let generations = region.generations();
    let mut last = StatsSnapshot::default();
    for _ in 0..64 {
        let before = region.fold_seq();
        if before % 2 == 1 {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        last = read_once(region, entries, &generations);
        if region.fold_seq() == before {
            break;
        }
    }
    last
}

/// The bucket totals of those histograms (by first cell, of `cells`) that recorded
/// anything, read consistently with folds as [`collect_unsorted`] reads (the interval
/// flush needs no names). Totals only grow, so a histogram left out has recorded nothing
/// yet; most of a big config's never do, and keeping all of them (160 bytes each) cost a
/// flush of 30,000 histograms a 4.8 MB vector every 5 s.
pub(crate) fn recorded_histograms(
    region: &Region,
    cells: &[u32],
) -> Vec<(u32, [u64; BUCKET_CELLS])> {
    let read = || -> Vec<(u32, [u64; BUCKET_CELLS])> {
        let columns = region.total_columns();
        let mut recorded = Vec::new();
        for &cell in cells {
            let buckets: [u64; BUCKET_CELLS] = region.totals_in(&columns, cell);
            if buckets.iter().any(|&count| count != 0) {
                recorded.push((cell, buckets));
            }
        }
        recorded
    };
    let mut last = Vec::new();
    for _ in 0..64 {
        let before = region.fold_seq();
        if before % 2 == 1 {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        last = read();
        if region.fold_seq() == before {
            break;
        }
    }
    last
}

fn read_once(
    region: &Region,
    entries: &[EntryInfo],
    generations: &[GenerationInfo],
) -> StatsSnapshot {
    let live: Vec<&GenerationInfo> = generations.iter().filter(|g| g.alive).collect();
    let newest = live
        .iter()
        .max_by_key(|g| (g.epoch, g.slot))
        .map(|g| g.slot);
    let mut out = StatsSnapshot::default();
    let columns = region.total_columns();
    for info in entries {
        match info.kind {
            StoredKind::Counter => {
                let total = region.total_in(&columns, info.cell);
                let baseline = region
                    .cell(BASELINE_COLUMN, info.cell)
                    .load(Ordering::Acquire);
                out.stats.push(StatValue {
                    name: info.name.clone(),
                    kind: StatKind::Counter,
                    value: total.saturating_sub(baseline),
                    used: total != 0,
                });
            }
            StoredKind::Gauge => {
                let slots: Vec<u32> = if info.mode == GaugeMode::NeverImport as u8 {
                    newest.into_iter().collect()
                } else {
                    live.iter().map(|g| g.slot).collect()
                };
                let mut value = 0u64;
                let mut used = false;
                for slot in slots {
                    let column = FIRST_GENERATION_COLUMN + slot;
                    value =
                        value.wrapping_add(region.cell(column, info.cell).load(Ordering::Acquire));
                    used |= region.cell(column, info.cell + 1).load(Ordering::Acquire) != 0;
                }
                out.stats.push(StatValue {
                    name: info.name.clone(),
                    kind: StatKind::Gauge,
                    value,
                    used,
                });
            }
            StoredKind::Histogram => {
                let bucket_counts: [u64; BUCKET_CELLS] = region.totals_in(&columns, info.cell);
                out.histograms.push(HistogramSnapshot {
                    name: info.name.clone(),
                    bucket_counts,
                    interval_bucket_counts: None,
                    sum: region.total_in(&columns, info.cell + SUM_CELL as u32),
                });
            }
        }
    }
    out
}

/// Read-only access to a region without joining it as a generation: for
/// `baton stats --base-id N` on a host where the proxy is down or wedged.
pub struct StatsReader {
    region: Region,
}

impl StatsReader {
    /// Opens the region of `base_id` in `dir` read-only.
    pub fn open(dir: &Path, base_id: u32) -> Result<Self> {
        Self::open_path(&region_path(dir, base_id))
    }

    /// Opens the region file at `path` read-only.
    pub fn open_path(path: &Path) -> Result<Self> {
        Ok(StatsReader {
            region: Region::open_read_only(path)?,
        })
    }

    /// The region file path.
    pub fn path(&self) -> PathBuf {
        self.region.path().to_path_buf()
    }

    /// Generation slots in use and whether their processes still run.
    pub fn generations(&self) -> Vec<GenerationInfo> {
        self.region.generations()
    }

    /// All stats. Counters of dead, not yet folded generations are included; their gauges
    /// are not.
    pub fn snapshot(&self) -> Result<StatsSnapshot> {
        let entries = self.region.read_entries(0)?;
        Ok(collect(&self.region, &entries))
    }
}
