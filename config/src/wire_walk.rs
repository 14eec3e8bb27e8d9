//! The supported-field and unknown-field checks of one xDS resource, read straight off its
//! wire bytes with the descriptor pool, instead of decoding it a second time into a
//! `DynamicMessage` (a map per message) and walking that: for a 10,000-cluster CDS
//! response or a 10,000-route RDS one the dynamic decode cost more than the
//! translation.
//!
//! What counts as set is exactly what a `DynamicMessage` decoded from the same bytes
//! reports, so the findings and their order are those of [`crate::supported::check`] and
//! the unknown-field walk: fields in field-number order (a message read from the wire
//! may hold them in any order); a field without presence is set when its last value is
//! not the default; occurrences of one message field merge (as concatenated bytes do);
//! of a oneof only the last member written is set, holding what was written after the
//! other members; a map key written twice keeps its last entry. The resource itself was
//! decoded by prost first, so only `Any` contents can still be malformed here.
//!
//! Fields are looked up by number in per-message tables built once for the pool
//! ([`table`]), not through the descriptor API.

mod table;

use std::fmt::Write as _;

use prost_reflect::{Kind, MapKey, MessageDescriptor};

use crate::error::ConfigError;
use crate::supported;

pub(crate) use table::release as release_tables;
use table::{tables, FieldEntry, MessageTable, Role, Tables};

/// Nesting bound, as prost's decoder has (a fresh one inside each `Any`, as
/// `DynamicMessage::decode` of the contents starts one).
const RECURSION_LIMIT: u32 = 100;

/// Unknown fields reported at most (as the `DynamicMessage` walk).
const MAX_UNKNOWN: usize = 64;

/// Field occurrences, field groups and path bytes a walk starts with room for: a cluster
/// or an assignment as control planes write them fits, so a walk allocates three times
/// instead of growing each buffer step by step (a 10,000-cluster push walks 40,000
/// resources).
const STACK_CAPACITY: usize = 128;
const GROUPS_CAPACITY: usize = 64;
const PATH_CAPACITY: usize = 128;

/// Unknown fields (by number) of the message in `bytes` and of the messages inside it,
/// with the path of the message holding each; `Any` contents are not looked into.
pub(crate) fn unknown_fields(
    descriptor: &MessageDescriptor,
    bytes: &[u8],
) -> Result<Vec<(String, u32)>, ConfigError> {
    let tables = tables();
    let mut walk = Walk::new(Mode::Unknown, &tables);
    let index = walk.index_of(descriptor)?;
    walk.message(index, bytes, &mut Vec::with_capacity(STACK_CAPACITY))?;
    Ok(walk.unknown)
}

/// Fails on the first set field Baton does not implement, with its path relative to the
/// message in `bytes` ([`crate::supported::check`] without decoding).
pub(crate) fn check_supported(
    descriptor: &MessageDescriptor,
    bytes: &[u8],
) -> Result<(), ConfigError> {
    let tables = tables();
    let mut walk = Walk::new(Mode::Supported, &tables);
    let index = walk.index_of(descriptor)?;
    walk.message(index, bytes, &mut Vec::with_capacity(STACK_CAPACITY))
}

/// Both checks in one walk, when one walk can tell: `true` when the message in `bytes`
/// has no unknown field and every set field is supported, that is when
/// [`unknown_fields`] would find nothing and [`check_supported`] would pass. `false`
/// when it found something or skipped a part the unknown-field walk would read (a
/// translation-checked message, an optional config of an unknown type): the two walks
/// then run on their own, for their findings in their order. A 10,000-cluster push
/// walked every resource twice.
pub(crate) fn supported_and_no_unknown(descriptor: &MessageDescriptor, bytes: &[u8]) -> bool {
    let tables = tables();
    let mut walk = Walk::new(Mode::Supported, &tables);
    walk.paths = false;
    let Ok(index) = walk.index_of(descriptor) else {
        return false;
    };
    let passed = walk
        .message(index, bytes, &mut Vec::with_capacity(STACK_CAPACITY))
        .is_ok();
    passed && walk.covers_unknown_walk
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Collect unknown field numbers (no error for unimplemented fields).
    Unknown,
    /// Stop at the first unimplemented field.
    Supported,
}

/// One field as written.
#[derive(Clone, Copy)]
enum WireValue<'b> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'b [u8]),
    Group,
}

