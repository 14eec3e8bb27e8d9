//! Route actions that need computing per request: path rewrites (`prefix_rewrite`,
//! `regex_rewrite`), redirect `location` URIs, and weighted cluster picks.

use baton_config::model::{PathMatch, PathRedirect, RedirectAction, WeightedClusters};
use regex::Regex;

/// Converts Envoy's RE2 substitution (`\1`) to the regex crate's (`${1}`).
fn substitution(sub: &str) -> String {
    let mut out = String::with_capacity(sub.len() + 4);
    let mut chars = sub.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    chars.next();
                    out.push_str("${");
                    out.push(d);
                    out.push('}');
                }
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                _ => out.push('\\'),
            },
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

/// `regex_rewrite`: every match in the path (query excluded) is substituted.
pub fn regex_rewrite(path_and_query: &str, re: &Regex, sub: &str) -> String {
    let (path, query) = split_query(path_and_query);
    let mut out = re
        .replace_all(path, substitution(sub).as_str())
        .into_owned();
    out.push_str(query);
    out
}

/// Splits `/a/b?x=1` into (`/a/b`, `?x=1`).
pub fn split_query(path_and_query: &str) -> (&str, &str) {
    match path_and_query.find('?') {
        Some(i) => path_and_query.split_at(i),
        None => (path_and_query, ""),
    }
}

/// `prefix_rewrite`: the part the route matched is replaced; for `path` and regex matches
/// that is the whole path.
pub fn prefix_rewrite(path_and_query: &str, matcher: &PathMatch, rewrite: &str) -> String {
    let (path, query) = split_query(path_and_query);
    let matched_len = match matcher {
        PathMatch::Prefix(p) | PathMatch::PathSeparatedPrefix(p) => {
            p.len().min(path_and_query.len())
        }
        PathMatch::Path(_) | PathMatch::Regex(_) => path.len(),
        PathMatch::Connect => 0,
    };
    let mut out = String::with_capacity(path_and_query.len() + rewrite.len());
    out.push_str(rewrite);
    out.push_str(&path_and_query[matched_len..]);
    // A prefix that covered part of the query keeps the rest as is; otherwise re-attach.
    if matched_len <= path.len() {
        out.truncate(rewrite.len() + (path.len() - matched_len));
        out.push_str(query);
    }
    out
}

fn host_port_split(host: &str) -> (&str, Option<&str>) {
    // IPv6 literal: `[::1]:80`
    if host.starts_with('[') {
        if let Some(end) = host.find(']') {
            let rest = &host[end + 1..];
            return match rest.strip_prefix(':') {
                Some(p) => (&host[..=end], Some(p)),
                None => (host, None),
            };
        }
        return (host, None);
    }
    match host.rfind(':') {
        Some(i) => (&host[..i], Some(&host[i + 1..])),
        None => (host, None),
    }
}

/// The `location` of a redirect, as Envoy builds it.
pub fn redirect_location(
    r: &RedirectAction,
    matcher: &PathMatch,
    request_scheme: &str,
    request_host: &str,
    path_and_query: &str,
) -> String {
    let scheme = r.scheme.as_deref().unwrap_or(request_scheme);
    let host: String = match &r.host {
        Some(h) => match r.port {
            Some(_) => host_port_split(h).0.to_string(),
            None => h.clone(),
        },
        None => {
            let (name, port) = host_port_split(request_host);
            let remove_port = match port {
                None => false,
                Some(port) => {
                    r.port.is_some()
                        || (scheme != request_scheme
                            && ((request_scheme == "https" && port == "443")
                                || (request_scheme == "http" && port == "80")))
                }
            };
            if remove_port {
                name.to_string()
            } else {
                request_host.to_string()
            }
        }
    };
    let port = r.port.map(|p| format!(":{p}")).unwrap_or_default();
    let (_, query) = split_query(path_and_query);
    let mut new_path = match &r.path {
        PathRedirect::Keep => path_and_query.to_string(),
        PathRedirect::Path(p) => {
            if p.contains('?') {
                p.clone()
            } else {
                format!("{p}{query}")
            }
        }
        PathRedirect::Prefix(rewrite) => prefix_rewrite(path_and_query, matcher, rewrite),
        PathRedirect::Regex(re, sub) => regex_rewrite(path_and_query, re, sub),
    };
    if r.strip_query {
        let keep = split_query(&new_path).0.len();
        new_path.truncate(keep);
    }
    format!("{scheme}://{host}{port}{new_path}")
}

