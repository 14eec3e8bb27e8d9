//! The byte layout of the stats region: header fields, generation slots, the stat entry
//! table (single stats, block templates and blocks), the name arena and the value
//! columns. README.md draws the same picture.
//!
//! Everything is little-endian native atomics at naturally aligned offsets; the layout
//! version changes whenever any offset or meaning here changes.

/// First eight bytes of every region file.
pub const MAGIC: [u8; 8] = *b"BATNSTAT";
/// Version of the layout described in this module.
///
/// Version 2 added block templates and blocks (a bundle's stats under one prefix as one
/// entry and one run of cells) and the `STATS_HELD` header field.
pub const LAYOUT_VERSION: u32 = 2;
/// Bytes reserved for the header and the generation slot table.
pub const HEADER_SIZE: u64 = 4096;
/// Value of `hdr::INIT_STATE` once the creator has finished writing the header.
pub const INIT_READY: u32 = 0x5245_4459; // "READ"
/// Largest number of generation slots the header has room for.
pub const MAX_GENERATION_SLOTS: u32 = 48;
/// Page size used to align columns so each generation's writes stay on its own pages.
const PAGE: u64 = 4096;

// The slot table fits in the header and the header fields end before it.
const _: () = assert!(hdr::SLOTS + MAX_GENERATION_SLOTS as u64 * slot::SIZE <= HEADER_SIZE);
const _: () = assert!(hdr::STATS_HELD + 4 <= hdr::SLOTS);

/// Header field offsets (bytes from the start of the region).
pub mod hdr {
    /// `[u8; 8]` magic.
    pub const MAGIC: u64 = 0;
    /// `u32` layout version.
    pub const VERSION: u64 = 8;
    /// `u32` header size.
    pub const HEADER_SIZE: u64 = 12;
    /// `u64` total region size in bytes.
    pub const TOTAL_SIZE: u64 = 16;
    /// `u32` capacity of the entry table.
    pub const MAX_STATS: u64 = 24;
    /// `u32` number of value cells per column.
    pub const MAX_CELLS: u64 = 28;
    /// `u32` number of generation slots (= generation columns).
    pub const MAX_GENERATIONS: u64 = 32;
    /// `u32` bytes in the name arena.
    pub const ARENA_BYTES: u64 = 36;
    /// `AtomicU64` allocation lock: 0 free, else holder pid | (start time low 32 bits) << 32.
    pub const LOCK: u64 = 40;
    /// `AtomicU32` number of published entries (entries below it are complete).
    pub const STAT_COUNT: u64 = 48;
    /// `AtomicU32` value cells handed out.
    pub const CELLS_USED: u64 = 52;
    /// `AtomicU32` arena bytes handed out.
    pub const ARENA_USED: u64 = 56;
    /// `AtomicU32` equals `INIT_READY` once the header is complete.
    pub const INIT_STATE: u64 = 60;
    /// `AtomicU64` seqlock: odd while a fold moves values between columns.
    pub const FOLD_SEQ: u64 = 64;
    /// `AtomicU32` 1 while the fold journal describes a half-moved cell.
    pub const JOURNAL_ACTIVE: u64 = 72;
    /// `AtomicU32` generation slot whose column is being folded.
    pub const JOURNAL_SLOT: u64 = 76;
    /// `AtomicU64` cell index being folded.
    pub const JOURNAL_CELL: u64 = 80;
    /// `AtomicU64` value the retired cell must hold once the move is complete.
    pub const JOURNAL_TARGET: u64 = 88;
    /// `AtomicU32` stats the entries hold (a single stat counts one, a block its
    /// template's slots): what `max_stats` limits, whatever the entries' shape.
    pub const STATS_HELD: u64 = 96;
    /// Start of the generation slot table.
    pub const SLOTS: u64 = 256;
}

/// Generation slot field offsets (bytes from the start of a slot).
pub mod slot {
    /// Size of one slot.
    pub const SIZE: u64 = 64;
    /// `AtomicU32` `FREE` or `LIVE`.
    pub const STATE: u64 = 0;
    /// `AtomicU32` owner pid.
    pub const PID: u64 = 4;
    /// `AtomicU64` owner start time (clock ticks since boot).
    pub const START_TIME: u64 = 8;
    /// `AtomicU64` restart epoch the owner runs as.
    pub const EPOCH: u64 = 16;
    /// Slot is unused and its column is all zero.
    pub const FREE: u32 = 0;
    /// Slot belongs to a generation (alive, or dead and not folded yet).
    pub const LIVE: u32 = 1;
}

/// Stat entry field offsets (bytes from the start of an entry).
pub mod entry {
    /// Size of one entry.
    pub const SIZE: u64 = 16;
    /// `u32`: kind (bits 0-7), gauge mode (bits 8-15), name length (bits 16-31).
    pub const KIND_MODE_LEN: u64 = 0;
    /// `u32` offset of the name in the arena.
    pub const NAME_OFFSET: u64 = 4;
    /// `u32` first value cell.
    pub const CELL: u64 = 8;
    /// `u32`: a block's template (its entry index); zero for other kinds.
    pub const FLAGS: u64 = 12;
    /// Kind byte of a block template: the name is the template's text (`BlockTemplate`),
    /// no cells.
    pub const KIND_TEMPLATE: u8 = 4;
    /// Kind byte of a block: the name is the prefix of its template's names; its cells
    /// are the template's slots in order; `FLAGS` is the template's entry index.
    pub const KIND_BLOCK: u8 = 5;
}

