//! The control side of the cluster manager: static initialisation, CDS adds, updates and
//! removals with warming, EDS assignments, and the DNS refresh tasks. Runs on the main
//! runtime; the request path never takes this lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use baton_config::model::{self, DiscoveryType, EndpointAddress, DEFAULT_OVERPROVISIONING_FACTOR};
use tokio::task::AbortHandle;

use super::{ClusterManager, ClusterMeta};
use crate::base::address::HostAddress;
use crate::stats::ClusterStats;
use crate::upstream::cluster::UpstreamCluster;
use crate::upstream::dns;
use crate::upstream::host::{pipe_address, Host};
use crate::upstream::host_set::LocalityHosts;

mod eds;

/// Where a cluster comes from.
#[derive(Debug, Clone)]
pub enum ClusterSource {
    /// `static_resources.clusters`: never updated or removed by CDS.
    Static,
    /// A CDS response with this `version_info`.
    Cds {
        /// The response's `version_info`.
        version_info: String,
        /// Hash of the resource (an identical update is a no-op).
        config_hash: u64,
        /// The resource as /config_dump shows it.
        config_dump: Option<baton_config::resource::ResourceDump>,
    },
}

/// What [`ClusterManager::add_or_update`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterChange {
    /// A new cluster: warming (or active at once).
    Added,
    /// An existing cluster's config changed: the new one warms, then replaces it.
    Modified,
    /// Same config as now, or a static cluster CDS may not touch: nothing happened.
    Unchanged,
}

/// A cluster waiting for its hosts before it becomes active.
#[derive(Debug)]
struct Warming {
    cluster: Arc<UpstreamCluster>,
    meta: ClusterMeta,
    /// Distinguishes this warm-up from a later one of the same name.
    id: u64,
    /// The DNS task (first resolution, then refresh) or the EDS fetch timeout.
    task: Option<AbortHandle>,
    /// Waiting for secrets a control plane delivers (client certificate, validation
    /// context): the task that waits, while they have not all arrived (or timed out).
    secrets: Option<AbortHandle>,
    /// Its hosts are known (DNS, EDS): only the secrets hold it.
    hosts_ready: bool,
}

impl Warming {
    fn abort(&self) {
        for t in [&self.task, &self.secrets].into_iter().flatten() {
            t.abort();
        }
    }
}

/// Update-side state, behind the manager's mutex.
#[derive(Debug, Default)]
pub(super) struct Control {
    /// DNS refresh task of each active DNS cluster.
    dns_tasks: HashMap<String, AbortHandle>,
    warming: HashMap<String, Warming>,
    resolvers: dns::Resolvers,
    /// Last EDS assignment per service name.
    assignments: HashMap<String, Arc<model::LoadAssignment>>,
    /// The EDS service of each EDS cluster (active and warming).
    eds_by_cluster: HashMap<String, String>,
    /// The EDS clusters using each service (the reverse of `eds_by_cluster`).
    eds_users: std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
    next_warm_id: u64,
}

impl Control {
    pub(super) fn is_warming(&self, name: &str) -> bool {
        self.warming.contains_key(name)
    }

    pub(super) fn warming_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.warming.keys().cloned().collect();
        names.sort();
        names
    }

    pub(super) fn warming_clusters(&self) -> Vec<(Arc<UpstreamCluster>, ClusterMeta)> {
        let mut list: Vec<_> = self
            .warming
            .values()
            .map(|w| (w.cluster.clone(), w.meta.clone()))
            .collect();
        list.sort_by(|a, b| a.0.name().cmp(b.0.name()));
        list
    }

    pub(super) fn abort_all(&mut self) {
        for task in self.dns_tasks.values() {
            task.abort();
        }
        for w in self.warming.values() {
            w.abort();
        }
    }

    /// The EDS services in use, sorted.
    fn services(&self) -> Vec<String> {
        self.eds_users.keys().cloned().collect()
    }

    /// Sets (or clears) the EDS service `cluster` takes its hosts from.
    fn set_eds_service(&mut self, cluster: &str, service: Option<String>) {
        if let Some(old) = self.eds_by_cluster.remove(cluster) {
            if let Some(users) = self.eds_users.get_mut(&old) {
                users.remove(cluster);
                if users.is_empty() {
                    self.eds_users.remove(&old);
                }
            }
        }
        if let Some(service) = service {
            self.eds_users
                .entry(service.clone())
                .or_default()
                .insert(cluster.to_string());
            self.eds_by_cluster.insert(cluster.to_string(), service);
        }
    }
}

