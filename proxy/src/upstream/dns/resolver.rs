//! The DNS resolver of STRICT_DNS / LOGICAL_DNS clusters: answers with addresses and
//! their record TTLs, the way Envoy's default c-ares resolver does.
//!
//! One name is looked up in this order, per address family: `/etc/hosts`, then
//! `localhost` names (loopback), then the name servers over hickory-resolver. The hosts
//! file and `localhost` are answered here rather than by hickory because their answers
//! have no TTL: Envoy (c-ares) reports TTL 0 for them, which keeps `dns_refresh_rate`,
//! while hickory would give them a one-day TTL. Name servers come from the cluster's (or
//! the bootstrap's) resolver config, else from `/etc/resolv.conf`, else 127.0.0.1:53 as
//! c-ares defaults; search domains and `ndots` come from `/etc/resolv.conf`. Like
//! c-ares, and unlike the libc resolver, nsswitch sources (mDNS, LDAP, ...) are not used.
//!
//! Families follow Envoy: AUTO asks AAAA then A if there was no IPv6 address,
//! V4_PREFERRED the reverse, ALL asks both. "No such name" and "no records" are empty
//! answers, not failures (a STRICT_DNS target then has no hosts); timeouts, refusals and
//! server failures are failures (the cluster keeps its hosts).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use baton_config::model::{DnsLookupFamily, DnsResolverConfig};
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
    ServerOrderingStrategy,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{Name, RecordType};
use hickory_resolver::Resolver;

use super::hosts;

/// Port of a name server given without one.
const DNS_PORT: u16 = 53;

/// One resolved address and the TTL its record had (zero: not from a name server, or the
/// server said not to cache it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The address.
    pub(crate) ip: IpAddr,
    /// The record's TTL.
    pub(crate) ttl: Duration,
}

/// Why a resolution failed: no usable answer from any name server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolveError(String);

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ResolveError {}

impl ResolveError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// A resolver for one resolver configuration; shared by the clusters that use it.
pub(crate) struct DnsResolver {
    /// None when hickory could not be set up (logged); only hosts and localhost resolve.
    client: Option<Resolver<TokioRuntimeProvider>>,
    /// Bound on one lookup of one family: every try of every server.
    lookup_timeout: Duration,
    /// Where the hosts file is read from (a fixture in tests).
    hosts_path: &'static str,
}

impl fmt::Debug for DnsResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsResolver")
            .field("client", &self.client.is_some())
            .field("lookup_timeout", &self.lookup_timeout)
            .finish()
    }
}

impl DnsResolver {
    /// A resolver for `config`. Never fails: a name server setup that cannot be built is
    /// logged, and every name that needs a name server then fails to resolve.
    pub(crate) fn new(config: &DnsResolverConfig) -> Self {
        let system = match hickory_resolver::system_conf::read_system_conf() {
            Ok(system) => Some(system),
            Err(e) => {
                tracing::debug!(error = %e, "no usable /etc/resolv.conf; DNS falls back to 127.0.0.1:53");
                None
            }
        };
        let (resolver_config, options) = hickory_config(config, system);
        let client =
            Resolver::builder_with_config(resolver_config, TokioRuntimeProvider::default())
                .with_options(options)
                .build()
                .inspect_err(|e| tracing::error!(error = %e, "cannot set up the DNS resolver"))
                .ok();
        Self {
            client,
            lookup_timeout: config.query_timeout * config.query_tries.max(1)
                + Duration::from_secs(1),
            hosts_path: hosts::HOSTS_PATH,
        }
    }

    /// Resolves `name` for `family`: addresses in answer order, without duplicates.
    pub(crate) async fn resolve(
        &self,
        name: &str,
        family: DnsLookupFamily,
    ) -> Result<Vec<Resolved>, ResolveError> {
        // Read once per resolution, as c-ares does: edits apply at the next refresh.
        let hosts_text = std::fs::read_to_string(self.hosts_path).unwrap_or_default();
        let lookup = |v6| self.lookup(&hosts_text, name, v6);
        let found = match family {
            DnsLookupFamily::V4Only => lookup(false).await?,
            DnsLookupFamily::V6Only => lookup(true).await?,
            DnsLookupFamily::Auto => first_non_empty(lookup(true).await, || lookup(false)).await?,
            DnsLookupFamily::V4Preferred => {
                first_non_empty(lookup(false).await, || lookup(true)).await?
            }
            DnsLookupFamily::All => {
                let (v4, v6) = futures_util::join!(lookup(false), lookup(true));
                match (v4, v6) {
                    (Err(e), Err(_)) => return Err(e),
                    (v4, v6) => {
                        let mut all = v4.unwrap_or_default();
                        all.extend(v6.unwrap_or_default());
                        all
                    }
                }
            }
        };
        let mut unique: Vec<Resolved> = Vec::with_capacity(found.len());
        for resolved in found {
            if !unique.iter().any(|r| r.ip == resolved.ip) {
                unique.push(resolved);
            }
        }
        Ok(unique)
    }

