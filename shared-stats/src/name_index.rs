//! A generation's process-local index of the region: names of single stats and prefixes
//! of blocks to where they live, the block templates met, and the stats that overflowed
//! into process memory. Kept in step with the region by scanning the entries other
//! generations appended (under the region lock, nobody else appends).

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::block::BlockTemplate;
use crate::layout::StoredKind;
use crate::region::{EntryRef, EntryView, Region};

/// A stat that did not fit in the region and counts in process memory instead.
pub(crate) struct Fallback {
    pub(crate) kind: StoredKind,
    pub(crate) cells: Arc<[AtomicU64]>,
}

/// A word-at-a-time multiply-rotate hash (FxHash's step, eight bytes per step) with a
/// final avalanche: stat names come from configuration, not from peers, so a fast
/// non-keyed hash is safe here, and a CDS update of 10,000 clusters hashes 340,000 names
/// of about 40 bytes (FNV-1a's byte-at-a-time loop was a third of resolving one).
#[derive(Default)]
pub(crate) struct NameHasher(u64);

/// FxHash's multiplier.
const HASH_STEP: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl NameHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(HASH_STEP);
    }
}

impl Hasher for NameHasher {
    fn finish(&self) -> u64 {
        // The multiply-rotate steps leave the high bits (which hashbrown's probing uses)
        // poorly mixed for names that differ only near the end; a final avalanche
        // (murmur3 fmix64) fixes that.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut buf = [0u8; 8];
            buf.copy_from_slice(word);
            self.add(u64::from_le_bytes(buf));
        }
        let tail = words.remainder();
        // The tail and the length in one word: "a" and "a\0" differ.
        let mut buf = [0u8; 8];
        buf[..tail.len()].copy_from_slice(tail);
        buf[7] = bytes.len() as u8;
        self.add(u64::from_le_bytes(buf));
    }
}

/// Where a single stat lives in the region.
#[derive(Clone, Copy)]
pub(crate) struct EntrySlot {
    pub(crate) kind: StoredKind,
    pub(crate) cell: u32,
}

impl From<EntryRef> for EntrySlot {
    fn from(entry: EntryRef) -> Self {
        EntrySlot {
            kind: entry.kind,
            cell: entry.cell,
        }
    }
}

/// `IndexedName::template` of a single stat.
const SINGLE: u32 = u32::MAX;

/// One name in [`NameIndex`]: a single stat's name or a block's prefix, with its hash and
/// where it lives. The name itself is not copied: it is compared in the region's arena.
struct IndexedName {
    hash: u64,
    index: u32,
    cell: u32,
    /// A block's template entry, or `SINGLE`.
    template: u32,
    /// A single stat's kind (unused for a block).
    kind: StoredKind,
}

impl IndexedName {
    fn single(hash: u64, entry: EntryRef) -> Self {
        IndexedName {
            hash,
            index: entry.index,
            cell: entry.cell,
            template: SINGLE,
            kind: entry.kind,
        }
    }

    fn slot(&self) -> EntrySlot {
        EntrySlot {
            kind: self.kind,
            cell: self.cell,
        }
    }
}

/// Names and block prefixes to region entries. Each is stored with its hash, so growing
/// the table never re-reads and re-hashes the names.
pub(crate) struct NameIndex {
    table: hashbrown::HashTable<IndexedName>,
}

impl NameIndex {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            table: hashbrown::HashTable::with_capacity(capacity),
        }
    }

    pub(crate) fn hash(name: &[u8]) -> u64 {
        let mut hasher = NameHasher::default();
        hasher.write(name);
        hasher.finish()
    }

    /// Room for `additional` more names or blocks.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.table.reserve(additional, |e| e.hash);
    }

    /// The single stat `name`.
    pub(crate) fn get(&self, region: &Region, name: &str, hash: u64) -> Option<EntrySlot> {
        self.table
            .find(hash, |e| {
                e.hash == hash
                    && e.template == SINGLE
                    && region.entry_name_is(e.index, name.as_bytes())
            })
            .map(IndexedName::slot)
    }

    /// The first cell of the block of template entry `template` under `prefix`.
    pub(crate) fn find_block(
        &self,
        region: &Region,
        prefix: &[u8],
        hash: u64,
        template: u32,
    ) -> Option<u32> {
        self.table
            .find(hash, |e| {
                e.hash == hash && e.template == template && region.entry_name_is(e.index, prefix)
            })
            .map(|e| e.cell)
    }

    /// Adds single stat `entry` named `name` (or points the name at it if it is there
    /// already: the later entry wins).
    fn insert_single(&mut self, region: &Region, name: &[u8], entry: EntryRef) {
        let hash = Self::hash(name);
        self.upsert(region, name, IndexedName::single(hash, entry));
    }

    /// Adds (or repoints) a name or prefix, matched on its kind of entry too.
    fn upsert(&mut self, region: &Region, name: &[u8], new: IndexedName) {
        let (hash, template) = (new.hash, new.template);
        match self.table.entry(
            hash,
            |e| e.hash == hash && e.template == template && region.entry_name_is(e.index, name),
            |e| e.hash,
        ) {
            hashbrown::hash_table::Entry::Occupied(mut found) => *found.get_mut() = new,
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                vacant.insert(new);
            }
        }
    }

    /// Adds single stat `entry`, known not to be indexed yet.
    pub(crate) fn insert_new_single(&mut self, hash: u64, entry: EntryRef) {
        self.table
            .insert_unique(hash, IndexedName::single(hash, entry), |e| e.hash);
    }

    /// Adds a block, known not to be indexed yet.
    pub(crate) fn insert_new_block(&mut self, hash: u64, index: u32, cell: u32, template: u32) {
        let block = IndexedName {
            hash,
            index,
            cell,
            template,
            kind: StoredKind::Counter,
        };
        self.table.insert_unique(hash, block, |e| e.hash);
    }
}

