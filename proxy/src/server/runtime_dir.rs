//! The runtime directory: where the hot-restart socket and the shared stats region live.
//! Private to the service user (0700). Resolution order: `--runtime-dir`, systemd's
//! `$RUNTIME_DIRECTORY`, `$XDG_RUNTIME_DIR/baton`, `/tmp/baton-<uid>`.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Errors preparing the runtime directory.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeDirError {
    /// Could not create or fix the directory.
    #[error("runtime directory {path}: {source}")]
    Io {
        /// the directory
        path: PathBuf,
        /// cause
        source: std::io::Error,
    },
    /// Owned by someone else: using it would let them talk to our sockets.
    #[error("runtime directory {path} is owned by uid {owner}, not by us (uid {me})")]
    NotOwned {
        /// the directory
        path: PathBuf,
        /// its owner
        owner: u32,
        /// our uid
        me: u32,
    },
}

/// Picks the runtime directory.
pub fn resolve(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("RUNTIME_DIRECTORY") {
        // systemd may list several, colon-separated: the first is ours.
        let s = p.to_string_lossy().to_string();
        if let Some(first) = s.split(':').next().filter(|f| !f.is_empty()) {
            return PathBuf::from(first);
        }
    }
    if let Some(p) = std::env::var_os("XDG_RUNTIME_DIR") {
        return PathBuf::from(p).join("baton");
    }
    PathBuf::from(format!("/tmp/baton-{}", nix::unistd::getuid()))
}

/// Creates the directory (0700) if needed and checks that we own it.
pub fn prepare(path: &Path) -> Result<(), RuntimeDirError> {
    let io = |source| RuntimeDirError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io)?;
    let meta = std::fs::metadata(path).map_err(io)?;
    let me = nix::unistd::getuid().as_raw();
    if meta.uid() != me {
        return Err(RuntimeDirError::NotOwned {
            path: path.to_path_buf(),
            owner: meta.uid(),
            me,
        });
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

/// Removes hot-restart sockets left in `dir` by processes that exited: a generation's
/// private `baton-<id>.<pid>.sock` whose pid is gone, and a `baton-<id>.sock` nothing
/// listens on (connecting is refused, and the path still names the same file after).
/// `own_public` (this service's live socket path) is left to the hot-restart connect,
/// which must be the only one to talk to our parent. Returns how many were removed.
/// Errors are skipped: this is tidying, never fatal.
pub fn remove_stale_sockets(dir: &Path, own_public: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(kind) = name.to_str().and_then(socket_kind) else {
            continue;
        };
        let path = entry.path();
        if path == own_public {
            continue;
        }
        let stale = match kind {
            SocketKind::Private { pid } => !process_exists(pid),
            SocketKind::Public => nobody_listens(&path),
        };
        if stale && std::fs::remove_file(&path).is_ok() {
            tracing::info!(path = %path.display(), "removed a stale hot-restart socket");
            removed += 1;
        }
    }
    removed
}

#[derive(Debug, PartialEq, Eq)]
enum SocketKind {
    Public,
    Private { pid: i32 },
}

/// `baton-<digits>.sock` or `baton-<digits>.<pid>.sock`; anything else is not ours.
fn socket_kind(name: &str) -> Option<SocketKind> {
    let middle = name.strip_prefix("baton-")?.strip_suffix(".sock")?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match middle.split_once('.') {
        None if all_digits(middle) => Some(SocketKind::Public),
        Some((id, pid)) if all_digits(id) && all_digits(pid) => pid
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .map(|pid| SocketKind::Private { pid }),
        _ => None,
    }
}

fn process_exists(pid: i32) -> bool {
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// True when connecting is refused and the path still names the same socket file (a
/// generation renaming its socket over the path meanwhile makes it another file). The
/// connect is non-blocking: a live listener with a full backlog (EAGAIN) or a connection
/// in progress counts as alive, and startup never waits on another process.
fn nobody_listens(path: &Path) -> bool {
    let identity = |p: &Path| {
        std::fs::symlink_metadata(p)
            .ok()
            .map(|m| (m.dev(), m.ino()))
    };
    let before = identity(path);
    let refused = socket2::SockAddr::unix(path).is_ok_and(|address| {
        socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).is_ok_and(
            |socket| {
                socket.set_nonblocking(true).is_ok()
                    && matches!(
                        socket.connect(&address),
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
                    )
            },
        )
    });
    refused && before.is_some() && identity(path) == before
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_socket_names_are_recognised() {
        assert_eq!(socket_kind("baton-7.sock"), Some(SocketKind::Public));
        assert_eq!(
            socket_kind("baton-7.1234.sock"),
            Some(SocketKind::Private { pid: 1234 })
        );
        assert_eq!(socket_kind("baton-7.region"), None);
        assert_eq!(socket_kind("baton-x.sock"), None);
        assert_eq!(socket_kind("other.sock"), None);
        assert_eq!(socket_kind("baton-.sock"), None);
    }

    #[test]
    fn stale_sockets_are_removed_and_live_ones_kept() {
        let dir = std::env::temp_dir().join(format!("baton-rt-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let live = std::os::unix::net::UnixListener::bind(dir.join("baton-1.sock")).expect("bind");
        let dead = std::os::unix::net::UnixListener::bind(dir.join("baton-2.sock")).expect("bind");
        drop(dead);
        let mine = format!("baton-3.{}.sock", std::process::id());
        let _mine = std::os::unix::net::UnixListener::bind(dir.join(&mine)).expect("bind");
        // pid_max is at most 2^22: this pid cannot exist.
        let gone = std::os::unix::net::UnixListener::bind(dir.join("baton-3.99999999.sock"))
            .expect("bind");
        drop(gone);
        assert_eq!(remove_stale_sockets(&dir, &dir.join("baton-9.sock")), 2);
        assert!(dir.join("baton-1.sock").exists());
        assert!(dir.join(&mine).exists());
        assert!(!dir.join("baton-2.sock").exists());
        drop(live);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
