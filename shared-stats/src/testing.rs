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
