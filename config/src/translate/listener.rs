//! Listeners: address, filter chains and their matches, listener filters, and the
//! network filters: `connection_limit` and the terminal one (`http_connection_manager` or
//! `tcp_proxy`).

use std::sync::Arc;
use std::time::Duration;

use baton_proto::pb::envoy::config::listener::v3 as listener_pb;
use baton_proto::pb::envoy::extensions::filters::network::connection_limit::v3 as connection_limit_pb;
use baton_proto::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm_pb;
use baton_proto::pb::envoy::extensions::filters::network::tcp_proxy::v3 as tcp_pb;

use super::{
    access_log, any_type, cidr, decode_any, duration, hcm, hcm_routes, required, socket_addr,
    timeout, Context,
};
use crate::error::{ConfigError, Result};
use crate::model;

const HCM_TYPE: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const TCP_PROXY_TYPE: &str = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
const CONNECTION_LIMIT_TYPE: &str =
    "envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit";
const TLS_INSPECTOR_TYPE: &str = "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector";
const PROXY_PROTOCOL_TYPE: &str =
    "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol";

pub(crate) fn translate(
    l: &listener_pb::Listener,
    path: &str,
    ctx: &Context<'_>,
) -> Result<model::Listener> {
    let address = socket_addr(l.address.as_ref(), &format!("{path}.address"))?;
    if !l.additional_addresses.is_empty() {
        return Err(ConfigError::unsupported(format!(
            "{path}.additional_addresses"
        )));
    }
    let stat_prefix = if l.stat_prefix.is_empty() {
        // Envoy names listener stats after the address with ':' sanitised to '_'
        // (`0.0.0.0_10000`, `[__1]_10000`).
        format!("listener.{}.", address.to_string().replace(':', "_"))
    } else {
        format!("listener.{}.", l.stat_prefix)
    };
    let name = if l.name.is_empty() {
        address.to_string()
    } else {
        l.name.clone()
    };

    let mut tls_inspector = false;
    let mut proxy_protocol = None;
    for (i, filter) in l.listener_filters.iter().enumerate() {
        use listener_pb::listener_filter::ConfigType;
        let fpath = format!("{path}.listener_filters[{i}]");
        if filter.filter_disabled.is_some() {
            return Err(ConfigError::unsupported(format!("{fpath}.filter_disabled")));
        }
        let (type_name, typed_config) = match &filter.config_type {
            Some(ConfigType::TypedConfig(any)) => (any_type(any), Some(any)),
            Some(ConfigType::ConfigDiscovery(_)) => {
                return Err(ConfigError::unsupported(format!(
                    "{fpath}.config_discovery"
                )))
            }
            None => ("", None),
        };
        if type_name == TLS_INSPECTOR_TYPE
            || (type_name.is_empty() && filter.name == "envoy.filters.listener.tls_inspector")
        {
            tls_inspector = true;
        } else if let (PROXY_PROTOCOL_TYPE, Some(any)) = (type_name, typed_config) {
            if tls_inspector {
                // Envoy would look for a ClientHello in the PROXY header first.
                return Err(ConfigError::at(
                    fpath,
                    "envoy.filters.listener.proxy_protocol after envoy.filters.listener.tls_inspector is not supported by Baton yet (list proxy_protocol first: the PROXY header comes before the TLS handshake)",
                ));
            }
            proxy_protocol = Some(proxy_protocol_config(
                any,
                &format!("{fpath}.typed_config"),
            )?);
        } else {
            return Err(ConfigError::at(
                fpath,
                format!(
                    "listener filter '{}' is not supported by Baton yet (supported: envoy.filters.listener.proxy_protocol, envoy.filters.listener.tls_inspector)",
                    if type_name.is_empty() { filter.name.as_str() } else { type_name }
                ),
            ));
        }
    }

    let mut filter_chains = Vec::with_capacity(l.filter_chains.len());
    for (i, chain) in l.filter_chains.iter().enumerate() {
        let chain_path = format!("{path}.filter_chains[{i}]");
        let matcher = chain.filter_chain_match.clone().unwrap_or_default();
        if let Some(j) = l.filter_chains[..i]
            .iter()
            .position(|other| other.filter_chain_match.clone().unwrap_or_default() == matcher)
        {
            return Err(ConfigError::at(
                format!("{chain_path}.filter_chain_match"),
                format!("multiple filter chains with the same matching rules (same as filter_chains[{j}])"),
            ));
        }
        filter_chains.push(Arc::new(filter_chain(chain, &chain_path, ctx)?));
    }
    let default_filter_chain = l
        .default_filter_chain
        .as_ref()
        .map(|chain| {
            filter_chain(chain, &format!("{path}.default_filter_chain"), ctx).map(Arc::new)
        })
        .transpose()?;
    if filter_chains.is_empty() && default_filter_chain.is_none() {
        return Err(ConfigError::at(
            format!("{path}.filter_chains"),
            "no filter chains specified (need filter_chains or default_filter_chain)",
        ));
    }
    Ok(model::Listener {
        name,
        address,
        stat_prefix,
        per_connection_buffer_limit_bytes: l
            .per_connection_buffer_limit_bytes
            .unwrap_or(1024 * 1024),
        filter_chains,
        default_filter_chain,
        tls_inspector,
        proxy_protocol,
        listener_filters_timeout: timeout(
            l.listener_filters_timeout.as_ref(),
            Some(Duration::from_secs(15)),
            &format!("{path}.listener_filters_timeout"),
        )?,
        continue_on_listener_filters_timeout: l.continue_on_listener_filters_timeout,
        reuse_port: l.enable_reuse_port.unwrap_or(true),
        backlog: l.tcp_backlog_size.unwrap_or(0),
        inbound: l.traffic_direction
            == baton_proto::pb::envoy::config::core::v3::TrafficDirection::Inbound as i32,
        ignore_global_conn_limit: l.ignore_global_conn_limit || l.bypass_overload_manager,
        ipv4_compat: ipv4_compat(l.address.as_ref(), address, &format!("{path}.address"))?,
        max_accepts_per_event: match l.max_connections_to_accept_per_socket_event {
            None => None,
            Some(n) => Some(std::num::NonZeroU32::new(n).ok_or_else(|| {
                ConfigError::at(
                    format!("{path}.max_connections_to_accept_per_socket_event"),
                    "value must be greater than 0",
                )
            })?),
        },
    })
}

