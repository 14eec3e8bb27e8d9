//! Endpoints: a cluster's inline `load_assignment` and the standalone
//! `ClusterLoadAssignment` an EDS response carries, translated by the same code.

use std::net::{IpAddr, SocketAddr};

use baton_proto::pb::envoy::config::core::v3 as core_pb;
use baton_proto::pb::envoy::config::endpoint::v3 as endpoint_pb;

use super::{port, required, socket_address};
use crate::error::{ConfigError, Result};
use crate::model;

/// A standalone `ClusterLoadAssignment` (EDS): endpoints must be IP addresses, as in
/// Envoy, which resolves nothing for EDS clusters.
pub(crate) fn cluster_load_assignment(
    cla: &endpoint_pb::ClusterLoadAssignment,
    path: &str,
) -> Result<model::ClusterLoadAssignment> {
    let cluster_name = required(&cla.cluster_name, &format!("{path}.cluster_name"))?.to_string();
    Ok(model::ClusterLoadAssignment {
        cluster_name,
        load_assignment: load_assignment(cla, model::DiscoveryType::Eds, path)?,
    })
}

/// The localities of an assignment; `discovery` decides whether endpoint addresses may
/// be host names (DNS clusters) or must be IPs (STATIC, EDS).
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
        let loc_path = format!("{}[{i}]", field("endpoints"));
        if locality.lb_config.is_some() {
            return Err(ConfigError::unsupported(format!(
                "{loc_path}.leds_cluster_locality_config"
            )));
        }
        if locality.load_balancing_weight == Some(0) {
            return Err(ConfigError::at(
                format!("{loc_path}.load_balancing_weight"),
                "must be at least 1",
            ));
        }
        let mut endpoints = Vec::with_capacity(locality.lb_endpoints.len());
        for (j, lb_endpoint) in locality.lb_endpoints.iter().enumerate() {
            endpoints.push(endpoint(
                lb_endpoint,
                discovery,
                &format!("{loc_path}.lb_endpoints[{j}]"),
            )?);
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
    let ep_path = format!("{path}.endpoint");
    if ep.health_check_config.is_some() {
        return Err(ConfigError::unsupported(format!(
            "{ep_path}.health_check_config"
        )));
    }
    let addr_path = format!("{ep_path}.address");
    let sa = socket_address(ep.address.as_ref(), &addr_path)?;
    let sa_path = format!("{addr_path}.socket_address");
    let port = port(sa, &sa_path)?;
    let address = match (sa.address.parse::<IpAddr>(), discovery) {
        (Ok(ip), _) => model::EndpointAddress::Ip(SocketAddr::new(ip, port)),
        (Err(_), model::DiscoveryType::Static) => {
            return Err(ConfigError::at(
                format!("{sa_path}.address"),
                format!(
                "'{}' is not an IP address (STATIC clusters need IPs; use STRICT_DNS for names)",
                sa.address
            ),
            ))
        }
        (Err(_), model::DiscoveryType::Eds) => {
            return Err(ConfigError::at(
                format!("{sa_path}.address"),
                format!(
                    "'{}' is not an IP address (EDS endpoints must be IPs)",
                    sa.address
                ),
            ))
        }
        (Err(_), _) => model::EndpointAddress::Dns {
            host: required(&sa.address, &format!("{sa_path}.address"))?.to_string(),
            port,
        },
    };
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
    })
}