/// Stored kind of a stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredKind {
    /// Monotonic counter: one cell.
    Counter = 1,
    /// Gauge: two cells, the value and a "written" flag (Envoy's "used").
    Gauge = 2,
    /// Histogram: `HISTOGRAM_CELLS` cells.
    Histogram = 3,
}

impl StoredKind {
    /// Decodes a stored kind byte.
    pub fn from_u8(raw: u8) -> Option<Self> {
        match raw {
            1 => Some(StoredKind::Counter),
            2 => Some(StoredKind::Gauge),
            3 => Some(StoredKind::Histogram),
            _ => None,
        }
    }

    /// Number of value cells this kind occupies.
    pub fn cells(self) -> u32 {
        match self {
            StoredKind::Counter => 1,
            StoredKind::Gauge => 2,
            StoredKind::Histogram => crate::histogram::HISTOGRAM_CELLS as u32,
        }
    }

    /// Whether the values survive the generation that wrote them (folded into retired).
    pub fn is_cumulative(self) -> bool {
        !matches!(self, StoredKind::Gauge)
    }
}

/// Index of the retired column (counter values of generations that have exited).
pub const RETIRED_COLUMN: u32 = 0;
/// Index of the reset baseline column (`/reset_counters`).
pub const BASELINE_COLUMN: u32 = 1;
/// Index of the first generation column.
pub const FIRST_GENERATION_COLUMN: u32 = 2;

/// Capacity of a region and the offsets derived from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Entry table capacity.
    pub max_stats: u32,
    /// Cells per column.
    pub max_cells: u32,
    /// Generation slots.
    pub max_generations: u32,
    /// Name arena bytes.
    pub arena_bytes: u32,
}

impl std::fmt::Display for Geometry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stats={} cells={} generations={} arena={}",
            self.max_stats, self.max_cells, self.max_generations, self.arena_bytes
        )
    }
}

fn align_up(value: u64, to: u64) -> u64 {
    value.div_ceil(to) * to
}

impl Geometry {
    /// Checks the limits the layout can address; `None` when valid.
    pub fn problem(&self) -> Option<String> {
        if self.max_stats == 0 || self.max_cells == 0 || self.arena_bytes == 0 {
            return Some(format!("capacities must be positive ({self})"));
        }
        if self.max_generations == 0 || self.max_generations > MAX_GENERATION_SLOTS {
            return Some(format!(
                "max_generations must be 1..={MAX_GENERATION_SLOTS}, got {}",
                self.max_generations
            ));
        }
        if self.total_size() > (1 << 40) {
            return Some(format!("region would be larger than 1 TiB ({self})"));
        }
        None
    }

    /// Offset of entry `index`.
    pub fn entry_offset(&self, index: u32) -> u64 {
        HEADER_SIZE + u64::from(index) * entry::SIZE
    }

    /// Offset of the name arena.
    pub fn arena_offset(&self) -> u64 {
        HEADER_SIZE + u64::from(self.max_stats) * entry::SIZE
    }

    fn columns_offset(&self) -> u64 {
        align_up(self.arena_offset() + u64::from(self.arena_bytes), PAGE)
    }

    fn column_stride(&self) -> u64 {
        align_up(u64::from(self.max_cells) * 8, PAGE)
    }

    /// Number of columns: retired, baseline, then one per generation slot.
    pub fn columns(&self) -> u32 {
        FIRST_GENERATION_COLUMN + self.max_generations
    }

    /// Offset of cell `cell` in column `column`.
    pub fn cell_offset(&self, column: u32, cell: u32) -> u64 {
        self.columns_offset() + u64::from(column) * self.column_stride() + u64::from(cell) * 8
    }

    /// Offset of generation slot `index`.
    pub fn slot_offset(&self, index: u32) -> u64 {
        hdr::SLOTS + u64::from(index) * slot::SIZE
    }

    /// Total bytes of a region with this geometry.
    pub fn total_size(&self) -> u64 {
        self.columns_offset() + u64::from(self.columns()) * self.column_stride()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_page_aligned_and_disjoint() {
        let geo = Geometry {
            max_stats: 10,
            max_cells: 100,
            max_generations: 3,
            arena_bytes: 1000,
        };
        assert_eq!(geo.cell_offset(0, 0) % PAGE, 0);
        assert_eq!(geo.cell_offset(1, 0) % PAGE, 0);
        assert!(geo.cell_offset(0, 99) < geo.cell_offset(1, 0));
        assert!(geo.arena_offset() + 1000 <= geo.cell_offset(0, 0));
        assert_eq!(geo.total_size(), geo.cell_offset(geo.columns(), 0));
        assert!(geo.problem().is_none());
    }
}
