//! YAML text straight into a `serde_json::Value`, without the intermediate YAML value
//! tree: one pass and one tree instead of two (a 10,000-cluster bootstrap spent about a
//! quarter of its start-up CPU building, converting and dropping the YAML tree, and its
//! peak heap held both trees).
//!
//! Only the plain case is taken here: every mapping key a string, no duplicate keys, no
//! tags. Anything else is an error, on which the caller falls back to the YAML value path,
//! so results and error messages stay exactly that path's.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses `text` into a JSON value, or `None` when the text needs the YAML value path
/// (merge keys, tags, non-string or duplicate keys, any syntax error).
pub(crate) fn parse(text: &str) -> Option<Value> {
    // Merge keys (`<<`) are resolved on the YAML value tree only.
    if text.contains("<<") {
        return None;
    }
    serde_yaml_ng::Deserializer::from_str(text)
        .deserialize_any(JsonVisitor)
        .ok()
}

/// Builds a JSON value from the deserializer's events.
struct JsonVisitor;

/// Marks input the fast path does not take; never shown (the caller falls back).
const FALL_BACK: &str = "needs the YAML value path";

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // NaN and infinities become null, as serializing the YAML value makes them.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(JsonSeed)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value = map.next_value_seed(JsonSeed)?;
            if object.insert(key, value).is_some() {
                // The YAML value path rejects duplicate keys with its own message.
                return Err(de::Error::custom(FALL_BACK));
            }
        }
        Ok(Value::Object(object))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, _data: A) -> Result<Value, A::Error> {
        // A tagged node (`!tag value`).
        Err(de::Error::custom(FALL_BACK))
    }
}

struct JsonSeed;

impl<'de> DeserializeSeed<'de> for JsonSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

/// A mapping key: strings only (the YAML value path turns `1`, `true` or `0x10` keys into
/// strings its own way).
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    /// The YAML value path, as `load::parse_text` takes it.
    fn via_yaml_value(text: &str) -> serde_json::Value {
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).expect("yaml");
        serde_json::to_value(&yaml).expect("json")
    }

    #[test]
    fn plain_documents_match_the_yaml_value_path() {
        for text in [
            "a: 1\nb: [x, 2, -3, 1.5, true, null, ~, '1', \"s\"]\nc: {d: {e: []}}\n",
            "a: &anchor {x: 1}\nb: *anchor\n",
            "n: 18446744073709551615\nm: -9223372036854775808\nf: 1e3\ng: .inf\nh: .nan\n",
            "s: |\n  multi\n  line\nt: >\n  folded\n",
            "{\"json\": {\"also\": [1, 2.5, \"three\"]}}",
            "regex: '^/a<b>!c'\n",
        ] {
            assert_eq!(parse(text), Some(via_yaml_value(text)), "{text}");
        }
    }

    #[test]
    fn other_inputs_take_the_yaml_value_path() {
        for text in [
            "a: 1\na: 2\n",
            "1: x\n",
            "true: x\n",
            "a: !tag 1\n",
            "base: &b {x: 1}\nc: {<<: *b}\n",
            "a: [\n",
            "---\na: 1\n---\nb: 2\n",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }
}
