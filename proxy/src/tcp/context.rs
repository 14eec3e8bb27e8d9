//! Compiled tcp_proxy configs: each config's `tcp.<stat_prefix>.*` handles, access
//! loggers and its listener's buffer limit, built once when its filter chain is compiled
//! (so a log file that cannot be opened fails the listener update, not a connection) and
//! held by that chain.

use std::sync::Arc;

use baton_config::model::TcpProxy;

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
        let loggers = AccessLoggers::new(
            &cfg.access_logs,
            baton_config::model::AccessLogType::TcpConnectionEnd,
        )?;
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
