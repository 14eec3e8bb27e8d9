//! Shared state for serving HTTP: the cluster manager and, per connection-manager config,
//! the compiled route table, filter chain, access loggers and stat handles (built once per snapshot,
//! looked up by the config's address so connections don't rebuild them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use baton_config::model::{HttpConnectionManager, Listener, NetworkFilter};

use crate::access_log::{AccessLoggers, SinkError};
use crate::stats::{HttpConnManagerStats, ListenerHttpStats};
use crate::upstream::ClusterManager;

use super::filter::FilterChain;
use super::router::RouteTable;

/// One connection manager config, compiled.
#[derive(Debug)]
pub struct HcmRuntime {
    /// The config.
    pub hcm: Arc<HttpConnectionManager>,
    /// Its route table.
    pub routes: RouteTable,
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
    /// Compiles one connection manager config.
    pub fn new(hcm: Arc<HttpConnectionManager>) -> Result<Self, SinkError> {
        Self::build(hcm, None)
    }

    /// Compiles one connection manager config of the listener whose stat prefix is
    /// `listener_stat_prefix` (`listener.127.0.0.1_10000.`).
    pub fn for_listener(
        hcm: Arc<HttpConnectionManager>,
        listener_stat_prefix: &str,
    ) -> Result<Self, SinkError> {
        Self::build(hcm, Some(listener_stat_prefix))
    }

    fn build(
        hcm: Arc<HttpConnectionManager>,
        listener_stat_prefix: Option<&str>,
    ) -> Result<Self, SinkError> {
        let store = crate::stats::store();
        Ok(Self {
            routes: RouteTable::new(hcm.route_config.clone()),
            filters: FilterChain::new(&hcm),
            loggers: AccessLoggers::new(&hcm.access_logs)?,
            stats: HttpConnManagerStats::new(store, &hcm.stat_prefix),
            listener_stats: listener_stat_prefix
                .map(|l| ListenerHttpStats::new(store, l, &hcm.stat_prefix)),
            hcm,
        })
    }
}

/// What `serve_connection` needs besides the connection itself. One per config snapshot,
/// shared by all workers.
#[derive(Debug)]
pub struct HttpContext {
    /// Upstream clusters.
    pub clusters: Arc<ClusterManager>,
    /// Compiled connection managers keyed by `Arc::as_ptr` of their config (the runtime
    /// holds the Arc, so the address stays unique while it is here).
    runtimes: HashMap<usize, Arc<HcmRuntime>>,
    /// Configs not known at build time (tests, ad-hoc use): compiled on first use.
    late: Mutex<Vec<Arc<HcmRuntime>>>,
}

fn key(hcm: &Arc<HttpConnectionManager>) -> usize {
    Arc::as_ptr(hcm) as usize
}

impl HttpContext {
    /// Compiles every HTTP connection manager of `listeners` (route tables, loggers).
    pub fn new(
        clusters: Arc<ClusterManager>,
        listeners: &[Arc<Listener>],
    ) -> Result<Self, SinkError> {
        let mut runtimes = HashMap::new();
        for l in listeners {
            for chain in l.all_filter_chains() {
                if let NetworkFilter::Http(hcm) = &chain.network {
                    if let std::collections::hash_map::Entry::Vacant(e) = runtimes.entry(key(hcm)) {
                        e.insert(Arc::new(HcmRuntime::for_listener(
                            hcm.clone(),
                            &l.stat_prefix,
                        )?));
                    }
                }
            }
        }
        Ok(Self {
            clusters,
            runtimes,
            late: Mutex::new(Vec::new()),
        })
    }

    /// The compiled form of `hcm` (compiled now if it was not known at build time).
    pub fn runtime(&self, hcm: &Arc<HttpConnectionManager>) -> Result<Arc<HcmRuntime>, SinkError> {
        if let Some(rt) = self.runtimes.get(&key(hcm)) {
            return Ok(rt.clone());
        }
        let mut late = self.late.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rt) = late.iter().find(|rt| Arc::ptr_eq(&rt.hcm, hcm)) {
            return Ok(rt.clone());
        }
        let rt = Arc::new(HcmRuntime::new(hcm.clone())?);
        late.push(rt.clone());
        Ok(rt)
    }
}
