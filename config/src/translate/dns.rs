//! DNS discovery settings of STRICT_DNS / LOGICAL_DNS clusters: the Cluster's own fields
//! or the `envoy.clusters.dns` cluster extension (`DnsCluster`), and which resolver a
//! cluster uses, chosen the way Envoy chooses it: the cluster's `typed_dns_resolver_config`,
//! else its deprecated `dns_resolution_config` / `dns_resolvers` (+ `use_tcp_for_dns_lookups`),
//! else the bootstrap's (`typed_dns_resolver_config`, `dns_resolution_config`,
//! `use_tcp_for_dns_lookups`), else the system's.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use baton_proto::pb::envoy::config::bootstrap::v3 as bootstrap_pb;
use baton_proto::pb::envoy::config::cluster::v3 as cluster_pb;
use baton_proto::pb::envoy::config::core::v3 as core_pb;
use baton_proto::pb::envoy::extensions::clusters::common::dns::v3 as common_dns_pb;
use baton_proto::pb::envoy::extensions::clusters::dns::v3 as dns_cluster_pb;
use baton_proto::pb::envoy::extensions::network::dns_resolver::cares::v3 as cares_pb;

use super::{any_type, decode_any, duration, with_lazy_path};
use crate::error::{ConfigError, Result};
use crate::model;

/// The one resolver extension Baton implements (as c-ares semantics over hickory).
pub(crate) const CARES_RESOLVER: &str =
    "envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig";
/// The DNS cluster extension's config type.
pub(crate) const DNS_CLUSTER: &str = "envoy.extensions.clusters.dns.v3.DnsCluster";

const DEFAULT_REFRESH_RATE: Duration = Duration::from_secs(5);

/// Everything DNS discovery needs from a cluster's config.
pub(crate) struct DnsDiscovery {
    pub(crate) discovery: model::DiscoveryType,
    pub(crate) refresh_rate: Duration,
    pub(crate) respect_ttl: bool,
    pub(crate) lookup_family: model::DnsLookupFamily,
    pub(crate) settings: model::DnsSettings,
}

/// The bootstrap's resolver: the default of every cluster without its own.
pub(crate) fn bootstrap_resolver(
    b: &bootstrap_pb::Bootstrap,
) -> Result<Arc<model::DnsResolverConfig>> {
    if let Some(resolver) = typed_resolver(
        b.typed_dns_resolver_config.as_ref(),
        "typed_dns_resolver_config",
    )? {
        return Ok(Arc::new(resolver));
    }
    if let Some(config) = &b.dns_resolution_config {
        return Ok(Arc::new(resolution_config(
            config,
            "dns_resolution_config",
        )?));
    }
    Ok(Arc::new(model::DnsResolverConfig {
        use_tcp: b.use_tcp_for_dns_lookups,
        ..Default::default()
    }))
}

/// DNS discovery from the Cluster's own (deprecated but honoured) fields.
pub(crate) fn from_cluster_fields(
    c: &cluster_pb::Cluster,
    discovery: model::DiscoveryType,
    path: &str,
    default_resolver: &Arc<model::DnsResolverConfig>,
) -> Result<DnsDiscovery> {
    use cluster_pb::cluster::DnsLookupFamily as Family;
    let lookup_family = match Family::try_from(c.dns_lookup_family) {
        Ok(Family::Auto) => model::DnsLookupFamily::Auto,
        Ok(Family::V4Only) => model::DnsLookupFamily::V4Only,
        Ok(Family::V6Only) => model::DnsLookupFamily::V6Only,
        Ok(Family::V4Preferred) => model::DnsLookupFamily::V4Preferred,
        Ok(Family::All) => model::DnsLookupFamily::All,
        Err(_) => {
            return Err(ConfigError::at(
                format!("{path}.dns_lookup_family"),
                "unknown enum value",
            ))
        }
    };
    let failure_refresh_rate = match &c.dns_failure_refresh_rate {
        Some(rate) => Some(failure_refresh_rate(
            rate.base_interval.as_ref(),
            rate.max_interval.as_ref(),
            &format!("{path}.dns_failure_refresh_rate"),
        )?),
        None => None,
    };
    Ok(DnsDiscovery {
        discovery,
        // Paths formatted only for an error: every EDS and static cluster passes here.
        refresh_rate: with_lazy_path(
            || format!("{path}.dns_refresh_rate"),
            |p| refresh_rate(c.dns_refresh_rate.as_ref(), p),
        )?,
        respect_ttl: c.respect_dns_ttl,
        lookup_family,
        settings: model::DnsSettings {
            min_refresh_rate: Duration::ZERO,
            failure_refresh_rate,
            jitter: with_lazy_path(
                || format!("{path}.dns_jitter"),
                |p| duration(c.dns_jitter.as_ref(), p),
            )?
            .unwrap_or_default(),
            resolver: cluster_resolver(c, path, default_resolver)?,
        },
    })
}

