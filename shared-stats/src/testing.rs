//! Fault-injection hooks for the cross-process tests. Not part of the supported API.

use std::sync::OnceLock;
use std::time::Duration;

use crate::StatsStore;

/// Environment variable that makes a process abort in the middle of folding a dead
/// generation's counters (after journaling a cell, before moving it).
pub const CRASH_MID_FOLD_ENV: &str = "BATON_STATS_TEST_CRASH_MID_FOLD";

pub(crate) fn maybe_crash_mid_fold() {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    if *ENABLED.get_or_init(|| std::env::var_os(CRASH_MID_FOLD_ENV).is_some()) {
        std::process::abort();
    }
}

/// Takes the region's allocation lock, calls `on_locked`, then sleeps for `duration` while
/// holding it, so a test can kill the process while it holds the lock.
pub fn hold_allocation_lock(
    store: &StatsStore,
    duration: Duration,
    on_locked: impl FnOnce(),
) -> crate::Result<()> {
    store.with_region_lock(|| {
        on_locked();
        std::thread::sleep(duration);
    })
}

/// Fuzzing and corruption entry point: `bytes` become the region file of base id 1 in
/// `dir` (a private directory), then the region is read offline, attached as a
/// generation, written to, read again and rendered, and finally opened with replacement
/// allowed. Any outcome but a panic is acceptable: a clear error or a recovered region.
pub fn exercise_region_bytes(dir: &std::path::Path, bytes: &[u8]) -> crate::Result<()> {
    let mut config = crate::RegionConfig::new(dir, 1);
    config.lock_timeout = Duration::from_millis(50);
    let path = config.region_path();
    let write = |what: &'static str| crate::StatsError::Io {
        path: path.clone(),
        action: what,
        source: std::io::Error::other("cannot write the test region"),
    };
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|_| write("create dir"))?;
    }
    std::fs::write(&path, bytes).map_err(|_| write("write"))?;
    let options = crate::RenderOptions::default();
    if let Ok(reader) = crate::StatsReader::open(dir, 1) {
        let _ = reader.generations();
        if let Ok(snapshot) = reader.snapshot() {
            let _ = snapshot.render_text(&options);
            let _ = snapshot.render_prometheus(&options);
        }
    }
    if let Ok(store) = StatsStore::open_existing(&config, 1) {
        store.counter("fuzz.counter").inc();
        store.gauge("fuzz.gauge").set(3);
        store.histogram("fuzz.histogram").record(42);
        let template = sample_template();
        for prefix in ["cluster.b0.", "cluster.fuzz."] {
            if let Some(block) = store.block(prefix, &template) {
                if let Some(counter) = block.counter(0, "upstream_rq_total") {
                    counter.inc();
                }
            }
        }
        store.counter("cluster.b1.upstream_rq_total").inc();
        let _ = store.reap_dead_generations();
        if let Ok(snapshot) = store.snapshot() {
            let _ = snapshot.render_json(&options);
        }
        let _ = store.flush_histogram_intervals();
        let _ = store.reset_counters();
    }
    let store = StatsStore::open_or_create(&config, 2)?;
    store.counter("fuzz.after").inc();
    store.snapshot().map(|_| ())
}

/// The block template the corruption tests put in their sample region: a counter, a
/// gauge and a histogram.
pub fn sample_template() -> crate::BlockTemplate {
    let mut builder = crate::BlockTemplateBuilder::default();
    builder.counter("upstream_rq_total");
    builder.gauge("upstream_cx_active", crate::GaugeMode::Accumulate);
    builder.histogram("upstream_rq_time");
    // Three distinct, one-line suffixes always make a template.
    builder
        .build()
        .unwrap_or_else(|| unreachable!("a valid template"))
}
