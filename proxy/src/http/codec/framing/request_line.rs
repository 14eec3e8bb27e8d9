//! What Envoy 1.40's HTTP/1 codec decides from a request line and head that hyper
//! decides differently: the methods it knows (others, lowercase included, are 400), the
//! request targets it takes (origin form, absolute `http(s)://` form, `*` for OPTIONS;
//! never a byte outside visible ASCII), the versions it answers 426 (HTTP/0.9-style lines
//! without a version, `HTTP/x.y` other than 1.0 and 1.1), and the heads it accepts that
//! httparse refuses, which are repaired in place before hyper reads them: runs of spaces
//! or tabs in the request line, obs-fold continuation lines (unfolded into one space),
//! bare CRs in header values (dropped, as Envoy forwards them).
//!
//! All of it runs only on the paths that are already rare: the method and target checks
//! are a few comparisons per head, and the repair and version checks only run once
//! httparse has refused a head.

/// Methods Envoy's HTTP/1 codec accepts, exactly (case-sensitive); measured on Envoy 1.40.
pub fn is_known_method(method: &str) -> bool {
    matches!(
        method,
        "GET"
            | "HEAD"
            | "POST"
            | "PUT"
            | "DELETE"
            | "OPTIONS"
            | "PATCH"
            | "CONNECT"
            | "TRACE"
            | "ACL"
            | "BIND"
            | "CHECKOUT"
            | "COPY"
            | "LINK"
            | "LOCK"
            | "MERGE"
            | "MKACTIVITY"
            | "MKCALENDAR"
            | "MKCOL"
            | "MOVE"
            | "MSEARCH"
            | "NOTIFY"
            | "PROPFIND"
            | "PROPPATCH"
            | "PURGE"
            | "REBIND"
            | "REPORT"
            | "SEARCH"
            | "SOURCE"
            | "SUBSCRIBE"
            | "UNBIND"
            | "UNLINK"
            | "UNLOCK"
            | "UNSUBSCRIBE"
    )
}

/// True when Envoy's codec takes `target` for a request with `method` other than
/// CONNECT: origin form, `*` for OPTIONS, or an absolute `http://` / `https://` URL with
/// an authority; nothing outside visible ASCII anywhere.
pub fn is_acceptable_target(method: &str, target: &str) -> bool {
    let bytes = target.as_bytes();
    if bytes.iter().any(|&b| !(0x21..0x7f).contains(&b)) {
        return false;
    }
    match bytes.first() {
        Some(b'/') => true,
        Some(b'*') => bytes.len() == 1 && method == "OPTIONS",
        _ => absolute_authority(bytes).is_some_and(|a| !a.is_empty()),
    }
}

/// The authority of an absolute `http://` or `https://` target (scheme case-insensitive).
fn absolute_authority(target: &[u8]) -> Option<&[u8]> {
    let colon = target.iter().position(|&b| b == b':')?;
    let scheme = &target[..colon];
    if !(scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https")) {
        return None;
    }
    let rest = target[colon..].strip_prefix(b"://".as_slice())?;
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// The request line of a head (after the empty lines httparse skips), without its line
/// ending; None when it has not ended yet.
fn request_line(head: &[u8]) -> Option<&[u8]> {
    let start = head.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let line = &head[start..];
    let end = line.iter().position(|&b| b == b'\n')?;
    let line = &line[..end];
    Some(line.strip_suffix(b"\r").unwrap_or(line))
}

/// True when a head httparse refused has a request line Envoy answers with 426: a method
/// and a target and no version (HTTP/0.9), or an `HTTP/<digit>.<digit>` version other
/// than 1.0 and 1.1.
pub fn has_unsupported_version(head: &[u8]) -> bool {
    let Some(line) = request_line(head) else {
        return false;
    };
    let mut words = line.split(|&b| is_blank(b)).filter(|w| !w.is_empty());
    let (Some(_method), Some(_target)) = (words.next(), words.next()) else {
        return false;
    };
    let Some(version) = words.next() else {
        return true;
    };
    if words.next().is_some() {
        return false;
    }
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] => {
            major.is_ascii_digit()
                && minor.is_ascii_digit()
                && !(*major == b'1' && matches!(minor, b'0' | b'1'))
        }
        _ => false,
    }
}

/// Rewrites, in place, the head at the start of `data` (which ends at `head_len`) into
/// the form Envoy reads it in: the request line's words joined by single spaces, obs-fold
/// lines joined to the line before with one space, bare CRs in header values dropped.
/// The bytes after the head move up behind it. Returns the new length of `data`, or None
/// (nothing changed) when the head has something else wrong, which stays hyper's 400.
pub fn repair_head(data: &mut [u8], head_len: usize) -> Option<usize> {
    let head = &data[..head_len];
    let start = head.iter().position(|&b| b != b'\r' && b != b'\n')?;
    // First a dry run, so that nothing is written unless the whole head can be repaired.
    let repaired_len = repair_into(head, start, None)?;
    let mut out = vec![0u8; repaired_len];
    repair_into(head, start, Some(&mut out))?;
    data[..repaired_len].copy_from_slice(&out);
    data.copy_within(head_len.., repaired_len);
    Some(data.len() - (head_len - repaired_len))
}

