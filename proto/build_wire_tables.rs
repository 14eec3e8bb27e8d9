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

    // Names are places in one string and lists places in one array each: the tables hold
    // no pointer, so they are read-only data the loader neither relocates nor copies.
    let mut names = Names::default();
    let mut messages_out = String::new();
    let mut fields_out = String::new();
    let mut field_count = 0usize;
    for message in &messages {
        let first = field_count;
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
                fields_out,
                "Field {{ name: {}, json_name: {}, number: {}, kind: Kind::{kind}, \
                 list: {}, map: {}, packed: {}, presence: {}, group: {}, oneof: {oneof} }},",
                names.add(field.name()),
                names.add(field.json_name()),
                field.number(),
                field.is_list(),
                field.is_map(),
                field.is_packed(),
                field.supports_presence(),
                field.is_group(),
            )?;
            field_count += 1;
        }
        writeln!(
            messages_out,
            "Message {{ name: {}, map_entry: {}, well_known: {}, \
             fields: Span {{ start: {first}, len: {} }} }},",
            names.add(message.full_name()),
            message.is_map_entry(),
            message.full_name().starts_with("google.protobuf."),
            field_count - first,
        )?;
    }
    let mut enums_out = String::new();
    let mut values_out = String::new();
    let mut value_count = 0usize;
    for e in &enums {
        let first = value_count;
        for value in e.values() {
            writeln!(
                values_out,
                "({}, {}),",
                names.add(value.name()),
                value.number()
            )?;
            value_count += 1;
        }
        writeln!(
            enums_out,
            "Enum {{ name: {}, values: Span {{ start: {first}, len: {} }} }},",
            names.add(e.full_name()),
            value_count - first,
        )?;
    }

    let mut out = String::new();
    writeln!(
        out,
        "/// Every name the tables hold, each a [`Name`] of it."
    )?;
    writeln!(out, "pub static NAMES: &str = {:?};", names.text)?;
    writeln!(
        out,
        "/// Every message of the descriptor set, by full name."
    )?;
    writeln!(
        out,
        "pub static MESSAGES: [Message; {}] = [\n{messages_out}];",
        messages.len()
    )?;
    writeln!(
        out,
        "/// Every message's fields, each message's in one [`Span`]."
    )?;
    writeln!(
        out,
        "pub static FIELDS: [Field; {field_count}] = [\n{fields_out}];"
    )?;
    writeln!(out, "/// Every enum of the descriptor set, by full name.")?;
    writeln!(
        out,
        "pub static ENUMS: [Enum; {}] = [\n{enums_out}];",
        enums.len()
    )?;
    writeln!(
        out,
        "/// Every enum's values (name, number), each enum's in one [`Span`]."
    )?;
    writeln!(
        out,
        "pub static ENUM_VALUES: [(Name, i32); {value_count}] = [\n{values_out}];"
    )?;
    Ok(out)
}

/// The one string every name is a slice of (each distinct name once).
#[derive(Default)]
struct Names {
    text: String,
    at: HashMap<String, (usize, usize)>,
}

impl Names {
    /// `name` as the Rust expression of its `Name`.
    fn add(&mut self, name: &str) -> String {
        let (start, len) = match self.at.get(name) {
            Some(&place) => place,
            None => {
                let place = (self.text.len(), name.len());
                self.text.push_str(name);
                self.at.insert(name.to_string(), place);
                place
            }
        };
        format!("Name {{ start: {start}, len: {len} }}")
    }
}
