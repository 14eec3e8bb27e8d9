//! Which stat scopes this process still uses: a removed listener's or cluster's stats
//! leave `/stats` as Envoy's do.
//!
//! Envoy frees a scope's stats when the last object holding it goes (a listener removed
//! by LDS once its drain is over, a cluster removed by CDS), so they disappear from
//! `/stats` and `/stats/prometheus`. The region never frees a name (other generations may
//! hold it), so instead each owner of a scope (`listener.<address>.`, `cluster.<name>.`,
//! `http.<stat_prefix>.`) holds a [`ScopeLease`]; when the last lease of a prefix drops,
//! the prefix is retired and this process's snapshots leave out every stat under it,
//! until a new lease takes it again. A name belongs to the longest leased or retired
//! prefix it starts with (`cluster.a.b.` leased keeps its stats while `cluster.a.` is
//! retired). Per process, like text readouts: another generation sees its own leases.
//!
//! After a hot restart the region still holds the names of the parent's scopes. Once the
//! parent has exited, [`ScopeLeases::hide_unleased`] makes every name under the given
//! families (`listener.`, `cluster.`, `http.`) that no lease of this process covers
//! leave the snapshots too, as Envoy's child drops the parent's stats when the parent
//! goes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// Leased and retired prefixes of one process.
#[derive(Default)]
pub(crate) struct ScopeLeases {
    state: Mutex<LeaseState>,
}

#[derive(Default)]
struct LeaseState {
    /// Live leases per prefix.
    leased: HashMap<String, usize>,
    /// Prefixes whose last lease dropped.
    retired: HashSet<String>,
    /// Families (`listener.`, ...) whose names must be covered by a lease to be shown.
    leased_only: Vec<String>,
}

impl ScopeLeases {
    fn state(&self) -> MutexGuard<'_, LeaseState> {
        // Every mutation is a single insert or remove: consistent after a panic too.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A lease on `prefix` (ending with `.`): its stats are shown while one is held.
    /// `true` with it: the prefix was retired in this process and comes back (a listener
    /// or cluster added again), so its counters start again from 0, as Envoy's new
    /// scope's do.
    pub(crate) fn lease(self: &Arc<Self>, prefix: &str) -> (ScopeLease, bool) {
        let mut state = self.state();
        let revived = state.retired.remove(prefix);
        *state.leased.entry(prefix.to_string()).or_insert(0) += 1;
        let lease = ScopeLease {
            leases: Arc::clone(self),
            prefix: prefix.to_string(),
        };
        (lease, revived)
    }

    /// Whether `name` belongs to `prefix`: it is `name`'s longest leased or retired
    /// prefix (`cluster.a.b.x` belongs to `cluster.a.b.` while that is leased).
    pub(crate) fn belongs_to(&self, name: &str, prefix: &str) -> bool {
        if !name.starts_with(prefix) {
            return false;
        }
        let state = self.state();
        for (end, _) in name.rmatch_indices('.') {
            let candidate = &name[..=end];
            if candidate.len() <= prefix.len() {
                break;
            }
            if state.leased.contains_key(candidate) || state.retired.contains(candidate) {
                return false;
            }
        }
        true
    }

    fn release(&self, prefix: &str) {
        let mut state = self.state();
        let Some(count) = state.leased.get_mut(prefix) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            state.leased.remove(prefix);
            state.retired.insert(prefix.to_string());
        }
    }

    /// From now on a name under one of `families` (each ending with `.`) is shown only
    /// while a lease covers it.
    pub(crate) fn hide_unleased(&self, families: &[&str]) {
        let mut state = self.state();
        for family in families {
            if !state.leased_only.iter().any(|f| f == family) {
                state.leased_only.push((*family).to_string());
            }
        }
    }

    /// A test of whether a stat name is under a retired scope, for one snapshot; `None`
    /// when nothing is retired (the common case: no filtering at all).
    pub(crate) fn retired_filter(&self) -> Option<RetiredFilter<'_>> {
        let state = self.state();
        if state.retired.is_empty() && state.leased_only.is_empty() {
            return None;
        }
        Some(RetiredFilter { state })
    }
}

/// Holds the lock for one snapshot's filtering.
pub(crate) struct RetiredFilter<'a> {
    state: MutexGuard<'a, LeaseState>,
}

impl RetiredFilter<'_> {
    /// Whether `name`'s longest leased-or-retired prefix is retired.
    pub(crate) fn is_retired(&self, name: &str) -> bool {
        for (end, _) in name.rmatch_indices('.') {
            let prefix = &name[..=end];
            if self.state.leased.contains_key(prefix) {
                return false;
            }
            if self.state.retired.contains(prefix) {
                return true;
            }
        }
        self.state
            .leased_only
            .iter()
            .any(|family| name.starts_with(family.as_str()))
    }
}

/// Keeps a scope's stats in this process's `/stats` while held (see the module doc).
pub struct ScopeLease {
    leases: Arc<ScopeLeases>,
    prefix: String,
}

impl ScopeLease {
    /// The prefix leased.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl std::fmt::Debug for ScopeLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ScopeLease").field(&self.prefix).finish()
    }
}

impl Drop for ScopeLease {
    fn drop(&mut self) {
        self.leases.release(&self.prefix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lease_retires_and_a_new_one_revives() {
        let leases = Arc::new(ScopeLeases::default());
        let (a, fresh) = leases.lease("cluster.a.");
        assert!(!fresh);
        let (b, _) = leases.lease("cluster.a.");
        let (nested, _) = leases.lease("cluster.a.b.");
        assert!(leases.belongs_to("cluster.a.upstream_rq_total", "cluster.a."));
        assert!(!leases.belongs_to("cluster.a.b.upstream_rq_total", "cluster.a."));
        assert!(leases.retired_filter().is_none());
        drop(a);
        assert!(leases.retired_filter().is_none());
        drop(b);
        {
            let filter = leases.retired_filter().expect("retired");
            assert!(filter.is_retired("cluster.a.upstream_rq_total"));
            assert!(filter.is_retired("cluster.a.ssl.handshake"));
            assert!(!filter.is_retired("cluster.a.b.upstream_rq_total"));
            assert!(!filter.is_retired("cluster.ab.upstream_rq_total"));
            assert!(!filter.is_retired("cluster_manager.cds.update_success"));
        }
        drop(nested);
        let (_again, revived) = leases.lease("cluster.a.");
        assert!(revived, "a retired prefix leased again is revived");
        let filter = leases
            .retired_filter()
            .expect("still retired: cluster.a.b.");
        assert!(!filter.is_retired("cluster.a.upstream_rq_total"));
        assert!(filter.is_retired("cluster.a.b.upstream_rq_total"));
    }

    #[test]
    fn once_told_a_family_shows_only_leased_names() {
        let leases = Arc::new(ScopeLeases::default());
        let (_kept, _) = leases.lease("cluster.kept.");
        assert!(leases.retired_filter().is_none());
        leases.hide_unleased(&["cluster."]);
        let filter = leases.retired_filter().expect("filtering");
        assert!(!filter.is_retired("cluster.kept.upstream_rq_total"));
        assert!(filter.is_retired("cluster.parents.upstream_rq_total"));
        assert!(!filter.is_retired("cluster_manager.active_clusters"));
        assert!(!filter.is_retired("server.live"));
    }
}
