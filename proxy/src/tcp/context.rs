//! Compiled tcp_proxy configs: each config's `tcp.<stat_prefix>.*` handles, access
//! loggers and its listener's buffer limit, built once per config snapshot (so a log file that cannot be opened fails
//! the snapshot, not a connection) and looked up by the config's address on accept.

use std::collections::HashMap;
use std::sync::Arc;

use baton_config::model::{Listener, NetworkFilter, TcpProxy};

use crate::access_log::{AccessLoggers, SinkError};
use crate::stats::TcpProxyStats;

/// One tcp_proxy config, compiled.
#[derive(Debug)]
pub struct TcpProxyRuntime {
    /// The config.
    pub cfg: Arc<TcpProxy>,
    /// `tcp.<stat_prefix>.*`
    pub stats: TcpProxyStats,
    /// Its access loggers (one entry per downstream connection, written at close).
    pub loggers: AccessLoggers,
    /// The listener's `per_connection_buffer_limit_bytes` (bounds downstream reads).
    pub downstream_buffer_limit: u32,
}

/// Envoy's `per_connection_buffer_limit_bytes` when a listener does not set it.
const DEFAULT_BUFFER_LIMIT: u32 = 1024 * 1024;

impl TcpProxyRuntime {
    /// Compiles one tcp_proxy config (resolving stat names, opening log sinks), on a
    /// listener with the default buffer limit.
    pub fn new(cfg: Arc<TcpProxy>) -> Result<Self, SinkError> {
        Self::for_listener(cfg, DEFAULT_BUFFER_LIMIT)
    }

    /// Compiles one tcp_proxy config of a listener whose
    /// `per_connection_buffer_limit_bytes` is `buffer_limit`.
    pub fn for_listener(cfg: Arc<TcpProxy>, buffer_limit: u32) -> Result<Self, SinkError> {
        let loggers = AccessLoggers::new(&cfg.access_logs)?;
        Ok(Self::with_loggers(cfg, buffer_limit, loggers))
    }

    fn with_loggers(cfg: Arc<TcpProxy>, buffer_limit: u32, loggers: AccessLoggers) -> Self {
        Self {
            stats: TcpProxyStats::new(crate::stats::store(), &cfg.stat_prefix),
            loggers,
            downstream_buffer_limit: buffer_limit,
            cfg,
        }
    }
}

/// Every tcp_proxy of a snapshot's listeners, compiled; shared by all workers.
#[derive(Debug, Default)]
pub struct TcpContext {
    /// Keyed by `Arc::as_ptr` of the config (the runtime holds the Arc, so the address
    /// stays unique while it is here).
    runtimes: HashMap<usize, Arc<TcpProxyRuntime>>,
}

fn key(cfg: &Arc<TcpProxy>) -> usize {
    Arc::as_ptr(cfg) as usize
}

impl TcpContext {
    /// Compiles every tcp_proxy filter of `listeners`.
    pub fn new(listeners: &[Arc<Listener>]) -> Result<Self, SinkError> {
        let mut runtimes = HashMap::new();
        for l in listeners {
            for chain in l.all_filter_chains() {
                if let NetworkFilter::TcpProxy(cfg) = &chain.network {
                    if let std::collections::hash_map::Entry::Vacant(e) = runtimes.entry(key(cfg)) {
                        e.insert(Arc::new(TcpProxyRuntime::for_listener(
                            cfg.clone(),
                            l.per_connection_buffer_limit_bytes,
                        )?));
                    }
                }
            }
        }
        Ok(Self { runtimes })
    }

    /// The compiled form of `cfg`; a config not known at build time is compiled now
    /// (without access logs if its sinks cannot be opened).
    pub fn runtime(&self, cfg: &Arc<TcpProxy>) -> Arc<TcpProxyRuntime> {
        if let Some(rt) = self.runtimes.get(&key(cfg)) {
            return rt.clone();
        }
        let rt = TcpProxyRuntime::new(cfg.clone()).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "tcp_proxy access log unavailable");
            TcpProxyRuntime::with_loggers(
                cfg.clone(),
                DEFAULT_BUFFER_LIMIT,
                AccessLoggers::default(),
            )
        });
        Arc::new(rt)
    }
}
