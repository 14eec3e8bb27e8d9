//! The router: a [`RouteTable`] compiled once per route config picks the virtual host
//! (`vhost`) and the first matching route in config order (`route_match`), using an index
//! of exact paths and case-sensitive prefixes so large tables don't cost a scan per
//! request; `action` computes rewrites, redirects and weighted picks.

pub mod action;
pub mod route_match;
pub mod vhost;

use std::collections::HashMap;
use std::sync::Arc;

use baton_config::model::{PathMatch, RequireTls, Route, RouteConfig, VirtualHost};

use route_match::{route_matches, MatchInput};
use vhost::VhostSelector;

/// Route positions indexed by what can be looked up without a scan.
#[derive(Debug, Default)]
struct RouteIndex {
    /// Case-sensitive `path` routes: path -> positions (ascending).
    exact: HashMap<String, Vec<usize>>,
    /// Case-sensitive `prefix` routes grouped by prefix length: prefix -> positions.
    prefixes: Vec<(usize, HashMap<String, Vec<usize>>)>,
    /// Every other route, ascending: checked one by one.
    others: Vec<usize>,
}

impl RouteIndex {
    fn new(routes: &[Route]) -> Self {
        let mut idx = Self::default();
        for (i, r) in routes.iter().enumerate() {
            match &r.matcher.path {
                PathMatch::Path(p) if r.matcher.case_sensitive => {
                    idx.exact.entry(p.clone()).or_default().push(i);
                }
                PathMatch::Prefix(p) if r.matcher.case_sensitive => {
                    let len = p.len();
                    let group = match idx.prefixes.iter_mut().position(|(l, _)| *l == len) {
                        Some(g) => g,
                        None => {
                            idx.prefixes.push((len, HashMap::new()));
                            idx.prefixes.len() - 1
                        }
                    };
                    idx.prefixes[group].1.entry(p.clone()).or_default().push(i);
                }
                _ => idx.others.push(i),
            }
        }
        idx
    }

    /// The lowest position whose route matches.
    fn find(&self, routes: &[Route], input: &MatchInput<'_>) -> Option<usize> {
        let mut best: Option<usize> = None;
        let consider = |candidates: &[usize], best: &mut Option<usize>| {
            for &i in candidates {
                if best.is_some_and(|b| i >= b) {
                    return;
                }
                if route_matches(&routes[i].matcher, input) {
                    *best = Some(i);
                    return;
                }
            }
        };
        if !self.exact.is_empty() {
            if let Some(c) = self.exact.get(input.path()) {
                consider(c, &mut best);
            }
        }
        let pq = input.path_and_query;
        for (len, map) in &self.prefixes {
            if let Some(c) = pq.get(..*len).and_then(|p| map.get(p)) {
                consider(c, &mut best);
            }
        }
        consider(&self.others, &mut best);
        best
    }
}

/// A compiled route config.
#[derive(Debug)]
pub struct RouteTable {
    config: Arc<RouteConfig>,
    selector: VhostSelector,
    indexes: Vec<RouteIndex>,
    /// Some virtual host sets `require_tls`: without one, no request needs the check
    /// (and its lookups of `x-forwarded-proto`, the host and the virtual host).
    any_require_tls: bool,
}

/// The outcome of routing one request.
#[derive(Debug, Clone, Copy)]
pub struct Routed<'a> {
    /// The route config it was found in (route_config-level header mutations).
    pub config: &'a RouteConfig,
    /// The chosen virtual host.
    pub vhost: &'a VirtualHost,
    /// The matching route.
    pub route: &'a Route,
}

impl RouteTable {
    /// A table without virtual hosts: every request is "no route" (an RDS route config
    /// that has not arrived).
    pub fn empty() -> Self {
        Self::new(Arc::new(RouteConfig::default()))
    }

    /// Compiles `config`.
    pub fn new(config: Arc<RouteConfig>) -> Self {
        let selector =
            VhostSelector::new(config.virtual_hosts.iter().map(|v| v.domains.as_slice()));
        let indexes = config
            .virtual_hosts
            .iter()
            .map(|v| RouteIndex::new(&v.routes))
            .collect();
        let any_require_tls = config
            .virtual_hosts
            .iter()
            .any(|v| v.require_tls != RequireTls::None);
        Self {
            config,
            selector,
            indexes,
            any_require_tls,
        }
    }

    /// Whether some virtual host redirects plain-text requests (`require_tls`).
    pub fn any_require_tls(&self) -> bool {
        self.any_require_tls
    }

    /// The route config this table was built from.
    pub fn config(&self) -> &Arc<RouteConfig> {
        &self.config
    }

    /// The virtual host for a Host header value.
    pub fn virtual_host(&self, host: &str) -> Option<&VirtualHost> {
        self.selector
            .select(self.matched_host(host))
            .map(|i| &self.config.virtual_hosts[i])
    }

