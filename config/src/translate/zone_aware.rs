//! Zone-aware routing config: the bootstrap's `cluster_manager.local_cluster_name`, the
//! node's locality, and each cluster's locality balancing (`common_lb_config`'s
//! `zone_aware_lb_config` / `locality_weighted_lb_config`, or the typed policy's
//! `locality_lb_config`), with Envoy's defaults.

use baton_proto::pb::envoy::config::cluster::v3 as cluster_pb;
use baton_proto::pb::envoy::config::core::v3 as core_pb;
use baton_proto::pb::envoy::extensions::load_balancing_policies::common::v3 as common_pb;
use baton_proto::pb::envoy::extensions::load_balancing_policies::least_request::v3 as least_request_pb;
use baton_proto::pb::envoy::extensions::load_balancing_policies::random::v3 as random_pb;
use baton_proto::pb::envoy::extensions::load_balancing_policies::round_robin::v3 as round_robin_pb;

use super::{any_type, decode_any};
use crate::error::{ConfigError, Result};
use crate::model;

const ROUND_ROBIN: &str = "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin";
const LEAST_REQUEST: &str =
    "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest";
const RANDOM: &str = "envoy.extensions.load_balancing_policies.random.v3.Random";

/// A `Locality` of the config.
pub(crate) fn locality(l: &core_pb::Locality) -> model::Locality {
    model::Locality {
        region: l.region.clone(),
        zone: l.zone.clone(),
        sub_zone: l.sub_zone.clone(),
    }
}

/// The cluster's locality balancing: its typed policy's `locality_lb_config` when it has a
/// typed policy (Envoy then ignores `common_lb_config`'s), else `common_lb_config`'s.
/// Called after [`super::lb_policy::translate`] accepted the policy.
pub(crate) fn cluster_locality_lb(
    c: &cluster_pb::Cluster,
    path: &str,
) -> Result<model::LocalityLb> {
    if let Some(policy) = &c.load_balancing_policy {
        for (i, entry) in policy.policies.iter().enumerate() {
            let Some(any) = entry
                .typed_extension_config
                .as_ref()
                .and_then(|e| e.typed_config.as_ref())
            else {
                continue;
            };
            let cfg_path = format!(
                "{path}.load_balancing_policy.policies[{i}].typed_extension_config.typed_config"
            );
            let locality_lb = match any_type(any) {
                ROUND_ROBIN => {
                    decode_any::<round_robin_pb::RoundRobin>(any, ROUND_ROBIN, &cfg_path)?
                        .locality_lb_config
                }
                LEAST_REQUEST => {
                    decode_any::<least_request_pb::LeastRequest>(any, LEAST_REQUEST, &cfg_path)?
                        .locality_lb_config
                }
                RANDOM => {
                    decode_any::<random_pb::Random>(any, RANDOM, &cfg_path)?.locality_lb_config
                }
                _ => continue,
            };
            return typed(
                locality_lb.as_ref(),
                &format!("{cfg_path}.locality_lb_config"),
            );
        }
        return Ok(model::LocalityLb::default());
    }
    match &c.common_lb_config {
        Some(config) => common(Some(config), &format!("{path}.common_lb_config")),
        None => Ok(model::LocalityLb::default()),
    }
}

/// `common_lb_config.healthy_panic_threshold` as a whole percentage, rounded as Envoy
/// rounds it (default 50; also with a typed `load_balancing_policy`, as in Envoy).
pub(crate) fn healthy_panic_threshold(c: &cluster_pb::Cluster, path: &str) -> Result<u32> {
    let value = c
        .common_lb_config
        .as_ref()
        .and_then(|l| l.healthy_panic_threshold.as_ref());
    match value {
        None => Ok(50),
        Some(_) => percent_field(
            value,
            &format!("{path}.common_lb_config.healthy_panic_threshold"),
        ),
    }
}

