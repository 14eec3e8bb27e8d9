//! Generation transitions of the supervisor loop: starting a generation (initial, reload,
//! upgrade, respawn), READY=1 making it LIVE, a starting generation failing (exit or ready
//! timeout), and exits of live (crash: respawn with backoff) and draining generations.

use std::path::PathBuf;
use std::time::Duration;

use baton_proto::pb::baton::supervisor::v1 as pb;
use nix::sys::signal::Signal;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::exit;
use crate::generation::{summary, unix_now, GenState, Generation};
use crate::notify::ChildNotifySocket;
use crate::sockets::{fd_names, raw_fds};
use crate::spawn::{forward_output, spawn, LastError, SpawnSpec, Stream};
use crate::supervisor::{fail_reply, Event, Pending, StartKind, Supervisor};

/// How long a generation given up on (ready timeout) has after SIGTERM before SIGKILL.
const FAILED_KILL_GRACE: Duration = Duration::from_secs(5);

/// How long an exited generation's output may take to drain before its exit is reported
/// (a grandchild holding the pipe must not delay the report forever).
const OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

impl Supervisor {
    /// SIGHUP / `ctl reload` / a checked `ctl upgrade`: start the next generation unless one
    /// is starting already or the supervisor is stopping.
    pub(crate) fn start_reload(
        &mut self,
        kind: StartKind,
        binary: PathBuf,
        reply: Option<oneshot::Sender<pb::ControlReply>>,
    ) {
        let refuse = if self.stopping.is_some() {
            Some("the supervisor is stopping".to_owned())
        } else {
            self.pending.as_ref().map(|pending| {
                let epoch = self
                    .generations
                    .iter()
                    .find(|g| g.id == pending.id)
                    .map_or(0, |g| g.epoch);
                format!("generation {epoch} is still starting; retry when it is live or failed")
            })
        };
        if let Some(message) = refuse {
            tracing::warn!("reload refused: {message}");
            if let Some(reply) = reply {
                let _ = reply.send(fail_reply(message));
            }
            return;
        }
        // A reload while a crash respawn waits for its backoff simply starts now.
        self.respawn_at = None;
        self.start_generation(kind, binary, reply.into_iter().collect());
    }

    /// Spawns the next generation and records it as STARTING with a ready deadline.
    pub(crate) fn start_generation(
        &mut self,
        kind: StartKind,
        binary: PathBuf,
        replies: Vec<oneshot::Sender<pb::ControlReply>>,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        // A reload's child takes over from the live epoch; after a crash there is no parent,
        // so the respawn uses a fresh epoch (baton then starts without a parent).
        let epoch = match (kind, self.live()) {
            (StartKind::Initial, _) => 0,
            (_, Some(live)) => live.epoch + 1,
            (_, None) => self.max_epoch.map_or(0, |e| e + 1),
        };
        self.max_epoch = Some(self.max_epoch.map_or(epoch, |e| e.max(epoch)));
        if matches!(kind, StartKind::Reload | StartKind::Upgrade) {
            self.notify_reloading(&format!("reloading: starting generation {epoch}"));
        }
        tracing::info!(epoch, binary = %binary.display(), ?kind, "starting generation");
        match self.spawn_generation(id, epoch, &binary) {
            Ok(generation) => {
                self.generations.push(generation);
                self.pending = Some(Pending {
                    id,
                    kind,
                    binary,
                    deadline: ready_deadline(self.settings.ready_timeout()),
                    replies,
                });
            }
            Err(message) => {
                self.pending = Some(Pending {
                    id,
                    kind,
                    binary,
                    deadline: Instant::now(),
                    replies,
                });
                self.fail_pending(epoch, message);
            }
        }
    }

