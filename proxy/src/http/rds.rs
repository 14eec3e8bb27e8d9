//! Where a connection manager's routes come from: an inline `route_config` compiled
//! once, or an RDS route configuration that the control plane replaces at run time.
//!
//! A request takes the current table once ([`RouteSource::current`]: one `ArcSwap`
//! load) and is routed with it to the end, so an RDS update never changes a request in
//! flight. Providers are shared by name, as Envoy shares one RDS subscription between
//! the connection managers that name the same route configuration; the registry's names
//! are what the RDS subscription asks for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use baton_config::model::RouteConfig;
use tokio::sync::watch;

use super::router::RouteTable;
use crate::xds::{SubscriptionKind, SubscriptionStats};

/// A connection manager's route table: fixed, or from RDS.
#[derive(Debug)]
pub enum RouteSource {
    /// `route_config` inline.
    Static(Arc<RouteTable>),
    /// `rds`.
    Rds(Arc<RouteConfigProvider>),
}

impl RouteSource {
    /// The table new requests are routed with.
    pub fn current(&self) -> Arc<RouteTable> {
        match self {
            Self::Static(t) => t.clone(),
            Self::Rds(p) => p.table.load_full(),
        }
    }
}

/// What /config_dump shows of an RDS route configuration.
#[derive(Debug, Clone)]
pub struct RouteConfigMeta {
    /// `version_info` of the response that delivered it.
    pub version_info: String,
    /// When it was applied.
    pub last_updated: SystemTime,
    /// The resource as /config_dump shows it.
    pub config_dump: baton_config::resource::ResourceDump,
}

/// One RDS route configuration: the current table and whether one has arrived (the
/// listeners using it warm until then).
#[derive(Debug)]
pub struct RouteConfigProvider {
    name: String,
    table: ArcSwap<RouteTable>,
    /// True once a route configuration arrived or its initial fetch gave up.
    ready: watch::Sender<bool>,
    meta: Mutex<Option<RouteConfigMeta>>,
    /// `http.<stat_prefix>.rds.<name>.*` (the prefix of the first connection manager
    /// that named it, as Envoy shares the subscription).
    stats: SubscriptionStats,
    /// How long listeners wait for it (`initial_fetch_timeout`; None = forever).
    initial_fetch_timeout: Option<Duration>,
}

impl RouteConfigProvider {
    fn new(name: &str, stat_prefix: &str, initial_fetch_timeout: Option<Duration>) -> Self {
        Self {
            name: name.to_string(),
            table: ArcSwap::from_pointee(RouteTable::empty()),
            ready: watch::channel(false).0,
            meta: Mutex::new(None),
            stats: SubscriptionStats::new(
                &format!(
                    "http.{stat_prefix}.rds.{}.",
                    baton_config::model::sanitize_stat_name(name)
                ),
                SubscriptionKind::Rds,
            ),
            initial_fetch_timeout,
        }
    }

    /// `http.<stat_prefix>.rds.<name>.*`
    pub fn stats(&self) -> &SubscriptionStats {
        &self.stats
    }

    /// `route_config_name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Applies a route configuration from RDS: new requests use it at once.
    /// Returns whether the resource differs from the last one (`config_reload`).
    pub fn update(&self, config: Arc<RouteConfig>, meta: RouteConfigMeta) -> bool {
        self.table.store(Arc::new(RouteTable::new(config)));
        let mut slot = self.meta.lock().unwrap_or_else(|e| e.into_inner());
        let changed = slot
            .as_ref()
            .is_none_or(|old| !old.config_dump.same_as(&meta.config_dump));
        *slot = Some(meta);
        drop(slot);
        self.ready.send_replace(true);
        changed
    }

    /// The initial fetch timed out (or the resource was removed before it came): the
    /// listeners stop waiting and requests get "no route" until a config arrives.
    pub fn give_up_waiting(&self) {
        self.ready.send_replace(true);
    }

