//! Virtual host selection from the Host / `:authority` header, exactly in Envoy's order:
//! exact domain, then `*.suffix` wildcards (longest suffix first), then `prefix*`
//! wildcards (longest prefix first), then `*`. Matching is case-insensitive and the port
//! is part of the host (`example.com:8080` only matches a domain with that port), as in
//! Envoy without `strip_matching_host_port`. A wildcard always covers at least one
//! character.

use std::collections::HashMap;

use crate::base::fast_hash::FastBuildHasher;

/// Domains of one kind; config names looked up (never inserted) per request, so the
/// config-keyed hasher serves.
type DomainMap = HashMap<String, usize, FastBuildHasher>;

/// Domain lookup tables built once per route config.
#[derive(Debug, Default)]
pub struct VhostSelector {
    exact: DomainMap,
    /// `*.foo.com` stored as ".foo.com" -> vhost, grouped by suffix length, longest first.
    suffixes: Vec<(usize, DomainMap)>,
    /// `foo.*` stored as "foo." -> vhost, grouped by prefix length, longest first.
    prefixes: Vec<(usize, DomainMap)>,
    default: Option<usize>,
}

fn insert_grouped(groups: &mut Vec<(usize, DomainMap)>, key: String, vhost: usize) {
    let len = key.len();
    match groups.iter_mut().find(|(l, _)| *l == len) {
        Some((_, map)) => {
            map.entry(key).or_insert(vhost);
        }
        None => {
            groups.push((len, DomainMap::from_iter([(key, vhost)])));
            groups.sort_by_key(|g| std::cmp::Reverse(g.0));
        }
    }
}

impl VhostSelector {
    /// Builds the tables from each virtual host's domains (index = vhost position). The
    /// first virtual host naming a domain wins (config validation rejects duplicates).
    pub fn new<'a>(domains_per_vhost: impl IntoIterator<Item = &'a [String]>) -> Self {
        let mut sel = Self::default();
        for (i, domains) in domains_per_vhost.into_iter().enumerate() {
            for d in domains {
                let d = d.to_ascii_lowercase();
                if d == "*" {
                    sel.default.get_or_insert(i);
                } else if let Some(suffix) = d.strip_prefix('*') {
                    insert_grouped(&mut sel.suffixes, suffix.to_string(), i);
                } else if let Some(prefix) = d.strip_suffix('*') {
                    insert_grouped(&mut sel.prefixes, prefix.to_string(), i);
                } else {
                    sel.exact.entry(d).or_insert(i);
                }
            }
        }
        sel
    }

    /// The virtual host index for a Host header value.
    pub fn select(&self, host: &str) -> Option<usize> {
        // Only `*` (the common single-vhost config): nothing to lowercase or look up.
        if self.exact.is_empty() && self.suffixes.is_empty() && self.prefixes.is_empty() {
            return self.default;
        }
        // Lowercase without allocating in the common all-lowercase case.
        let lowered;
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = host.to_ascii_lowercase();
            lowered.as_str()
        } else {
            host
        };
        if let Some(&i) = self.exact.get(host) {
            return Some(i);
        }
        for (len, map) in &self.suffixes {
            if *len < host.len() {
                if let Some(&i) = host.get(host.len() - len..).and_then(|s| map.get(s)) {
                    return Some(i);
                }
            }
        }
        for (len, map) in &self.prefixes {
            if *len < host.len() {
                if let Some(&i) = host.get(..*len).and_then(|s| map.get(s)) {
                    return Some(i);
                }
            }
        }
        self.default
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector() -> VhostSelector {
        let vhosts: Vec<Vec<String>> = vec![
            vec!["example.com".into()],
            vec!["*.example.com".into()],
            vec!["foo.*".into()],
            vec!["withport.com:18002".into()],
            vec!["*".into()],
            vec!["*.b.example.com".into(), "Mixed.Case".into()],
            vec!["foo.bar.*".into()],
        ];
        VhostSelector::new(vhosts.iter().map(Vec::as_slice))
    }

    /// Expectations recorded from Envoy 1.40 with the same domains.
    #[test]
    fn envoy_domain_order() {
        let s = selector();
        assert_eq!(s.select("example.com"), Some(0));
        assert_eq!(s.select("EXAMPLE.com"), Some(0));
        assert_eq!(s.select("example.com:18002"), Some(4));
        assert_eq!(s.select("a.example.com"), Some(1));
        assert_eq!(s.select(".example.com"), Some(4));
        assert_eq!(s.select("example.com."), Some(4));
        assert_eq!(s.select("foo.bar"), Some(2));
        assert_eq!(s.select("foo."), Some(4));
        assert_eq!(s.select("withport.com"), Some(4));
        assert_eq!(s.select("withport.com:18002"), Some(3));
        assert_eq!(s.select("withport.com:1"), Some(4));
        assert_eq!(s.select("x"), Some(4));
        // Longest suffix wins, and suffix beats prefix.
        assert_eq!(s.select("a.b.example.com"), Some(5));
        assert_eq!(s.select("foo.bar.example.com"), Some(1));
        assert_eq!(s.select("foo.bar.baz"), Some(6));
        assert_eq!(s.select("mixed.case"), Some(5));
    }

    #[test]
    fn no_default_means_none() {
        let vhosts: Vec<Vec<String>> = vec![vec!["a.com".into()]];
        let s = VhostSelector::new(vhosts.iter().map(Vec::as_slice));
        assert_eq!(s.select("b.com"), None);
    }
}
