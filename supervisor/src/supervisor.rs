//! The supervisor's event loop: one task owns every generation and reacts to signals
//! (SIGHUP reload, SIGTERM/SIGINT stop, SIGUSR1 passed on), control requests, sd_notify datagrams from the
//! generations, their exits and its own timers (ready timeout, respawn backoff, stop
//! deadline, systemd watchdog). See `LIFECYCLE.md` for the sequences.

use std::path::PathBuf;
use std::time::Duration;

use baton_proto::pb::baton::supervisor::v1 as pb;
use nix::sys::signal::Signal;
use pb::control_request::Kind;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::control::Incoming;
use crate::generation::{summary, GenState, Generation};
use crate::notify::{monotonic_usec, Notifier};
use crate::settings::Settings;
use crate::sockets::ListenSocket;
use crate::{exit, upgrade};

/// Something that happened outside the loop, reported by a helper task.
#[derive(Debug)]
pub enum Event {
    /// A generation sent sd_notify lines.
    Notify {
        /// The generation's spawn id.
        id: u64,
        /// `KEY=value` lines.
        lines: Vec<String>,
    },
    /// A generation exited (and its output was drained).
    Exited {
        /// The generation's spawn id.
        id: u64,
        /// How it ended.
        status: String,
    },
    /// The checks of an upgrade's new binary finished.
    UpgradeChecked {
        /// The new binary.
        binary: PathBuf,
        /// `Err` with the reason when the binary is unusable.
        result: Result<(), String>,
        /// The `ctl upgrade` waiting for the outcome.
        reply: oneshot::Sender<pb::ControlReply>,
    },
}

/// Why a generation is being started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartKind {
    /// Generation 0 at supervisor start.
    Initial,
    /// SIGHUP or `ctl reload`.
    Reload,
    /// `ctl upgrade`.
    Upgrade,
    /// Replacing a crashed live generation.
    Respawn,
}

/// The generation currently starting, and who waits for it.
#[derive(Debug)]
pub struct Pending {
    /// Spawn id of the starting generation.
    pub id: u64,
    /// Why it is starting.
    pub kind: StartKind,
    /// Its binary (becomes the supervisor's binary on a successful upgrade).
    pub binary: PathBuf,
    /// When it must have sent READY=1.
    pub deadline: Instant,
    /// `ctl` callers waiting for the outcome.
    pub replies: Vec<oneshot::Sender<pb::ControlReply>>,
}

/// A stop in progress.
#[derive(Debug)]
pub struct Stopping {
    /// When remaining generations get SIGKILL.
    pub deadline: Instant,
    /// Whether SIGKILL was sent already.
    pub killed: bool,
    /// The exit code once every generation is gone.
    pub code: u8,
    /// `ctl stop` callers, answered just before exit.
    pub replies: Vec<oneshot::Sender<pb::ControlReply>>,
}

/// The supervisor state, owned by [`Supervisor::run`].
#[derive(Debug)]
pub struct Supervisor {
    pub(crate) settings: Settings,
    /// Binary for new generations (replaced by a successful upgrade).
    pub(crate) binary: PathBuf,
    pub(crate) sockets: Vec<ListenSocket>,
    pub(crate) notifier: Notifier,
    pub(crate) generations: Vec<Generation>,
    pub(crate) next_id: u64,
    /// Highest epoch ever started (the next crash respawn uses one more).
    pub(crate) max_epoch: Option<u32>,
    pub(crate) pending: Option<Pending>,
    pub(crate) respawn_at: Option<Instant>,
    pub(crate) crash_streak: u32,
    pub(crate) restarts: u32,
    pub(crate) last_reload: Option<pb::ReloadResult>,
    pub(crate) stopping: Option<Stopping>,
    pub(crate) events_tx: mpsc::Sender<Event>,
    pub(crate) exit_code: Option<u8>,
}

impl Supervisor {
    /// A supervisor for `settings` passing `sockets` to every generation.
    pub fn new(
        settings: Settings,
        sockets: Vec<ListenSocket>,
        notifier: Notifier,
        events_tx: mpsc::Sender<Event>,
    ) -> Self {
        Self {
            binary: settings.binary.clone(),
            settings,
            sockets,
            notifier,
            generations: Vec::new(),
            next_id: 0,
            max_epoch: None,
            pending: None,
            respawn_at: None,
            crash_streak: 0,
            restarts: 0,
            last_reload: None,
            stopping: None,
            events_tx,
            exit_code: None,
        }
    }

