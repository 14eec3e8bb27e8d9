//! Request header fields that arrive repeated and that Envoy joins into one before anything
//! reads them: `host` lines (joined with `,`) and HTTP/2 `cookie` crumbs (joined with `; `).

use http::header::{COOKIE, HOST};
use http::HeaderValue;

/// Envoy keeps one `host`: repeated `host` lines are joined with `,` (`test,other`).
/// Returns whether the request has a `host`.
pub(crate) fn join_repeated_host(headers: &mut http::HeaderMap) -> bool {
    let mut hosts = headers.get_all(HOST).iter();
    if hosts.next().is_none() {
        return false;
    }
    if hosts.next().is_none() {
        return true;
    }
    let mut joined = Vec::new();
    for value in headers.get_all(HOST) {
        if !joined.is_empty() {
            joined.push(b',');
        }
        joined.extend_from_slice(value.as_bytes());
    }
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(HOST, value);
    }
    true
}

/// HTTP/2 may split `cookie` into crumbs, one field each (RFC 9113 §8.2.3); like Envoy,
/// they are joined with `; ` into one `cookie` before anything reads them, so an HTTP/1
/// upstream gets one line.
pub(crate) fn join_cookie_crumbs(headers: &mut http::HeaderMap) {
    let mut crumbs = headers.get_all(COOKIE).iter();
    if crumbs.next().is_none() || crumbs.next().is_none() {
        return;
    }
    let mut joined = Vec::new();
    for value in headers.get_all(COOKIE) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(value.as_bytes());
    }
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_crumbs_are_joined_and_a_single_cookie_is_kept() {
        let mut headers = http::HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1"));
        join_cookie_crumbs(&mut headers);
        assert_eq!(
            headers.get(COOKIE).map(HeaderValue::as_bytes),
            Some(&b"a=1"[..])
        );
        headers.append(COOKIE, HeaderValue::from_static("b=2"));
        headers.append(COOKIE, HeaderValue::from_static("c=3"));
        join_cookie_crumbs(&mut headers);
        let all: Vec<_> = headers.get_all(COOKIE).iter().collect();
        assert_eq!(all, [HeaderValue::from_static("a=1; b=2; c=3")]);
    }
}