/// DNS discovery from `cluster_type: {name: envoy.clusters.dns, typed_config: DnsCluster}`.
/// As in Envoy, the Cluster's own DNS fields are then ignored.
pub(crate) fn from_cluster_type(
    custom: &cluster_pb::cluster::CustomClusterType,
    path: &str,
    default_resolver: &Arc<model::DnsResolverConfig>,
) -> Result<DnsDiscovery> {
    let ext_path = format!("{path}.cluster_type");
    let Some(any) = &custom.typed_config else {
        return Err(ConfigError::at(
            format!("{ext_path}.typed_config"),
            format!("required (\"@type\": type.googleapis.com/{DNS_CLUSTER})"),
        ));
    };
    if any_type(any) != DNS_CLUSTER {
        return Err(ConfigError::at(
            ext_path,
            format!(
                "cluster type '{}' is not supported by Baton yet (supported: envoy.clusters.dns)",
                if custom.name.is_empty() {
                    any_type(any)
                } else {
                    &custom.name
                }
            ),
        ));
    }
    let cfg_path = format!("{ext_path}.typed_config");
    let cfg: dns_cluster_pb::DnsCluster = decode_any(any, DNS_CLUSTER, &cfg_path)?;
    use common_dns_pb::DnsLookupFamily as Family;
    let lookup_family = match Family::try_from(cfg.dns_lookup_family) {
        Ok(Family::Unspecified | Family::Auto) => model::DnsLookupFamily::Auto,
        Ok(Family::V4Only) => model::DnsLookupFamily::V4Only,
        Ok(Family::V6Only) => model::DnsLookupFamily::V6Only,
        Ok(Family::V4Preferred) => model::DnsLookupFamily::V4Preferred,
        Ok(Family::All) => model::DnsLookupFamily::All,
        Err(_) => {
            return Err(ConfigError::at(
                format!("{cfg_path}.dns_lookup_family"),
                "unknown enum value",
            ))
        }
    };
    let min_refresh_rate = match duration(
        cfg.dns_min_refresh_rate.as_ref(),
        &format!("{cfg_path}.dns_min_refresh_rate"),
    )? {
        Some(d) if d < Duration::from_secs(1) => {
            return Err(ConfigError::at(
                format!("{cfg_path}.dns_min_refresh_rate"),
                "must be at least 1s",
            ))
        }
        Some(d) => d,
        None => Duration::ZERO,
    };
    let failure_refresh_rate = match &cfg.dns_failure_refresh_rate {
        Some(rate) => Some(failure_refresh_rate(
            rate.base_interval.as_ref(),
            rate.max_interval.as_ref(),
            &format!("{cfg_path}.dns_failure_refresh_rate"),
        )?),
        None => None,
    };
    let resolver = match typed_resolver(
        cfg.typed_dns_resolver_config.as_ref(),
        &format!("{cfg_path}.typed_dns_resolver_config"),
    )? {
        Some(resolver) => Arc::new(resolver),
        None => default_resolver.clone(),
    };
    Ok(DnsDiscovery {
        discovery: if cfg.all_addresses_in_single_endpoint {
            model::DiscoveryType::LogicalDns
        } else {
            model::DiscoveryType::StrictDns
        },
        refresh_rate: refresh_rate(
            cfg.dns_refresh_rate.as_ref(),
            &format!("{cfg_path}.dns_refresh_rate"),
        )?,
        respect_ttl: cfg.respect_dns_ttl,
        lookup_family,
        settings: model::DnsSettings {
            min_refresh_rate,
            failure_refresh_rate,
            jitter: duration(cfg.dns_jitter.as_ref(), &format!("{cfg_path}.dns_jitter"))?
                .unwrap_or_default(),
            resolver,
        },
    })
}

