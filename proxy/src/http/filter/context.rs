//! What a filter hook sees: [`RequestContext`] on the request side, [`ResponseContext`]
//! on the response side (request head or response head, stream info, connection, route,
//! cluster, the filter's state slot), and [`RequestBodySlot`], the request body on its
//! way to the router (a filter wraps it or buffers it).

use std::any::Any;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{HeaderMap, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};

use crate::access_log::{ResponseFlag, StreamInfo};
use crate::base::conn_info::ConnInfo;
use crate::http::body::{CountingBody, RequestProgress};
use crate::http::codec::DownstreamBody;
use crate::http::local_reply::LocalReply;
use crate::http::router::Routed;
use crate::http::stream::Exchange;
use crate::http::ResponseBody;
use crate::upstream::{RequestBody, UpstreamCluster};

use super::{refresh_route, StreamFilters};

/// A request hook's view of the stream.
#[derive(Debug)]
pub struct RequestContext<'s, 'rt> {
    pub(super) stream: &'s mut StreamFilters<'rt>,
    pub(super) ex: &'s mut Exchange,
    pub(super) parts: &'s mut Parts,
    pub(super) body: &'s mut RequestBodySlot,
    /// The running filter's position (its state slot).
    pub(super) index: usize,
}

impl<'rt> RequestContext<'_, 'rt> {
    /// The request head (method, URI, version, headers) as the filters before left it.
    pub fn parts(&self) -> &Parts {
        self.parts
    }

    /// The request head, to change. Changes that routing reads (path, Host, headers a
    /// route matches on) take effect after [`Self::clear_route_cache`].
    pub fn parts_mut(&mut self) -> &mut Parts {
        self.parts
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.parts.headers
    }

    /// The request headers, to change.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.parts.headers
    }

    /// The request body, to wrap or buffer.
    pub fn body_mut(&mut self) -> &mut RequestBodySlot {
        self.body
    }

    /// Stream facts (what access logs print).
    pub fn info(&self) -> &StreamInfo {
        &self.ex.info
    }

    /// Stream facts, to change (response flags, details).
    pub fn info_mut(&mut self) -> &mut StreamInfo {
        &mut self.ex.info
    }

    /// The downstream connection.
    pub fn connection(&self) -> &ConnInfo {
        &self.ex.shared.conn
    }

    /// The route for the request as it is now (selected again if a filter cleared the
    /// cache); None: no route matches (the router will answer 404).
    pub fn route(&mut self) -> Option<Routed<'rt>> {
        refresh_route(self.stream, self.ex, self.parts);
        self.stream.route.current().map(|s| s.routed)
    }

    /// The name of the cluster the route sends to (None: no route, no `route` action,
    /// or the `cluster_header` is missing).
    pub fn cluster_name(&mut self) -> Option<&str> {
        refresh_route(self.stream, self.ex, self.parts);
        self.stream.route.current()?.cluster_name.as_deref()
    }

    /// The cluster the route sends to, when it exists now.
    pub fn cluster(&mut self) -> Option<Arc<UpstreamCluster>> {
        refresh_route(self.stream, self.ex, self.parts);
        let name = self.stream.route.current()?.cluster_name.as_deref()?;
        self.ex.shared.ctx.clusters.get(name)
    }

    /// Forgets the selected route (Envoy's `clearRouteCache`): call it after changing
    /// anything routing reads; the next reader, at the latest the router, selects again.
    pub fn clear_route_cache(&mut self) {
        self.stream.route.clear();
    }

    /// This filter's state for the stream, when it stored a `T`.
    pub fn state<T: Any>(&mut self) -> Option<&mut T> {
        self.stream.states.get(self.index)
    }

    /// Stores this filter's state for the stream (the response hook reads it back).
    pub fn set_state<T: Any + Send>(&mut self, value: T) {
        self.stream.states.set(self.index, value);
    }
}

/// A response hook's view of the stream.
#[derive(Debug)]
pub struct ResponseContext<'s, 'rt> {
    pub(super) stream: &'s mut StreamFilters<'rt>,
    pub(super) ex: &'s mut Exchange,
    pub(super) response: &'s mut Response<ResponseBody>,
    pub(super) index: usize,
}

