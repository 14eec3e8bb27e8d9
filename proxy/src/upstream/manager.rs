//! The cluster manager: builds every cluster of a config snapshot (resolving DNS
//! clusters once before returning, as Envoy's init does) and owns their DNS refresh
//! tasks, which stop when the manager is dropped. Clusters with the same resolver
//! config share one resolver.

use std::collections::HashMap;
use std::sync::Arc;

use baton_config::model::{self, DiscoveryType, EndpointAddress};
use tokio::task::AbortHandle;

use crate::stats::ClusterManagerStats;

use super::cluster::UpstreamCluster;
use super::dns;
use super::error::UpstreamError;
use super::host::Host;
use super::host_set::LocalityHosts;

/// All clusters of one config snapshot. Send + Sync; shared by every worker.
#[derive(Debug)]
pub struct ClusterManager {
    clusters: Vec<Arc<UpstreamCluster>>,
    by_name: HashMap<String, usize>,
    dns_tasks: Vec<AbortHandle>,
    stats: ClusterManagerStats,
}

impl ClusterManager {
    /// Builds the clusters. STRICT_DNS / LOGICAL_DNS clusters are resolved once (every
    /// lookup bounded by the resolver's timeouts) before this returns; their refresh
    /// tasks run on the calling runtime. A name that fails to resolve leaves its target
    /// without hosts until a refresh succeeds (requests get "no healthy upstream").
    pub async fn initialize(clusters: &[Arc<model::Cluster>]) -> Result<Arc<Self>, UpstreamError> {
        let mut manager = Self {
            clusters: Vec::with_capacity(clusters.len()),
            by_name: HashMap::with_capacity(clusters.len()),
            dns_tasks: Vec::new(),
            stats: ClusterManagerStats::new(crate::stats::store()),
        };
        let mut resolvers = dns::Resolvers::default();
        let mut discoveries = Vec::new();
        for model in clusters {
            if manager.by_name.contains_key(&model.name) {
                tracing::warn!(cluster = %model.name, "duplicate cluster name ignored");
                continue;
            }
            let cluster = match model.discovery {
                DiscoveryType::StrictDns | DiscoveryType::LogicalDns => {
                    let resolver = resolvers.get(&model.dns.resolver);
                    let discovery = dns::DnsDiscovery::new(model.clone(), resolver);
                    // IP endpoints are hosts at once; names join after resolution.
                    let cluster =
                        Arc::new(UpstreamCluster::new(model.clone(), discovery.localities()));
                    discoveries.push((cluster.clone(), discovery));
                    cluster
                }
                DiscoveryType::Static | DiscoveryType::Eds => Arc::new(UpstreamCluster::new(
                    model.clone(),
                    static_localities(model),
                )),
            };
            manager
                .by_name
                .insert(model.name.clone(), manager.clusters.len());
            manager.clusters.push(cluster);
            manager.stats.cluster_added.inc();
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
        for (cluster, discovery) in discoveries {
            let task = tokio::spawn(discovery.refresh_loop(Arc::downgrade(&cluster)));
            manager.dns_tasks.push(task.abort_handle());
        }

        // Static clusters are active at once (no warming without CDS).
        manager
            .stats
            .active_clusters
            .set(manager.clusters.len() as u64);
        manager.stats.warming_clusters.set(0);
        Ok(Arc::new(manager))
    }

    /// The cluster called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<UpstreamCluster>> {
        self.by_name.get(name).and_then(|i| self.clusters.get(*i))
    }

    /// Every cluster, in config order (admin /clusters).
    pub fn clusters(&self) -> impl Iterator<Item = &Arc<UpstreamCluster>> {
        self.clusters.iter()
    }
}

impl Drop for ClusterManager {
    fn drop(&mut self) {
        for task in &self.dns_tasks {
            task.abort();
        }
    }
}

/// Hosts of a STATIC cluster straight from its load_assignment.
fn static_localities(cluster: &model::Cluster) -> Vec<LocalityHosts> {
    cluster
        .load_assignment
        .localities
        .iter()
        .map(|locality| {
            let name: Arc<str> = Arc::from(locality.locality.as_str());
            let hosts = locality
                .endpoints
                .iter()
                .filter_map(|endpoint| match &endpoint.address {
                    EndpointAddress::Ip(addr) => Some(Arc::new(Host::new(
                        *addr,
                        endpoint.hostname.clone(),
                        endpoint.weight,
                        name.clone(),
                        locality.priority,
                        endpoint.healthy,
                    ))),
                    EndpointAddress::Dns { host, .. } => {
                        // Translation rejects names in STATIC clusters; never guess.
                        tracing::warn!(cluster = %cluster.name, name = %host, "DNS name in a STATIC cluster ignored");
                        None
                    }
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