/// The `envoy.filters.listener.proxy_protocol` config (TLV rules and pass-through are
/// refused by the supported-field check).
fn proxy_protocol_config(any: &prost_types::Any, path: &str) -> Result<model::ProxyProtocol> {
    use baton_proto::pb::envoy::config::core::v3::proxy_protocol_config::Version;
    use baton_proto::pb::envoy::extensions::filters::listener::proxy_protocol::v3 as pp_pb;
    let config: pp_pb::ProxyProtocol = decode_any(any, PROXY_PROTOCOL_TYPE, path)?;
    let mut disallowed = model::ProxyProtocolVersions::default();
    for (i, v) in config.disallowed_versions.iter().enumerate() {
        match Version::try_from(*v) {
            Ok(Version::V1) => disallowed.v1 = true,
            Ok(Version::V2) => disallowed.v2 = true,
            Err(_) => {
                return Err(ConfigError::at(
                    format!("{path}.disallowed_versions[{i}]"),
                    "unknown enum value",
                ))
            }
        }
    }
    Ok(model::ProxyProtocol {
        allow_requests_without_proxy_protocol: config.allow_requests_without_proxy_protocol,
        disallowed,
        stat_prefix: config.stat_prefix,
    })
}

/// A listener's `ipv4_compat`, which Envoy allows only on `::` and IPv4-mapped IPv6
/// addresses (its message).
fn ipv4_compat(
    address: Option<&baton_proto::pb::envoy::config::core::v3::Address>,
    bound: std::net::SocketAddr,
    path: &str,
) -> Result<bool> {
    use baton_proto::pb::envoy::config::core::v3::address::Address as Kind;
    let set = matches!(
        address.and_then(|a| a.address.as_ref()),
        Some(Kind::SocketAddress(sa)) if sa.ipv4_compat
    );
    let allowed = match bound.ip() {
        std::net::IpAddr::V6(ip) => ip.is_unspecified() || ip.to_ipv4_mapped().is_some(),
        std::net::IpAddr::V4(_) => false,
    };
    if set && !allowed {
        return Err(ConfigError::at(
            format!("{path}.socket_address.ipv4_compat"),
            format!("Only IPv6 address '::' or valid IPv4-mapped IPv6 address can set ipv4_compat: {bound}"),
        ));
    }
    Ok(set)
}

