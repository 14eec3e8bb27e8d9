//! The compact JSON tree a bootstrap's text is scanned into ([`Node`]), and the read-only
//! view ([`JsonView`]) that the walks reading a document before the proto mapping (the
//! v2-hint check, the optional-config check, the wire encoder) share between it and
//! `serde_json::Value`.
//!
//! A `serde_json::Value` holds every scalar as its own `String` and every object as a
//! `BTreeMap` (a leaf of about 630 bytes whatever its size): a 10,000-cluster bootstrap
//! was 300,000 strings and 130,000 leaves, about 80 MiB and 430,000 blocks allocated and
//! freed. Here an object is one exact-size slice of its members, sorted by key as the map
//! keeps them (so every walk meets keys in the order it met them in a `Value`), and a
//! string is borrowed from the text unless it had escapes. A document that leaves the
//! fast path becomes a `Value` ([`Node::into_value`]) and goes the way it always went.

use std::borrow::Cow;

use serde_json::{Map, Number, Value};

/// One JSON value borrowing its strings from the text `'t` where it can.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node<'t> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'t, str>),
    Array(Box<[Node<'t>]>),
    /// Members sorted by key, keys unique.
    Object(Box<[(Cow<'t, str>, Node<'t>)]>),
}

impl Node<'_> {
    /// The same document as a `serde_json::Value`.
    pub(crate) fn into_value(self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(b),
            Node::Number(n) => Value::Number(n),
            Node::String(s) => Value::String(s.into_owned()),
            Node::Array(items) => {
                Value::Array(items.into_vec().into_iter().map(Node::into_value).collect())
            }
            Node::Object(members) => Value::Object(
                members
                    .into_vec()
                    .into_iter()
                    .map(|(key, value)| (key.into_owned(), value.into_value()))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }
}

/// What the walks before the proto mapping read of a JSON document, implemented by
/// [`Node`] and by `serde_json::Value` so one walk serves both. Object members come in
/// key order.
pub(crate) trait JsonView: Sized {
    fn is_null(&self) -> bool;
    fn as_bool(&self) -> Option<bool>;
    fn as_number(&self) -> Option<&Number>;
    fn as_str(&self) -> Option<&str>;
    fn as_array(&self) -> Option<&[Self]>;
    /// An object's members in key order; `None` for anything else.
    fn members(&self) -> Option<impl Iterator<Item = (&str, &Self)> + Clone>;
    /// The member `key` of an object.
    fn get(&self, key: &str) -> Option<&Self>;
}

impl JsonView for Node<'_> {
    fn is_null(&self) -> bool {
        matches!(self, Node::Null)
    }

    fn as_bool(&self) -> Option<bool> {
        match self {
            Node::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn as_number(&self) -> Option<&Number> {
        match self {
            Node::Number(n) => Some(n),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&[Self]> {
        match self {
            Node::Array(items) => Some(items),
            _ => None,
        }
    }

    fn members(&self) -> Option<impl Iterator<Item = (&str, &Self)> + Clone> {
        match self {
            Node::Object(members) => Some(members.iter().map(|(key, value)| (&**key, value))),
            _ => None,
        }
    }

    fn get(&self, key: &str) -> Option<&Self> {
        let Node::Object(members) = self else {
            return None;
        };
        members
            .binary_search_by(|(member, _)| (**member).cmp(key))
            .ok()
            .map(|at| &members[at].1)
    }
}

impl JsonView for Value {
    fn is_null(&self) -> bool {
        Value::is_null(self)
    }

    fn as_bool(&self) -> Option<bool> {
        Value::as_bool(self)
    }

    fn as_number(&self) -> Option<&Number> {
        match self {
            Value::Number(n) => Some(n),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        Value::as_str(self)
    }

    fn as_array(&self) -> Option<&[Self]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    fn members(&self) -> Option<impl Iterator<Item = (&str, &Self)> + Clone> {
        match self {
            Value::Object(map) => Some(map.iter().map(|(key, value)| (key.as_str(), value))),
            _ => None,
        }
    }

    fn get(&self, key: &str) -> Option<&Self> {
        match self {
            Value::Object(map) => map.get(key),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{JsonView, Node};
    use serde_json::json;

    #[test]
    fn node_reads_and_converts_like_the_value() {
        let tree = Node::Object(Box::new([
            (
                "a".into(),
                Node::Array(Box::new([Node::Null, Node::Bool(true)])),
            ),
            ("b".into(), Node::Number(7.into())),
            ("c".into(), Node::String("x".into())),
        ]));
        let value = tree.clone().into_value();
        assert_eq!(value, json!({"a": [null, true], "b": 7, "c": "x"}));
        for key in ["a", "b", "c", "d", ""] {
            assert_eq!(
                tree.get(key).map(|n| n.clone().into_value()).as_ref(),
                value.get(key),
                "{key}"
            );
        }
        let keys: Vec<&str> = tree.members().expect("object").map(|(k, _)| k).collect();
        let value_keys: Vec<&str> = value.members().expect("object").map(|(k, _)| k).collect();
        assert_eq!(keys, value_keys);
        assert_eq!(tree.get("c").and_then(JsonView::as_str), Some("x"));
        assert_eq!(
            tree.get("a").and_then(JsonView::as_array).map(<[_]>::len),
            Some(2)
        );
    }
}
