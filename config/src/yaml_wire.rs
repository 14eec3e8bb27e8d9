//! A bootstrap's text straight into its protobuf wire bytes as the scanner reads it
//! ([`encode_bootstrap`]): no compact tree is built, walked or freed. The bytes are the
//! ones [`crate::json_wire::encode_supported`] writes from the tree of the same text
//! (fields in number order per message, map entries in key order, the supported-field
//! check read as fields are written), so prost decodes the same `Bootstrap`.
//!
//! Each member is written where the buffer ends as its key is met; when a message ends,
//! its members are put in field-number order (a copy only when the text was not in that
//! order), and a map's entries in key order. A field is looked up in the descriptor when
//! its key is met, so an `Any`'s `@type` must be its first key.
//!
//! It is the fast path of the fast path: the checks the tree path makes before encoding
//! (the v2 hints, optional configs, `TypedStruct` bootstrap extensions) are made per
//! object as it is read, some of them more strictly (any `is_optional` key, any
//! `FilterConfig`, any `bootstrap_extensions`), and anything this builder or the encoder
//! would not take makes it give up; the caller then takes the tree path, whose answers,
//! errors, field paths and lines are the ones given before.

use std::borrow::Cow;

use prost::encoding;

use crate::json_tree::Node;
use crate::json_wire::{self, close, open, FieldTable};
use crate::static_descriptors::{Kind, MessageRef};
use crate::yaml_scan::Build;

/// The bootstrap's bytes and how many listeners and clusters its static resources list
/// (for exact-size vectors before prost decodes them).
pub(crate) struct Encoded {
    pub(crate) bytes: Vec<u8>,
    pub(crate) listeners: usize,
    pub(crate) clusters: usize,
}

const STATIC_RESOURCES: &str = "envoy.config.bootstrap.v3.Bootstrap.StaticResources";

/// `text` as the wire bytes of `bootstrap` (the Bootstrap descriptor), or `None` when the
/// text or anything in it is left to the tree path (see the module comment). An empty
/// document is left to it too.
pub(crate) fn encode_bootstrap(bootstrap: MessageRef, text: &str) -> Option<Encoded> {
    let statics = MessageRef::by_name(STATIC_RESOURCES)?;
    let number_of = |name: &str| statics.field_by_key(name).map(|f| f.number);
    let build = WireBuild {
        bootstrap,
        static_resources: statics,
        listeners_number: number_of("listeners")?,
        clusters_number: number_of("clusters")?,
        buf: Vec::with_capacity(text.len()),
        scratch: Vec::new(),
        frames: Vec::new(),
        segments: Vec::new(),
        table: FieldTable::default(),
        checked_keys: Vec::new(),
        recent: vec![(0, "", 0); RECENT_SLOTS].into_boxed_slice(),
        depth: 0,
        listeners: 0,
        clusters: 0,
    };
    let (build, value) = crate::yaml_scan::scan(text, build, Slot::Root)?;
    value?;
    build.frames.is_empty().then_some(Encoded {
        bytes: build.buf,
        listeners: build.listeners,
        clusters: build.clusters,
    })
}

/// Where a node goes: the frame it goes into is the innermost one when the node starts.
#[derive(Clone, Copy)]
pub(crate) enum Slot {
    /// The document: the bootstrap.
    Root,
    /// The value of the member whose key the innermost mapping met last.
    Member,
    /// An item of the innermost list.
    Item,
    /// An `Any`'s `@type`.
    TypeUrl,
}

/// What the v2-hint check reads of a mapping (as `v2_hints` reads an object of the
/// tree), and the member being read.
struct Object<'a> {
    /// The key the mapping is under; `None` in a list or at the top.
    key: Option<&'a str>,
    /// The key of the innermost list it is in (`Some("")` for a list with no key).
    list: Option<&'a str>,
    /// Where its members start in [`WireBuild::segments`].
    segments: usize,
    /// The key of the member being read, and where its bytes start.
    pending: &'a str,
    member_start: usize,
    typed_config: bool,
    /// A `name` that the v2 check reads as an extension's name.
    checked_name: bool,
}

