//! The listener manager: every listener's life, as Envoy's listener manager runs it.
//!
//! ```text
//! add_or_update ──> warming ──(RDS routes, SDS secrets arrived / timed out)──> active ──remove──> draining ──drain time──> gone
//!                      └─ nothing to wait for: active at once
//! ```
//! - *Warming*: compiled, socket bound (or taken from the parent / the supervisor) but
//!   not accepting, until every RDS route configuration its connection managers use (and
//!   every SDS secret from a control plane its TLS contexts use) has arrived or given
//!   up (`listener_manager.total_listeners_warming`).
//! - *Active*: workers accept on it. An update of an active listener at the same
//!   address swaps its snapshot in place once the new one is warm: chains whose config
//!   is unchanged keep their connections; the chains that went away drain. A new address
//!   gets a new socket; the old listener then drains whole.
//! - *Draining*: accepts nothing; its connections are asked to go (`--drain-strategy`)
//!   and closed when `--drain-time-s` is over.
//!
//! Before the server is LIVE no worker accepts at all ([`ListenerManager::start`] hands
//! the active listeners to the workers); the init manager waits for warming listeners
//! with [`ListenerManager::wait_warm`]. Socket acquisition is in `sockets`; process-wide
//! drain, `/drain_listeners` and admin views in `drain`.

mod drain;
mod sockets;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::SystemTime;

use baton_config::model::Listener;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tracing::{info, warn};

use crate::listener::bind::listen;
use crate::listener::{
    CompileSettings, CompiledChain, ListenerHandle, ListenerHashes, ListenerSnapshot,
};
use crate::stats::ListenerManagerStats;

use super::workers::Workers;

pub use drain::ListenerState;
pub use sockets::SocketSource;

/// Facts about a listener beyond its config, for /config_dump.
#[derive(Debug, Clone)]
pub struct ListenerMeta {
    /// Came from LDS (false: static_resources).
    pub added_via_api: bool,
    /// `version_info` of the LDS response that delivered it.
    pub version_info: String,
    /// When it was last added or updated.
    pub last_updated: SystemTime,
    /// The listener as /config_dump shows it, when known.
    pub config_dump: Option<baton_config::resource::ResourceDump>,
}

impl ListenerMeta {
    /// A listener from `static_resources`.
    pub fn static_listener() -> Self {
        Self {
            added_via_api: false,
            version_info: String::new(),
            last_updated: SystemTime::now(),
            config_dump: None,
        }
    }
}

/// What [`ListenerManager::add_or_update`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerChange {
    /// A new listener (warming or active).
    Added,
    /// A changed listener (the new version warms, then replaces the old).
    Modified,
    /// Same config as now: nothing happened.
    Unchanged,
}

/// Why a listener could not be added.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// Another listener has the address.
    #[error("error adding listener '{name}': listener '{other}' already uses address {address}")]
    DuplicateAddress {
        /// The new listener.
        name: String,
        /// The one that has the address.
        other: String,
        /// The address.
        address: SocketAddr,
    },
    /// A static listener cannot be changed or removed through LDS.
    #[error("error adding listener '{0}': a static listener cannot be updated through LDS")]
    Static(String),
    /// Compiling it failed (an access log that cannot be opened, ...).
    #[error("error adding listener '{name}': {cause}")]
    Compile {
        /// The listener.
        name: String,
        /// Why.
        cause: String,
    },
    /// No socket for it.
    #[error("error adding listener '{name}': cannot bind {address}: {cause}")]
    Bind {
        /// The listener.
        name: String,
        /// Configured address.
        address: SocketAddr,
        /// Why.
        cause: std::io::Error,
    },
}

#[derive(Debug)]
struct Active {
    handle: Arc<ListenerHandle>,
    meta: ListenerMeta,
    /// Handed to the workers (the server is LIVE).
    accepting: bool,
}

#[derive(Debug)]
struct Warming {
    id: u64,
    snapshot: ListenerSnapshot,
    /// A socket of its own; None when it will replace the active listener of the same
    /// name and address in place.
    socket: Option<(std::net::TcpListener, SocketAddr)>,
    meta: ListenerMeta,
    task: Option<AbortHandle>,
}

