//! Path rewrites on the path part of `:path` (never the query): RFC 3986 normalisation
//! (`normalize_path`), `merge_slashes` and unescaping `%2F`/`%5C`
//! (`path_with_escaped_slashes_action`). Each returns `None` when the path stays as it is,
//! after a scan that allocates nothing, so an already normal path costs one pass.
//!
//! The normalisation reproduces what Envoy answers (it uses Chromium's URL path
//! canonicaliser): `.` and `..` segments (also written `%2e`) are resolved and `..` never
//! climbs above the root; `\` is a `/`; escapes of unreserved characters
//! (`A-Z a-z 0-9 - . _ ~`) are decoded; other valid escapes are kept byte for byte (hex
//! case included, so `%2f` stays `%2f`); a `%` not followed by two hex digits is kept
//! literally; characters that must not appear raw (`"`, `^`, `{`, `|`, `}`, controls,
//! non-ASCII bytes, ...) are escaped with upper-case hex. Only `%00` (or a raw NUL) makes
//! a path invalid.

use thiserror::Error;

/// The path cannot be normalised (it holds an escaped or raw NUL byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("path holds a NUL byte")]
pub struct InvalidPath;

/// How the canonical form treats one byte found raw in a path (or decoded from `%XY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteClass {
    /// Copied as is, and kept escaped when it arrives escaped.
    Pass,
    /// Unreserved: copied as is, and decoded when it arrives escaped.
    Unreserved,
    /// Must be escaped when raw; kept escaped when escaped.
    Escape,
    /// `.`: may start a dot segment.
    Dot,
    /// NUL: the path is invalid.
    Invalid,
}

const fn class(b: u8) -> ByteClass {
    match b {
        0 => ByteClass::Invalid,
        b'.' => ByteClass::Dot,
        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => ByteClass::Unreserved,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'/' | b':' | b';'
        | b'=' | b'@' | b'[' | b']' => ByteClass::Pass,
        // Controls, space, `"#%<>?\^`{|}`, DEL and every non-ASCII byte.
        _ => ByteClass::Escape,
    }
}

fn is_slash(b: u8) -> bool {
    b == b'/' || b == b'\\'
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte `%XY` at `at` stands for, when it is a valid escape.
fn escaped_byte(path: &[u8], at: usize) -> Option<u8> {
    let hi = hex_value(*path.get(at + 1)?)?;
    let lo = hex_value(*path.get(at + 2)?)?;
    Some(hi << 4 | lo)
}

/// Length of the dot at `at` (`.` is 1, `%2e`/`%2E` is 3), 0 when there is none.
fn dot_len(path: &[u8], at: usize) -> usize {
    match path.get(at..) {
        Some([b'.', ..]) => 1,
        Some([b'%', b'2', b'e' | b'E', ..]) => 3,
        _ => 0,
    }
}

/// What a dot at the start of a segment means, given what follows it.
enum DotSegment {
    /// Part of a name (`.a`, `...`).
    Name,
    /// `.`: skip it and the `consumed` bytes after the dot (its slash).
    Current { consumed: usize },
    /// `..`: drop the previous segment; skip the `consumed` bytes after the first dot.
    Parent { consumed: usize },
}

fn dot_segment(path: &[u8], after_dot: usize) -> DotSegment {
    match path.get(after_dot) {
        None => return DotSegment::Current { consumed: 0 },
        Some(&b) if is_slash(b) => return DotSegment::Current { consumed: 1 },
        Some(_) => {}
    }
    let second = dot_len(path, after_dot);
    if second > 0 {
        match path.get(after_dot + second) {
            None => return DotSegment::Parent { consumed: second },
            Some(&b) if is_slash(b) => {
                return DotSegment::Parent {
                    consumed: second + 1,
                }
            }
            Some(_) => {}
        }
    }
    DotSegment::Name
}

/// True when [`canonical`] would change `path` (or reject it). Allocates nothing.
pub fn needs_canonicalizing(path: &str) -> bool {
    let p = path.as_bytes();
    if p.first() != Some(&b'/') {
        return true;
    }
    let mut i = 1;
    while i < p.len() {
        match p[i] {
            b'%' => {
                if let Some(v) = escaped_byte(p, i) {
                    if matches!(
                        class(v),
                        ByteClass::Unreserved | ByteClass::Dot | ByteClass::Invalid
                    ) {
                        return true;
                    }
                    i += 3;
                    continue;
                }
            }
            b'\\' => return true,
            b'.' => {
                // Nothing changed before here, so the output so far is the input.
                if p[i - 1] == b'/' && !matches!(dot_segment(p, i + 1), DotSegment::Name) {
                    return true;
                }
            }
            b => {
                if matches!(class(b), ByteClass::Escape | ByteClass::Invalid) {
                    return true;
                }
            }
        }
        i += 1;
    }
    false
}

fn push_escaped(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 0xf)] as char);
}