/// The EDS service a cluster's hosts come from (`eds_cluster_config.service_name`, else
/// the cluster name), or None for other discovery types.
fn eds_service(cluster: &model::Cluster) -> Option<String> {
    if cluster.discovery != DiscoveryType::Eds {
        return None;
    }
    Some(
        cluster
            .eds
            .as_ref()
            .map_or_else(|| cluster.name.clone(), |e| e.service_name.clone()),
    )
}

/// How long an EDS cluster waits for its first assignment (`initial_fetch_timeout` of
/// its `eds_config`; None = forever).
fn eds_fetch_timeout(cluster: &model::Cluster) -> Option<Duration> {
    match &cluster.eds {
        Some(e) => e.source.initial_fetch_timeout,
        None => Some(model::DEFAULT_INITIAL_FETCH_TIMEOUT),
    }
}

/// Room in the stats name index for the names of `clusters` new clusters, taken before a
/// batch creates them (the index then grows once).
fn reserve_stat_names(clusters: usize) {
    crate::stats::store().reserve_names(clusters.saturating_mul(ClusterStats::NAMES));
}

fn static_meta() -> ClusterMeta {
    ClusterMeta {
        added_via_api: false,
        version_info: String::new(),
        last_updated: SystemTime::now(),
        config_hash: 0,
        config_dump: None,
    }
}

