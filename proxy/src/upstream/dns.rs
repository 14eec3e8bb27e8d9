//! DNS service discovery for STRICT_DNS (every resolved address is a host) and
//! LOGICAL_DNS (one host: the first address) clusters, with `dns_lookup_family` and a
//! refresh task per cluster every `dns_refresh_rate`.
//!
//! Resolution uses the system resolver (`getaddrinfo` via tokio), which reports no
//! TTLs: with `respect_dns_ttl` the refresh interval stays `dns_refresh_rate`.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use baton_config::model::{self, DiscoveryType, DnsLookupFamily, EndpointAddress};

use super::cluster::UpstreamCluster;
use super::host::Host;
use super::host_set::LocalityHosts;

/// Upper bound on one name's resolution, at startup and on refresh.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Resolves `name:port`, keeping the addresses `family` selects, in resolver order
/// without duplicates.
pub(crate) async fn resolve(
    name: &str,
    port: u16,
    family: DnsLookupFamily,
) -> io::Result<Vec<SocketAddr>> {
    let lookup = tokio::net::lookup_host((name, port));
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, lookup)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "DNS resolution timed out"))??;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for addr in found {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    Ok(filter_family(addrs, family))
}

/// Applies `dns_lookup_family` the way Envoy does: AUTO prefers IPv6 and falls back
/// to IPv4, V4_PREFERRED the reverse, ALL keeps both.
pub(crate) fn filter_family(addrs: Vec<SocketAddr>, family: DnsLookupFamily) -> Vec<SocketAddr> {
    let (v4, v6): (Vec<SocketAddr>, Vec<SocketAddr>) = addrs.iter().partition(|a| a.is_ipv4());
    match family {
        DnsLookupFamily::V4Only => v4,
        DnsLookupFamily::V6Only => v6,
        DnsLookupFamily::Auto => {
            if v6.is_empty() {
                v4
            } else {
                v6
            }
        }
        DnsLookupFamily::V4Preferred => {
            if v4.is_empty() {
                v6
            } else {
                v4
            }
        }
        DnsLookupFamily::All => addrs,
    }
}

/// Identity of a host across re-resolutions: same endpoint, same address -> same
/// `Host` (keeps its counters and pooled connections).
type HostKey = (SocketAddr, Arc<str>, u32, u32);

fn key_of(host: &Host) -> HostKey {
    (
        host.address,
        host.locality.clone(),
        host.priority,
        host.weight,
    )
}

/// Builds a DNS cluster's localities by resolving every endpoint. `previous` lends
/// existing hosts for unchanged addresses. Returns None when a name failed to resolve
/// and `previous` exists (the caller then keeps the old hosts, as Envoy does).
pub(crate) async fn resolve_localities(
    cluster: &model::Cluster,
    previous: Option<&[LocalityHosts]>,
) -> Option<Vec<LocalityHosts>> {
    let mut reuse: HashMap<HostKey, Arc<Host>> = HashMap::new();
    for locality in previous.unwrap_or_default() {
        for host in &locality.hosts {
            reuse.insert(key_of(host), host.clone());
        }
    }
    let logical = cluster.discovery == DiscoveryType::LogicalDns;
    let mut localities = Vec::new();
    for locality in &cluster.load_assignment.localities {
        let name: Arc<str> = Arc::from(locality.locality.as_str());
        let mut hosts = Vec::new();
        for endpoint in &locality.endpoints {
            let (addrs, dns_name) = match &endpoint.address {
                EndpointAddress::Ip(addr) => (vec![*addr], None),
                EndpointAddress::Dns { host, port } => {
                    match resolve(host, *port, cluster.dns_lookup_family).await {
                        Ok(addrs) => (addrs, Some(host.clone())),
                        Err(e) => {
                            tracing::warn!(cluster = %cluster.name, name = %host, error = %e, "DNS resolution failed");
                            if previous.is_some() {
                                return None;
                            }
                            (Vec::new(), Some(host.clone()))
                        }
                    }
                }
            };
            // LOGICAL_DNS: one logical host per endpoint, on the first address.
            let take = if logical { 1 } else { addrs.len() };
            for addr in addrs.into_iter().take(take) {
                let key = (
                    addr,
                    name.clone(),
                    locality.priority,
                    endpoint.weight.max(1),
                );
                let host = reuse.remove(&key).unwrap_or_else(|| {
                    Arc::new(Host::new(
                        addr,
                        endpoint.hostname.clone().or_else(|| dns_name.clone()),
                        endpoint.weight,
                        name.clone(),
                        locality.priority,
                        endpoint.healthy,
                    ))
                });
                hosts.push(host);
            }
        }
        localities.push(LocalityHosts {
            priority: locality.priority,
            weight: locality.weight,
            hosts,
        });
    }
    Some(localities)
}

fn same_hosts(a: &[LocalityHosts], b: &[LocalityHosts]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.hosts.len() == y.hosts.len()
                && x.hosts.iter().zip(&y.hosts).all(|(h, g)| Arc::ptr_eq(h, g))
        })
}

/// Re-resolves the cluster every `dns_refresh_rate` until the cluster is dropped,
/// swapping in a new host set when the addresses changed.
pub(crate) async fn refresh_loop(cluster: Weak<UpstreamCluster>, every: Duration) {
    let every = every.max(Duration::from_millis(1));
    loop {
        tokio::time::sleep(every).await;
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        let current = cluster.host_set();
        let Some(fresh) = resolve_localities(&cluster.model, Some(current.localities())).await
        else {
            continue;
        };
        if !same_hosts(current.localities(), &fresh) {
            tracing::debug!(cluster = %cluster.model.name, "DNS hosts changed");
            cluster.set_hosts(fresh);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> Vec<SocketAddr> {
        vec![
            "[::1]:80".parse().expect("v6"),
            "127.0.0.1:80".parse().expect("v4"),
        ]
    }

    #[test]
    fn lookup_family_filters() {
        let v4: SocketAddr = "127.0.0.1:80".parse().expect("v4");
        let v6: SocketAddr = "[::1]:80".parse().expect("v6");
        assert_eq!(filter_family(addrs(), DnsLookupFamily::V4Only), vec![v4]);
        assert_eq!(filter_family(addrs(), DnsLookupFamily::V6Only), vec![v6]);
        assert_eq!(filter_family(addrs(), DnsLookupFamily::Auto), vec![v6]);
        assert_eq!(filter_family(vec![v4], DnsLookupFamily::Auto), vec![v4]);
        assert_eq!(
            filter_family(addrs(), DnsLookupFamily::V4Preferred),
            vec![v4]
        );
        assert_eq!(filter_family(addrs(), DnsLookupFamily::All), addrs());
    }

    #[tokio::test]
    async fn resolves_localhost() {
        let found = resolve("localhost", 1234, DnsLookupFamily::V4Only)
            .await
            .expect("localhost resolves");
        assert_eq!(
            found,
            vec!["127.0.0.1:1234".parse::<SocketAddr>().expect("addr")]
        );
    }
}
