//! Per-resource entry points for xDS: translate and validate one `Cluster`, `Listener`,
//! `RouteConfiguration` or `ClusterLoadAssignment` delivered as a `google.protobuf.Any`,
//! with the same checks (supported-field walk, then the bootstrap's translate functions)
//! and the same `not supported by Baton yet` errors as static config. Errors name the
//! resource and a field path relative to it: `Cluster 'backend': lb_policy: ...`.

use std::fmt;

use prost::Message;
use prost_reflect::{DynamicMessage, Value};

use baton_proto::pb::envoy::config::cluster::v3 as cluster_pb;
use baton_proto::pb::envoy::config::endpoint::v3 as endpoint_pb;
use baton_proto::pb::envoy::config::listener::v3 as listener_pb;
use baton_proto::pb::envoy::config::route::v3 as route_pb;

use crate::error::ConfigError;
use crate::load::{pool, to_json};
use crate::model;
use crate::translate::{self, Context, Env};
use crate::wire_walk;
use crate::Bootstrap;

pub use crate::model::ClusterLoadAssignment;
pub use baton_proto::pb::envoy::service::discovery::v3::DiscoveryResponse;

const DISCOVERY_RESPONSE: &str = "envoy.service.discovery.v3.DiscoveryResponse";

/// `envoy.config.cluster.v3.Cluster` (CDS).
pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// `envoy.config.listener.v3.Listener` (LDS).
pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// `envoy.config.route.v3.RouteConfiguration` (RDS).
pub const ROUTE_CONFIGURATION_TYPE: &str =
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
/// `envoy.config.endpoint.v3.ClusterLoadAssignment` (EDS).
pub const CLUSTER_LOAD_ASSIGNMENT_TYPE: &str =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

/// Where known clusters come from, as route errors word it.
const DYNAMIC_CLUSTERS: &str = "the static and CDS clusters";

/// What translating one xDS resource needs from the bootstrap (default DNS resolver,
/// the static clusters a control-plane connection may use, whether ADS is configured).
/// Built once per bootstrap.
#[derive(Debug, Clone)]
pub struct ResourceContext {
    env: Env,
    unknown_fields: UnknownFields,
}

/// What an unknown field in a dynamic (xDS) resource does (Envoy's
/// `--ignore-unknown-dynamic-fields` / `--reject-unknown-dynamic-fields`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnknownFields {
    /// Accepted with a warning naming the field (Envoy's default).
    #[default]
    Warn,
    /// Accepted silently.
    Ignore,
    /// The resource is rejected (the update is NACKed).
    Reject,
}

impl ResourceContext {
    /// Fails only when the bootstrap's own DNS resolver config is invalid (which
    /// loading the bootstrap reports first).
    pub fn new(bootstrap: &Bootstrap) -> Result<Self, ConfigError> {
        Ok(Self {
            env: Env::new(bootstrap)?,
            unknown_fields: UnknownFields::default(),
        })
    }

    /// Sets what unknown fields in resources do.
    pub fn with_unknown_fields(mut self, policy: UnknownFields) -> Self {
        self.unknown_fields = policy;
        self
    }
}

/// One rejected resource. Display: `Cluster 'name': field.path: message` (path relative
/// to the resource); without a name (undecodable resource): `Cluster: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ResourceError {
    /// The resource's `type_url` as received.
    pub type_url: String,
    /// The resource's name, when it could be read.
    pub name: Option<String>,
    /// What is wrong, at a path relative to the resource (boxed: keeps `Result`s of
    /// resources small on the success path).
    pub error: Box<ConfigError>,
}

impl fmt::Display for ResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self
            .type_url
            .rsplit(['/', '.'])
            .next()
            .filter(|kind| !kind.is_empty())
            .unwrap_or("resource");
        match &self.name {
            Some(name) => write!(f, "{kind} '{name}': {}", self.error),
            None => write!(f, "{kind}: {}", self.error),
        }
    }
}

