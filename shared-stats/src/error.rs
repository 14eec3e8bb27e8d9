//! Typed errors for opening, validating and allocating in the shared stats region.

use std::path::PathBuf;

/// Everything that can go wrong while opening or using the stats region.
///
/// The hot path never returns these: a stat that cannot be placed in the region falls back
/// to a process-local cell (see `StatsStore::counter`), so errors only surface when a
/// region is opened, validated or read offline.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The runtime directory or region file could not be created, opened, sized or mapped.
    #[error("stats region {path}: {action}: {source}")]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// The step that failed ("create directory", "map", ...).
        action: &'static str,
        /// The underlying OS error.
        #[source]
        source: std::io::Error,
    },
    /// The runtime directory is readable or writable by other users.
    #[error("stats directory {path} has mode {mode:o}; it must not be accessible to group or others (expected 0700)")]
    InsecureDirectory {
        /// Directory path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// No region file exists for this base id (offline reader / `open_existing`).
    #[error("no stats region at {path} (is the base id right?)")]
    NotFound {
        /// Expected region file path.
        path: PathBuf,
    },
    /// The file does not start with Baton's stats magic: it is not a stats region.
    #[error("{path} is not a Baton stats region (bad magic)")]
    BadMagic {
        /// Region file path.
        path: PathBuf,
    },
    /// The region was written by a Baton with a different stats layout.
    #[error("stats region {path} has layout version {found}, this binary uses version {expected}")]
    LayoutVersion {
        /// Region file path.
        path: PathBuf,
        /// Version found in the header.
        found: u32,
        /// Version this build understands.
        expected: u32,
    },
    /// The file is shorter than its header says (or than a header).
    #[error("stats region {path} is truncated: {actual} bytes, header says {expected}")]
    Truncated {
        /// Region file path.
        path: PathBuf,
        /// Size the header (or the minimum header) requires.
        expected: u64,
        /// Size on disk.
        actual: u64,
    },
    /// A header or table field is inconsistent with the rest of the region.
    #[error("stats region {path} is corrupt: {detail}")]
    Corrupt {
        /// Region file path.
        path: PathBuf,
        /// Which field was out of range.
        detail: String,
    },
    /// The region is unusable and a live process still maps it, so it cannot be replaced.
    #[error("{cause}; not replacing it because a live process still uses it")]
    InUse {
        /// Why the region is unusable.
        #[source]
        cause: Box<StatsError>,
    },
    /// Every generation slot is held by a live process.
    #[error("all {slots} generation slots of stats region {path} are held by live processes")]
    NoFreeGenerationSlot {
        /// Region file path.
        path: PathBuf,
        /// Number of slots in the region.
        slots: u32,
    },
    /// The allocation lock stayed held by a live process for longer than the bounded wait.
    #[error("stats allocation lock held by live pid {holder_pid} for too long")]
    LockTimeout {
        /// The process holding the lock.
        holder_pid: u32,
    },
    /// The requested configuration is outside what the layout can address.
    #[error("invalid stats region config: {0}")]
    InvalidConfig(String),
}

/// Why a stat name could not be placed in the region (it then counts locally).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The name table is full.
    #[error("stat name table is full")]
    NamesFull,
    /// The value cell space is full.
    #[error("stat value cells are full")]
    CellsFull,
    /// The name arena is full.
    #[error("stat name arena is full")]
    ArenaFull,
    /// The name is longer than the layout can store.
    #[error("stat name too long")]
    NameTooLong,
    /// The name exists with another kind (e.g. asked for a gauge, it is a counter).
    #[error("stat exists with another kind")]
    KindMismatch,
    /// The allocation lock could not be taken within the bounded wait.
    #[error("allocation lock timeout")]
    LockTimeout,
}

/// Shorthand for results in this crate.
pub type Result<T, E = StatsError> = std::result::Result<T, E>;
