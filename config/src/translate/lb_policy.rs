//! A cluster's load balancing policy: the typed `load_balancing_policy` extensions control
//! planes send (Envoy Gateway sets one on almost every cluster), else the legacy
//! `lb_policy` enum with `least_request_lb_config`.

use baton_proto::pb::envoy::config::cluster::v3 as cluster_pb;
use baton_proto::pb::envoy::extensions::load_balancing_policies::least_request::v3 as least_request_pb;

use super::{any_type, decode_any};
use crate::error::{ConfigError, Result};
use crate::model;
use crate::supported;

const ROUND_ROBIN: &str = "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin";
const LEAST_REQUEST: &str =
    "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest";
const RANDOM: &str = "envoy.extensions.load_balancing_policies.random.v3.Random";
/// Every policy Envoy ships lives under this package.
const ENVOY_POLICIES: &str = "envoy.extensions.load_balancing_policies.";

/// Envoy's default `choice_count`.
const DEFAULT_CHOICE_COUNT: u32 = 2;

pub(crate) fn translate(c: &cluster_pb::Cluster, path: &str) -> Result<model::LbPolicy> {
    match &c.load_balancing_policy {
        // Envoy then ignores `lb_policy` and `lb_config` (Envoy Gateway sets both).
        Some(policy) => typed(policy, &format!("{path}.load_balancing_policy"), &c.name),
        None => legacy(c, path),
    }
}

/// Envoy takes the first policy whose type it knows. Baton takes the first it
/// implements, but refuses a policy Envoy would have taken that Baton lacks (ring_hash,
/// maglev, ...) rather than silently balance differently; types unknown to both are
/// skipped as Envoy skips them.
fn typed(
    policy: &cluster_pb::LoadBalancingPolicy,
    path: &str,
    cluster_name: &str,
) -> Result<model::LbPolicy> {
    for (i, entry) in policy.policies.iter().enumerate() {
        let ext_path = format!("{path}.policies[{i}].typed_extension_config");
        let Some(ext) = &entry.typed_extension_config else {
            return Err(ConfigError::at(ext_path, "required field is missing"));
        };
        let cfg_path = format!("{ext_path}.typed_config");
        let Some(any) = &ext.typed_config else {
            return Err(ConfigError::at(cfg_path, "required field is missing"));
        };
        let type_name = any_type(any);
        let known = matches!(type_name, ROUND_ROBIN | LEAST_REQUEST | RANDOM);
        if known {
            // The chosen policy gets the supported-field walk the rest of the config
            // got (the walk leaves policy lists to this function).
            supported::check_any(any, &cfg_path)?;
        }
        match type_name {
            ROUND_ROBIN => return Ok(model::LbPolicy::RoundRobin),
            RANDOM => return Ok(model::LbPolicy::Random),
            LEAST_REQUEST => {
                let config: least_request_pb::LeastRequest =
                    decode_any(any, LEAST_REQUEST, &cfg_path)?;
                let choice_count = config.choice_count.unwrap_or(DEFAULT_CHOICE_COUNT);
                if choice_count < 2 {
                    return Err(ConfigError::at(
                        format!("{cfg_path}.choice_count"),
                        "must be at least 2",
                    ));
                }
                return Ok(model::LbPolicy::LeastRequest { choice_count });
            }
            other if other.starts_with(ENVOY_POLICIES) => {
                return Err(ConfigError::at(
                    ext_path,
                    format!(
                        "load balancing policy '{other}' is not supported by Baton yet (supported: round_robin, least_request, random)"
                    ),
                ))
            }
            _ => continue,
        }
    }
    let names: Vec<&str> = policy
        .policies
        .iter()
        .filter_map(|p| p.typed_extension_config.as_ref())
        .map(|ext| ext.name.as_str())
        .collect();
    Err(ConfigError::at(
        path,
        format!(
            "no supported load balancing policy for cluster '{cluster_name}' among [{}] (supported: round_robin, least_request, random)",
            names.join(", ")
        ),
    ))
}

fn legacy(c: &cluster_pb::Cluster, path: &str) -> Result<model::LbPolicy> {
    use cluster_pb::cluster::{LbConfig, LbPolicy};
    let choice_count = match &c.lb_config {
        None => DEFAULT_CHOICE_COUNT,
        Some(LbConfig::LeastRequestLbConfig(cfg)) => {
            let count = cfg.choice_count.unwrap_or(DEFAULT_CHOICE_COUNT);
            if count < 2 {
                return Err(ConfigError::at(
                    format!("{path}.least_request_lb_config.choice_count"),
                    "must be at least 2",
                ));
            }
            count
        }
        Some(_) => return Err(ConfigError::unsupported(format!("{path}.lb_config"))),
    };
    match LbPolicy::try_from(c.lb_policy) {
        Ok(LbPolicy::RoundRobin) => Ok(model::LbPolicy::RoundRobin),
        Ok(LbPolicy::LeastRequest) => Ok(model::LbPolicy::LeastRequest { choice_count }),
        Ok(LbPolicy::Random) => Ok(model::LbPolicy::Random),
        Ok(LbPolicy::LoadBalancingPolicyConfig) => Err(ConfigError::at(
            format!("{path}.load_balancing_policy"),
            "required with lb_policy LOAD_BALANCING_POLICY_CONFIG",
        )),
        Ok(other) => Err(ConfigError::at(
            format!("{path}.lb_policy"),
            format!("{} is not supported by Baton yet", other.as_str_name()),
        )),
        Err(_) => Err(ConfigError::at(
            format!("{path}.lb_policy"),
            "unknown enum value",
        )),
    }
}
