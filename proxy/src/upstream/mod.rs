//! Upstream side of the request path: the cluster manager (one per config snapshot),
//! service discovery (STATIC, STRICT_DNS, LOGICAL_DNS), load balancers over priority
//! levels and localities, and per-worker connection pools (HTTP/1.1 keep-alive, HTTP/2
//! multiplexing, raw TCP for tcp_proxy and CONNECT).
//!
//! Reading order: `manager` (builds clusters) -> `cluster` (pick a host, send) ->
//! `zone` (zone-aware routing, when there is a local cluster) -> `host_set` + `lb`
//! (choose) -> `pool` (connection reuse) -> `connect` (TCP or Unix
//! socket dial) -> `stream`.

mod circuit;
mod cluster;
mod connect;
mod dns;
mod error;
#[cfg(test)]
mod failure_tests;
mod host;
mod host_set;
#[cfg(test)]
mod keepalive_tests;
mod lb;
#[cfg(test)]
mod lean_tests;
mod manager;
#[cfg(test)]
mod pipe_tests;
mod pool;
mod stream;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;
mod zone;

pub use crate::base::address::{HostAddress, PipeAddress};
pub use cluster::UpstreamCluster;
pub use error::UpstreamError;
pub use host::Host;
pub use manager::{ClusterChange, ClusterManager, ClusterMap, ClusterMeta, ClusterSource};
/// HTTP/1 body framing, shared with the lean downstream server (`http::codec::lean_server`).
pub(crate) use pool::lean_codec::{BodyDecoder, BodyKind, Decoded};
pub use pool::UpstreamBody;
pub use stream::UpstreamStream;
pub use zone::LocalZone;

pub(crate) use connect::{connect as connect_counted, Protocol};
pub(crate) use host::OpenConnection;

/// Error type carried by request bodies travelling upstream.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of requests sent upstream.
pub type RequestBody = http_body_util::combinators::BoxBody<bytes::Bytes, BoxError>;

/// Per-request knobs the HTTP connection manager passes to [`UpstreamCluster::send_http`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SendOptions {
    /// The downstream spoke HTTP/2 (decides the protocol for `UseDownstream` clusters).
    pub downstream_http2: bool,
    /// An upgrade (websocket etc.): the request gets a dedicated HTTP/1.1 connection with
    /// upgrades enabled, which never goes back to the pool.
    pub upgrade: bool,
    /// `auto_host_rewrite`: once a host is picked, its hostname (endpoint `hostname`, or
    /// the DNS name a DNS cluster resolved) replaces the Host header. A host without a
    /// hostname leaves Host as it is, as in Envoy.
    pub auto_host_rewrite: Option<AutoHostRewrite>,
    /// The `:scheme` an HTTP/2 upstream request carries.
    pub scheme: UpstreamScheme,
}

/// The `:scheme` of a request sent to an HTTP/2 upstream: the downstream request's
/// (Envoy forwards it), or with `scheme_header_transformation.match_upstream` the
/// upstream connection's (`https` over TLS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UpstreamScheme {
    /// `http`
    #[default]
    Http,
    /// `https`
    Https,
    /// The upstream connection's.
    MatchUpstream,
}

/// The connection a request went out on (`%UPSTREAM_LOCAL_ADDRESS%`,
/// `%UPSTREAM_PROTOCOL%`): set by the pool once the request has a connection, so it is
/// known even when the exchange then fails or times out.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamConnFacts {
    /// The connection's local address (IP hosts).
    pub local: Option<std::net::SocketAddr>,
    /// HTTP/1.1 or HTTP/2 (None: a TCP tunnel).
    pub protocol: Option<http::Version>,
}

/// Where the pool records a request's [`UpstreamConnFacts`] (the first connection it got).
pub type ConnFactsSlot = std::sync::OnceLock<UpstreamConnFacts>;

/// How an `auto_host_rewrite` keeps the Host it replaces (as every host rewrite does).
#[derive(Debug, Clone, Copy, Default)]
pub struct AutoHostRewrite {
    /// Copy the old Host to `x-envoy-original-host` (unless `suppress_envoy_headers`).
    pub keep_original: bool,
    /// `append_x_forwarded_host`: append the old Host to `x-forwarded-host`.
    pub append_x_forwarded_host: bool,
}

/// A response from an upstream host (any status), with the host that produced it.
#[derive(Debug)]
pub struct UpstreamResponse {
    /// The response; its body streams from the upstream connection.
    pub response: http::Response<UpstreamBody>,
    /// The host that answered (`%UPSTREAM_HOST%`).
    pub host: std::sync::Arc<Host>,
}
