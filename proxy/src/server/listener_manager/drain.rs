//! Draining listeners and the views admin and hot restart take of the listener manager.
//!
//! - Per listener: a removed or replaced listener's chains (or an in-place update's
//!   chains that went away) begin draining at once and are closed when `--drain-time-s`
//!   is over ([`ListenerManager::drain_chains`]).
//! - Whole server: shutdown and hot-restart hand-over stop every listener and drain
//!   every chain ([`ListenerManager::begin_shutdown`], [`ListenerManager::hurry`],
//!   [`ListenerManager::close_all`]).
//! - `/drain_listeners`: without `graceful` the listeners stop accepting at once and
//!   their connections are left alone; with `graceful` connections are discouraged over
//!   the drain time while new ones are still accepted, then the listeners stop, as Envoy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use crate::base::drain::DrainPhase;
use crate::listener::CompiledChain;
use crate::server::hot_restart::parent::PassableSocket;

use super::{Draining, Inner, ListenerManager, ListenerMeta};

/// One listener as admin shows it.
#[derive(Debug, Clone)]
pub struct ListenerState {
    /// `name`
    pub name: String,
    /// Configured address.
    pub address: SocketAddr,
    /// Bound address (None while warming).
    pub local_address: Option<SocketAddr>,
    /// `warming`, `active` or `draining`.
    pub state: &'static str,
    /// Where it came from and when.
    pub meta: Option<ListenerMeta>,
}

impl ListenerManager {
    /// Drains `chains` of listener `name`: connections are discouraged over the drain
    /// time, then closed. `meta` is the listener's when it drains whole.
    pub(super) fn drain_chains(
        &self,
        inner: &mut Inner,
        name: &str,
        chains: Vec<Arc<CompiledChain>>,
        meta: Option<ListenerMeta>,
    ) {
        if chains.is_empty() {
            return;
        }
        let drain_time = self.settings.drain_time;
        for c in &chains {
            c.drain().begin_drain(drain_time);
        }
        inner.next_id += 1;
        let id = inner.next_id;
        inner.draining.push(Draining {
            name: name.to_string(),
            chains,
            meta,
            id,
        });
        let me = self.me.clone();
        tokio::spawn(async move {
            tokio::time::sleep(drain_time).await;
            if let Some(m) = me.upgrade() {
                m.finish_drain(id);
            }
        });
    }

    fn finish_drain(&self, id: u64) {
        let mut inner = self.lock();
        if let Some(pos) = inner.draining.iter().position(|d| d.id == id) {
            let d = inner.draining.remove(pos);
            for c in &d.chains {
                c.drain().set(DrainPhase::Closed);
            }
            info!(listener = %d.name, "listener drain over; remaining connections closed");
        }
        self.publish_counts(&inner);
    }

    /// Every chain of every active and draining listener.
    fn all_chains(inner: &Inner) -> Vec<Arc<CompiledChain>> {
        let mut out: Vec<Arc<CompiledChain>> = Vec::new();
        for a in &inner.active {
            out.extend(a.handle.snapshot().all_chains().cloned());
        }
        for d in &inner.draining {
            out.extend(d.chains.iter().cloned());
        }
        out
    }

    /// The server is going away (signal, `/quitquitquit`, a newer generation took
    /// over): no listener accepts any more, warming ones are dropped, and every
    /// connection is discouraged over `over`. `no_successor`: nobody takes over, so idle
    /// keep-alive connections may close at once.
    pub fn begin_shutdown(&self, over: Duration, no_successor: bool) {
        let mut inner = self.lock();
        inner.stopping = true;
        for w in inner.warming.drain(..) {
            if let Some(t) = w.task {
                t.abort();
            }
        }
        for a in &inner.active {
            a.handle.stop_accepting();
        }
        for c in Self::all_chains(&inner) {
            c.drain().begin_drain(over);
            if no_successor {
                c.drain().close_idle_now();
            }
        }
        let active = inner.active.len() as u64;
        self.stats.total_listeners_draining.set(active);
        self.stats.total_listeners_active.set(0);
        self.stats.total_listeners_warming.set(0);
        self.warming_count.send_replace(0);
    }