impl<'a> Object<'a> {
    fn new(key: Option<&'a str>, list: Option<&'a str>, segments: usize) -> Self {
        Self {
            key,
            list,
            segments,
            pending: "",
            member_start: 0,
            typed_config: false,
            checked_name: false,
        }
    }

    fn is_extension(&self) -> bool {
        crate::v2_hints::extension_list(self.list)
            || self
                .key
                .is_some_and(|k| k.ends_with("transport_socket") || k.ends_with("transportSocket"))
    }

    /// The v2-hint check of one key (`v2_hints`' per-object check), the stricter stand-ins
    /// for the passes the tree path makes before encoding, and a key the walks would not
    /// reflect plainly.
    fn check_key(&mut self, key: &str) -> Option<()> {
        match key {
            "hosts" if self.list == Some("clusters") => return None,
            "tls_context" | "tlsContext" if self.key != Some("match") => return None,
            "config" if self.is_extension() => return None,
            "typed_config" | "typedConfig" => self.typed_config = true,
            "is_optional" | "isOptional" | "bootstrap_extensions" | "bootstrapExtensions" => {
                return None
            }
            key if key.bytes().any(|b| b == b'.' || b == b'[') => return None,
            _ => {}
        }
        Some(())
    }

    /// Whether [`Self::check_key`] looks at `key` beyond its characters.
    fn checks_key(key: &str) -> bool {
        matches!(
            key,
            "hosts"
                | "tls_context"
                | "tlsContext"
                | "config"
                | "typed_config"
                | "typedConfig"
                | "is_optional"
                | "isOptional"
                | "bootstrap_extensions"
                | "bootstrapExtensions"
        )
    }

    /// The check made when the mapping ends.
    fn check_end(&self) -> Option<()> {
        (!(self.checked_name && !self.typed_config && self.is_extension())).then_some(())
    }
}

/// An `Any` being read.
#[derive(Clone, Copy, PartialEq)]
enum AnyState {
    /// Not an `Any`.
    No,
    /// Before its `@type`.
    Pending,
    /// Its contents, whose length byte is at `at`.
    Contents { at: usize },
}

struct MessageFrame<'a> {
    object: Object<'a>,
    /// `None` for an `Any` before its `@type`.
    descriptor: Option<MessageRef>,
    /// Its [`MessageRef::id`] (an `Any`'s until its `@type`), for the field lookups.
    message: usize,
    /// Whether the supported-field check looks at its fields.
    checking: bool,
    /// Its length byte (none for the bootstrap).
    open: Option<usize>,
    any: AnyState,
    /// The field being read (a place in [`WireBuild::infos`]).
    member: u32,
}

/// A map field's entries (string keys).
struct MapFrame<'a> {
    object: Object<'a>,
    number: u32,
    value_kind: Kind,
    checking: bool,
    /// The length byte of the entry being read.
    entry_open: usize,
}

/// A repeated field's items.
struct ListFrame<'a> {
    number: u32,
    kind: Kind,
    checking: bool,
    /// The key it is under.
    key: &'a str,
    /// A packed list: where its key starts and its length byte.
    packed: Option<(usize, usize)>,
    items: usize,
}

enum Frame<'a> {
    Message(MessageFrame<'a>),
    Map(MapFrame<'a>),
    List(ListFrame<'a>),
}

impl<'a> Frame<'a> {
    /// The innermost list key for what is inside.
    fn list(&self) -> Option<&'a str> {
        match self {
            Frame::Message(f) => f.object.list,
            Frame::Map(f) => f.object.list,
            Frame::List(f) => Some(f.key),
        }
    }

    /// The key of the member being read, for a mapping.
    fn pending(&self) -> Option<&'a str> {
        match self {
            Frame::Message(f) => Some(f.object.pending),
            Frame::Map(f) => Some(f.object.pending),
            Frame::List(_) => None,
        }
    }
}

/// One member written: a field of a message (its bytes, any number of list items) or
/// an entry of a map.
struct Segment<'a> {
    number: u32,
    /// Its field's oneof (see [`FieldInfo`]), 0 for none.
    oneof: usize,
    /// A map entry's key.
    key: &'a str,
    start: usize,
    end: usize,
}