fn typed(config: Option<&common_pb::LocalityLbConfig>, path: &str) -> Result<model::LocalityLb> {
    use common_pb::locality_lb_config::zone_aware_lb_config::LocalityBasis;
    use common_pb::locality_lb_config::LocalityConfigSpecifier;
    match config.and_then(|c| c.locality_config_specifier.as_ref()) {
        None => Ok(model::LocalityLb::default()),
        Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(_)) => {
            Ok(model::LocalityLb::LocalityWeighted)
        }
        Some(LocalityConfigSpecifier::ZoneAwareLbConfig(z)) => {
            let path = format!("{path}.zone_aware_lb_config");
            let basis_by_weight = match LocalityBasis::try_from(z.locality_basis) {
                Ok(LocalityBasis::HealthyHostsNum) => false,
                Ok(LocalityBasis::HealthyHostsWeight) => true,
                Err(_) => {
                    return Err(ConfigError::at(
                        format!("{path}.locality_basis"),
                        "unknown enum value",
                    ))
                }
            };
            Ok(model::LocalityLb::ZoneAware(model::ZoneAwareLbConfig {
                routing_enabled_percent: percent(z.routing_enabled.as_ref(), &path)?,
                min_cluster_size: z.min_cluster_size.unwrap_or(6),
                fail_traffic_on_panic: z.fail_traffic_on_panic,
                force_local_zone_min_size: force_local_zone_min_size(z),
                basis_by_weight,
            }))
        }
    }
}

/// How many healthy upstream hosts in the node's zone force all traffic there:
/// `force_local_zone.min_size` (default 1), which supersedes the deprecated
/// `force_locality_direct_routing` (a minimum of 1), as in Envoy 1.40.
fn force_local_zone_min_size(z: &common_pb::locality_lb_config::ZoneAwareLbConfig) -> Option<u32> {
    match &z.force_local_zone {
        Some(force) => Some(force.min_size.unwrap_or(1)),
        None => z.force_locality_direct_routing.then_some(1),
    }
}

fn common(
    config: Option<&cluster_pb::cluster::CommonLbConfig>,
    path: &str,
) -> Result<model::LocalityLb> {
    use cluster_pb::cluster::common_lb_config::LocalityConfigSpecifier;
    match config.and_then(|c| c.locality_config_specifier.as_ref()) {
        None => Ok(model::LocalityLb::default()),
        Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(_)) => {
            Ok(model::LocalityLb::LocalityWeighted)
        }
        Some(LocalityConfigSpecifier::ZoneAwareLbConfig(z)) => {
            let path = format!("{path}.zone_aware_lb_config");
            Ok(model::LocalityLb::ZoneAware(model::ZoneAwareLbConfig {
                routing_enabled_percent: percent(z.routing_enabled.as_ref(), &path)?,
                min_cluster_size: z.min_cluster_size.unwrap_or(6),
                fail_traffic_on_panic: z.fail_traffic_on_panic,
                ..model::ZoneAwareLbConfig::default()
            }))
        }
    }
}

/// `routing_enabled` as a whole percentage, rounded as Envoy rounds it (default 100).
fn percent(value: Option<&baton_proto::pb::envoy::r#type::v3::Percent>, path: &str) -> Result<u32> {
    percent_field(value, &format!("{path}.routing_enabled"))
}

/// A `Percent` field at `path` as a whole percentage (default 100).
fn percent_field(
    value: Option<&baton_proto::pb::envoy::r#type::v3::Percent>,
    path: &str,
) -> Result<u32> {
    super::scaled_percent(value, path, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_rounds_and_defaults() {
        let p = |v: f64| baton_proto::pb::envoy::r#type::v3::Percent { value: v };
        assert_eq!(percent(None, "x").ok(), Some(100));
        assert_eq!(percent(Some(&p(49.5)), "x").ok(), Some(50));
        assert_eq!(percent(Some(&p(0.0)), "x").ok(), Some(0));
        assert!(percent(Some(&p(100.5)), "x").is_err());
        assert!(percent(Some(&p(-1.0)), "x").is_err());
    }

    #[test]
    fn no_locality_config_is_default_zone_aware() {
        assert_eq!(
            common(None, "c").ok(),
            Some(model::LocalityLb::ZoneAware(
                model::ZoneAwareLbConfig::default()
            ))
        );
        assert_eq!(typed(None, "c").ok(), Some(model::LocalityLb::default()));
    }

    #[test]
    fn force_local_zone_supersedes_force_locality_direct_routing() {
        use common_pb::locality_lb_config::zone_aware_lb_config::ForceLocalZone;
        let mut z = common_pb::locality_lb_config::ZoneAwareLbConfig::default();
        assert_eq!(force_local_zone_min_size(&z), None);
        z.force_locality_direct_routing = true;
        assert_eq!(force_local_zone_min_size(&z), Some(1));
        z.force_local_zone = Some(ForceLocalZone { min_size: Some(3) });
        assert_eq!(force_local_zone_min_size(&z), Some(3));
        z.force_local_zone = Some(ForceLocalZone { min_size: None });
        assert_eq!(force_local_zone_min_size(&z), Some(1));
    }
}