/// `dns_refresh_rate`: default 5 s, more than 1 ms (Envoy's validate rule).
fn refresh_rate(d: Option<&prost_types::Duration>, path: &str) -> Result<Duration> {
    let rate = duration(d, path)?.unwrap_or(DEFAULT_REFRESH_RATE);
    if rate <= Duration::from_millis(1) {
        return Err(ConfigError::at(path, "must be greater than 1ms"));
    }
    Ok(rate)
}

fn failure_refresh_rate(
    base: Option<&prost_types::Duration>,
    max: Option<&prost_types::Duration>,
    path: &str,
) -> Result<model::DnsFailureRefreshRate> {
    let base_path = format!("{path}.base_interval");
    let base_interval = duration(base, &base_path)?
        .ok_or_else(|| ConfigError::at(&base_path, "required field is missing"))?;
    if base_interval <= Duration::from_millis(1) {
        return Err(ConfigError::at(base_path, "must be greater than 1ms"));
    }
    let max_path = format!("{path}.max_interval");
    let max_interval = duration(max, &max_path)?.unwrap_or(base_interval * 10);
    if max_interval <= Duration::from_millis(1) {
        return Err(ConfigError::at(max_path, "must be greater than 1ms"));
    }
    if max_interval < base_interval {
        return Err(ConfigError::at(
            max_path,
            "must be greater than or equal to base_interval",
        ));
    }
    Ok(model::DnsFailureRefreshRate {
        base_interval,
        max_interval,
    })
}

/// The cluster's own resolver when it configures one (Envoy looks at a typed config with
/// a type, non-empty `dns_resolution_config.resolvers` or `dns_resolvers`), else
/// `default_resolver`. A lone `use_tcp_for_dns_lookups` does not make one, as in Envoy.
fn cluster_resolver(
    c: &cluster_pb::Cluster,
    path: &str,
    default_resolver: &Arc<model::DnsResolverConfig>,
) -> Result<Arc<model::DnsResolverConfig>> {
    if let Some(config) = &c.typed_dns_resolver_config {
        if let Some(resolver) =
            typed_resolver(Some(config), &format!("{path}.typed_dns_resolver_config"))?
        {
            return Ok(Arc::new(resolver));
        }
    }
    if let Some(config) = &c.dns_resolution_config {
        let config_path = format!("{path}.dns_resolution_config");
        let resolver = resolution_config(config, &config_path)?;
        return Ok(Arc::new(resolver));
    }
    if !c.dns_resolvers.is_empty() {
        return Ok(Arc::new(model::DnsResolverConfig {
            resolvers: resolver_addresses(&c.dns_resolvers, &format!("{path}.dns_resolvers"))?,
            use_tcp: c.use_tcp_for_dns_lookups,
            ..Default::default()
        }));
    }
    Ok(default_resolver.clone())
}

/// A `typed_dns_resolver_config`; None when unset or without a typed config (Envoy then
/// falls back to the next way of choosing a resolver).
fn typed_resolver(
    config: Option<&core_pb::TypedExtensionConfig>,
    path: &str,
) -> Result<Option<model::DnsResolverConfig>> {
    let Some(any) = config.and_then(|c| c.typed_config.as_ref()) else {
        return Ok(None);
    };
    if any.type_url.is_empty() {
        return Ok(None);
    }
    let any_path = format!("{path}.typed_config");
    if any_type(any) != CARES_RESOLVER {
        return Err(ConfigError::at(
            format!("{any_path}.@type"),
            format!(
                "DNS resolver '{}' is not supported by Baton yet (supported: \
                 envoy.network.dns_resolver.cares, type.googleapis.com/{CARES_RESOLVER})",
                any.type_url
            ),
        ));
    }
    let cares: cares_pb::CaresDnsResolverConfig = decode_any(any, CARES_RESOLVER, &any_path)?;
    cares_config(&cares, &any_path).map(Some)
}