impl ClusterManager {
    /// Adds the bootstrap's static clusters (primary init): all active at once, DNS
    /// clusters after their first resolution (all resolved concurrently); returns once
    /// the control-plane secrets they use are there (or timed out).
    pub async fn add_static(self: &Arc<Self>, clusters: &[Arc<model::Cluster>]) {
        let mut added: Vec<(Arc<UpstreamCluster>, ClusterMeta)> = Vec::new();
        // Names added so far: a set, not a scan of `added` per cluster (quadratic: with
        // 10,000 static clusters that scan was most of the time to LIVE).
        let mut added_names: std::collections::HashSet<&str> =
            std::collections::HashSet::with_capacity(clusters.len());
        let mut discoveries = Vec::new();
        reserve_stat_names(clusters.len());
        {
            let mut control = self.lock();
            for model in clusters {
                if !added_names.insert(model.name.as_str()) || self.get(&model.name).is_some() {
                    tracing::warn!(cluster = %model.name, "duplicate cluster name ignored");
                    continue;
                }
                let cluster = match model.discovery {
                    DiscoveryType::StrictDns | DiscoveryType::LogicalDns => {
                        let resolver = control.resolvers.get(&model.dns.resolver);
                        let discovery = dns::DnsDiscovery::new(model.clone(), resolver);
                        // IP endpoints are hosts at once; names join after resolution.
                        let cluster = self.new_cluster(
                            model.clone(),
                            discovery.localities(),
                            model.load_assignment.overprovisioning_factor,
                        );
                        discoveries.push((cluster.clone(), discovery));
                        cluster
                    }
                    DiscoveryType::Eds => {
                        let service = eds_service(model).unwrap_or_default();
                        let (hosts, factor) = control.assignments.get(&service).map_or_else(
                            || (Vec::new(), DEFAULT_OVERPROVISIONING_FACTOR),
                            |a| {
                                let hosts = localities_from_assignment(a, &[]);
                                (hosts, a.overprovisioning_factor)
                            },
                        );
                        control.set_eds_service(&model.name, Some(service));
                        let cluster = self.new_cluster(model.clone(), hosts, factor);
                        eds_subscription_started(&cluster);
                        cluster
                    }
                    DiscoveryType::Static => self.new_cluster(
                        model.clone(),
                        localities_from_assignment(&model.load_assignment, &[]),
                        model.load_assignment.overprovisioning_factor,
                    ),
                };
                self.stats.cluster_added.inc();
                added.push((cluster, static_meta()));
            }
            let services = control.services();
            self.eds_services.send_replace(services);
        }

        // First resolution of every DNS cluster, all at once (Envoy's init waits for it).
        let now = tokio::time::Instant::now();
        futures_util::future::join_all(discoveries.iter_mut().map(
            |(cluster, discovery)| async move {
                if discovery.resolve_due(now, cluster.stats()).await {
                    cluster.set_hosts(discovery.localities());
                }
            },
        ))
        .await;
        {
            let mut control = self.lock();
            for (cluster, discovery) in discoveries {
                let task = tokio::spawn(discovery.refresh_loop(Arc::downgrade(&cluster)));
                control
                    .dns_tasks
                    .insert(cluster.name().to_string(), task.abort_handle());
            }
        }
        let awaited_secrets: Vec<_> = added
            .iter()
            .flat_map(|(cluster, _)| cluster.secret_providers())
            .filter(|p| !p.is_ready())
            .collect();
        self.publish(|list| list.extend(added));
        let warming = self.lock().warming.len() as u64;
        self.stats.warming_clusters.set(warming);
        // As Envoy, a static cluster whose TLS secrets come from a control plane holds
        // the primary clusters' initialisation until they arrive or their
        // `initial_fetch_timeout` passes (measured on 1.40: /ready 503, no LDS request
        // yet). Unlike a CDS cluster it is active meanwhile (in /clusters, not warming;
        // its connections fail until the secrets arrive). Awaited after publishing, so
        // the control plane's own static cluster is there to fetch them over.
        futures_util::future::join_all(awaited_secrets.iter().map(|p| p.wait_ready())).await;
    }

    /// Adds or updates a cluster from CDS. A new or changed cluster warms (DNS: first
    /// resolution; EDS: first assignment or its fetch timeout) and then replaces the
    /// active one in one swap; an unchanged one, or a static one, is left alone.
    pub fn add_or_update(
        self: &Arc<Self>,
        model: Arc<model::Cluster>,
        source: ClusterSource,
    ) -> ClusterChange {
        self.add_or_update_all(vec![(model, source)])
            .pop()
            .unwrap_or(ClusterChange::Unchanged)
    }

    /// [`Self::add_or_update`] for every cluster of one CDS response, publishing the
    /// cluster map and the EDS service names once for the whole batch (so a response
    /// of N clusters costs O(N), not O(N²)).
    pub fn add_or_update_all(
        self: &Arc<Self>,
        clusters: Vec<(Arc<model::Cluster>, ClusterSource)>,
    ) -> Vec<ClusterChange> {
        let active = self.active.load_full();
        reserve_stat_names(
            clusters
                .iter()
                .filter(|(model, _)| !active.by_name.contains_key(&model.name))
                .count(),
        );
        let mut control = self.lock();
        let mut ready = Vec::new();
        let changes = clusters
            .into_iter()
            .map(|(model, source)| {
                let (change, now_ready) = self.stage(&mut control, &active, model, source);
                ready.extend(now_ready);
                change
            })
            .collect();
        drop(active);
        self.publish_control(control);
        self.finish_warming_all(ready);
        changes
    }

