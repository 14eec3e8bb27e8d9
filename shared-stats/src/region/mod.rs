//! An open region: opening or replacing the file (see `file`), the in-region allocation
//! lock with dead-holder recovery, generation slots, and folding a finished generation's
//! counters into the retired column exactly once.

mod file;
mod walk;

pub(crate) use walk::EntryView;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use file::{
    create_fresh, ensure_private_dir, flock_shared_bounded, io_err, map_and_validate, same_file,
};

use crate::block::BlockTemplate;
use crate::error::{AllocError, Result, StatsError};
use crate::layout::{
    entry, hdr, slot, Geometry, StoredKind, BASELINE_COLUMN, FIRST_GENERATION_COLUMN,
    MAX_GENERATION_SLOTS, RETIRED_COLUMN,
};
use crate::mapping::Mapping;

// `Mapping::u32x4_at` reads and writes a whole entry.
const _: () = assert!(entry::SIZE == 16);
use crate::process::{process_start_time, ProcessIdentity};

/// Name of the counter that counts stats which could not be placed in the region.
pub const OVERFLOW_STAT: &str = "server.stats_overflow";

/// Where the region lives and how big a freshly created one is.
#[derive(Debug, Clone)]
pub struct RegionConfig {
    /// Runtime directory (created 0700 if missing; refused if group/other can access it).
    pub dir: PathBuf,
    /// Envoy's `--base-id`: two services on one host use different ids.
    pub base_id: u32,
    /// Capacity of the name table.
    pub max_stats: u32,
    /// Value cells per column (counters take 1, gauges 2, histograms 21).
    pub max_cells: u32,
    /// Generations that can map the region at once (old + new + headroom).
    pub max_generations: u32,
    /// Bytes for stat names.
    pub name_arena_bytes: u32,
    /// Longest wait for the allocation lock held by a live process.
    pub lock_timeout: Duration,
}

impl RegionConfig {
    /// Defaults sized for a few hundred clusters: 64 Ki stats, 256 Ki cells, 8 generations,
    /// 4 MiB of names. The file is sparse, so untouched capacity costs no memory.
    pub fn new(dir: impl Into<PathBuf>, base_id: u32) -> Self {
        RegionConfig {
            dir: dir.into(),
            base_id,
            max_stats: 64 * 1024,
            max_cells: 256 * 1024,
            max_generations: 8,
            name_arena_bytes: 4 * 1024 * 1024,
            lock_timeout: Duration::from_secs(2),
        }
    }

    /// A region for `max_stats` names (at least the defaults' 64 Ki): 4 value cells and
    /// 64 name bytes per stat, the defaults' ratios. The file is sparse, so a big capacity
    /// costs memory only for the entries, names and cells actually handed out.
    pub fn for_stats(dir: impl Into<PathBuf>, base_id: u32, max_stats: u32) -> Self {
        let mut config = RegionConfig::new(dir, base_id);
        let max_stats = max_stats.max(16);
        config.max_stats = max_stats;
        config.max_cells = max_stats.saturating_mul(4);
        config.name_arena_bytes = max_stats.saturating_mul(64);
        config
    }

    /// The region file for this base id.
    pub fn region_path(&self) -> PathBuf {
        region_path(&self.dir, self.base_id)
    }

    pub(crate) fn geometry(&self) -> Geometry {
        Geometry {
            max_stats: self.max_stats,
            max_cells: self.max_cells,
            max_generations: self.max_generations,
            arena_bytes: self.name_arena_bytes,
        }
    }
}

/// The region file path for `base_id` in `dir`.
pub fn region_path(dir: &Path, base_id: u32) -> PathBuf {
    dir.join(format!("baton-stats-{base_id}.region"))
}

/// One generation slot as seen by a reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationInfo {
    /// Slot index (= value column).
    pub slot: u32,
    /// Owner process id.
    pub pid: u32,
    /// Owner start time (clock ticks since boot).
    pub start_time: u64,
    /// Restart epoch the owner runs as.
    pub epoch: u64,
    /// Whether the owner process is still running.
    pub alive: bool,
}

