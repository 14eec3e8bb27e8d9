//! Endpoints: a cluster's inline `load_assignment` and the standalone
//! `ClusterLoadAssignment` an EDS response carries, translated by the same code.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use baton_proto::pb::envoy::config::core::v3 as core_pb;
use baton_proto::pb::envoy::config::endpoint::v3 as endpoint_pb;

use super::{port, required, socket_address, with_lazy_path};
use crate::error::{ConfigError, Result};
use crate::model;

/// A standalone `ClusterLoadAssignment` (EDS): endpoints must be IP addresses or pipes,
/// as in Envoy, which resolves nothing for EDS clusters.
pub(crate) fn cluster_load_assignment(
    cla: &endpoint_pb::ClusterLoadAssignment,
    path: &str,
) -> Result<model::ClusterLoadAssignment> {
    let cluster_name = with_lazy_path(
        || format!("{path}.cluster_name"),
        |p| required(&cla.cluster_name, p),
    )?
    .to_string();
    Ok(model::ClusterLoadAssignment {
        cluster_name,
        load_assignment: load_assignment(cla, model::DiscoveryType::Eds, path)?,
    })
}

/// The localities of an assignment; `discovery` decides whether endpoint addresses may
/// be host names (DNS clusters) or must be IPs or pipes (STATIC, EDS).
pub(crate) fn load_assignment(
    assignment: &endpoint_pb::ClusterLoadAssignment,
    discovery: model::DiscoveryType,
    la_path: &str,
) -> Result<model::LoadAssignment> {
    let field = |name: &str| {
        if la_path.is_empty() {
            name.to_string()
        } else {
            format!("{la_path}.{name}")
        }
    };
    if !assignment.named_endpoints.is_empty() {
        return Err(ConfigError::unsupported(field("named_endpoints")));
    }
    let overprovisioning_factor = match &assignment.policy {
        Some(policy) => overprovisioning_factor(policy, &field("policy"))?,
        None => model::DEFAULT_OVERPROVISIONING_FACTOR,
    };
    let mut localities = Vec::with_capacity(assignment.endpoints.len());
    let mut endpoint_count = 0usize;
    for (i, locality) in assignment.endpoints.iter().enumerate() {
        let loc_path = || format!("{}[{i}]", field("endpoints"));
        if locality.lb_config.is_some() {
            return Err(ConfigError::unsupported(format!(
                "{}.leds_cluster_locality_config",
                loc_path()
            )));
        }
        if locality.load_balancing_weight == Some(0) {
            return Err(ConfigError::at(
                format!("{}.load_balancing_weight", loc_path()),
                "must be at least 1",
            ));
        }
        let locality_socket_match = socket_match_metadata(locality.metadata.as_ref());
        let mut endpoints = Vec::with_capacity(locality.lb_endpoints.len());
        for (j, lb_endpoint) in locality.lb_endpoints.iter().enumerate() {
            let mut ep = with_lazy_path(
                || format!("{}.lb_endpoints[{j}]", loc_path()),
                |p| endpoint(lb_endpoint, discovery, p),
            )?;
            let endpoint_socket_match = socket_match_metadata(lb_endpoint.metadata.as_ref());
            if !locality_socket_match.is_empty() || !endpoint_socket_match.is_empty() {
                ep.socket_match = Some(std::sync::Arc::new(model::SocketMatchMetadata {
                    endpoint: endpoint_socket_match,
                    locality: locality_socket_match.clone(),
                }));
            }
            endpoints.push(ep);
        }
        endpoint_count += endpoints.len();
        let locality_name = locality
            .locality
            .as_ref()
            .map(|l| {
                if l.region.is_empty() && l.zone.is_empty() && l.sub_zone.is_empty() {
                    String::new()
                } else {
                    format!("{}/{}/{}", l.region, l.zone, l.sub_zone)
                }
            })
            .unwrap_or_default();
        localities.push(model::LocalityEndpoints {
            locality: locality_name,
            priority: locality.priority,
            weight: locality.load_balancing_weight,
            endpoints,
        });
    }
    if discovery == model::DiscoveryType::LogicalDns
        && (localities.len() != 1 || endpoint_count != 1)
    {
        return Err(ConfigError::at(
            la_path,
            "LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single lb_endpoint",
        ));
    }
    Ok(model::LoadAssignment {
        localities,
        overprovisioning_factor,
    })
}

