//! Connection-specific (hop-by-hop) headers never cross the proxy: `connection` and the
//! headers it names, `keep-alive`, `proxy-connection`, `transfer-encoding`, `upgrade`
//! (kept for upgrades), and `te` except `te: trailers`.

use http::header::{CONNECTION, EXPECT, TE, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue};

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Removes hop-by-hop headers. With `keep_upgrade`, `upgrade` and `connection` stay as
/// they came, value and position (the upstream must see the upgrade request / the client
/// the 101; Envoy relays both unchanged).
pub fn strip(headers: &mut HeaderMap, keep_upgrade: bool) {
    strip_and(headers, keep_upgrade, false);
}

/// [`strip`] for a request going upstream, which also loses `expect` (hyper answers
/// `expect: 100-continue` itself when the body is first read), found in the same pass.
pub fn strip_request(headers: &mut HeaderMap, keep_upgrade: bool) {
    strip_and(headers, keep_upgrade, true);
}

fn strip_and(headers: &mut HeaderMap, keep_upgrade: bool, expect: bool) {
    // One pass over the names first: most messages carry none of these (or only
    // `connection: keep-alive`), and every removal below hashes a name.
    let mut present = Present::default();
    for name in headers.keys() {
        // The names looked for are 2, 6, 7, 10, 16 and 17 bytes long: the length rules
        // out most names with one comparison instead of seven.
        match name.as_str().len() {
            2 => present.te |= *name == TE,
            6 => present.expect |= expect && *name == EXPECT,
            7 => present.upgrade |= *name == UPGRADE,
            10 => {
                if *name == CONNECTION {
                    present.connection = true;
                } else if *name == KEEP_ALIVE {
                    present.keep_alive = true;
                }
            }
            16 => present.proxy_connection |= *name == PROXY_CONNECTION,
            17 => present.transfer_encoding |= *name == TRANSFER_ENCODING,
            _ => {}
        }
    }
    let other = present.keep_alive
        || present.proxy_connection
        || present.transfer_encoding
        || present.upgrade;
    if !present.connection && !present.te && !other {
        if keep_upgrade {
            headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        }
        if present.expect {
            headers.remove(EXPECT);
        }
        return;
    }
    if present.connection && !keep_upgrade && remove_plain_connection(headers) {
        // `connection` named no other header (the usual `keep-alive`): gone.
    } else if present.connection {
        // Headers nominated by `connection` are hop-by-hop too. Its own value is a cheap
        // handle on shared bytes, read while the map changes.
        let conn = headers.get(CONNECTION).cloned();
        let tokens = conn
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .filter(|t| !(keep_upgrade && t.eq_ignore_ascii_case("upgrade")));
        for token in tokens {
            // `keep-alive` (the usual value) goes below in any case.
            if token.eq_ignore_ascii_case("keep-alive") {
                continue;
            }
            // `from_bytes` lowercases.
            if let Ok(n) = HeaderName::from_bytes(token.as_bytes()) {
                if n != TE && n != UPGRADE {
                    headers.remove(n);
                }
            }
        }
        if !keep_upgrade {
            headers.remove(CONNECTION);
        }
    }
    // (A flag may outlive a header the `connection` list already removed; never the
    // other way round.)
    if present.keep_alive {
        headers.remove(&KEEP_ALIVE);
    }
    if present.proxy_connection {
        headers.remove(&PROXY_CONNECTION);
    }
    if present.transfer_encoding {
        headers.remove(TRANSFER_ENCODING);
    }
    if keep_upgrade {
        if !headers.contains_key(CONNECTION) {
            headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        }
    } else if present.upgrade {
        headers.remove(UPGRADE);
    }
    if let Some(te) = present.te.then(|| headers.get(TE)).flatten() {
        let trailers = te
            .to_str()
            .unwrap_or("")
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("trailers"));
        if trailers {
            headers.insert(TE, HeaderValue::from_static("trailers"));
        } else {
            headers.remove(TE);
        }
    }
    if present.expect {
        headers.remove(EXPECT);
    }
}

