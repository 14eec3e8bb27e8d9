//! Per-message tables of the descriptor pool for the wire walk: each field found by its
//! number with an array (or small sorted list) lookup, its kind, shape, oneof and whether
//! Baton implements it worked out once, instead of asking the descriptor API, hashing the
//! message name for its allowlist and comparing names for every field of every resource
//! (a 10,000-cluster CDS response walks millions of fields). Built lazily, one message at
//! a time on its first visit, and shared by every walk of the process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use prost_reflect::{DescriptorPool, Kind, MessageDescriptor, OneofDescriptor};

use crate::load::pool;
use crate::supported;

/// Field numbers up to this one are found by indexing an array; higher ones (rare in
/// Envoy's protos) by a binary search.
const DENSE_NUMBERS: u32 = 512;

/// What the walk does with a message as a whole.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Plain,
    /// `google.protobuf.Any`: the supported check walks its contents with their type.
    Any,
    /// Checked by translation, not by the allowlist ([`supported::CHECKED_BY_TRANSLATION`]).
    CheckedByTranslation,
    /// An `HttpFilter` or a route's `FilterConfig`: an `Any` of an unknown type inside is
    /// skipped when one of the flags (field numbers) is set.
    SkipsUnknownConfig {
        flags: [Option<u32>; 2],
    },
}

/// One field of a message, as the walk needs it.
pub(super) struct FieldEntry {
    pub(super) name: Box<str>,
    pub(super) kind: Kind,
    pub(super) list: bool,
    pub(super) map: bool,
    pub(super) presence: bool,
    /// A repeated scalar other than strings and bytes (may be written packed).
    pub(super) packable: bool,
    /// The field's oneof, as its position among the message's oneofs.
    pub(super) oneof: Option<u32>,
    /// Whether the supported check lets it be set (no allowlist: every field).
    pub(super) allowed: bool,
    /// A singular `google.protobuf.Any`.
    pub(super) singular_any: bool,
    /// The table of its message type (of the value type, for a map).
    pub(super) message: Option<u32>,
    /// A map's key kind, when its values are messages.
    pub(super) map_key: Option<Kind>,
}

/// One message of the pool.
pub(super) struct MessageTable {
    pub(super) role: Role,
    pub(super) fields: Vec<FieldEntry>,
    /// Field slot + 1 by number (0: no such field), numbers up to the highest one not
    /// above `DENSE_NUMBERS`.
    dense: Vec<u16>,
    /// (number, slot) of higher numbers, sorted.
    sparse: Vec<(u32, u16)>,
}

impl MessageTable {
    /// The slot in [`Self::fields`] of field `number`.
    pub(super) fn slot(&self, number: u32) -> Option<u16> {
        if let Some(&slot) = self.dense.get(number as usize) {
            return slot.checked_sub(1);
        }
        self.sparse
            .binary_search_by_key(&number, |&(n, _)| n)
            .ok()
            .map(|i| self.sparse[i].1)
    }
}

/// Every message of the pool by name, and its table once built.
pub(super) struct Tables {
    by_name: HashMap<Box<str>, u32>,
    descriptors: Vec<MessageDescriptor>,
    tables: Vec<OnceLock<MessageTable>>,
}

/// The tables of [`pool`] (the only pool resources are walked with) while kept.
static TABLES: Mutex<Option<Arc<Tables>>> = Mutex::new(None);

/// The tables of [`pool`], built (lazily, message by message) on first use and kept
/// until [`release`]: they hold the pool's descriptors, so they go with it.
pub(super) fn tables() -> Arc<Tables> {
    let mut kept = TABLES.lock().unwrap_or_else(PoisonError::into_inner);
    Arc::clone(kept.get_or_insert_with(|| Arc::new(Tables::new(&pool()))))
}

/// Drops the kept tables ([`crate::load::release_descriptor_pool`]); a walk still
/// running keeps its own handle.
pub(crate) fn release() {
    TABLES.lock().unwrap_or_else(PoisonError::into_inner).take();
}

impl Tables {
    fn new(pool: &DescriptorPool) -> Self {
        let descriptors: Vec<MessageDescriptor> = pool.all_messages().collect();
        let by_name = descriptors
            .iter()
            .enumerate()
            .filter_map(|(index, message)| {
                Some((Box::from(message.full_name()), u32::try_from(index).ok()?))
            })
            .collect();
        let tables = descriptors.iter().map(|_| OnceLock::new()).collect();
        Self {
            by_name,
            descriptors,
            tables,
        }
    }

    /// The index of the message named `full_name`.
    pub(super) fn index_of(&self, full_name: &str) -> Option<u32> {
        self.by_name.get(full_name).copied()
    }

    /// The table of message `index` (built on the first call).
    pub(super) fn get(&self, index: u32) -> &MessageTable {
        self.tables[index as usize].get_or_init(|| self.build(&self.descriptors[index as usize]))
    }

    fn build(&self, descriptor: &MessageDescriptor) -> MessageTable {
        let full_name = descriptor.full_name();
        let flag = |name: &str| descriptor.get_field_by_name(name).map(|f| f.number());
        let role = match full_name {
            "google.protobuf.Any" => Role::Any,
            name if supported::CHECKED_BY_TRANSLATION.contains(&name) => Role::CheckedByTranslation,
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter" => {
                Role::SkipsUnknownConfig {
                    flags: [flag("is_optional"), None],
                }
            }
            "envoy.config.route.v3.FilterConfig" => Role::SkipsUnknownConfig {
                flags: [flag("is_optional"), flag("disabled")],
            },
            _ => Role::Plain,
        };
        let allowlist = supported::allowed_fields(full_name);
        let oneofs: Vec<OneofDescriptor> = descriptor.oneofs().collect();
        let mut fields = Vec::new();
        let highest = descriptor
            .fields()
            .map(|f| f.number())
            .filter(|&n| n <= DENSE_NUMBERS)
            .max()
            .unwrap_or(0);
        let mut dense = vec![0u16; highest as usize + 1];
        let mut sparse = Vec::new();
        for field in descriptor.fields() {
            let Ok(slot) = u16::try_from(fields.len()) else {
                break;
            };
            let kind = field.kind();
            let list = field.is_list();
            let map = field.is_map();
            let name = Box::from(field.name());
            let (message, map_key) = match (&kind, map) {
                (Kind::Message(entry), true) => match entry.map_entry_value_field().kind() {
                    Kind::Message(value) => (
                        self.index_of(value.full_name()),
                        Some(entry.map_entry_key_field().kind()),
                    ),
                    _ => (None, None),
                },
                (Kind::Message(message), false) => (self.index_of(message.full_name()), None),
                _ => (None, None),
            };
            let singular_any = !list
                && !map
                && matches!(&kind, Kind::Message(m) if m.full_name() == "google.protobuf.Any");
            fields.push(FieldEntry {
                name,
                packable: list && !matches!(kind, Kind::String | Kind::Bytes | Kind::Message(_)),
                presence: field.supports_presence(),
                oneof: field
                    .containing_oneof()
                    .and_then(|o| oneofs.iter().position(|x| *x == o))
                    .and_then(|p| u32::try_from(p).ok()),
                allowed: allowlist.is_none_or(|allowed| allowed.contains(&field.name())),
                singular_any,
                message,
                map_key,
                kind,
                list,
                map,
            });
            match dense.get_mut(field.number() as usize) {
                Some(entry) => *entry = slot + 1,
                None => sparse.push((field.number(), slot)),
            }
        }
        sparse.sort_unstable();
        MessageTable {
            role,
            fields,
            dense,
            sparse,
        }
    }
}
