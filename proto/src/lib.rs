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
/// place in [`wire_tables::MESSAGES`] or [`wire_tables::ENUMS`]. Names and lists are
/// places in one string or array (no pointers: the tables are read-only data that the
/// loader neither relocates nor copies into every process).
pub mod wire_tables {
    /// A name: a slice of [`NAMES`].
    #[derive(Debug, Clone, Copy)]
    pub struct Name {
        /// Where it starts in [`NAMES`].
        pub start: u32,
        /// Its length in bytes.
        pub len: u32,
    }

    impl Name {
        /// The name's text.
        pub fn get(self) -> &'static str {
            let start = self.start as usize;
            NAMES.get(start..start + self.len as usize).unwrap_or("")
        }
    }

    /// A run of a list: `len` entries from `start`.
    #[derive(Debug, Clone, Copy)]
    pub struct Span {
        /// Its first entry's place.
        pub start: u32,
        /// How many entries.
        pub len: u32,
    }

    impl Span {
        fn of<T>(self, all: &'static [T]) -> &'static [T] {
            let start = self.start as usize;
            all.get(start..start + self.len as usize).unwrap_or(&[])
        }
    }

    /// A message type.
    #[derive(Debug)]
    pub struct Message {
        /// Its full name (`package.Outer.Inner`).
        pub name: Name,
        /// Whether it is the entry type generated for a map field.
        pub map_entry: bool,
        /// Whether it is one of protobuf's own (`google.protobuf.*`), which the proto3
        /// JSON mapping writes in forms of their own.
        pub well_known: bool,
        /// Its fields in [`FIELDS`], in declaration order.
        pub fields: Span,
    }

    impl Message {
        /// Its full name.
        pub fn name(&self) -> &'static str {
            self.name.get()
        }

        /// Its fields, in declaration order.
        pub fn fields(&self) -> &'static [Field] {
            self.fields.of(&FIELDS)
        }
    }

    /// A field of a message, as prost-reflect describes it.
    #[derive(Debug)]
    pub struct Field {
        /// Its name in the .proto file.
        pub name: Name,
        /// Its proto3 JSON name.
        pub json_name: Name,
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

    impl Field {
        /// Its name in the .proto file.
        pub fn name(&self) -> &'static str {
            self.name.get()
        }

        /// Its proto3 JSON name.
        pub fn json_name(&self) -> &'static str {
            self.json_name.get()
        }
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

    /// An enum type.
    #[derive(Debug)]
    pub struct Enum {
        /// Its full name.
        pub name: Name,
        /// Its values in [`ENUM_VALUES`], in declaration order.
        pub values: Span,
    }

    impl Enum {
        /// Its full name.
        pub fn name(&self) -> &'static str {
            self.name.get()
        }

        /// Its values' names and numbers, in declaration order.
        pub fn values(&self) -> &'static [(Name, i32)] {
            self.values.of(&ENUM_VALUES)
        }
    }

    include!(concat!(env!("OUT_DIR"), "/wire_tables.rs"));
}
