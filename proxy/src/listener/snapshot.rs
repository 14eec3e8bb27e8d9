//! Compiled listeners. A [`ListenerSnapshot`] is one listener config compiled once: each
//! filter chain's network filter runtime (HTTP connection manager or tcp_proxy) with its
//! own drain, and the listener's stat handles. A [`ListenerHandle`] is a listen socket
//! plus the snapshot new connections use; an update swaps that one pointer, while every
//! connection keeps the chain (and so the runtime and drain) it started with.
//!
//! A chain whose config did not change between two snapshots is the same
//! [`CompiledChain`] in both, so its connections are untouched by the update; the
//! listener manager drains only the chains that went away.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use baton_config::model::{FilterChain, Listener, NetworkFilter};
use tokio::sync::watch;

use super::filter_chain::{select_filter_chain_index, MatchInput, SelectedChain};
use super::limits::ChainConnectionLimit;
use crate::access_log::SinkError;
use crate::base::drain::{self, DrainSignal, DrainStrategy, DrainTrigger};
use crate::http::rds::{RouteConfigProvider, RouteConfigProviders, RouteSource};
use crate::http::router::RouteTable;
use crate::http::HcmRuntime;
use crate::stats::ListenerStats;
use crate::tcp::TcpProxyRuntime;
use crate::tls::sds_xds::SecretProvider;
use crate::tls::{build_server_config, ServerTls, SslStats};

/// Compiling a listener failed.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// An access log could not be opened.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// A filter chain's TLS context was refused by rustls.
    #[error("filter chain '{chain}': {cause}")]
    Tls {
        /// The chain's name (may be empty).
        chain: String,
        /// Why.
        cause: crate::tls::server::TlsError,
    },
}

/// The network filter of a compiled chain.
#[derive(Debug)]
pub enum ChainNetwork {
    /// `http_connection_manager`
    Http(Arc<HcmRuntime>),
    /// `tcp_proxy`
    Tcp(Arc<TcpProxyRuntime>),
}

/// One filter chain, compiled.
#[derive(Debug)]
pub struct CompiledChain {
    /// Its config.
    pub model: Arc<FilterChain>,
    /// Its network filter, ready to serve.
    pub network: ChainNetwork,
    /// Its TLS server side (`None`: plain text).
    pub tls: Option<Arc<ServerTls>>,
    /// Identity of its config: an update with the same hash keeps this chain.
    pub config_hash: u64,
    /// `envoy.filters.network.connection_limit`, counting this chain's connections.
    pub connection_limit: Option<Arc<ChainConnectionLimit>>,
    drain: DrainTrigger,
}

impl CompiledChain {
    /// The drain signal for a new connection on this chain.
    pub fn drain_signal(&self) -> DrainSignal {
        self.drain.signal()
    }

    /// Drains this chain's connections (listener removed, chain replaced, shutdown).
    pub fn drain(&self) -> &DrainTrigger {
        &self.drain
    }

    /// The RDS route configurations this chain routes with.
    pub fn rds_providers(&self) -> Option<&Arc<RouteConfigProvider>> {
        match &self.network {
            ChainNetwork::Http(rt) => match &rt.routes {
                RouteSource::Rds(p) => Some(p),
                RouteSource::Static(_) => None,
            },
            ChainNetwork::Tcp(_) => None,
        }
    }
}

/// What compiling needs besides the listener config.
#[derive(Debug, Clone)]
pub struct CompileSettings {
    /// `--drain-strategy` for the chains' drains.
    pub drain_strategy: DrainStrategy,
    /// `--drain-time-s`
    pub drain_time: Duration,
    /// RDS route configurations, shared by name.
    pub rds: Arc<RouteConfigProviders>,
}

/// Config identity of a listener, for updates: the whole config, the listener without
/// its filter chains, and each chain (same order as `filter_chains`, then the default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerHashes {
    /// The whole listener.
    pub whole: u64,
    /// Everything but the filter chains (a change here replaces every chain).
    pub base: u64,
    /// `filter_chains[i]`
    pub chains: Vec<u64>,
    /// `default_filter_chain`
    pub default_chain: Option<u64>,
}

