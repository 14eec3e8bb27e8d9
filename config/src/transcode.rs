//! A `DynamicMessage` (what the proto3 JSON mapping builds) into a generated message in
//! one encode pass and one decode.
//!
//! prost-reflect's `transcode_to` encodes with `encode_to_vec`, which writes each nested
//! message's length by computing it anew at every depth (a bootstrap's endpoint sits
//! eight messages deep), then decodes. Here each nested message gets a five-byte length
//! written after its body: a varint padded with continuation bytes, which every protobuf
//! decoder (prost's included) reads as the same number. The bytes never leave this module;
//! the generated message decoded from them is the same as from the canonical encoding
//! (fields in the same order, defaults of fields without presence left out).
//!
//! Shapes the JSON mapping does not produce (unknown fields, extensions, groups) go the
//! prost-reflect way.

use prost::bytes::BufMut;
use prost::encoding::{self, WireType};
use prost::{DecodeError, Message};
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, ReflectMessage, Value};

/// Bytes reserved for a nested message's length: a varint of up to 35 bits.
const LENGTH_BYTES: usize = 5;

/// A shape this encoder leaves to prost-reflect.
struct Unsupported;

/// Room reserved for the encoding up front: at least glibc's largest mmap threshold, so the
/// buffer is a mapping of its own whose untouched pages cost nothing and which goes back
/// to the system when dropped. Grown from a small heap block instead, it stayed behind
/// the decoded message as a hole in the heap (4 MiB more resident at 10,000 clusters).
const BUFFER_RESERVE: usize = 32 << 20;

/// `message` as a `T`, as `message.transcode_to::<T>()` makes it.
pub(crate) fn transcode<T: Message + Default>(message: &DynamicMessage) -> Result<T, DecodeError> {
    let mut buf = Vec::with_capacity(BUFFER_RESERVE);
    match encode_message(message, &mut buf) {
        Ok(()) => T::decode(buf.as_slice()),
        Err(Unsupported) => message.transcode_to::<T>(),
    }
}

fn encode_message(message: &DynamicMessage, buf: &mut Vec<u8>) -> Result<(), Unsupported> {
    if message.descriptor().extensions().len() != 0 || message.unknown_fields().next().is_some()
    {
        return Err(Unsupported);
    }
    // `fields` yields set fields in number order, without defaults of fields that have
    // no presence, as prost-reflect's encoder writes them.
    for (field, value) in message.fields() {
        encode_field(&field, value, buf)?;
    }
    Ok(())
}

fn encode_field(field: &FieldDescriptor, value: &Value, buf: &mut Vec<u8>) -> Result<(), Unsupported> {
    let number = field.number();
    match value {
        Value::List(values) => {
            // Unpacked even where the proto packs: prost's decoders take both forms.
            let kind = field.kind();
            for value in values {
                encode_single(number, &kind, field.is_group(), value, buf)?;
            }
            Ok(())
        }
        Value::Map(entries) => {
            let Kind::Message(entry) = field.kind() else {
                return Err(Unsupported);
            };
            let key_field = entry.map_entry_key_field();
            let value_field = entry.map_entry_value_field();
            let (key_kind, value_kind) = (key_field.kind(), value_field.kind());
            for (key, value) in entries {
                encoding::encode_key(number, WireType::LengthDelimited, buf);
                let start = reserve_length(buf);
                // Key and value written even when default: decoding one that is absent
                // gives the same default.
                encode_single(1, &key_kind, false, &Value::from(key.clone()), buf)?;
                encode_single(2, &value_kind, value_field.is_group(), value, buf)?;
                patch_length(buf, start)?;
            }
            Ok(())
        }
        value => encode_single(number, &field.kind(), field.is_group(), value, buf),
    }
}

fn encode_single(
    number: u32,
    kind: &Kind,
    is_group: bool,
    value: &Value,
    buf: &mut Vec<u8>,
) -> Result<(), Unsupported> {
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
        (Value::Message(message), Kind::Message(_)) if !is_group => {
            encoding::encode_key(number, WireType::LengthDelimited, buf);
            let start = reserve_length(buf);
            encode_message(message, buf)?;
            patch_length(buf, start)?;
        }
        _ => return Err(Unsupported),
    }
    Ok(())
}

/// Leaves room for a length and returns where the body starts.
fn reserve_length(buf: &mut Vec<u8>) -> usize {
    buf.put_bytes(0, LENGTH_BYTES);
    buf.len()
}

/// Writes the length of the body that starts at `start` into the room before it.
fn patch_length(buf: &mut [u8], start: usize) -> Result<(), Unsupported> {
    let len = buf.len() - start;
    if len >> (7 * LENGTH_BYTES) != 0 {
        return Err(Unsupported);
    }
    let room = &mut buf[start - LENGTH_BYTES..start];
    for (i, byte) in room.iter_mut().enumerate() {
        // Every byte but the last carries the continuation bit.
        let bits = ((len >> (7 * i)) & 0x7f) as u8;
        *byte = if i + 1 < LENGTH_BYTES { bits | 0x80 } else { bits };
    }
    Ok(())
}

#[cfg(test)]
mod tests;
