//! The init manager: Envoy's initialisation order as an explicit state machine.
//!
//! ```text
//! PreInitializing -> PrimaryClusters -> SecondaryClusters -> Cds -> CdsClusters
//!   -> HealthChecks -> Lds -> ListenerWarming -> Initialized
//! ```
//! Each phase ends when every *init target* registered for it is ready (or its own
//! timeout made it ready): the static and DNS clusters' first resolution (primary), the
//! static EDS clusters' first assignments (secondary), the first CDS response or
//! `initial_fetch_timeout`, the CDS clusters' warming, the first active health-check
//! round (a slot a later issue fills), the first LDS response or timeout, and the
//! warming of the listeners it added. Only then is the server LIVE: listeners accept,
//! `/ready` answers 200 and a parent generation is told to drain.
//!
//! `/init_dump` shows the targets not ready yet.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// The phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum InitPhase {
    /// Nothing started.
    PreInitializing,
    /// Static and DNS clusters resolve once.
    PrimaryClusters,
    /// Static EDS clusters wait for their first assignment.
    SecondaryClusters,
    /// Waiting for the first CDS response (or `initial_fetch_timeout`).
    Cds,
    /// Clusters from CDS warm (primary, then secondary).
    CdsClusters,
    /// First active health-check round of clusters that have health checks.
    HealthChecks,
    /// Waiting for the first LDS response (or `initial_fetch_timeout`).
    Lds,
    /// Listeners wait for their RDS route configurations.
    ListenerWarming,
    /// Done: the server may go LIVE.
    Initialized,
}

impl InitPhase {
    /// Name shown in `/init_dump` and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreInitializing => "pre-initializing",
            Self::PrimaryClusters => "primary clusters",
            Self::SecondaryClusters => "secondary clusters",
            Self::Cds => "CDS",
            Self::CdsClusters => "CDS clusters",
            Self::HealthChecks => "health checks",
            Self::Lds => "LDS",
            Self::ListenerWarming => "listener warming",
            Self::Initialized => "initialized",
        }
    }
}

#[derive(Debug)]
struct Target {
    name: String,
    phase: InitPhase,
    ready: bool,
}

#[derive(Debug)]
struct Inner {
    targets: Mutex<Vec<Target>>,
    phase: watch::Sender<InitPhase>,
    /// Bumped whenever a target becomes ready.
    changed: watch::Sender<u64>,
    /// Whether admin may answer: once initialisation waits on something outside the
    /// process (xDS, DNS, a listener's routes) or is done. Envoy's admin answers from
    /// its event loop, which runs only after the synchronous part of initialisation
    /// (static clusters and listeners): with a static bootstrap, never before it is
    /// LIVE.
    admin_may_answer: watch::Sender<bool>,
}

/// The server's init manager. Cheap to clone.
#[derive(Debug, Clone)]
pub struct InitManager {
    inner: Arc<Inner>,
}

/// One thing a phase waits for. Dropping it without [`InitTarget::ready`] leaves the
/// phase waiting (a subscription that never answered keeps the server from going LIVE
/// until its own timeout readies it).
#[derive(Debug)]
pub struct InitTarget {
    inner: Arc<Inner>,
    index: usize,
}

impl InitTarget {
    /// This target is initialised.
    pub fn ready(&self) {
        let mut targets = self.inner.targets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = targets.get_mut(self.index) {
            if !t.ready {
                t.ready = true;
                drop(targets);
                self.inner.changed.send_modify(|n| *n += 1);
            }
        }
    }

    /// Whether it is ready.
    pub fn is_ready(&self) -> bool {
        let targets = self.inner.targets.lock().unwrap_or_else(|e| e.into_inner());
        targets.get(self.index).is_some_and(|t| t.ready)
    }
}

impl Default for InitManager {
    fn default() -> Self {
        Self::new()
    }
}

