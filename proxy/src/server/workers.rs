//! Worker threads, Envoy-style: `--concurrency N` threads, each running its own
//! current-thread tokio runtime and accepting from the same listen sockets, so nothing
//! on the request path crosses threads. A worker exits when the drain phase reaches
//! Closed; dropping its runtime closes whatever connections it still holds.

use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Context as _;
use tracing::{debug, error};

use crate::base::drain::DrainSignal;
use crate::listener::{accept_loop, BoundListener, NetworkContext};

/// Running worker threads.
#[derive(Debug)]
pub struct Workers {
    handles: Vec<JoinHandle<()>>,
}

/// Starts `count` workers accepting on every listener in `bound`.
pub fn start(
    count: usize,
    bound: &[BoundListener],
    network: &Arc<NetworkContext>,
    drain: &DrainSignal,
) -> anyhow::Result<Workers> {
    let mut handles = Vec::with_capacity(count);
    for index in 0..count {
        let mut sockets = Vec::with_capacity(bound.len());
        for b in bound {
            let socket = b
                .socket
                .try_clone()
                .with_context(|| format!("cannot share listener {}", b.model.name))?;
            sockets.push((socket, Arc::clone(&b.model)));
        }
        let network = Arc::clone(network);
        let drain = drain.clone();
        let handle = std::thread::Builder::new()
            .name(format!("wrk:worker_{index}"))
            .spawn(move || run_worker(index, sockets, network, drain))
            .context("cannot spawn worker thread")?;
        handles.push(handle);
    }
    Ok(Workers { handles })
}

fn run_worker(
    index: usize,
    sockets: Vec<(std::net::TcpListener, Arc<baton_config::model::Listener>)>,
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
        for (socket, model) in sockets {
            match tokio::net::TcpListener::from_std(socket) {
                Ok(listener) => {
                    tokio::spawn(accept_loop(
                        listener,
                        model,
                        Arc::clone(&network),
                        drain.clone(),
                    ));
                }
                Err(e) => error!(worker = index, error = %e, "cannot register listener"),
            }
        }
        drain.closed().await;
        debug!(worker = index, "worker closing");
    });
    // Dropping the runtime cancels the remaining connection tasks (drain time is over).
    runtime.shutdown_background();
}

impl Workers {
    /// Waits for every worker thread to finish.
    pub async fn join(self) {
        for h in self.handles {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}
