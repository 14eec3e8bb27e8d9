//! HTTP filters: the connection manager's per-request filter chain (Envoy's
//! `http_filters`), every filter behind one trait, [`HttpFilter`], and the router last.
//!
//! # The model: Envoy's decoder/encoder filters, reduced
//!
//! Envoy hands each filter every request event (headers, data, trailers) on the way in
//! ("decoding") and every response event on the way out ("encoding"), with status codes
//! to pause, buffer, resume or answer. Baton's stream is one hyper exchange (a request
//! in, a response out, bodies as `http_body::Body` streams), so the model keeps the
//! points where filters decide and leaves streaming to body wrappers:
//!
//! - **Request headers, in config order** ([`HttpFilter::on_request_headers`]). A filter
//!   sees and changes the request head, reads the route selected so far and may clear
//!   the route cache ([`RequestContext::clear_route_cache`]: the next reader, at the
//!   latest the router, selects again from the changed headers, as Envoy's
//!   `clearRouteCache`). It answers [`FilterStatus::CONTINUE`], a local reply
//!   ([`FilterStatus::reply`]: status, body, details, response flag and headers; the
//!   later filters and the router are skipped), or a future
//!   ([`FilterStatus::pending`]) when it must wait for I/O (ext_authz calling out). The
//!   future is the only box a filter costs, and only that filter pays it.
//! - **Request body and trailers**: a filter that wants them wraps the body stream
//!   ([`RequestBodySlot::wrap`], seeing data frames and trailers as they pass) or buffers
//!   it whole up to a limit ([`RequestBodySlot::buffer`], Envoy's 413 beyond it).
//! - **The router** ([`router::Router`]) ends the chain: no route (404), direct
//!   responses, redirects, and the upstream call. It is the chain's terminal filter but
//!   not a trait object: its upstream future then lives inside the stream's own future
//!   instead of a box per request.
//! - **Response headers, in reverse config order** ([`HttpFilter::on_response_headers`]),
//!   for every response the stream sends: the upstream's, the router's local replies, a
//!   filter's local reply, and the connection manager's own (400 missing host, path
//!   normalisation, 426, upgrade refusal, request and idle timeouts, 431). As in Envoy
//!   1.40 (measured: a fault-filter abort in the middle of two header-mutation filters
//!   gets both filters' response headers, and so do the 400 and 426 the connection
//!   manager sends before any filter ran), every enabled filter sees the response, also
//!   filters whose request hook never ran. The response body is wrapped the same way as
//!   the request's ([`ResponseContext::map_body`]).
//! - **Per-stream data**: [`RequestContext`] and [`ResponseContext`] give the request
//!   head, [`StreamInfo`](crate::access_log::StreamInfo) (what access logs print), the
//!   [`ConnInfo`](crate::base::conn_info::ConnInfo), the route and its cluster, and one
//!   state slot per filter ([`RequestContext::set_state`]) that carries data from the
//!   request side to the response side.
//!
//! Route-based enabling follows Envoy: a filter configured `disabled` runs only where the
//! route (or its virtual host, or route config, or weighted cluster) has a per-filter
//! config for it, and a `FilterConfig { disabled: true }` there turns an enabled filter
//! off; both are read from the route selected when the chain starts, so a later re-route
//! does not change which filters run.
//!
//! # Cost
//!
//! [`FilterChain`] is compiled once per connection-manager config (in
//! [`HcmRuntime`](super::HcmRuntime)) into an immutable list of filter instances. Per
//! request there is only `StreamFilters`: the route cache and the state slots, which
//! allocate only when a filter stores state. With no filters configured, running the
//! chain allocates nothing (unit-tested with a counting allocator).
//!
//! # Adding a filter
//!
//! A variant in `baton_config::model::HttpFilterKind` (and its translation), a type
//! implementing [`HttpFilter`], and an arm in [`FilterChain::new`].

mod context;
mod route_cache;
pub mod router;

#[cfg(test)]
mod tests;

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use baton_config::model::{FilterOverride, HttpConnectionManager, HttpFilterKind, WeightedCluster};
use http::request::Parts;
use http::Response;

use super::local_reply::LocalReply;
use super::router::{RouteTable, Routed};
use super::stream::Exchange;
use super::ResponseBody;

pub use context::{RequestBodySlot, RequestContext, ResponseContext};
pub(crate) use route_cache::RouteCache;
pub use route_cache::Selection;

