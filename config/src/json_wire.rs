//! The proto3 JSON mapping of a bootstrap straight into protobuf wire bytes, for the
//! shapes configurations are made of (messages, lists, string-keyed maps, strings,
//! integers, booleans, enum names, durations, integer/bool/string wrappers, `Any` with
//! `@type`).
//!
//! prost-reflect's mapping builds a `DynamicMessage` (a map per message, a `Value` per
//! field) that is then encoded again for prost: at 10,000 clusters and routes that cost
//! more than everything else in loading. This encoder reads the JSON value once and writes
//! what prost-reflect would have encoded: set fields in field-number order, defaults of
//! fields without presence left out, packed repeated numbers, `Any` contents as their own
//! message's bytes.
//!
//! It is a fast path only: anything it does not map exactly as prost-reflect does (nulls,
//! numbers written as strings or floats, floating-point and bytes fields, unknown or
//! duplicate fields, two members of a oneof, the other well-known types, nesting past
//! [`DEPTH_LIMIT`]) makes it give up, and the caller maps the document the
//! prost-reflect way, which accepts or rejects it with the error it always gave.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use prost::encoding::{self, WireType};

use crate::json_tree::JsonView;
use crate::static_descriptors::{Kind, MessageRef};
use crate::supported;

/// Nesting given up on: prost's decoder stops at 100, and a configuration this deep is
/// better answered by the reference mapping's error.
pub(crate) const DEPTH_LIMIT: u32 = 64;

/// A shape left to prost-reflect.
pub(crate) struct GiveUp;

type Mapped = Result<(), GiveUp>;

/// `json` (a `serde_json::Value` or the compact tree) as the wire bytes of `descriptor`,
/// or `None` when some shape in it is one this encoder leaves to prost-reflect (see the
/// module comment).
pub(crate) fn encode<J: JsonView>(descriptor: MessageRef, json: &J) -> Option<Vec<u8>> {
    encode_with(descriptor, json, false)
}

/// [`encode`], also giving up when the bytes would fail the supported-field check
/// ([`crate::wire_walk::check_supported`]): a field is set in the decoded message exactly
/// when this encoder writes bytes for it (it writes no default of a field without
/// presence, each field once, one member of a oneof), so the allowlist is read as each
/// field is written instead of walking the bytes again (a 10,000-cluster bootstrap's walk
/// cost more than the encoding). Messages checked by translation are not looked into, as
/// the walk does not; an `Any` of a type the pool lacks, which the walk refuses, this
/// encoder gives up on anyway.
pub(crate) fn encode_supported<J: JsonView>(descriptor: MessageRef, json: &J) -> Option<Vec<u8>> {
    encode_with(descriptor, json, true)
}

fn encode_with<J: JsonView>(
    descriptor: MessageRef,
    json: &J,
    check_supported: bool,
) -> Option<Vec<u8>> {
    // Only an object maps to a message.
    let _object = json.members()?;
    let mut encoder = Encoder {
        buf: Vec::new(),
        fields: Vec::new(),
        table: FieldTable::default(),
        depth: 0,
    };
    let checking = check_supported && checks_inside(descriptor);
    encoder.message(descriptor, json, false, checking).ok()?;
    Some(encoder.buf)
}

/// One JSON member of the message being written, with its field.
struct Member<'j, J> {
    number: u32,
    /// The field's place in [`Encoder::infos`].
    info: u32,
    value: &'j J,
}

impl<J> Clone for Member<'_, J> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<J> Copy for Member<'_, J> {}

/// What the encoder reads of a field's descriptor, read once per walk and field.
pub(crate) struct FieldInfo {
    pub(crate) number: u32,
    pub(crate) kind: Kind,
    pub(crate) map: bool,
    pub(crate) list: bool,
    pub(crate) packed: bool,
    pub(crate) presence: bool,
    /// Its oneof (unique among all messages' oneofs, see [`FieldInfo::of`]), 0 for none.
    pub(crate) oneof: usize,
    /// Whether the supported-field check lets it be set in its message.
    pub(crate) allowed: bool,
    /// Whether that check looks into its message (a map's value message).
    pub(crate) checks_inside: bool,
}