/// One occurrence of a field in a message's bytes.
#[derive(Clone, Copy)]
struct Occurrence<'b> {
    number: u32,
    /// Its place among the message's occurrences (oneof members: the last one wins).
    position: u32,
    value: WireValue<'b>,
}

/// The occurrences of one field number in a message (a range of the walk's stack).
struct Group {
    start: usize,
    end: usize,
    /// The field's slot in its message's table.
    field: Option<u16>,
    /// The field's oneof (its position among the message's oneofs).
    oneof: Option<u32>,
}

struct Walk<'t> {
    tables: &'t Tables,
    mode: Mode,
    path: String,
    /// Whether `path` is kept (errors name their field); off for a yes-or-no walk.
    paths: bool,
    unknown: Vec<(String, u32)>,
    groups: Vec<Group>,
    depth: u32,
    /// Supported mode: no unknown field met, and nothing the unknown-field walk reads was
    /// skipped ([`supported_and_no_unknown`]); that walk only reads messages reached
    /// without entering an `Any`'s contents, all of which this walk reads too.
    covers_unknown_walk: bool,
}

fn malformed(path: &str, what: &str) -> ConfigError {
    ConfigError::at(path, format!("failed to decode Protobuf message: {what}"))
}

fn read_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn take<'b>(buf: &mut &'b [u8], len: usize) -> Option<&'b [u8]> {
    if buf.len() < len {
        return None;
    }
    let (head, rest) = buf.split_at(len);
    *buf = rest;
    Some(head)
}

/// Skips a group's contents up to its end tag (nested groups included).
fn skip_group(buf: &mut &[u8], number: u32, depth: u32) -> Option<()> {
    if depth > RECURSION_LIMIT {
        return None;
    }
    loop {
        let key = read_varint(buf)?;
        let inner = u32::try_from(key >> 3).ok()?;
        match key & 7 {
            0 => {
                read_varint(buf)?;
            }
            1 => {
                take(buf, 8)?;
            }
            2 => {
                let len = usize::try_from(read_varint(buf)?).ok()?;
                take(buf, len)?;
            }
            3 => skip_group(buf, inner, depth + 1)?,
            4 => return (inner == number).then_some(()),
            5 => {
                take(buf, 4)?;
            }
            _ => return None,
        }
    }
}

/// Appends every field of `bytes` to `out`.
fn parse<'b>(mut buf: &'b [u8], out: &mut Vec<Occurrence<'b>>, depth: u32) -> Option<()> {
    let mut position = 0u32;
    while !buf.is_empty() {
        let key = read_varint(&mut buf)?;
        let number = u32::try_from(key >> 3).ok().filter(|&n| n != 0)?;
        let value = match key & 7 {
            0 => WireValue::Varint(read_varint(&mut buf)?),
            1 => WireValue::Fixed64(u64::from_le_bytes(take(&mut buf, 8)?.try_into().ok()?)),
            2 => {
                let len = usize::try_from(read_varint(&mut buf)?).ok()?;
                WireValue::Bytes(take(&mut buf, len)?)
            }
            3 => {
                skip_group(&mut buf, number, depth + 1)?;
                WireValue::Group
            }
            5 => WireValue::Fixed32(u32::from_le_bytes(take(&mut buf, 4)?.try_into().ok()?)),
            _ => return None,
        };
        out.push(Occurrence {
            number,
            position,
            value,
        });
        position += 1;
    }
    Some(())
}

/// Whether a singular field without presence holding `value` reads as its default.
fn is_default(kind: &Kind, value: WireValue<'_>) -> bool {
    match (kind, value) {
        (Kind::Double, WireValue::Fixed64(bits)) => f64::from_bits(bits) == 0.0,
        (Kind::Float, WireValue::Fixed32(bits)) => f32::from_bits(bits) == 0.0,
        (Kind::Int32 | Kind::Uint32 | Kind::Sint32 | Kind::Enum(_), WireValue::Varint(v)) => {
            v as u32 == 0
        }
        (_, WireValue::Varint(v)) => v == 0,
        (_, WireValue::Fixed64(v)) => v == 0,
        (_, WireValue::Fixed32(v)) => v == 0,
        (_, WireValue::Bytes(b)) => b.is_empty(),
        (_, WireValue::Group) => false,
    }
}