struct WireBuild<'a> {
    bootstrap: MessageRef,
    static_resources: MessageRef,
    listeners_number: u32,
    clusters_number: u32,
    buf: Vec<u8>,
    /// Room for reordering members.
    scratch: Vec<u8>,
    frames: Vec<Frame<'a>>,
    /// The members of every mapping being read, innermost last.
    segments: Vec<Segment<'a>>,
    /// Fields found by key so far, as in `json_wire`.
    table: FieldTable<'a>,
    /// Per place in `table.infos`: whether the key it was found by is one [`Object::check_key`]
    /// looks at beyond its characters.
    checked_keys: Vec<bool>,
    /// Fields found lately, by [`recent_slot`] of message and key: one probe and one
    /// compare before `table`'s hash map (whose lookup cost a tenth of the scan).
    recent: Box<[(usize, &'a str, u32)]>,
    /// Messages open (as `json_wire` counts its nesting).
    depth: u32,
    listeners: usize,
    clusters: usize,
}

impl<'a> WireBuild<'a> {
    /// A message field's value starts (`number`'s key and length byte written).
    fn message_start(&mut self, number: u32, descriptor: MessageRef, checking: bool) -> Option<()> {
        let any = descriptor.is_well_known() && descriptor.full_name() == "google.protobuf.Any";
        if !any && descriptor.is_well_known() {
            // Wrappers and durations are scalars; other well-known types are left.
            return None;
        }
        let parent = self.frames.last();
        let object = Object::new(
            parent.and_then(Frame::pending),
            parent.and_then(Frame::list),
            self.segments.len(),
        );
        self.depth += 1;
        if self.depth > json_wire::DEPTH_LIMIT {
            return None;
        }
        let open = open(number, &mut self.buf);
        self.frames.push(Frame::Message(MessageFrame {
            object,
            message: descriptor.id(),
            descriptor: (!any).then_some(descriptor),
            checking,
            open: Some(open),
            any: if any { AnyState::Pending } else { AnyState::No },
            member: 0,
        }));
        Some(())
    }

    /// Puts the members from `from` on in order (by field number, or by key for a map),
    /// giving up on two members of one field or key.
    fn order_members(&mut self, from: usize, by_key: bool) -> Option<()> {
        let segments = &mut self.segments[from..];
        let ordered = if by_key {
            segments.windows(2).all(|pair| pair[0].key < pair[1].key)
        } else {
            segments
                .windows(2)
                .all(|pair| pair[0].number < pair[1].number)
        };
        if ordered {
            return Some(());
        }
        let base = segments.first()?.start;
        if by_key {
            segments.sort_unstable_by(|a, b| a.key.cmp(b.key));
            if segments.windows(2).any(|pair| pair[0].key == pair[1].key) {
                return None;
            }
        } else {
            segments.sort_unstable_by_key(|segment| segment.number);
            if segments
                .windows(2)
                .any(|pair| pair[0].number == pair[1].number)
            {
                return None;
            }
        }
        self.scratch.clear();
        for segment in segments.iter() {
            self.scratch
                .extend_from_slice(&self.buf[segment.start..segment.end]);
        }
        self.buf[base..].copy_from_slice(&self.scratch);
        Some(())
    }

    /// The innermost frame, a message, ends: its members put in order and its length
    /// written. What is needed of the frame is read in place and the frame dropped there
    /// (moving it out of `frames` cost a copy of its bytes per message).
    fn end_message(&mut self) -> Option<()> {
        let Some(Frame::Message(frame)) = self.frames.last() else {
            return None;
        };
        let (from, any, open) = (frame.object.segments, frame.any, frame.open);
        frame.object.check_end()?;
        self.frames.truncate(self.frames.len() - 1);
        self.order_members(from, false)?;
        let oneofs = self.segments[from..]
            .iter()
            .map(|segment| segment.oneof)
            .filter(|&oneof| oneof != 0);
        for (i, oneof) in oneofs.clone().enumerate() {
            if oneofs.clone().skip(i + 1).any(|other| other == oneof) {
                return None;
            }
        }
        self.segments.truncate(from);
        self.depth -= 1;
        match any {
            AnyState::No => {}
            AnyState::Pending => return None,
            AnyState::Contents { at } => {
                if self.buf.len() == at + 1 {
                    // Empty contents: `value` holds its default and is not written.
                    self.buf.truncate(at - 1);
                } else {
                    close(at, &mut self.buf);
                }
            }
        }
        if let Some(at) = open {
            close(at, &mut self.buf);
        }
        Some(())
    }

    /// An `Any`'s `@type`: the contents' message found and `value` opened.
    fn type_url(&mut self, url: &str) -> Option<()> {
        if crate::v2_hints::v2_type_url(url) {
            return None;
        }
        let (_, name) = url.rsplit_once('/')?;
        if name.starts_with("google.protobuf.") || name == crate::optional::FILTER_CONFIG_TYPE {
            return None;
        }
        let descriptor = MessageRef::by_name(name)?;
        let Some(Frame::Message(frame)) = self.frames.last_mut() else {
            return None;
        };
        json_wire::string(1, url, &mut self.buf);
        let at = open(2, &mut self.buf);
        frame.checking = frame.checking && json_wire::checks_inside(descriptor);
        frame.message = descriptor.id();
        frame.descriptor = Some(descriptor);
        frame.any = AnyState::Contents { at };
        Some(())
    }
}

/// One scalar value of `kind` as field `number`; a default without `presence` is left
/// out (as `json_wire` writes it).
fn single(
    buf: &mut Vec<u8>,
    number: u32,
    kind: &Kind,
    value: &Node<'_>,
    presence: bool,
) -> Option<()> {
    match kind {
        Kind::String => {
            let text = match value {
                Node::String(text) => text,
                _ => return None,
            };
            if presence || !text.is_empty() {
                json_wire::string(number, text, buf);
            }
        }
        Kind::Message(descriptor) => {
            let name = descriptor.full_name();
            if let Some(wrapped) = json_wire::wrapper_kind(name) {
                let at = open(number, buf);
                single(buf, 1, &wrapped, value, false)?;
                close(at, buf);
            } else if let ("google.protobuf.Duration", Node::String(text)) = (name, value) {
                let (seconds, nanos) = json_wire::duration(text).ok()?;
                let at = open(number, buf);
                if seconds != 0 {
                    encoding::int64::encode(1, &seconds, buf);
                }
                if nanos != 0 {
                    encoding::int32::encode(2, &nanos, buf);
                }
                close(at, buf);
            } else {
                return None;
            }
        }
        kind => {
            let raw = json_wire::varint_of(kind, value).ok()?;
            if presence || raw != 0 {
                json_wire::key(number, encoding::WireType::Varint, buf);
                json_wire::varint(raw, buf);
            }
        }
    }
    Some(())
}

/// Slots of [`WireBuild::recent`]: more than the (message, key) pairs a bootstrap names.
const RECENT_SLOTS: usize = 1 << RECENT_BITS;
const RECENT_BITS: u32 = 10;

/// Where the field of `key` in the message whose name is at `message` is kept in
/// [`WireBuild::recent`]: a multiplicative hash of the key's first and last eight bytes,
/// its length and the message.
#[inline]
fn recent_slot(message: usize, key: &str) -> usize {
    let bytes = key.as_bytes();
    let (head, tail) = if bytes.len() >= 8 {
        let mut head = [0; 8];
        let mut tail = [0; 8];
        head.copy_from_slice(&bytes[..8]);
        tail.copy_from_slice(&bytes[bytes.len() - 8..]);
        (u64::from_le_bytes(head), u64::from_le_bytes(tail))
    } else {
        let word = bytes
            .iter()
            .rev()
            .fold(0u64, |word, &b| word << 8 | u64::from(b));
        (word, 0)
    };
    let mixed = head ^ tail.rotate_left(29) ^ (message as u64) ^ (bytes.len() as u64) << 56;
    (mixed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - RECENT_BITS)) as usize
}