    /// Told to terminate during the drain: every response closes its connection, idle
    /// connections close now.
    pub fn hurry(&self) {
        let inner = self.lock();
        for c in Self::all_chains(&inner) {
            c.drain().hurry();
        }
    }

    /// The drain is over: close every connection that is left.
    pub fn close_all(&self) {
        let inner = self.lock();
        for c in Self::all_chains(&inner) {
            c.drain().set(DrainPhase::Closed);
        }
    }

    /// `POST /drain_listeners`: without `graceful`, stop accepting at once (connections
    /// stay); with it, discourage connections over the drain time, keep accepting, and
    /// stop accepting when the drain time is over. `inbound_only` limits it to
    /// listeners whose `traffic_direction` is INBOUND.
    pub fn drain_listeners(&self, graceful: bool, inbound_only: bool) {
        let inner = self.lock();
        let selected: Vec<_> = inner
            .active
            .iter()
            .filter(|a| !inbound_only || a.handle.snapshot().model.inbound)
            .map(|a| a.handle.clone())
            .collect();
        drop(inner);
        if !graceful {
            for h in &selected {
                if !h.is_stopped() {
                    h.stop_and_close();
                    self.stats.listener_stopped.inc();
                }
            }
            return;
        }
        let drain_time = self.settings.drain_time;
        for h in &selected {
            for c in h.snapshot().all_chains() {
                c.drain().begin_drain(drain_time);
            }
        }
        let me = self.me.clone();
        tokio::spawn(async move {
            tokio::time::sleep(drain_time).await;
            for h in &selected {
                if !h.is_stopped() {
                    h.stop_and_close();
                    if let Some(m) = me.upgrade() {
                        m.stats.listener_stopped.inc();
                    }
                }
            }
        });
    }

    /// Every listener with its state, active ones first in the order they were added.
    pub fn states(&self) -> Vec<ListenerState> {
        let inner = self.lock();
        let mut out = Vec::new();
        for a in &inner.active {
            let s = a.handle.snapshot();
            out.push(ListenerState {
                name: a.handle.name.clone(),
                address: s.model.address,
                local_address: Some(a.handle.local_addr),
                state: "active",
                meta: Some(a.meta.clone()),
            });
        }
        for w in &inner.warming {
            out.push(ListenerState {
                name: w.snapshot.model.name.clone(),
                address: w.snapshot.model.address,
                local_address: w.socket.as_ref().map(|(_, a)| *a),
                state: "warming",
                meta: Some(w.meta.clone()),
            });
        }
        // A listener draining whole (removed, or replaced at another address) is listed,
        // once, beside an active one of the same name; chains an in-place update left
        // draining are not a listener of their own.
        let mut seen = std::collections::HashSet::new();
        for d in &inner.draining {
            let whole = d.meta.is_some();
            let active = inner.active.iter().any(|a| a.handle.name == d.name);
            if (whole || !active) && seen.insert(d.name.clone()) {
                out.push(ListenerState {
                    name: d.name.clone(),
                    address: SocketAddr::from(([0, 0, 0, 0], 0)),
                    local_address: None,
                    state: "draining",
                    meta: d.meta.clone(),
                });
            }
        }
        out
    }

    /// Sockets a child generation may take (the active listeners', by configured
    /// address).
    pub fn passable_sockets(&self) -> Vec<PassableSocket> {
        let inner = self.lock();
        inner
            .active
            .iter()
            .filter(|a| !a.handle.is_stopped())
            .filter_map(|a| {
                let socket = a.handle.socket.try_clone().ok()?;
                Some(PassableSocket {
                    configured: a.handle.snapshot().model.address,
                    socket,
                })
            })
            .collect()
    }

    /// The worker threads, to join at exit.
    pub fn take_workers(&self) -> Option<super::Workers> {
        self.workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}