fn filter_chain(
    chain: &listener_pb::FilterChain,
    path: &str,
    ctx: &Context<'_>,
) -> Result<model::FilterChain> {
    let matcher = chain
        .filter_chain_match
        .as_ref()
        .map(|m| filter_chain_match(m, &format!("{path}.filter_chain_match")))
        .transpose()?
        .unwrap_or_default();
    let tls = match &chain.transport_socket {
        Some(socket) => {
            super::tls::downstream(socket, &format!("{path}.transport_socket"), ctx.env)?
        }
        None => None,
    };
    let transport_socket_connect_timeout = timeout(
        chain.transport_socket_connect_timeout.as_ref(),
        None,
        &format!("{path}.transport_socket_connect_timeout"),
    )?;
    if chain.use_proxy_proto.is_some() {
        return Err(ConfigError::unsupported(format!("{path}.use_proxy_proto")));
    }
    let Some((last, init)) = chain.filters.split_last() else {
        return Err(ConfigError::at(
            format!("{path}.filters"),
            "a filter chain needs a terminal network filter (http_connection_manager or tcp_proxy)",
        ));
    };
    let mut connection_limit_filter = None;
    for (i, filter) in init.iter().enumerate() {
        let fpath = format!("{path}.filters[{i}]");
        if is_connection_limit(filter) && connection_limit_filter.is_none() {
            connection_limit_filter = Some(connection_limit(filter, &fpath)?);
            continue;
        }
        return Err(ConfigError::at(
            fpath,
            format!(
                "network filter '{}' before the terminal filter is not supported by Baton yet (supported: envoy.filters.network.connection_limit, once)",
                filter.name
            ),
        ));
    }
    let filter_path = format!("{path}.filters[{}]", chain.filters.len() - 1);
    let network = network_filter(last, &filter_path, ctx)?;
    Ok(model::FilterChain {
        name: chain.name.clone(),
        matcher,
        tls,
        transport_socket_connect_timeout,
        connection_limit: connection_limit_filter,
        network,
    })
}

fn is_connection_limit(filter: &listener_pb::Filter) -> bool {
    use listener_pb::filter::ConfigType;
    match &filter.config_type {
        Some(ConfigType::TypedConfig(any)) => any_type(any) == CONNECTION_LIMIT_TYPE,
        _ => filter.name == "envoy.filters.network.connection_limit",
    }
}

/// A network filter's `typed_config` (`config_discovery` is not supported).
fn filter_typed_config<'a>(
    filter: &'a listener_pb::Filter,
    path: &str,
) -> Result<&'a prost_types::Any> {
    use listener_pb::filter::ConfigType;
    match &filter.config_type {
        Some(ConfigType::TypedConfig(any)) => Ok(any),
        Some(ConfigType::ConfigDiscovery(_)) => {
            Err(ConfigError::unsupported(format!("{path}.config_discovery")))
        }
        None => Err(ConfigError::at(
            format!("{path}.typed_config"),
            format!("required for network filter '{}'", filter.name),
        )),
    }
}