/// Removes `connection` (one lookup) when its first value names no header to remove
/// with it (only `keep-alive`, `te` or `upgrade`, which go or stay by their own rules);
/// false, leaving the map as it was, otherwise. (Removals move the last header
/// into the gap, so the nominated headers must go before `connection` to keep the
/// order the upstream sees.)
fn remove_plain_connection(headers: &mut HeaderMap) -> bool {
    let http::header::Entry::Occupied(entry) = headers.entry(CONNECTION) else {
        return true;
    };
    // A value that is not visible ASCII names nothing.
    let plain = list_tokens(entry.get()).is_none_or(|mut tokens| {
        tokens.all(|t| {
            t.is_empty()
                || t.eq_ignore_ascii_case(b"keep-alive")
                || t.eq_ignore_ascii_case(b"te")
                || t.eq_ignore_ascii_case(b"upgrade")
        })
    });
    if plain {
        entry.remove();
    }
    plain
}

/// Which hop-by-hop names a header map holds ([`strip`]'s first pass).
#[derive(Default)]
struct Present {
    expect: bool,
    connection: bool,
    te: bool,
    keep_alive: bool,
    proxy_connection: bool,
    transfer_encoding: bool,
    upgrade: bool,
}

/// The lowercased upgrade protocol when this is an HTTP/1.1 upgrade request
/// (`connection: upgrade` plus `upgrade: X`).
pub fn upgrade_type(headers: &HeaderMap) -> Option<String> {
    let upgrade = headers.get(UPGRADE)?.to_str().ok()?;
    is_upgrade(headers).then(|| upgrade.trim().to_ascii_lowercase())
}

/// Whether this is an HTTP/1.1 upgrade request (see [`upgrade_type`]), without
/// allocating. The HTTP/1 framing check (`codec::framing`) reads the same headers the
/// same way.
///
/// `upgrade: h2c` is not one: Envoy drops the h2c upgrade headers and serves the request
/// as plain HTTP/1.1 (the hop-by-hop strip removes `upgrade`, `connection` and the
/// `http2-settings` it nominates).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().eq_ignore_ascii_case("h2c"));
    upgrade && connection_has(headers, "upgrade")
}

/// Whether a `connection` header names `token` (case-insensitively), without allocating.
pub fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(CONNECTION)
        .iter()
        .any(|v| has_token(v, token))
}

/// Whether a comma-separated value (`connection`, `te`) holds `token`, in any case. A
/// value that is not visible ASCII holds none (`to_str` refuses it). Split as bytes,
/// not as a `str`: this reads most messages' `connection`.
pub fn has_token(value: &HeaderValue, token: &str) -> bool {
    list_tokens(value)
        .is_some_and(|mut tokens| tokens.any(|t| t.eq_ignore_ascii_case(token.as_bytes())))
}

/// Whether a `connection` value names no header: only `keep-alive` (or nothing), or a
/// value that is not visible ASCII. [`strip`] removes every `connection` line and no
/// other header when the first line is such a value (see `remove_plain_connection`).
pub fn is_plain_keep_alive(value: &HeaderValue) -> bool {
    list_tokens(value).is_none_or(|mut tokens| {
        tokens.all(|t| t.is_empty() || t.eq_ignore_ascii_case(b"keep-alive"))
    })
}

/// The tokens of a comma-separated value, optional whitespace trimmed (empty ones
/// included); None when the value is not visible ASCII.
fn list_tokens(value: &HeaderValue) -> Option<impl Iterator<Item = &[u8]>> {
    let bytes = value.as_bytes();
    if !bytes
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return None;
    }
    Some(bytes.split(|&b| b == b',').map(trim_whitespace))
}

