//! EDS assignments on the control side: each one replaces the hosts of the clusters
//! using its service (warming ones activate) and is counted in those clusters' stats as
//! Envoy 1.40 counts its EDS subscription's updates (`update_attempt`,
//! `update_success`, `update_no_rebuild` when nothing changed, `update_rejected`,
//! `version`, `version_text`, `update_time`, `update_duration`).

use std::sync::Arc;
use std::time::Instant;

use baton_config::model;

use super::localities_from_assignment;
use crate::upstream::ClusterManager;

impl ClusterManager {
    /// An EDS assignment for `service`: the hosts of every cluster using it are
    /// replaced (hosts with the same address and attributes keep their identity, so
    /// their pools and counters survive), and warming clusters waiting for it activate.
    pub fn set_assignment(&self, service: &str, assignment: Arc<model::LoadAssignment>) {
        self.set_assignments(vec![(service.to_string(), assignment)], "", Instant::now());
    }

    /// [`Self::set_assignment`] for every assignment of one EDS response (its
    /// `version_info`, its handling begun at `started`), activating the clusters that
    /// waited for them in one publish.
    pub fn set_assignments(
        &self,
        assignments: Vec<(String, Arc<model::LoadAssignment>)>,
        version_info: &str,
        started: Instant,
    ) {
        let mut control = self.lock();
        let mut finished = Vec::new();
        let mut active_users = Vec::new();
        for (service, assignment) in assignments {
            let previous = control
                .assignments
                .insert(service.clone(), assignment.clone());
            let same = previous.is_some_and(|p| *p == *assignment);
            let users: Vec<String> = control
                .eds_users
                .get(&service)
                .map(|u| u.iter().cloned().collect())
                .unwrap_or_default();
            for name in users {
                match control.warming.get_mut(&name) {
                    Some(w) => {
                        let hosts = localities_from_assignment(&assignment, &w.cluster.hosts());
                        let factor = assignment.overprovisioning_factor;
                        w.cluster.set_assigned_hosts(hosts, factor);
                        w.cluster
                            .stats()
                            .eds_accepted(version_info, false, started.elapsed());
                        if let Some(t) = w.task.take() {
                            t.abort();
                        }
                        finished.push((name, w.id));
                    }
                    None => active_users.push((name, assignment.clone(), same)),
                }
            }
        }
        drop(control);
        let active = self.active.load();
        for (name, assignment, same) in active_users {
            if let Some(cluster) = active.get(&name) {
                let hosts = localities_from_assignment(&assignment, &cluster.hosts());
                cluster.set_assigned_hosts(hosts, assignment.overprovisioning_factor);
                cluster
                    .stats()
                    .eds_accepted(version_info, same, started.elapsed());
            }
        }
        drop(active);
        self.finish_warming_all(finished);
    }

    /// An assignment for `service` was refused (`delta`: over the incremental protocol):
    /// its clusters count the rejected update.
    pub fn reject_assignment(&self, service: &str, delta: bool) {
        let control = self.lock();
        let users: Vec<String> = control
            .eds_users
            .get(service)
            .map(|u| u.iter().cloned().collect())
            .unwrap_or_default();
        for name in &users {
            if let Some(w) = control.warming.get(name) {
                w.cluster.stats().eds_rejected(delta);
            }
        }
        drop(control);
        let active = self.active.load();
        for name in &users {
            if let Some(cluster) = active.get(name) {
                cluster.stats().eds_rejected(delta);
            }
        }
    }

    /// The EDS subscription's initial fetch timed out: static EDS clusters still
    /// without an assignment count `init_fetch_timeout` (a CDS cluster counts it when
    /// its own warming times out).
    pub fn eds_fetch_timed_out(&self) {
        let control = self.lock();
        let active = self.active.load();
        for (cluster, meta) in active.iter() {
            let waiting = !meta.added_via_api
                && super::eds_service(&cluster.model)
                    .is_some_and(|s| !control.assignments.contains_key(&s));
            if waiting {
                cluster.stats().eds_fetch_timed_out();
            }
        }
    }

    /// `policy.overprovisioning_factor` of the last EDS assignment for `service` (None:
    /// none received).
    pub fn eds_overprovisioning_factor(&self, service: &str) -> Option<u32> {
        self.lock()
            .assignments
            .get(service)
            .map(|a| a.overprovisioning_factor)
    }

    /// The EDS resource for `service` was removed by a response with `version_info`:
    /// its clusters lose their hosts.
    pub fn remove_assignment(&self, service: &str, version_info: &str) {
        let empty = Arc::new(model::LoadAssignment::default());
        self.set_assignments(
            vec![(service.to_string(), empty)],
            version_info,
            Instant::now(),
        );
        self.lock().assignments.remove(service);
    }
}
