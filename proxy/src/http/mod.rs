//! The HTTP connection manager (Envoy's `http_connection_manager`), in request order:
//! `conn_manager` (one downstream connection: codec, timeouts, drain; `codec_conn` runs
//! hyper's connection, which an idle HTTP/1 connection parks without) -> `stream` (one
//! request: validation, `normalize` (path and Host before routing), forwarding headers,
//! route selection) -> `filter` (the HTTP filter chain: request hooks in config order,
//! the router filter last, response hooks in reverse) -> `router` (virtual host, route,
//! action helpers) -> `forward` (upstream call) or `local_reply`; `headers` (hop-by-hop, forwarding, mutations), `upgrade`
//! (websocket / CONNECT tunnels), `body` (byte counting and the access log entry),
//! `route_timeout` (the route timeout over the whole response), `reason` (Envoy's HTTP/1
//! status-line reason phrases), `premature_reset` (Envoy's rapid-reset rule), `stats` (connection,
//! request and upgrade accounting in `http.<stat_prefix>.*`), `rds` (inline or RDS
//! route tables, swapped whole).

mod body;
pub mod codec;
mod codec_conn;
mod conn_manager;
mod context;
mod exchange_box;
pub mod filter;
mod forward;
mod gated;
pub mod headers;
pub mod lean_h2;
mod heap_trim;
pub mod local_reply;
mod local_reply_config;
mod max_duration;
pub mod normalize;
mod park_socket;
mod parked;
mod parked_deadlines;
mod premature_reset;
pub mod rds;
mod reason;
mod route_timeout;
pub mod router;
mod scheme;
mod stats;
mod stream;
mod trace_decision;
mod underscore_headers;
mod upgrade;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};

pub use conn_manager::serve_connection;
pub use context::{HcmRuntime, HttpContext};
pub use park_socket::{ReadReadiness, Reregister};

/// Body of every response the connection manager sends downstream: what produced it,
/// boxed once together with the stream's finishing (access log entry, stats), which
/// `stream::finish` fills in.
pub type ResponseBody = body::LoggedBody;

/// `body` as a response body, its finishing not filled in yet.
pub(crate) fn response_body<B>(body: B) -> ResponseBody
where
    B: http_body::Body<Data = Bytes, Error = crate::upstream::BoxError>
        + Send
        + Sync
        + Unpin
        + 'static,
{
    body::LoggedBody::unfinished(body)
}

/// An empty body.
fn stream_empty_body() -> ResponseBody {
    response_body(Empty::<Bytes>::new().map_err(|never| match never {}))
}