/// Whether `value` has the wire type a field of `kind` is written with (`packed`: a
/// length-delimited run of a repeated scalar).
fn wire_type_fits(kind: &Kind, value: WireValue<'_>, packable_list: bool) -> bool {
    match value {
        WireValue::Varint(_) => matches!(
            kind,
            Kind::Int32
                | Kind::Int64
                | Kind::Uint32
                | Kind::Uint64
                | Kind::Sint32
                | Kind::Sint64
                | Kind::Bool
                | Kind::Enum(_)
        ),
        WireValue::Fixed64(_) => matches!(kind, Kind::Double | Kind::Fixed64 | Kind::Sfixed64),
        WireValue::Fixed32(_) => matches!(kind, Kind::Float | Kind::Fixed32 | Kind::Sfixed32),
        WireValue::Bytes(_) => {
            packable_list || matches!(kind, Kind::String | Kind::Bytes | Kind::Message(_))
        }
        WireValue::Group => false,
    }
}

/// prost's name of the wire type `value` was written with.
fn wire_type_name(value: WireValue<'_>) -> &'static str {
    match value {
        WireValue::Varint(_) => "Varint",
        WireValue::Fixed64(_) => "SixtyFourBit",
        WireValue::Bytes(_) => "LengthDelimited",
        WireValue::Group => "StartGroup",
        WireValue::Fixed32(_) => "ThirtyTwoBit",
    }
}

/// prost's name of the wire type a field of `kind` is written with.
fn expected_wire_type(kind: &Kind) -> &'static str {
    match kind {
        Kind::Double | Kind::Fixed64 | Kind::Sfixed64 => "SixtyFourBit",
        Kind::Float | Kind::Fixed32 | Kind::Sfixed32 => "ThirtyTwoBit",
        Kind::String | Kind::Bytes | Kind::Message(_) => "LengthDelimited",
        _ => "Varint",
    }
}

/// A map key as read from an entry's bytes (its default when absent).
fn map_key(kind: &Kind, entry: &[u8]) -> Option<MapKey> {
    let mut fields = Vec::new();
    parse(entry, &mut fields, 0)?;
    let last = fields.iter().rev().find(|f| f.number == 1).map(|f| f.value);
    Some(match (kind, last) {
        (Kind::String, Some(WireValue::Bytes(b))) => {
            MapKey::String(std::str::from_utf8(b).ok()?.to_string())
        }
        (Kind::Bool, Some(WireValue::Varint(v))) => MapKey::Bool(v != 0),
        (Kind::Int32, Some(WireValue::Varint(v))) => MapKey::I32(v as i32),
        (Kind::Int64, Some(WireValue::Varint(v))) => MapKey::I64(v as i64),
        (Kind::Uint32, Some(WireValue::Varint(v))) => MapKey::U32(v as u32),
        (Kind::Uint64, Some(WireValue::Varint(v))) => MapKey::U64(v),
        (Kind::Sint32, Some(WireValue::Varint(v))) => {
            let v = v as u32;
            MapKey::I32(((v >> 1) as i32) ^ -((v & 1) as i32))
        }
        (Kind::Sint64, Some(WireValue::Varint(v))) => {
            MapKey::I64(((v >> 1) as i64) ^ -((v & 1) as i64))
        }
        (Kind::Fixed32 | Kind::Sfixed32, Some(WireValue::Fixed32(v))) => match kind {
            Kind::Fixed32 => MapKey::U32(v),
            _ => MapKey::I32(v as i32),
        },
        (Kind::Fixed64 | Kind::Sfixed64, Some(WireValue::Fixed64(v))) => match kind {
            Kind::Fixed64 => MapKey::U64(v),
            _ => MapKey::I64(v as i64),
        },
        (kind, None) => MapKey::default_value(kind),
        _ => return None,
    })
}

/// The bytes of field `number` of the message in `bytes` (its occurrences merged).
fn field_bytes(bytes: &[u8], number: u32) -> Option<std::borrow::Cow<'_, [u8]>> {
    let mut fields = Vec::new();
    parse(bytes, &mut fields, 0)?;
    let mut parts = fields.iter().filter_map(|f| match f.value {
        WireValue::Bytes(b) if f.number == number => Some(b),
        _ => None,
    });
    let first = parts.next();
    match (first, parts.next()) {
        (None, _) => Some(std::borrow::Cow::Borrowed(&[])),
        (Some(only), None) => Some(std::borrow::Cow::Borrowed(only)),
        (Some(a), Some(b)) => {
            let mut merged = [a, b].concat();
            for part in parts {
                merged.extend_from_slice(part);
            }
            Some(std::borrow::Cow::Owned(merged))
        }
    }
}