/// One HTTP filter instance, built once per connection-manager config and shared by
/// every stream (per-stream data goes in the state slot of the contexts).
pub trait HttpFilter: Send + Sync + fmt::Debug {
    /// The request head, in config order. The default continues.
    fn on_request_headers<'a>(
        &'a self,
        request: &'a mut RequestContext<'_, '_>,
    ) -> FilterStatus<'a> {
        let _ = request;
        FilterStatus::CONTINUE
    }

    /// The response head, in reverse config order, for every response of the stream
    /// (including local replies sent before this filter's request hook ran, or instead
    /// of it). The default leaves it alone.
    fn on_response_headers(&self, response: &mut ResponseContext<'_, '_>) {
        let _ = response;
    }
}

/// What a request hook decided.
#[derive(Debug)]
pub enum Verdict {
    /// Run the next filter (or the router).
    Continue,
    /// Answer with this reply; the later filters and the router do not run, the response
    /// hooks do.
    LocalReply(LocalReply),
}

/// A request hook's answer: decided now, or after I/O.
pub enum FilterStatus<'a> {
    /// Decided without waiting.
    Ready(Verdict),
    /// Decided when the future completes (the stream waits; its timers keep running).
    Pending(Pin<Box<dyn Future<Output = Verdict> + Send + 'a>>),
}

impl<'a> FilterStatus<'a> {
    /// Run the next filter.
    pub const CONTINUE: Self = Self::Ready(Verdict::Continue);

    /// Stop the chain with a local reply.
    pub fn reply(reply: LocalReply) -> Self {
        Self::Ready(Verdict::LocalReply(reply))
    }

    /// Decide after `work` completes.
    pub fn pending(work: impl Future<Output = Verdict> + Send + 'a) -> Self {
        Self::Pending(Box::pin(work))
    }

    async fn resolve(self) -> Verdict {
        match self {
            Self::Ready(verdict) => verdict,
            Self::Pending(work) => work.await,
        }
    }
}

impl fmt::Debug for FilterStatus<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready(v) => f.debug_tuple("Ready").field(v).finish(),
            Self::Pending(_) => f.write_str("Pending"),
        }
    }
}

/// One configured filter.
#[derive(Debug)]
struct FilterEntry {
    /// `http_filters[].name` (per-route overrides name it).
    name: String,
    /// `disabled`: off unless the route enables it.
    disabled: bool,
    filter: Box<dyn HttpFilter>,
}

/// The filter chain of one connection-manager config, compiled once: the filters before
/// the router in config order, then the router.
#[derive(Debug)]
pub struct FilterChain {
    filters: Vec<FilterEntry>,
    router: router::Router,
}

impl FilterChain {
    /// Instantiates the filters of `hcm`.
    pub fn new(hcm: &HttpConnectionManager) -> Self {
        let filters = hcm
            .http_filters
            .iter()
            .map(|f| FilterEntry {
                name: f.name.clone(),
                disabled: f.disabled,
                filter: instantiate(&f.kind),
            })
            .collect();
        Self {
            filters,
            router: router::Router,
        }
    }

    /// A chain of the given filters (name, disabled by default, instance) and the router.
    #[cfg(test)]
    pub(crate) fn from_filters(filters: Vec<(&str, bool, Box<dyn HttpFilter>)>) -> Self {
        Self {
            filters: filters
                .into_iter()
                .map(|(name, disabled, filter)| FilterEntry {
                    name: name.to_string(),
                    disabled,
                    filter,
                })
                .collect(),
            router: router::Router,
        }
    }

    /// Number of filters before the router.
    pub fn len(&self) -> usize {
        self.filters.len()
    }

    /// No filters before the router.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// The terminal filter.
    pub(crate) fn router(&self) -> &router::Router {
        &self.router
    }
}

/// The instance of a configured filter: each filter Baton implements adds an arm.
fn instantiate(kind: &HttpFilterKind) -> Box<dyn HttpFilter> {
    match *kind {}
}

/// One state slot per filter; empty (and unallocated) until a filter stores something.
#[derive(Default)]
struct FilterStates {
    slots: Vec<Option<Box<dyn Any + Send>>>,
}

impl FilterStates {
    fn get<T: Any>(&mut self, index: usize) -> Option<&mut T> {
        self.slots.get_mut(index)?.as_mut()?.downcast_mut()
    }

    fn set<T: Any + Send>(&mut self, index: usize, value: T) {
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, || None);
        }
        self.slots[index] = Some(Box::new(value));
    }

    fn take<T: Any>(&mut self, index: usize) -> Option<T> {
        let slot = self.slots.get_mut(index)?;
        if !slot.as_ref().is_some_and(|s| s.is::<T>()) {
            return None;
        }
        slot.take()?.downcast().ok().map(|b| *b)
    }
}