/// Drops the last segment of `out` (which ends with `/`), keeping the slash before it;
/// at the root nothing is dropped.
fn back_up_to_previous_slash(out: &mut String) {
    let bytes = out.as_bytes();
    let last = bytes.len() - 1;
    if last == 0 {
        return;
    }
    let previous = bytes[..last].iter().rposition(|&b| b == b'/').unwrap_or(0);
    out.truncate(previous + 1);
}

/// RFC 3986 normalisation of a path (no query), as Envoy's `normalize_path` does it.
/// `Ok(None)`: already normal.
pub fn canonical(path: &str) -> Result<Option<String>, InvalidPath> {
    if !needs_canonicalizing(path) {
        return Ok(None);
    }
    let out = rewrite(path)?;
    Ok((out != path).then_some(out))
}

/// The normalisation itself, without the quick scan in front.
fn rewrite(path: &str) -> Result<String, InvalidPath> {
    let p = path.as_bytes();
    let mut out = String::with_capacity(p.len() + 1);
    let mut valid = true;
    if p.first().is_none_or(|&b| !is_slash(b)) {
        out.push('/');
    }
    let mut i = 0;
    while i < p.len() {
        let b = p[i];
        let dot = dot_len(p, i);
        if dot > 0 {
            if out.ends_with('/') {
                match dot_segment(p, i + dot) {
                    DotSegment::Name => out.push('.'),
                    DotSegment::Current { consumed } => i += consumed,
                    DotSegment::Parent { consumed } => {
                        back_up_to_previous_slash(&mut out);
                        i += consumed;
                    }
                }
            } else {
                out.push('.');
            }
            i += dot;
            continue;
        }
        match (b, class(b)) {
            (b'\\', _) => out.push('/'),
            (b'%', _) => match escaped_byte(p, i) {
                Some(v) => {
                    match class(v) {
                        ByteClass::Unreserved => out.push(v as char),
                        kept => {
                            valid &= kept != ByteClass::Invalid;
                            // Kept exactly as sent: some servers care about hex case.
                            out.push_str(&path[i..i + 3]);
                        }
                    }
                    i += 3;
                    continue;
                }
                None => out.push('%'),
            },
            (_, ByteClass::Pass | ByteClass::Unreserved) => out.push(b as char),
            (_, ByteClass::Invalid) => {
                valid = false;
                push_escaped(&mut out, b);
            }
            (_, ByteClass::Escape | ByteClass::Dot) => push_escaped(&mut out, b),
        }
        i += 1;
    }
    if !valid {
        return Err(InvalidPath);
    }
    Ok(out)
}

/// `merge_slashes`: runs of `/` become one. A path of only slashes keeps a leading and a
/// trailing one (`///` -> `//`), as Envoy. `None`: nothing to merge.
pub fn merge_slashes(path: &str) -> Option<String> {
    if !path.contains("//") {
        return None;
    }
    let mut out = String::with_capacity(path.len());
    if path.starts_with('/') {
        out.push('/');
    }
    for (n, segment) in path.split('/').filter(|s| !s.is_empty()).enumerate() {
        if n > 0 {
            out.push('/');
        }
        out.push_str(segment);
    }
    if path.ends_with('/') {
        out.push('/');
    }
    (out != path).then_some(out)
}

