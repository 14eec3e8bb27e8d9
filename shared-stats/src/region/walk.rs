//! Reading the entry table: the validated walk over entries (single stats, block
//! templates, blocks), the same walk with blocks expanded into their stats, and name
//! comparison in the arena. Every reader of the region (snapshots, the histogram flush,
//! a generation's name index, the offline reader) goes through here, so a corrupt entry
//! is refused the same way everywhere.

use std::sync::atomic::Ordering;

use super::{EntryInfo, EntryRef, Region};
use crate::block::BlockTemplate;
use crate::error::{Result, StatsError};
use crate::layout::{entry, StoredKind};

/// One published entry as the walk sees it.
pub(crate) enum EntryView<'t> {
    /// A single stat.
    Stat(EntryRef),
    /// A block template (named by its text).
    Template {
        index: u32,
        template: &'t BlockTemplate,
    },
    /// A block (named by its prefix).
    Block {
        index: u32,
        cell: u32,
        template_index: u32,
        template: &'t BlockTemplate,
    },
}

/// An entry's four words: packed kind/mode/length, name offset, first cell, flags.
struct RawEntry {
    packed: u32,
    name_offset: u32,
    cell: u32,
    flags: u32,
}

impl RawEntry {
    fn kind(&self) -> u8 {
        self.packed as u8
    }

    fn name_len(&self) -> u32 {
        self.packed >> 16
    }
}

/// Templates met during one walk, by entry index (a region has one per bundle kind).
#[derive(Default)]
pub(crate) struct TemplateCache {
    known: Vec<(u32, BlockTemplate)>,
}

impl TemplateCache {
    /// The template at entry `index`, parsed from the region the first time.
    pub(crate) fn get(&mut self, region: &Region, index: u32) -> Option<&BlockTemplate> {
        let position = match self.known.iter().position(|(i, _)| *i == index) {
            Some(position) => position,
            None => {
                let template = region.load_template(index)?;
                self.known.push((index, template));
                self.known.len() - 1
            }
        };
        self.known.get(position).map(|(_, template)| template)
    }
}

impl Region {
    fn raw_entry(&self, index: u32) -> RawEntry {
        let words = self.map.u32x4_at(self.geo.entry_offset(index));
        const WORD: u64 = 4;
        let word = |field: u64| words[(field / WORD) as usize].load(Ordering::Relaxed);
        RawEntry {
            packed: word(entry::KIND_MODE_LEN),
            name_offset: word(entry::NAME_OFFSET),
            cell: word(entry::CELL),
            flags: word(entry::FLAGS),
        }
    }

    /// The template stored at published entry `index` (`None` if it is not one).
    pub(crate) fn load_template(&self, index: u32) -> Option<BlockTemplate> {
        if index >= self.stat_count() {
            return None;
        }
        let raw = self.raw_entry(index);
        let (offset, len) = (u64::from(raw.name_offset), u64::from(raw.name_len()));
        if raw.kind() != entry::KIND_TEMPLATE || offset + len > u64::from(self.arena_used()) {
            return None;
        }
        self.map.with_bytes(
            self.geo.arena_offset() + offset,
            len as usize,
            BlockTemplate::parse,
        )
    }

    /// Decodes entries `from..stat_count`, blocks expanded into their stats.
    pub(crate) fn read_entries(&self, from: u32) -> Result<Vec<EntryInfo>> {
        self.read_entries_of(from, |_| true)
    }

