//! Writes `wire_tables.rs`: what the configuration loader's fast path reads of the
//! descriptors (each message's fields with their names, numbers, kinds and labels, each
//! enum's values) as static tables, from the same encoded descriptor set the crate
//! embeds, decoded here by prost-reflect exactly as the loader would decode it at run
//! time. The loader then decodes that pool only when a document leaves the fast path.
use std::collections::HashMap;
use std::fmt::Write as _;

use prost_reflect::{DescriptorPool, Kind};

/// The Rust source of the tables of every message and enum in `encoded_set`.
pub(crate) fn generate(encoded_set: &[u8]) -> Result<String, Box<dyn std::error::Error>> {
    let pool = DescriptorPool::decode(encoded_set)?;
    let mut messages: Vec<_> = pool.all_messages().collect();
    messages.sort_by(|a, b| a.full_name().cmp(b.full_name()));
    let mut enums: Vec<_> = pool.all_enums().collect();
    enums.sort_by(|a, b| a.full_name().cmp(b.full_name()));
    if messages.len() > usize::from(u16::MAX) || enums.len() > usize::from(u16::MAX) {
        return Err("more messages or enums than a u16 indexes".into());
    }
    let message_index: HashMap<String, usize> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| (m.full_name().to_string(), i))
        .collect();
    let enum_index: HashMap<String, usize> = enums
        .iter()
        .enumerate()
        .map(|(i, e)| (e.full_name().to_string(), i))
        .collect();

    let mut out = String::new();
    writeln!(out, "/// Every message of the descriptor set, by full name.")?;
    writeln!(out, "pub static MESSAGES: &[Message] = &[")?;
    for message in &messages {
        writeln!(
            out,
            "Message {{ name: {:?}, map_entry: {}, fields: &[",
            message.full_name(),
            message.is_map_entry()
        )?;
        for field in message.fields() {
            let kind = match field.kind() {
                Kind::Double => "Double".to_string(),
                Kind::Float => "Float".to_string(),
                Kind::Int32 => "Int32".to_string(),
                Kind::Int64 => "Int64".to_string(),
                Kind::Uint32 => "Uint32".to_string(),
                Kind::Uint64 => "Uint64".to_string(),
                Kind::Sint32 => "Sint32".to_string(),
                Kind::Sint64 => "Sint64".to_string(),
                Kind::Fixed32 => "Fixed32".to_string(),
                Kind::Fixed64 => "Fixed64".to_string(),
                Kind::Sfixed32 => "Sfixed32".to_string(),
                Kind::Sfixed64 => "Sfixed64".to_string(),
                Kind::Bool => "Bool".to_string(),
                Kind::String => "String".to_string(),
                Kind::Bytes => "Bytes".to_string(),
                Kind::Message(m) => format!(
                    "Message({})",
                    message_index
                        .get(m.full_name())
                        .ok_or("a field's message is not in the set")?
                ),
                Kind::Enum(e) => format!(
                    "Enum({})",
                    enum_index
                        .get(e.full_name())
                        .ok_or("a field's enum is not in the set")?
                ),
            };
            // A oneof as its place in the message plus one (0: none).
            let oneof = field.containing_oneof().map_or(0, |o| {
                message
                    .oneofs()
                    .position(|other| other.name() == o.name())
                    .map_or(0, |i| i + 1)
            });
            writeln!(
                out,
                "Field {{ name: {:?}, json_name: {:?}, number: {}, kind: Kind::{kind}, \
                 list: {}, map: {}, packed: {}, presence: {}, group: {}, oneof: {oneof} }},",
                field.name(),
                field.json_name(),
                field.number(),
                field.is_list(),
                field.is_map(),
                field.is_packed(),
                field.supports_presence(),
                field.is_group(),
            )?;
        }
        writeln!(out, "] }},")?;
    }
    writeln!(out, "];")?;

    writeln!(out, "/// Every enum of the descriptor set, by full name.")?;
    writeln!(out, "pub static ENUMS: &[Enum] = &[")?;
    for e in &enums {
        write!(out, "Enum {{ name: {:?}, values: &[", e.full_name())?;
        for value in e.values() {
            write!(out, "({:?}, {}), ", value.name(), value.number())?;
        }
        writeln!(out, "] }},")?;
    }
    writeln!(out, "];")?;
    Ok(out)
}