/// The last `type_url` written in an `Any`'s bytes.
/// Field 1 of a message as a string (an Any's or a TypedStruct's `type_url`).
pub(crate) fn string_field_1(bytes: &[u8]) -> Option<String> {
    any_type_url(bytes)
}

fn any_type_url(bytes: &[u8]) -> Option<String> {
    let mut fields = Vec::new();
    parse(bytes, &mut fields, 0)?;
    let url = fields.iter().rev().find_map(|f| match f.value {
        WireValue::Bytes(b) if f.number == 1 => Some(b),
        _ => None,
    });
    match url {
        Some(b) => std::str::from_utf8(b).ok().map(str::to_string),
        None => Some(String::new()),
    }
}

impl<'t> Walk<'t> {
    fn new(mode: Mode, tables: &'t Tables) -> Self {
        Self {
            tables,
            mode,
            path: String::with_capacity(PATH_CAPACITY),
            paths: true,
            unknown: Vec::new(),
            groups: Vec::with_capacity(GROUPS_CAPACITY),
            depth: 0,
            covers_unknown_walk: true,
        }
    }

    /// The table index of the message a walk starts at.
    fn index_of(&self, descriptor: &MessageDescriptor) -> Result<u32, ConfigError> {
        self.tables.index_of(descriptor.full_name()).ok_or_else(|| {
            ConfigError::at("", format!("unknown type '{}'", descriptor.full_name()))
        })
    }