impl FieldInfo {
    /// `field` of `parent`; `None` for a group (left to prost-reflect).
    pub(crate) fn of(field: &baton_proto::wire_tables::Field, parent: MessageRef) -> Option<Self> {
        if field.group {
            return None;
        }
        let kind = Kind::of(field);
        let inner = match kind {
            Kind::Message(entry) if field.map => match entry.map_entry_kinds()? {
                (_, Kind::Message(value)) => Some(value),
                _ => None,
            },
            Kind::Message(message) => Some(message),
            _ => None,
        };
        Some(Self {
            allowed: supported::allowed_fields(parent.full_name())
                .is_none_or(|allowed| allowed.contains(&field.name())),
            checks_inside: inner.is_none_or(checks_inside),
            number: field.number,
            kind,
            map: field.map,
            list: field.list,
            packed: field.packed,
            presence: field.presence,
            // The message's place above the oneof's place in it (below 2^16).
            oneof: if field.oneof == 0 {
                0
            } else {
                (parent.id() + 1) << 16 | field.oneof
            },
        })
    }
}

/// A message ([`MessageRef::id`]) and a JSON key in it.
type LookupKey<'j> = (usize, &'j str);

/// Fields found by key so far (`None`: no such field, or a group), as places in
/// `infos`: a bootstrap names the same few hundred fields over and over.
#[derive(Default)]
pub(crate) struct FieldTable<'j> {
    lookups: HashMap<LookupKey<'j>, Option<u32>, BuildHasherDefault<KeyHasher>>,
    /// The fields found, by place.
    pub(crate) infos: Vec<FieldInfo>,
}

impl<'j> FieldTable<'j> {
    /// The place of the field `key` names (JSON name, else proto name) in the message
    /// `descriptor`, looked up once per pair.
    pub(crate) fn find(&mut self, key: &'j str, descriptor: MessageRef) -> Option<u32> {
        let message = descriptor.id();
        if let Some(&found) = self.lookups.get(&(message, key)) {
            return found;
        }
        let found = descriptor
            .field_by_key(key)
            .and_then(|field| FieldInfo::of(field, descriptor))
            .map(|info| {
                self.infos.push(info);
                (self.infos.len() - 1) as u32
            });
        self.lookups.insert((message, key), found);
        found
    }
}

/// FxHash's step over the key's words: the lookups hash short keys a few hundred
/// thousand times, where SipHash cost more than the rest of the lookup.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
        // The tail (most keys are shorter than a word) as one word, not a step per byte.
        let tail = chunks.remainder();
        if !tail.is_empty() {
            let mut word = [0; 8];
            word[..tail.len()].copy_from_slice(tail);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }
}

struct Encoder<'j, J> {
    buf: Vec<u8>,
    /// The members of every message being written, innermost last (one buffer for the
    /// whole walk, not a vector per message).
    fields: Vec<Member<'j, J>>,
    /// Fields found by key so far.
    table: FieldTable<'j>,
    depth: u32,
}

impl<'j, J: JsonView> Encoder<'j, J> {
    /// The fields of a plain message (no well-known type) in field-number order;
    /// `in_any`: the object is an `Any`'s, whose `@type` member is not a field;
    /// `checking`: a field the supported-field check refuses gives up when written.
    fn message(
        &mut self,
        descriptor: MessageRef,
        object: &'j J,
        in_any: bool,
        checking: bool,
    ) -> Mapped {
        self.depth += 1;
        if self.depth > DEPTH_LIMIT {
            return Err(GiveUp);
        }
        let start = self.fields.len();
        let result = self
            .collect(descriptor, object, in_any, start)
            .and_then(|()| {
                for i in start..self.fields.len() {
                    let Member { info, value, .. } = self.fields[i];
                    let written = self.buf.len();
                    self.field(info, value, checking)?;
                    if checking
                        && !self.table.infos[info as usize].allowed
                        && self.buf.len() != written
                    {
                        return Err(GiveUp);
                    }
                }
                Ok(())
            });
        self.fields.truncate(start);
        self.depth -= 1;
        result
    }