/// Picks a weighted cluster entry with a random number in `0..total_weight`.
pub fn pick_weighted(w: &WeightedClusters, random: u64) -> Option<usize> {
    let total: u64 = w.clusters.iter().map(|c| c.weight as u64).sum();
    if total == 0 {
        return None;
    }
    let mut point = random % total;
    for (i, c) in w.clusters.iter().enumerate() {
        if point < c.weight as u64 {
            return Some(i);
        }
        point -= c.weight as u64;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect(path: PathRedirect) -> RedirectAction {
        RedirectAction {
            scheme: None,
            host: None,
            port: None,
            path,
            response_code: 301,
            strip_query: false,
        }
    }

    #[test]
    fn prefix_rewrites() {
        let m = PathMatch::Prefix("/redir".into());
        assert_eq!(prefix_rewrite("/redir/x?q=1", &m, "/new"), "/new/x?q=1");
        assert_eq!(prefix_rewrite("/redir", &m, "/"), "/");
        let p = PathMatch::Path("/a".into());
        assert_eq!(prefix_rewrite("/a?z", &p, "/b"), "/b?z");
    }

    #[test]
    fn regex_rewrites() {
        let re = Regex::new("^/service/([^/]+)(/.*)$").expect("re");
        assert_eq!(
            regex_rewrite("/service/foo/v1/api?x", &re, "\\2/instance/\\1"),
            "/v1/api/instance/foo?x"
        );
        let re = Regex::new("a").expect("re");
        assert_eq!(regex_rewrite("/aaa", &re, "b"), "/bbb");
    }

    /// Matches Envoy 1.40: `/redir/x?q=1` with host_redirect + prefix_rewrite gives
    /// `http://example.com/new/x?q=1`.
    #[test]
    fn redirect_locations() {
        let m = PathMatch::Prefix("/redir".into());
        let mut r = redirect(PathRedirect::Prefix("/new".into()));
        r.host = Some("example.com".into());
        assert_eq!(
            redirect_location(&r, &m, "http", "127.0.0.1:18000", "/redir/x?q=1"),
            "http://example.com/new/x?q=1"
        );
        let mut r = redirect(PathRedirect::Keep);
        r.scheme = Some("https".into());
        assert_eq!(
            redirect_location(&r, &m, "http", "a.com:80", "/x"),
            "https://a.com/x"
        );
        assert_eq!(
            redirect_location(&r, &m, "http", "a.com:8080", "/x"),
            "https://a.com:8080/x"
        );
        r.port = Some(8443);
        r.strip_query = true;
        assert_eq!(
            redirect_location(&r, &m, "http", "a.com:8080", "/x?y"),
            "https://a.com:8443/x"
        );
        let r = redirect(PathRedirect::Path("/p?new=1".into()));
        assert_eq!(
            redirect_location(&r, &m, "http", "a.com", "/x?old"),
            "http://a.com/p?new=1"
        );
    }

    #[test]
    fn weighted_picks_follow_weights() {
        use baton_config::model::{HeaderMutations, WeightedCluster};
        let wc = |name: &str, weight| WeightedCluster {
            name: name.into(),
            weight,
            headers: HeaderMutations::default(),
            filter_overrides: Default::default(),
        };
        let w = WeightedClusters {
            clusters: vec![wc("a", 1), wc("b", 0), wc("c", 3)],
            total_weight: 4,
        };
        assert_eq!(pick_weighted(&w, 0), Some(0));
        assert_eq!(pick_weighted(&w, 1), Some(2));
        assert_eq!(pick_weighted(&w, 7), Some(2));
        assert_eq!(pick_weighted(&w, 8), Some(0));
    }
}
