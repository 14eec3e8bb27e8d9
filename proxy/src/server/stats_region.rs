//! This generation's stats: joining the shared stats region (continuing a parent's or
//! the supervisor's counters, or starting fresh as Envoy) and the periodic `server.*`
//! flush.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tracing::warn;

use super::cli::Options;
use super::runtime_dir;
use super::state::ServerState;
use crate::listener::ConnectionTracker;
use crate::stats::{ServerFacts, ServerStats};

/// Where this generation's stats come from (see docs/stats-continuation.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StatsOrigin {
    /// A live parent answered on the hot-restart socket (or was cold-restarted by us):
    /// its counters continue.
    Parent,
    /// The supervisor that launched us owns the region: counters continue across its
    /// reloads and respawns.
    Supervisor,
    /// A plain start: counters and names start from zero, as in Envoy.
    Fresh,
}

/// The supervisor's pid it puts in the environment of every generation it launches.
pub const STATS_OWNER_ENV: &str = "BATON_STATS_REGION_OWNER";

/// True when `BATON_STATS_REGION_OWNER` names our parent process (a stale value inherited
/// from a shell names no parent of ours).
pub(super) fn launched_by_region_owner() -> bool {
    let Ok(value) = std::env::var(STATS_OWNER_ENV) else {
        return false;
    };
    let parent = nix::unistd::getppid().as_raw();
    value
        .trim()
        .parse::<i32>()
        .is_ok_and(|pid| pid == parent && pid > 1)
}

/// Joins the stats region of `--base-id` in the runtime directory as this generation.
/// Continues its counters only for `StatsOrigin::Parent`/`Supervisor`; otherwise a
/// region left by exited processes is replaced. A region this generation creates is sized
/// from `model` unless `--stats-max-stats` says otherwise. Must run before any stat handle
/// is built.
pub(super) fn install_stats(
    opts: &Options,
    origin: StatsOrigin,
    model: &baton_config::model::Bootstrap,
) -> anyhow::Result<()> {
    let dir = runtime_dir::resolve(opts.runtime_dir.as_deref());
    runtime_dir::prepare(&dir)?;
    let max_stats = opts
        .stats_max_stats
        .unwrap_or_else(|| model.stats_capacity_hint());
    let config = crate::stats::region_config(&dir, opts.base_id, max_stats);
    let epoch = u64::from(opts.restart_epoch);
    let context = || format!("cannot open the stats region in {}", dir.display());
    let store = match origin {
        StatsOrigin::Parent | StatsOrigin::Supervisor => {
            baton_shared_stats::StatsStore::open_or_create(&config, epoch).with_context(context)?
        }
        StatsOrigin::Fresh => {
            let (store, in_use) =
                baton_shared_stats::StatsStore::open_fresh(&config, epoch).with_context(context)?;
            if in_use {
                warn!(
                    base_id = opts.base_id,
                    "the stats region of this base id is held by another live process that is not our hot-restart parent; sharing its stats (use another --base-id to keep them apart)"
                );
            }
            store
        }
    };
    if origin == StatsOrigin::Parent && opts.skip_hot_restart_parent_stats {
        // The parent's counters are not carried over (Envoy's meaning); the region is
        // shared, so this is a counter reset the draining parent sees too.
        if let Err(e) = store.reset_counters() {
            warn!("--skip-hot-restart-parent-stats: cannot reset counters: {e}");
        }
    }
    crate::stats::install(store);
    Ok(())
}

/// Envoy's default stats flush interval: `server.*` gauges and histogram intervals are
/// refreshed this often.
pub(super) const STATS_FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// Periodic `server.*` stats.
#[derive(Clone)]
pub(super) struct ServerStatsFlush {
    pub(super) stats: ServerStats,
    pub(super) state: Arc<ServerState>,
    pub(super) tracker: Arc<ConnectionTracker>,
    pub(super) parent_connections: Arc<AtomicU64>,
}

impl ServerStatsFlush {
    /// A stats flush: the `server.*` gauges and the histogram intervals.
    pub(super) fn flush(&self) {
        self.update_server_stats();
        let _ = crate::stats::store().flush_histogram_intervals();
    }

    /// The `server.*` gauges only (state, uptime, connections), as at LIVE: a histogram
    /// interval closed there would not be Envoy's (its first closes one flush interval
    /// after start), and reading every histogram of a big config there cost about 0.3 G
    /// instructions.
    pub(super) fn update_server_stats(&self) {
        let first = *self
            .state
            .first_start_wall
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let uptime = std::time::SystemTime::now()
            .duration_since(first)
            .unwrap_or_default();
        self.stats.update(&ServerFacts {
            state: self.state.lifecycle() as u64,
            uptime_s: uptime.as_secs(),
            concurrency: self.state.options.workers() as u64,
            epoch: u64::from(self.state.options.restart_epoch),
            generation: u64::from(self.state.hot_restart_generation.load(Ordering::Relaxed)),
            connections: self.tracker.active() as u64,
            parent_connections: self.parent_connections.load(Ordering::Relaxed),
        });
    }

    pub(super) async fn run(self) {
        // As Envoy's flush timer: the first flush one interval after start (until then
        // histogram intervals read `nan`).
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + STATS_FLUSH_INTERVAL,
            STATS_FLUSH_INTERVAL,
        );
        loop {
            tick.tick().await;
            self.flush();
        }
    }
}