    /// One cluster of a batch: starts its warm-up; returns what changed and, when it
    /// is warm already, its warm-up to finish.
    fn stage(
        self: &Arc<Self>,
        control: &mut Control,
        active: &super::ClusterMap,
        model: Arc<model::Cluster>,
        source: ClusterSource,
    ) -> (ClusterChange, Option<(String, u64)>) {
        let ClusterSource::Cds {
            version_info,
            config_hash,
            config_dump,
        } = source
        else {
            return (ClusterChange::Unchanged, None);
        };
        let name = model.name.clone();
        let existing = active.by_name.get(&name).map(|i| &active.metas[*i]);
        if existing.is_some_and(|m| !m.added_via_api) {
            // Envoy: a static cluster cannot be replaced through CDS.
            tracing::debug!(cluster = %name, "CDS update of a static cluster ignored");
            return (ClusterChange::Unchanged, None);
        }
        let same_as_warming = control
            .warming
            .get(&name)
            .is_some_and(|w| w.meta.config_hash == config_hash);
        let same_as_active = existing.is_some_and(|m| m.config_hash == config_hash);
        if same_as_warming || (same_as_active && !control.warming.contains_key(&name)) {
            return (ClusterChange::Unchanged, None);
        }
        let change = if existing.is_some() || control.warming.contains_key(&name) {
            self.stats.cluster_modified.inc();
            ClusterChange::Modified
        } else {
            self.stats.cluster_added.inc();
            ClusterChange::Added
        };
        if let Some(old) = control.warming.remove(&name) {
            old.abort();
        }
        let meta = ClusterMeta {
            added_via_api: true,
            version_info,
            last_updated: SystemTime::now(),
            config_hash,
            config_dump,
        };
        control.next_warm_id += 1;
        let id = control.next_warm_id;
        let mut ready = false;
        let (cluster, task) = match model.discovery {
            DiscoveryType::StrictDns | DiscoveryType::LogicalDns => {
                let resolver = control.resolvers.get(&model.dns.resolver);
                let mut discovery = dns::DnsDiscovery::new(model.clone(), resolver);
                let cluster = self.new_cluster(
                    model.clone(),
                    discovery.localities(),
                    model.load_assignment.overprovisioning_factor,
                );
                let manager = Arc::downgrade(self);
                let warming = cluster.clone();
                let warming_name = name.clone();
                let task = tokio::spawn(async move {
                    if discovery
                        .resolve_due(tokio::time::Instant::now(), warming.stats())
                        .await
                    {
                        warming.set_hosts(discovery.localities());
                    }
                    let weak = Arc::downgrade(&warming);
                    drop(warming);
                    if let Some(m) = manager.upgrade() {
                        m.finish_warming(&warming_name, id);
                    }
                    discovery.refresh_loop(weak).await;
                });
                (cluster, Some(task.abort_handle()))
            }
            DiscoveryType::Eds => {
                let service = eds_service(&model).unwrap_or_default();
                control.set_eds_service(&name, Some(service.clone()));
                let cluster = match control.assignments.get(&service) {
                    Some(a) => {
                        ready = true;
                        let hosts = localities_from_assignment(a, &[]);
                        self.new_cluster(model.clone(), hosts, a.overprovisioning_factor)
                    }
                    None => {
                        let factor = DEFAULT_OVERPROVISIONING_FACTOR;
                        self.new_cluster(model.clone(), Vec::new(), factor)
                    }
                };
                eds_subscription_started(&cluster);
                let task = if ready {
                    None
                } else {
                    eds_fetch_timeout(&model).map(|timeout| {
                        let manager = Arc::downgrade(self);
                        let name = name.clone();
                        let warming = Arc::downgrade(&cluster);
                        tokio::spawn(async move {
                            tokio::time::sleep(timeout).await;
                            if let Some(c) = warming.upgrade() {
                                c.stats().eds_fetch_timed_out();
                            }
                            if let Some(m) = manager.upgrade() {
                                tracing::warn!(cluster = %name, "EDS initial fetch timed out; cluster initialised without hosts");
                                m.finish_warming(&name, id);
                            }
                        })
                        .abort_handle()
                    })
                };
                (cluster, task)
            }
            DiscoveryType::Static => {
                ready = true;
                (
                    self.new_cluster(
                        model.clone(),
                        localities_from_assignment(&model.load_assignment, &[]),
                        model.load_assignment.overprovisioning_factor,
                    ),
                    None,
                )
            }
        };
        if model.discovery != DiscoveryType::Eds {
            control.set_eds_service(&name, None);
        }
        let secrets = self.wait_for_secrets(&cluster, &name, id);
        let hosts_ready = ready;
        if secrets.is_some() {
            ready = false;
        }
        cluster.stats().warming_state.set(1);
        control.warming.insert(
            name.clone(),
            Warming {
                cluster,
                meta,
                id,
                task,
                secrets,
                hosts_ready,
            },
        );
        (change, ready.then_some((name, id)))
    }