impl fmt::Debug for FilterStates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.slots.iter().map(Option::is_some))
            .finish()
    }
}

/// The chain's per-stream state: the route cache, the route the chain started with
/// (route-based enabling reads it) and the filters' state slots.
#[derive(Debug)]
pub(crate) struct StreamFilters<'rt> {
    chain: &'rt FilterChain,
    pub(crate) route: RouteCache<'rt>,
    started_with: Option<(Routed<'rt>, Option<&'rt WeightedCluster>)>,
    states: FilterStates,
}

impl<'rt> StreamFilters<'rt> {
    /// State for one stream over `chain` routed by `table`; allocates nothing.
    pub(crate) fn new(chain: &'rt FilterChain, table: &'rt RouteTable) -> Self {
        Self {
            chain,
            route: RouteCache::new(table),
            started_with: None,
            states: FilterStates::default(),
        }
    }

    /// The chain.
    pub(crate) fn chain(&self) -> &'rt FilterChain {
        self.chain
    }

    /// Fixes which filters run on this stream from the route selected now (Envoy
    /// creates the chain here).
    pub(crate) fn start_chain(&mut self) {
        self.started_with = self.route.current().map(|s| (s.routed, s.weighted));
    }

    /// Whether filter `index` runs on this stream.
    fn enabled(&self, index: usize) -> bool {
        let entry = &self.chain.filters[index];
        let overridden = self.started_with.and_then(|(routed, weighted)| {
            // Most specific first: weighted cluster, route, virtual host, route config.
            weighted
                .and_then(|w| w.filter_overrides.get(&entry.name))
                .or_else(|| routed.route.filter_overrides.get(&entry.name))
                .or_else(|| routed.vhost.filter_overrides.get(&entry.name))
                .or_else(|| {
                    self.route
                        .table()
                        .config()
                        .filter_overrides
                        .get(&entry.name)
                })
        });
        match overridden {
            Some(FilterOverride::Disabled) => false,
            Some(FilterOverride::Config(_)) => true,
            None => !entry.disabled,
        }
    }
}

/// Runs the request hooks in config order until one answers with a local reply (None:
/// every filter continued; the router is next).
pub(crate) async fn decode_headers<'rt>(
    stream: &mut StreamFilters<'rt>,
    ex: &mut Exchange,
    parts: &mut Parts,
    body: &mut RequestBodySlot,
) -> Option<LocalReply> {
    let chain = stream.chain;
    for (index, entry) in chain.filters.iter().enumerate() {
        if !stream.enabled(index) {
            continue;
        }
        let mut request = RequestContext {
            stream: &mut *stream,
            ex: &mut *ex,
            parts: &mut *parts,
            body: &mut *body,
            index,
        };
        let verdict = entry
            .filter
            .on_request_headers(&mut request)
            .resolve()
            .await;
        if let Verdict::LocalReply(reply) = verdict {
            return Some(reply);
        }
    }
    None
}

/// Runs the response hooks in reverse config order over `response`, whatever produced
/// it.
pub(crate) fn encode_headers(
    stream: &mut StreamFilters<'_>,
    ex: &mut Exchange,
    response: &mut Response<ResponseBody>,
) {
    let chain = stream.chain;
    for (index, entry) in chain.filters.iter().enumerate().rev() {
        if !stream.enabled(index) {
            continue;
        }
        let mut context = ResponseContext {
            stream: &mut *stream,
            ex: &mut *ex,
            response: &mut *response,
            index,
        };
        entry.filter.on_response_headers(&mut context);
    }
}

/// (Re)selects the route from the request as it is now when the cache is empty or was
/// cleared, recording what the stream learns from it (route name, route idle timeout).
pub(crate) fn refresh_route(stream: &mut StreamFilters<'_>, ex: &mut Exchange, parts: &Parts) {
    if !stream.route.needs_selection() {
        return;
    }
    let selected = stream.route.select(parts);
    ex.info.route_name = selected
        .filter(|s| !s.routed.route.name.is_empty())
        .map(|s| s.routed.route.name.clone());
    ex.info.route_metadata = selected.and_then(|s| s.routed.route.metadata.clone());
    match selected.and_then(Selection::idle_timeout) {
        Some(timeout) => ex.progress.set_route_idle_timeout(timeout),
        None => ex.progress.clear_route_idle_timeout(),
    }
    let max_duration = super::max_duration::limit(
        selected.and_then(Selection::max_stream_duration),
        ex.shared.runtime.hcm.max_stream_duration,
        &parts.headers,
    );
    ex.progress.set_max_duration(max_duration);
}
