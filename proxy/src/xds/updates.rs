//! A discovery response as an [`Update`]: resources named (SotW: read from each
//! resource; delta: as sent), unwrapped from `envoy.service.discovery.v3.Resource`,
//! checked for a type URL matching the response's and for duplicate names.

use std::sync::Arc;

use baton_proto::pb::envoy::service::discovery::v3 as discovery;

use super::{Resource, Update};

/// A SotW response as an update: every resource named, all of the response's type, no
/// duplicates, except in CDS and LDS responses, where (as Envoy 1.40) the handler keeps
/// the first of a name, applies the rest and NACKs the duplicate.
pub(super) fn sotw_update(r: discovery::DiscoveryResponse) -> Result<Update, String> {
    let duplicates_allowed =
        r.type_url == super::CLUSTER_TYPE || r.type_url == super::LISTENER_TYPE;
    let mut resources = Vec::with_capacity(r.resources.len());
    let mut seen = std::collections::HashSet::with_capacity(r.resources.len());
    for any in r.resources {
        let any = unwrap_resource(any)?;
        if any.type_url != r.type_url {
            return Err(format!(
                "{} does not match the message-wide type URL {} in DiscoveryResponse",
                any.type_url, r.type_url
            ));
        }
        let name = baton_config::resource::resource_name(&any).map_err(|e| e.to_string())?;
        if !seen.insert(name.clone()) && !duplicates_allowed {
            return Err(format!("duplicate resource name '{name}' in one response"));
        }
        resources.push(Resource {
            name,
            version: r.version_info.clone(),
            any: Arc::new(any),
        });
    }
    Ok(Update {
        version_info: r.version_info,
        resources,
        removed: Vec::new(),
        state_of_the_world: true,
    })
}

/// A resource possibly wrapped in `envoy.service.discovery.v3.Resource` (what some
/// control planes send in SotW too).
pub(super) fn unwrap_resource(any: prost_types::Any) -> Result<prost_types::Any, String> {
    const WRAPPER: &str = "type.googleapis.com/envoy.service.discovery.v3.Resource";
    if any.type_url != WRAPPER {
        return Ok(any);
    }
    use prost::Message;
    let wrapped = discovery::Resource::decode(any.value.as_slice())
        .map_err(|e| format!("cannot decode a wrapped resource: {e}"))?;
    wrapped
        .resource
        .ok_or_else(|| format!("wrapped resource '{}' has no resource", wrapped.name))
}

pub(super) fn delta_update(r: discovery::DeltaDiscoveryResponse) -> Result<Update, String> {
    let mut resources = Vec::with_capacity(r.resources.len());
    let mut seen = std::collections::HashSet::with_capacity(r.resources.len());
    for res in r.resources {
        let Some(any) = res.resource else {
            // A heartbeat or name-only entry: nothing to apply.
            continue;
        };
        if any.type_url != r.type_url {
            return Err(format!(
                "type URL {} embedded in an individual Any does not match the message-wide type URL {} in DeltaDiscoveryResponse",
                any.type_url, r.type_url
            ));
        }
        let name = if res.name.is_empty() {
            baton_config::resource::resource_name(&any).map_err(|e| e.to_string())?
        } else {
            res.name
        };
        if !seen.insert(name.clone()) {
            // Envoy 1.40's words; a delta response naming a resource twice is rejected
            // whole.
            return Err(format!(
                "duplicate name {name} found among added/updated resources"
            ));
        }
        resources.push(Resource {
            name,
            version: res.version,
            any: Arc::new(any),
        });
    }
    Ok(Update {
        version_info: r.system_version_info,
        resources,
        removed: r.removed_resources,
        state_of_the_world: false,
    })
}