/// The key as borrowed from the text (a key with escapes is left to the tree path).
fn borrowed<'a>(key: &Cow<'a, str>) -> Option<&'a str> {
    match key {
        Cow::Borrowed(key) => Some(key),
        Cow::Owned(_) => None,
    }
}

impl<'a> Build<'a> for WireBuild<'a> {
    type Value = ();
    type Slot = Slot;
    type Seq = ();
    type Map = ();

    fn scalar(&mut self, slot: Slot, scalar: Node<'a>) -> Option<()> {
        if matches!(scalar, Node::Null) {
            return None;
        }
        if let Slot::TypeUrl = slot {
            return match &scalar {
                Node::String(url) => self.type_url(url),
                _ => None,
            };
        }
        match (slot, self.frames.last_mut()?) {
            (Slot::Member, Frame::Message(frame)) => {
                if frame.object.pending == "name" {
                    frame.object.checked_name = matches!(&scalar,
                        Node::String(name) if crate::v2_hints::is_checked_filter_name(name));
                }
                let info = &self.table.infos[frame.member as usize];
                if info.map || info.list {
                    return None;
                }
                single(
                    &mut self.buf,
                    info.number,
                    &info.kind,
                    &scalar,
                    info.presence,
                )
            }
            (Slot::Member, Frame::Map(frame)) => {
                if frame.object.pending == "name" {
                    frame.object.checked_name = matches!(&scalar,
                        Node::String(name) if crate::v2_hints::is_checked_filter_name(name));
                }
                single(&mut self.buf, 2, &frame.value_kind, &scalar, true)
            }
            (Slot::Item, Frame::List(frame)) => {
                if frame.packed.is_some() {
                    let raw = json_wire::varint_of(&frame.kind, &scalar).ok()?;
                    json_wire::varint(raw, &mut self.buf);
                    Some(())
                } else {
                    single(&mut self.buf, frame.number, &frame.kind, &scalar, true)
                }
            }
            _ => None,
        }
    }

    fn seq_start(&mut self, slot: Slot) -> Option<()> {
        let (Slot::Member, Some(Frame::Message(frame))) = (slot, self.frames.last()) else {
            return None;
        };
        let info = &self.table.infos[frame.member as usize];
        if !info.list || info.map {
            return None;
        }
        let packed = info.packed.then(|| {
            let key_start = self.buf.len();
            (key_start, open(info.number, &mut self.buf))
        });
        let list = ListFrame {
            number: info.number,
            kind: info.kind,
            checking: frame.checking && info.checks_inside,
            key: frame.object.pending,
            packed,
            items: 0,
        };
        self.frames.push(Frame::List(list));
        Some(())
    }

    fn seq_item(&mut self, _: &()) -> Slot {
        Slot::Item
    }

    fn seq_push(&mut self, _: &mut (), (): ()) -> Option<()> {
        let Some(Frame::List(list)) = self.frames.last_mut() else {
            return None;
        };
        list.items += 1;
        Some(())
    }

    fn seq_end(&mut self, (): ()) -> Option<()> {
        let Some(Frame::List(list)) = self.frames.last() else {
            return None;
        };
        let (packed, number, items) = (list.packed, list.number, list.items);
        self.frames.truncate(self.frames.len() - 1);
        if let Some((key_start, at)) = packed {
            if self.buf.len() == at + 1 {
                self.buf.truncate(key_start);
            } else {
                close(at, &mut self.buf);
            }
        }
        if let Some(Frame::Message(parent)) = self.frames.last() {
            let in_statics = parent.descriptor == Some(self.static_resources);
            if in_statics && number == self.listeners_number {
                self.listeners = items;
            } else if in_statics && number == self.clusters_number {
                self.clusters = items;
            }
        }
        Some(())
    }

    fn map_start(&mut self, slot: Slot) -> Option<()> {
        match (slot, self.frames.last()) {
            (Slot::Root, None) => {
                let checking = json_wire::checks_inside(self.bootstrap);
                self.depth += 1;
                self.frames.push(Frame::Message(MessageFrame {
                    object: Object::new(None, None, 0),
                    message: self.bootstrap.id(),
                    descriptor: Some(self.bootstrap),
                    checking,
                    open: None,
                    any: AnyState::No,
                    member: 0,
                }));
                Some(())
            }
            (Slot::Member, Some(Frame::Message(frame))) => {
                let info = &self.table.infos[frame.member as usize];
                let checking = frame.checking && info.checks_inside;
                match info.kind {
                    Kind::Message(entry) if info.map => {
                        let (Kind::String, value_kind) = entry.map_entry_kinds()? else {
                            return None;
                        };
                        let map = MapFrame {
                            object: Object::new(
                                Some(frame.object.pending),
                                frame.object.list,
                                self.segments.len(),
                            ),
                            number: info.number,
                            value_kind,
                            checking,
                            entry_open: 0,
                        };
                        self.frames.push(Frame::Map(map));
                        Some(())
                    }
                    Kind::Message(message) if !info.list => {
                        self.message_start(info.number, message, checking)
                    }
                    _ => None,
                }
            }
            (Slot::Member, Some(Frame::Map(frame))) => match frame.value_kind {
                Kind::Message(message) => {
                    let checking = frame.checking;
                    self.message_start(2, message, checking)
                }
                _ => None,
            },
            (Slot::Item, Some(Frame::List(list))) => match list.kind {
                Kind::Message(message) => {
                    let (number, checking) = (list.number, list.checking);
                    self.message_start(number, message, checking)
                }
                _ => None,
            },
            _ => None,
        }
    }

    fn map_key(&mut self, _: &mut (), key: &Cow<'a, str>) -> Option<Slot> {
        let key = borrowed(key)?;
        let start = self.buf.len();
        match self.frames.last_mut()? {
            Frame::Message(frame) => {
                frame.object.pending = key;
                frame.object.member_start = start;
                match frame.any {
                    AnyState::Pending if key == "@type" => return Some(Slot::TypeUrl),
                    AnyState::Pending => return None,
                    AnyState::Contents { .. } if key == "@type" => return None,
                    _ => {}
                }
                let slot = recent_slot(frame.message, key);
                let info = match self.recent[slot] {
                    (message, recent, info) if message == frame.message && recent == key => info,
                    _ => {
                        let info = self.table.find(key, frame.descriptor?)?;
                        if self.checked_keys.len() < self.table.infos.len() {
                            // Found now for the first time.
                            self.checked_keys.push(Object::checks_key(key));
                        }
                        self.recent[slot] = (frame.message, key, info);
                        info
                    }
                };
                // A key that names a field holds no `.` or `[`: only the few names the
                // v2 check looks at are checked (per key met, the check cost a tenth
                // of the scan).
                if self.checked_keys[info as usize] {
                    frame.object.check_key(key)?;
                }
                frame.member = info;
                Some(Slot::Member)
            }
            Frame::Map(frame) => {
                frame.object.check_key(key)?;
                if key == "@type" {
                    return None;
                }
                frame.object.pending = key;
                frame.object.member_start = start;
                frame.entry_open = open(frame.number, &mut self.buf);
                json_wire::string(1, key, &mut self.buf);
                Some(Slot::Member)
            }
            Frame::List(_) => None,
        }
    }

    fn map_push(&mut self, _: &mut (), _: Cow<'a, str>, (): ()) -> Option<()> {
        let end = self.buf.len();
        let segment = match self.frames.last()? {
            Frame::Message(frame) => {
                if frame.any != AnyState::No && frame.object.pending == "@type" {
                    return Some(());
                }
                let info = &self.table.infos[frame.member as usize];
                let start = frame.object.member_start;
                if frame.checking && !info.allowed && end != start {
                    return None;
                }
                Segment {
                    number: info.number,
                    oneof: info.oneof,
                    key: "",
                    start,
                    end,
                }
            }
            Frame::Map(frame) => {
                close(frame.entry_open, &mut self.buf);
                Segment {
                    number: frame.number,
                    oneof: 0,
                    key: frame.object.pending,
                    start: frame.object.member_start,
                    end: self.buf.len(),
                }
            }
            Frame::List(_) => return None,
        };
        self.segments.push(segment);
        Some(())
    }

    fn map_end(&mut self, (): ()) -> Option<()> {
        match self.frames.last()? {
            Frame::Message(_) => self.end_message(),
            Frame::Map(frame) => {
                let from = frame.object.segments;
                frame.object.check_end()?;
                self.frames.truncate(self.frames.len() - 1);
                self.order_members(from, true)?;
                self.segments.truncate(from);
                Some(())
            }
            Frame::List(_) => None,
        }
    }
}

#[cfg(test)]
mod tests;