    /// Runs until stopped; returns the process exit code (see [`crate::exit`]).
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<Event>,
        mut control: mpsc::Receiver<Incoming>,
    ) -> anyhow::Result<u8> {
        let mut sighup = signal(SignalKind::hangup())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigusr1 = signal(SignalKind::user_defined1())?;
        let watchdog_every = self.notifier.watchdog().map(|d| d / 2);
        let mut next_watchdog = watchdog_every.map(|every| Instant::now() + every);

        self.notify_status("starting generation 0");
        self.start_generation(StartKind::Initial, self.binary.clone(), Vec::new());
        loop {
            if let Some(code) = self.exit_code {
                return Ok(code);
            }
            let wake = [
                self.pending.as_ref().map(|p| p.deadline),
                self.respawn_at,
                self.stopping.as_ref().map(|s| s.deadline),
                next_watchdog,
            ]
            .into_iter()
            .chain(self.generations.iter().map(|g| g.kill_at))
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = sighup.recv() => {
                    tracing::info!("SIGHUP: reloading");
                    self.start_reload(StartKind::Reload, self.binary.clone(), None);
                }
                _ = sigterm.recv() => self.on_stop_signal("SIGTERM"),
                _ = sigint.recv() => self.on_stop_signal("SIGINT"),
                _ = sigusr1.recv() => {
                    // Log rotation: the serving generations reopen their access logs. One
                    // still starting may not handle the signal yet (it would die of it);
                    // if it opened its files before the rotation, a second SIGUSR1 once
                    // it is LIVE moves it over.
                    tracing::info!("SIGUSR1: passed to the serving generations (reopen access logs)");
                    for generation in self.generations.iter().filter(|g| {
                        matches!(g.state, GenState::Live | GenState::Draining)
                    }) {
                        generation.signal(nix::sys::signal::Signal::SIGUSR1);
                    }
                }
                Some(incoming) = control.recv() => self.on_control(incoming),
                Some(event) = events.recv() => self.on_event(event),
                _ = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    if let (Some(at), Some(every)) = (next_watchdog, watchdog_every) {
                        if at <= now {
                            self.notifier.send(&["WATCHDOG=1".into()]);
                            next_watchdog = Some(now + every);
                        }
                    }
                    self.on_timers(now);
                }
            }
        }
    }

    fn on_stop_signal(&mut self, name: &str) {
        if self.stopping.is_some() {
            tracing::warn!("{name} again while stopping: killing generations now");
            self.kill_all();
        } else {
            tracing::info!("{name}: graceful stop");
            self.begin_stop(exit::OK, None);
        }
    }

    fn on_control(&mut self, incoming: Incoming) {
        let Incoming { request, reply } = incoming;
        match request.kind {
            Some(Kind::Status(_)) => {
                let live = self.generations.iter().any(|g| g.state == GenState::Live);
                let _ = reply.send(pb::ControlReply {
                    ok: live,
                    message: summary(&self.generations),
                    status: Some(self.status()),
                });
            }
            Some(Kind::Reload(_)) => {
                self.start_reload(StartKind::Reload, self.binary.clone(), Some(reply))
            }
            Some(Kind::Upgrade(upgrade)) => {
                let binary = PathBuf::from(upgrade.binary);
                tracing::info!(binary = %binary.display(), "upgrade requested: checking the new binary");
                upgrade::spawn_checks(
                    binary,
                    self.settings.baton_args.clone(),
                    reply,
                    self.events_tx.clone(),
                );
            }
            Some(Kind::Stop(_)) => {
                if let Some(stopping) = self.stopping.as_mut() {
                    stopping.replies.push(reply);
                } else {
                    tracing::info!("ctl stop: graceful stop");
                    self.begin_stop(exit::OK, Some(reply));
                }
            }
            None => {
                let _ = reply.send(fail_reply("empty control request".into()));
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Notify { id, lines } => self.on_notify(id, &lines),
            Event::Exited { id, status } => self.on_exit(id, &status),
            Event::UpgradeChecked {
                binary,
                result,
                reply,
            } => match result {
                Ok(()) => self.start_reload(StartKind::Upgrade, binary, Some(reply)),
                Err(message) => {
                    tracing::error!(binary = %binary.display(), "upgrade refused: {message}");
                    self.record_reload(false, message.clone(), None);
                    let _ = reply.send(fail_reply(message));
                }
            },
        }
    }

    fn on_notify(&mut self, id: u64, lines: &[String]) {
        let Some(index) = self.generations.iter().position(|g| g.id == id) else {
            return;
        };
        let generation = &mut self.generations[index];
        tracing::debug!(
            epoch = generation.epoch,
            ?lines,
            "sd_notify from generation"
        );
        if let Some(detail) = lines.iter().rev().find_map(|l| l.strip_prefix("STATUS=")) {
            generation.detail = detail.to_string();
        }
        if lines.iter().any(|l| l == "READY=1") && generation.state == GenState::Starting {
            self.become_live(index);
        } else if lines.iter().any(|l| l == "STOPPING=1") && generation.state == GenState::Live {
            tracing::info!(
                "{} draining",
                Generation::label(generation.epoch, generation.pid)
            );
            generation.state = GenState::Draining;
            self.notify_status(&summary(&self.generations));
        }
    }

    fn on_timers(&mut self, now: Instant) {
        if self.pending.as_ref().is_some_and(|p| p.deadline <= now) {
            self.ready_timeout();
        }
        for generation in &mut self.generations {
            if generation.kill_at.is_some_and(|at| at <= now) {
                generation.kill_at = None;
                tracing::warn!(
                    "{} still running after SIGTERM: killing it",
                    Generation::label(generation.epoch, generation.pid)
                );
                generation.signal(Signal::SIGKILL);
            }
        }
        if self.respawn_at.is_some_and(|at| at <= now) {
            self.respawn_at = None;
            self.start_generation(StartKind::Respawn, self.binary.clone(), Vec::new());
        }
        if let Some(stopping) = self.stopping.as_mut() {
            if stopping.deadline <= now {
                if stopping.killed {
                    tracing::error!("generations still running after SIGKILL; exiting anyway");
                    self.finish_stop();
                } else {
                    tracing::warn!(
                        "stop timeout ({:?}) reached: killing remaining generations",
                        self.settings.stop_timeout
                    );
                    self.kill_all();
                }
            }
        }
    }

    fn kill_all(&mut self) {
        for generation in &self.generations {
            generation.signal(Signal::SIGKILL);
        }
        if let Some(stopping) = self.stopping.as_mut() {
            stopping.killed = true;
            // Bounded wait for the kernel to deliver the exits.
            stopping.deadline = Instant::now() + Duration::from_secs(5);
        }
    }

    /// Starts stopping: STOPPING=1, SIGTERM to every generation; the loop exits with `code`
    /// once all are gone (or after the stop timeout and SIGKILL).
    pub(crate) fn begin_stop(
        &mut self,
        code: u8,
        reply: Option<oneshot::Sender<pb::ControlReply>>,
    ) {
        self.notifier
            .send(&["STOPPING=1".into(), "STATUS=stopping".into()]);
        self.respawn_at = None;
        if let Some(pending) = self.pending.take() {
            for waiting in pending.replies {
                let _ = waiting.send(fail_reply("the supervisor is stopping".into()));
            }
        }
        self.stopping = Some(Stopping {
            deadline: Instant::now() + self.settings.stop_timeout,
            killed: false,
            code,
            replies: reply.into_iter().collect(),
        });
        for generation in &mut self.generations {
            if generation.state == GenState::Live {
                generation.state = GenState::Draining;
            }
            generation.signal(Signal::SIGTERM);
        }
        if self.generations.is_empty() {
            self.finish_stop();
        }
    }

    pub(crate) fn finish_stop(&mut self) {
        if let Some(stopping) = self.stopping.take() {
            tracing::info!(code = stopping.code, "supervisor exiting");
            for reply in stopping.replies {
                let _ = reply.send(pb::ControlReply {
                    ok: true,
                    message: "stopped".into(),
                    status: None,
                });
            }
            self.exit_code = Some(stopping.code);
        }
    }

    /// The `status` reply.
    pub(crate) fn status(&self) -> pb::Status {
        pb::Status {
            supervisor_pid: std::process::id(),
            generations: self.generations.iter().map(Generation::to_proto).collect(),
            last_reload: self.last_reload.clone(),
            restarts: self.restarts,
        }
    }

    /// Sends `STATUS=<text>` to systemd.
    pub(crate) fn notify_status(&self, text: &str) {
        self.notifier.send(&[format!("STATUS={text}")]);
    }

    /// Sends RELOADING=1 with the monotonic timestamp systemd requires for notify-reload.
    pub(crate) fn notify_reloading(&self, text: &str) {
        self.notifier.send(&[
            "RELOADING=1".into(),
            format!("MONOTONIC_USEC={}", monotonic_usec()),
            format!("STATUS={text}"),
        ]);
    }
}

/// A failed `ControlReply` carrying `message`.
pub(crate) fn fail_reply(message: String) -> pb::ControlReply {
    pb::ControlReply {
        ok: false,
        message,
        status: None,
    }
}
