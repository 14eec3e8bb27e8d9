//! DNS service discovery for STRICT_DNS (every resolved address is a host) and
//! LOGICAL_DNS (one host: the first address) clusters.
//!
//! Each DNS name of a cluster (a *target*, one per endpoint) is resolved on its own
//! schedule, as in Envoy: after a success at `dns_refresh_rate`, or at the answer's TTL
//! with `respect_dns_ttl` (rules in [`refresh`]); after a failure at the failure backoff.
//! One task per cluster owns every target's state and sleeps until the earliest one is
//! due. Each resolution counts `update_attempt` and then `update_success` (plus
//! `update_no_rebuild` when the target's addresses did not change) or `update_failure`.
//!
//! Host identity survives re-resolution: an address a target already had keeps its
//! `Host` (counters, pooled connections). A failed resolution keeps the target's hosts;
//! an answer without addresses empties a STRICT_DNS target and is a failure for
//! LOGICAL_DNS, as in Envoy. Resolution itself is in [`resolver`].

mod hosts;
mod refresh;
mod resolver;

use baton_config::model::{self, DiscoveryType, DnsResolverConfig, EndpointAddress};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use tokio::time::Instant;

use super::cluster::UpstreamCluster;
use super::host::{pipe_address, Host};
use super::host_set::LocalityHosts;
use crate::base::address::HostAddress;
use crate::stats::ClusterStats;

use refresh::FailureBackoff;
pub(crate) use resolver::DnsResolver;
use resolver::{ResolveError, Resolved};

/// Resolvers of one config snapshot, one per distinct resolver config.
#[derive(Debug, Default)]
pub(crate) struct Resolvers(HashMap<DnsResolverConfig, Arc<DnsResolver>>);

impl Resolvers {
    /// The resolver for `config`, built on first use.
    pub(crate) fn get(&mut self, config: &DnsResolverConfig) -> Arc<DnsResolver> {
        self.0
            .entry(config.clone())
            .or_insert_with(|| Arc::new(DnsResolver::new(config)))
            .clone()
    }
}

/// One endpoint of a DNS cluster.
#[derive(Debug)]
struct Target {
    /// Index of its locality in `load_assignment.localities`.
    locality: usize,
    /// The name to resolve and the port hosts get; None for an IP endpoint (fixed hosts).
    name: Option<(String, u16)>,
    /// Everything a new host needs from the endpoint.
    hostname: Option<String>,
    weight: u32,
    healthy: bool,
    socket_match: Option<Arc<baton_config::model::SocketMatchMetadata>>,
    /// Current hosts, in answer order.
    hosts: Vec<Arc<Host>>,
    /// When it is resolved next.
    due: Instant,
    failures: FailureBackoff,
}

/// What one resolution of a target changed.
#[derive(Debug, PartialEq, Eq)]
enum Applied {
    /// New hosts: the cluster's host set must be rebuilt.
    Changed,
    /// Same addresses as before.
    Unchanged,
    /// Failed; hosts kept.
    Failed,
}

/// The DNS state of one cluster: its targets and their hosts.
#[derive(Debug)]
pub(crate) struct DnsDiscovery {
    model: Arc<model::Cluster>,
    resolver: Arc<DnsResolver>,
    targets: Vec<Target>,
}

impl DnsDiscovery {
    /// The targets of `model` (STRICT_DNS or LOGICAL_DNS), none resolved yet.
    pub(crate) fn new(model: Arc<model::Cluster>, resolver: Arc<DnsResolver>) -> Self {
        let now = Instant::now();
        let mut targets = Vec::new();
        for (index, locality) in model.load_assignment.localities.iter().enumerate() {
            let locality_name: Arc<str> = Arc::from(locality.locality.as_str());
            for endpoint in &locality.endpoints {
                let mut target = Target {
                    locality: index,
                    name: None,
                    hostname: endpoint.hostname.clone(),
                    weight: endpoint.weight,
                    healthy: endpoint.healthy,
                    socket_match: endpoint.socket_match.clone(),
                    hosts: Vec::new(),
                    due: now,
                    failures: FailureBackoff::new(&model),
                };
                // IPs (and pipes, which translation refuses in DNS clusters) are
                // fixed hosts; names are resolved.
                let fixed = match &endpoint.address {
                    EndpointAddress::Ip(addr) => Some(HostAddress::Ip(*addr)),
                    EndpointAddress::Pipe(path) => pipe_address(path),
                    EndpointAddress::Dns { host, port } => {
                        target.name = Some((host.clone(), *port));
                        // Hosts carry the endpoint's hostname, else the resolved name.
                        target.hostname = endpoint.hostname.clone().or_else(|| Some(host.clone()));
                        None
                    }
                };
                if let Some(address) = fixed {
                    target.hosts.push(Arc::new(
                        Host::new(
                            address,
                            endpoint.hostname.clone(),
                            endpoint.weight,
                            locality_name.clone(),
                            locality.priority,
                            endpoint.healthy,
                        )
                        .with_socket_match(endpoint.socket_match.clone()),
                    ));
                }
                targets.push(target);
            }
        }
        Self {
            model,
            resolver,
            targets,
        }
    }

