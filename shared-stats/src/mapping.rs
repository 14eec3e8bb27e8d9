//! The only module touching raw memory: a shared file mapping viewed as atomics, and the
//! `CellPtr` that stat handles keep to reach their value cell without a lookup.

use std::sync::atomic::{AtomicU32, AtomicU64};

use memmap2::MmapRaw;

/// A shared mapping of a region file.
pub(crate) struct Mapping {
    raw: MmapRaw,
    writable: bool,
}

impl Mapping {
    /// Wraps a mapping; `writable` says whether it was mapped read-write.
    pub(crate) fn new(raw: MmapRaw, writable: bool) -> Self {
        Mapping { raw, writable }
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.raw.len() as u64
    }

    #[inline]
    fn check(&self, offset: u64, size: u64) {
        // Offsets come from a validated geometry; a miss is a bug in this crate, not bad
        // input, so stopping loudly beats touching memory outside the mapping.
        if !(offset.is_multiple_of(size) && offset + size <= self.len()) {
            self.out_of_range(offset, size);
        }
    }

    /// The panic of [`Self::check`], out of line: with the message formatting inlined the
    /// accessors were not inlined, and a cluster's 40 stat names cost 280 calls.
    #[cold]
    #[inline(never)]
    fn out_of_range(&self, offset: u64, size: u64) -> ! {
        panic!(
            "stats region access out of range: offset {offset} size {size} len {}",
            self.len()
        );
    }

    /// The `AtomicU64` at `offset`.
    #[inline]
    pub(crate) fn u64_at(&self, offset: u64) -> &AtomicU64 {
        self.check(offset, 8);
        #[allow(unsafe_code)]
        // SAFETY: the range is inside the live mapping (checked above) and 8-aligned (the
        // mapping itself is page-aligned); the mapping outlives the returned reference. All
        // processes access these bytes only through atomics.
        unsafe {
            AtomicU64::from_ptr(self.raw.as_mut_ptr().add(offset as usize).cast::<u64>())
        }
    }

    /// The `len` `AtomicU64`s from `offset` (a histogram's buckets in one column), checked
    /// once.
    #[inline]
    pub(crate) fn u64s_at(&self, offset: u64, len: usize) -> &[AtomicU64] {
        let bytes = len as u64 * 8;
        if !(offset.is_multiple_of(8) && offset + bytes <= self.len()) {
            self.out_of_range(offset, bytes);
        }
        #[allow(unsafe_code)]
        // SAFETY: as for `u64_at`: the `len` cells are inside the live mapping (checked
        // above) and 8-aligned; `[AtomicU64]` has the layout of `len` `u64`s.
        unsafe {
            std::slice::from_raw_parts(
                self.raw
                    .as_mut_ptr()
                    .add(offset as usize)
                    .cast::<AtomicU64>(),
                len,
            )
        }
    }

    /// The `AtomicU32` at `offset`.
    #[inline]
    pub(crate) fn u32_at(&self, offset: u64) -> &AtomicU32 {
        self.check(offset, 4);
        #[allow(unsafe_code)]
        // SAFETY: as for `u64_at`, with 4-byte size and alignment.
        unsafe {
            AtomicU32::from_ptr(self.raw.as_mut_ptr().add(offset as usize).cast::<u32>())
        }
    }

    /// The four `AtomicU32`s at `offset` (a stat entry), checked once.
    #[inline]
    pub(crate) fn u32x4_at(&self, offset: u64) -> &[AtomicU32; 4] {
        if !(offset.is_multiple_of(4) && offset + 16 <= self.len()) {
            self.out_of_range(offset, 16);
        }
        #[allow(unsafe_code)]
        // SAFETY: as for `u32_at`: the 16 bytes are inside the live mapping (checked
        // above) and 4-aligned; `[AtomicU32; 4]` has the layout of four `u32`s.
        unsafe {
            &*self
                .raw
                .as_mut_ptr()
                .add(offset as usize)
                .cast::<[AtomicU32; 4]>()
        }
    }

    /// Copies `len` bytes starting at `offset`.
    pub(crate) fn read_bytes(&self, offset: u64, len: usize) -> Vec<u8> {
        assert!(
            offset + len as u64 <= self.len(),
            "stats region read out of range"
        );
        let mut out = vec![0u8; len];
        #[allow(unsafe_code)]
        // SAFETY: the source range is inside the mapping (checked above) and `out` has
        // `len` bytes. Bytes read this way (magic, names) are written once before being
        // published with a release store that the caller has acquired.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.raw.as_ptr().add(offset as usize),
                out.as_mut_ptr(),
                len,
            );
        }
        out
    }

    /// Calls `f` with the `len` bytes at `offset`, borrowed from the mapping: comparing or
    /// hashing a name needs no copy.
    pub(crate) fn with_bytes<R>(&self, offset: u64, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        assert!(
            offset + len as u64 <= self.len(),
            "stats region read out of range"
        );
        #[allow(unsafe_code)]
        // SAFETY: the range is inside the live mapping (checked above), which outlives the
        // borrow handed to `f`. Bytes read this way are names, written once before being
        // published with a release store that the caller has acquired and never written
        // again (the arena only grows), so nothing writes them while `f` reads.
        let bytes =
            unsafe { std::slice::from_raw_parts(self.raw.as_ptr().add(offset as usize), len) };
        f(bytes)
    }

    /// Writes `bytes` at `offset` (used for the magic and for names before publication).
    pub(crate) fn write_bytes(&self, offset: u64, bytes: &[u8]) {
        assert!(self.writable, "write to a read-only stats mapping");
        assert!(
            offset + bytes.len() as u64 <= self.len(),
            "stats region write out of range"
        );
        #[allow(unsafe_code)]
        // SAFETY: the destination is inside a writable mapping (checked above); these bytes
        // are not yet published, so no other process reads them concurrently.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.raw.as_mut_ptr().add(offset as usize),
                bytes.len(),
            );
        }
    }

    /// A raw pointer to the cell at `offset`, for a stat handle.
    pub(crate) fn cell_ptr(&self, offset: u64) -> CellPtr {
        CellPtr(std::ptr::NonNull::from(self.u64_at(offset)))
    }
}

/// Pointer to the first value cell of a stat, in the region or in a local fallback.
///
/// The handle that holds a `CellPtr` also holds an `Arc` to the memory it points into, so
/// the pointer never dangles.
#[derive(Clone, Copy)]
pub(crate) struct CellPtr(std::ptr::NonNull<AtomicU64>);

#[allow(unsafe_code)]
// SAFETY: a CellPtr only ever points at `AtomicU64`s, which are Sync; the memory is kept
// alive by the owning handle's Arc, so sharing the pointer across threads is sound.
unsafe impl Send for CellPtr {}
#[allow(unsafe_code)]
// SAFETY: see the Send impl above.
unsafe impl Sync for CellPtr {}

impl CellPtr {
    /// Points at a local cell (the fallback used when the region is full).
    pub(crate) fn local(cell: &AtomicU64) -> Self {
        CellPtr(std::ptr::NonNull::from(cell))
    }

    /// The cell `index` cells after this one.
    #[inline(always)]
    pub(crate) fn at(&self, index: usize) -> &AtomicU64 {
        #[allow(unsafe_code)]
        // SAFETY: callers index only within the stat's own cells (1 for counters and
        // gauges, HISTOGRAM_CELLS for histograms), which were allocated contiguously and are
        // kept alive by the handle's Arc.
        unsafe {
            &*self.0.as_ptr().add(index)
        }
    }
}
