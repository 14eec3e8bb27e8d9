//! Plain scalars resolved as serde_yaml_ng resolves an untagged one (YAML 1.2 core
//! schema: null, booleans, integers in 10/16/8/2, floats, else a string).

use std::borrow::Cow;

use serde_json::Number;

use crate::json_tree::Node;

/// Resolves a plain scalar as serde_yaml_ng does for an untagged one. `None` for the
/// integers it hands on as 128-bit (the JSON value path does not take them).
#[inline]
pub(crate) fn resolve_plain(text: &str) -> Option<Node<'_>> {
    // Most scalars (every key) start with a letter that begins no null, boolean or
    // number: a string without the comparisons below (inline: this is most calls).
    if text.as_bytes().first().is_some_and(|&b| {
        b.is_ascii_alphabetic() && !matches!(b, b'n' | b'N' | b't' | b'T' | b'f' | b'F')
    }) {
        return Some(Node::String(Cow::Borrowed(text)));
    }
    resolve_other(text)
}

/// [`resolve_plain`] of a scalar not starting with such a letter.
#[inline(never)]
fn resolve_other(text: &str) -> Option<Node<'_>> {
    let bytes = text.as_bytes();
    // Decimal digits without a leading zero (ports, statuses): the integer the steps
    // below give (up to 19 digits: within u64).
    if (1..=19).contains(&bytes.len())
        && (bytes.len() == 1 || bytes[0] != b'0')
        && bytes.iter().all(u8::is_ascii_digit)
    {
        if let Ok(int) = text.parse::<u64>() {
            return Some(Node::Number(int.into()));
        }
    }
    // Two dots (addresses, versions): no integer and no float reads that.
    if bytes.iter().filter(|&&b| b == b'.').nth(1).is_some() {
        return Some(Node::String(Cow::Borrowed(text)));
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Node::Null),
        "true" | "True" | "TRUE" => return Some(Node::Bool(true)),
        "false" | "False" | "FALSE" => return Some(Node::Bool(false)),
        _ => {}
    }
    let first = text.as_bytes()[0];
    // Every number starts with a digit, a sign or a dot; anything else is a string.
    if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.')) {
        return Some(Node::String(Cow::Borrowed(text)));
    }
    // A digit first and a byte no integer or float form holds (`1s`, `10ms`): a string,
    // without the parsers below.
    if first.is_ascii_digit()
        && bytes.iter().any(|&b| {
            !(b.is_ascii_hexdigit() || matches!(b, b'.' | b'+' | b'-' | b'x' | b'X' | b'o' | b'O'))
        })
    {
        return Some(Node::String(Cow::Borrowed(text)));
    }
    if let Some(int) = unsigned_int(text) {
        return Some(match u64::try_from(int) {
            Ok(int) => Node::Number(int.into()),
            Err(_) => return None,
        });
    }
    if let Some(int) = negative_int(text) {
        return Some(match i64::try_from(int) {
            Ok(int) => Node::Number(int.into()),
            Err(_) => return None,
        });
    }
    if !digits_but_not_number(text) {
        if let Some(float) = float(text) {
            return Some(Number::from_f64(float).map_or(Node::Null, Node::Number));
        }
    }
    Some(Node::String(Cow::Borrowed(text)))
}

/// An optional `+`, then `0x`/`0o`/`0b` digits or decimal digits (serde_yaml_ng's
/// `parse_unsigned_int` at 128 bits).
fn unsigned_int(text: &str) -> Option<u128> {
    let unsigned = text.strip_prefix('+').unwrap_or(text);
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(rest) = unsigned.strip_prefix(prefix) {
            if rest.starts_with(['+', '-']) {
                return None;
            }
            if let Ok(int) = u128::from_str_radix(rest, radix) {
                return Some(int);
            }
        }
    }
    if unsigned.starts_with(['+', '-']) || digits_but_not_number(text) {
        return None;
    }
    unsigned.parse::<u128>().ok()
}

/// `-` then `0x`/`0o`/`0b` digits or decimal digits (serde_yaml_ng's
/// `parse_negative_int` at 128 bits).
fn negative_int(text: &str) -> Option<i128> {
    let rest = text.strip_prefix('-')?;
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(digits) = rest.strip_prefix(prefix) {
            if digits.starts_with(['+', '-']) {
                // `-0x-1` would parse as positive below; serde_yaml_ng formats "--1".
                return None;
            }
            if let Ok(int) = i128::from_str_radix(&format!("-{digits}"), radix) {
                return Some(int);
            }
        }
    }
    if digits_but_not_number(text) {
        return None;
    }
    text.parse::<i128>().ok()
}

fn float(text: &str) -> Option<f64> {
    let unsigned = match text.strip_prefix('+') {
        Some(rest) if rest.starts_with(['+', '-']) => return None,
        Some(rest) => rest,
        None => text,
    };
    match unsigned {
        ".inf" | ".Inf" | ".INF" => return Some(f64::INFINITY),
        _ => {}
    }
    match text {
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    unsigned.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Leading zeros followed by digits are a string in YAML 1.2.
fn digits_but_not_number(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    digits.len() > 1 && digits.starts_with('0') && digits[1..].bytes().all(|b| b.is_ascii_digit())
}