fn connection_limit(filter: &listener_pb::Filter, path: &str) -> Result<model::ConnectionLimit> {
    let typed_path = format!("{path}.typed_config");
    let any = filter_typed_config(filter, path)?;
    let proto: connection_limit_pb::ConnectionLimit =
        decode_any(any, CONNECTION_LIMIT_TYPE, &typed_path)?;
    let stat_prefix = required(&proto.stat_prefix, &format!("{typed_path}.stat_prefix"))?;
    let max_connections = match proto.max_connections {
        Some(0) => {
            return Err(ConfigError::at(
                format!("{typed_path}.max_connections"),
                "must be at least 1",
            ))
        }
        Some(n) => n,
        None => {
            return Err(ConfigError::at(
                format!("{typed_path}.max_connections"),
                "required field is missing",
            ))
        }
    };
    let delay = duration(proto.delay.as_ref(), &format!("{typed_path}.delay"))?.unwrap_or_default();
    Ok(model::ConnectionLimit {
        stat_prefix: stat_prefix.to_string(),
        max_connections,
        delay,
    })
}

fn network_filter(
    filter: &listener_pb::Filter,
    path: &str,
    ctx: &Context<'_>,
) -> Result<model::NetworkFilter> {
    let any = filter_typed_config(filter, path)?;
    let typed_path = format!("{path}.typed_config");
    match any_type(any) {
        HCM_TYPE => Ok(model::NetworkFilter::Http(Arc::new(http_connection_manager(
            any,
            &typed_path,
            ctx,
        )?))),
        TCP_PROXY_TYPE => {
            let proto = decode_any(any, TCP_PROXY_TYPE, &typed_path)?;
            Ok(model::NetworkFilter::TcpProxy(Arc::new(tcp_proxy(&proto, &typed_path)?)))
        }
        other => Err(ConfigError::at(
            format!("{typed_path}.@type"),
            format!("network filter type '{other}' is not supported by Baton yet (supported: http_connection_manager, tcp_proxy)"),
        )),
    }
}

/// An HCM's config, its inline routes decoded one at a time when its bytes split (see
/// [`hcm_routes`]); decoded whole, as before, when they do not, and whenever the split
/// way fails with a route that does not decode (the whole decode names the error).
pub(super) fn http_connection_manager(
    any: &prost_types::Any,
    typed_path: &str,
    ctx: &Context<'_>,
) -> Result<model::HttpConnectionManager> {
    use prost::Message;
    if let Some((stripped, routes)) = hcm_routes::split(&any.value) {
        if let Ok(proto) = hcm_pb::HttpConnectionManager::decode(stripped.as_slice()) {
            drop(stripped);
            match hcm::translate(&proto, typed_path, ctx, Some(&routes)) {
                Ok(translated) => return Ok(translated),
                Err(err) if routes.all_decode() => return Err(err),
                Err(_) => {}
            }
        }
    }
    let proto = decode_any(any, HCM_TYPE, typed_path)?;
    hcm::translate(&proto, typed_path, ctx, None)
}

