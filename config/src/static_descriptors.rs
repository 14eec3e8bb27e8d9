//! The descriptors the wire encoders ([`crate::json_wire`], [`crate::yaml_wire`]) read:
//! messages, their fields and enums from the static tables baton-proto's build script
//! writes ([`baton_proto::wire_tables`]). Decoding the `DescriptorPool` cost about 51 M
//! instructions per process (a sixth of loading a 10,000-cluster bootstrap), so the fast
//! path reads these instead and the pool is decoded only when a document leaves it (the
//! prost-reflect mapping and its errors, `/config_dump`, the supported-field walk of xDS
//! resources). A test compares every table with the pool.

use baton_proto::wire_tables::{self, Field};

/// A message type: its place in [`wire_tables::MESSAGES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MessageRef(u16);

impl MessageRef {
    /// The message named `full_name` (`package.Outer.Inner`), if the set has it.
    pub(crate) fn by_name(full_name: &str) -> Option<Self> {
        let at = wire_tables::MESSAGES
            .binary_search_by(|message| message.name().cmp(full_name))
            .ok()?;
        Some(Self(u16::try_from(at).ok()?))
    }

    fn table(self) -> &'static wire_tables::Message {
        &wire_tables::MESSAGES[usize::from(self.0)]
    }

    /// Its full name.
    pub(crate) fn full_name(self) -> &'static str {
        self.table().name()
    }

    /// Whether it is one of protobuf's own (`google.protobuf.*`): read per message
    /// opened, where comparing the name cost more.
    pub(crate) fn is_well_known(self) -> bool {
        self.table().well_known
    }

    /// A number unique to the message among all of them (for lookup keys).
    pub(crate) fn id(self) -> usize {
        usize::from(self.0)
    }

    /// Its fields in declaration order.
    pub(crate) fn fields(self) -> &'static [Field] {
        self.table().fields()
    }

    /// Whether it is the entry type of a map field (a field's `map` says so for the
    /// encoders; the test of the tables reads it).
    #[cfg(test)]
    pub(crate) fn is_map_entry(self) -> bool {
        self.table().map_entry
    }

    /// The field whose JSON name is `key`, else the one whose proto name is (as
    /// prost-reflect's `get_field_by_json_name` then `get_field_by_name`).
    pub(crate) fn field_by_key(self, key: &str) -> Option<&'static Field> {
        let fields = self.fields();
        fields
            .iter()
            .find(|field| field.json_name() == key)
            .or_else(|| fields.iter().find(|field| field.name() == key))
    }

    /// The field numbered `number`.
    pub(crate) fn field_by_number(self, number: u32) -> Option<&'static Field> {
        self.fields().iter().find(|field| field.number == number)
    }

    /// A map entry's key (field 1) and value (field 2) kinds.
    pub(crate) fn map_entry_kinds(self) -> Option<(Kind, Kind)> {
        let key = self.field_by_number(1)?;
        let value = self.field_by_number(2)?;
        Some((Kind::of(key), Kind::of(value)))
    }
}

/// An enum type: its place in [`wire_tables::ENUMS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EnumRef(u16);

impl EnumRef {
    fn table(self) -> &'static wire_tables::Enum {
        &wire_tables::ENUMS[usize::from(self.0)]
    }

    /// Its full name.
    pub(crate) fn full_name(self) -> &'static str {
        self.table().name()
    }

    /// The number of the value named `name`.
    pub(crate) fn value_by_name(self, name: &str) -> Option<i32> {
        self.table()
            .values()
            .iter()
            .find(|(value, _)| value.get() == name)
            .map(|&(_, number)| number)
    }
}

/// A field's value type as the encoders tell them apart; `Other` is every kind they
/// leave to prost-reflect (floating point, zigzag and fixed-width numbers, bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Bool,
    Int32,
    Int64,
    Uint32,
    Uint64,
    String,
    Message(MessageRef),
    Enum(EnumRef),
    Other,
}

impl Kind {
    /// The kind of `field`'s values.
    pub(crate) fn of(field: &Field) -> Self {
        use wire_tables::Kind as Table;
        match field.kind {
            Table::Bool => Kind::Bool,
            Table::Int32 => Kind::Int32,
            Table::Int64 => Kind::Int64,
            Table::Uint32 => Kind::Uint32,
            Table::Uint64 => Kind::Uint64,
            Table::String => Kind::String,
            Table::Message(at) => Kind::Message(MessageRef(at)),
            Table::Enum(at) => Kind::Enum(EnumRef(at)),
            Table::Double
            | Table::Float
            | Table::Sint32
            | Table::Sint64
            | Table::Fixed32
            | Table::Fixed64
            | Table::Sfixed32
            | Table::Sfixed64
            | Table::Bytes => Kind::Other,
        }
    }
}

#[cfg(test)]
mod tests;
