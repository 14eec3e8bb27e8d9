//! Shared state for serving HTTP: the cluster manager, and per connection-manager config
//! the compiled [`HcmRuntime`] (route source, filter chain, access loggers, stat handles),
//! built once when its filter chain is compiled and held by that chain, so connections
//! never rebuild or look anything up.

use std::sync::Arc;

use baton_config::model::HttpConnectionManager;

use crate::access_log::{AccessLoggers, SinkError};
use crate::stats::{HttpConnManagerStats, ListenerHttpStats};
use crate::upstream::ClusterManager;

use super::filter::FilterChain;
use super::rds::RouteSource;
use super::router::RouteTable;

/// One connection manager config, compiled.
#[derive(Debug)]
pub struct HcmRuntime {
    /// The config.
    pub hcm: Arc<HttpConnectionManager>,
    /// Its routes (inline, or RDS).
    pub routes: RouteSource,
    /// Its HTTP filter chain (the filters' instances, the router last).
    pub filters: FilterChain,
    /// Its access loggers.
    pub loggers: AccessLoggers,
    /// `http.<stat_prefix>.*`
    pub stats: HttpConnManagerStats,
    /// `listener.<address>.http.<stat_prefix>.*`, when the listener is known.
    pub listener_stats: Option<ListenerHttpStats>,
}

impl HcmRuntime {
    /// Compiles one connection manager config with its inline route config.
    pub fn new(hcm: Arc<HttpConnectionManager>) -> Result<Self, SinkError> {
        let routes = RouteSource::Static(Arc::new(RouteTable::new(hcm.route_config.clone())));
        Self::build(hcm, None, routes)
    }

    /// Compiles one connection manager config of the listener whose stat prefix is
    /// `listener_stat_prefix` (`listener.127.0.0.1_10000.`), routing with `routes`.
    pub fn for_listener(
        hcm: Arc<HttpConnectionManager>,
        listener_stat_prefix: &str,
        routes: RouteSource,
    ) -> Result<Self, SinkError> {
        Self::build(hcm, Some(listener_stat_prefix), routes)
    }

    fn build(
        hcm: Arc<HttpConnectionManager>,
        listener_stat_prefix: Option<&str>,
        routes: RouteSource,
    ) -> Result<Self, SinkError> {
        let store = crate::stats::store();
        Ok(Self {
            filters: FilterChain::new(&hcm),
            routes,
            loggers: AccessLoggers::new(
                &hcm.access_logs,
                baton_config::model::AccessLogType::DownstreamEnd,
            )?,
            stats: HttpConnManagerStats::new(store, &hcm.stat_prefix),
            listener_stats: listener_stat_prefix
                .map(|l| ListenerHttpStats::new(store, l, &hcm.stat_prefix)),
            hcm,
        })
    }
}

/// What `serve_connection` needs besides the connection and its compiled config: shared
/// by all workers for the life of the server.
#[derive(Debug)]
pub struct HttpContext {
    /// Upstream clusters.
    pub clusters: Arc<ClusterManager>,
}

impl HttpContext {
    /// The context over `clusters`.
    pub fn new(clusters: Arc<ClusterManager>) -> Self {
        Self { clusters }
    }
}