/// A CDS `Cluster`.
pub fn cluster(
    ctx: &ResourceContext,
    res: &prost_types::Any,
) -> Result<model::Cluster, ResourceError> {
    let proto = decode::<cluster_pb::Cluster>(ctx, res, CLUSTER_TYPE)?;
    translate::cluster::translate(&proto, "", &ctx.env).map_err(|e| error(res, read_name(res), e))
}

/// An LDS `Listener`. Inline route tables validate their clusters against
/// `known_clusters` (static and CDS clusters) unless `validate_clusters: false`.
pub fn listener(
    ctx: &ResourceContext,
    res: &prost_types::Any,
    known_clusters: &dyn Fn(&str) -> bool,
) -> Result<model::Listener, ResourceError> {
    let proto = decode::<listener_pb::Listener>(ctx, res, LISTENER_TYPE)?;
    let translate_ctx = Context {
        env: &ctx.env,
        known_cluster: known_clusters,
        clusters_origin: DYNAMIC_CLUSTERS,
    };
    translate::listener::translate(&proto, "", &translate_ctx)
        .map_err(|e| error(res, read_name(res), e))
}

/// An RDS `RouteConfiguration`. As in Envoy, its clusters are only checked against
/// `known_clusters` when it sets `validate_clusters: true`.
pub fn route_configuration(
    ctx: &ResourceContext,
    res: &prost_types::Any,
    known_clusters: &dyn Fn(&str) -> bool,
) -> Result<model::RouteConfig, ResourceError> {
    let proto = decode::<route_pb::RouteConfiguration>(ctx, res, ROUTE_CONFIGURATION_TYPE)?;
    let translate_ctx = Context {
        env: &ctx.env,
        known_cluster: known_clusters,
        clusters_origin: DYNAMIC_CLUSTERS,
    };
    translate::route::translate(
        &proto,
        "",
        &translate_ctx,
        translate::route::Origin::Rds,
        None,
    )
    .map_err(|e| error(res, read_name(res), e))
}

/// An EDS `ClusterLoadAssignment` (endpoints must be IP addresses).
pub fn cluster_load_assignment(
    ctx: &ResourceContext,
    res: &prost_types::Any,
) -> Result<ClusterLoadAssignment, ResourceError> {
    let proto =
        decode::<endpoint_pb::ClusterLoadAssignment>(ctx, res, CLUSTER_LOAD_ASSIGNMENT_TYPE)?;
    translate::endpoint::cluster_load_assignment(&proto, "")
        .map_err(|e| error(res, read_name(res), e))
}

/// The resource's name (`name`, or `cluster_name` of a ClusterLoadAssignment) without
/// translating it, for NACK messages and removals.
pub fn resource_name(res: &prost_types::Any) -> Result<String, ResourceError> {
    if !is_known_type(&res.type_url) {
        return Err(error(res, None, unknown_type(&res.type_url)));
    }
    NameOnly::decode(res.value.as_slice())
        .map(|n| n.name)
        .map_err(|e| {
            error(
                res,
                None,
                ConfigError::at("", format!("cannot decode '{}': {e}", res.type_url)),
            )
        })
}

/// A `DiscoveryResponse` in YAML or JSON, as a `path_config_source` file holds it
/// (`version_info` and `resources` with inlined `@type`). Errors carry the line; set
/// their `file` to the source's path to print `file:line: field.path: message`. The
/// resources themselves are checked by the entry points above.
pub fn parse_discovery_response(text: &str) -> Result<DiscoveryResponse, ConfigError> {
    parse_as(text, DISCOVERY_RESPONSE)
}

/// `text` (YAML or JSON) as the message `type_name`; errors carry the line.
fn parse_as<T: prost::Message + Default>(text: &str, type_name: &str) -> Result<T, ConfigError> {
    crate::load::parse_message(text, type_name).map_err(|mut err| {
        if err.line.is_none() {
            err.line = crate::locate::line_of(text, &err.path);
        }
        err
    })
}

/// One member of a `file://` collection: an inline entry.
#[derive(Debug, Clone)]
pub struct CollectionMember {
    /// The entry's `name` (empty when not given).
    pub name: String,
    /// The entry's `version`.
    pub version: String,
    /// The entry's `resource`.
    pub resource: prost_types::Any,
}

