//! A `DynamicMessage` (what the proto3 JSON mapping builds) into a generated message with
//! each nested message's length computed once.
//!
//! prost-reflect's `transcode_to` encodes with `encode_to_vec`, which computes each nested
//! message's length anew at every depth above it (a bootstrap's endpoint sits eight
//! messages deep), then decodes. Here one pass records the length of every nested message
//! in the order the encoding needs them, a second writes the bytes into a buffer of exactly
//! the encoded size (as `encode_to_vec` allocates it: a buffer grown from a small block, or
//! one reserved bigger, changed what glibc returns to the system afterwards and cost 4 MiB
//! resident at 10,000 clusters), and prost decodes them. Repeated numbers are written
//! unpacked (prost reads both forms); the decoded message is the same.
//!
//! Shapes the JSON mapping does not produce (unknown fields, extensions, groups) go the
//! prost-reflect way.

use prost::encoding::{self, encoded_len_varint, key_len, WireType};
use prost::{DecodeError, Message};
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MapKey, ReflectMessage, Value};

/// A shape this encoder leaves to prost-reflect.
struct Unsupported;

/// `message` as a `T`, as `message.transcode_to::<T>()` makes it.
pub(crate) fn transcode<T: Message + Default>(message: &DynamicMessage) -> Result<T, DecodeError> {
    let mut lengths = Vec::new();
    let Ok(len) = message_len(message, &mut lengths) else {
        return message.transcode_to::<T>();
    };
    let mut writer = Writer {
        buf: Vec::with_capacity(len),
        lengths: lengths.into_iter(),
    };
    writer.message(message);
    T::decode(writer.buf.as_slice())
}

/// The encoded length of `message`'s fields; pushes the length of each nested message
/// (map entries included) in the order [`Writer`] writes them.
fn message_len(message: &DynamicMessage, lengths: &mut Vec<usize>) -> Result<usize, Unsupported> {
    if message.descriptor().extensions().len() != 0 || message.unknown_fields().next().is_some() {
        return Err(Unsupported);
    }
    let mut len = 0;
    // `fields` yields set fields in number order, without defaults of fields that have
    // no presence, as prost-reflect's encoder writes them.
    for (field, value) in message.fields() {
        len += field_len(&field, value, lengths)?;
    }
    Ok(len)
}

fn field_len(
    field: &FieldDescriptor,
    value: &Value,
    lengths: &mut Vec<usize>,
) -> Result<usize, Unsupported> {
    if field.is_group() {
        return Err(Unsupported);
    }
    let number = field.number();
    match value {
        Value::List(values) => {
            let kind = field.kind();
            let mut len = 0;
            for value in values {
                len += single_len(number, &kind, value, lengths)?;
            }
            Ok(len)
        }
        Value::Map(entries) => {
            let Kind::Message(entry) = field.kind() else {
                return Err(Unsupported);
            };
            let key_kind = entry.map_entry_key_field().kind();
            let value_kind = entry.map_entry_value_field().kind();
            let mut len = 0;
            for (key, value) in entries {
                let slot = lengths.len();
                lengths.push(0);
                // Key and value written even when default: decoding one that is absent
                // gives the same default.
                let inner = single_len(1, &key_kind, &key_value(key), lengths)?
                    + single_len(2, &value_kind, value, lengths)?;
                lengths[slot] = inner;
                len += key_len(number) + encoded_len_varint(inner as u64) + inner;
            }
            Ok(len)
        }
        value => single_len(number, &field.kind(), value, lengths),
    }
}

fn single_len(
    number: u32,
    kind: &Kind,
    value: &Value,
    lengths: &mut Vec<usize>,
) -> Result<usize, Unsupported> {
    Ok(match (value, kind) {
        (Value::Bool(v), Kind::Bool) => encoding::bool::encoded_len(number, v),
        (Value::I32(v), Kind::Int32) => encoding::int32::encoded_len(number, v),
        (Value::I32(v), Kind::Sint32) => encoding::sint32::encoded_len(number, v),
        (Value::I32(v), Kind::Sfixed32) => encoding::sfixed32::encoded_len(number, v),
        (Value::I64(v), Kind::Int64) => encoding::int64::encoded_len(number, v),
        (Value::I64(v), Kind::Sint64) => encoding::sint64::encoded_len(number, v),
        (Value::I64(v), Kind::Sfixed64) => encoding::sfixed64::encoded_len(number, v),
        (Value::U32(v), Kind::Uint32) => encoding::uint32::encoded_len(number, v),
        (Value::U32(v), Kind::Fixed32) => encoding::fixed32::encoded_len(number, v),
        (Value::U64(v), Kind::Uint64) => encoding::uint64::encoded_len(number, v),
        (Value::U64(v), Kind::Fixed64) => encoding::fixed64::encoded_len(number, v),
        (Value::F32(v), Kind::Float) => encoding::float::encoded_len(number, v),
        (Value::F64(v), Kind::Double) => encoding::double::encoded_len(number, v),
        (Value::String(v), Kind::String) => encoding::string::encoded_len(number, v),
        (Value::Bytes(v), Kind::Bytes) => encoding::bytes::encoded_len(number, v),
        (Value::EnumNumber(v), Kind::Enum(_)) => encoding::int32::encoded_len(number, v),
        (Value::Message(message), Kind::Message(_)) => {
            let slot = lengths.len();
            lengths.push(0);
            let inner = message_len(message, lengths)?;
            lengths[slot] = inner;
            key_len(number) + encoded_len_varint(inner as u64) + inner
        }
        _ => return Err(Unsupported),
    })
}