    fn message<'b>(
        &mut self,
        index: u32,
        bytes: &'b [u8],
        stack: &mut Vec<Occurrence<'b>>,
    ) -> Result<(), ConfigError> {
        let table = self.tables.get(index);
        if self.mode == Mode::Supported {
            match table.role {
                Role::Any => return self.any(bytes),
                Role::CheckedByTranslation => {
                    self.covers_unknown_walk = false;
                    return Ok(());
                }
                Role::Plain | Role::SkipsUnknownConfig { .. } => {}
            }
        }
        self.depth += 1;
        if self.depth > RECURSION_LIMIT {
            return Err(malformed(&self.path, "recursion limit reached"));
        }
        let start = stack.len();
        parse(bytes, stack, self.depth)
            .ok_or_else(|| malformed(&self.path, "invalid wire format"))?;
        let end = stack.len();
        let occurrences = &mut stack[start..end];
        if !occurrences.is_sorted_by_key(|o| o.number) {
            occurrences.sort_by_key(|o| o.number);
        }
        let first_group = self.groups.len();
        let mut index = start;
        while index < end {
            let number = stack[index].number;
            let mut group_end = index + 1;
            while group_end < end && stack[group_end].number == number {
                group_end += 1;
            }
            let field = table.slot(number);
            let oneof = field.and_then(|slot| table.fields[usize::from(slot)].oneof);
            self.groups.push(Group {
                start: index,
                end: group_end,
                field,
                oneof,
            });
            index = group_end;
        }
        let result = self.fields(table, first_group, stack);
        self.groups.truncate(first_group);
        stack.truncate(start);
        self.depth -= 1;
        result
    }

    /// The fields of one message: groups `first_group..` of the walk.
    fn fields<'b>(
        &mut self,
        table: &'t MessageTable,
        first_group: usize,
        stack: &mut Vec<Occurrence<'b>>,
    ) -> Result<(), ConfigError> {
        let last_group = self.groups.len();
        if self.mode == Mode::Unknown {
            for group in &self.groups[first_group..last_group] {
                if group.field.is_none() {
                    for occurrence in &stack[group.start..group.end] {
                        if self.unknown.len() < MAX_UNKNOWN {
                            self.unknown.push((self.path.clone(), occurrence.number));
                        }
                    }
                }
            }
        }
        let optional =
            self.mode == Mode::Supported && self.skips_unknown_config(table, first_group, stack);
        for g in first_group..last_group {
            if self.mode == Mode::Unknown && self.unknown.len() >= MAX_UNKNOWN {
                return Ok(());
            }
            let Some(slot) = self.groups[g].field else {
                self.covers_unknown_walk = false;
                continue;
            };
            let field = &table.fields[usize::from(slot)];
            let Some((from, to)) = self.live_range(first_group, last_group, g, stack) else {
                continue;
            };
            if !self.is_set(field, &stack[from..to])? {
                continue;
            }
            let parent = self.path.len();
            if self.paths {
                if !self.path.is_empty() {
                    self.path.push('.');
                }
                self.path.push_str(&field.name);
            }
            if self.mode == Mode::Supported && !field.allowed {
                return Err(ConfigError::unsupported(self.path.clone()));
            }
            if optional && self.is_unknown_any(field, &stack[from..to]) {
                self.covers_unknown_walk = false;
                self.path.truncate(parent);
                continue;
            }
            self.value(field, from, to, stack)?;
            self.path.truncate(parent);
        }
        Ok(())
    }

    /// The occurrences of group `g` that a decoded message keeps (stack range), or None
    /// when another member of its oneof was written after it.
    fn live_range(
        &self,
        first_group: usize,
        last_group: usize,
        g: usize,
        stack: &[Occurrence<'_>],
    ) -> Option<(usize, usize)> {
        let group = &self.groups[g];
        let Some(oneof) = group.oneof else {
            return Some((group.start, group.end));
        };
        let last_position = |grp: &Group| {
            stack[grp.start..grp.end]
                .iter()
                .map(|o| o.position)
                .max()
                .unwrap_or(0)
        };
        let mut others_last: Option<u32> = None;
        for (other_index, other) in self.groups[first_group..last_group].iter().enumerate() {
            if other_index + first_group != g && other.oneof == Some(oneof) {
                let last = last_position(other);
                others_last = Some(others_last.map_or(last, |o| o.max(last)));
            }
        }
        let Some(others_last) = others_last else {
            return Some((group.start, group.end));
        };
        if last_position(group) < others_last {
            return None;
        }
        // Only what was written after the last other member (the group is in position
        // order: a stable sort by number keeps it).
        let from = (group.start..group.end)
            .find(|&i| stack[i].position > others_last)
            .unwrap_or(group.end);
        Some((from, group.end))
    }

    /// Whether a decoded message reports `field` (written as `occurrences`) as set.
    fn is_set(
        &self,
        field: &FieldEntry,
        occurrences: &[Occurrence<'_>],
    ) -> Result<bool, ConfigError> {
        let kind = &field.kind;
        let list = field.list;
        // Repeated scalars other than strings and bytes may be written packed.
        let packable = field.packable;
        for o in occurrences {
            let fits = if field.map || matches!(kind, Kind::Message(_)) {
                matches!(o.value, WireValue::Bytes(_))
            } else {
                wire_type_fits(kind, o.value, packable)
            };
            if !fits {
                let what = format!(
                    "invalid wire type: {} (expected {})",
                    wire_type_name(o.value),
                    expected_wire_type(kind)
                );
                return Err(malformed(&self.path, &what));
            }
        }
        if list {
            // A packed run of no elements adds none.
            return Ok(occurrences.iter().any(|o| match o.value {
                WireValue::Bytes(b) => !b.is_empty() || !packable,
                _ => true,
            }));
        }
        if field.map || field.presence {
            return Ok(!occurrences.is_empty());
        }
        Ok(occurrences
            .last()
            .is_some_and(|o| !is_default(kind, o.value)))
    }

    /// An optional `http_filters[]` entry, or a `FilterConfig` that is optional or
    /// disabled ([`crate::supported`]'s rule).
    fn skips_unknown_config(
        &self,
        table: &'t MessageTable,
        first_group: usize,
        stack: &[Occurrence<'_>],
    ) -> bool {
        let Role::SkipsUnknownConfig { flags } = table.role else {
            return false;
        };
        flags.iter().flatten().any(|&number| {
            self.groups[first_group..].iter().any(|g| {
                stack[g.start].number == number
                    && matches!(stack[g.end - 1].value, WireValue::Varint(v) if v != 0)
            })
        })
    }

    /// A singular `Any` field whose type the pool does not know.
    fn is_unknown_any(&self, field: &FieldEntry, occurrences: &[Occurrence<'_>]) -> bool {
        if !field.singular_any {
            return false;
        }
        let url = occurrences.iter().rev().find_map(|o| match o.value {
            WireValue::Bytes(b) => any_type_url(b).filter(|u| !u.is_empty()),
            _ => None,
        });
        let url = url.unwrap_or_default();
        let name = url.rsplit('/').next().unwrap_or_default();
        self.tables.index_of(name).is_none()
    }

    /// Walks into a set field's messages (its live occurrences: `stack[from..to]`; walking
    /// them only pushes past the message's own occurrences).
    fn value<'b>(
        &mut self,
        field: &FieldEntry,
        from: usize,
        to: usize,
        stack: &mut Vec<Occurrence<'b>>,
    ) -> Result<(), ConfigError> {
        let Some(message) = field.message else {
            return Ok(());
        };
        let bytes_at = |stack: &[Occurrence<'b>], i: usize| match stack[i].value {
            WireValue::Bytes(b) => b,
            _ => &[],
        };
        if field.map {
            let Some(key_kind) = &field.map_key else {
                return Ok(());
            };
            let entries: Vec<&'b [u8]> = (from..to).map(|i| bytes_at(stack, i)).collect();
            return self.map(key_kind, message, &entries);
        }
        if field.list {
            let parent = self.path.len();
            for (index, i) in (from..to).enumerate() {
                if self.paths {
                    let _ = write!(self.path, "[{index}]");
                }
                let part = bytes_at(stack, i);
                self.message(message, part, stack)?;
                self.path.truncate(parent);
            }
            return Ok(());
        }
        if to - from == 1 {
            let part = bytes_at(stack, from);
            return self.message(message, part, stack);
        }
        // Occurrences of one message field merge, as their concatenation does.
        let merged: Vec<u8> = (from..to)
            .flat_map(|i| bytes_at(stack, i))
            .copied()
            .collect();
        self.message(message, &merged, &mut Vec::new())
    }

    /// A map's entries whose values are messages (a key written twice: its last entry).
    fn map(
        &mut self,
        key_kind: &Kind,
        value_message: u32,
        occurrences: &[&[u8]],
    ) -> Result<(), ConfigError> {
        let mut entries: Vec<(MapKey, &[u8])> = Vec::with_capacity(occurrences.len());
        for &bytes in occurrences {
            let key = map_key(key_kind, bytes)
                .ok_or_else(|| malformed(&self.path, "invalid map entry"))?;
            entries.retain(|(k, _)| *k != key);
            entries.push((key, bytes));
        }
        let parent = self.path.len();
        for (key, bytes) in entries {
            let _ = match (self.mode, &key) {
                _ if !self.paths => Ok(()),
                (Mode::Supported, MapKey::String(s)) => write!(self.path, "[\"{s}\"]"),
                (Mode::Supported, other) => write!(self.path, "[\"{other:?}\"]"),
                (Mode::Unknown, key) => write!(self.path, "[{key:?}]"),
            };
            let value =
                field_bytes(bytes, 2).ok_or_else(|| malformed(&self.path, "invalid map entry"))?;
            self.message(value_message, &value, &mut Vec::new())?;
            self.path.truncate(parent);
        }
        Ok(())
    }

    /// An `Any`: its contents are walked with their own type, at the `Any`'s path.
    fn any(&mut self, bytes: &[u8]) -> Result<(), ConfigError> {
        let type_url = any_type_url(bytes).ok_or_else(|| malformed(&self.path, "invalid Any"))?;
        let name = type_url.rsplit('/').next().unwrap_or_default();
        let Some(descriptor) = self.tables.index_of(name) else {
            let value = field_bytes(bytes, 2).unwrap_or_default();
            return Err(ConfigError::at(
                supported::join(&self.path, "@type"),
                crate::typed_struct::unknown_type_message(&type_url, &value),
            ));
        };
        // The last `value` written (a bytes field: no merging).
        let mut fields = Vec::new();
        parse(bytes, &mut fields, 0).ok_or_else(|| malformed(&self.path, "invalid Any"))?;
        // The unknown-field walk reads the `Any` itself (not its contents).
        if fields.iter().any(|f| f.number > 2) {
            self.covers_unknown_walk = false;
        }
        let value = fields
            .iter()
            .rev()
            .find_map(|f| match f.value {
                WireValue::Bytes(b) if f.number == 2 => Some(b),
                _ => None,
            })
            .unwrap_or_default();
        // The contents decode on their own: a fresh nesting bound, and decode errors
        // worded as the DynamicMessage walk worded them.
        let depth = std::mem::replace(&mut self.depth, 0);
        let result = self
            .message(descriptor, value, &mut Vec::new())
            .map_err(|e| {
                if e.message.starts_with("failed to decode Protobuf message") {
                    ConfigError::at(
                        self.path.as_str(),
                        format!("cannot decode '{type_url}': {}", e.message),
                    )
                } else {
                    e
                }
            });
        self.depth = depth;
        result
    }
}

#[cfg(test)]
mod tests;