impl InitManager {
    /// A manager in PreInitializing.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                targets: Mutex::new(Vec::new()),
                phase: watch::channel(InitPhase::PreInitializing).0,
                changed: watch::channel(0).0,
                admin_may_answer: watch::channel(false).0,
            }),
        }
    }

    /// Registers a target the given phase waits for.
    pub fn add_target(&self, phase: InitPhase, name: impl Into<String>) -> InitTarget {
        let mut targets = self.inner.targets.lock().unwrap_or_else(|e| e.into_inner());
        targets.push(Target {
            name: name.into(),
            phase,
            ready: false,
        });
        InitTarget {
            inner: self.inner.clone(),
            index: targets.len() - 1,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> InitPhase {
        *self.inner.phase.borrow()
    }

    /// Enters `phase` (phases only move forward) and waits until every target
    /// registered for it is ready. `also` is waited for too (e.g. the clusters of a CDS
    /// response warming), so `/init_dump` shows the phase while it runs.
    pub async fn run_phase(&self, phase: InitPhase, also: impl std::future::Future<Output = ()>) {
        self.inner.phase.send_if_modified(|p| {
            if phase > *p {
                *p = phase;
                true
            } else {
                false
            }
        });
        tracing::debug!(phase = phase.as_str(), "init phase");
        let pending = self.pending_in(phase);
        if !pending.is_empty() {
            super::notify::status(&format!(
                "initializing: {}: waiting for {}",
                phase.as_str(),
                pending.join(", ")
            ));
        }
        // A phase that cannot complete at once waits on the world: admin answers now.
        let mut also = std::pin::pin!(futures_util::future::maybe_done(also));
        let first = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::future::Future::poll(also.as_mut(), cx))
        })
        .await;
        if !pending.is_empty() || first.is_pending() {
            self.inner.admin_may_answer.send_replace(true);
        }
        let targets = async {
            let mut changed = self.inner.changed.subscribe();
            loop {
                if self.pending_in(phase).is_empty() {
                    return;
                }
                if changed.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::join!(targets, also);
    }

    /// Marks initialisation done.
    pub fn finish(&self) {
        self.inner.phase.send_replace(InitPhase::Initialized);
        self.inner.admin_may_answer.send_replace(true);
    }

    /// Lets admin answer from now on, whatever initialisation does: a hot-restart child
    /// that took its parent's admin socket answers on it at once (as Envoy's child, which
    /// takes the admin address at start), so a child that fails never leaves a
    /// connection to the shared port unanswered.
    pub fn let_admin_answer(&self) {
        self.inner.admin_may_answer.send_replace(true);
    }

    /// Whether admin may answer yet (see `Inner::admin_may_answer`).
    pub fn admin_may_answer(&self) -> watch::Receiver<bool> {
        self.inner.admin_may_answer.subscribe()
    }

    fn pending_in(&self, phase: InitPhase) -> Vec<String> {
        let targets = self.inner.targets.lock().unwrap_or_else(|e| e.into_inner());
        targets
            .iter()
            .filter(|t| t.phase == phase && !t.ready)
            .map(|t| t.name.clone())
            .collect()
    }

    /// Targets not ready yet, of every phase up to the current one (`/init_dump`).
    pub fn pending(&self) -> Vec<String> {
        let phase = self.phase();
        let targets = self.inner.targets.lock().unwrap_or_else(|e| e.into_inner());
        targets
            .iter()
            .filter(|t| t.phase <= phase && !t.ready)
            .map(|t| t.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_phase_waits_for_its_targets_only() {
        let init = InitManager::new();
        let cds = init.add_target(InitPhase::Cds, "CDS");
        let lds = init.add_target(InitPhase::Lds, "LDS");
        // Primary has no targets: passes at once even though later ones are pending.
        tokio::time::timeout(
            Duration::from_secs(1),
            init.run_phase(InitPhase::PrimaryClusters, async {}),
        )
        .await
        .expect("no targets");
        let waiting = init.run_phase(InitPhase::Cds, async {});
        tokio::pin!(waiting);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut waiting)
                .await
                .is_err(),
            "CDS is not ready"
        );
        assert_eq!(init.pending(), ["CDS"]);
        cds.ready();
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("CDS ready");
        assert!(!lds.is_ready());
        lds.ready();
        init.run_phase(InitPhase::Lds, async {}).await;
        init.finish();
        assert_eq!(init.phase(), InitPhase::Initialized);
        assert!(init.pending().is_empty());
    }
}