    /// The cluster's localities from every target's current hosts, in config order.
    pub(crate) fn localities(&self) -> Vec<LocalityHosts> {
        self.model
            .load_assignment
            .localities
            .iter()
            .enumerate()
            .map(|(index, locality)| LocalityHosts {
                priority: locality.priority,
                weight: locality.weight,
                hosts: self
                    .targets
                    .iter()
                    .filter(|t| t.locality == index)
                    .flat_map(|t| t.hosts.iter().cloned())
                    .collect(),
            })
            .collect()
    }

    /// Resolves every DNS target that is due at `now` (all of them the first time),
    /// concurrently. Returns whether any target's hosts changed.
    pub(crate) async fn resolve_due(&mut self, now: Instant, stats: &ClusterStats) -> bool {
        let due: Vec<(usize, &str)> = self
            .targets
            .iter()
            .enumerate()
            .filter(|(_, t)| t.due <= now)
            .filter_map(|(i, t)| t.name.as_ref().map(|(name, _)| (i, name.as_str())))
            .collect();
        if due.is_empty() {
            return false;
        }
        let family = self.model.dns_lookup_family;
        let resolver = &self.resolver;
        let answers = futures_util::future::join_all(due.iter().map(|(i, name)| async move {
            stats.update_attempt.inc();
            (*i, resolver.resolve(name, family).await)
        }))
        .await;
        let mut changed = false;
        for (index, answer) in answers {
            let applied = self.apply(index, answer);
            match applied {
                Applied::Changed => stats.update_success.inc(),
                Applied::Unchanged => {
                    stats.update_success.inc();
                    stats.update_no_rebuild.inc();
                }
                Applied::Failed => stats.update_failure.inc(),
            }
            changed |= applied == Applied::Changed;
        }
        changed
    }

    /// Takes one resolution's answer for target `index` and schedules its next one.
    fn apply(&mut self, index: usize, answer: Result<Vec<Resolved>, ResolveError>) -> Applied {
        let logical = self.model.discovery == DiscoveryType::LogicalDns;
        let model = &self.model;
        let Some(target) = self.targets.get_mut(index) else {
            return Applied::Failed;
        };
        let Some((name, port)) = target.name.clone() else {
            return Applied::Unchanged;
        };
        let answer = match answer {
            Ok(found) if logical && found.is_empty() => {
                Err(ResolveError::new("DNS answer has no addresses"))
            }
            other => other,
        };
        let found = match answer {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(cluster = %model.name, name = %name, error = %e, "DNS resolution failed");
                target.due = Instant::now() + target.failures.next();
                return Applied::Failed;
            }
        };
        target.failures.reset();
        // LOGICAL_DNS: one logical host on the first address, refreshed at its TTL.
        let kept = if logical { &found[..1] } else { &found[..] };
        let ttl = kept.iter().map(|r| r.ttl).min();
        let wait = refresh::after_success(model, ttl) + refresh::jitter(model.dns.jitter);
        target.due = Instant::now() + wait;
        tracing::debug!(cluster = %model.name, name = %name, addresses = kept.len(), refresh_in = ?wait, "DNS resolved");

        let addrs: Vec<SocketAddr> = kept.iter().map(|r| SocketAddr::new(r.ip, port)).collect();
        let unchanged = addrs.len() == target.hosts.len()
            && addrs
                .iter()
                .zip(&target.hosts)
                .all(|(a, h)| h.address.ip() == Some(*a));
        if unchanged {
            return Applied::Unchanged;
        }
        let locality = &model.load_assignment.localities[target.locality];
        let locality_name: Arc<str> = target
            .hosts
            .first()
            .map(|h| h.locality.clone())
            .unwrap_or_else(|| Arc::from(locality.locality.as_str()));
        let mut previous = std::mem::take(&mut target.hosts);
        target.hosts = addrs
            .into_iter()
            .map(
                |addr| match previous.iter().position(|h| h.address.ip() == Some(addr)) {
                    // Same address, same host: its counters and pooled connections stay.
                    Some(i) => previous.swap_remove(i),
                    None => Arc::new(
                        Host::new(
                            addr,
                            target.hostname.clone(),
                            target.weight,
                            locality_name.clone(),
                            locality.priority,
                            target.healthy,
                        )
                        .with_socket_match(target.socket_match.clone()),
                    ),
                },
            )
            .collect();
        tracing::debug!(cluster = %model.name, name = %name, "DNS hosts changed");
        Applied::Changed
    }

    /// When the next target is due (None: no DNS targets).
    fn next_due(&self) -> Option<Instant> {
        self.targets
            .iter()
            .filter(|t| t.name.is_some())
            .map(|t| t.due)
            .min()
    }

    /// Re-resolves targets as they fall due until the cluster is dropped, swapping in a
    /// new host set when addresses changed.
    pub(crate) async fn refresh_loop(mut self, cluster: Weak<UpstreamCluster>) {
        while let Some(due) = self.next_due() {
            tokio::time::sleep_until(due).await;
            let Some(cluster) = cluster.upgrade() else {
                return;
            };
            if self.resolve_due(Instant::now(), cluster.stats()).await {
                cluster.set_hosts(self.localities());
            }
        }
    }
}

#[cfg(test)]
mod tests;
