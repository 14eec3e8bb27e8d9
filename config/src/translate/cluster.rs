//! Clusters: discovery type (with EDS's config source), load assignment, load balancing,
//! upstream protocol options and circuit breakers, with Envoy's defaults.

use std::time::Duration;

use baton_proto::pb::envoy::config::cluster::v3 as cluster_pb;
use baton_proto::pb::envoy::config::core::v3 as core_pb;
use baton_proto::pb::envoy::extensions::upstreams::http::v3 as upstream_http_pb;

use super::{
    decode_any, dns, duration, endpoint, lb_policy, required, socket_matcher, timeout,
    with_lazy_path, xds, zone_aware, Env,
};
use crate::error::{ConfigError, Result};
use crate::model;

const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Envoy's default upstream connection idle timeout (1 hour).
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// One cluster (static or from CDS). `path` is the cluster's own path ("" for a CDS
/// resource).
pub(crate) fn translate(c: &cluster_pb::Cluster, path: &str, env: &Env) -> Result<model::Cluster> {
    use cluster_pb::cluster::ClusterDiscoveryType;
    // Paths of fields that pass their checks are never formatted (`with_lazy_path`): a
    // CDS update of 10,000 clusters formatted about ten per cluster for nothing.
    let name = with_lazy_path(|| format!("{path}.name"), |p| required(&c.name, p))?.to_string();
    let default_resolver = &env.default_resolver;
    let dns = match &c.cluster_discovery_type {
        Some(ClusterDiscoveryType::ClusterType(custom)) => {
            dns::from_cluster_type(custom, path, default_resolver)?
        }
        _ => dns::from_cluster_fields(c, discovery_type(c, path)?, path, default_resolver)?,
    };
    let discovery = dns.discovery;
    let lb_policy = lb_policy::translate(c, path)?;
    let locality_lb = zone_aware::cluster_locality_lb(c, path)?;
    let healthy_panic_threshold_percent = zone_aware::healthy_panic_threshold(c, path)?;
    let tls = match &c.transport_socket {
        Some(socket) => super::tls::upstream(socket, &format!("{path}.transport_socket"), env)?,
        None => None,
    };
    let transport_socket_matches = c
        .transport_socket_matches
        .iter()
        .enumerate()
        .map(|(i, m)| {
            transport_socket_match(m, &format!("{path}.transport_socket_matches[{i}]"), env)
        })
        .collect::<Result<Vec<_>>>()?;
    let transport_socket_matcher = c
        .transport_socket_matcher
        .as_ref()
        .map(|m| {
            let names: Vec<String> = transport_socket_matches
                .iter()
                .map(|m| m.name.clone())
                .collect();
            socket_matcher::translate(
                m,
                &names,
                &format!("{path}.transport_socket_matches"),
                &format!("{path}.transport_socket_matcher"),
            )
        })
        .transpose()?;
    let connect_timeout = with_lazy_path(
        || format!("{path}.connect_timeout"),
        |p| duration(c.connect_timeout.as_ref(), p),
    )?
    .unwrap_or(Duration::from_secs(5));
    if connect_timeout.is_zero() {
        return Err(ConfigError::at(
            format!("{path}.connect_timeout"),
            "must be greater than 0s",
        ));
    }

    // An EDS cluster's endpoints come only from EDS: Envoy ignores its load_assignment.
    let (load_assignment, eds) = match discovery {
        model::DiscoveryType::Eds => (
            model::LoadAssignment::default(),
            Some(xds::eds_cluster_config(c, &name, path, env)?),
        ),
        _ => match &c.load_assignment {
            Some(assignment) => (
                endpoint::load_assignment(
                    assignment,
                    discovery,
                    &format!("{path}.load_assignment"),
                )?,
                None,
            ),
            None => (model::LoadAssignment::default(), None),
        },
    };
    let upstream = protocol(c, path)?;
    let circuit_breakers = circuit_breakers(c.circuit_breakers.as_ref());
    let stat_name = model::sanitize_stat_name(if c.alt_stat_name.is_empty() {
        &name
    } else {
        &c.alt_stat_name
    });
    Ok(model::Cluster {
        tls,
        transport_socket_matches,
        transport_socket_matcher,
        name,
        stat_name,
        alt_stat_name: (!c.alt_stat_name.is_empty()).then(|| c.alt_stat_name.as_str().into()),
        metadata: c
            .metadata
            .as_ref()
            .filter(|m| !m.filter_metadata.is_empty())
            .map(|m| std::sync::Arc::new(m.filter_metadata.clone())),
        discovery,
        connect_timeout,
        lb_policy,
        locality_lb,
        healthy_panic_threshold_percent,
        dns_refresh_rate: dns.refresh_rate,
        respect_dns_ttl: dns.respect_ttl,
        dns_lookup_family: dns.lookup_family,
        dns: dns.settings,
        load_assignment,
        eds,
        protocol: upstream.protocol,
        http2: upstream.http2,
        idle_timeout: upstream.idle_timeout,
        max_requests_per_connection: upstream
            .max_requests_per_connection
            .or(c.max_requests_per_connection),
        max_response_headers_count: upstream.max_headers_count,
        max_response_headers_kb: upstream.max_response_headers_kb,
        per_connection_buffer_limit_bytes: c
            .per_connection_buffer_limit_bytes
            .unwrap_or(1024 * 1024),
        circuit_breakers,
        auto_sni: upstream.auto_sni,
        upstream_connection_options: connection_options(c),
    })
}

