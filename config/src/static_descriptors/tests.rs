//! The static tables against the descriptor pool decoded from the same set.

use prost_reflect::Kind as PoolKind;

use super::{Kind, MessageRef};
use crate::load::pool;

/// The table kind `kind` stands for, in the pool's terms (message and enum by name).
fn same_kind(table: Kind, pool_kind: &PoolKind) -> bool {
    match (table, pool_kind) {
        (Kind::Bool, PoolKind::Bool)
        | (Kind::Int32, PoolKind::Int32)
        | (Kind::Int64, PoolKind::Int64)
        | (Kind::Uint32, PoolKind::Uint32)
        | (Kind::Uint64, PoolKind::Uint64)
        | (Kind::String, PoolKind::String) => true,
        (Kind::Message(m), PoolKind::Message(d)) => m.full_name() == d.full_name(),
        (Kind::Enum(e), PoolKind::Enum(d)) => e.full_name() == d.full_name(),
        (
            Kind::Other,
            PoolKind::Double
            | PoolKind::Float
            | PoolKind::Sint32
            | PoolKind::Sint64
            | PoolKind::Fixed32
            | PoolKind::Fixed64
            | PoolKind::Sfixed32
            | PoolKind::Sfixed64
            | PoolKind::Bytes,
        ) => true,
        _ => false,
    }
}

/// Every message, field and enum of the pool is in the tables as the pool describes it,
/// and the tables hold nothing else.
#[test]
fn tables_describe_what_the_pool_describes() {
    let pool = pool();
    assert_eq!(
        pool.all_messages().len(),
        baton_proto::wire_tables::MESSAGES.len()
    );
    assert_eq!(
        pool.all_enums().len(),
        baton_proto::wire_tables::ENUMS.len()
    );
    for message in pool.all_messages() {
        let name = message.full_name();
        let table = MessageRef::by_name(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(table.full_name(), name);
        assert_eq!(table.is_map_entry(), message.is_map_entry(), "{name}");
        assert_eq!(
            table.is_well_known(),
            name.starts_with("google.protobuf."),
            "{name}"
        );
        assert_eq!(table.fields().len(), message.fields().len(), "{name}");
        for (field, entry) in message.fields().zip(table.fields()) {
            let what = format!("{name}.{}", field.name());
            assert_eq!(entry.name(), field.name(), "{what}");
            assert_eq!(entry.json_name(), field.json_name(), "{what}");
            assert_eq!(entry.number, field.number(), "{what}");
            assert!(same_kind(Kind::of(entry), &field.kind()), "{what}");
            assert_eq!(entry.list, field.is_list(), "{what}");
            assert_eq!(entry.map, field.is_map(), "{what}");
            assert_eq!(entry.packed, field.is_packed(), "{what}");
            assert_eq!(entry.presence, field.supports_presence(), "{what}");
            assert_eq!(entry.group, field.is_group(), "{what}");
            let oneof = field.containing_oneof().map(|o| o.name().to_string());
            let table_oneof = (entry.oneof > 0)
                .then(|| message.oneofs().nth(entry.oneof - 1))
                .flatten()
                .map(|o| o.name().to_string());
            assert_eq!(table_oneof, oneof, "{what}");
            // The lookups the encoders make find what the pool finds.
            for key in [field.json_name(), field.name()] {
                let expected = message
                    .get_field_by_json_name(key)
                    .or_else(|| message.get_field_by_name(key))
                    .map(|f| f.number());
                assert_eq!(
                    table.field_by_key(key).map(|f| f.number),
                    expected,
                    "{what}: {key}"
                );
            }
        }
        if message.is_map_entry() {
            let (key, value) = table.map_entry_kinds().expect("entry fields");
            assert!(
                same_kind(key, &message.map_entry_key_field().kind()),
                "{name}"
            );
            assert!(
                same_kind(value, &message.map_entry_value_field().kind()),
                "{name}"
            );
        }
    }
    for e in pool.all_enums() {
        let field_kind = pool
            .all_messages()
            .flat_map(|m| m.fields().collect::<Vec<_>>())
            .find(|f| matches!(f.kind(), PoolKind::Enum(d) if d.full_name() == e.full_name()));
        let Some(field) = field_kind else { continue };
        let table = MessageRef::by_name(field.parent_message().full_name())
            .and_then(|m| m.field_by_number(field.number()))
            .map(Kind::of);
        let Some(Kind::Enum(table)) = table else {
            panic!("{}: not an enum in the tables", e.full_name());
        };
        for value in e.values() {
            assert_eq!(
                table.value_by_name(value.name()),
                e.get_value_by_name(value.name()).map(|v| v.number()),
                "{}.{}",
                e.full_name(),
                value.name()
            );
        }
        assert_eq!(table.value_by_name("NO_SUCH_VALUE_NAME"), None);
    }
    assert_eq!(MessageRef::by_name("no.such.Message"), None);
}
