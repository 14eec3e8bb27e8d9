//! `transport_socket_matcher`: the unified matcher that names a cluster's
//! `transport_socket_matches` entry per endpoint from its endpoint or locality metadata.
//! Evaluated like Envoy's: a list's first matching predicate wins, a nested matcher that
//! does not match lets the list go on (and a prefix map try shorter prefixes), and
//! `on_no_match` applies last. Metadata values that are not strings are read as Envoy
//! prints them (JSON, numbers in their shortest form).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;

use super::{SocketMatchMetadata, StringMatcher};

/// A matcher node (the root one is the cluster's `transport_socket_matcher`).
#[derive(Debug, Clone)]
pub enum SocketMatcher {
    /// `matcher_list`, then `on_no_match`.
    List {
        /// `matchers[]`, in order.
        matchers: Vec<(SocketPredicate, SocketOnMatch)>,
        /// `on_no_match`
        on_no_match: Option<Box<SocketOnMatch>>,
    },
    /// `matcher_tree` over one input, then `on_no_match`.
    Tree {
        /// `input`
        input: MetadataInput,
        /// `exact_match_map` or `prefix_match_map`.
        map: SocketTreeMap,
        /// `on_no_match`
        on_no_match: Option<Box<SocketOnMatch>>,
    },
    /// No `matcher_type`: only `on_no_match` (if any) applies.
    OnNoMatch(Option<Box<SocketOnMatch>>),
}

/// `matcher_tree`'s map.
#[derive(Debug, Clone)]
pub enum SocketTreeMap {
    /// `exact_match_map`
    Exact(HashMap<String, SocketOnMatch>),
    /// `prefix_match_map`, longest prefix first.
    Prefix(Vec<(String, SocketOnMatch)>),
}

/// A predicate of `matcher_list`.
#[derive(Debug, Clone)]
pub enum SocketPredicate {
    /// `single_predicate`: false when the input has no value.
    Single(MetadataInput, StringMatcher),
    /// `and_matcher`
    And(Vec<SocketPredicate>),
    /// `or_matcher`
    Or(Vec<SocketPredicate>),
    /// `not_matcher`
    Not(Box<SocketPredicate>),
}

/// `on_match` / `on_no_match`.
#[derive(Debug, Clone)]
pub enum SocketOnMatch {
    /// `TransportSocketNameAction`: the index of the named `transport_socket_matches`
    /// entry; `None` when no entry has the name (Envoy then uses the cluster's
    /// `transport_socket`, without a config error).
    Socket(Option<usize>),
    /// A nested `matcher`.
    Matcher(Box<SocketMatcher>),
}

/// Which metadata an input reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataSource {
    /// `EndpointMetadataInput`
    Endpoint,
    /// `LocalityMetadataInput`
    Locality,
}

/// `EndpointMetadataInput` / `LocalityMetadataInput`.
#[derive(Debug, Clone)]
pub struct MetadataInput {
    /// Whose metadata.
    pub source: MetadataSource,
    /// `filter` (default `envoy.lb`).
    pub filter: String,
    /// `path[].key` (empty: the input never has a value).
    pub path: Vec<String>,
}

impl MetadataInput {
    /// The value at `filter` / `path`, as a string (`None`: absent).
    fn value<'a>(&self, metadata: Option<&'a SocketMatchMetadata>) -> Option<Cow<'a, str>> {
        let filters = match self.source {
            MetadataSource::Endpoint => &metadata?.endpoint,
            MetadataSource::Locality => &metadata?.locality,
        };
        let (first, rest) = self.path.split_first()?;
        let mut value = filters.get(&self.filter)?.fields.get(first)?;
        for key in rest {
            match &value.kind {
                Some(prost_types::value::Kind::StructValue(s)) => value = s.fields.get(key)?,
                _ => return None,
            }
        }
        Some(match &value.kind {
            Some(prost_types::value::Kind::StringValue(s)) => Cow::Borrowed(s.as_str()),
            _ => {
                let mut out = String::new();
                write_json(value, &mut out);
                Cow::Owned(out)
            }
        })
    }
}

impl SocketPredicate {
    fn matches(&self, metadata: Option<&SocketMatchMetadata>) -> bool {
        match self {
            Self::Single(input, matcher) => {
                input.value(metadata).is_some_and(|v| matcher.matches(&v))
            }
            Self::And(all) => all.iter().all(|p| p.matches(metadata)),
            Self::Or(any) => any.iter().any(|p| p.matches(metadata)),
            Self::Not(p) => !p.matches(metadata),
        }
    }
}

impl SocketOnMatch {
    /// `Some(choice)` when it decides (a socket index or the cluster's socket), `None`
    /// when a nested matcher does not match.
    fn resolve(&self, metadata: Option<&SocketMatchMetadata>) -> Option<Option<usize>> {
        match self {
            Self::Socket(index) => Some(*index),
            Self::Matcher(m) => m.resolve(metadata),
        }
    }
}