/// `policy`: only `overprovisioning_factor` is implemented.
fn overprovisioning_factor(
    policy: &endpoint_pb::cluster_load_assignment::Policy,
    path: &str,
) -> Result<u32> {
    if !policy.drop_overloads.is_empty() {
        return Err(ConfigError::unsupported(format!("{path}.drop_overloads")));
    }
    if policy.endpoint_stale_after.is_some() {
        return Err(ConfigError::unsupported(format!(
            "{path}.endpoint_stale_after"
        )));
    }
    if policy.weighted_priority_health {
        return Err(ConfigError::unsupported(format!(
            "{path}.weighted_priority_health"
        )));
    }
    match policy.overprovisioning_factor {
        None => Ok(model::DEFAULT_OVERPROVISIONING_FACTOR),
        Some(0) => Err(ConfigError::at(
            format!("{path}.overprovisioning_factor"),
            "must be greater than 0",
        )),
        Some(factor) => Ok(factor),
    }
}

fn endpoint(
    lb: &endpoint_pb::LbEndpoint,
    discovery: model::DiscoveryType,
    path: &str,
) -> Result<model::Endpoint> {
    use core_pb::HealthStatus;
    use endpoint_pb::lb_endpoint::HostIdentifier;
    let ep = match &lb.host_identifier {
        Some(HostIdentifier::Endpoint(ep)) => ep,
        Some(HostIdentifier::EndpointName(_)) => {
            return Err(ConfigError::unsupported(format!("{path}.endpoint_name")))
        }
        None => {
            return Err(ConfigError::at(
                format!("{path}.endpoint"),
                "required field is missing",
            ))
        }
    };
    if ep.health_check_config.is_some() {
        return Err(ConfigError::unsupported(format!(
            "{path}.endpoint.health_check_config"
        )));
    }
    let address = with_lazy_path(
        || format!("{path}.endpoint.address"),
        |p| endpoint_address(ep.address.as_ref(), discovery, p),
    )?;
    let weight = lb.load_balancing_weight.unwrap_or(1);
    if weight == 0 {
        return Err(ConfigError::at(
            format!("{path}.load_balancing_weight"),
            "must be at least 1",
        ));
    }
    let healthy = matches!(
        HealthStatus::try_from(lb.health_status),
        Ok(HealthStatus::Unknown) | Ok(HealthStatus::Healthy)
    );
    Ok(model::Endpoint {
        address,
        hostname: (!ep.hostname.is_empty()).then(|| ep.hostname.clone()),
        weight,
        healthy,
        socket_match: None,
    })
}

/// The `filter_metadata` of a `metadata` (a cluster's `transport_socket_matcher` may
/// read any filter's).
fn socket_match_metadata(metadata: Option<&core_pb::Metadata>) -> model::FilterMetadata {
    metadata
        .map(|m| m.filter_metadata.clone())
        .unwrap_or_default()
}

