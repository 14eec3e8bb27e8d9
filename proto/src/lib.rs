//! Generated Rust types for the vendored Envoy v3 API subset (wire-compatible with Envoy,
//! so static config and xDS share them) and for Baton's own hot-restart and supervisor
//! control messages. `FDS` is the encoded FileDescriptorSet used by `config/` to read
//! YAML/JSON through the proto3 JSON mapping.

#[allow(clippy::all, missing_docs, rust_2018_idioms, unreachable_pub)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/envoy_include.rs"));
}

/// Encoded `google.protobuf.FileDescriptorSet` of every compiled proto.
pub static FDS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_fds.bin"));

pub use prost;
pub use prost_types;

/// What the configuration loader's fast path reads of the descriptors of [`FDS`], as
/// static tables written by the build script (from the same set, decoded by prost-reflect
/// there), so loading a plain configuration needs no `DescriptorPool` decoded at run time.
/// Messages and enums are sorted by full name; a kind names a message or an enum by its
/// place in [`wire_tables::MESSAGES`] or [`wire_tables::ENUMS`].
pub mod wire_tables {
    /// A message type.
    #[derive(Debug)]
    pub struct Message {
        /// Its full name (`package.Outer.Inner`).
        pub name: &'static str,
        /// Whether it is the entry type generated for a map field.
        pub map_entry: bool,
        /// Its fields, in declaration order.
        pub fields: &'static [Field],
    }

    /// A field of a message, as prost-reflect describes it.
    #[derive(Debug)]
    pub struct Field {
        /// Its name in the .proto file.
        pub name: &'static str,
        /// Its proto3 JSON name.
        pub json_name: &'static str,
        /// Its field number.
        pub number: u32,
        /// Its value type.
        pub kind: Kind,
        /// Repeated and not a map.
        pub list: bool,
        /// A map (repeated map entries).
        pub map: bool,
        /// A packed repeated field.
        pub packed: bool,
        /// Whether an unset field differs from one holding its default.
        pub presence: bool,
        /// Encoded as a proto2 group.
        pub group: bool,
        /// Its oneof's place in the message's oneofs plus one; 0 for none.
        pub oneof: usize,
    }

    /// A field's value type; a message or enum by its place in [`MESSAGES`] or
    /// [`ENUMS`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[allow(missing_docs)]
    pub enum Kind {
        Double,
        Float,
        Int32,
        Int64,
        Uint32,
        Uint64,
        Sint32,
        Sint64,
        Fixed32,
        Fixed64,
        Sfixed32,
        Sfixed64,
        Bool,
        String,
        Bytes,
        Message(u16),
        Enum(u16),
    }

    /// An enum type: its full name and its values' names and numbers.
    #[derive(Debug)]
    pub struct Enum {
        /// Its full name.
        pub name: &'static str,
        /// Its values, in declaration order.
        pub values: &'static [(&'static str, i32)],
    }

    include!(concat!(env!("OUT_DIR"), "/wire_tables.rs"));
}