fn cares_config(
    c: &cares_pb::CaresDnsResolverConfig,
    path: &str,
) -> Result<model::DnsResolverConfig> {
    let options = c.dns_resolver_options.unwrap_or_default();
    let query_timeout = match c.query_timeout_seconds {
        Some(0) => {
            return Err(ConfigError::at(
                format!("{path}.query_timeout_seconds"),
                "must be at least 1",
            ))
        }
        Some(seconds) => Duration::from_secs(seconds),
        None => Duration::from_secs(5),
    };
    let query_tries = match c.query_tries {
        Some(0) => {
            return Err(ConfigError::at(
                format!("{path}.query_tries"),
                "must be at least 1",
            ))
        }
        Some(tries) => tries,
        None => 4,
    };
    let edns0_max_payload_size = match c.edns0_max_payload_size {
        Some(size) if !(512..=4096).contains(&size) => {
            return Err(ConfigError::at(
                format!("{path}.edns0_max_payload_size"),
                "must be between 512 and 4096",
            ))
        }
        // In range, so it fits.
        Some(size) => Some(size as u16),
        None => None,
    };
    Ok(model::DnsResolverConfig {
        resolvers: resolver_addresses(&c.resolvers, &format!("{path}.resolvers"))?,
        use_resolvers_as_fallback: c.use_resolvers_as_fallback,
        use_tcp: options.use_tcp_for_dns_lookups,
        no_default_search_domain: options.no_default_search_domain,
        query_timeout,
        query_tries,
        rotate_nameservers: c.rotate_nameservers,
        edns0_max_payload_size,
    })
}

/// The deprecated `dns_resolution_config` (at least one resolver, per Envoy's rule).
fn resolution_config(
    c: &core_pb::DnsResolutionConfig,
    path: &str,
) -> Result<model::DnsResolverConfig> {
    if c.resolvers.is_empty() {
        return Err(ConfigError::at(
            format!("{path}.resolvers"),
            "must have at least 1 item",
        ));
    }
    let options = c.dns_resolver_options.unwrap_or_default();
    Ok(model::DnsResolverConfig {
        resolvers: resolver_addresses(&c.resolvers, &format!("{path}.resolvers"))?,
        use_tcp: options.use_tcp_for_dns_lookups,
        no_default_search_domain: options.no_default_search_domain,
        ..Default::default()
    })
}

/// Name server addresses: IP literals; port 0 or unset means 53. The socket address
/// protocol (TCP/UDP) is not what picks the transport: `use_tcp_for_dns_lookups` is.
fn resolver_addresses(addresses: &[core_pb::Address], path: &str) -> Result<Vec<SocketAddr>> {
    use core_pb::address::Address as Kind;
    use core_pb::socket_address::PortSpecifier;
    let mut out = Vec::with_capacity(addresses.len());
    for (i, address) in addresses.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        let Some(Kind::SocketAddress(sa)) = &address.address else {
            return Err(ConfigError::at(
                item_path,
                "a DNS resolver must be a socket_address",
            ));
        };
        let sa_path = format!("{item_path}.socket_address");
        let ip: IpAddr = sa.address.parse().map_err(|_| {
            ConfigError::at(
                format!("{sa_path}.address"),
                format!("DNS resolver '{}' is not an IP address", sa.address),
            )
        })?;
        let port = match &sa.port_specifier {
            Some(PortSpecifier::PortValue(p)) => u16::try_from(*p).map_err(|_| {
                ConfigError::at(
                    format!("{sa_path}.port_value"),
                    format!("port {p} is out of range (0-65535)"),
                )
            })?,
            Some(PortSpecifier::NamedPort(_)) => {
                return Err(ConfigError::unsupported(format!("{sa_path}.named_port")))
            }
            None => 0,
        };
        out.push(SocketAddr::new(ip, if port == 0 { 53 } else { port }));
    }
    Ok(out)
}
