//! Hot restart between generations (see `LIFECYCLE.md` beside this file).
//!
//! The live generation listens on `<runtime dir>/baton-<base id>.sock`. A new generation
//! connects there as a child, says hello (protocol and stats-layout versions), takes the
//! parent's listen sockets (same kernel sockets: nothing in the accept queue is lost),
//! initialises completely, asks the parent to hand over admin and to drain, and only then
//! takes over the socket path and reports LIVE. If the child dies at any point before the
//! drain request, the parent has lost nothing and serves on; the next child works.

pub mod child;
pub mod codec;
pub mod parent;
pub mod ticket_keys;

use std::path::{Path, PathBuf};

/// Version of Baton's hot-restart protocol; a mismatch is refused at hello.
pub const PROTOCOL_VERSION: u32 = 1;

/// What `--hot-restart-version`, `/hot_restart_version` and `/server_info` report (two
/// binaries can hot-restart into each other when it is the same): the protocol and the
/// stats-region layout, both checked at hello (as Envoy's `11.104` names its protocol and
/// shared-memory layout).
pub fn version_text() -> String {
    format!("baton.hot_restart.v{PROTOCOL_VERSION}.stats{STATS_LAYOUT_VERSION}")
}

/// Feature a parent advertises in its hello when it hands over its xDS resources.
pub const FEATURE_XDS_RESOURCES: &str = "xds_resources";

/// Feature a parent advertises in its hello when it passes its admin listen socket to a
/// child right after hello (`ShutdownAdmin.address`).
pub const FEATURE_ADMIN_SOCKET: &str = "admin_socket";

/// Feature a parent advertises in its hello when it hands over the session ticket keys
/// it generated (`TicketKeys`), so clients resume across the reload.
pub const FEATURE_TICKET_KEYS: &str = "ticket_keys";

/// Version of the shared stats layout this binary expects (the region's: a parent and a
/// child that lay the region out differently cannot share it).
pub const STATS_LAYOUT_VERSION: u32 = baton_shared_stats::LAYOUT_VERSION;

/// The live generation's socket path for `base_id`.
pub fn socket_path(dir: &Path, base_id: u32) -> PathBuf {
    dir.join(format!("baton-{base_id}.sock"))
}

/// A private path a generation binds first and renames over `socket_path` once LIVE, so
/// a failed generation never takes the path from the live one.
pub fn private_socket_path(dir: &Path, base_id: u32) -> PathBuf {
    dir.join(format!("baton-{base_id}.{}.sock", std::process::id()))
}

/// Errors of the hot-restart protocol.
#[derive(Debug, thiserror::Error)]
pub enum HotRestartError {
    /// Channel problem.
    #[error(transparent)]
    Codec(#[from] codec::CodecError),
    /// The parent refused or failed a step.
    #[error("parent generation refused the hot restart: {0}")]
    Refused(String),
    /// Incompatible versions.
    #[error("hot restart version mismatch: {0}")]
    VersionMismatch(String),
    /// The live generation speaks another version (seen by a child, which knows the
    /// parent's pid for the opt-in cold-restart fallback).
    #[error("hot restart version mismatch: {detail}")]
    ParentMismatch {
        /// what differs
        detail: String,
        /// the live generation's pid
        parent_pid: u32,
    },
    /// Unexpected reply.
    #[error("hot restart protocol error: {0}")]
    Protocol(String),
    /// Socket setup.
    #[error("hot restart socket {path}: {source}")]
    Socket {
        /// path
        path: PathBuf,
        /// cause
        source: std::io::Error,
    },
}
