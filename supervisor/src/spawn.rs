//! Starting one generation's process: its command line, environment (`NOTIFY_SOCKET`,
//! socket-activation variables), death signal, and the forwarding of its stdout/stderr line by
//! line with a `[gen N pid P]` prefix.
//!
//! Listen sockets go down like systemd passes them. `LISTEN_PID` must be the child's own pid,
//! which is unknown before fork, so a generation with sockets is started through this same
//! binary's hidden `exec-child` step ([`exec_child`]): it moves the fds to 3, 4, ..., sets
//! `LISTEN_PID` to its pid and execs baton (the pid stays the same across exec).

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::sockets::LISTEN_FDS_START;

/// Environment variable naming the fds `exec-child` moves to 3, 4, ... (comma separated).
const PASS_FDS_ENV: &str = "BATON_SUPERVISOR_PASS_FDS";

/// What to start.
#[derive(Debug)]
pub struct SpawnSpec<'a> {
    /// The baton binary.
    pub binary: &'a Path,
    /// Its full argument list (user args, then epoch, base id and runtime dir).
    pub args: Vec<String>,
    /// The generation's `NOTIFY_SOCKET`.
    pub notify_socket: &'a Path,
    /// Listen sockets to pass, in order, and their `LISTEN_FDNAMES`.
    pub listen_fds: Vec<RawFd>,
    /// `LISTEN_FDNAMES` value.
    pub fd_names: String,
}

/// Why a generation could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// fork/exec failed (missing binary, permissions).
    #[error("cannot start {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Names the supervisor's pid to the generations it launches; the proxy continues the
/// stats region only when this is its parent (`baton_proxy::server::run::STATS_OWNER_ENV`).
pub const STATS_OWNER_ENV: &str = "BATON_STATS_REGION_OWNER";

