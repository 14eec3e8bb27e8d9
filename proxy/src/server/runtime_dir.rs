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