/// One listener config, compiled. Immutable; swapped whole.
#[derive(Debug)]
pub struct ListenerSnapshot {
    /// The config.
    pub model: Arc<Listener>,
    /// `filter_chains`, compiled, in config order.
    pub chains: Vec<Arc<CompiledChain>>,
    /// `default_filter_chain`, compiled.
    pub default_chain: Option<Arc<CompiledChain>>,
    /// `listener.<address>.*`
    pub stats: Arc<ListenerStats>,
    /// `listener.<address>.ssl.*`, when a chain terminates TLS.
    pub ssl_stats: Option<Arc<SslStats>>,
    /// The `proxy_protocol` listener filter's stats, when it runs.
    pub proxy_protocol: Option<Arc<super::proxy_protocol::ProxyProtocolStats>>,
    /// Its config identity.
    pub hashes: ListenerHashes,
}

impl ListenerSnapshot {
    /// Compiles `model`. Chains of `previous` with the same hash (and the same
    /// listener-level config) are reused as they are.
    pub fn compile(
        model: Arc<Listener>,
        hashes: ListenerHashes,
        previous: Option<&ListenerSnapshot>,
        settings: &CompileSettings,
    ) -> Result<Self, CompileError> {
        let ssl_stats = model.all_filter_chains().any(|c| c.tls.is_some()).then(|| {
            Arc::new(SslStats::new(
                crate::stats::store(),
                &model.stat_prefix,
                crate::tls::stats::FactorySide::Server,
            ))
        });
        let reusable = previous.filter(|p| p.hashes.base == hashes.base && hashes.base != 0);
        let compile_one =
            |chain: &Arc<FilterChain>, hash: u64| -> Result<Arc<CompiledChain>, CompileError> {
                if let Some(old) = reusable
                    .and_then(|p| p.all_chains().find(|c| c.config_hash == hash && hash != 0))
                {
                    return Ok(old.clone());
                }
                compile_chain(&model, chain, hash, settings, ssl_stats.as_ref())
            };
        let mut chains = Vec::with_capacity(model.filter_chains.len());
        for (i, chain) in model.filter_chains.iter().enumerate() {
            chains.push(compile_one(
                chain,
                hashes.chains.get(i).copied().unwrap_or(0),
            )?);
        }
        let default_chain = match &model.default_filter_chain {
            Some(chain) => Some(compile_one(chain, hashes.default_chain.unwrap_or(0))?),
            None => None,
        };
        if model.tls_inspector {
            // Envoy's `tls_inspector.*` exist from the first listener that runs it.
            crate::tls::inspector::InspectorStats::get();
        }
        Ok(Self {
            ssl_stats,
            proxy_protocol: model
                .proxy_protocol
                .as_ref()
                .map(|config| Arc::new(super::proxy_protocol::ProxyProtocolStats::new(config))),
            stats: Arc::new(ListenerStats::new(
                crate::stats::store(),
                &model.stat_prefix,
            )),
            model,
            chains,
            default_chain,
            hashes,
        })
    }

    /// The chain for a new connection (Envoy's filter-chain match).
    pub fn select(&self, input: MatchInput<'_>) -> Option<&Arc<CompiledChain>> {
        match select_filter_chain_index(&self.model, input)? {
            SelectedChain::Index(i) => self.chains.get(i),
            SelectedChain::Default => self.default_chain.as_ref(),
        }
    }

    /// Every chain: `filter_chains`, then the default.
    pub fn all_chains(&self) -> impl Iterator<Item = &Arc<CompiledChain>> {
        self.chains.iter().chain(self.default_chain.iter())
    }

    /// RDS route configurations used by its chains.
    pub fn rds_providers(&self) -> Vec<Arc<RouteConfigProvider>> {
        let mut out: Vec<Arc<RouteConfigProvider>> = Vec::new();
        for p in self.all_chains().filter_map(|c| c.rds_providers()) {
            if !out.iter().any(|o| Arc::ptr_eq(o, p)) {
                out.push(p.clone());
            }
        }
        out
    }

    /// Secrets from a control plane that its chains' TLS contexts use.
    pub fn secret_providers(&self) -> Vec<Arc<SecretProvider>> {
        let mut out: Vec<Arc<SecretProvider>> = Vec::new();
        let chains = self.all_chains().filter_map(|c| c.tls.as_ref());
        for p in chains.flat_map(|t| t.secret_providers.iter()) {
            if !out.iter().any(|o| Arc::ptr_eq(o, p)) {
                out.push(p.clone());
            }
        }
        out
    }