/// `upstream_connection_options` (the allowlist refuses `happy_eyeballs_config`).
fn connection_options(c: &cluster_pb::Cluster) -> model::UpstreamConnectionOptions {
    let Some(options) = &c.upstream_connection_options else {
        return model::UpstreamConnectionOptions::default();
    };
    model::UpstreamConnectionOptions {
        tcp_keepalive: options.tcp_keepalive.as_ref().map(|k| model::TcpKeepalive {
            probes: k.keepalive_probes,
            time_secs: k.keepalive_time,
            interval_secs: k.keepalive_interval,
        }),
        set_local_interface_name: options.set_local_interface_name_on_upstream_connections,
    }
}

fn transport_socket_match(
    m: &cluster_pb::cluster::TransportSocketMatch,
    path: &str,
    env: &Env,
) -> Result<model::TransportSocketMatch> {
    let name = required(&m.name, &format!("{path}.name"))?.to_string();
    let tls = match &m.transport_socket {
        Some(socket) => super::tls::upstream(socket, &format!("{path}.transport_socket"), env)?,
        None => None,
    };
    Ok(model::TransportSocketMatch {
        name,
        criteria: m.r#match.clone().unwrap_or_default(),
        tls,
    })
}

fn discovery_type(c: &cluster_pb::Cluster, path: &str) -> Result<model::DiscoveryType> {
    use cluster_pb::cluster::{ClusterDiscoveryType, DiscoveryType};
    let raw = match &c.cluster_discovery_type {
        None => DiscoveryType::Static as i32,
        Some(ClusterDiscoveryType::Type(t)) => *t,
        // Translated by the caller (only the DNS cluster extension is supported).
        Some(ClusterDiscoveryType::ClusterType(_)) => {
            return Err(ConfigError::unsupported(format!("{path}.cluster_type")))
        }
    };
    match DiscoveryType::try_from(raw) {
        Ok(DiscoveryType::Static) => Ok(model::DiscoveryType::Static),
        Ok(DiscoveryType::StrictDns) => Ok(model::DiscoveryType::StrictDns),
        Ok(DiscoveryType::LogicalDns) => Ok(model::DiscoveryType::LogicalDns),
        Ok(DiscoveryType::Eds) => Ok(model::DiscoveryType::Eds),
        Ok(other) => Err(ConfigError::at(
            format!("{path}.type"),
            format!(
                "{} clusters are not supported by Baton yet",
                other.as_str_name()
            ),
        )),
        Err(_) => Err(ConfigError::at(
            format!("{path}.type"),
            "unknown enum value",
        )),
    }
}