fn filter_chain_match(
    m: &listener_pb::FilterChainMatch,
    path: &str,
) -> Result<model::FilterChainMatch> {
    if !m.direct_source_prefix_ranges.is_empty() {
        return Err(ConfigError::unsupported(format!(
            "{path}.direct_source_prefix_ranges"
        )));
    }
    if m.source_type != 0 {
        return Err(ConfigError::unsupported(format!("{path}.source_type")));
    }
    if !m.address_suffix.is_empty() || m.suffix_len.is_some() {
        return Err(ConfigError::unsupported(format!("{path}.address_suffix")));
    }
    let destination_port = m
        .destination_port
        .map(|p| match u16::try_from(p) {
            Ok(port) if port >= 1 => Ok(port),
            _ => Err(ConfigError::at(
                format!("{path}.destination_port"),
                format!("port {p} is out of range (1-65535)"),
            )),
        })
        .transpose()?;
    let ranges = |list: &[baton_proto::pb::envoy::config::core::v3::CidrRange], field: &str| {
        list.iter()
            .enumerate()
            .map(|(i, r)| cidr(r, &format!("{path}.{field}[{i}]")))
            .collect::<Result<Vec<_>>>()
    };
    let source_ports = m
        .source_ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            u16::try_from(*p).ok().filter(|p| *p >= 1).ok_or_else(|| {
                ConfigError::at(
                    format!("{path}.source_ports[{i}]"),
                    format!("port {p} is out of range (1-65535)"),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let transport_protocol =
        (!m.transport_protocol.is_empty()).then(|| m.transport_protocol.clone());
    if let Some(tp) = &transport_protocol {
        if tp != "raw_buffer" && tp != "tls" {
            return Err(ConfigError::at(
                format!("{path}.transport_protocol"),
                format!("unknown transport protocol '{tp}' (raw_buffer or tls)"),
            ));
        }
    }
    Ok(model::FilterChainMatch {
        destination_port,
        prefix_ranges: ranges(&m.prefix_ranges, "prefix_ranges")?,
        server_names: m
            .server_names
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect(),
        transport_protocol,
        application_protocols: m.application_protocols.clone(),
        source_prefix_ranges: ranges(&m.source_prefix_ranges, "source_prefix_ranges")?,
        source_ports,
    })
}

fn tcp_proxy(p: &tcp_pb::TcpProxy, path: &str) -> Result<model::TcpProxy> {
    use tcp_pb::tcp_proxy::ClusterSpecifier;
    let stat_prefix = required(&p.stat_prefix, &format!("{path}.stat_prefix"))?.to_string();
    let cluster = match &p.cluster_specifier {
        Some(ClusterSpecifier::Cluster(name)) => model::TcpClusterSpecifier::Name(
            required(name, &format!("{path}.cluster"))?.to_string(),
        ),
        Some(ClusterSpecifier::WeightedClusters(weighted)) => {
            let wpath = format!("{path}.weighted_clusters.clusters");
            if weighted.clusters.is_empty() {
                return Err(ConfigError::at(wpath, "at least one cluster is required"));
            }
            let mut clusters = Vec::with_capacity(weighted.clusters.len());
            let mut total = 0u32;
            for (i, c) in weighted.clusters.iter().enumerate() {
                let name = required(&c.name, &format!("{wpath}[{i}].name"))?.to_string();
                if c.weight == 0 {
                    return Err(ConfigError::at(
                        format!("{wpath}[{i}].weight"),
                        "must be at least 1",
                    ));
                }
                if c.metadata_match.is_some() {
                    return Err(ConfigError::unsupported(format!(
                        "{wpath}[{i}].metadata_match"
                    )));
                }
                total = total.checked_add(c.weight).ok_or_else(|| {
                    ConfigError::at(format!("{wpath}[{i}].weight"), "sum of weights overflows")
                })?;
                clusters.push((name, c.weight));
            }
            model::TcpClusterSpecifier::Weighted(clusters, total)
        }
        None => {
            return Err(ConfigError::at(
                format!("{path}.cluster"),
                "one of cluster, weighted_clusters is required",
            ))
        }
    };
    let max_connect_attempts = p.max_connect_attempts.unwrap_or(1);
    if max_connect_attempts < 1 {
        return Err(ConfigError::at(
            format!("{path}.max_connect_attempts"),
            "must be at least 1",
        ));
    }
    Ok(model::TcpProxy {
        stat_prefix,
        cluster,
        idle_timeout: timeout(
            p.idle_timeout.as_ref(),
            Some(Duration::from_secs(3600)),
            &format!("{path}.idle_timeout"),
        )?,
        max_connect_attempts,
        max_downstream_connection_duration: timeout(
            p.max_downstream_connection_duration.as_ref(),
            None,
            &format!("{path}.max_downstream_connection_duration"),
        )?,
        access_logs: access_log::list(&p.access_log, &format!("{path}.access_log"))?,
    })
}
