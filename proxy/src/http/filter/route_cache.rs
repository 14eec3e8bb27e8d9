//! The route cache (Envoy's cached route of a stream): the route selected for the
//! request and the cluster its action sends to (a named cluster, the `cluster_header`
//! value, or the weighted pick), selected before the filter chain runs and again, from
//! the request as it is then, after a filter clears it.

use std::borrow::Cow;
use std::time::Duration;

use baton_config::model::{ClusterSpecifier, RouteAction, WeightedCluster};
use http::header::HOST;
use http::request::Parts;
use http::Method;

use crate::http::router::route_match::{MatchInput, PeerCertificateState};
use crate::http::router::{action, RouteTable, Routed};

/// The route selected for a request.
#[derive(Debug, Clone)]
pub struct Selection<'rt> {
    /// Virtual host and route.
    pub routed: Routed<'rt>,
    /// The cluster a `route` action sends to; None for direct responses and redirects,
    /// and when `cluster_header` is missing from the request.
    pub cluster_name: Option<Cow<'rt, str>>,
    /// The `weighted_clusters` entry picked (its header mutations and filter overrides).
    pub weighted: Option<&'rt WeightedCluster>,
}

impl<'rt> Selection<'rt> {
    /// The route's `idle_timeout`, which replaces the stream idle timeout.
    pub fn idle_timeout(&self) -> Option<Duration> {
        match &self.routed.route.action {
            RouteAction::Forward(f) => f.idle_timeout,
            _ => None,
        }
    }

    /// The route's `max_stream_duration` settings.
    pub fn max_stream_duration(&self) -> Option<&'rt baton_config::model::MaxStreamDuration> {
        match &self.routed.route.action {
            RouteAction::Forward(f) => f.max_stream_duration.as_ref(),
            _ => None,
        }
    }
}

/// A stream's route cache.
#[derive(Debug)]
pub(crate) struct RouteCache<'rt> {
    table: &'rt RouteTable,
    current: Option<Selection<'rt>>,
    /// `current` is up to date (None in it then means "no route").
    selected: bool,
    /// The host to route on when normalisation decided it (a CONNECT whose port was
    /// stripped for routing only); otherwise the Host header is read.
    routing_host: Option<String>,
    /// The connection's scheme (`:scheme` of HTTP/1 requests).
    scheme: &'static str,
    /// The connection's client certificate (a route's `tls_context`).
    peer_certificate: PeerCertificateState,
}

impl<'rt> RouteCache<'rt> {
    /// An empty cache over `table`.
    pub(crate) fn new(table: &'rt RouteTable) -> Self {
        Self {
            table,
            current: None,
            selected: false,
            routing_host: None,
            scheme: "http",
            peer_certificate: PeerCertificateState::default(),
        }
    }

    /// The route table.
    pub(crate) fn table(&self) -> &'rt RouteTable {
        self.table
    }

    /// What the connection tells routes: the `:scheme` of a request that does not carry
    /// one (HTTP/1), and the client's certificate.
    pub(crate) fn set_connection(
        &mut self,
        scheme: &'static str,
        peer_certificate: PeerCertificateState,
    ) {
        self.scheme = scheme;
        self.peer_certificate = peer_certificate;
    }

    /// Routes on `host` instead of the Host header.
    pub(crate) fn set_routing_host(&mut self, host: Option<String>) {
        self.routing_host = host;
    }

    /// The host the request is routed on.
    pub(crate) fn host<'a>(&'a self, parts: &'a Parts) -> &'a str {
        match &self.routing_host {
            Some(host) => host,
            None => parts
                .headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or(""),
        }
    }

    /// Nothing selected yet, or cleared since.
    pub(crate) fn needs_selection(&self) -> bool {
        !self.selected
    }

    /// The current selection, without selecting (None: no route, or not selected).
    pub(crate) fn current(&self) -> Option<&Selection<'rt>> {
        self.current.as_ref()
    }

    /// Forgets the selection: the next reader selects again.
    pub(crate) fn clear(&mut self) {
        self.current = None;
        self.selected = false;
    }

    /// Selects the route for the request as it is now.
    pub(crate) fn select(&mut self, parts: &Parts) -> Option<&Selection<'rt>> {
        let table = self.table;
        let is_connect = parts.method == Method::CONNECT;
        let path_and_query = if is_connect {
            ""
        } else {
            parts.uri.path_and_query().map_or("", |p| p.as_str())
        };
        let input = MatchInput {
            method: &parts.method,
            path_and_query,
            headers: &parts.headers,
            // An HTTP/2 client's `:scheme`; the connection's otherwise.
            scheme: parts.uri.scheme_str().unwrap_or(self.scheme),
            peer_certificate: self.peer_certificate,
        };
        let routed = table.route(self.host(parts), &input);
        self.current = routed.map(|routed| {
            let (cluster_name, weighted) = cluster_choice(routed, parts);
            Selection {
                routed,
                cluster_name,
                weighted,
            }
        });
        self.selected = true;
        self.current.as_ref()
    }
}

/// The cluster a route's action sends this request to (the weighted pick is made here,
/// once per selection).
fn cluster_choice<'rt>(
    routed: Routed<'rt>,
    parts: &Parts,
) -> (Option<Cow<'rt, str>>, Option<&'rt WeightedCluster>) {
    let RouteAction::Forward(f) = &routed.route.action else {
        return (None, None);
    };
    match &f.cluster {
        ClusterSpecifier::Name(name) => (Some(Cow::Borrowed(name.as_str())), None),
        ClusterSpecifier::Header(h) => (
            parts
                .headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(|v| Cow::Owned(v.to_string())),
            None,
        ),
        ClusterSpecifier::Weighted(w) => match action::pick_weighted(w, rand::random()) {
            Some(i) => (
                Some(Cow::Borrowed(w.clusters[i].name.as_str())),
                Some(&w.clusters[i]),
            ),
            None => (None, None),
        },
    }
}
