//! One baton generation as the supervisor tracks it (epoch, pid, lifecycle state, binary,
//! last error line) and the `Status` reply built from all of them.

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use baton_proto::pb::baton::supervisor::v1 as pb;
use tokio::task::JoinHandle;

use crate::spawn::LastError;

/// Lifecycle of a generation, as the supervisor sees it.
///
/// `Starting` → (READY=1) `Live` → (STOPPING=1, or a newer generation became LIVE)
/// `Draining` → exit. A `Starting` generation that exits, or misses the ready timeout
/// (then it is killed and `Failed`), is a failed reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenState {
    /// Started, has not sent READY=1 yet.
    Starting,
    /// Sent READY=1: serves traffic.
    Live,
    /// Told to drain (by its successor or by a stop); exits by itself.
    Draining,
    /// Gave up on it before READY=1 (timeout); stopped, waiting for its exit.
    Failed,
}

impl GenState {
    /// The name `ctl status` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            GenState::Starting => "STARTING",
            GenState::Live => "LIVE",
            GenState::Draining => "DRAINING",
            GenState::Failed => "FAILED",
        }
    }
}

/// A generation process.
#[derive(Debug)]
pub struct Generation {
    /// Supervisor-internal spawn number (unique even when an epoch is retried).
    pub id: u64,
    /// Its `--restart-epoch`.
    pub epoch: u32,
    /// Its pid.
    pub pid: u32,
    /// Where it is in its lifecycle.
    pub state: GenState,
    /// Wall-clock start, for `status`.
    pub started_unix: u64,
    /// When it reported READY=1.
    pub live_since: Option<Instant>,
    /// The binary it runs.
    pub binary: PathBuf,
    /// Its last stderr error line.
    pub last_error: LastError,
    /// Receives its sd_notify datagrams; aborted when the generation goes away.
    pub notify_task: JoinHandle<()>,
    /// Its last sd_notify `STATUS=`.
    pub detail: String,
    /// Given up on before READY=1: it got SIGTERM, and gets SIGKILL at this instant if it
    /// is still running.
    pub kill_at: Option<tokio::time::Instant>,
}

impl Generation {
    /// Sends `signal` to the process (errors: it already exited, which its waiter reports).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        if let Ok(pid) = i32::try_from(self.pid) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        }
    }

    /// `[gen N pid P]`, the prefix of its forwarded output and of log lines about it.
    pub fn label(epoch: u32, pid: u32) -> String {
        format!("[gen {epoch} pid {pid}]")
    }

    /// Its `status` entry.
    pub fn to_proto(&self) -> pb::Generation {
        pb::Generation {
            epoch: self.epoch,
            pid: self.pid,
            state: self.state.as_str().into(),
            started_unix: self.started_unix,
            binary: self.binary.display().to_string(),
            detail: self.detail.clone(),
        }
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        self.notify_task.abort();
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The human summary for sd_notify `STATUS=` and `status`: "generation 3 live, 1 draining".
pub fn summary(generations: &[Generation]) -> String {
    let live = generations.iter().find(|g| g.state == GenState::Live);
    let draining = generations
        .iter()
        .filter(|g| g.state == GenState::Draining)
        .count();
    let starting = generations.iter().find(|g| g.state == GenState::Starting);
    let mut parts = Vec::new();
    match live {
        Some(g) => parts.push(format!("generation {} live", g.epoch)),
        None => parts.push("no live generation".to_owned()),
    }
    if draining > 0 {
        parts.push(format!("{draining} draining"));
    }
    if let Some(g) = starting {
        parts.push(format!("generation {} starting", g.epoch));
    }
    parts.join(", ")
}
