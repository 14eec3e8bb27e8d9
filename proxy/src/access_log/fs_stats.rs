//! `filesystem.*`: Envoy's counters of access log file writes, shared by every sink
//! (Envoy counts its `/dev/stdout` and `/dev/stderr` loggers as files too). Counted by
//! the sinks' writer threads, never on the request path: a line is "buffered" when the
//! writer takes it into its write buffer, "completed" when a write of that buffer to the
//! file succeeds. Created with the server's stats so that the names exist without any
//! access log, as Envoy's.

use std::sync::OnceLock;

use baton_shared_stats::{Counter, Gauge};

use crate::stats::Scope;

/// The `filesystem.*` stats.
pub(crate) struct FsStats {
    /// `write_buffered`: lines taken into a writer's buffer.
    pub(crate) write_buffered: Counter,
    /// `write_completed`: writes of a buffer to its file that succeeded.
    pub(crate) write_completed: Counter,
    /// `write_failed`: writes that failed (their lines are lost, as Envoy's).
    pub(crate) write_failed: Counter,
    /// `flushed_by_timer`: buffers written because a line waited the flush interval.
    pub(crate) flushed_by_timer: Counter,
    /// `reopen_failed`: reopens (log rotation) whose path could not be opened.
    pub(crate) reopen_failed: Counter,
    /// `write_total_buffered`: bytes in the writers' buffers, not yet written.
    pub(crate) write_total_buffered: Gauge,
}

static FS_STATS: OnceLock<FsStats> = OnceLock::new();

/// The stats, once the process has a stats store (`None` in unit tests without one).
pub(crate) fn get() -> Option<&'static FsStats> {
    if let Some(stats) = FS_STATS.get() {
        return Some(stats);
    }
    if !crate::stats::installed() {
        return None;
    }
    Some(FS_STATS.get_or_init(|| {
        let s = Scope::new(crate::stats::store(), "filesystem.");
        FsStats {
            write_buffered: s.counter("write_buffered"),
            write_completed: s.counter("write_completed"),
            write_failed: s.counter("write_failed"),
            flushed_by_timer: s.counter("flushed_by_timer"),
            reopen_failed: s.counter("reopen_failed"),
            write_total_buffered: s.gauge_never_import("write_total_buffered"),
        }
    }))
}

/// Creates the names at start (an Envoy dashboard finds them with no access log).
pub fn register() {
    let _ = get();
}