    /// One family: hosts file, localhost, then the name servers.
    async fn lookup(
        &self,
        hosts_text: &str,
        name: &str,
        v6: bool,
    ) -> Result<Vec<Resolved>, ResolveError> {
        let from_file = hosts::lookup(hosts_text, name, v6);
        let local = if from_file.is_empty() {
            hosts::loopback(name, v6).into_iter().collect()
        } else {
            from_file
        };
        if !local.is_empty() {
            return Ok(local
                .into_iter()
                .map(|ip| Resolved {
                    ip,
                    ttl: Duration::ZERO,
                })
                .collect());
        }
        let Some(client) = &self.client else {
            return Err(ResolveError("no DNS resolver available".to_owned()));
        };
        let name = Name::from_utf8(name)
            .map_err(|e| ResolveError(format!("invalid DNS name '{name}': {e}")))?;
        let record_type = if v6 { RecordType::AAAA } else { RecordType::A };
        let lookup = tokio::time::timeout(self.lookup_timeout, client.lookup(name, record_type))
            .await
            .map_err(|_| ResolveError("DNS resolution timed out".to_owned()))?;
        match lookup {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|record| {
                    let ip = record.data.ip_addr()?;
                    (ip.is_ipv6() == v6).then_some(Resolved {
                        ip,
                        ttl: Duration::from_secs(u64::from(record.ttl)),
                    })
                })
                .collect()),
            Err(e) if e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(failure(&e)),
        }
    }
}

/// The first lookup's addresses, or the second's when the first found none (a failed
/// first lookup is retried with the other family, as c-ares does).
async fn first_non_empty<F, Fut>(
    first: Result<Vec<Resolved>, ResolveError>,
    second: F,
) -> Result<Vec<Resolved>, ResolveError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Resolved>, ResolveError>>,
{
    match first {
        Ok(found) if !found.is_empty() => Ok(found),
        Ok(_) => second().await,
        Err(e) => match second().await {
            Ok(found) if !found.is_empty() => Ok(found),
            Ok(_) | Err(_) => Err(e),
        },
    }
}

fn failure(error: &NetError) -> ResolveError {
    ResolveError(format!("DNS resolution failed: {error}"))
}

/// hickory's configuration for `config`, given the system's (`/etc/resolv.conf`) when
/// it could be read.
fn hickory_config(
    config: &DnsResolverConfig,
    system: Option<(ResolverConfig, ResolverOpts)>,
) -> (ResolverConfig, ResolverOpts) {
    let (system_config, system_options) = match system {
        Some((c, o)) => (Some(c), Some(o)),
        None => (None, None),
    };
    let name_servers = match &system_config {
        Some(system)
            if config.resolvers.is_empty()
                || (config.use_resolvers_as_fallback && !system.name_servers().is_empty()) =>
        {
            system
                .name_servers()
                .iter()
                .map(|ns| name_server(SocketAddr::new(ns.ip, DNS_PORT), config.use_tcp))
                .collect()
        }
        _ if !config.resolvers.is_empty() => config
            .resolvers
            .iter()
            .map(|addr| name_server(*addr, config.use_tcp))
            .collect(),
        // c-ares' default when the system names no server.
        _ => vec![name_server(
            SocketAddr::from(([127, 0, 0, 1], DNS_PORT)),
            config.use_tcp,
        )],
    };
    let (domain, search) = match system_config {
        Some(system) if !config.no_default_search_domain => {
            let (domain, search, _) = system.into_parts();
            (domain, search)
        }
        _ => (None, Vec::new()),
    };
    let mut options = ResolverOpts::default();
    if let Some(system) = system_options {
        options.ndots = system.ndots;
    }
    options.timeout = config.query_timeout;
    options.attempts = config.query_tries.saturating_sub(1) as usize;
    // Every refresh asks the name servers, as Envoy's (cache-less) c-ares does; the
    // answer's TTL is what spaces the refreshes.
    options.cache_size = 0;
    // Answered before hickory is asked, without a TTL (module doc).
    options.use_hosts_file = ResolveHosts::Never;
    // c-ares asks one server at a time. Without rotation hickory orders servers by how
    // well they answered, not strictly as listed: each try shares one deadline, so a
    // fixed order would spend every retry on a dead first server.
    options.num_concurrent_reqs = 1;
    options.server_ordering_strategy = if config.rotate_nameservers {
        ServerOrderingStrategy::RoundRobin
    } else {
        ServerOrderingStrategy::QueryStatistics
    };
    if let Some(size) = config.edns0_max_payload_size {
        options.edns_payload_len = size;
    }
    (
        ResolverConfig::from_parts(domain, search, name_servers),
        options,
    )
}

