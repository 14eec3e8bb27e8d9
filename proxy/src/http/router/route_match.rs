//! Route matching: one request against one route's `match`, with Envoy's semantics for
//! path specifiers, `case_sensitive`, header matchers (including `invert_match` and
//! `treat_missing_header_as_empty`) and query parameter matchers.

use baton_config::model::{
    Fraction, HeaderMatchSpec, HeaderMatcher, PathMatch, PseudoHeader, QueryParameterMatcher,
    RouteMatch, RuntimeFraction, StringMatchKind, StringMatcher, TlsContextMatch,
};
use http::{HeaderMap, HeaderValue, Method};

/// The parts of a request a route match reads.
#[derive(Debug)]
pub struct MatchInput<'a> {
    /// `:method`
    pub method: &'a Method,
    /// `:path` with the query string (empty for CONNECT).
    pub path_and_query: &'a str,
    /// Request headers (HTTP/2 `:authority` is available as `host`).
    pub headers: &'a HeaderMap,
    /// `:scheme`
    pub scheme: &'a str,
    /// The downstream connection's client certificate (a route's `tls_context`).
    pub peer_certificate: PeerCertificateState,
}

/// Whether the downstream client presented a certificate over TLS and whether it was
/// validated (both false over plain text), for a route match's `tls_context`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerCertificateState {
    /// The client sent a certificate.
    pub presented: bool,
    /// It was checked against trusted CAs in this handshake (not on a resumed session,
    /// as Envoy's).
    pub validated: bool,
}

impl MatchInput<'_> {
    /// The path without query string or fragment.
    pub fn path(&self) -> &str {
        let end = self
            .path_and_query
            .find(['?', '#'])
            .unwrap_or(self.path_and_query.len());
        &self.path_and_query[..end]
    }

    fn query(&self) -> &str {
        match self.path_and_query.find('?') {
            Some(q) => {
                let rest = &self.path_and_query[q + 1..];
                &rest[..rest.find('#').unwrap_or(rest.len())]
            }
            None => "",
        }
    }
}

fn starts_with(s: &str, prefix: &str, case_sensitive: bool) -> bool {
    if case_sensitive {
        s.starts_with(prefix)
    } else {
        s.len() >= prefix.len()
            && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    }
}

fn equals(a: &str, b: &str, case_sensitive: bool) -> bool {
    if case_sensitive {
        a == b
    } else {
        a.eq_ignore_ascii_case(b)
    }
}

/// True when the path specifier matches.
pub fn path_matches(m: &PathMatch, case_sensitive: bool, input: &MatchInput<'_>) -> bool {
    let is_connect = input.method == Method::CONNECT;
    match m {
        PathMatch::Connect => is_connect,
        // Envoy matches `prefix` against the whole `:path`, query included.
        PathMatch::Prefix(p) => starts_with(input.path_and_query, p, case_sensitive),
        PathMatch::Path(p) => equals(input.path(), p, case_sensitive),
        PathMatch::Regex(r) => r.is_match(input.path()),
        PathMatch::PathSeparatedPrefix(p) => {
            let path = input.path();
            starts_with(path, p, case_sensitive)
                && (path.len() == p.len() || path.as_bytes()[p.len()] == b'/')
        }
    }
}

/// StringMatcher against a value.
pub fn string_matches(m: &StringMatcher, value: &str) -> bool {
    let ic = m.ignore_case;
    match &m.kind {
        StringMatchKind::Exact(e) => equals(value, e, !ic),
        StringMatchKind::Prefix(p) => starts_with(value, p, !ic),
        StringMatchKind::Suffix(s) => {
            value.len() >= s.len()
                && value.is_char_boundary(value.len() - s.len())
                && equals(&value[value.len() - s.len()..], s, !ic)
        }
        StringMatchKind::Contains(c) => {
            if ic {
                value.to_ascii_lowercase().contains(&c.to_ascii_lowercase())
            } else {
                value.contains(c.as_str())
            }
        }
        StringMatchKind::Regex(r) => r.is_match(value),
    }
}

/// One header matcher, as Envoy 1.40's: a header sent several times matches when one
/// of its values does (they are not joined), and `invert_match` inverts that outcome.
pub fn header_matches(m: &HeaderMatcher, headers: &HeaderMap) -> bool {
    let values = headers.get_all(&m.name).iter();
    header_values_match(m, values)
}

/// A header matcher against the request, pseudo-headers included.
pub fn request_header_matches(m: &HeaderMatcher, input: &MatchInput<'_>) -> bool {
    let pseudo = match m.pseudo {
        None => return header_matches(m, input.headers),
        Some(PseudoHeader::Method) => input.method.as_str(),
        Some(PseudoHeader::Path) => input.path_and_query,
        Some(PseudoHeader::Scheme) => input.scheme,
    };
    match HeaderValue::from_str(pseudo) {
        Ok(v) => header_values_match(m, std::iter::once(&v)),
        Err(_) => header_values_match(m, std::iter::empty()),
    }
}