/// What a `file://` collection locator's file holds: its `version` and inline members.
#[derive(Debug, Clone)]
pub struct CollectionFile {
    /// The `Resource`'s `version` (the subscription's version).
    pub version: String,
    /// The inline entries, in order (entries by locator are skipped, as Envoy 1.40 does).
    pub members: Vec<CollectionMember>,
}

/// A `file://` collection file in YAML or JSON: an `envoy.service.discovery.v3.Resource`
/// whose `resource` is a collection whose entries are `xds.core.v3.CollectionEntry`s. As
/// in Envoy 1.40 only `ListenerCollection` has that shape (`ClusterCollection`'s
/// `entries` is not repeated, so Envoy refuses every CDS collection file); the errors
/// are Envoy's.
pub fn parse_collection_file(text: &str) -> Result<CollectionFile, ConfigError> {
    use baton_proto::pb::xds::core::v3::collection_entry::ResourceSpecifier;
    const LISTENER_COLLECTION: &str = "envoy.config.listener.v3.ListenerCollection";
    let resource: baton_proto::pb::envoy::service::discovery::v3::Resource =
        parse_as(text, "envoy.service.discovery.v3.Resource")?;
    let any = resource.resource.unwrap_or_default();
    let collection_type = any.type_url.rsplit('/').next().unwrap_or_default();
    if pool().get_message_by_name(collection_type).is_none() {
        return Err(ConfigError::at(
            "resource",
            format!("Unknown collection type {collection_type}"),
        ));
    }
    if collection_type != LISTENER_COLLECTION {
        return Err(ConfigError::at(
            "resource",
            format!("Invalid structure for collection type {collection_type}"),
        ));
    }
    let collection =
        listener_pb::ListenerCollection::decode(any.value.as_slice()).map_err(|e| {
            ConfigError::at("resource", format!("cannot decode {collection_type}: {e}"))
        })?;
    let members = collection
        .entries
        .into_iter()
        .filter_map(|entry| match entry.resource_specifier {
            Some(ResourceSpecifier::InlineEntry(inline)) => Some(CollectionMember {
                name: inline.name,
                version: inline.version,
                resource: inline.resource.unwrap_or_default(),
            }),
            _ => None,
        })
        .collect();
    Ok(CollectionFile {
        version: resource.version,
        members,
    })
}

/// An accepted xDS resource kept as received, turned into /config_dump's JSON only when
/// asked (converting every resource up front cost most of a large CDS update's time and
/// held a JSON tree per resource).
#[derive(Debug, Clone)]
pub struct ResourceDump(std::sync::Arc<prost_types::Any>);

impl ResourceDump {
    /// Keeps `res` for /config_dump.
    pub fn new(res: &prost_types::Any) -> Self {
        Self(std::sync::Arc::new(res.clone()))
    }

    /// Keeps `res` for /config_dump, sharing it (no copy of its bytes).
    pub fn shared(res: std::sync::Arc<prost_types::Any>) -> Self {
        Self(res)
    }

    /// The resource as /config_dump shows it.
    pub fn json(&self) -> serde_json::Value {
        resource_json(&self.0)
    }

    /// Whether `other` is the same resource, byte for byte.
    pub fn same_as(&self, other: &Self) -> bool {
        self.0.type_url == other.0.type_url && self.0.value == other.0.value
    }
}

/// Envoy-style JSON of one resource (proto field names, `@type` inlined) for
/// `/config_dump`. An undecodable resource renders as `{"error": ...}`.
pub fn resource_json(res: &prost_types::Any) -> serde_json::Value {
    let Some(descriptor) = pool().get_message_by_name("google.protobuf.Any") else {
        return serde_json::json!({ "error": "google.protobuf.Any missing from the pool" });
    };
    let mut any = DynamicMessage::new(descriptor);
    any.set_field_by_name("type_url", Value::String(res.type_url.clone()));
    any.set_field_by_name("value", Value::Bytes(res.value.clone().into()));
    to_json(&any)
}