/// The upstream protocol settings, from whichever of Envoy's spellings is used.
struct Upstream {
    protocol: model::UpstreamProtocol,
    http2: model::Http2Options,
    idle_timeout: Option<Duration>,
    max_requests_per_connection: Option<u32>,
    max_headers_count: u32,
    max_response_headers_kb: Option<u32>,
    auto_sni: model::UpstreamAutoSni,
}

#[allow(deprecated)]
fn protocol(c: &cluster_pb::Cluster, path: &str) -> Result<Upstream> {
    use cluster_pb::cluster::ClusterProtocolSelection;
    use upstream_http_pb::http_protocol_options::explicit_http_config::ProtocolConfig;
    use upstream_http_pb::http_protocol_options::UpstreamProtocolOptions;

    let mut protocol = model::UpstreamProtocol::Http1;
    let mut http2_options = None;
    let mut common = c.common_http_protocol_options;
    // Where `common` came from: the cluster's own field, or the `HttpProtocolOptions` at
    // this key path (formatted into a field path only for an error).
    let mut common_from: Option<String> = None;
    let mut auto_sni = match &c.upstream_http_protocol_options {
        // The deprecated cluster field; the `HttpProtocolOptions` one wins.
        Some(upstream) => {
            upstream_auto_sni(upstream, &format!("{path}.upstream_http_protocol_options"))?
        }
        None => model::UpstreamAutoSni::default(),
    };
    if let Some(h2) = &c.http2_protocol_options {
        protocol = model::UpstreamProtocol::Http2;
        http2_options = Some((h2.clone(), format!("{path}.http2_protocol_options")));
    }
    if c.protocol_selection == ClusterProtocolSelection::UseDownstreamProtocol as i32 {
        protocol = model::UpstreamProtocol::UseDownstream;
    }
    for (key, any) in &c.typed_extension_protocol_options {
        let key_path = format!("{path}.typed_extension_protocol_options[\"{key}\"]");
        if key != HTTP_PROTOCOL_OPTIONS {
            return Err(ConfigError::at(
                key_path,
                format!(
                    "unsupported protocol options '{key}' (supported: {HTTP_PROTOCOL_OPTIONS})"
                ),
            ));
        }
        let options: upstream_http_pb::HttpProtocolOptions =
            decode_any(any, HTTP_PROTOCOL_OPTIONS, &key_path)?;
        if options.common_http_protocol_options.is_some() {
            common = options.common_http_protocol_options;
            common_from = Some(key_path.clone());
        }
        if let Some(upstream) = &options.upstream_http_protocol_options {
            auto_sni = upstream_auto_sni(
                upstream,
                &format!("{key_path}.upstream_http_protocol_options"),
            )?;
        }
        match &options.upstream_protocol_options {
            Some(UpstreamProtocolOptions::ExplicitHttpConfig(explicit)) => match &explicit.protocol_config {
                Some(ProtocolConfig::Http2ProtocolOptions(h2)) => {
                    protocol = model::UpstreamProtocol::Http2;
                    http2_options = Some((h2.clone(), format!("{key_path}.explicit_http_config.http2_protocol_options")));
                }
                Some(ProtocolConfig::HttpProtocolOptions(_)) => protocol = model::UpstreamProtocol::Http1,
                Some(ProtocolConfig::Http3ProtocolOptions(_)) => {
                    return Err(ConfigError::unsupported(format!("{key_path}.explicit_http_config.http3_protocol_options")))
                }
                None => {
                    return Err(ConfigError::at(
                        format!("{key_path}.explicit_http_config"),
                        "one of http_protocol_options, http2_protocol_options is required",
                    ))
                }
            },
            Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(downstream)) => {
                protocol = model::UpstreamProtocol::UseDownstream;
                if let Some(h2) = &downstream.http2_protocol_options {
                    http2_options = Some((h2.clone(), format!("{key_path}.use_downstream_protocol_config.http2_protocol_options")));
                }
                if downstream.http3_protocol_options.is_some() {
                    return Err(ConfigError::unsupported(format!(
                        "{key_path}.use_downstream_protocol_config.http3_protocol_options"
                    )));
                }
            }
            Some(UpstreamProtocolOptions::AutoConfig(_)) => {
                return Err(ConfigError::unsupported(format!("{key_path}.auto_config")))
            }
            None => {
                return Err(ConfigError::at(
                    key_path,
                    "one of explicit_http_config, use_downstream_protocol_config, auto_config is required",
                ))
            }
        }
    }
    let http2 = match &http2_options {
        Some((h2, h2_path)) => super::hcm::http2_options(h2, h2_path)?,
        None => model::Http2Options::default(),
    };
    let common_path = || {
        format!(
            "{}.common_http_protocol_options",
            common_from.as_deref().unwrap_or(path)
        )
    };
    let mut max_headers_count = 100;
    let mut max_response_headers_kb = None;
    if let Some(common) = &common {
        if let Some(count) = common.max_headers_count {
            if count < 1 {
                return Err(ConfigError::at(
                    format!("{}.max_headers_count", common_path()),
                    "must be at least 1",
                ));
            }
            max_headers_count = count;
        }
        if let Some(kb) = common.max_response_headers_kb {
            if !(1..=8192).contains(&kb) {
                return Err(ConfigError::at(
                    format!("{}.max_response_headers_kb", common_path()),
                    format!("{kb} is out of range (1-8192)"),
                ));
            }
            max_response_headers_kb = Some(kb);
        }
    }
    let (idle_timeout, max_requests_per_connection) = match &common {
        Some(common) => {
            // Upstream connection and stream duration limits are not implemented (the
            // message is shared with the connection manager, which implements both).
            if common.max_connection_duration.is_some() {
                return Err(ConfigError::unsupported(format!(
                    "{}.max_connection_duration",
                    common_path()
                )));
            }
            if common.max_stream_duration.is_some() {
                return Err(ConfigError::unsupported(format!(
                    "{}.max_stream_duration",
                    common_path()
                )));
            }
            (
                with_lazy_path(
                    || format!("{}.idle_timeout", common_path()),
                    |p| timeout(common.idle_timeout.as_ref(), Some(DEFAULT_IDLE_TIMEOUT), p),
                )?,
                common.max_requests_per_connection,
            )
        }
        None => (Some(DEFAULT_IDLE_TIMEOUT), None),
    };
    Ok(Upstream {
        protocol,
        http2,
        idle_timeout,
        max_requests_per_connection,
        max_headers_count,
        max_response_headers_kb,
        auto_sni,
    })
}