#[derive(Debug)]
struct Draining {
    name: String,
    chains: Vec<Arc<CompiledChain>>,
    /// The listener's own when the whole listener drains (`draining_state` in
    /// `/config_dump`); None for the chains an in-place update left behind.
    meta: Option<ListenerMeta>,
    /// Distinguishes drains for removal when their time is over.
    id: u64,
}

#[derive(Debug, Default)]
struct Inner {
    active: Vec<Active>,
    warming: Vec<Warming>,
    draining: Vec<Draining>,
    next_id: u64,
    /// The server is LIVE: activated listeners go to the workers at once.
    started: bool,
    /// Shutdown began: nothing new is added.
    stopping: bool,
}

/// Every listener of the server. Lives on the main runtime.
pub struct ListenerManager {
    inner: Mutex<Inner>,
    sockets: tokio::sync::Mutex<SocketSource>,
    workers: Mutex<Option<Workers>>,
    settings: CompileSettings,
    stats: ListenerManagerStats,
    concurrency: usize,
    /// Number of warming listeners (init waits for 0).
    warming_count: watch::Sender<usize>,
    /// `version_info` of the last accepted LDS response (/config_dump).
    lds_version: Mutex<String>,
    me: Weak<ListenerManager>,
}

impl std::fmt::Debug for ListenerManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerManager").finish_non_exhaustive()
    }
}

