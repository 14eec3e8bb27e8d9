//! Connection limits checked at accept: the global downstream connection limit of the
//! overload manager (one atomic count shared by every worker and every listener that
//! does not ignore it) and the per-filter-chain `envoy.filters.network.connection_limit`
//! filter. Both are lock-free: a connection takes a slot with one atomic add and gives
//! it back when its guard drops.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use baton_config::model::ConnectionLimit;

use baton_shared_stats::{Counter, Gauge};

use crate::stats::Scope;

/// A count of open connections with a ceiling.
#[derive(Debug)]
struct Slots {
    max: u64,
    active: AtomicU64,
}

impl Slots {
    fn new(max: u64) -> Self {
        Self {
            max,
            active: AtomicU64::new(0),
        }
    }

    /// Takes a slot, or returns false (taking nothing) when all are taken.
    fn try_take(&self) -> bool {
        let before = self.active.fetch_add(1, Ordering::AcqRel);
        if before < self.max {
            return true;
        }
        self.active.fetch_sub(1, Ordering::AcqRel);
        false
    }

    fn give_back(&self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `overload_manager`'s `envoy.resource_monitors.global_downstream_max_connections`:
/// open downstream connections of every counted listener, across workers.
#[derive(Debug)]
pub struct GlobalConnectionLimit {
    slots: Option<Slots>,
}

impl GlobalConnectionLimit {
    /// A limit of `max` connections, or no limit.
    pub fn new(max: Option<u64>) -> Arc<Self> {
        Arc::new(Self {
            slots: max.map(Slots::new),
        })
    }

    /// A slot for a new connection: `Ok(None)` when there is no limit, `Err` when
    /// the limit is reached (the connection is to be closed).
    pub fn try_open(self: &Arc<Self>) -> Result<Option<GlobalSlot>, LimitReached> {
        match &self.slots {
            None => Ok(None),
            Some(slots) if slots.try_take() => Ok(Some(GlobalSlot {
                limit: Arc::clone(self),
            })),
            Some(_) => Err(LimitReached),
        }
    }
}

/// A connection over a limit.
#[derive(Debug, Clone, Copy)]
pub struct LimitReached;

/// One connection counted by the global limit until dropped.
#[derive(Debug)]
pub struct GlobalSlot {
    limit: Arc<GlobalConnectionLimit>,
}

impl Drop for GlobalSlot {
    fn drop(&mut self) {
        if let Some(slots) = &self.limit.slots {
            slots.give_back();
        }
    }
}

/// One filter chain's `envoy.filters.network.connection_limit`, with its stats
/// `connection_limit.<stat_prefix>.{limited_connections,active_connections}`.
#[derive(Debug)]
pub struct ChainConnectionLimit {
    slots: Slots,
    /// `delay`: how long a refused connection stays open before it is closed.
    pub delay: Duration,
    stats: ConnectionLimitStats,
}

struct ConnectionLimitStats {
    limited_connections: Counter,
    active_connections: Gauge,
}

impl std::fmt::Debug for ConnectionLimitStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionLimitStats")
            .finish_non_exhaustive()
    }
}

impl ChainConnectionLimit {
    /// Compiles the filter's config and registers its stats.
    pub fn new(config: &ConnectionLimit) -> Arc<Self> {
        let scope = Scope::new(
            crate::stats::store(),
            format!("connection_limit.{}.", config.stat_prefix),
        );
        Arc::new(Self {
            slots: Slots::new(config.max_connections),
            delay: config.delay,
            stats: ConnectionLimitStats {
                limited_connections: scope.counter("limited_connections"),
                active_connections: scope.gauge("active_connections"),
            },
        })
    }

    /// A slot for a new connection on the chain, or `Err` (counted as limited) when the
    /// chain has `max_connections` open.
    pub fn try_open(self: &Arc<Self>) -> Result<ChainSlot, LimitReached> {
        if self.slots.try_take() {
            self.stats.active_connections.inc();
            Ok(ChainSlot {
                limit: Arc::clone(self),
            })
        } else {
            self.stats.limited_connections.inc();
            Err(LimitReached)
        }
    }
}

/// One connection counted by a chain's connection limit until dropped.
#[derive(Debug)]
pub struct ChainSlot {
    limit: Arc<ChainConnectionLimit>,
}

impl Drop for ChainSlot {
    fn drop(&mut self) {
        self.limit.slots.give_back();
        self.limit.stats.active_connections.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_refuse_past_the_ceiling_and_free_on_drop() {
        let limit = GlobalConnectionLimit::new(Some(2));
        let a = limit.try_open().expect("first");
        let b = limit.try_open().expect("second");
        assert!(a.is_some() && b.is_some());
        assert!(limit.try_open().is_err());
        drop(a);
        assert!(limit.try_open().expect("after a close").is_some());
    }

    #[test]
    fn no_limit_counts_nothing() {
        let limit = GlobalConnectionLimit::new(None);
        assert!(limit.try_open().expect("unlimited").is_none());
    }
}
