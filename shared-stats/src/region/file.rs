//! The region file on disk: the private runtime directory, atomic creation of a complete
//! region (temporary file + `link`), the shared `flock` that marks a region in use, and
//! header validation that turns a foreign, truncated or corrupt file into a typed error.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use memmap2::MmapOptions;
use nix::fcntl::{Flock, FlockArg};

use super::OVERFLOW_STAT;
use crate::error::{Result, StatsError};
use crate::layout::{
    entry, hdr, Geometry, StoredKind, HEADER_SIZE, INIT_READY, LAYOUT_VERSION, MAGIC,
};
use crate::mapping::Mapping;

pub(super) fn io_err<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(std::io::Error) -> StatsError + 'a {
    move |source| StatsError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

pub(super) fn ensure_private_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir, "create directory"))?;
    let mode = std::fs::metadata(dir)
        .map_err(io_err(dir, "stat directory"))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(StatsError::InsecureDirectory {
            path: dir.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

fn read_magic(file: &File) -> Option<[u8; 8]> {
    use std::os::unix::fs::FileExt;
    let mut magic = [0u8; 8];
    file.read_exact_at(&mut magic, 0).ok()?;
    Some(magic)
}

pub(super) fn flock_shared_bounded(mut file: File) -> Option<Flock<File>> {
    // A replacer holds the exclusive lock only for a rename; wait briefly, bounded.
    for _ in 0..2000 {
        match Flock::lock(file, FlockArg::LockSharedNonblock) {
            Ok(locked) => return Some(locked),
            Err((returned, _)) => file = returned,
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// Maps `file` and checks its header.
pub(super) fn map_and_validate(
    file: &File,
    path: &Path,
    writable: bool,
) -> Result<(Mapping, Geometry)> {
    let len = file.metadata().map_err(io_err(path, "stat"))?.len();
    if len < HEADER_SIZE {
        if len >= 8 && read_magic(file).is_some_and(|m| m != MAGIC) {
            return Err(StatsError::BadMagic { path: path.into() });
        }
        return Err(StatsError::Truncated {
            path: path.into(),
            expected: HEADER_SIZE,
            actual: len,
        });
    }
    let mapped = if writable {
        MmapOptions::new().map_raw(file)
    } else {
        MmapOptions::new().map_raw_read_only(file)
    };
    let map = Mapping::new(mapped.map_err(io_err(path, "map"))?, writable);
    let geo = validate_header(&map, path, len)?;
    Ok((map, geo))
}

/// Whether `file` is still the file at `path` (not replaced since it was opened).
pub(super) fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

fn validate_header(map: &Mapping, path: &Path, len: u64) -> Result<Geometry> {
    let path_buf = || path.to_path_buf();
    if map.read_bytes(hdr::MAGIC, 8) != MAGIC {
        return Err(StatsError::BadMagic { path: path_buf() });
    }
    let u32_field = |offset| map.u32_at(offset).load(Ordering::Acquire);
    let version = u32_field(hdr::VERSION);
    if version != LAYOUT_VERSION {
        return Err(StatsError::LayoutVersion {
            path: path_buf(),
            found: version,
            expected: LAYOUT_VERSION,
        });
    }
    let corrupt = |detail: String| StatsError::Corrupt {
        path: path_buf(),
        detail,
    };
    if u64::from(u32_field(hdr::HEADER_SIZE)) != HEADER_SIZE {
        return Err(corrupt(format!(
            "header size {}",
            u32_field(hdr::HEADER_SIZE)
        )));
    }
    if u32_field(hdr::INIT_STATE) != INIT_READY {
        return Err(corrupt("header was never completed".into()));
    }
    let geo = Geometry {
        max_stats: u32_field(hdr::MAX_STATS),
        max_cells: u32_field(hdr::MAX_CELLS),
        max_generations: u32_field(hdr::MAX_GENERATIONS),
        arena_bytes: u32_field(hdr::ARENA_BYTES),
    };
    if let Some(problem) = geo.problem() {
        return Err(corrupt(problem));
    }
    let total = map.u64_at(hdr::TOTAL_SIZE).load(Ordering::Acquire);
    if total != geo.total_size() {
        return Err(corrupt(format!(
            "total size field {total} does not match geometry ({geo}: {})",
            geo.total_size()
        )));
    }
    if len < total {
        return Err(StatsError::Truncated {
            path: path_buf(),
            expected: total,
            actual: len,
        });
    }
    if len > total {
        return Err(corrupt(format!("file is {len} bytes, header says {total}")));
    }
    if u32_field(hdr::STAT_COUNT) > geo.max_stats
        || u32_field(hdr::STATS_HELD) > geo.max_stats
        || u32_field(hdr::CELLS_USED) > geo.max_cells
        || u32_field(hdr::ARENA_USED) > geo.arena_bytes
    {
        return Err(corrupt("usage counters exceed capacity".into()));
    }
    Ok(geo)
}

/// Writes a complete new region to a temporary file and links it into place; losing the
/// race to another creator is fine (the caller then opens theirs).
pub(super) fn create_fresh(path: &Path, geo: Geometry) -> Result<()> {
    static TMP_COUNTER: AtomicU32 = AtomicU32::new(0);
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp, "create"))?;
    let result = (|| {
        file.set_len(geo.total_size())
            .map_err(io_err(&tmp, "size"))?;
        let raw = MmapOptions::new()
            .map_raw(&file)
            .map_err(io_err(&tmp, "map"))?;
        let map = Mapping::new(raw, true);
        map.u32_at(hdr::VERSION)
            .store(LAYOUT_VERSION, Ordering::Relaxed);
        map.u32_at(hdr::HEADER_SIZE)
            .store(HEADER_SIZE as u32, Ordering::Relaxed);
        map.u64_at(hdr::TOTAL_SIZE)
            .store(geo.total_size(), Ordering::Relaxed);
        map.u32_at(hdr::MAX_STATS)
            .store(geo.max_stats, Ordering::Relaxed);
        map.u32_at(hdr::MAX_CELLS)
            .store(geo.max_cells, Ordering::Relaxed);
        map.u32_at(hdr::MAX_GENERATIONS)
            .store(geo.max_generations, Ordering::Relaxed);
        map.u32_at(hdr::ARENA_BYTES)
            .store(geo.arena_bytes, Ordering::Relaxed);
        // The overflow counter is entry 0, so it exists even when the table is full.
        let name = OVERFLOW_STAT.as_bytes();
        map.write_bytes(geo.arena_offset(), name);
        let packed = StoredKind::Counter as u32 | (name.len() as u32) << 16;
        map.u32_at(geo.entry_offset(0) + entry::KIND_MODE_LEN)
            .store(packed, Ordering::Relaxed);
        map.u32_at(hdr::ARENA_USED)
            .store(name.len() as u32, Ordering::Relaxed);
        map.u32_at(hdr::CELLS_USED).store(1, Ordering::Relaxed);
        map.u32_at(hdr::STAT_COUNT).store(1, Ordering::Relaxed);
        map.u32_at(hdr::STATS_HELD).store(1, Ordering::Relaxed);
        map.write_bytes(hdr::MAGIC, &MAGIC);
        map.u32_at(hdr::INIT_STATE)
            .store(INIT_READY, Ordering::Release);
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(io_err(path, "link into place")(e)),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}