fn is_known_type(type_url: &str) -> bool {
    [
        CLUSTER_TYPE,
        LISTENER_TYPE,
        ROUTE_CONFIGURATION_TYPE,
        CLUSTER_LOAD_ASSIGNMENT_TYPE,
        crate::translate::sds::SECRET_TYPE,
    ]
    .contains(&type_url)
}

fn unknown_type(type_url: &str) -> ConfigError {
    ConfigError::at(
        "@type",
        format!("unknown or unsupported resource type '{type_url}'"),
    )
}

/// All four resource types carry their name in field 1; decoding only that field reads
/// the name of a resource that fails to translate.
#[derive(Clone, PartialEq, Message)]
struct NameOnly {
    #[prost(string, tag = "1")]
    name: String,
}

/// The name, when the resource is of a known type and has a non-empty one.
fn read_name(res: &prost_types::Any) -> Option<String> {
    if !is_known_type(&res.type_url) {
        return None;
    }
    NameOnly::decode(res.value.as_slice())
        .ok()
        .map(|n| n.name)
        .filter(|name| !name.is_empty())
}

/// Type check, the prost message, the unknown-field and supported-field walks over its
/// bytes. The resource's name is read (a second decode of its first field) only for an
/// error: a 10,000-resource push read 10,000 names it never used.
fn decode<T: Message + Default>(
    ctx: &ResourceContext,
    res: &prost_types::Any,
    expected: &str,
) -> Result<T, ResourceError> {
    if res.type_url != expected {
        let message = if is_known_type(&res.type_url) {
            ConfigError::at(
                "@type",
                format!("expected {expected}, got '{}'", res.type_url),
            )
        } else {
            unknown_type(&res.type_url)
        };
        return Err(error(res, read_name(res), message));
    }
    let message_name = expected.rsplit('/').next().unwrap_or_default();
    let descriptor = pool()
        .get_message_by_name(message_name)
        .ok_or_else(|| error(res, read_name(res), unknown_type(expected)))?;
    // Decoded once, by prost; the checks below read the same bytes with the descriptor
    // (a second decode into a DynamicMessage cost more than translating).
    let proto = T::decode(res.value.as_slice()).map_err(|e| {
        error(
            res,
            read_name(res),
            ConfigError::at("", format!("cannot decode '{expected}': {e}")),
        )
    })?;
    // The usual resource (nothing unknown, everything supported) in one walk; anything
    // else takes both walks below, for their findings in their order.
    if wire_walk::supported_and_no_unknown(&descriptor, &res.value) {
        return Ok(proto);
    }
    if ctx.unknown_fields != UnknownFields::Ignore {
        let unknown = wire_walk::unknown_fields(&descriptor, &res.value)
            .map_err(|e| error(res, read_name(res), e))?;
        if let Some(first) = unknown.first() {
            if ctx.unknown_fields == UnknownFields::Reject {
                let (path, number) = first;
                return Err(error(
                    res,
                    read_name(res),
                    ConfigError::at(
                        path.clone(),
                        format!("unknown field number {number} (--reject-unknown-dynamic-fields)"),
                    ),
                ));
            }
            let name = read_name(res);
            for (path, number) in &unknown {
                tracing::warn!(
                    resource = %expected,
                    name = name.as_deref().unwrap_or(""),
                    path = %path,
                    number,
                    "unknown field in a dynamic resource ignored"
                );
            }
        }
    }
    wire_walk::check_supported(&descriptor, &res.value)
        .map_err(|e| error(res, read_name(res), e))?;
    Ok(proto)
}

/// Wraps a translate error; translate functions prefix paths with the resource's own
/// path, which is empty here, so a leading `.` is dropped.
fn error(res: &prost_types::Any, name: Option<String>, mut error: ConfigError) -> ResourceError {
    if let Some(stripped) = error.path.strip_prefix('.') {
        error.path = stripped.to_string();
    }
    ResourceError {
        type_url: res.type_url.clone(),
        name,
        error: Box::new(error),
    }
}