    /// Pushes `object`'s members with their fields, sorted by number; gives up on a
    /// key that names no field, a field named twice (JSON and proto name), a null, or
    /// two members of one oneof.
    fn collect(
        &mut self,
        descriptor: MessageRef,
        object: &'j J,
        in_any: bool,
        start: usize,
    ) -> Mapped {
        for (key, value) in object.members().ok_or(GiveUp)? {
            if in_any && key == "@type" {
                continue;
            }
            if value.is_null() {
                return Err(GiveUp);
            }
            let info = self.table.find(key, descriptor).ok_or(GiveUp)?;
            self.fields.push(Member {
                number: self.table.infos[info as usize].number,
                info,
                value,
            });
        }
        let members = &mut self.fields[start..];
        members.sort_unstable_by_key(|m| m.number);
        for pair in members.windows(2) {
            if pair[0].number == pair[1].number {
                return Err(GiveUp);
            }
        }
        let infos = &self.table.infos;
        let oneofs = members
            .iter()
            .map(|m| infos[m.info as usize].oneof)
            .filter(|&oneof| oneof != 0);
        for (i, oneof) in oneofs.clone().enumerate() {
            if oneofs.clone().skip(i + 1).any(|other| other == oneof) {
                return Err(GiveUp);
            }
        }
        Ok(())
    }

    /// `checking`: whether the message holding the field is checked.
    fn field(&mut self, info: u32, value: &'j J, checking: bool) -> Mapped {
        let info = &self.table.infos[info as usize];
        let (number, kind, packed, presence) = (info.number, info.kind, info.packed, info.presence);
        let checking = checking && info.checks_inside;
        if info.map {
            return self.map(number, &kind, value, checking);
        }
        if info.list {
            let items = value.as_array().ok_or(GiveUp)?;
            if items.iter().any(J::is_null) {
                return Err(GiveUp);
            }
            if packed && !items.is_empty() {
                return self.packed(number, &kind, items);
            }
            for item in items {
                self.single(number, &kind, item, true, checking)?;
            }
            return Ok(());
        }
        self.single(number, &kind, value, presence, checking)
    }

    /// A map field: one entry message per key, key and value written (decoding either
    /// when absent gives the same default). Only string keys.
    fn map(&mut self, number: u32, kind: &Kind, value: &'j J, checking: bool) -> Mapped {
        let (Kind::Message(entry), Some(object)) = (kind, value.members()) else {
            return Err(GiveUp);
        };
        let (Kind::String, value_kind) = entry.map_entry_kinds().ok_or(GiveUp)? else {
            return Err(GiveUp);
        };
        for (key, item) in object {
            if item.is_null() {
                return Err(GiveUp);
            }
            let start = self.open(number);
            string(1, key, &mut self.buf);
            self.single(2, &value_kind, item, true, checking)?;
            self.close(start);
        }
        Ok(())
    }

    /// Repeated varint numbers in one length-delimited field, as prost-reflect encodes
    /// a packed field.
    fn packed(&mut self, number: u32, kind: &Kind, items: &'j [J]) -> Mapped {
        let start = self.open(number);
        for item in items {
            let raw = varint_of(kind, item)?;
            varint(raw, &mut self.buf);
        }
        self.close(start);
        Ok(())
    }

    /// One value of `kind`; a default without `presence` is left out. `checking`: a
    /// message value is checked.
    fn single(
        &mut self,
        number: u32,
        kind: &Kind,
        value: &'j J,
        presence: bool,
        checking: bool,
    ) -> Mapped {
        match kind {
            Kind::String => {
                let text = value.as_str().ok_or(GiveUp)?;
                if presence || !text.is_empty() {
                    string(number, text, &mut self.buf);
                }
            }
            Kind::Message(descriptor) => {
                self.message_field(number, *descriptor, value, checking)?
            }
            kind => {
                let raw = varint_of(kind, value)?;
                if presence || raw != 0 {
                    key(number, WireType::Varint, &mut self.buf);
                    varint(raw, &mut self.buf);
                }
            }
        }
        Ok(())
    }