    /// Decodes the stats of entries `from..stat_count` whose kind `keep` accepts; the
    /// names of the others are not built.
    pub(crate) fn read_entries_of(
        &self,
        from: u32,
        keep: impl Fn(StoredKind) -> bool,
    ) -> Result<Vec<EntryInfo>> {
        let mut out = Vec::new();
        self.visit_stats(from, keep, |entry, prefix, suffix| {
            let prefix = std::str::from_utf8(prefix).map_err(|_| StatsError::Corrupt {
                path: self.path.clone(),
                detail: format!("entry {}: name is not UTF-8", entry.index),
            })?;
            let mut name = String::with_capacity(prefix.len() + suffix.len());
            name.push_str(prefix);
            name.push_str(suffix);
            out.push(EntryInfo {
                name,
                kind: entry.kind,
                mode: entry.mode,
                cell: entry.cell,
            });
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `visit` with each stat of entries `from..stat_count` whose kind `keep`
    /// accepts: a single stat with its name and `""`, each stat of a block with the
    /// block's prefix and the slot's suffix (its `index` is the block's entry).
    pub(crate) fn visit_stats(
        &self,
        from: u32,
        keep: impl Fn(StoredKind) -> bool,
        mut visit: impl FnMut(EntryRef, &[u8], &str) -> Result<()>,
    ) -> Result<()> {
        self.visit_entries(from, |view, name| match view {
            EntryView::Stat(entry) if keep(entry.kind) => visit(entry, name, ""),
            EntryView::Stat(_) | EntryView::Template { .. } => Ok(()),
            EntryView::Block {
                index,
                cell,
                template,
                ..
            } => {
                for slot in template.slots().iter().filter(|slot| keep(slot.kind)) {
                    let entry = EntryRef {
                        kind: slot.kind,
                        mode: slot.mode,
                        cell: cell + slot.cell,
                        index,
                    };
                    visit(entry, name, template.suffix(slot))?;
                }
                Ok(())
            }
        })
    }

    /// Calls `visit` with each entry `from..stat_count` and its name's bytes, borrowed
    /// from the mapping (no copy: a generation joining a big region indexes its names
    /// without allocating each). Stops at the first error; an entry that is not
    /// consistent with the header (unknown kind, name or cells beyond what is in use, a
    /// block whose template is not an earlier template entry) is `Corrupt`.
    pub(crate) fn visit_entries(
        &self,
        from: u32,
        mut visit: impl FnMut(EntryView<'_>, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let count = self.stat_count();
        let arena_used = u64::from(self.arena_used());
        let cells_used = u64::from(self.cells_used());
        let mut templates = TemplateCache::default();
        for index in from..count {
            let raw = self.raw_entry(index);
            let name_offset = u64::from(raw.name_offset);
            let name_len = u64::from(raw.name_len());
            let corrupt = |detail: String| StatsError::Corrupt {
                path: self.path.clone(),
                detail: format!("entry {index}: {detail}"),
            };
            if name_offset + name_len > arena_used {
                return Err(corrupt(format!(
                    "name at {name_offset}+{name_len} beyond arena use {arena_used}"
                )));
            }
            let cells_beyond = |cells: u32| u64::from(raw.cell) + u64::from(cells) > cells_used;
            let name_at = self.geo.arena_offset() + name_offset;
            let name_len = name_len as usize;
            match raw.kind() {
                entry::KIND_TEMPLATE => {
                    let template = templates
                        .get(self, index)
                        .ok_or_else(|| corrupt("template text does not parse".into()))?;
                    self.map.with_bytes(name_at, name_len, |name| {
                        visit(EntryView::Template { index, template }, name)
                    })?;
                }
                entry::KIND_BLOCK => {
                    let template_index = raw.flags;
                    let template = (template_index < index)
                        .then(|| templates.get(self, template_index))
                        .flatten()
                        .ok_or_else(|| {
                            corrupt(format!("template {template_index} is not a template"))
                        })?;
                    if cells_beyond(template.cells()) {
                        return Err(corrupt(format!(
                            "block cell {} beyond cells in use {cells_used}",
                            raw.cell
                        )));
                    }
                    let view = EntryView::Block {
                        index,
                        cell: raw.cell,
                        template_index,
                        template,
                    };
                    self.map
                        .with_bytes(name_at, name_len, |name| visit(view, name))?;
                }
                other => {
                    let kind = StoredKind::from_u8(other)
                        .ok_or_else(|| corrupt(format!("unknown kind {other}")))?;
                    if cells_beyond(kind.cells()) {
                        return Err(corrupt(format!(
                            "cell {} beyond cells in use {cells_used}",
                            raw.cell
                        )));
                    }
                    let entry = EntryRef {
                        kind,
                        mode: (raw.packed >> 8) as u8,
                        cell: raw.cell,
                        index,
                    };
                    self.map.with_bytes(name_at, name_len, |name| {
                        visit(EntryView::Stat(entry), name)
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Whether published entry `index` is named `name` (false for an index not
    /// published or a name outside the arena in use).
    pub(crate) fn entry_name_is(&self, index: u32, name: &[u8]) -> bool {
        if index >= self.stat_count() {
            return false;
        }
        let raw = self.raw_entry(index);
        if raw.name_len() as usize != name.len() {
            return false;
        }
        let name_offset = u64::from(raw.name_offset);
        if name_offset + name.len() as u64 > u64::from(self.arena_used()) {
            return false;
        }
        self.map.with_bytes(
            self.geo.arena_offset() + name_offset,
            name.len(),
            |stored| stored == name,
        )
    }

    /// For the fold: calls `fold` with each stat's kind and first cell of every
    /// published entry, tolerating what the walk would refuse (a fold must finish).
    pub(crate) fn for_each_stat_cell(&self, mut fold: impl FnMut(StoredKind, u64)) {
        let mut templates = TemplateCache::default();
        for index in 0..self.stat_count() {
            let raw = self.raw_entry(index);
            let first = u64::from(raw.cell);
            match raw.kind() {
                entry::KIND_TEMPLATE => {}
                entry::KIND_BLOCK => {
                    if raw.flags >= index {
                        continue;
                    }
                    if let Some(template) = templates.get(self, raw.flags) {
                        for slot in template.slots() {
                            fold(slot.kind, first + u64::from(slot.cell));
                        }
                    }
                }
                other => {
                    if let Some(kind) = StoredKind::from_u8(other) {
                        fold(kind, first);
                    }
                }
            }
        }
    }
}