impl SocketMatcher {
    /// The `transport_socket_matches` index an endpoint with `metadata` connects with
    /// (`None`: the cluster's `transport_socket`).
    pub fn select(&self, metadata: Option<&SocketMatchMetadata>) -> Option<usize> {
        self.resolve(metadata).flatten()
    }

    fn resolve(&self, metadata: Option<&SocketMatchMetadata>) -> Option<Option<usize>> {
        let (found, on_no_match) = match self {
            Self::List {
                matchers,
                on_no_match,
            } => (
                matchers
                    .iter()
                    .filter(|(p, _)| p.matches(metadata))
                    .find_map(|(_, on_match)| on_match.resolve(metadata)),
                on_no_match,
            ),
            Self::Tree {
                input,
                map,
                on_no_match,
            } => {
                let found = input.value(metadata).and_then(|v| match map {
                    SocketTreeMap::Exact(m) => m.get(v.as_ref())?.resolve(metadata),
                    SocketTreeMap::Prefix(m) => m
                        .iter()
                        .filter(|(prefix, _)| v.starts_with(prefix.as_str()))
                        .find_map(|(_, on_match)| on_match.resolve(metadata)),
                });
                (found, on_no_match)
            }
            Self::OnNoMatch(on_no_match) => (None, on_no_match),
        };
        found.or_else(|| on_no_match.as_ref()?.resolve(metadata))
    }
}

/// A metadata value as JSON (keys sorted, no spaces), numbers as [`write_number`].
fn write_json(value: &prost_types::Value, out: &mut String) {
    use prost_types::value::Kind;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => out.push_str("null"),
        Some(Kind::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Kind::NumberValue(n)) => write_number(*n, out),
        Some(Kind::StringValue(s)) => {
            out.push_str(&serde_json::Value::from(s.as_str()).to_string());
        }
        Some(Kind::ListValue(list)) => {
            out.push('[');
            for (i, item) in list.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Some(Kind::StructValue(s)) => {
            out.push('{');
            for (i, (key, item)) in s.fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::from(key.as_str()).to_string());
                out.push(':');
                write_json(item, out);
            }
            out.push('}');
        }
    }
}

/// A number as Envoy prints a metadata number: the shortest digits that read back, in
/// fixed or scientific notation (`1e+06`, `1.25e-05`), whichever is shorter (fixed on a
/// tie).
fn write_number(n: f64, out: &mut String) {
    if n.is_nan() {
        out.push_str("nan");
        return;
    }
    if n.is_infinite() {
        out.push_str(if n > 0.0 { "inf" } else { "-inf" });
        return;
    }
    let fixed = format!("{n}");
    let rust_sci = format!("{n:e}");
    // Rust writes `1.25e-5`; C's form has a sign and at least two exponent digits.
    let scientific = match rust_sci.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            let mut s = String::with_capacity(mantissa.len() + 5);
            let _ = write!(s, "{mantissa}e{sign}{digits:0>2}");
            s
        }
        None => rust_sci,
    };
    out.push_str(if scientific.len() < fixed.len() {
        &scientific
    } else {
        &fixed
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(n: f64) -> String {
        let mut out = String::new();
        write_number(n, &mut out);
        out
    }

    #[test]
    fn numbers_print_as_envoy_prints_them() {
        // Each pair was checked against Envoy 1.40 (an exact match on the printed form).
        for (n, want) in [
            (1.0, "1"),
            (10.0, "10"),
            (100.0, "100"),
            (120000.0, "120000"),
            (1e6, "1e+06"),
            (1e15, "1e+15"),
            (1.5e16, "1.5e+16"),
            (1e21, "1e+21"),
            (1e300, "1e+300"),
            (0.5, "0.5"),
            (0.1, "0.1"),
            (1e-4, "1e-04"),
            (1e-5, "1e-05"),
            (1.25e-5, "1.25e-05"),
            (1e-7, "1e-07"),
            (12345678.9, "12345678.9"),
            (123456789012.0, "123456789012"),
            (9007199254740994.0, "9007199254740994"),
            (-0.0, "-0"),
        ] {
            assert_eq!(number(n), want, "{n}");
        }
    }

    #[test]
    fn structs_and_lists_print_as_compact_json() {
        use prost_types::value::Kind;
        let v = |k| prost_types::Value { kind: Some(k) };
        let s = prost_types::Struct {
            fields: [
                ("b".to_string(), v(Kind::NumberValue(2.0))),
                (
                    "a".to_string(),
                    v(Kind::ListValue(prost_types::ListValue {
                        values: vec![v(Kind::NumberValue(1.0)), v(Kind::NullValue(0))],
                    })),
                ),
            ]
            .into_iter()
            .collect(),
        };
        let mut out = String::new();
        write_json(&v(Kind::StructValue(s)), &mut out);
        assert_eq!(out, r#"{"a":[1,null],"b":2}"#);
    }
}