impl<'rt> ResponseContext<'_, 'rt> {
    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.response.status()
    }

    /// Changes the response status.
    pub fn set_status(&mut self, status: StatusCode) {
        *self.response.status_mut() = status;
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        self.response.headers()
    }

    /// The response headers, to change.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        self.response.headers_mut()
    }

    /// Wraps the response body (to see or change data frames and trailers as they go
    /// downstream).
    pub fn map_body(&mut self, wrap: impl FnOnce(ResponseBody) -> ResponseBody) {
        let body = std::mem::replace(self.response.body_mut(), crate::http::stream_empty_body());
        *self.response.body_mut() = wrap(body);
    }

    /// Stream facts (what access logs print).
    pub fn info(&self) -> &StreamInfo {
        &self.ex.info
    }

    /// Stream facts, to change.
    pub fn info_mut(&mut self) -> &mut StreamInfo {
        &mut self.ex.info
    }

    /// The downstream connection.
    pub fn connection(&self) -> &ConnInfo {
        &self.ex.shared.conn
    }

    /// The route the request was last routed with (None: none matched, or the stream
    /// ended before routing).
    pub fn route(&self) -> Option<Routed<'rt>> {
        self.stream.route.current().map(|s| s.routed)
    }

    /// The name of the cluster the route sent to.
    pub fn cluster_name(&self) -> Option<&str> {
        self.stream.route.current()?.cluster_name.as_deref()
    }

    /// This filter's state for the stream, as its request hook left it.
    pub fn state<T: Any>(&mut self) -> Option<&mut T> {
        self.stream.states.get(self.index)
    }

    /// Takes this filter's state out of the stream.
    pub fn take_state<T: Any>(&mut self) -> Option<T> {
        self.stream.states.take(self.index)
    }
}

/// The request body between the connection manager and the router. It starts as the
/// downstream body (counted for `request_timeout` / `stream_idle_timeout` and access
/// logs) and is boxed only when a filter wraps it or the router sends it.
#[derive(Debug)]
pub struct RequestBodySlot {
    state: SlotState,
}

#[derive(Debug)]
enum SlotState {
    Downstream(CountingBody<DownstreamBody>),
    Wrapped(RequestBody),
    Empty,
}

impl RequestBodySlot {
    /// The downstream body of a request whose progress is `progress`.
    pub(crate) fn new(body: DownstreamBody, progress: &Arc<RequestProgress>) -> Self {
        Self {
            state: SlotState::Downstream(CountingBody::new(body, progress.clone())),
        }
    }

    /// No body at all (tests of the chain without a connection).
    #[cfg(test)]
    pub(crate) fn empty() -> Self {
        Self {
            state: SlotState::Empty,
        }
    }

    /// Replaces the body with `wrap(body)`: a wrapper sees every data frame and the
    /// trailers as they go upstream, and may change them.
    pub fn wrap(&mut self, wrap: impl FnOnce(RequestBody) -> RequestBody) {
        let body = std::mem::replace(&mut self.state, SlotState::Empty).into_body();
        self.state = SlotState::Wrapped(wrap(body));
    }

    /// Reads the whole body (at most `max_bytes`; Envoy's 413 beyond) and puts it back
    /// for the router; returns the data. Trailers are kept. On an error the body is
    /// gone: answer with the reply returned.
    pub async fn buffer(&mut self, max_bytes: usize) -> Result<Bytes, LocalReply> {
        let mut body = std::mem::replace(&mut self.state, SlotState::Empty).into_body();
        let mut data = BytesMut::new();
        let mut trailers: Option<HeaderMap> = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| {
                LocalReply::new(
                    400,
                    "",
                    Some(ResponseFlag::DownstreamConnectionTermination),
                    "downstream_remote_disconnect",
                )
            })?;
            match frame.into_data() {
                Ok(chunk) => {
                    if data.len() + chunk.len() > max_bytes {
                        // The rest of the body is never read: the connection closes
                        // after the reply (as Envoy's buffer filter's does).
                        return Err(LocalReply::new(
                            413,
                            "Payload Too Large",
                            None,
                            "request_payload_too_large",
                        )
                        .closing());
                    }
                    data.extend_from_slice(&chunk);
                }
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        trailers.get_or_insert_with(HeaderMap::new).extend(t);
                    }
                }
            }
        }
        let data = data.freeze();
        self.state = SlotState::Wrapped(match trailers {
            None => Full::new(data.clone())
                .map_err(|never| match never {})
                .boxed(),
            Some(trailers) => {
                let frames = [Frame::data(data.clone()), Frame::trailers(trailers)]
                    .into_iter()
                    .map(Ok::<_, crate::upstream::BoxError>);
                StreamBody::new(futures_util::stream::iter(frames)).boxed()
            }
        });
        Ok(data)
    }

    /// The body to send upstream.
    pub(crate) fn into_upstream(self) -> RequestBody {
        self.state.into_body()
    }
}

impl SlotState {
    fn into_body(self) -> RequestBody {
        match self {
            Self::Downstream(body) => body.boxed(),
            Self::Wrapped(body) => body,
            Self::Empty => http_body_util::Empty::new()
                .map_err(|never| match never {})
                .boxed(),
        }
    }
}
