//! Histogram buckets (Envoy's default bounds) and the quantile summary shown by `/stats`.

/// Envoy's default histogram bucket upper bounds, in the unit recorded (milliseconds for
/// the `*_time` and `*_ms` stats).
pub const DEFAULT_BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// Per-bound bucket cells plus one for values above the last bound.
pub const BUCKET_CELLS: usize = DEFAULT_BUCKETS.len() + 1;
/// Cells a histogram occupies: the buckets, then the sum of recorded values. The count is
/// the sum of the buckets, which keeps `record` at two atomic adds.
pub const HISTOGRAM_CELLS: usize = BUCKET_CELLS + 1;
/// Index of the sum cell.
pub const SUM_CELL: usize = BUCKET_CELLS;

/// Quantiles Envoy reports in `/stats`, in percent.
pub const SUPPORTED_QUANTILES: [f64; 10] =
    [0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 100.0];

/// `DEFAULT_BUCKETS` for integer values: `value <= 0.5` holds only for 0, and every other
/// bound is whole, so integer comparisons pick the same bucket without float conversion.
const INTEGER_BOUNDS: [u64; 19] = [
    0, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
    1800000, 3600000,
];

/// Index of the bucket cell that counts `value`: the first bound `>= value`.
#[inline]
pub fn bucket_index(value: u64) -> usize {
    INTEGER_BOUNDS.partition_point(|&bound| bound < value)
}

/// The recorded state of one histogram: per-bucket (not cumulative) counts and the sum.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Stat name.
    pub name: String,
    /// Count per bucket; the last entry counts values above the last bound.
    pub bucket_counts: [u64; BUCKET_CELLS],
    /// Bucket counts recorded between the last two `StatsStore::flush_histogram_intervals`
    /// calls (Envoy's "interval" figures); `None` before the first flush.
    pub interval_bucket_counts: Option<[u64; BUCKET_CELLS]>,
    /// Sum of all recorded values.
    pub sum: u64,
}

impl HistogramSnapshot {
    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.bucket_counts
            .iter()
            .fold(0u64, |acc, n| acc.wrapping_add(*n))
    }

    /// Cumulative counts for each bound (Prometheus `le` buckets, without `+Inf`).
    pub fn cumulative_counts(&self) -> [u64; DEFAULT_BUCKETS.len()] {
        let mut out = [0u64; DEFAULT_BUCKETS.len()];
        let mut running = 0u64;
        for (slot, count) in out.iter_mut().zip(self.bucket_counts.iter()) {
            running = running.wrapping_add(*count);
            *slot = running;
        }
        out
    }

    /// The value below which `percent` of the recorded values fall, interpolated linearly
    /// inside the bucket that holds it; `None` when nothing was recorded.
    ///
    /// Envoy computes this from a finer log-linear histogram, so its figures differ in the
    /// decimals; bucket counts, sum and count are exact here.
    pub fn quantile(&self, percent: f64) -> Option<f64> {
        quantile_of(&self.bucket_counts, percent)
    }

    /// The same quantile over the last flush interval; `None` when the interval recorded
    /// nothing (Envoy prints `nan`).
    pub fn interval_quantile(&self, percent: f64) -> Option<f64> {
        self.interval_bucket_counts
            .as_ref()
            .and_then(|counts| quantile_of(counts, percent))
    }
}

/// Linear interpolation inside the bucket holding the `percent` rank.
fn quantile_of(bucket_counts: &[u64; BUCKET_CELLS], percent: f64) -> Option<f64> {
    let total = bucket_counts
        .iter()
        .fold(0u64, |acc, n| acc.wrapping_add(*n));
    if total == 0 {
        return None;
    }
    let rank = (percent / 100.0).clamp(0.0, 1.0) * total as f64;
    let mut below = 0u64;
    for (index, &count) in bucket_counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let lower = if index == 0 {
            0.0
        } else {
            DEFAULT_BUCKETS[index - 1]
        };
        let upper = DEFAULT_BUCKETS.get(index).copied().unwrap_or(lower);
        let reached = below + count;
        if rank <= reached as f64 {
            let within = ((rank - below as f64) / count as f64).clamp(0.0, 1.0);
            return Some(lower + (upper - lower) * within);
        }
        below = reached;
    }
    // Rounding at rank == total: the highest non-empty bucket's upper bound.
    let last = bucket_counts.iter().rposition(|&c| c > 0)?;
    Some(
        DEFAULT_BUCKETS
            .get(last)
            .copied()
            .unwrap_or(DEFAULT_BUCKETS[DEFAULT_BUCKETS.len() - 1]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot_of(values: &[u64]) -> HistogramSnapshot {
        let mut h = HistogramSnapshot {
            name: "h".into(),
            bucket_counts: [0; BUCKET_CELLS],
            interval_bucket_counts: None,
            sum: 0,
        };
        for &v in values {
            h.bucket_counts[bucket_index(v)] += 1;
            h.sum += v;
        }
        h
    }

    #[test]
    fn integer_bounds_agree_with_float_bounds() {
        for value in (0..4_000_000u64)
            .step_by(997)
            .chain([0, 1, 2, 5, 6, 3_600_000, 3_600_001])
        {
            let by_float = DEFAULT_BUCKETS.partition_point(|&b| b < value as f64);
            assert_eq!(bucket_index(value), by_float, "value {value}");
        }
    }

    #[test]
    fn bucket_index_matches_le_semantics() {
        assert_eq!(bucket_index(0), 0); // le 0.5
        assert_eq!(bucket_index(1), 1); // le 1
        assert_eq!(bucket_index(2), 2); // le 5
        assert_eq!(bucket_index(5), 2);
        assert_eq!(bucket_index(3_600_000), 18);
        assert_eq!(bucket_index(3_600_001), 19); // +Inf only
    }

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let h = snapshot_of(&[10, 10, 10, 10]);
        assert_eq!(h.quantile(0.0), Some(5.0));
        assert_eq!(h.quantile(50.0), Some(7.5));
        assert_eq!(h.quantile(100.0), Some(10.0));
        assert_eq!(snapshot_of(&[]).quantile(50.0), None);
        let over = snapshot_of(&[5_000_000]);
        assert_eq!(over.quantile(100.0), Some(3_600_000.0));
    }

    #[test]
    fn cumulative_counts_are_monotonic() {
        let h = snapshot_of(&[0, 1, 7, 7, 4000]);
        let c = h.cumulative_counts();
        assert_eq!(c[0], 1);
        assert_eq!(c[1], 2);
        assert_eq!(c[3], 4); // le 10
        assert_eq!(c[18], 5);
        assert_eq!(h.count(), 5);
        assert_eq!(h.sum, 4015);
    }
}