    /// As Envoy, a cluster whose TLS secrets come from a control plane warms until they
    /// arrive (or their `initial_fetch_timeout` passes): the task that waits, None when
    /// nothing is awaited.
    fn wait_for_secrets(
        self: &Arc<Self>,
        cluster: &UpstreamCluster,
        name: &str,
        id: u64,
    ) -> Option<AbortHandle> {
        let waiting: Vec<_> = cluster
            .secret_providers()
            .into_iter()
            .filter(|p| !p.is_ready())
            .collect();
        if waiting.is_empty() {
            return None;
        }
        let manager = Arc::downgrade(self);
        let name = name.to_string();
        let task = tokio::spawn(async move {
            for p in &waiting {
                p.wait_ready().await;
            }
            drop(waiting);
            if let Some(m) = manager.upgrade() {
                m.secrets_ready(&name, id);
            }
        });
        Some(task.abort_handle())
    }

    /// The secrets of warm-up `id` of `name` are ready: it finishes when its hosts are.
    fn secrets_ready(&self, name: &str, id: u64) {
        let hosts_ready = {
            let mut control = self.lock();
            match control.warming.get_mut(name) {
                Some(w) if w.id == id => {
                    w.secrets = None;
                    w.hosts_ready
                }
                _ => return,
            }
        };
        if hosts_ready {
            self.finish_warming(name, id);
        }
    }

    /// Removes a cluster CDS no longer lists (static clusters stay). Requests that
    /// already picked it finish on it. Returns whether something was removed.
    pub fn remove(&self, name: &str) -> bool {
        let active = self.active.load();
        let is_static = active
            .by_name
            .get(name)
            .is_some_and(|i| !active.metas[*i].added_via_api);
        if is_static {
            return false;
        }
        let in_map = active.contains(name);
        drop(active);
        let mut control = self.lock();
        let mut removed = false;
        if let Some(w) = control.warming.remove(name) {
            w.abort();
            removed = true;
        }
        if let Some(t) = control.dns_tasks.remove(name) {
            t.abort();
        }
        control.set_eds_service(name, None);
        self.publish_control(control);
        if in_map {
            self.publish(|list| list.retain(|(c, _)| c.name() != name));
            removed = true;
        }
        if removed {
            self.stats.cluster_removed.inc();
        }
        removed
    }

    /// Publishes what changed on the control side: the warming count (gauge and init
    /// watchers) and the EDS services to subscribe to. Releases the lock.
    fn publish_control(&self, control: std::sync::MutexGuard<'_, Control>) {
        let warming = control.warming.len();
        let services = control.services();
        drop(control);
        self.stats.warming_clusters.set(warming as u64);
        self.warming.send_replace(warming);
        self.eds_services
            .send_if_modified(|s| replace_if_changed(s, services));
    }

    /// A warm-up is over: the cluster replaces the active one of its name.
    fn finish_warming(&self, name: &str, id: u64) {
        self.finish_warming_all(vec![(name.to_string(), id)]);
    }