    /// Whether everything it warms for (RDS routes, SDS secrets) is there or given up.
    pub fn is_warm(&self) -> bool {
        self.rds_providers().iter().all(|p| p.is_ready())
            && self.secret_providers().iter().all(|p| p.is_ready())
    }
}

fn compile_chain(
    listener: &Listener,
    chain: &Arc<FilterChain>,
    hash: u64,
    settings: &CompileSettings,
    ssl_stats: Option<&Arc<SslStats>>,
) -> Result<Arc<CompiledChain>, CompileError> {
    let tls = match (&chain.tls, ssl_stats) {
        (Some(ctx), Some(stats)) => Some(Arc::new(build_server_config(ctx, stats).map_err(
            |cause| CompileError::Tls {
                chain: chain.name.clone(),
                cause,
            },
        )?)),
        _ => None,
    };
    let network = match &chain.network {
        NetworkFilter::Http(hcm) => {
            let routes = match &hcm.rds {
                Some(rds) => RouteSource::Rds(settings.rds.get_or_create(
                    &rds.route_config_name,
                    &hcm.stat_prefix,
                    rds.source.initial_fetch_timeout,
                )),
                None => RouteSource::Static(Arc::new(RouteTable::new(hcm.route_config.clone()))),
            };
            ChainNetwork::Http(Arc::new(HcmRuntime::for_listener(
                hcm.clone(),
                &listener.stat_prefix,
                routes,
            )?))
        }
        NetworkFilter::TcpProxy(cfg) => ChainNetwork::Tcp(Arc::new(TcpProxyRuntime::for_listener(
            cfg.clone(),
            listener.per_connection_buffer_limit_bytes,
        )?)),
    };
    let (drain, _) = drain::channel_with(settings.drain_strategy, settings.drain_time);
    Ok(Arc::new(CompiledChain {
        model: chain.clone(),
        network,
        tls,
        config_hash: hash,
        connection_limit: chain
            .connection_limit
            .as_ref()
            .map(ChainConnectionLimit::new),
        drain,
    }))
}

/// A listener that has a socket: what workers accept on, and the snapshot they hand
/// new connections to.
#[derive(Debug)]
pub struct ListenerHandle {
    /// Listener name.
    pub name: String,
    /// The listen socket (workers accept on dups of it; hot restart passes it on).
    pub socket: TcpListener,
    /// The address actually bound.
    pub local_addr: SocketAddr,
    snapshot: ArcSwap<ListenerSnapshot>,
    stop: watch::Sender<bool>,
}

impl ListenerHandle {
    /// A handle serving `snapshot` on `socket` (which must be listening before workers
    /// are given the handle).
    pub fn new(snapshot: ListenerSnapshot, socket: TcpListener, local_addr: SocketAddr) -> Self {
        Self {
            name: snapshot.model.name.clone(),
            socket,
            local_addr,
            snapshot: ArcSwap::from_pointee(snapshot),
            stop: watch::channel(false).0,
        }
    }

    /// The snapshot new connections use.
    pub fn snapshot(&self) -> Arc<ListenerSnapshot> {
        self.snapshot.load_full()
    }

    /// Replaces the snapshot; returns the old one.
    pub fn swap(&self, snapshot: ListenerSnapshot) -> Arc<ListenerSnapshot> {
        self.snapshot.swap(Arc::new(snapshot))
    }

    /// Every worker stops accepting on this listener.
    pub fn stop_accepting(&self) {
        self.stop.send_replace(true);
    }

    /// Stops accepting and closes the listen socket for everyone holding it, so new
    /// connections are refused rather than left in the accept queue
    /// (`/drain_listeners`). Not for a socket a newer generation may still take.
    pub fn stop_and_close(&self) {
        self.stop_accepting();
        // On Linux, shutting down a listening socket's read side stops it listening.
        let _ = socket2::SockRef::from(&self.socket).shutdown(std::net::Shutdown::Read);
    }

    /// Whether accepting has stopped.
    pub fn is_stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves once accepting should stop.
    pub fn stopped(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }
}
