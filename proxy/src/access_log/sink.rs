//! Access log sinks: one background writer thread per destination (file path, stdout,
//! stderr), fed through a bounded channel so the request path never does file I/O. Sinks
//! for the same path are shared by every logger that names it, as in Envoy.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use baton_config::model::AccessLogSink;

/// Lines buffered per sink before new lines are dropped (and counted).
const QUEUE_LINES: usize = 16 * 1024;

/// Longest a written line waits in the writer's buffer before a flush (Envoy flushes
/// access log files every second).
const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// Failure to set up a sink.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The file could not be opened for appending.
    #[error("cannot open access log file {path}: {source}")]
    Open {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The writer thread could not be started.
    #[error("cannot start access log writer: {0}")]
    Thread(std::io::Error),
}

/// A destination lines are written to by a background thread.
#[derive(Debug)]
pub struct Sink {
    tx: SyncSender<Vec<u8>>,
    dropped: AtomicU64,
}

impl Sink {
    /// Queues one line (already newline-terminated). Never blocks: when the writer is
    /// behind, the line is dropped and counted.
    pub fn write_line(&self, line: Vec<u8>) {
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

type Registry = Vec<(AccessLogSink, Weak<Sink>)>;

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// The shared sink for `dest`, starting its writer thread on first use. Called when a
/// config snapshot is built, never per request.
pub fn open(dest: &AccessLogSink) -> Result<Arc<Sink>, SinkError> {
    let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    reg.retain(|(_, w)| w.strong_count() > 0);
    if let Some(existing) = reg
        .iter()
        .find(|(d, _)| d == dest)
        .and_then(|(_, w)| w.upgrade())
    {
        return Ok(existing);
    }
    let out: Box<dyn Write + Send> = match dest {
        AccessLogSink::Stdout => Box::new(std::io::stdout()),
        AccessLogSink::Stderr => Box::new(std::io::stderr()),
        AccessLogSink::File(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| SinkError::Open {
                    path: path.clone(),
                    source,
                })?,
        ),
    };
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(QUEUE_LINES);
    std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || writer_loop(rx, out))
        .map_err(SinkError::Thread)?;
    let sink = Arc::new(Sink {
        tx,
        dropped: AtomicU64::new(0),
    });
    reg.push((dest.clone(), Arc::downgrade(&sink)));
    Ok(sink)
}

/// Writes queued lines until every sender is gone; flushes when the queue runs dry or
/// after `FLUSH_INTERVAL`.
fn writer_loop(rx: mpsc::Receiver<Vec<u8>>, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut dirty = false;
    loop {
        let next = if dirty {
            rx.recv_timeout(FLUSH_INTERVAL)
        } else {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        };
        match next {
            Ok(line) => {
                if let Err(e) = out.write_all(&line) {
                    tracing::warn!(error = %e, "access log write failed");
                }
                dirty = true;
                // Flush as soon as nothing else is waiting, so lines show up promptly.
                if let Ok(more) = rx.try_recv() {
                    if let Err(e) = out.write_all(&more) {
                        tracing::warn!(error = %e, "access log write failed");
                    }
                    continue;
                }
                if let Err(e) = out.flush() {
                    tracing::warn!(error = %e, "access log flush failed");
                }
                dirty = false;
            }
            Err(RecvTimeoutError::Timeout) => {
                let _ = out.flush();
                dirty = false;
            }
            Err(RecvTimeoutError::Disconnected) => {
                let _ = out.flush();
                return;
            }
        }
    }
}