/// `endpoint.address`: a `socket_address` (an IP, or a name in DNS clusters) or a `pipe`
/// (STATIC and EDS clusters).
fn endpoint_address(
    address: Option<&core_pb::Address>,
    discovery: model::DiscoveryType,
    addr_path: &str,
) -> Result<model::EndpointAddress> {
    use core_pb::address::Address as Kind;
    if let Some(Kind::Pipe(pipe)) = address.and_then(|a| a.address.as_ref()) {
        let pipe_path = format!("{addr_path}.pipe");
        return match discovery {
            model::DiscoveryType::Static | model::DiscoveryType::Eds => {
                Ok(model::EndpointAddress::Pipe(pipe_address(pipe, &pipe_path)?))
            }
            // Envoy resolves the (empty) socket_address of such an endpoint and the
            // cluster never gets a host; an error says so up front.
            model::DiscoveryType::StrictDns | model::DiscoveryType::LogicalDns => {
                Err(ConfigError::at(
                    pipe_path,
                    "pipe addresses need a STATIC or EDS cluster (DNS clusters resolve socket_address names)",
                ))
            }
        };
    }
    let sa = socket_address(address, addr_path)?;
    let sa_path = || format!("{addr_path}.socket_address");
    let port = with_lazy_path(sa_path, |p| port(sa, p))?;
    match (sa.address.parse::<IpAddr>(), discovery) {
        (Ok(ip), _) => Ok(model::EndpointAddress::Ip(SocketAddr::new(ip, port))),
        (Err(_), model::DiscoveryType::Static) => Err(ConfigError::at(
            format!("{}.address", sa_path()),
            format!(
                "'{}' is not an IP address (STATIC clusters need IPs; use STRICT_DNS for names)",
                sa.address
            ),
        )),
        (Err(_), model::DiscoveryType::Eds) => Err(ConfigError::at(
            format!("{}.address", sa_path()),
            format!(
                "'{}' is not an IP address (EDS endpoints must be IPs)",
                sa.address
            ),
        )),
        (Err(_), _) => Ok(model::EndpointAddress::Dns {
            host: required(&sa.address, &format!("{}.address", sa_path()))?.to_string(),
            port,
        }),
    }
}

/// Size of `sockaddr_un.sun_path` on Linux: a path must fit with its terminating NUL.
const SUN_PATH_LEN: usize = 108;

/// Highest `pipe.mode` (`0777`), Envoy's `lte` rule.
const MAX_PIPE_MODE: u32 = 0o777;

/// A `pipe` endpoint, checked as Envoy checks it. `mode` (file permissions of a socket
/// a listener creates) means nothing for a connect; it is validated, then dropped.
fn pipe_address(pipe: &core_pb::Pipe, path: &str) -> Result<PathBuf> {
    let socket_path = required(&pipe.path, &format!("{path}.path"))?;
    if pipe.mode > MAX_PIPE_MODE {
        // Envoy's YAML reader takes `mode: 0644` as octal; Baton's (YAML 1.2) reads 644.
        let hint = u32::from_str_radix(&pipe.mode.to_string(), 8)
            .ok()
            .filter(|octal| *octal <= MAX_PIPE_MODE)
            .map(|octal| format!("; for octal 0{} write {octal}", pipe.mode))
            .unwrap_or_default();
        return Err(ConfigError::at(
            format!("{path}.mode"),
            format!(
                "{} is out of range (at most 511, i.e. 0o777){hint}",
                pipe.mode
            ),
        ));
    }
    if socket_path.len() >= SUN_PATH_LEN {
        return Err(ConfigError::at(
            format!("{path}.path"),
            format!(
                "'{socket_path}' is {} bytes, longer than a Unix socket path can be ({} bytes at most)",
                socket_path.len(),
                SUN_PATH_LEN - 1
            ),
        ));
    }
    if socket_path.starts_with('@') {
        // Abstract sockets have no file, hence no permissions to set.
        if pipe.mode != 0 {
            return Err(ConfigError::at(
                format!("{path}.mode"),
                format!("cannot be set for the abstract socket '{socket_path}'"),
            ));
        }
    } else if socket_path.contains('\0') {
        return Err(ConfigError::at(
            format!("{path}.path"),
            "a Unix socket path cannot contain a NUL character (only abstract '@' names can)",
        ));
    }
    Ok(PathBuf::from(socket_path))
}
