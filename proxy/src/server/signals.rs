//! SIGTERM and SIGINT, and SIGUSR1 (reopen the access log files, as Envoy). The handlers
//! are installed once, as a generation starts, so no signal falls between two waits. Before the workers accept, a signal ends the
//! generation ([`EarlyStop`]): it serves no one yet, but admin may be answering on its
//! parent's handed-over socket, so admin is closed gently first.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::{info, warn};

use super::state::{ServerState, ShutdownReason};
use crate::admin::AdminContext;

/// How long a generation stopping before LIVE waits for its admin connections.
const ADMIN_CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// Exit code of a generation told to stop before its workers accepted: 0, as Envoy 1.40
/// exits on SIGTERM while it initialises.
const STOPPED_BEFORE_LIVE: i32 = 0;

/// SIGTERM/SIGINT streams.
pub(super) struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    pub(super) fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        if term.is_none() || int.is_none() {
            warn!("cannot install signal handlers; only /quitquitquit stops baton");
        }
        Self { term, int }
    }

    /// Waits for SIGTERM or SIGINT.
    async fn signal(&mut self) {
        let term = async {
            match self.term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let int = async {
            match self.int.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = term => {}
            () = int => {}
        }
    }

    /// Waits for SIGTERM, SIGINT or a shutdown request (admin, hot restart).
    pub(super) async fn recv(&mut self, state: &ServerState) -> ShutdownReason {
        tokio::select! {
            () = self.signal() => ShutdownReason::Signal,
            r = state.shutdown_requested() => r,
        }
    }
}

/// SIGUSR1 (log rotation) must not kill a generation still loading its config: ignored
/// until [`reopen_logs_on_sigusr1`] takes it over (there is no access log to reopen yet).
pub(super) fn ignore_sigusr1_until_served() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: SIG_IGN installs no handler code; nothing else sets SIGUSR1's action this
    // early (tokio's handler comes later and replaces it).
    #[allow(unsafe_code)]
    if let Err(e) = unsafe { signal(Signal::SIGUSR1, SigHandler::SigIgn) } {
        warn!(error = %e, "cannot ignore SIGUSR1 during start-up");
    }
}

/// From now on SIGUSR1 reopens the access log files (its default action would kill the
/// process), for as long as the runtime runs.
pub(super) fn reopen_logs_on_sigusr1() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::user_defined1()) {
        Ok(mut usr1) => {
            tokio::spawn(async move {
                while usr1.recv().await.is_some() {
                    info!("SIGUSR1: reopening access logs");
                    crate::access_log::reopen_files();
                }
            });
        }
        Err(e) => warn!(error = %e, "cannot install the SIGUSR1 handler"),
    }
}

/// Watches the signals while the generation initialises: a signal then closes admin
/// gently and exits with [`STOPPED_BEFORE_LIVE`].
pub(super) struct EarlyStop {
    done: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Signals>,
}

impl EarlyStop {
    pub(super) fn watch(mut signals: Signals, admin: Option<Arc<AdminContext>>) -> Self {
        let (done, mut initialised) = oneshot::channel();
        let task = tokio::spawn(async move {
            tokio::select! {
                biased;
                // Initialised (or initialisation gave up: the sender dropped).
                _ = &mut initialised => return signals,
                () = signals.signal() => {}
            }
            info!("told to stop (SIGTERM/SIGINT) while initialising; exiting");
            if let Some(ctx) = admin {
                close_admin(&ctx).await;
            }
            std::process::exit(STOPPED_BEFORE_LIVE);
        });
        Self { done, task }
    }

    /// The workers are about to accept: signals from now on mean a graceful drain, so
    /// the streams (with any signal already pending on them) go back to the caller.
    pub(super) async fn end(self) -> Signals {
        let _ = self.done.send(());
        match self.task.await {
            Ok(signals) => signals,
            Err(e) => {
                warn!(error = %e, "signal watcher ended abnormally; installing signals again");
                Signals::install()
            }
        }
    }
}

/// Stops admin accepting and waits (bounded) for its open connections: a generation
/// about to exit before it served anyone.
pub(super) async fn close_admin(ctx: &AdminContext) {
    if !ctx.closing.close(ADMIN_CLOSE_WITHIN).await {
        warn!("admin connections still open; exiting anyway");
    }
}