/// `%2F`/`%2f` become `/` and `%5C`/`%5c` become `\` (the step before rejecting,
/// redirecting or forwarding a path with escaped slashes). `None`: there were none.
pub fn unescape_slashes(path: &str) -> Option<String> {
    let is_escaped_slash =
        |w: &[u8]| matches!(w, [b'%', b'2', b'f' | b'F'] | [b'%', b'5', b'c' | b'C']);
    let p = path.as_bytes();
    if !p.windows(3).any(is_escaped_slash) {
        return None;
    }
    let mut out = String::with_capacity(p.len());
    let mut i = 0;
    let mut copied_to = 0;
    while i + 3 <= p.len() {
        if is_escaped_slash(&p[i..i + 3]) {
            out.push_str(&path[copied_to..i]);
            out.push(if p[i + 1] == b'2' { '/' } else { '\\' });
            i += 3;
            copied_to = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&path[copied_to..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Normalisation table, every row checked against Envoy 1.40.
    #[test]
    fn canonical_matches_envoy() {
        let cases: &[(&str, &str)] = &[
            ("/a/../b", "/b"),
            ("/../a", "/a"),
            ("/..", "/"),
            ("/a/b/../../../../c", "/c"),
            ("/a/./b", "/a/b"),
            ("/a/.", "/a/"),
            ("/a/..", "/"),
            ("/a/b/../", "/a/"),
            ("/%2e%2E/x", "/x"),
            ("/a/%2e/b", "/a/b"),
            ("/a/%2e", "/a/"),
            ("/a/%2e%2e", "/"),
            ("/a/.%2E/b", "/b"),
            ("/a/%2E.", "/"),
            ("/%2ea", "/.a"),
            ("/a%2e", "/a."),
            ("/a%2E%2E", "/a.."),
            ("/..a/b", "/..a/b"),
            ("/a..b", "/a..b"),
            ("/.a", "/.a"),
            ("/...", "/..."),
            ("/a/...\\", "/a/.../"),
            ("/a/..%2f/b", "/a/..%2f/b"),
            ("/a\\b", "/a/b"),
            ("/a\\..\\b", "/b"),
            ("/a/.\\b", "/a/b"),
            ("/a/..\\", "/"),
            ("/%41%62%7e%2d%5f%2E", "/Ab~-_."),
            (
                "/%7E%2D%5F%30%39%5a%7a%60%01%7F%80%ff%20",
                "/~-_09Zz%60%01%7F%80%ff%20",
            ),
            (
                "/%21%24%26%27%28%29%2A%2B%2C%3B%3D%3A%40%5B%5D",
                "/%21%24%26%27%28%29%2A%2B%2C%3B%3D%3A%40%5B%5D",
            ),
            ("/%2f%2F", "/%2f%2F"),
            ("/%5c%25", "/%5c%25"),
            ("/%c0%af", "/%c0%af"),
            ("/%3F%23", "/%3F%23"),
            ("/%22%7c%7C%3c", "/%22%7c%7C%3c"),
            ("/a/%252e%252e/b", "/a/%252e%252e/b"),
            ("/a%zz", "/a%zz"),
            ("/a%2", "/a%2"),
            ("/a%", "/a%"),
            ("/A/B", "/A/B"),
            ("/[]!$&*+,;=:@~", "/[]!$&*+,;=:@~"),
            ("/\"q\"", "/%22q%22"),
            ("/a|b", "/a%7Cb"),
            ("/a{b}", "/a%7Bb%7D"),
            ("/a^b", "/a%5Eb"),
            ("/a`b", "/a%60b"),
            ("/<a>", "/%3Ca%3E"),
            ("/é", "/%C3%A9"),
            ("a/b/../c", "/a/c"),
            ("", "/"),
            ("/a//..//b", "/a//b"),
            ("///..", "//"),
        ];
        for (input, expected) in cases {
            let got = canonical(input).unwrap_or_else(|_| panic!("{input} rejected"));
            assert_eq!(
                got.as_deref().unwrap_or(input),
                *expected,
                "input {input:?}"
            );
        }
    }

    #[test]
    fn nul_bytes_make_a_path_invalid() {
        for input in [
            "/%00",
            "/a%00b",
            "/%%00",
            "/%2e%00",
            "/xyz/.%00../abc",
            "/a\0",
        ] {
            assert_eq!(canonical(input), Err(InvalidPath), "{input:?}");
        }
    }

    #[test]
    fn normal_paths_are_left_alone() {
        for input in [
            "/",
            "/a/b/c",
            "/a/b/",
            "/.a/..b/...",
            "/%2f%3Ax/%20",
            "/a%zz",
            "/~x",
        ] {
            assert_eq!(canonical(input), Ok(None), "{input}");
        }
    }

    /// The quick scan agrees with the full rewrite on every short path over the bytes
    /// that matter.
    #[test]
    fn quick_scan_agrees_with_rewrite() {
        const ALPHABET: &[u8] = b"/.%2eE\\aF0c";
        let mut buf = Vec::new();
        for len in 0..=6u32 {
            for n in 0..ALPHABET.len().pow(len) {
                buf.clear();
                buf.push(b'/');
                let mut k = n;
                for _ in 0..len {
                    buf.push(ALPHABET[k % ALPHABET.len()]);
                    k /= ALPHABET.len();
                }
                let path = std::str::from_utf8(&buf).expect("ascii");
                let changed = !matches!(rewrite(path), Ok(ref s) if s == path);
                assert_eq!(needs_canonicalizing(path), changed, "{path:?}");
            }
        }
    }

    #[test]
    fn merge_slashes_matches_envoy() {
        for (input, expected) in [
            ("///", "//"),
            ("//a//b/", "/a/b/"),
            ("/a//b", "/a/b"),
            ("/a/../b//", "/a/../b/"),
        ] {
            assert_eq!(merge_slashes(input).as_deref(), Some(expected), "{input}");
        }
        assert_eq!(merge_slashes("/a/b/"), None);
        assert_eq!(merge_slashes("/"), None);
        // Envoy leaves a path of two slashes as it is.
        assert_eq!(merge_slashes("//"), None);
    }

    #[test]
    fn unescape_slashes_matches_envoy() {
        assert_eq!(unescape_slashes("/a%2fb").as_deref(), Some("/a/b"));
        assert_eq!(
            unescape_slashes("/a%5c..%5Cb").as_deref(),
            Some("/a\\..\\b")
        );
        assert_eq!(
            unescape_slashes("/a%2F%2F/./c").as_deref(),
            Some("/a///./c")
        );
        assert_eq!(unescape_slashes("/a%252f"), None);
        assert_eq!(unescape_slashes("/a%2"), None);
        assert_eq!(unescape_slashes("/plain"), None);
    }
}
