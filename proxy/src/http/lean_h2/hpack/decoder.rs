//! The HPACK decoder (RFC 7541 §6): request header blocks to a [`FieldList`], keeping the
//! dynamic table in step with the client's encoder.

use bytes::{Bytes, BytesMut};

use super::huffman;
use super::table::{DynamicTable, ENTRY_OVERHEAD};
use super::HpackError;
use crate::http::lean_h2::frame::{Field, FieldList};

/// Fields a block is expected to hold at most before the list grows (h2load's requests
/// have 6, browsers' 10-20).
const TYPICAL_FIELDS: usize = 12;

/// Decodes the header blocks of one connection, in order.
#[derive(Clone, Debug)]
pub struct Decoder {
    table: DynamicTable,
    /// The SETTINGS_HEADER_TABLE_SIZE we announced: a size update above it is an error.
    limit: usize,
    /// Our limit went below the table's size: the next block must start with a size
    /// update (RFC 7541 §4.2).
    update_required: bool,
    /// Huffman output of the current block: one buffer the decoded strings are split from.
    scratch: BytesMut,
}

impl Decoder {
    /// A decoder for a connection whose SETTINGS_HEADER_TABLE_SIZE is `limit` (4096 unless
    /// we announce otherwise).
    pub fn new(limit: usize) -> Self {
        Self {
            table: DynamicTable::new(limit),
            limit,
            update_required: false,
            scratch: BytesMut::new(),
        }
    }

    /// Our SETTINGS_HEADER_TABLE_SIZE changed (and was acknowledged).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
        if self.table.max_size() > limit {
            self.update_required = true;
            self.table.set_max_size(limit);
        }
    }

    /// The dynamic table's current size in octets (RFC 7541 §4.1).
    pub fn table_size(&self) -> usize {
        self.table.size()
    }

    /// Decodes one whole header block into `list`. Fields past `max_list_size` (counted as
    /// RFC 9113 §6.5.2 does) are decoded, so that the table stays in step, but not stored;
    /// `list.list_size` keeps counting, so the caller sees `list_size > max_list_size` and
    /// answers it. Any malformed block is an error (a connection COMPRESSION_ERROR).
    pub fn decode(
        &mut self,
        block: &Bytes,
        max_list_size: usize,
        list: &mut FieldList,
    ) -> Result<(), HpackError> {
        let mut at = 0;
        let mut fields_seen = false;
        if list.fields.capacity() == 0 {
            list.fields.reserve(TYPICAL_FIELDS);
        }
        while at < block.len() {
            let first = block[at];
            if self.update_required && first & 0xe0 != 0x20 {
                return Err(HpackError::SizeUpdateMissing);
            }
            let (name, value) = if first & 0x80 != 0 {
                let index = integer(block, &mut at, 7)?;
                self.table.get(index).ok_or(HpackError::BadIndex)?
            } else if first & 0x40 != 0 {
                let index = integer(block, &mut at, 6)?;
                let (name, value) = self.literal(block, &mut at, index)?;
                let (stored_name, stored_value) = owned_entry(&name, &value, index == 0);
                self.table.insert(stored_name, stored_value);
                (name, value)
            } else if first & 0x20 != 0 {
                if fields_seen {
                    return Err(HpackError::MisplacedSizeUpdate);
                }
                let size = integer(block, &mut at, 5)?;
                if size > self.limit {
                    return Err(HpackError::SizeUpdateTooLarge);
                }
                self.table.set_max_size(size);
                self.update_required = false;
                continue;
            } else {
                // Literal without indexing (0000) or never indexed (0001): same layout.
                let index = integer(block, &mut at, 4)?;
                self.literal(block, &mut at, index)?
            };
            fields_seen = true;
            let size = name.len() + value.len() + ENTRY_OVERHEAD;
            list.list_size = list.list_size.saturating_add(size);
            if list.list_size <= max_list_size {
                list.fields.push(Field { name, value });
            }
        }
        // Not kept between blocks: an idle connection holds no decode buffer.
        self.scratch = BytesMut::new();
        Ok(())
    }

    /// A literal's name (indexed when `index` > 0) and value.
    fn literal(
        &mut self,
        block: &Bytes,
        at: &mut usize,
        index: usize,
    ) -> Result<(Bytes, Bytes), HpackError> {
        let name = if index == 0 {
            self.string(block, at)?
        } else {
            self.table.get(index).ok_or(HpackError::BadIndex)?.0
        };
        let value = self.string(block, at)?;
        Ok((name, value))
    }

    /// A string literal (RFC 7541 §5.2): a slice of the block, or Huffman-decoded into the
    /// block's scratch buffer.
    fn string(&mut self, block: &Bytes, at: &mut usize) -> Result<Bytes, HpackError> {
        let huffman = block.get(*at).ok_or(HpackError::Truncated)? & 0x80 != 0;
        let len = integer(block, at, 7)?;
        if len > super::MAX_STRING_LEN {
            return Err(HpackError::StringTooLong);
        }
        let end = at.checked_add(len).ok_or(HpackError::Truncated)?;
        if end > block.len() {
            return Err(HpackError::Truncated);
        }
        let raw = &block[*at..end];
        let out = if huffman {
            if self.scratch.capacity() < raw.len() * 8 / 5 + 1 {
                // One buffer for the rest of the block's strings, not one per string.
                self.scratch = BytesMut::with_capacity((block.len() - *at) * 8 / 5 + 1);
            }
            huffman::decode(raw, &mut self.scratch).map_err(|_| HpackError::Huffman)?;
            self.scratch.split().freeze()
        } else {
            block.slice(*at..end)
        };
        *at = end;
        Ok(out)
    }
}

/// A table entry's own copy of a field: the table outlives the block, which may pin a
/// read buffer. Name (when literal) and value share one allocation, already in `bytes`'
/// shared form, so that every later use of the entry is a reference count increment.
fn owned_entry(name: &Bytes, value: &Bytes, copy_name: bool) -> (Bytes, Bytes) {
    let name_len = if copy_name { name.len() } else { 0 };
    let mut buf = BytesMut::with_capacity(name_len + value.len());
    if copy_name {
        buf.extend_from_slice(name);
    }
    buf.extend_from_slice(value);
    let head = buf.split_to(name_len).freeze();
    let stored_name = if copy_name { head } else { name.clone() };
    (stored_name, buf.freeze())
}

/// The largest integer a block may carry: table sizes and string lengths above it are
/// nonsense, and a bound keeps the arithmetic from overflowing.
const INTEGER_MAX: usize = u32::MAX as usize;

/// An integer with an N-bit prefix (RFC 7541 §5.1), starting at `block[*at]`.
pub(crate) fn integer(block: &[u8], at: &mut usize, prefix: u8) -> Result<usize, HpackError> {
    let mask = (1u8 << prefix) - 1;
    let first = *block.get(*at).ok_or(HpackError::Truncated)?;
    *at += 1;
    let mut value = usize::from(first & mask);
    if value < usize::from(mask) {
        return Ok(value);
    }
    let mut shift = 0u32;
    loop {
        let byte = *block.get(*at).ok_or(HpackError::Truncated)?;
        *at += 1;
        if shift > 28 {
            return Err(HpackError::IntegerOverflow);
        }
        value += usize::from(byte & 0x7f) << shift;
        if value > INTEGER_MAX {
            return Err(HpackError::IntegerOverflow);
        }
        if byte & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
    }
}