    fn spawn_generation(
        &self,
        id: u64,
        epoch: u32,
        binary: &std::path::Path,
    ) -> Result<Generation, String> {
        let notify_path = self.settings.runtime_dir.join(format!("notify-{id}.sock"));
        let notify = ChildNotifySocket::bind(&notify_path)
            .map_err(|e| format!("cannot bind notify socket {}: {e}", notify_path.display()))?;
        let mut args = self.settings.baton_args.clone();
        args.extend([
            "--restart-epoch".to_owned(),
            epoch.to_string(),
            "--base-id".to_owned(),
            self.settings.base_id.to_string(),
            "--runtime-dir".to_owned(),
            self.settings.runtime_dir.display().to_string(),
        ]);
        let mut child = spawn(SpawnSpec {
            binary,
            args,
            notify_socket: notify.path(),
            listen_fds: raw_fds(&self.sockets),
            fd_names: fd_names(&self.sockets),
        })
        .map_err(|e| e.to_string())?;
        let pid = child.id().unwrap_or(0);
        let label = Generation::label(epoch, pid);
        let last_error = LastError::default();
        let mut forwarders = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            forwarders.push(tokio::spawn(forward_output(
                stdout,
                Stream::Stdout,
                label.clone(),
                last_error.clone(),
            )));
        }
        if let Some(stderr) = child.stderr.take() {
            forwarders.push(tokio::spawn(forward_output(
                stderr,
                Stream::Stderr,
                label.clone(),
                last_error.clone(),
            )));
        }
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(status) => status.to_string(),
                Err(err) => format!("unknown status ({err})"),
            };
            for forwarder in forwarders {
                let _ = tokio::time::timeout(OUTPUT_DRAIN_TIMEOUT, forwarder).await;
            }
            let _ = events.send(Event::Exited { id, status }).await;
        });
        let events = self.events_tx.clone();
        let notify_task = tokio::spawn(async move {
            loop {
                match notify.recv().await {
                    Ok(lines) => {
                        if events.send(Event::Notify { id, lines }).await.is_err() {
                            return;
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "notify socket receive failed");
                        return;
                    }
                }
            }
        });
        tracing::info!("{label} started");
        Ok(Generation {
            id,
            epoch,
            pid,
            state: GenState::Starting,
            started_unix: unix_now(),
            live_since: None,
            binary: binary.to_path_buf(),
            last_error,
            notify_task,
            detail: String::new(),
            kill_at: None,
        })
    }

    pub(crate) fn live(&self) -> Option<&Generation> {
        self.generations.iter().find(|g| g.state == GenState::Live)
    }

    /// READY=1 from the starting generation at `index`: it is LIVE, any older live one is
    /// draining (baton hands over by itself), and whoever waited hears of it.
    pub(crate) fn become_live(&mut self, index: usize) {
        let now = std::time::Instant::now();
        let (id, epoch, pid) = {
            let generation = &mut self.generations[index];
            generation.state = GenState::Live;
            generation.live_since = Some(now);
            (generation.id, generation.epoch, generation.pid)
        };
        for other in &mut self.generations {
            if other.id != id && other.state == GenState::Live {
                other.state = GenState::Draining;
            }
        }
        let message = format!("generation {epoch} (pid {pid}) is live");
        tracing::info!("{} live", Generation::label(epoch, pid));
        let status = summary(&self.generations);
        let Some(pending) = self.pending.take_if(|p| p.id == id) else {
            self.notify_status(&status);
            return;
        };
        match pending.kind {
            StartKind::Initial => self.notifier.send(&[
                "READY=1".into(),
                format!("MAINPID={}", std::process::id()),
                format!("STATUS={status}"),
            ]),
            StartKind::Reload | StartKind::Upgrade => {
                if pending.kind == StartKind::Upgrade {
                    tracing::info!(binary = %pending.binary.display(), "upgrade complete");
                    self.binary = pending.binary.clone();
                }
                self.record_reload(true, message.clone(), Some(epoch));
                self.notifier
                    .send(&["READY=1".into(), format!("STATUS={status}")]);
            }
            StartKind::Respawn => self.notify_status(&status),
        }
        for reply in pending.replies {
            let _ = reply.send(pb::ControlReply {
                ok: true,
                message: message.clone(),
                status: Some(self.status()),
            });
        }
    }

    /// The starting generation missed its ready deadline: kill it and fail the reload.
    pub(crate) fn ready_timeout(&mut self) {
        let Some(pending) = self.pending.as_ref() else {
            return;
        };
        let Some(generation) = self.generations.iter_mut().find(|g| g.id == pending.id) else {
            return;
        };
        generation.state = GenState::Failed;
        // SIGTERM first: a generation still initialising closes the admin port it may
        // hold for its parent without resetting a client, and exits (SIGKILL if it cannot).
        generation.signal(Signal::SIGTERM);
        generation.kill_at = Some(Instant::now() + FAILED_KILL_GRACE);
        let epoch = generation.epoch;
        let mut message = format!(
            "generation {epoch} (pid {}) did not report READY=1 within {:?}; stopped",
            generation.pid,
            self.settings.ready_timeout().unwrap_or(Duration::MAX)
        );
        if let Some(line) = generation.last_error.get() {
            message.push_str(&format!("; last output: {line}"));
        }
        self.fail_pending(epoch, message);
    }

    /// The pending start failed with `message`.
    pub(crate) fn fail_pending(&mut self, epoch: u32, message: String) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        tracing::error!(?pending.kind, "starting generation {epoch} failed: {message}");
        match pending.kind {
            StartKind::Initial => {
                self.notify_status(&format!("generation 0 failed: {message}"));
                self.begin_stop(exit::START_FAILED, None);
            }
            StartKind::Reload | StartKind::Upgrade => {
                self.record_reload(false, message.clone(), Some(epoch));
                // Ends systemd's "reloading" state; the old generation still serves.
                self.notifier.send(&[
                    "READY=1".into(),
                    format!(
                        "STATUS={}; reload failed: {message}",
                        summary(&self.generations)
                    ),
                ]);
            }
            StartKind::Respawn => self.count_crash(Duration::ZERO),
        }
        for reply in pending.replies {
            let _ = reply.send(fail_reply(message.clone()));
        }
        self.ensure_running();
    }

    /// A generation exited; `status` is its wait status text.
    pub(crate) fn on_exit(&mut self, id: u64, status: &str) {
        let Some(index) = self.generations.iter().position(|g| g.id == id) else {
            return;
        };
        let generation = self.generations.remove(index);
        let label = Generation::label(generation.epoch, generation.pid);
        match generation.state {
            GenState::Starting => {
                let mut message = format!(
                    "generation {} (pid {}) exited ({status}) before READY=1",
                    generation.epoch, generation.pid
                );
                if let Some(line) = generation.last_error.get() {
                    message.push_str(&format!(": {line}"));
                }
                self.fail_pending(generation.epoch, message);
            }
            GenState::Failed => tracing::info!("{label} exited ({status}) after failing to start"),
            GenState::Draining => tracing::info!("{label} exited ({status}) after draining"),
            GenState::Live if self.stopping.is_some() => {
                tracing::info!("{label} exited ({status})")
            }
            GenState::Live => {
                let mut message = format!("{label} exited unexpectedly ({status})");
                if let Some(line) = generation.last_error.get() {
                    message.push_str(&format!("; last output: {line}"));
                }
                tracing::error!("{message}");
                self.restarts += 1;
                let lived = generation
                    .live_since
                    .map_or(Duration::ZERO, |since| since.elapsed());
                self.count_crash(lived);
            }
        }
        drop(generation);
        if self.stopping.is_some() {
            if self.generations.is_empty() {
                self.finish_stop();
            }
        } else {
            self.ensure_running();
        }
    }

    /// Counts a crash (or failed respawn) into the streak; gives up past the limit,
    /// otherwise schedules a respawn after the backoff.
    fn count_crash(&mut self, lived: Duration) {
        if lived >= self.settings.respawn.reset_after {
            self.crash_streak = 0;
        }
        self.crash_streak += 1;
        if self.crash_streak > self.settings.respawn.limit {
            tracing::error!(
                crashes = self.crash_streak,
                limit = self.settings.respawn.limit,
                "too many consecutive crashes; giving up"
            );
            self.begin_stop(exit::RESPAWN_LIMIT, None);
            return;
        }
        if self.live().is_none() && self.pending.is_none() {
            let delay = self.settings.respawn.backoff(self.crash_streak);
            tracing::warn!(
                attempt = self.crash_streak,
                ?delay,
                "respawning after backoff"
            );
            self.notify_status(&format!(
                "no live generation; respawning in {} ms (attempt {})",
                delay.as_millis(),
                self.crash_streak
            ));
            self.respawn_at = Some(Instant::now() + delay);
        }
    }

    /// Nothing live, nothing starting, nothing scheduled (e.g. the last generation exited
    /// on its own): that is a crash of the service too.
    fn ensure_running(&mut self) {
        let idle = self.stopping.is_none()
            && self.exit_code.is_none()
            && self.pending.is_none()
            && self.respawn_at.is_none()
            && !self
                .generations
                .iter()
                .any(|g| matches!(g.state, GenState::Live | GenState::Starting));
        if idle {
            tracing::warn!("no generation is live or starting");
            self.count_crash(Duration::ZERO);
        }
    }

    /// Remembers a reload/upgrade outcome for `status`.
    pub(crate) fn record_reload(&mut self, ok: bool, message: String, epoch: Option<u32>) {
        self.last_reload = Some(pb::ReloadResult {
            at_unix: unix_now(),
            ok,
            message,
            epoch: epoch.unwrap_or(0),
        });
    }
}

/// When a starting generation must be ready by (`None`: no limit, i.e. far away).
fn ready_deadline(timeout: Option<Duration>) -> Instant {
    let now = Instant::now();
    timeout
        .and_then(|t| now.checked_add(t))
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}