/// A template the region holds, by its entry index.
struct KnownTemplate {
    index: u32,
    template: BlockTemplate,
}

/// Process-local index from names to region entries.
pub(crate) struct LocalIndex {
    /// Entries below this index have been indexed.
    pub(crate) scanned: u32,
    pub(crate) by_name: NameIndex,
    pub(crate) fallbacks: BTreeMap<String, Fallback>,
    /// Cells of fallbacks whose name another kind's fallback holds (their handles point
    /// here: kept for the store's life).
    pub(crate) orphans: Vec<Arc<[AtomicU64]>>,
    templates: Vec<KnownTemplate>,
    /// Hashes of the prefixes `P` for which a single stat `P` + `s` exists with `s` one of
    /// a known template's suffixes: a block under `P` would name that stat twice.
    single_prefixes: HashSet<u64, BuildHasherDefault<NameHasher>>,
}

impl LocalIndex {
    pub(crate) fn new(capacity: usize) -> Self {
        LocalIndex {
            scanned: 0,
            by_name: NameIndex::with_capacity(capacity),
            fallbacks: BTreeMap::new(),
            orphans: Vec::new(),
            templates: Vec::new(),
            single_prefixes: HashSet::default(),
        }
    }

    /// Indexes the entries other generations appended since the last scan. Caller holds
    /// the region lock (nobody appends meanwhile); a corrupt entry stops the scan there.
    pub(crate) fn scan(&mut self, region: &Region) {
        let templates_before = self.templates.len();
        let LocalIndex {
            scanned,
            by_name,
            templates,
            single_prefixes,
            ..
        } = self;
        let _ = region.visit_entries(*scanned, |view, name| {
            match view {
                EntryView::Stat(entry) => {
                    by_name.insert_single(region, name, entry);
                    note_single(templates, single_prefixes, name);
                    *scanned = entry.index + 1;
                }
                EntryView::Template { index, template } => {
                    templates.push(KnownTemplate {
                        index,
                        template: template.clone(),
                    });
                    *scanned = index + 1;
                }
                EntryView::Block {
                    index,
                    cell,
                    template_index,
                    ..
                } => {
                    let block = IndexedName {
                        hash: NameIndex::hash(name),
                        index,
                        cell,
                        template: template_index,
                        kind: StoredKind::Counter,
                    };
                    by_name.upsert(region, name, block);
                    *scanned = index + 1;
                }
            }
            Ok(())
        });
        if self.templates.len() != templates_before {
            self.note_all_singles(region);
        }
    }

    /// The region's entry index of a template like `template`, if it holds one.
    pub(crate) fn template_index(&self, template: &BlockTemplate) -> Option<u32> {
        self.templates
            .iter()
            .find(|known| known.template.same_as(template))
            .map(|known| known.index)
    }

    /// Records a template this generation just appended at entry `index`.
    pub(crate) fn add_template(&mut self, region: &Region, index: u32, template: &BlockTemplate) {
        self.scanned = self.scanned.max(index + 1);
        self.templates.push(KnownTemplate {
            index,
            template: template.clone(),
        });
        self.note_all_singles(region);
    }

    /// Notes the prefixes of every single stat indexed so far against the known
    /// templates (when a template becomes known: rare).
    fn note_all_singles(&mut self, region: &Region) {
        let LocalIndex {
            scanned,
            templates,
            single_prefixes,
            ..
        } = self;
        let end = *scanned;
        let _ = region.visit_entries(0, |view, name| {
            if let EntryView::Stat(entry) = view {
                if entry.index < end {
                    note_single(templates, single_prefixes, name);
                }
            }
            Ok(())
        });
    }

    /// Notes a single stat this generation just appended.
    pub(crate) fn note_single(&mut self, name: &[u8]) {
        note_single(&self.templates, &mut self.single_prefixes, name);
    }

    /// Whether a block under the prefix hashed `prefix_hash` could repeat a single stat's
    /// name (false positives only cost the block: its names are then resolved singly).
    pub(crate) fn block_may_repeat(&self, prefix_hash: u64) -> bool {
        self.single_prefixes.contains(&prefix_hash)
    }

    /// Where the single-stat name `name` lives when it is a slot of a block: a name
    /// looked up on its own finds the stat its block holds.
    pub(crate) fn in_block(&self, region: &Region, name: &str) -> Option<EntrySlot> {
        if self.templates.is_empty() {
            return None;
        }
        let bytes = name.as_bytes();
        for (dot, _) in bytes.iter().enumerate().filter(|(_, &b)| b == b'.') {
            let (prefix, suffix) = bytes.split_at(dot + 1);
            for known in &self.templates {
                let Some(slot) = known.template.slot_of(suffix) else {
                    continue;
                };
                let hash = NameIndex::hash(prefix);
                if let Some(cell) = self.by_name.find_block(region, prefix, hash, known.index) {
                    return Some(EntrySlot {
                        kind: slot.kind,
                        cell: cell + slot.cell,
                    });
                }
            }
        }
        None
    }
}

/// Records in `single_prefixes` each prefix of `name` whose rest is a suffix of one of
/// `templates`.
fn note_single(
    templates: &[KnownTemplate],
    single_prefixes: &mut HashSet<u64, BuildHasherDefault<NameHasher>>,
    name: &[u8],
) {
    if templates.is_empty() {
        return;
    }
    for (dot, _) in name.iter().enumerate().filter(|(_, &b)| b == b'.') {
        let (prefix, suffix) = name.split_at(dot + 1);
        if templates
            .iter()
            .any(|known| known.template.slot_of(suffix).is_some())
        {
            single_prefixes.insert(NameIndex::hash(prefix));
        }
    }
}