    /// Warm-ups that are over (a no-op for one a newer update replaced): each cluster
    /// replaces the active one of its name, all in one publish.
    fn finish_warming_all(&self, done: Vec<(String, u64)>) {
        if done.is_empty() {
            return;
        }
        let mut control = self.lock();
        let mut activated = Vec::with_capacity(done.len());
        for (name, id) in done {
            match control.warming.get_mut(&name) {
                Some(w) if w.id == id && w.secrets.is_some() => {
                    // Its hosts are known; its secrets still hold it.
                    w.hosts_ready = true;
                    continue;
                }
                Some(w) if w.id == id => {}
                _ => continue,
            }
            let Some(w) = control.warming.remove(&name) else {
                continue;
            };
            if w.cluster.model.discovery == DiscoveryType::StrictDns
                || w.cluster.model.discovery == DiscoveryType::LogicalDns
            {
                if let Some(t) = w.task {
                    if let Some(old) = control.dns_tasks.insert(name.clone(), t) {
                        old.abort();
                    }
                }
            } else if let Some(old) = control.dns_tasks.remove(&name) {
                old.abort();
            }
            w.cluster.stats().warming_state.set(0);
            activated.push((w.cluster, w.meta));
        }
        let left = control.warming.len();
        drop(control);
        self.stats.warming_clusters.set(left as u64);
        if !activated.is_empty() {
            self.publish(|list| {
                let index: HashMap<String, usize> = list
                    .iter()
                    .enumerate()
                    .map(|(i, (c, _))| (c.name().to_string(), i))
                    .collect();
                for (cluster, meta) in activated {
                    match index.get(cluster.name()) {
                        Some(&i) => list[i] = (cluster, meta),
                        None => list.push((cluster, meta)),
                    }
                }
            });
        }
        self.warming.send_replace(left);
    }
}

/// An EDS cluster's subscription starts: Envoy counts an `update_attempt` for it, and
/// its EDS names exist from then on.
fn eds_subscription_started(cluster: &UpstreamCluster) {
    cluster.stats().eds();
    cluster.stats().update_attempt.inc();
}

fn replace_if_changed(current: &mut Vec<String>, new: Vec<String>) -> bool {
    if *current == new {
        return false;
    }
    *current = new;
    true
}

/// Hosts of an assignment (a STATIC cluster's `load_assignment` or an EDS one). A host
/// in `existing` with the same address and attributes is reused.
pub(crate) fn localities_from_assignment(
    assignment: &model::LoadAssignment,
    existing: &[Arc<Host>],
) -> Vec<LocalityHosts> {
    assignment
        .localities
        .iter()
        .map(|locality| {
            let name: Arc<str> = Arc::from(locality.locality.as_str());
            let hosts = locality
                .endpoints
                .iter()
                .filter_map(|endpoint| {
                    let address = match &endpoint.address {
                        EndpointAddress::Ip(addr) => HostAddress::Ip(*addr),
                        EndpointAddress::Pipe(path) => pipe_address(path)?,
                        EndpointAddress::Dns { host, .. } => {
                            // Translation rejects names in STATIC/EDS clusters; never guess.
                            tracing::warn!(name = %host, "DNS name in a STATIC or EDS assignment ignored");
                            return None;
                        }
                    };
                    let reused = existing.iter().find(|h| {
                        h.address == address
                            && h.hostname == endpoint.hostname
                            && h.weight == endpoint.weight.max(1)
                            && h.priority == locality.priority
                            && *h.locality == *name
                            && h.is_healthy() == endpoint.healthy
                            && h.socket_match == endpoint.socket_match
                    });
                    Some(reused.cloned().unwrap_or_else(|| {
                        Arc::new(
                            Host::new(
                                address,
                                endpoint.hostname.clone(),
                                endpoint.weight,
                                name.clone(),
                                locality.priority,
                                endpoint.healthy,
                            )
                            .with_socket_match(endpoint.socket_match.clone()),
                        )
                    }))
                })
                .collect();
            LocalityHosts {
                priority: locality.priority,
                weight: locality.weight,
                hosts,
            }
        })
        .collect()
}