/// `t` without leading and trailing spaces and tabs (all the whitespace a visible
/// ASCII value can hold).
fn trim_whitespace(mut t: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = t {
        t = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = t {
        t = rest;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_nominated() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-foo".parse().expect("v"));
        h.insert("x-foo", "1".parse().expect("v"));
        h.insert("keep-alive", "1".parse().expect("v"));
        h.insert("proxy-connection", "x".parse().expect("v"));
        h.insert("te", "trailers, deflate".parse().expect("v"));
        h.insert("upgrade", "websocket".parse().expect("v"));
        h.insert("x-keep", "1".parse().expect("v"));
        strip(&mut h, false);
        assert_eq!(h.len(), 2);
        assert_eq!(h["te"], "trailers");
        assert_eq!(h["x-keep"], "1");
    }

    #[test]
    fn a_message_without_hop_by_hop_headers_is_left_alone() {
        let mut h = HeaderMap::new();
        h.insert("content-length", "3".parse().expect("v"));
        h.insert("x-keep", "1".parse().expect("v"));
        strip(&mut h, false);
        assert_eq!(h.len(), 2);
        strip(&mut h, true);
        assert_eq!(h.len(), 3);
        assert_eq!(h["connection"], "upgrade");
    }

    #[test]
    fn nominated_names_go_whatever_their_case() {
        let mut h = HeaderMap::new();
        h.insert("connection", "Keep-Alive, Close, X-Foo".parse().expect("v"));
        h.insert("x-foo", "1".parse().expect("v"));
        h.insert("close", "2".parse().expect("v"));
        h.insert("x-keep", "1".parse().expect("v"));
        strip(&mut h, false);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-keep"], "1");
    }

    #[test]
    fn the_rest_keeps_the_order_it_had_with_one_removal_after_another() {
        // Each removal moves the last header into its place: `connection` goes first
        // only when it names nothing, as it did when it went after what it named.
        let names = |h: &HeaderMap| h.keys().map(|n| n.as_str().to_owned()).collect::<Vec<_>>();
        let mut h = HeaderMap::new();
        h.insert("host", "a".parse().expect("v"));
        h.insert("connection", "keep-alive".parse().expect("v"));
        h.insert("accept", "*/*".parse().expect("v"));
        h.insert("keep-alive", "timeout=5".parse().expect("v"));
        h.insert("user-agent", "u".parse().expect("v"));
        strip(&mut h, false);
        assert_eq!(names(&h), ["host", "user-agent", "accept"]);
        let mut h = HeaderMap::new();
        h.insert("host", "a".parse().expect("v"));
        h.insert("connection", "x-foo".parse().expect("v"));
        h.insert("accept", "*/*".parse().expect("v"));
        h.insert("x-foo", "1".parse().expect("v"));
        h.insert("user-agent", "u".parse().expect("v"));
        strip(&mut h, false);
        assert_eq!(names(&h), ["host", "user-agent", "accept"]);
    }

    #[test]
    fn a_request_going_upstream_loses_expect() {
        let mut h = HeaderMap::new();
        h.insert("expect", "100-continue".parse().expect("v"));
        h.insert("x-keep", "1".parse().expect("v"));
        strip(&mut h, false);
        assert!(h.contains_key("expect"));
        strip_request(&mut h, false);
        assert!(!h.contains_key("expect"));
        h.insert("expect", "100-continue".parse().expect("v"));
        h.insert("connection", "close".parse().expect("v"));
        strip_request(&mut h, false);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-keep"], "1");
    }

    #[test]
    fn tokens_are_found_as_a_str_split_finds_them() {
        let str_split = |v: &HeaderValue, token: &str| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        };
        for value in [
            &b"close"[..],
            b"Keep-Alive, CLOSE",
            b" \tclose\t ,x",
            b"closed",
            b"",
            b",,",
            b"x, clo se",
            b"close, \x80",
            b"upgrade,",
        ] {
            let value = HeaderValue::from_bytes(value).expect("value");
            for token in ["close", "keep-alive", "upgrade", ""] {
                assert_eq!(
                    has_token(&value, token),
                    str_split(&value, token),
                    "{value:?} {token}"
                );
            }
        }
    }

    #[test]
    fn keeps_upgrade_for_upgrades() {
        let mut h = HeaderMap::new();
        h.insert("connection", "Upgrade, keep-alive".parse().expect("v"));
        h.insert("upgrade", "WebSocket".parse().expect("v"));
        h.insert("keep-alive", "timeout=5".parse().expect("v"));
        assert_eq!(upgrade_type(&h).as_deref(), Some("websocket"));
        strip(&mut h, true);
        // As Envoy relays them: `connection` unchanged, the headers it names removed.
        assert_eq!(h["connection"], "Upgrade, keep-alive");
        assert_eq!(h["upgrade"], "WebSocket");
        assert!(!h.contains_key("keep-alive"));
    }

    #[test]
    fn h2c_is_not_an_upgrade() {
        let mut h = HeaderMap::new();
        h.insert("connection", "Upgrade, HTTP2-Settings".parse().expect("v"));
        h.insert("upgrade", "h2c".parse().expect("v"));
        h.insert(
            "http2-settings",
            "AAMAAABkAARAAAAAAAIAAAAA".parse().expect("v"),
        );
        assert!(!is_upgrade(&h));
        assert_eq!(upgrade_type(&h), None);
        strip(&mut h, false);
        assert!(h.is_empty(), "{h:?}");
    }
}