/// A decoded, validated stat entry.
#[derive(Debug, Clone)]
pub(crate) struct EntryInfo {
    pub(crate) name: String,
    pub(crate) kind: StoredKind,
    pub(crate) mode: u8,
    pub(crate) cell: u32,
}

/// A decoded, validated stat entry without its name (the name stays in the arena).
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntryRef {
    pub(crate) kind: StoredKind,
    pub(crate) mode: u8,
    pub(crate) cell: u32,
    pub(crate) index: u32,
}

/// What [`Region::append_entry`] writes besides the name.
struct NewEntry {
    /// Kind byte (a `StoredKind`, `entry::KIND_TEMPLATE` or `entry::KIND_BLOCK`).
    kind: u8,
    mode: u8,
    cells: u32,
    flags: u32,
    /// Stats the entry holds (counted against `max_stats`).
    stats: u32,
}

/// An open, validated region.
pub(crate) struct Region {
    path: PathBuf,
    // The shared flock that tells would-be replacers the region is in use (None for
    // offline readers, which must not block a replacement).
    _shared_lock: Option<Flock<File>>,
    map: Mapping,
    geo: Geometry,
    me: ProcessIdentity,
}

impl Region {
    /// Opens the region for `config`, creating it when missing, and replacing it when it is
    /// unusable (other layout version, corrupt, truncated) and no live process maps it.
    pub(crate) fn open_or_create(config: &RegionConfig) -> Result<Region> {
        Self::open(config, true)
    }