/// A name server at `addr`: UDP with TCP for truncated answers, or TCP only.
fn name_server(addr: SocketAddr, tcp_only: bool) -> NameServerConfig {
    let connection = |mut c: ConnectionConfig| {
        c.port = addr.port();
        c
    };
    let connections = if tcp_only {
        vec![connection(ConnectionConfig::tcp())]
    } else {
        vec![
            connection(ConnectionConfig::udp()),
            connection(ConnectionConfig::tcp()),
        ]
    };
    NameServerConfig::new(addr.ip(), true, connections)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::config::ProtocolConfig;

    fn system() -> (ResolverConfig, ResolverOpts) {
        hickory_resolver::system_conf::parse_resolv_conf(
            "nameserver 10.0.0.53\nsearch corp.example\noptions ndots:3\n",
        )
        .expect("resolv.conf parses")
    }

    fn servers(config: &ResolverConfig) -> Vec<(IpAddr, Vec<u16>, bool)> {
        config
            .name_servers()
            .iter()
            .map(|ns| {
                let ports = ns.connections.iter().map(|c| c.port).collect();
                let udp = ns
                    .connections
                    .iter()
                    .any(|c| matches!(c.protocol, ProtocolConfig::Udp));
                (ns.ip, ports, udp)
            })
            .collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn system_servers_search_and_ndots_by_default() {
        let (config, options) = hickory_config(&DnsResolverConfig::default(), Some(system()));
        assert_eq!(
            servers(&config),
            vec![(ip("10.0.0.53"), vec![53, 53], true)]
        );
        assert_eq!(config.search().len(), 1);
        assert_eq!(options.ndots, 3);
        assert_eq!(options.timeout, Duration::from_secs(5));
        assert_eq!(options.attempts, 3);
        assert_eq!(options.cache_size, 0);
        assert_eq!(options.use_hosts_file, ResolveHosts::Never);
    }

    #[test]
    fn configured_resolvers_replace_the_system_ones() {
        let config = DnsResolverConfig {
            resolvers: vec!["127.0.0.1:5353".parse().expect("addr")],
            use_tcp: true,
            no_default_search_domain: true,
            query_timeout: Duration::from_secs(2),
            query_tries: 1,
            rotate_nameservers: true,
            ..Default::default()
        };
        let (resolver, options) = hickory_config(&config, Some(system()));
        assert_eq!(
            servers(&resolver),
            vec![(ip("127.0.0.1"), vec![5353], false)]
        );
        assert!(resolver.search().is_empty());
        assert_eq!(options.timeout, Duration::from_secs(2));
        assert_eq!(options.attempts, 0);
        assert_eq!(
            options.server_ordering_strategy,
            ServerOrderingStrategy::RoundRobin
        );
    }

    #[test]
    fn fallback_resolvers_only_without_system_servers() {
        let config = DnsResolverConfig {
            resolvers: vec!["127.0.0.1:5353".parse().expect("addr")],
            use_resolvers_as_fallback: true,
            ..Default::default()
        };
        let (resolver, _) = hickory_config(&config, Some(system()));
        assert_eq!(servers(&resolver)[0].0, ip("10.0.0.53"));
        let (resolver, _) = hickory_config(&config, None);
        assert_eq!(servers(&resolver)[0].1, vec![5353, 5353]);
        let (resolver, _) = hickory_config(&DnsResolverConfig::default(), None);
        assert_eq!(servers(&resolver)[0].0, ip("127.0.0.1"));
    }

    fn fixture_resolver(path: &'static str) -> DnsResolver {
        DnsResolver {
            client: None,
            lookup_timeout: Duration::from_secs(1),
            hosts_path: path,
        }
    }

    #[tokio::test]
    async fn hosts_file_and_localhost_answer_without_ttl() {
        let dir = std::env::temp_dir().join(format!("baton-dns-hosts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("hosts");
        std::fs::write(
            &path,
            "10.1.0.1 backend.test\n10.1.0.2 backend.test\n127.0.0.1 localhost\n",
        )
        .expect("hosts written");
        let path: &'static str = Box::leak(path.to_string_lossy().into_owned().into_boxed_str());
        let resolver = fixture_resolver(path);
        let found = resolver
            .resolve("backend.test", DnsLookupFamily::V4Only)
            .await
            .expect("resolves");
        assert_eq!(
            found,
            vec![
                Resolved {
                    ip: ip("10.1.0.1"),
                    ttl: Duration::ZERO
                },
                Resolved {
                    ip: ip("10.1.0.2"),
                    ttl: Duration::ZERO
                },
            ]
        );
        // AUTO prefers IPv6: localhost has no ::1 line, so loopback answers (as c-ares).
        let found = resolver
            .resolve("localhost", DnsLookupFamily::Auto)
            .await
            .expect("resolves");
        assert_eq!(
            found.iter().map(|r| r.ip).collect::<Vec<_>>(),
            vec![ip("::1")]
        );
        let found = resolver
            .resolve("localhost", DnsLookupFamily::All)
            .await
            .expect("resolves");
        assert_eq!(
            found.iter().map(|r| r.ip).collect::<Vec<_>>(),
            vec![ip("127.0.0.1"), ip("::1")]
        );
        // AUTO falls back to IPv4 when the IPv6 lookup fails (no name server here).
        let found = resolver
            .resolve("backend.test", DnsLookupFamily::Auto)
            .await
            .expect("resolves");
        assert_eq!(found.len(), 2);
        // A name only a name server could answer fails.
        assert!(resolver
            .resolve("elsewhere.test", DnsLookupFamily::V4Only)
            .await
            .is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