fn upstream_auto_sni(
    options: &core_pb::UpstreamHttpProtocolOptions,
    path: &str,
) -> Result<model::UpstreamAutoSni> {
    let override_header = match options.override_auto_sni_header.as_str() {
        "" => None,
        name => Some(http::HeaderName::try_from(name).map_err(|_| {
            ConfigError::at(
                format!("{path}.override_auto_sni_header"),
                format!("'{name}' is not a valid HTTP header name"),
            )
        })?),
    };
    Ok(model::UpstreamAutoSni {
        sni: options.auto_sni,
        san_validation: options.auto_san_validation,
        override_header,
    })
}

fn circuit_breakers(cb: Option<&cluster_pb::CircuitBreakers>) -> model::CircuitBreakers {
    let mut out = model::CircuitBreakers::default();
    let Some(cb) = cb else { return out };
    // Only DEFAULT-priority thresholds matter: Baton routes everything at default priority.
    if let Some(t) = cb
        .thresholds
        .iter()
        .find(|t| t.priority == core_pb::RoutingPriority::Default as i32)
    {
        out.max_connections = t.max_connections.unwrap_or(out.max_connections);
        out.max_pending_requests = t.max_pending_requests.unwrap_or(out.max_pending_requests);
        out.max_requests = t.max_requests.unwrap_or(out.max_requests);
        out.max_retries = t.max_retries.unwrap_or(out.max_retries);
    }
    out
}
