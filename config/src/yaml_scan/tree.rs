//! What the scanner reads a document into ([`Build`]), and the compact tree it builds by
//! default ([`TreeBuild`]). The other builder writes a bootstrap's wire bytes as the text
//! is read ([`crate::yaml_wire`]).

use std::borrow::Cow;

use crate::json_tree::Node;

/// The scanner's events, in document order. A collection's slot is the place its value
/// goes (the tree has one kind of place; the wire builder knows a field by it), given
/// before the value is read; any `None` makes the scan give up.
pub(crate) trait Build<'a> {
    /// A node as read.
    type Value;
    /// Where a node goes.
    type Slot: Copy;
    /// A sequence being read.
    type Seq;
    /// A mapping being read.
    type Map;

    /// A scalar (`Node::Null` for an empty value).
    fn scalar(&mut self, slot: Self::Slot, scalar: Node<'a>) -> Option<Self::Value>;
    fn seq_start(&mut self, slot: Self::Slot) -> Option<Self::Seq>;
    /// Where the next item goes.
    fn seq_item(&mut self, seq: &Self::Seq) -> Self::Slot;
    fn seq_push(&mut self, seq: &mut Self::Seq, item: Self::Value) -> Option<()>;
    fn seq_end(&mut self, seq: Self::Seq) -> Option<Self::Value>;
    fn map_start(&mut self, slot: Self::Slot) -> Option<Self::Map>;
    /// A key met (its value not read yet): where its value goes.
    fn map_key(&mut self, map: &mut Self::Map, key: &Cow<'a, str>) -> Option<Self::Slot>;
    fn map_push(
        &mut self,
        map: &mut Self::Map,
        key: Cow<'a, str>,
        value: Self::Value,
    ) -> Option<()>;
    fn map_end(&mut self, map: Self::Map) -> Option<Self::Value>;
}

/// Builds the compact tree.
#[derive(Default)]
pub(super) struct TreeBuild<'a> {
    /// The members of every mapping being read, innermost last: one buffer for the whole
    /// scan, each mapping moved out into an exact-size slice when it ends.
    members: Vec<(Cow<'a, str>, Node<'a>)>,
    /// The same for the items of the sequences being read.
    items: Vec<Node<'a>>,
}

impl<'a> Build<'a> for TreeBuild<'a> {
    type Value = Node<'a>;
    type Slot = ();
    /// Where its items start in `items`.
    type Seq = usize;
    /// Where its members start in `members`.
    type Map = usize;

    fn scalar(&mut self, (): (), scalar: Node<'a>) -> Option<Node<'a>> {
        Some(scalar)
    }

    fn seq_start(&mut self, (): ()) -> Option<usize> {
        Some(self.items.len())
    }

    fn seq_item(&mut self, _: &usize) {}

    fn seq_push(&mut self, _: &mut usize, item: Node<'a>) -> Option<()> {
        self.items.push(item);
        Some(())
    }

    fn seq_end(&mut self, start: usize) -> Option<Node<'a>> {
        Some(Node::Array(self.items.drain(start..).collect()))
    }

    fn map_start(&mut self, (): ()) -> Option<usize> {
        Some(self.members.len())
    }

    fn map_key(&mut self, _: &mut usize, _: &Cow<'a, str>) -> Option<()> {
        Some(())
    }

    fn map_push(&mut self, _: &mut usize, key: Cow<'a, str>, value: Node<'a>) -> Option<()> {
        self.members.push((key, value));
        Some(())
    }

    /// The mapping sorted by key (as a `serde_json::Map` keeps them); `None` when a key
    /// is there twice.
    fn map_end(&mut self, start: usize) -> Option<Node<'a>> {
        let members = &mut self.members[start..];
        // Written in key order (JSON dumps often are), one pass shows it and leaves no
        // duplicate; else sort, then look for one.
        if !members.windows(2).all(|pair| pair[0].0 < pair[1].0) {
            members.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
            if members.windows(2).any(|pair| pair[0].0 == pair[1].0) {
                return None;
            }
        }
        Some(Node::Object(self.members.drain(start..).collect()))
    }
}