    /// The part of the Host that picks the virtual host: without its port under
    /// `ignore_port_in_host_matching`.
    fn matched_host<'h>(&self, host: &'h str) -> &'h str {
        if self.config.ignore_port_in_host_matching {
            without_port(host)
        } else {
            host
        }
    }

    /// Virtual host then first matching route; None is Envoy's "no route" (404 NR).
    pub fn route(&self, host: &str, input: &MatchInput<'_>) -> Option<Routed<'_>> {
        let vi = self.selector.select(self.matched_host(host))?;
        let vhost = &self.config.virtual_hosts[vi];
        let ri = self.indexes[vi].find(&vhost.routes, input)?;
        Some(Routed {
            config: &self.config,
            vhost,
            route: &vhost.routes[ri],
        })
    }
}

/// `host` without what follows its last `:` unless a `]` (an IPv6 literal's end) comes
/// after it: Envoy 1.40 drops it whether or not it is a number (`host:` and `host:http`
/// match `host` too).
fn without_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(colon) if host.rfind(']').is_none_or(|end| end <= colon) => &host[..colon],
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_config::model::{
        DirectResponseAction, HeaderMatchSpec, HeaderMatcher, HeaderMutations, RouteAction,
        RouteMatch,
    };
    use http::{HeaderMap, HeaderName, Method};

    fn route(
        name: &str,
        path: PathMatch,
        case_sensitive: bool,
        headers: Vec<HeaderMatcher>,
    ) -> Route {
        Route {
            name: name.into(),
            matcher: RouteMatch {
                path,
                case_sensitive,
                headers,
                query_parameters: vec![],
                grpc: false,
                runtime_fraction: None,
                tls_context: Default::default(),
            },
            action: RouteAction::DirectResponse(Arc::new(DirectResponseAction {
                status: 200,
                body: None,
            })),
            headers: HeaderMutations::default(),
            filter_overrides: Default::default(),
            metadata: None,
            tracing: None,
        }
    }

    #[test]
    fn ports_are_found_as_envoy_finds_them() {
        assert_eq!(without_port("example.com:8080"), "example.com");
        assert_eq!(without_port("example.com"), "example.com");
        assert_eq!(without_port("example.com:"), "example.com");
        assert_eq!(without_port("example.com:http"), "example.com");
        assert_eq!(without_port("[::1]:80"), "[::1]");
        assert_eq!(without_port("[::1]"), "[::1]");
    }

    fn table(routes: Vec<Route>) -> RouteTable {
        RouteTable::new(Arc::new(RouteConfig {
            virtual_hosts: vec![VirtualHost {
                name: "vh".into(),
                domains: vec!["*".into()],
                routes,
                headers: HeaderMutations::default(),
                filter_overrides: Default::default(),
                require_tls: Default::default(),
            }],
            ..RouteConfig::default()
        }))
    }

    fn pick<'a>(t: &'a RouteTable, path: &str, headers: &HeaderMap) -> Option<&'a str> {
        let input = MatchInput {
            method: &Method::GET,
            path_and_query: path,
            headers,
            scheme: "http",
            peer_certificate: Default::default(),
        };
        t.route("h", &input).map(|r| &*r.route.name)
    }

    #[test]
    fn first_match_in_config_order_across_index_kinds() {
        let needs_header = HeaderMatcher {
            name: HeaderName::from_static("x-a"),
            pseudo: None,
            spec: HeaderMatchSpec::Present(true),
            invert: false,
            treat_missing_as_empty: false,
        };
        let t = table(vec![
            route(
                "hdr",
                PathMatch::Prefix("/a".into()),
                true,
                vec![needs_header],
            ),
            route("ci", PathMatch::Prefix("/A/B".into()), false, vec![]),
            route("exact", PathMatch::Path("/a/b".into()), true, vec![]),
            route("pfx", PathMatch::Prefix("/a".into()), true, vec![]),
            route("root", PathMatch::Prefix("/".into()), true, vec![]),
        ]);
        let none = HeaderMap::new();
        let mut with = HeaderMap::new();
        with.insert("x-a", "1".parse().expect("v"));
        assert_eq!(pick(&t, "/a/b/c", &with), Some("hdr"));
        assert_eq!(pick(&t, "/a/b/c", &none), Some("ci"));
        assert_eq!(pick(&t, "/a/b", &none), Some("ci"));
        assert_eq!(pick(&t, "/a/x", &none), Some("pfx"));
        assert_eq!(pick(&t, "/z", &none), Some("root"));
        assert_eq!(pick(&t, "z", &none), None);
    }

    #[test]
    fn many_routes_still_first_match() {
        let mut routes: Vec<Route> = (0..10_000)
            .map(|i| {
                route(
                    &format!("r{i}"),
                    PathMatch::Path(format!("/p/{i}")),
                    true,
                    vec![],
                )
            })
            .collect();
        routes.push(route(
            "fallback",
            PathMatch::Prefix("/p/".into()),
            true,
            vec![],
        ));
        let t = table(routes);
        let none = HeaderMap::new();
        assert_eq!(pick(&t, "/p/9999", &none), Some("r9999"));
        assert_eq!(pick(&t, "/p/10000", &none), Some("fallback"));
    }
}
