//! Access log sinks: one background writer thread per destination (file path, stdout,
//! stderr), fed through a bounded channel so the request path never does file I/O. Sinks
//! for the same path are shared by every logger that names it, as in Envoy. Files are
//! reopened on request ([`reopen_files`]: SIGUSR1 and `POST /reopen_logs`, as Envoy), so
//! log rotation moves the old file away and the next lines go to a new one.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use baton_config::model::AccessLogSink;

use super::fs_stats::FsStats;

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
        if line.is_empty() {
            // An empty message asks the writer to reopen its file.
            return;
        }
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

/// Asks every file sink's writer to reopen its file (after writing what it queued
/// before): the next lines go to whatever file the path names then. A file that cannot
/// be opened keeps the old one in use (and is logged).
pub fn reopen_files() {
    let reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    for (dest, sink) in reg.iter() {
        if let (AccessLogSink::File(_), Some(sink)) = (dest, sink.upgrade()) {
            // An empty Vec allocates nothing; a full queue already wakes the writer and
            // is drained first, so a failed send only delays the reopen to the next one.
            if sink.tx.try_send(Vec::new()).is_err() {
                tracing::warn!(path = ?dest, "access log writer busy; reopen not queued");
            }
        }
    }
}

/// Opens `path` for appending, creating it.
fn open_append(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
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
        AccessLogSink::File(path) => {
            Box::new(open_append(path).map_err(|source| SinkError::Open {
                path: path.clone(),
                source,
            })?)
        }
    };
    let path = match dest {
        AccessLogSink::File(path) => Some(path.clone()),
        _ => None,
    };
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(QUEUE_LINES);
    std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || writer_loop(rx, out, path))
        .map_err(SinkError::Thread)?;
    let sink = Arc::new(Sink {
        tx,
        dropped: AtomicU64::new(0),
    });
    reg.push((dest.clone(), Arc::downgrade(&sink)));
    Ok(sink)
}

/// Writes queued lines until every sender is gone; flushes when the queue runs dry or
/// after `FLUSH_INTERVAL`. An empty message reopens `path` (a file sink's).
fn writer_loop(rx: mpsc::Receiver<Vec<u8>>, out: Box<dyn Write + Send>, path: Option<PathBuf>) {
    let mut out = Writer {
        out: std::io::BufWriter::with_capacity(64 * 1024, out),
        path,
        shown: 0,
        stats: super::fs_stats::get(),
    };
    let mut dirty = false;
    loop {
        let next = if dirty {
            rx.recv_timeout(FLUSH_INTERVAL)
        } else {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        };
        match next {
            Ok(message) => {
                out.take(&message);
                dirty = true;
                // Flush as soon as nothing else is waiting, so lines show up promptly.
                if let Ok(more) = rx.try_recv() {
                    out.take(&more);
                    continue;
                }
                out.flush(false);
                dirty = false;
            }
            Err(RecvTimeoutError::Timeout) => {
                out.flush(true);
                dirty = false;
            }
            Err(RecvTimeoutError::Disconnected) => {
                out.flush(false);
                return;
            }
        }
    }
}

/// A sink's destination behind its write buffer, counting `filesystem.*`.
struct Writer {
    out: std::io::BufWriter<Box<dyn Write + Send>>,
    /// A file sink's path (reopened on request).
    path: Option<PathBuf>,
    /// The bytes of `out`'s buffer counted in `write_total_buffered`.
    shown: u64,
    stats: Option<&'static FsStats>,
}

impl Writer {
    /// One queued message: a line to write, or (empty) the request to reopen the file.
    fn take(&mut self, message: &[u8]) {
        if message.is_empty() {
            self.reopen();
            return;
        }
        let before = self.out.buffer().len();
        let result = self.out.write_all(message);
        if let Some(stats) = self.stats {
            stats.write_buffered.inc();
            // The buffer went to the file to make room (or the line went past it).
            if self.out.buffer().len() < before + message.len() {
                match &result {
                    Ok(()) => stats.write_completed.inc(),
                    Err(_) => stats.write_failed.inc(),
                }
            }
        }
        if let Err(e) = result {
            tracing::warn!(error = %e, "access log write failed");
        }
        self.show_buffered();
    }

    /// Writes the buffer out; `by_timer` when a line waited `FLUSH_INTERVAL`.
    fn flush(&mut self, by_timer: bool) {
        let pending = !self.out.buffer().is_empty();
        let result = self.out.flush();
        if let (true, Some(stats)) = (pending, self.stats) {
            match &result {
                Ok(()) => {
                    stats.write_completed.inc();
                    if by_timer {
                        stats.flushed_by_timer.inc();
                    }
                }
                Err(_) => stats.write_failed.inc(),
            }
        }
        if let Err(e) = result {
            tracing::warn!(error = %e, "access log flush failed");
        }
        self.show_buffered();
    }

    /// Flushes what the buffer holds to the file it has, then points it at a fresh open
    /// of the path. A path that cannot be opened keeps the old file (and is counted).
    fn reopen(&mut self) {
        let Some(path) = self.path.clone() else {
            return;
        };
        self.flush(false);
        match open_append(&path) {
            Ok(file) => *self.out.get_mut() = Box::new(file),
            Err(e) => {
                if let Some(stats) = self.stats {
                    stats.reopen_failed.inc();
                }
                tracing::warn!(path = %path.display(), error = %e, "cannot reopen access log; writing to the old file")
            }
        }
    }

    /// Moves `write_total_buffered` by what the buffer gained or lost.
    fn show_buffered(&mut self) {
        let now = self.out.buffer().len() as u64;
        if let Some(stats) = self.stats {
            if now > self.shown {
                stats.write_total_buffered.add(now - self.shown);
            } else if now < self.shown {
                stats.write_total_buffered.sub(self.shown - now);
            }
        }
        self.shown = now;
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Whatever a failed write left is gone with the writer.
        if let Some(stats) = self.stats {
            stats.write_total_buffered.sub(self.shown);
        }
    }
}