    /// Whether the listeners using it may stop warming.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Resolves once a route configuration arrived, or its initial fetch timed out
    /// (then listeners stop waiting, and requests get "no route" until one arrives).
    pub async fn wait_ready(&self) {
        let mut rx = self.ready.subscribe();
        let wait = rx.wait_for(|r| *r);
        match self.initial_fetch_timeout {
            Some(t) => {
                if tokio::time::timeout(t, wait).await.is_err() {
                    tracing::warn!(route_config = %self.name, "RDS initial fetch timed out; listeners stop waiting for it");
                    self.stats.fetch_timed_out();
                    self.give_up_waiting();
                }
            }
            None => {
                let _ = wait.await;
            }
        }
    }

    /// What /config_dump shows, once a configuration arrived.
    pub fn meta(&self) -> Option<RouteConfigMeta> {
        self.meta.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The RDS route configurations in use, by name. Connection managers hold their
/// providers; a name nobody holds any more is dropped from the subscription.
#[derive(Debug)]
pub struct RouteConfigProviders {
    providers: Mutex<HashMap<String, Weak<RouteConfigProvider>>>,
    names: watch::Sender<Vec<String>>,
}

impl Default for RouteConfigProviders {
    fn default() -> Self {
        Self {
            providers: Mutex::new(HashMap::new()),
            names: watch::channel(Vec::new()).0,
        }
    }
}

impl RouteConfigProviders {
    /// The provider of `name`, made on first use (the RDS subscription then asks for it).
    pub fn get_or_create(
        &self,
        name: &str,
        stat_prefix: &str,
        initial_fetch_timeout: Option<Duration>,
    ) -> Arc<RouteConfigProvider> {
        let mut map = self.lock();
        if let Some(p) = map.get(name).and_then(Weak::upgrade) {
            return p;
        }
        let p = Arc::new(RouteConfigProvider::new(
            name,
            stat_prefix,
            initial_fetch_timeout,
        ));
        // Envoy counts the subscription's initial request as an attempt.
        p.stats.update_attempt.inc();
        map.insert(name.to_string(), Arc::downgrade(&p));
        self.publish(&mut map);
        p
    }

    /// The provider of `name`, if some connection manager uses it.
    pub fn get(&self, name: &str) -> Option<Arc<RouteConfigProvider>> {
        self.lock().get(name).and_then(Weak::upgrade)
    }

    /// Every provider in use, sorted by name.
    pub fn all(&self) -> Vec<Arc<RouteConfigProvider>> {
        let map = self.lock();
        let mut all: Vec<_> = map.values().filter_map(Weak::upgrade).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Forgets providers nobody holds (after listeners were removed or replaced).
    pub fn prune(&self) {
        let mut map = self.lock();
        self.publish(&mut map);
    }

    /// Watches the names in use (what RDS subscribes to).
    pub fn names(&self) -> watch::Receiver<Vec<String>> {
        self.names.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Weak<RouteConfigProvider>>> {
        self.providers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, map: &mut HashMap<String, Weak<RouteConfigProvider>>) {
        map.retain(|_, p| p.strong_count() > 0);
        let mut names: Vec<String> = map.keys().cloned().collect();
        names.sort();
        self.names.send_if_modified(|current| {
            if *current == names {
                return false;
            }
            *current = names;
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_shared_by_name_and_pruned_when_unused() {
        let reg = RouteConfigProviders::default();
        let a = reg.get_or_create("a", "p", None);
        let a2 = reg.get_or_create("a", "p", None);
        assert!(Arc::ptr_eq(&a, &a2));
        let b = reg.get_or_create("b", "p", None);
        assert_eq!(*reg.names().borrow(), ["a", "b"]);
        drop(b);
        reg.prune();
        assert_eq!(*reg.names().borrow(), ["a"]);
        assert!(!a.is_ready());
        a.update(
            Arc::new(RouteConfig::default()),
            RouteConfigMeta {
                version_info: "1".into(),
                last_updated: SystemTime::now(),
                config_dump: baton_config::resource::ResourceDump::new(&Default::default()),
            },
        );
        assert!(a2.is_ready());
    }
}