    /// A message-typed field (always present once written).
    fn message_field(
        &mut self,
        number: u32,
        descriptor: MessageRef,
        value: &'j J,
        checking: bool,
    ) -> Mapped {
        let name = descriptor.full_name();
        if let Some(wrapped) = wrapper_kind(name) {
            let start = self.open(number);
            self.single(1, &wrapped, value, false, false)?;
            self.close(start);
            return Ok(());
        }
        let is_object = value.members().is_some();
        match (name, value.as_str()) {
            ("google.protobuf.Duration", Some(text)) => {
                let (seconds, nanos) = duration(text)?;
                let start = self.open(number);
                if seconds != 0 {
                    encoding::int64::encode(1, &seconds, &mut self.buf);
                }
                if nanos != 0 {
                    encoding::int32::encode(2, &nanos, &mut self.buf);
                }
                self.close(start);
                Ok(())
            }
            ("google.protobuf.Any", _) if is_object => self.any(number, value, checking),
            (name, _) if is_object && !name.starts_with("google.protobuf.") => {
                let start = self.open(number);
                self.message(descriptor, value, false, checking)?;
                self.close(start);
                Ok(())
            }
            _ => Err(GiveUp),
        }
    }

    /// An `Any`: its `@type` as given, the other members as the fields of that type,
    /// which must not be a well-known type (those map through a `value` member).
    /// `checking`: the contents are checked unless their type is checked by translation.
    fn any(&mut self, number: u32, object: &'j J, checking: bool) -> Mapped {
        let type_url = object.get("@type").and_then(J::as_str).ok_or(GiveUp)?;
        let (_, message_name) = type_url.rsplit_once('/').ok_or(GiveUp)?;
        if message_name.starts_with("google.protobuf.") {
            return Err(GiveUp);
        }
        let descriptor = MessageRef::by_name(message_name).ok_or(GiveUp)?;
        let start = self.open(number);
        string(1, type_url, &mut self.buf);
        let contents = self.open(2);
        let checking = checking && checks_inside(descriptor);
        self.message(descriptor, object, true, checking)?;
        if self.buf.len() == contents + 1 {
            // Empty contents: `value` holds its default and is not written (key and
            // length byte dropped).
            self.buf.truncate(contents - 1);
        } else {
            self.close(contents);
        }
        self.close(start);
        Ok(())
    }

    fn open(&mut self, number: u32) -> usize {
        open(number, &mut self.buf)
    }

    fn close(&mut self, at: usize) {
        close(at, &mut self.buf);
    }
}

/// Writes the key of length-delimited field `number` and one byte of room for its
/// length; returns where that byte is.
#[inline]
pub(crate) fn open(number: u32, buf: &mut Vec<u8>) -> usize {
    key(number, WireType::LengthDelimited, buf);
    buf.push(0);
    buf.len() - 1
}

/// Writes the length of what follows the byte at `at`, widening it when the length
/// needs more than one byte.
pub(crate) fn close(at: usize, buf: &mut Vec<u8>) {
    let len = buf.len() - at - 1;
    if len < 0x80 {
        buf[at] = len as u8;
        return;
    }
    // The varint's bytes, then the contents moved up behind them.
    let mut prefix = [0u8; 10];
    let mut width = 0;
    let mut rest = len;
    while rest >= 0x80 {
        prefix[width] = (rest as u8 & 0x7f) | 0x80;
        rest >>= 7;
        width += 1;
    }
    prefix[width] = rest as u8;
    width += 1;
    let end = buf.len();
    buf.resize(end + width - 1, 0);
    buf.copy_within(at + 1..end, at + width);
    buf[at..at + width].copy_from_slice(&prefix[..width]);
}

/// Whether the supported-field check looks into `message` (not into one that translation
/// checks).
pub(crate) fn checks_inside(message: MessageRef) -> bool {
    !supported::CHECKED_BY_TRANSLATION.contains(&message.full_name())
}

