//! Worker threads, Envoy-style: `--concurrency N` threads, each running its own
//! current-thread tokio runtime. The listener manager hands every worker each listener
//! that becomes active ([`Workers::add_listener`]); each worker then accepts on its own
//! dup of the same listen socket, so nothing on the request path crosses threads. A
//! worker exits when the server drain reaches Closed; dropping its runtime closes
//! whatever connections it still holds.

use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Context as _;
use tokio::sync::mpsc;
use tracing::{debug, error};

use crate::base::drain::DrainSignal;
use crate::listener::{accept_loop, ListenerHandle, NetworkContext, WorkerStatsOf};

/// What the listener manager asks of a worker.
enum WorkerCommand {
    /// Start accepting on this listener (until it stops accepting), counting in these
    /// per-worker stats (resolved by the caller, so they exist once the listener is
    /// handed over, as Envoy's).
    Accept(Arc<ListenerHandle>, WorkerStatsOf),
}

/// Running worker threads.
#[derive(Debug)]
pub struct Workers {
    handles: Vec<JoinHandle<()>>,
    commands: Vec<mpsc::UnboundedSender<WorkerCommand>>,
}

/// Starts `count` idle workers; they run until `server_drain` reaches Closed.
pub fn start(
    count: usize,
    network: &Arc<NetworkContext>,
    server_drain: &DrainSignal,
) -> anyhow::Result<Workers> {
    let mut handles = Vec::with_capacity(count);
    let mut commands = Vec::with_capacity(count);
    for index in 0..count {
        let (tx, rx) = mpsc::unbounded_channel();
        let network = Arc::clone(network);
        let drain = server_drain.clone();
        let handle = std::thread::Builder::new()
            .name(format!("wrk:worker_{index}"))
            .spawn(move || run_worker(index, rx, network, drain))
            .context("cannot spawn worker thread")?;
        handles.push(handle);
        commands.push(tx);
    }
    Ok(Workers { handles, commands })
}

fn run_worker(
    index: usize,
    mut commands: mpsc::UnboundedReceiver<WorkerCommand>,
    network: Arc<NetworkContext>,
    mut drain: DrainSignal,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(worker = index, error = %e, "cannot start worker runtime");
            return;
        }
    };
    runtime.block_on(async move {
        loop {
            tokio::select! {
                _ = drain.closed() => break,
                cmd = commands.recv() => match cmd {
                    Some(WorkerCommand::Accept(listener, stats)) => {
                        let socket = listener
                            .socket
                            .try_clone()
                            .and_then(tokio::net::TcpListener::from_std);
                        match socket {
                            Ok(socket) => {
                                tokio::spawn(accept_loop(socket, listener, Arc::clone(&network), (index, stats)));
                            }
                            Err(e) => error!(worker = index, listener = %listener.name, error = %e, "cannot register listener"),
                        }
                    }
                    // The manager is gone: keep serving until the drain ends.
                    None => drain.closed().await,
                },
            }
        }
        debug!(worker = index, "worker closing");
    });
    // Dropping the runtime cancels the remaining connection tasks (drain time is over).
    runtime.shutdown_background();
}

impl Workers {
    /// Number of workers.
    pub fn count(&self) -> usize {
        self.commands.len()
    }

    /// Every worker starts accepting on `listener`.
    pub fn add_listener(&self, listener: &Arc<ListenerHandle>) {
        let listener_stats = Arc::clone(&listener.snapshot().stats);
        for (index, tx) in self.commands.iter().enumerate() {
            let stats = (
                Arc::clone(&listener_stats),
                Arc::new(listener_stats.worker(index)),
            );
            let _ = tx.send(WorkerCommand::Accept(Arc::clone(listener), stats));
        }
    }

    /// Waits for every worker thread to finish.
    pub async fn join(self) {
        drop(self.commands);
        for h in self.handles {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}