    /// Opens the region for `config` as a fresh start: an existing region no live process
    /// holds (left by an earlier, unrelated run) is removed and a new one created, so no
    /// counter or stat name of that run survives. A region some live process holds is
    /// joined instead (second result `true`): its stats are that process's.
    pub(crate) fn open_fresh(config: &RegionConfig) -> Result<(Region, bool)> {
        let path = config.region_path();
        ensure_private_dir(&config.dir)?;
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Self::open(config, true)?, false))
            }
            Err(e) => return Err(io_err(&path, "open")(e)),
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => {
                // No process holds it: remove it while holding the exclusive lock, so a
                // concurrent opener that got the old inode sees it unlinked and retries.
                if same_file(&locked, &path) {
                    std::fs::remove_file(&path).map_err(io_err(&path, "remove"))?;
                }
                drop(locked);
                Ok((Self::open(config, true)?, false))
            }
            Err(_) => Ok((Self::open(config, true)?, true)),
        }
    }

    /// Opens an existing region; never creates or replaces one.
    pub(crate) fn open_existing(config: &RegionConfig) -> Result<Region> {
        Self::open(config, false)
    }

    fn open(config: &RegionConfig, may_create: bool) -> Result<Region> {
        let geo = config.geometry();
        if let Some(problem) = geo.problem() {
            return Err(StatsError::InvalidConfig(problem));
        }
        let path = config.region_path();
        if may_create {
            ensure_private_dir(&config.dir)?;
        }
        // Bounded: each retry means another process created or replaced the file meanwhile.
        for _ in 0..8 {
            let file = match OpenOptions::new().read(true).write(true).open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && may_create => {
                    create_fresh(&path, geo)?;
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StatsError::NotFound { path });
                }
                Err(e) => return Err(io_err(&path, "open")(e)),
            };
            let Some(locked) = flock_shared_bounded(file) else {
                continue;
            };
            if !same_file(&locked, &path) {
                continue;
            }
            let cause = match map_and_validate(&locked, &path, true) {
                Ok((map, geo)) => return Ok(Self::from_parts(&path, Some(locked), map, geo)),
                Err(cause) => cause,
            };
            let replaceable = matches!(
                cause,
                StatsError::BadMagic { .. }
                    | StatsError::LayoutVersion { .. }
                    | StatsError::Truncated { .. }
                    | StatsError::Corrupt { .. }
            );
            if !replaceable || !may_create {
                return Err(cause);
            }
            // Converting our shared lock to exclusive succeeds only if no other process
            // (of any Baton version) holds the region.
            if locked.relock(FlockArg::LockExclusiveNonblock).is_err() {
                return Err(StatsError::InUse {
                    cause: Box::new(cause),
                });
            }
            // Keep the bad file for post-mortem debugging, out of the way.
            let aside = path.with_extension("region.bad");
            std::fs::rename(&path, &aside).map_err(io_err(&path, "move aside"))?;
            drop(locked);
        }
        Err(StatsError::Io {
            path,
            action: "open (region kept being replaced concurrently)",
            source: std::io::Error::from(std::io::ErrorKind::WouldBlock),
        })
    }

    /// Opens a region read-only for offline inspection (no lock, no generation slot).
    pub(crate) fn open_read_only(path: &Path) -> Result<Region> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StatsError::NotFound {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => return Err(io_err(path, "open")(e)),
        };
        let (map, geo) = map_and_validate(&file, path, false)?;
        Ok(Self::from_parts(path, None, map, geo))
    }

    fn from_parts(path: &Path, lock: Option<Flock<File>>, map: Mapping, geo: Geometry) -> Region {
        Region {
            path: path.to_path_buf(),
            _shared_lock: lock,
            map,
            geo,
            me: ProcessIdentity::current(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn geometry(&self) -> Geometry {
        self.geo
    }

    pub(crate) fn map(&self) -> &Mapping {
        &self.map
    }

    fn hdr32(&self, offset: u64) -> &AtomicU32 {
        self.map.u32_at(offset)
    }

    fn hdr64(&self, offset: u64) -> &AtomicU64 {
        self.map.u64_at(offset)
    }

    /// The value cell `cell` of column `column`.
    pub(crate) fn cell(&self, column: u32, cell: u32) -> &AtomicU64 {
        self.map.u64_at(self.geo.cell_offset(column, cell))
    }

    /// Current fold sequence (odd while a fold is moving values).
    pub(crate) fn fold_seq(&self) -> u64 {
        self.hdr64(hdr::FOLD_SEQ).load(Ordering::Acquire)
    }

    /// Number of published entries.
    pub(crate) fn stat_count(&self) -> u32 {
        self.hdr32(hdr::STAT_COUNT)
            .load(Ordering::Acquire)
            .min(self.geo.max_stats)
    }

    /// Name-arena bytes in use, clamped to the arena (a corrupt header must not send a
    /// read past it).
    pub(crate) fn arena_used(&self) -> u32 {
        self.hdr32(hdr::ARENA_USED)
            .load(Ordering::Acquire)
            .min(self.geo.arena_bytes)
    }

    /// Value cells in use per column, clamped to the column size.
    pub(crate) fn cells_used(&self) -> u32 {
        self.hdr32(hdr::CELLS_USED)
            .load(Ordering::Acquire)
            .min(self.geo.max_cells)
    }

    /// Takes the allocation lock, recovering it from a dead holder and finishing any fold
    /// that holder left half done. Waits at most `timeout` for a live holder.
    pub(crate) fn lock(&self, timeout: Duration) -> Result<RegionLock<'_>> {
        let word = u64::from(self.me.pid) | (self.me.start_time & 0xffff_ffff) << 32;
        let lock = self.hdr64(hdr::LOCK);
        // The clock is read only once the lock turns out to be contended.
        let mut deadline: Option<Instant> = None;
        let mut spins = 0u32;
        loop {
            match lock.compare_exchange(0, word, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => break,
                Err(holder) => {
                    if !lock_holder_alive(holder) {
                        // Dead holder: take the lock over from exactly that holder word.
                        if lock
                            .compare_exchange(holder, word, Ordering::Acquire, Ordering::Relaxed)
                            .is_ok()
                        {
                            break;
                        }
                        continue;
                    }
                    let deadline = *deadline.get_or_insert_with(|| Instant::now() + timeout);
                    if Instant::now() >= deadline {
                        return Err(StatsError::LockTimeout {
                            holder_pid: holder as u32,
                        });
                    }
                    spins += 1;
                    if spins < 64 {
                        std::thread::yield_now();
                    } else {
                        std::thread::sleep(Duration::from_micros(500));
                    }
                }
            }
        }
        let guard = RegionLock { region: self, word };
        self.finish_interrupted_fold();
        Ok(guard)
    }

    /// Replays the fold journal left by a holder that died between moving a cell's value
    /// into retired and zeroing it, so the value is counted exactly once.
    fn finish_interrupted_fold(&self) {
        if self.hdr32(hdr::JOURNAL_ACTIVE).load(Ordering::Acquire) == 1 {
            let slot_index = self.hdr32(hdr::JOURNAL_SLOT).load(Ordering::Relaxed);
            let cell = self.hdr64(hdr::JOURNAL_CELL).load(Ordering::Relaxed);
            let target = self.hdr64(hdr::JOURNAL_TARGET).load(Ordering::Relaxed);
            if slot_index < self.geo.max_generations && cell < u64::from(self.geo.max_cells) {
                let cell = cell as u32;
                self.cell(RETIRED_COLUMN, cell)
                    .store(target, Ordering::Release);
                self.cell(FIRST_GENERATION_COLUMN + slot_index, cell)
                    .store(0, Ordering::Release);
            }
            self.hdr32(hdr::JOURNAL_ACTIVE).store(0, Ordering::Release);
        }
        let seq = self.hdr64(hdr::FOLD_SEQ);
        if seq.load(Ordering::Acquire) % 2 == 1 {
            seq.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Appends a new single stat. Caller holds the lock and has checked the name is absent.
    pub(crate) fn allocate(
        &self,
        lock: &RegionLock<'_>,
        name: &str,
        kind: StoredKind,
        mode: u8,
    ) -> std::result::Result<EntryRef, AllocError> {
        let (index, cell) = self.append_entry(
            lock,
            name.as_bytes(),
            NewEntry {
                kind: kind as u8,
                mode,
                cells: kind.cells(),
                flags: 0,
                stats: 1,
            },
        )?;
        Ok(EntryRef {
            kind,
            mode,
            cell,
            index,
        })
    }

    /// Appends a block template; returns its entry index.
    pub(crate) fn allocate_template(
        &self,
        lock: &RegionLock<'_>,
        template: &BlockTemplate,
    ) -> std::result::Result<u32, AllocError> {
        let new = NewEntry {
            kind: entry::KIND_TEMPLATE,
            mode: 0,
            cells: 0,
            flags: 0,
            stats: 0,
        };
        Ok(self.append_entry(lock, template.text().as_bytes(), new)?.0)
    }

    /// Appends a block of `template` (stored at entry `template_index`) under `prefix`;
    /// returns its entry index and first cell. Caller holds the lock and has checked that
    /// neither the block nor any of its names is in the region.
    pub(crate) fn allocate_block(
        &self,
        lock: &RegionLock<'_>,
        prefix: &str,
        template_index: u32,
        template: &BlockTemplate,
    ) -> std::result::Result<(u32, u32), AllocError> {
        let new = NewEntry {
            kind: entry::KIND_BLOCK,
            mode: 0,
            cells: template.cells(),
            flags: template_index,
            stats: u32::try_from(template.len()).map_err(|_| AllocError::NamesFull)?,
        };
        self.append_entry(lock, prefix.as_bytes(), new)
    }

    /// Whether `entries` more entries holding `stats` stats, `cells` cells and
    /// `name_bytes` of names fit (a template is not stored for a block that would not).
    pub(crate) fn has_room(&self, entries: u32, stats: u32, cells: u32, name_bytes: usize) -> bool {
        let used = |field| u64::from(self.hdr32(field).load(Ordering::Acquire));
        u64::from(self.stat_count()) + u64::from(entries) <= u64::from(self.geo.max_stats)
            && used(hdr::STATS_HELD) + u64::from(stats) <= u64::from(self.geo.max_stats)
            && used(hdr::CELLS_USED) + u64::from(cells) <= u64::from(self.geo.max_cells)
            && used(hdr::ARENA_USED) + name_bytes as u64 <= u64::from(self.geo.arena_bytes)
    }

    /// Appends an entry named `name`; returns its index and first cell.
    fn append_entry(
        &self,
        _lock: &RegionLock<'_>,
        name: &[u8],
        new: NewEntry,
    ) -> std::result::Result<(u32, u32), AllocError> {
        let count = self.stat_count();
        let stats_held = self.hdr32(hdr::STATS_HELD).load(Ordering::Acquire);
        let stats_end = u64::from(stats_held) + u64::from(new.stats);
        if count >= self.geo.max_stats || stats_end > u64::from(self.geo.max_stats) {
            return Err(AllocError::NamesFull);
        }
        let name_len = u16::try_from(name.len()).map_err(|_| AllocError::NameTooLong)?;
        let arena_used = self.hdr32(hdr::ARENA_USED).load(Ordering::Acquire);
        let arena_end = u64::from(arena_used) + u64::from(name_len);
        if arena_end > u64::from(self.geo.arena_bytes) {
            return Err(AllocError::ArenaFull);
        }
        let cells_used = self.hdr32(hdr::CELLS_USED).load(Ordering::Acquire);
        let cells_end = u64::from(cells_used) + u64::from(new.cells);
        if cells_end > u64::from(self.geo.max_cells) {
            return Err(AllocError::CellsFull);
        }
        // Write everything, then publish with one release store of the count: a crash
        // before that leaks a few arena bytes and cells but never exposes a partial entry.
        self.map
            .write_bytes(self.geo.arena_offset() + u64::from(arena_used), name);
        let packed = u32::from(new.kind) | u32::from(new.mode) << 8 | u32::from(name_len) << 16;
        // The entry's four words with one range check.
        let words = self.map.u32x4_at(self.geo.entry_offset(count));
        const WORD: u64 = 4;
        words[(entry::KIND_MODE_LEN / WORD) as usize].store(packed, Ordering::Relaxed);
        words[(entry::NAME_OFFSET / WORD) as usize].store(arena_used, Ordering::Relaxed);
        words[(entry::CELL / WORD) as usize].store(cells_used, Ordering::Relaxed);
        words[(entry::FLAGS / WORD) as usize].store(new.flags, Ordering::Relaxed);
        self.hdr32(hdr::ARENA_USED)
            .store(arena_end as u32, Ordering::Release);
        self.hdr32(hdr::CELLS_USED)
            .store(cells_end as u32, Ordering::Release);
        self.hdr32(hdr::STATS_HELD)
            .store(stats_end as u32, Ordering::Release);
        self.hdr32(hdr::STAT_COUNT)
            .store(count + 1, Ordering::Release);
        Ok((count, cells_used))
    }

    /// The owner recorded in slot `index`, if the slot is in use.
    fn slot_owner(&self, index: u32) -> Option<(ProcessIdentity, u64)> {
        let base = self.geo.slot_offset(index);
        if self.map.u32_at(base + slot::STATE).load(Ordering::Acquire) != slot::LIVE {
            return None;
        }
        let identity = ProcessIdentity {
            pid: self.map.u32_at(base + slot::PID).load(Ordering::Relaxed),
            start_time: self
                .map
                .u64_at(base + slot::START_TIME)
                .load(Ordering::Relaxed),
        };
        Some((
            identity,
            self.map.u64_at(base + slot::EPOCH).load(Ordering::Relaxed),
        ))
    }

    /// All occupied generation slots with their liveness.
    pub(crate) fn generations(&self) -> Vec<GenerationInfo> {
        (0..self.geo.max_generations)
            .filter_map(|index| {
                self.slot_owner(index).map(|(owner, epoch)| GenerationInfo {
                    slot: index,
                    pid: owner.pid,
                    start_time: owner.start_time,
                    epoch,
                    alive: owner == self.me || owner.is_alive(),
                })
            })
            .collect()
    }

    /// Folds every slot whose owner died; returns how many were folded.
    pub(crate) fn reap_dead(&self, lock: &RegionLock<'_>) -> usize {
        let dead: Vec<u32> = self
            .generations()
            .into_iter()
            .filter(|g| !g.alive)
            .map(|g| g.slot)
            .collect();
        for &index in &dead {
            self.release_slot(lock, index);
        }
        dead.len()
    }

    /// Claims a free slot for this process as restart epoch `epoch`.
    pub(crate) fn claim_slot(&self, lock: &RegionLock<'_>, epoch: u64) -> Result<u32> {
        self.reap_dead(lock);
        for index in 0..self.geo.max_generations {
            let base = self.geo.slot_offset(index);
            if self.map.u32_at(base + slot::STATE).load(Ordering::Acquire) == slot::FREE {
                self.map
                    .u32_at(base + slot::PID)
                    .store(self.me.pid, Ordering::Relaxed);
                self.map
                    .u64_at(base + slot::START_TIME)
                    .store(self.me.start_time, Ordering::Relaxed);
                self.map
                    .u64_at(base + slot::EPOCH)
                    .store(epoch, Ordering::Relaxed);
                self.map
                    .u32_at(base + slot::STATE)
                    .store(slot::LIVE, Ordering::Release);
                return Ok(index);
            }
        }
        Err(StatsError::NoFreeGenerationSlot {
            path: self.path.clone(),
            slots: self.geo.max_generations,
        })
    }

    /// Moves slot `index`'s counter and histogram values into the retired column, zeroes
    /// its gauges and frees it. Each cell move is journaled so a crash mid-way is finished
    /// by the next lock holder instead of losing or double counting the cell.
    pub(crate) fn release_slot(&self, _lock: &RegionLock<'_>, index: u32) {
        let column = FIRST_GENERATION_COLUMN + index;
        let seq = self.hdr64(hdr::FOLD_SEQ);
        seq.fetch_add(1, Ordering::AcqRel);
        let cells_used = u64::from(self.cells_used());
        self.for_each_stat_cell(|kind, first| {
            let end = (first + u64::from(kind.cells())).min(cells_used) as u32;
            for cell in (first.min(cells_used) as u32)..end {
                let source = self.cell(column, cell);
                let value = source.load(Ordering::Acquire);
                if value == 0 {
                    continue;
                }
                if !kind.is_cumulative() {
                    source.store(0, Ordering::Release);
                    continue;
                }
                let retired = self.cell(RETIRED_COLUMN, cell);
                let target = retired.load(Ordering::Acquire).wrapping_add(value);
                self.hdr32(hdr::JOURNAL_SLOT)
                    .store(index, Ordering::Relaxed);
                self.hdr64(hdr::JOURNAL_CELL)
                    .store(u64::from(cell), Ordering::Relaxed);
                self.hdr64(hdr::JOURNAL_TARGET)
                    .store(target, Ordering::Relaxed);
                self.hdr32(hdr::JOURNAL_ACTIVE).store(1, Ordering::Release);
                crate::testing::maybe_crash_mid_fold();
                retired.store(target, Ordering::Release);
                source.store(0, Ordering::Release);
                self.hdr32(hdr::JOURNAL_ACTIVE).store(0, Ordering::Release);
            }
        });
        seq.fetch_add(1, Ordering::AcqRel);
        let base = self.geo.slot_offset(index);
        self.map
            .u32_at(base + slot::STATE)
            .store(slot::FREE, Ordering::Release);
        self.map
            .u32_at(base + slot::PID)
            .store(0, Ordering::Relaxed);
    }

    /// Sets every counter's reset baseline to its current total (`/reset_counters`).
    pub(crate) fn reset_counters(&self, _lock: &RegionLock<'_>, entries: &[EntryInfo]) {
        let columns = self.total_columns();
        for info in entries.iter().filter(|e| e.kind == StoredKind::Counter) {
            let total = self.total_in(&columns, info.cell);
            self.cell(BASELINE_COLUMN, info.cell)
                .store(total, Ordering::Release);
        }
    }

    /// Raw total of a cumulative cell: retired plus every generation column (columns of
    /// free slots are zero, dead-but-unfolded ones still hold their counts). Free slots'
    /// columns are not read: their pages stay untouched (a snapshot of a big config would
    /// otherwise fault in every column's pages, mostly holes of the sparse file).
    pub(crate) fn counter_total(&self, cell: u32) -> u64 {
        self.total_in(&self.total_columns(), cell)
    }

    /// The columns a raw total sums right now (retired and every occupied slot's), for a
    /// pass over many cells: reading the slot table once per pass instead of once per cell
    /// was most of a histogram flush over 30,000 histograms.
    pub(crate) fn total_columns(&self) -> TotalColumns {
        let mut columns = TotalColumns {
            columns: [0; MAX_GENERATION_SLOTS as usize + 1],
            len: 1,
        };
        columns.columns[0] = RETIRED_COLUMN;
        for index in 0..self.geo.max_generations.min(MAX_GENERATION_SLOTS) {
            let state = self.geo.slot_offset(index) + slot::STATE;
            if self.map.u32_at(state).load(Ordering::Acquire) != slot::FREE {
                columns.columns[columns.len] = FIRST_GENERATION_COLUMN + index;
                columns.len += 1;
            }
        }
        columns
    }

    /// The raw totals of the `N` cells from `cell` over `columns`: a histogram's buckets
    /// with one range check per column (a flush over 40,000 histograms read each cell
    /// through its own offset and check).
    pub(crate) fn totals_in<const N: usize>(&self, columns: &TotalColumns, cell: u32) -> [u64; N] {
        let mut totals = [0u64; N];
        for &column in &columns.columns[..columns.len] {
            let cells = self.map.u64s_at(self.geo.cell_offset(column, cell), N);
            for (total, value) in totals.iter_mut().zip(cells) {
                *total = total.wrapping_add(value.load(Ordering::Acquire));
            }
        }
        totals
    }

    /// [`Self::counter_total`] over `columns` (from [`Self::total_columns`]).
    pub(crate) fn total_in(&self, columns: &TotalColumns, cell: u32) -> u64 {
        columns.columns[..columns.len]
            .iter()
            .fold(0u64, |total, &column| {
                total.wrapping_add(self.cell(column, cell).load(Ordering::Acquire))
            })
    }
}

/// The value columns one pass of totals reads ([`Region::total_columns`]).
pub(crate) struct TotalColumns {
    columns: [u32; MAX_GENERATION_SLOTS as usize + 1],
    len: usize,
}

/// Whether the process recorded in a lock word still runs.
fn lock_holder_alive(word: u64) -> bool {
    let pid = word as u32;
    let start_low = (word >> 32) as u32;
    match process_start_time(pid) {
        Some(start) if start as u32 == start_low => ProcessIdentity {
            pid,
            start_time: start,
        }
        .is_alive(),
        Some(_) => false,
        None => ProcessIdentity { pid, start_time: 0 }.is_alive(),
    }
}

/// The held allocation lock; released on drop.
pub(crate) struct RegionLock<'a> {
    region: &'a Region,
    word: u64,
}

impl Drop for RegionLock<'_> {
    fn drop(&mut self) {
        // Fails only if another process wrongly judged us dead and took over; then the
        // lock is theirs and must not be cleared.
        let _ = self.region.hdr64(hdr::LOCK).compare_exchange(
            self.word,
            0,
            Ordering::Release,
            Ordering::Relaxed,
        );
    }
}