/// A string field as prost writes one (its `string::encode` takes a `String`).
#[inline]
pub(crate) fn string(number: u32, text: &str, buf: &mut Vec<u8>) {
    key(number, WireType::LengthDelimited, buf);
    varint(text.len() as u64, buf);
    buf.extend_from_slice(text.as_bytes());
}

/// `value` as a varint, as prost's `encode_varint` writes it; the one-byte case (most
/// keys, lengths and numbers in a bootstrap) inline, where prost's was a call per value.
#[inline]
pub(crate) fn varint(value: u64, buf: &mut Vec<u8>) {
    if value < 0x80 {
        buf.push(value as u8);
    } else {
        encoding::encode_varint(value, buf);
    }
}

/// The key of field `number` with `wire_type`, as prost's `encode_key` writes it.
#[inline]
pub(crate) fn key(number: u32, wire_type: WireType, buf: &mut Vec<u8>) {
    varint(u64::from(number << 3 | wire_type as u32), buf);
}

/// The varint a number, boolean or enum name is written as; gives up on numbers as
/// strings or floats, out-of-range numbers, unknown enum names, and the kinds that are
/// not varints or zigzag-encoded.
pub(crate) fn varint_of<J: JsonView>(kind: &Kind, value: &J) -> Result<u64, GiveUp> {
    fn number<J: JsonView>(value: &J) -> Result<&serde_json::Number, GiveUp> {
        match value.as_number() {
            Some(n) if n.is_i64() || n.is_u64() => Ok(n),
            _ => Err(GiveUp),
        }
    }
    Ok(match kind {
        Kind::Bool => u64::from(value.as_bool().ok_or(GiveUp)?),
        Kind::Int32 => {
            let n = number(value)?;
            let v: i32 = match n.as_i64() {
                Some(v) => v.try_into().map_err(|_| GiveUp)?,
                None => return Err(GiveUp),
            };
            // As prost writes an int32: sign-extended to 64 bits.
            i64::from(v) as u64
        }
        Kind::Int64 => number(value)?.as_i64().ok_or(GiveUp)? as u64,
        Kind::Uint32 => {
            let v = number(value)?.as_u64().ok_or(GiveUp)?;
            u64::from(u32::try_from(v).map_err(|_| GiveUp)?)
        }
        Kind::Uint64 => number(value)?.as_u64().ok_or(GiveUp)?,
        Kind::Enum(descriptor) => {
            let name = value.as_str().ok_or(GiveUp)?;
            if descriptor.full_name() == "google.protobuf.NullValue" {
                return Err(GiveUp);
            }
            let v = descriptor.value_by_name(name).ok_or(GiveUp)?;
            i64::from(v) as u64
        }
        Kind::String | Kind::Message(_) | Kind::Other => return Err(GiveUp),
    })
}

/// The field kind inside a wrapper this encoder maps.
pub(crate) fn wrapper_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "google.protobuf.BoolValue" => Kind::Bool,
        "google.protobuf.Int32Value" => Kind::Int32,
        "google.protobuf.Int64Value" => Kind::Int64,
        "google.protobuf.UInt32Value" => Kind::Uint32,
        "google.protobuf.UInt64Value" => Kind::Uint64,
        "google.protobuf.StringValue" => Kind::String,
        _ => return None,
    })
}

/// A duration string as prost-reflect reads it (prost-types' parser, then the proto3
/// range of ±10,000 years).
pub(crate) fn duration(text: &str) -> Result<(i64, i32), GiveUp> {
    const MAX_SECONDS: u64 = 315_576_000_000;
    const MAX_NANOS: u32 = 999_999_999;
    let parsed: prost_types::Duration = text.parse().map_err(|_| GiveUp)?;
    if parsed.seconds.unsigned_abs() > MAX_SECONDS || parsed.nanos.unsigned_abs() > MAX_NANOS {
        return Err(GiveUp);
    }
    Ok((parsed.seconds, parsed.nanos))
}

#[cfg(test)]
mod tests;
