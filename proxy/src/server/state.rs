//! Server-wide state shown by the admin endpoints: lifecycle state (Envoy's
//! PRE_INITIALIZING / INITIALIZING / LIVE / DRAINING), start times, the hot-restart epoch,
//! and the health-check override.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::sync::Notify;

use super::cli::Options;

/// Envoy's server states (values as in `server.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ServerLifecycle {
    /// Serving.
    Live = 0,
    /// Draining listeners before exit.
    Draining = 1,
    /// Before the init manager starts.
    PreInitializing = 2,
    /// Clusters/listeners initialising.
    Initializing = 3,
}

impl ServerLifecycle {
    /// Envoy's spelling in /server_info and /ready.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "LIVE",
            Self::Draining => "DRAINING",
            Self::PreInitializing => "PRE_INITIALIZING",
            Self::Initializing => "INITIALIZING",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Live,
            1 => Self::Draining,
            2 => Self::PreInitializing,
            _ => Self::Initializing,
        }
    }
}

/// Why the process is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownReason {
    /// SIGTERM / SIGINT: drain, then exit 0.
    Signal,
    /// POST /quitquitquit.
    Quit,
    /// A new generation is LIVE: drain, then exit.
    HotRestart,
    /// A newer generation asked us to exit now.
    Terminate,
}

/// Process-wide server state (shared by admin, workers and the main loop).
#[derive(Debug)]
pub struct ServerState {
    state: AtomicU8,
    /// Parsed command line.
    pub options: Options,
    /// When this generation started.
    pub started: Instant,
    /// Wall-clock start of this generation.
    pub started_wall: SystemTime,
    /// Wall-clock start of the first generation (hot restart passes it on).
    pub first_start_wall: Mutex<SystemTime>,
    /// POST /healthcheck/fail sets it; /healthcheck/ok clears it.
    pub healthcheck_failed: AtomicBool,
    /// Hand-overs that led to this generation (`server.hot_restart_generation`).
    pub hot_restart_generation: AtomicU32,
    shutdown: Notify,
    terminate: Notify,
    terminating: AtomicBool,
    shutdown_reason: Mutex<Option<ShutdownReason>>,
}

impl ServerState {
    /// New state in PRE_INITIALIZING.
    pub fn new(options: Options) -> Arc<Self> {
        let now = SystemTime::now();
        Arc::new(Self {
            state: AtomicU8::new(ServerLifecycle::PreInitializing as u8),
            options,
            started: Instant::now(),
            started_wall: now,
            first_start_wall: Mutex::new(now),
            healthcheck_failed: AtomicBool::new(false),
            hot_restart_generation: AtomicU32::new(1),
            shutdown: Notify::new(),
            terminate: Notify::new(),
            terminating: AtomicBool::new(false),
            shutdown_reason: Mutex::new(None),
        })
    }

    /// Continues the parent generation's history: the first generation's start time and
    /// one more hand-over than the parent's.
    pub fn continue_from_parent(&self, first_start: SystemTime, parent_generation: u32) {
        *self
            .first_start_wall
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = first_start;
        self.hot_restart_generation
            .store(parent_generation + 1, Ordering::Relaxed);
    }

    /// Current lifecycle state.
    pub fn lifecycle(&self) -> ServerLifecycle {
        ServerLifecycle::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Moves to `s`.
    pub fn set_lifecycle(&self, s: ServerLifecycle) {
        self.state.store(s as u8, Ordering::Release);
    }

    /// Asks the main loop to stop. The first reason wins, except that Terminate (exit
    /// now) overrides a drain already under way.
    pub fn request_shutdown(&self, reason: ShutdownReason) {
        let mut r = self
            .shutdown_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if r.is_none() || reason == ShutdownReason::Terminate {
            *r = Some(reason);
        }
        drop(r);
        if reason == ShutdownReason::Terminate {
            self.terminating.store(true, Ordering::Release);
            self.terminate.notify_waiters();
        }
        self.shutdown.notify_one();
    }

    /// Resolves when Terminate was requested (ends a drain early).
    pub async fn terminate_requested(&self) {
        loop {
            let notified = self.terminate.notified();
            if self.terminating.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// Resolves when a shutdown was requested.
    pub async fn shutdown_requested(&self) -> ShutdownReason {
        loop {
            let notified = self.shutdown.notified();
            if let Some(r) = *self
                .shutdown_reason
                .lock()
                .unwrap_or_else(|e| e.into_inner())
            {
                return r;
            }
            notified.await;
        }
    }
}