fn header_values_match<'v>(
    m: &HeaderMatcher,
    values: impl Iterator<Item = &'v HeaderValue>,
) -> bool {
    let mut values = values.peekable();
    if values.peek().is_none() {
        // An absent header matches only a presence matcher that asks for absence
        // (`present_match: false`, or `true` inverted); a value matcher never matches
        // it, inverted or not (measured on Envoy 1.40), unless it reads a missing header
        // as empty.
        if m.treat_missing_as_empty {
            return value_matches(m, "") != m.invert;
        }
        return match m.spec {
            HeaderMatchSpec::Present(present) => present == m.invert,
            _ => false,
        };
    }
    let matched = values.any(|v| value_matches(m, &String::from_utf8_lossy(v.as_bytes())));
    matched != m.invert
}

/// One header value against the matcher's spec (before `invert_match`).
fn value_matches(m: &HeaderMatcher, value: &str) -> bool {
    match &m.spec {
        HeaderMatchSpec::Present(present) => *present,
        HeaderMatchSpec::Range { start, end } => value
            .parse::<i64>()
            .map(|v| *start <= v && v < *end)
            .unwrap_or(false),
        HeaderMatchSpec::String(s) => string_matches(s, value),
    }
}

pub(crate) fn percent_decode(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('%') {
        return std::borrow::Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    std::borrow::Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// One query parameter matcher, as Envoy 1.40's: the first occurrence of the parameter
/// is used, its name and value as sent (not percent-decoded).
pub fn query_matches(m: &QueryParameterMatcher, query: &str) -> bool {
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name == m.name {
            return match &m.value {
                None => true,
                Some(sm) => string_matches(sm, value),
            };
        }
    }
    false
}

/// True when the whole route `match` accepts the request.
pub fn route_matches(m: &RouteMatch, input: &MatchInput<'_>) -> bool {
    // Only `connect_matcher` routes take CONNECT requests (they have no path).
    if input.method == Method::CONNECT && !matches!(m.path, PathMatch::Connect) {
        return false;
    }
    path_matches(&m.path, m.case_sensitive, input)
        && (!m.grpc || crate::http::local_reply::is_grpc_request(input.headers))
        && m.headers.iter().all(|h| request_header_matches(h, input))
        && (m.query_parameters.is_empty() || {
            let q = input.query();
            m.query_parameters.iter().all(|qm| query_matches(qm, q))
        })
        && m.runtime_fraction
            .as_ref()
            .is_none_or(runtime_fraction_matches)
        && tls_context_matches(&m.tls_context, input.peer_certificate)
}

/// A route's `tls_context`: each option given must equal the connection's state.
fn tls_context_matches(m: &TlsContextMatch, peer: PeerCertificateState) -> bool {
    m.presented.is_none_or(|p| p == peer.presented)
        && m.validated.is_none_or(|v| v == peer.validated)
}

/// Envoy's `featureEnabled` for a route's `runtime_fraction`, with a random draw per
/// request.
fn runtime_fraction_matches(f: &RuntimeFraction) -> bool {
    let default = Fraction {
        numerator: f.numerator,
        denominator: f.denominator,
    };
    crate::runtime::snapshot().feature_enabled(&f.runtime_key, default, rand::random::<u64>)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderName;
    use regex::Regex;

    fn input<'a>(path: &'a str, headers: &'a HeaderMap) -> MatchInput<'a> {
        MatchInput {
            method: &Method::GET,
            path_and_query: path,
            headers,
            scheme: "http",
            peer_certificate: PeerCertificateState::default(),
        }
    }

    fn rm(path: PathMatch) -> RouteMatch {
        RouteMatch {
            path,
            case_sensitive: true,
            headers: vec![],
            query_parameters: vec![],
            grpc: false,
            runtime_fraction: None,
            tls_context: Default::default(),
        }
    }

    #[test]
    fn path_specifiers() {
        let h = HeaderMap::new();
        assert!(route_matches(
            &rm(PathMatch::Prefix("/a".into())),
            &input("/abc?x", &h)
        ));
        assert!(route_matches(
            &rm(PathMatch::Prefix("/a?x".into())),
            &input("/a?x=1", &h)
        ));
        assert!(!route_matches(
            &rm(PathMatch::Prefix("/A".into())),
            &input("/abc", &h)
        ));
        let mut ci = rm(PathMatch::Prefix("/A".into()));
        ci.case_sensitive = false;
        assert!(route_matches(&ci, &input("/abc", &h)));
        assert!(route_matches(
            &rm(PathMatch::Path("/abc".into())),
            &input("/abc?q", &h)
        ));
        assert!(!route_matches(
            &rm(PathMatch::Path("/abc".into())),
            &input("/abcd", &h)
        ));
        let re = Regex::new("^(?:/v[0-9]+/.*)$").expect("regex");
        assert!(route_matches(
            &rm(PathMatch::Regex(re.clone())),
            &input("/v1/x?y", &h)
        ));
        assert!(!route_matches(
            &rm(PathMatch::Regex(re)),
            &input("/w1/x", &h)
        ));
        let psp = rm(PathMatch::PathSeparatedPrefix("/api".into()));
        assert!(route_matches(&psp, &input("/api", &h)));
        assert!(route_matches(&psp, &input("/api/x", &h)));
        assert!(route_matches(&psp, &input("/api?x", &h)));
        assert!(!route_matches(&psp, &input("/apix", &h)));
        let connect = MatchInput {
            method: &Method::CONNECT,
            path_and_query: "",
            headers: &h,
            scheme: "http",
            peer_certificate: PeerCertificateState::default(),
        };
        assert!(route_matches(&rm(PathMatch::Connect), &connect));
        assert!(!route_matches(&rm(PathMatch::Prefix("".into())), &connect));
        assert!(!route_matches(&rm(PathMatch::Connect), &input("/", &h)));
    }

    fn hm(spec: HeaderMatchSpec, invert: bool, missing_empty: bool) -> HeaderMatcher {
        HeaderMatcher {
            name: HeaderName::from_static("x-h"),
            pseudo: None,
            spec,
            invert,
            treat_missing_as_empty: missing_empty,
        }
    }

    fn exact(s: &str) -> HeaderMatchSpec {
        HeaderMatchSpec::String(StringMatcher {
            kind: StringMatchKind::Exact(s.into()),
            ignore_case: false,
        })
    }

    #[test]
    fn header_matchers() {
        let empty = HeaderMap::new();
        let mut h = HeaderMap::new();
        h.append("x-h", "5".parse().expect("v"));
        assert!(header_matches(&hm(exact("5"), false, false), &h));
        assert!(!header_matches(&hm(exact("5"), true, false), &h));
        // Missing header: only a presence matcher asking for absence matches; value
        // matchers never do, inverted or not.
        assert!(!header_matches(&hm(exact("5"), false, false), &empty));
        assert!(!header_matches(&hm(exact("5"), true, false), &empty));
        assert!(header_matches(
            &hm(HeaderMatchSpec::Present(false), false, false),
            &empty
        ));
        assert!(!header_matches(
            &hm(HeaderMatchSpec::Present(true), false, false),
            &empty
        ));
        assert!(header_matches(
            &hm(HeaderMatchSpec::Present(true), true, false),
            &empty
        ));
        assert!(!header_matches(
            &hm(HeaderMatchSpec::Present(false), true, false),
            &empty
        ));
        assert!(header_matches(&hm(exact(""), false, true), &empty));
        let range = HeaderMatchSpec::Range { start: 1, end: 6 };
        assert!(header_matches(&hm(range.clone(), false, false), &h));
        h.insert("x-h", "6".parse().expect("v"));
        assert!(!header_matches(&hm(range, false, false), &h));
        h.append("x-h", "7".parse().expect("v"));
        // Several values: one matching is enough; they are not joined (Envoy 1.40).
        assert!(!header_matches(&hm(exact("6,7"), false, false), &h));
        assert!(header_matches(&hm(exact("7"), false, false), &h));
        assert!(!header_matches(&hm(exact("6"), true, false), &h));
        assert!(header_matches(&hm(exact("8"), true, false), &h));
        let ic = HeaderMatchSpec::String(StringMatcher {
            kind: StringMatchKind::Suffix("7".into()),
            ignore_case: true,
        });
        assert!(header_matches(&hm(ic, false, false), &h));
    }

    #[test]
    fn query_parameters() {
        let present = QueryParameterMatcher {
            name: "a".into(),
            value: None,
        };
        let value = QueryParameterMatcher {
            name: "b".into(),
            value: Some(StringMatcher {
                kind: StringMatchKind::Exact("x%20y".into()),
                ignore_case: false,
            }),
        };
        assert!(query_matches(&present, "a&b=1"));
        assert!(!query_matches(&present, "ab=1"));
        assert!(query_matches(&value, "a=1&b=x%20y&b=z"));
        assert!(!query_matches(&value, "b=z&b=x%20y"));
        // Names and values as sent, not percent-decoded (Envoy 1.40).
        assert!(!query_matches(&present, "%61=1"));
    }
}