/// A map key as the value its entry's key field holds.
fn key_value(key: &MapKey) -> Value {
    match key {
        MapKey::Bool(v) => Value::Bool(*v),
        MapKey::I32(v) => Value::I32(*v),
        MapKey::I64(v) => Value::I64(*v),
        MapKey::U32(v) => Value::U32(*v),
        MapKey::U64(v) => Value::U64(*v),
        MapKey::String(v) => Value::String(v.clone()),
    }
}

/// The second pass: writes what [`message_len`] measured (same traversal, so every shape
/// here was accepted there), taking the nested lengths in order.
struct Writer {
    buf: Vec<u8>,
    lengths: std::vec::IntoIter<usize>,
}

impl Writer {
    fn message(&mut self, message: &DynamicMessage) {
        for (field, value) in message.fields() {
            self.field(&field, value);
        }
    }

    fn field(&mut self, field: &FieldDescriptor, value: &Value) {
        let number = field.number();
        match value {
            Value::List(values) => {
                let kind = field.kind();
                for value in values {
                    self.single(number, &kind, value);
                }
            }
            Value::Map(entries) => {
                let Kind::Message(entry) = field.kind() else {
                    return;
                };
                let key_kind = entry.map_entry_key_field().kind();
                let value_kind = entry.map_entry_value_field().kind();
                for (key, value) in entries {
                    self.length_prefix(number);
                    self.single(1, &key_kind, &key_value(key));
                    self.single(2, &value_kind, value);
                }
            }
            value => self.single(number, &field.kind(), value),
        }
    }

    fn single(&mut self, number: u32, kind: &Kind, value: &Value) {
        let buf = &mut self.buf;
        match (value, kind) {
            (Value::Bool(v), Kind::Bool) => encoding::bool::encode(number, v, buf),
            (Value::I32(v), Kind::Int32) => encoding::int32::encode(number, v, buf),
            (Value::I32(v), Kind::Sint32) => encoding::sint32::encode(number, v, buf),
            (Value::I32(v), Kind::Sfixed32) => encoding::sfixed32::encode(number, v, buf),
            (Value::I64(v), Kind::Int64) => encoding::int64::encode(number, v, buf),
            (Value::I64(v), Kind::Sint64) => encoding::sint64::encode(number, v, buf),
            (Value::I64(v), Kind::Sfixed64) => encoding::sfixed64::encode(number, v, buf),
            (Value::U32(v), Kind::Uint32) => encoding::uint32::encode(number, v, buf),
            (Value::U32(v), Kind::Fixed32) => encoding::fixed32::encode(number, v, buf),
            (Value::U64(v), Kind::Uint64) => encoding::uint64::encode(number, v, buf),
            (Value::U64(v), Kind::Fixed64) => encoding::fixed64::encode(number, v, buf),
            (Value::F32(v), Kind::Float) => encoding::float::encode(number, v, buf),
            (Value::F64(v), Kind::Double) => encoding::double::encode(number, v, buf),
            (Value::String(v), Kind::String) => encoding::string::encode(number, v, buf),
            (Value::Bytes(v), Kind::Bytes) => encoding::bytes::encode(number, v, buf),
            (Value::EnumNumber(v), Kind::Enum(_)) => encoding::int32::encode(number, v, buf),
            (Value::Message(message), Kind::Message(_)) => {
                self.length_prefix(number);
                self.message(message);
            }
            // Not reached: the first pass refused every other shape.
            _ => {}
        }
    }

    /// The key of a length-delimited field and its length, the next one measured.
    fn length_prefix(&mut self, number: u32) {
        encoding::encode_key(number, WireType::LengthDelimited, &mut self.buf);
        let len = self.lengths.next().unwrap_or(0);
        encoding::encode_varint(len as u64, &mut self.buf);
    }
}

#[cfg(test)]
mod tests;