/// Writes the repaired head (from the request line at `start`) to `out` when given, and
/// returns its length (the empty lines before the request line included).
fn repair_into(head: &[u8], start: usize, mut out: Option<&mut [u8]>) -> Option<usize> {
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        if let Some(out) = out.as_deref_mut() {
            out[len..len + bytes.len()].copy_from_slice(bytes);
        }
        len += bytes.len();
    };
    put(&head[..start]);
    let mut lines = head[start..].split_inclusive(|&b| b == b'\n');
    // Request line: three words separated by single spaces.
    let line = lines.next()?;
    let (text, ending) = split_ending(line);
    let mut words = text.split(|&b| is_blank(b)).filter(|w| !w.is_empty());
    let (method, target, version) = (words.next()?, words.next()?, words.next()?);
    if words.next().is_some() {
        return None;
    }
    for (i, word) in [method, target, version].into_iter().enumerate() {
        if i > 0 {
            put(b" ");
        }
        put(word);
    }
    put(ending);
    // Header lines, then the empty line that ends the head.
    let mut first_header = true;
    let mut pending_ending: Option<&[u8]> = None;
    for line in lines {
        let (text, ending) = split_ending(line);
        if text.is_empty() {
            // The empty line: the head ends.
            if let Some(previous) = pending_ending.take() {
                put(previous);
            }
            put(ending);
            return Some(len);
        }
        if is_blank(text[0]) {
            // obs-fold: continues the previous header's value, after one space.
            if first_header {
                return None;
            }
            let rest = &text[text
                .iter()
                .position(|&b| !is_blank(b))
                .unwrap_or(text.len())..];
            put(b" ");
            put_value(rest, &mut put);
        } else {
            if let Some(previous) = pending_ending.take() {
                put(previous);
            }
            let colon = text.iter().position(|&b| b == b':')?;
            if text[..colon].contains(&b'\r') {
                return None;
            }
            put(&text[..=colon]);
            put_value(&text[colon + 1..], &mut put);
        }
        first_header = false;
        pending_ending = Some(ending);
    }
    // The head always ends with an empty line.
    None
}

/// Writes a header value without its bare CRs.
fn put_value(value: &[u8], put: &mut impl FnMut(&[u8])) {
    for part in value.split(|&b| b == b'\r') {
        put(part);
    }
}

/// A line's text and its ending (`\r\n` or `\n`).
fn split_ending(line: &[u8]) -> (&[u8], &[u8]) {
    let split = if line.ends_with(b"\r\n") {
        line.len() - 2
    } else if line.ends_with(b"\n") {
        line.len() - 1
    } else {
        line.len()
    };
    line.split_at(split)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repaired(head: &str, after: &str) -> Option<String> {
        let mut data = format!("{head}{after}").into_bytes();
        let len = repair_head(&mut data, head.len())?;
        Some(String::from_utf8_lossy(&data[..len]).into_owned())
    }

    #[test]
    fn heads_are_repaired_as_envoy_reads_them() {
        assert_eq!(
            repaired("GET  /  HTTP/1.1\r\nhost: t\r\n\r\n", "NEXT").as_deref(),
            Some("GET / HTTP/1.1\r\nhost: t\r\n\r\nNEXT")
        );
        assert_eq!(
            repaired("GET /\tHTTP/1.1 \r\nx: a\r\n \tb\r\n\r\n", "").as_deref(),
            Some("GET / HTTP/1.1\r\nx: a b\r\n\r\n")
        );
        assert_eq!(
            repaired("GET / HTTP/1.1\r\nx: b\rc\r\nhost: t\r\n\r\n", "").as_deref(),
            Some("GET / HTTP/1.1\r\nx: bc\r\nhost: t\r\n\r\n")
        );
        assert_eq!(
            repaired("\r\nGET / HTTP/1.1\nx: a\n b\n\n", "z").as_deref(),
            Some("\r\nGET / HTTP/1.1\nx: a b\n\nz")
        );
        // Left to hyper's 400: a fold before any header, a CR in a name, a line with no
        // colon, a request line with a fourth word.
        assert_eq!(repaired("GET / HTTP/1.1\r\n x: a\r\n\r\n", ""), None);
        assert_eq!(repaired("GET / HTTP/1.1\r\nx\ry: a\r\n\r\n", ""), None);
        assert_eq!(repaired("GET / HTTP/1.1\r\nnocolon\r\n\r\n", ""), None);
        assert_eq!(repaired("GET / x HTTP/1.1\r\nh: a\r\n\r\n", ""), None);
    }

    #[test]
    fn versions_envoy_answers_426() {
        assert!(has_unsupported_version(b"GET / HTTP/1.2\r\n\r\n"));
        assert!(has_unsupported_version(
            b"GET / HTTP/2.0\r\nhost: t\r\n\r\n"
        ));
        assert!(has_unsupported_version(b"GET /\r\nhost: t\r\n\r\n"));
        assert!(has_unsupported_version(b"\r\nGET /\r\n"));
        assert!(!has_unsupported_version(b"GET / http/1.1\r\n\r\n"));
        assert!(!has_unsupported_version(b"GET / FOO/1.1\r\n\r\n"));
        assert!(!has_unsupported_version(b"GET / HTTP/1.10\r\n\r\n"));
        assert!(!has_unsupported_version(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(!has_unsupported_version(b"GET / HTTP/1.2"));
    }

    #[test]
    fn targets_envoy_takes() {
        assert!(is_acceptable_target("GET", "/a?b"));
        assert!(is_acceptable_target("GET", "http://x"));
        assert!(is_acceptable_target("GET", "HTTPS://x/y"));
        assert!(is_acceptable_target("OPTIONS", "*"));
        assert!(!is_acceptable_target("GET", "*"));
        assert!(!is_acceptable_target("GET", "abc"));
        assert!(!is_acceptable_target("GET", "x:y"));
        assert!(!is_acceptable_target("GET", "foo://x/"));
        assert!(!is_acceptable_target("GET", "http://"));
        assert!(!is_acceptable_target("GET", "http:/x"));
        assert!(!is_acceptable_target("GET", "/caf\u{e9}"));
        assert!(is_known_method("MSEARCH"));
        assert!(!is_known_method("get"));
        assert!(!is_known_method("M-SEARCH"));
    }
}