impl ListenerManager {
    /// A manager whose listeners are served by `workers` once started.
    pub fn new(settings: CompileSettings, sockets: SocketSource, workers: Workers) -> Arc<Self> {
        let concurrency = workers.count();
        Arc::new_cyclic(|me| Self {
            inner: Mutex::new(Inner::default()),
            sockets: tokio::sync::Mutex::new(sockets),
            workers: Mutex::new(Some(workers)),
            settings,
            stats: ListenerManagerStats::new(crate::stats::store()),
            concurrency,
            warming_count: watch::channel(0).0,
            lds_version: Mutex::new(String::new()),
            me: me.clone(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a listener, or updates the one of the same name. It warms until its RDS
    /// routes are there, then becomes active (accepting once the server is started).
    pub async fn add_or_update(
        &self,
        model: Arc<Listener>,
        hashes: ListenerHashes,
        meta: ListenerMeta,
    ) -> Result<ListenerChange, ListenerError> {
        let name = model.name.clone();
        // What exists under this name, and who else holds the address.
        let (previous, in_place, change) = {
            let inner = self.lock();
            if inner.stopping {
                return Ok(ListenerChange::Unchanged);
            }
            let active = inner.active.iter().find(|a| a.handle.name == name);
            let warming = inner.warming.iter().find(|w| w.snapshot.model.name == name);
            if let Some(a) = active {
                if !a.meta.added_via_api && meta.added_via_api {
                    return Err(ListenerError::Static(name));
                }
            }
            let same = |h: &ListenerHashes| h.whole == hashes.whole && hashes.whole != 0;
            match (active, warming) {
                (_, Some(w)) if same(&w.snapshot.hashes) => return Ok(ListenerChange::Unchanged),
                (Some(a), None) if same(&a.handle.snapshot().hashes) => {
                    return Ok(ListenerChange::Unchanged)
                }
                _ => {}
            }
            let taken = inner
                .active
                .iter()
                .map(|a| (a.handle.name.as_str(), a.handle.snapshot().model.address))
                .chain(
                    inner
                        .warming
                        .iter()
                        .map(|w| (w.snapshot.model.name.as_str(), w.snapshot.model.address)),
                )
                .find(|(n, addr)| {
                    *n != name && *addr == model.address && model.address.port() != 0
                });
            if let Some((other, address)) = taken {
                return Err(ListenerError::DuplicateAddress {
                    name,
                    other: other.to_string(),
                    address,
                });
            }
            let previous = active.map(|a| a.handle.snapshot());
            let in_place = previous
                .as_ref()
                .is_some_and(|p| p.model.address == model.address);
            let change = if active.is_some() || warming.is_some() {
                ListenerChange::Modified
            } else {
                ListenerChange::Added
            };
            (previous, in_place, change)
        };
        let socket = if in_place {
            None
        } else {
            let socket = self
                .sockets
                .lock()
                .await
                .acquire(&model)
                .await
                .map_err(|cause| ListenerError::Bind {
                    name: name.clone(),
                    address: model.address,
                    cause,
                })?;
            Some(socket)
        };
        // Chains are reused only in place: a listener moving address drains whole.
        let previous = previous.filter(|_| in_place);
        // Compiled on the blocking pool: opening access logs can block (a FIFO waits
        // for its reader) and big listeners take a while, and the main thread keeps
        // answering admin and xDS meanwhile.
        let settings = self.settings.clone();
        let compiled = tokio::task::spawn_blocking({
            let model = model.clone();
            move || ListenerSnapshot::compile(model, hashes, previous.as_deref(), &settings)
        })
        .await;
        let compile_error = |cause: String| ListenerError::Compile {
            name: name.clone(),
            cause,
        };
        let snapshot = compiled
            .map_err(|e| compile_error(e.to_string()))?
            .map_err(|e| compile_error(e.to_string()))?;
        match change {
            ListenerChange::Added => self.stats.listener_added.inc(),
            _ => self.stats.listener_modified.inc(),
        }
        let waiting: Vec<_> = snapshot
            .rds_providers()
            .into_iter()
            .filter(|p| !p.is_ready())
            .collect();
        let waiting_secrets: Vec<_> = snapshot
            .secret_providers()
            .into_iter()
            .filter(|p| !p.is_ready())
            .collect();
        let id = {
            let mut inner = self.lock();
            inner.next_id += 1;
            let id = inner.next_id;
            // A newer version replaces one still warming.
            if let Some(pos) = inner
                .warming
                .iter()
                .position(|w| w.snapshot.model.name == name)
            {
                let old = inner.warming.remove(pos);
                if let Some(t) = old.task {
                    t.abort();
                }
            }
            let task = (!waiting.is_empty() || !waiting_secrets.is_empty()).then(|| {
                let me = self.me.clone();
                let name = name.clone();
                tokio::spawn(async move {
                    for p in &waiting {
                        p.wait_ready().await;
                    }
                    for p in &waiting_secrets {
                        p.wait_ready().await;
                    }
                    if let Some(m) = me.upgrade() {
                        m.activate(&name, id);
                    }
                })
                .abort_handle()
            });
            inner.warming.push(Warming {
                id,
                snapshot,
                socket,
                meta,
                task,
            });
            self.publish_counts(&inner);
            id
        };
        self.activate(&name, id);
        Ok(change)
    }

    /// A warm listener becomes active (a no-op while it still waits for routes, or if
    /// a newer version replaced it).
    fn activate(&self, name: &str, id: u64) {
        let mut inner = self.lock();
        let Some(pos) = inner
            .warming
            .iter()
            .position(|w| w.id == id && w.snapshot.model.name == name)
        else {
            return;
        };
        if !inner.warming[pos].snapshot.is_warm() {
            return;
        }
        let w = inner.warming.remove(pos);
        let started = inner.started;
        let existing = inner.active.iter().position(|a| a.handle.name == name);
        match (w.socket, existing) {
            (None, Some(i)) => {
                // Same address: swap in place; only the chains that went away drain.
                let new_chains: Vec<Arc<CompiledChain>> =
                    w.snapshot.all_chains().cloned().collect();
                let old = inner.active[i].handle.swap(w.snapshot);
                inner.active[i].meta = w.meta;
                let gone: Vec<Arc<CompiledChain>> = old
                    .all_chains()
                    .filter(|c| !new_chains.iter().any(|n| Arc::ptr_eq(n, c)))
                    .cloned()
                    .collect();
                info!(listener = %name, drained_chains = gone.len(), "listener updated in place");
                // Counted once the gone chains drain, so whoever sees the count sees
                // their connections already told to close.
                self.drain_chains(&mut inner, name, gone, None);
                self.stats.listener_in_place_updated.inc();
            }
            (Some((socket, local_addr)), existing) => {
                if let Err(e) = listen(&socket, w.snapshot.model.listen_backlog()) {
                    warn!(listener = %name, error = %e, "cannot listen; listener not activated");
                    self.publish_counts(&inner);
                    return;
                }
                let handle = Arc::new(ListenerHandle::new(w.snapshot, socket, local_addr));
                if started {
                    self.give_to_workers(&handle);
                }
                let entry = Active {
                    handle,
                    meta: w.meta,
                    accepting: started,
                };
                match existing {
                    Some(i) => {
                        // New address: the old listener stops and drains whole.
                        let old = std::mem::replace(&mut inner.active[i], entry);
                        old.handle.stop_accepting();
                        let chains = old.handle.snapshot().all_chains().cloned().collect();
                        self.drain_chains(&mut inner, name, chains, Some(old.meta));
                    }
                    None => inner.active.push(entry),
                }
            }
            (None, None) => {
                // The in-place target was removed meanwhile: nothing to update.
                warn!(listener = %name, "listener update dropped: the listener it updated is gone");
            }
        }
        self.publish_counts(&inner);
    }

    fn give_to_workers(&self, handle: &Arc<ListenerHandle>) {
        if let Some(w) = self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            w.add_listener(handle);
        }
        self.stats
            .listener_create_success
            .add(self.concurrency as u64);
        info!(listener = %handle.name, address = %handle.local_addr, "listener accepting");
    }

    /// Removes a listener (LDS no longer lists it): a warming one is dropped, an active
    /// one stops accepting and drains. Returns whether it existed.
    pub fn remove(&self, name: &str) -> bool {
        let mut inner = self.lock();
        let mut found = false;
        if let Some(pos) = inner
            .warming
            .iter()
            .position(|w| w.snapshot.model.name == name)
        {
            let w = inner.warming.remove(pos);
            if let Some(t) = w.task {
                t.abort();
            }
            found = true;
        }
        if let Some(pos) = inner.active.iter().position(|a| a.handle.name == name) {
            if !inner.active[pos].meta.added_via_api {
                return found;
            }
            let a = inner.active.remove(pos);
            a.handle.stop_accepting();
            let chains = a.handle.snapshot().all_chains().cloned().collect();
            self.drain_chains(&mut inner, name, chains, Some(a.meta));
            found = true;
        }
        if found {
            self.stats.listener_removed.inc();
            info!(listener = %name, "listener removed");
        }
        self.publish_counts(&inner);
        found
    }

    /// The server is LIVE: every active listener starts accepting, and so will those
    /// activated later.
    pub fn start(&self) {
        let mut inner = self.lock();
        inner.started = true;
        self.stats.workers_started.set(1);
        for a in inner.active.iter_mut().filter(|a| !a.accepting) {
            a.accepting = true;
            self.give_to_workers(&a.handle);
        }
    }

    /// Records the last accepted LDS `version_info`.
    pub fn set_lds_version(&self, version: &str) {
        *self.lds_version.lock().unwrap_or_else(|e| e.into_inner()) = version.to_string();
    }

    /// The last accepted LDS `version_info`.
    pub fn lds_version(&self) -> String {
        self.lds_version
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Each warming listener's own init manager and the targets it still waits for, as
    /// Envoy's `/init_dump` shows them: (`Listener-local-init-manager <name> <hash>`,
    /// [`shared target RdsRouteConfigSubscription RDS init <routes>`, `shared target SdsApi
    /// <secret>`]).
    /// The hash is Baton's hash of the listener config (Envoy prints its own).
    pub fn warming_init_targets(&self) -> Vec<(String, Vec<String>)> {
        let inner = self.lock();
        inner
            .warming
            .iter()
            .map(|w| {
                let rds = w
                    .snapshot
                    .rds_providers()
                    .into_iter()
                    .filter(|p| !p.is_ready());
                let mut targets: Vec<String> = rds
                    .map(|p| {
                        format!(
                            "shared target RdsRouteConfigSubscription RDS init {}",
                            p.name()
                        )
                    })
                    .collect();
                let sds = w
                    .snapshot
                    .secret_providers()
                    .into_iter()
                    .filter(|p| !p.is_ready());
                targets.extend(sds.map(|p| format!("shared target SdsApi {}", p.name())));
                let manager = format!(
                    "Listener-local-init-manager {} {}",
                    w.snapshot.model.name, w.snapshot.hashes.whole
                );
                (manager, targets)
            })
            .filter(|(_, targets)| !targets.is_empty())
            .collect()
    }

    /// Resolves once no listener is warming.
    pub async fn wait_warm(&self) {
        let mut rx = self.warming_count.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// The source of listen sockets (init hands the parent link over to it and takes it
    /// back once the listeners are set up).
    pub fn sockets(&self) -> &tokio::sync::Mutex<SocketSource> {
        &self.sockets
    }

    fn publish_counts(&self, inner: &Inner) {
        self.stats
            .total_listeners_active
            .set(inner.active.len() as u64);
        self.stats
            .total_listeners_warming
            .set(inner.warming.len() as u64);
        self.stats
            .total_filter_chains_draining
            .set(inner.draining.iter().map(|d| d.chains.len() as u64).sum());
        let draining: std::collections::HashSet<&str> =
            inner.draining.iter().map(|d| d.name.as_str()).collect();
        self.stats
            .total_listeners_draining
            .set(draining.len() as u64);
        self.warming_count.send_replace(inner.warming.len());
    }
}

/// Admin's view: the listener manager for /listeners and /drain_listeners, the init
/// manager for /init_dump.
pub struct AdminView {
    /// The listeners.
    pub listeners: Arc<ListenerManager>,
    /// RDS route configurations.
    pub rds: Arc<crate::http::rds::RouteConfigProviders>,
    /// The init manager.
    pub init: super::init::InitManager,
}

impl crate::admin::ListenerAdmin for AdminView {
    fn active_listeners(&self) -> Vec<crate::admin::ListenerStatus> {
        self.listeners
            .states()
            .into_iter()
            .filter(|s| s.state == "active")
            .filter_map(|s| {
                Some(crate::admin::ListenerStatus {
                    name: s.name,
                    local_address: s.local_address?,
                })
            })
            .collect()
    }

    fn drain_listeners(&self, graceful: bool, inbound_only: bool) {
        self.listeners.drain_listeners(graceful, inbound_only);
    }

    fn lds_version(&self) -> String {
        self.listeners.lds_version()
    }

    fn dynamic_listeners_dump(&self) -> Vec<serde_json::Value> {
        let mut out: Vec<serde_json::Value> = Vec::new();
        for s in self.listeners.states() {
            let Some(meta) = s.meta.as_ref().filter(|m| m.added_via_api) else {
                continue;
            };
            let state = serde_json::json!({
                "version_info": meta.version_info,
                "listener": meta
                    .config_dump
                    .as_ref()
                    .map(baton_config::resource::ResourceDump::json)
                    .unwrap_or_default(),
                "last_updated": crate::admin::timestamp(meta.last_updated),
            });
            let key = match s.state {
                "warming" => "warming_state",
                "draining" => "draining_state",
                _ => "active_state",
            };
            match out.iter_mut().find(|e| e["name"] == s.name.as_str()) {
                Some(entry) => entry[key] = state,
                None => out.push(serde_json::json!({"name": s.name, key: state})),
            }
        }
        out
    }

    fn dynamic_route_configs_dump(&self) -> Vec<serde_json::Value> {
        self.rds
            .all()
            .into_iter()
            .filter_map(|p| p.meta())
            .map(|m| {
                serde_json::json!({
                    "version_info": m.version_info,
                    "route_config": m.config_dump.json(),
                    "last_updated": crate::admin::timestamp(m.last_updated),
                })
            })
            .collect()
    }

    fn warming_listener_targets(&self) -> Vec<(String, Vec<String>)> {
        self.listeners.warming_init_targets()
    }

    fn unready_init_targets(&self) -> Vec<String> {
        let mut pending = self.init.pending();
        pending.extend(
            self.listeners
                .states()
                .into_iter()
                .filter(|s| s.state == "warming")
                .map(|s| format!("Listener-init-target {}", s.name)),
        );
        pending
    }
}
