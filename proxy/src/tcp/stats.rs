//! `tcp.<stat_prefix>.*` handles per tcp_proxy config. `proxy_connection` receives only
//! the config, so each worker keeps the bundles it resolved in a thread-local map keyed
//! by the config's address: a connection costs one map lookup on its own thread (no
//! lock, no name resolution) after the first one of a config on that worker. Entries
//! hold the config weakly, so a config replaced by an update is resolved anew even if
//! its address is reused.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

use baton_config::model::TcpProxy;

use crate::stats::TcpProxyStats;

struct Entry {
    config: Weak<TcpProxy>,
    stats: Arc<TcpProxyStats>,
}

thread_local! {
    static BY_CONFIG: RefCell<HashMap<usize, Entry>> = RefCell::new(HashMap::new());
}

/// The stats bundle of `cfg` (resolved on this worker's first connection of it).
pub(crate) fn for_config(cfg: &Arc<TcpProxy>) -> Arc<TcpProxyStats> {
    let key = Arc::as_ptr(cfg) as usize;
    let resolve = || Arc::new(TcpProxyStats::new(crate::stats::store(), &cfg.stat_prefix));
    BY_CONFIG
        .try_with(|map| {
            let mut map = map.borrow_mut();
            if let Some(e) = map.get(&key) {
                // Alive at the same address as `cfg` (which is alive): the same config.
                if e.config.strong_count() > 0 && std::ptr::eq(e.config.as_ptr(), Arc::as_ptr(cfg))
                {
                    return e.stats.clone();
                }
            }
            // Drop bundles of configs that are gone before adding this one.
            map.retain(|_, e| e.config.strong_count() > 0);
            let stats = resolve();
            map.insert(
                key,
                Entry {
                    config: Arc::downgrade(cfg),
                    stats: stats.clone(),
                },
            );
            stats
        })
        // Thread teardown: resolve without caching.
        .unwrap_or_else(|_| resolve())
}
