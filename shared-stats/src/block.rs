//! Block templates: the shape of a bundle of stats under one prefix (a cluster's ~50
//! names), stored once in the region so that each bundle is one entry (its prefix) and
//! one run of cells instead of one entry, one arena name and one index entry per stat.
//!
//! A template's text is what the region stores as the template entry's name, one slot a
//! line: a kind letter (`c` counter, `g` gauge summed over generations, `n` gauge only
//! the newest generation sets, `h` histogram) then the name's suffix. Any binary of this
//! layout reads any template from the text alone, so two builds with different bundles
//! still share one region.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use crate::layout::StoredKind;
use crate::store::GaugeMode;

/// One stat of a template: its suffix, kind and where its cells start in the block.
#[derive(Debug, Clone)]
pub(crate) struct TemplateSlot {
    /// Byte range of the suffix in the template's text.
    suffix: std::ops::Range<usize>,
    pub(crate) kind: StoredKind,
    pub(crate) mode: u8,
    /// First cell, counted from the block's first cell.
    pub(crate) cell: u32,
}

/// The shape of a block of stats: suffixes and kinds, in cell order.
#[derive(Debug, Clone)]
pub struct BlockTemplate {
    text: Box<str>,
    slots: Box<[TemplateSlot]>,
    by_suffix: HashMap<Box<str>, u32, BuildHasherDefault<crate::name_index::NameHasher>>,
    cells: u32,
}

/// Builds a [`BlockTemplate`] one slot at a time, in the order the bundle resolves its
/// names.
#[derive(Debug, Default)]
pub struct BlockTemplateBuilder {
    text: String,
}

impl BlockTemplateBuilder {
    fn push(&mut self, letter: char, suffix: &str) {
        self.text.push(letter);
        self.text.push_str(suffix);
        self.text.push('\n');
    }

    /// Adds a counter slot.
    pub fn counter(&mut self, suffix: &str) {
        self.push('c', suffix);
    }

    /// Adds a gauge slot with `mode`.
    pub fn gauge(&mut self, suffix: &str, mode: GaugeMode) {
        let letter = match mode {
            GaugeMode::Accumulate => 'g',
            GaugeMode::NeverImport => 'n',
        };
        self.push(letter, suffix);
    }

    /// Adds a histogram slot.
    pub fn histogram(&mut self, suffix: &str) {
        self.push('h', suffix);
    }

    /// The template, or `None` when it cannot be one (no slots, an empty, repeated or
    /// multi-line suffix, or a text longer than an entry's name can be).
    pub fn build(self) -> Option<BlockTemplate> {
        BlockTemplate::parse(self.text.as_bytes())
    }
}

impl BlockTemplate {
    /// Parses a template's text (as the region stores it); `None` when it is not one.
    pub(crate) fn parse(text: &[u8]) -> Option<BlockTemplate> {
        let text = std::str::from_utf8(text).ok()?;
        if text.is_empty() || text.len() > usize::from(u16::MAX) || !text.ends_with('\n') {
            return None;
        }
        let mut slots = Vec::new();
        let mut by_suffix = HashMap::default();
        let mut cells = 0u32;
        let mut start = 0;
        for line in text[..text.len() - 1].split('\n') {
            let (kind, mode) = match line.as_bytes().first()? {
                b'c' => (StoredKind::Counter, 0),
                b'g' => (StoredKind::Gauge, GaugeMode::Accumulate as u8),
                b'n' => (StoredKind::Gauge, GaugeMode::NeverImport as u8),
                b'h' => (StoredKind::Histogram, 0),
                _ => return None,
            };
            let suffix = start + 1..start + line.len();
            if suffix.is_empty() {
                return None;
            }
            let index = u32::try_from(slots.len()).ok()?;
            if by_suffix
                .insert(Box::from(&text[suffix.clone()]), index)
                .is_some()
            {
                return None;
            }
            slots.push(TemplateSlot {
                suffix,
                kind,
                mode,
                cell: cells,
            });
            cells = cells.checked_add(kind.cells())?;
            start += line.len() + 1;
        }
        Some(BlockTemplate {
            text: Box::from(text),
            slots: slots.into_boxed_slice(),
            by_suffix,
            cells,
        })
    }

    /// The text the region stores for this template.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Number of stats (slots).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the template has no slots (never true for a built one).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Cells a block of this template takes.
    pub(crate) fn cells(&self) -> u32 {
        self.cells
    }

    /// The slots in cell order.
    pub(crate) fn slots(&self) -> &[TemplateSlot] {
        &self.slots
    }

    /// Slot `index`'s suffix.
    pub(crate) fn suffix(&self, slot: &TemplateSlot) -> &str {
        &self.text[slot.suffix.clone()]
    }

    /// The slot whose suffix is `suffix`.
    pub(crate) fn slot_of(&self, suffix: &[u8]) -> Option<&TemplateSlot> {
        let suffix = std::str::from_utf8(suffix).ok()?;
        let index = *self.by_suffix.get(suffix)?;
        self.slots.get(index as usize)
    }

    /// Slot `index` when it is `kind` named `suffix` (what a bundle built in the
    /// template's order asks for).
    pub(crate) fn slot_if(
        &self,
        index: usize,
        kind: StoredKind,
        suffix: &str,
    ) -> Option<&TemplateSlot> {
        self.slots
            .get(index)
            .filter(|slot| slot.kind == kind && self.suffix(slot) == suffix)
    }

    /// Whether `other` describes the same blocks.
    pub(crate) fn same_as(&self, other: &BlockTemplate) -> bool {
        self.text == other.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses_back() {
        let mut builder = BlockTemplateBuilder::default();
        builder.counter("rq_total");
        builder.gauge("cx_active", GaugeMode::NeverImport);
        builder.histogram("rq_time");
        builder.counter("circuit_breakers.default.cx_open");
        let template = builder.build().expect("valid");
        assert_eq!(template.len(), 4);
        assert_eq!(
            template.cells(),
            1 + 2 + crate::histogram::HISTOGRAM_CELLS as u32 + 1
        );
        let again = BlockTemplate::parse(template.text().as_bytes()).expect("parses");
        assert!(again.same_as(&template));
        let gauge = again.slot_of(b"cx_active").expect("slot");
        assert_eq!(
            (gauge.kind, gauge.mode, gauge.cell),
            (StoredKind::Gauge, 1, 1)
        );
        assert!(again.slot_if(2, StoredKind::Histogram, "rq_time").is_some());
        assert!(again.slot_if(2, StoredKind::Counter, "rq_time").is_none());
    }

    #[test]
    fn refuses_what_is_not_a_template() {
        for text in ["", "c\n", "xfoo\n", "cfoo", "cfoo\ncfoo\n", "cfoo\n\n"] {
            assert!(BlockTemplate::parse(text.as_bytes()).is_none(), "{text:?}");
        }
    }
}