/// Starts the generation. stdout/stderr are piped (see [`forward_output`]).
pub fn spawn(spec: SpawnSpec<'_>) -> Result<tokio::process::Child, SpawnError> {
    let supervisor_pid = nix::unistd::getpid().as_raw();
    let mut command = if spec.listen_fds.is_empty() {
        let mut command = tokio::process::Command::new(spec.binary);
        command.args(&spec.args);
        command
    } else {
        let helper = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
        let mut command = tokio::process::Command::new(helper);
        command.arg("exec-child").arg(spec.binary).args(&spec.args);
        let fds: Vec<String> = spec.listen_fds.iter().map(|fd| fd.to_string()).collect();
        command
            .env(PASS_FDS_ENV, fds.join(","))
            .env("LISTEN_FDNAMES", &spec.fd_names);
        command
    };
    command
        .env("NOTIFY_SOCKET", spec.notify_socket)
        // The generation continues the stats region this supervisor owns (it checks that
        // the pid is its parent's; see docs/stats-continuation.md).
        .env(STATS_OWNER_ENV, supervisor_pid.to_string())
        .env_remove("LISTEN_PID")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    if spec.listen_fds.is_empty() {
        command
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_FDNAMES");
    }
    let pass_fds = spec.listen_fds.clone();
    #[allow(unsafe_code)]
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe calls (prctl, getppid, fcntl) on captured data without allocating.
    unsafe {
        command.pre_exec(move || {
            // Die with the supervisor: a graceful SIGTERM, like a stop would send.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The supervisor may have died before prctl took effect.
            if libc::getppid() != supervisor_pid {
                libc::_exit(1);
            }
            for fd in &pass_fds {
                if libc::fcntl(*fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    command.spawn().map_err(|source| SpawnError::Spawn {
        binary: spec.binary.to_path_buf(),
        source,
    })
}

/// The hidden `exec-child` step: moves the fds named in [`PASS_FDS_ENV`] to 3, 4, ...,
/// sets `LISTEN_FDS`/`LISTEN_PID`, and execs `argv`. Returns only on failure.
pub fn exec_child(argv: &[String]) -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    let Some((program, args)) = argv.split_first() else {
        return anyhow::anyhow!("exec-child: no program");
    };
    let fds: Vec<RawFd> = std::env::var(PASS_FDS_ENV)
        .unwrap_or_default()
        .split(',')
        .filter_map(|fd| fd.trim().parse().ok())
        .collect();
    if let Err(err) = move_fds_into_place(&fds) {
        return anyhow::anyhow!("exec-child: arranging listen fds: {err}");
    }
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .env_remove(PASS_FDS_ENV)
        .env("LISTEN_FDS", fds.len().to_string())
        .env("LISTEN_PID", std::process::id().to_string());
    let err = command.exec();
    anyhow::anyhow!("exec-child: cannot exec {program}: {err}")
}

/// Puts `fds[i]` at `3 + i`, without close-on-exec, whatever numbers they had. First every fd
/// is duplicated above the target range so that no move overwrites a source not yet moved.
fn move_fds_into_place(fds: &[RawFd]) -> std::io::Result<()> {
    let count = RawFd::try_from(fds.len()).map_err(std::io::Error::other)?;
    let above = LISTEN_FDS_START + count;
    let mut parked = Vec::with_capacity(fds.len());
    for fd in fds {
        #[allow(unsafe_code)]
        // SAFETY: fcntl on an fd number the supervisor passed us; an invalid one fails with
        // EBADF, which we report.
        let copy = unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, above) };
        if copy < 0 {
            return Err(std::io::Error::last_os_error());
        }
        parked.push(copy);
    }
    for (index, copy) in parked.iter().enumerate() {
        let target = LISTEN_FDS_START + RawFd::try_from(index).map_err(std::io::Error::other)?;
        #[allow(unsafe_code)]
        // SAFETY: dup2 onto the protocol's fd slot; whatever was there is ours to replace
        // (this process is about to exec) and the parked copies are above the range.
        let rc = unsafe { libc::dup2(*copy, target) };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Keeps the last line that looks like an error (else the last line) a generation wrote on
/// stderr, to report why a reload failed.
#[derive(Debug, Clone, Default)]
pub struct LastError(Arc<Mutex<Option<(bool, String)>>>);

impl LastError {
    fn record(&self, line: &str) {
        let is_error = line.to_ascii_lowercase().contains("error");
        if let Ok(mut last) = self.0.lock() {
            let keep_old_error = matches!(&*last, Some((true, _))) && !is_error;
            if !keep_old_error {
                *last = Some((is_error, line.to_owned()));
            }
        }
    }

    /// The line, if the generation wrote anything.
    pub fn get(&self) -> Option<String> {
        self.0
            .lock()
            .ok()
            .and_then(|last| last.as_ref().map(|(_, l)| l.clone()))
    }
}

/// Which stream a forwarded line came from.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    /// The child's stdout, forwarded to the supervisor's stdout.
    Stdout,
    /// The child's stderr, forwarded to the supervisor's stderr.
    Stderr,
}

/// Copies `reader` line by line to the supervisor's stdout/stderr with `prefix`; stderr
/// lines also feed `last_error`. Ends at EOF (the child closed the pipe, i.e. exited).
pub async fn forward_output<R>(reader: R, stream: Stream, prefix: String, last_error: LastError)
where
    R: AsyncRead + Unpin,
{
    use std::io::Write;
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::with_capacity(256);
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&buf);
        let line = text.trim_end_matches(['\n', '\r']);
        let out = format!("{prefix} {line}\n");
        // One write per line on a locked handle keeps lines from different generations whole.
        let _ = match stream {
            Stream::Stdout => std::io::stdout().lock().write_all(out.as_bytes()),
            Stream::Stderr => {
                last_error.record(line);
                std::io::stderr().lock().write_all(out.as_bytes())
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_prefers_error_lines() {
        let last = LastError::default();
        assert_eq!(last.get(), None);
        last.record("starting");
        assert_eq!(last.get().as_deref(), Some("starting"));
        last.record("error initializing configuration 'x': x:1: bad");
        last.record("exiting");
        assert_eq!(
            last.get().as_deref(),
            Some("error initializing configuration 'x': x:1: bad")
        );
    }
}
