//! Proto -> runtime model. Applies Envoy's defaults, validates the `validate.rules` Baton
//! relies on (required fields, ranges, duplicates, cross references) and precomputes
//! everything the request path needs (regexes, header names, format templates).
//!
//! Submodules follow the request path: listener -> hcm -> route; cluster -> endpoint;
//! access_log; xds (config sources). The bootstrap and the per-resource entry points in
//! `crate::resource` share them.

// Envoy still honours its deprecated fields (`append`, `dns_refresh_rate`, file access
// log `format`, ...), and so must Baton.
#![allow(deprecated)]

mod access_log;
mod access_log_filter;
pub(crate) mod cluster;
mod dns;
pub(crate) mod endpoint;
pub(crate) mod format;
mod hcm;
mod hcm_routes;
mod hcm_tracing;
mod http_filter;
mod lb_policy;
pub(crate) mod listener;
mod local_reply;
pub(crate) mod node_context;
mod ocsp;
mod overload;
pub(crate) mod route;
mod runtime;
pub(crate) mod sds;
mod server;
mod socket_matcher;
mod stats;
mod tls;
mod tls_params;
mod tls_pins;
mod xds;
mod xdstp;
mod zone_aware;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use baton_proto::pb::envoy::config::bootstrap::v3 as bootstrap_pb;
use baton_proto::pb::envoy::config::core::v3 as core_pb;
use baton_proto::pb::envoy::extensions::transport_sockets::tls::v3 as tls_pb;
use baton_proto::pb::envoy::r#type::matcher::v3 as matcher_pb;
use http::header::{HeaderName, HeaderValue};
use prost::Message;
use regex::Regex;

use crate::error::{ConfigError, Result};
use crate::model;

/// Translates a whole bootstrap.
pub(crate) fn bootstrap(proto: &bootstrap_pb::Bootstrap) -> Result<model::Bootstrap> {
    let node = proto
        .node
        .as_ref()
        .map(|n| model::Node {
            id: n.id.clone(),
            cluster: n.cluster.clone(),
            locality: n
                .locality
                .as_ref()
                .map(zone_aware::locality)
                .unwrap_or_default(),
        })
        .unwrap_or_default();
    let admin = match &proto.admin {
        Some(admin) if admin.address.is_some() => Some(model::Admin {
            address: socket_addr(admin.address.as_ref(), "admin.address")?,
            access_logs: {
                let mut logs = access_log::list(&admin.access_log, "admin.access_log")?;
                logs.extend(access_log::admin_path_log(&admin.access_log_path)?);
                logs
            },
        }),
        _ => None,
    };
    let env = Env::new(proto)?;
    let empty = bootstrap_pb::bootstrap::StaticResources::default();
    let resources = proto.static_resources.as_ref().unwrap_or(&empty);

    let mut clusters = Vec::with_capacity(resources.clusters.len());
    let mut cluster_names = HashSet::with_capacity(resources.clusters.len());
    for (i, c) in resources.clusters.iter().enumerate() {
        let path = format!("static_resources.clusters[{i}]");
        let translated = cluster::translate(c, &path, &env)?;
        if !cluster_names.insert(translated.name.clone()) {
            return Err(ConfigError::at(
                format!("{path}.name"),
                format!("duplicate cluster name '{}'", translated.name),
            ));
        }
        clusters.push(Arc::new(translated));
    }

    let known_cluster = |name: &str| cluster_names.contains(name);
    let ctx = Context {
        env: &env,
        known_cluster: &known_cluster,
        clusters_origin: "static_resources.clusters",
    };
    let mut listeners = Vec::with_capacity(resources.listeners.len());
    let mut listener_names = HashSet::new();
    let mut listener_addrs = HashSet::new();
    for (i, l) in resources.listeners.iter().enumerate() {
        let path = format!("static_resources.listeners[{i}]");
        let translated = listener::translate(l, &path, &ctx)?;
        if !listener_names.insert(translated.name.clone()) {
            return Err(ConfigError::at(
                format!("{path}.name"),
                format!("duplicate listener name '{}'", translated.name),
            ));
        }
        if translated.address.port() != 0 && !listener_addrs.insert(translated.address) {
            return Err(ConfigError::at(
                format!("{path}.address"),
                format!(
                    "another listener already uses address {}",
                    translated.address
                ),
            ));
        }
        listeners.push(Arc::new(translated));
    }
    sds::check_secret_files_shared_with_clusters(&clusters, &listeners)?;
    let mut dynamic = xds::dynamic_resources(proto.dynamic_resources.as_ref(), &env)?;
    let global_downstream_max_connections = match &proto.overload_manager {
        Some(om) => overload::global_downstream_max_connections(om, "overload_manager")?,
        None => None,
    };
    let stats = stats::config(proto.stats_config.as_ref(), "stats_config")?;
    let runtime_layers = runtime::layers(proto.layered_runtime.as_ref(), "layered_runtime")?;
    dynamic.federation = xdstp::federation(
        proto,
        runtime::flag_enabled(&runtime_layers, xdstp::ROUTE_SINGLETONS_FLAG),
        &env,
    )?;
    let cluster_manager = server::cluster_manager(proto.cluster_manager.as_ref(), &cluster_names)?;
    let application_log_format =
        server::application_log_format(proto.application_log_config.as_ref())?;
    let bootstrap_extensions = server::bootstrap_extensions(&proto.bootstrap_extensions)?;
    Ok(model::Bootstrap {
        node,
        admin,
        listeners,
        clusters,
        dynamic,
        global_downstream_max_connections,
        runtime_layers,
        stats,
        cluster_manager,
        application_log_format,
        deferred_creation_stats: proto
            .deferred_stat_options
            .as_ref()
            .is_some_and(|d| d.enable_deferred_creation_stats),
        bootstrap_extensions,
    })
}

/// What translating any resource (static or delivered by xDS) needs from the bootstrap.
/// Built once per bootstrap.
#[derive(Debug, Clone)]
pub(crate) struct Env {
    /// The resolver of DNS clusters without their own.
    pub(crate) default_resolver: Arc<model::DnsResolverConfig>,
    /// `dynamic_resources.ads_config` is set (`ads: {}` sources are valid).
    pub(crate) ads_configured: bool,
    /// Static clusters a control-plane connection may use: every non-EDS one, as Envoy
    /// connects before any EDS arrives.
    pub(crate) control_plane_clusters: HashSet<String>,
    /// `static_resources.secrets` by name, with their paths.
    pub(crate) static_secrets: HashMap<String, (String, tls_pb::Secret)>,
}

impl Env {
    pub(crate) fn new(proto: &bootstrap_pb::Bootstrap) -> Result<Self> {
        use baton_proto::pb::envoy::config::cluster::v3::cluster::{
            ClusterDiscoveryType, DiscoveryType,
        };
        let control_plane_clusters = proto
            .static_resources
            .iter()
            .flat_map(|r| r.clusters.iter())
            .filter(|c| {
                c.cluster_discovery_type
                    != Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32))
            })
            .map(|c| c.name.clone())
            .collect();
        let mut static_secrets = HashMap::new();
        let secrets = proto.static_resources.iter().flat_map(|r| r.secrets.iter());
        for (i, secret) in secrets.enumerate() {
            let path = format!("static_resources.secrets[{i}]");
            required(&secret.name, &format!("{path}.name"))?;
            if static_secrets
                .insert(secret.name.clone(), (path.clone(), secret.clone()))
                .is_some()
            {
                return Err(ConfigError::at(
                    format!("{path}.name"),
                    format!("Duplicate static secret name {}", secret.name),
                ));
            }
        }
        Ok(Self {
            static_secrets,
            default_resolver: dns::bootstrap_resolver(proto)?,
            ads_configured: proto
                .dynamic_resources
                .as_ref()
                .is_some_and(|d| d.ads_config.is_some()),
            control_plane_clusters,
        })
    }
}

/// What listener/route translation needs to know about the rest of the configuration.
pub(crate) struct Context<'a> {
    pub(crate) env: &'a Env,
    /// Whether a cluster exists (routes naming others are errors, as in Envoy, unless
    /// `validate_clusters` is false).
    pub(crate) known_cluster: &'a dyn Fn(&str) -> bool,
    /// Where known clusters come from, for error messages.
    pub(crate) clusters_origin: &'static str,
}

/// A `Percent` at `path` in units of `1 / per_percent` of a percent (1: whole percent,
/// 100: hundredths), rounded as Envoy rounds it; unset is 100 %. A value outside
/// [0, 100] fails Envoy's validation.
pub(crate) fn scaled_percent(
    value: Option<&baton_proto::pb::envoy::r#type::v3::Percent>,
    path: &str,
    per_percent: f64,
) -> Result<u32> {
    let Some(p) = value else {
        return Ok((100.0 * per_percent) as u32);
    };
    if !(0.0..=100.0).contains(&p.value) {
        return Err(ConfigError::at(
            format!("{path}.value"),
            "value must be inside range [0, 100]",
        ));
    }
    Ok((p.value * per_percent).round() as u32)
}

/// A `FractionalPercent` at `path` (its denominator as a number); an unknown denominator
/// is refused naming `{path}.denominator`.
pub(crate) fn fraction(
    p: &baton_proto::pb::envoy::r#type::v3::FractionalPercent,
    path: &str,
) -> Result<model::Fraction> {
    use baton_proto::pb::envoy::r#type::v3::fractional_percent::DenominatorType;
    let denominator = match DenominatorType::try_from(p.denominator) {
        Ok(DenominatorType::Hundred) => 100,
        Ok(DenominatorType::TenThousand) => 10_000,
        Ok(DenominatorType::Million) => 1_000_000,
        Err(_) => {
            return Err(ConfigError::at(
                format!("{path}.denominator"),
                "unknown enum value",
            ))
        }
    };
    Ok(model::Fraction {
        numerator: u64::from(p.numerator),
        denominator,
    })
}

/// A protobuf duration as a std one; negative values are rejected.
pub(crate) fn duration(d: Option<&prost_types::Duration>, path: &str) -> Result<Option<Duration>> {
    let Some(d) = d else { return Ok(None) };
    if d.seconds < 0 || d.nanos < 0 {
        return Err(ConfigError::at(path, "duration must not be negative"));
    }
    Ok(Some(Duration::new(d.seconds as u64, d.nanos as u32)))
}

/// Envoy's timeout convention: unset -> `default`, zero -> disabled (None).
pub(crate) fn timeout(
    d: Option<&prost_types::Duration>,
    default: Option<Duration>,
    path: &str,
) -> Result<Option<Duration>> {
    Ok(match duration(d, path)? {
        None => default,
        Some(d) if d.is_zero() => None,
        Some(d) => Some(d),
    })
}

/// A required non-empty string field.
/// Runs `check` with an empty path and, only when it fails, again with the real one
/// (`path()`): checks depend on their input alone (no logging, nothing kept of the
/// path on success), so the second run fails the same way, and the happy path of an xDS
/// update of 10,000 routes or assignments formats no paths.
pub(crate) fn with_lazy_path<T>(
    path: impl FnOnce() -> String,
    check: impl Fn(&str) -> Result<T>,
) -> Result<T> {
    check("").or_else(|_| check(&path()))
}

pub(crate) fn required<'s>(value: &'s str, path: &str) -> Result<&'s str> {
    if value.is_empty() {
        Err(ConfigError::at(path, "required field is missing or empty"))
    } else {
        Ok(value)
    }
}

/// A header name (lowercased, validated).
pub(crate) fn header_name(name: &str, path: &str) -> Result<HeaderName> {
    HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
        .map_err(|_| ConfigError::at(path, format!("invalid header name '{name}'")))
}

/// A header value (validated: no control characters).
pub(crate) fn header_value(value: &str, path: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(value)
        .map_err(|_| ConfigError::at(path, format!("invalid header value '{value}'")))
}

/// `address.socket_address` -> a socket address (IP literal only; Envoy requires one for
/// listeners and the admin address).
pub(crate) fn socket_addr(address: Option<&core_pb::Address>, path: &str) -> Result<SocketAddr> {
    let sa = socket_address(address, path)?;
    let sa_path = format!("{path}.socket_address");
    let ip: IpAddr = sa.address.parse().map_err(|_| {
        ConfigError::at(
            format!("{sa_path}.address"),
            format!(
                "'{}' is not an IP address (listeners and admin need one)",
                sa.address
            ),
        )
    })?;
    Ok(SocketAddr::new(ip, port(sa, &sa_path)?))
}

/// The `socket_address` of an Address. Pipes are refused here: only cluster endpoints
/// take them (see `endpoint.rs`); internal addresses are not supported.
pub(crate) fn socket_address<'a>(
    address: Option<&'a core_pb::Address>,
    path: &str,
) -> Result<&'a core_pb::SocketAddress> {
    use core_pb::address::Address as Kind;
    let address = address.ok_or_else(|| ConfigError::at(path, "required field is missing"))?;
    match &address.address {
        Some(Kind::SocketAddress(sa)) => {
            if sa.protocol != core_pb::socket_address::Protocol::Tcp as i32 {
                return Err(ConfigError::at(
                    format!("{path}.socket_address.protocol"),
                    "only TCP is supported by Baton yet",
                ));
            }
            if !sa.resolver_name.is_empty() {
                return Err(ConfigError::unsupported(format!(
                    "{path}.socket_address.resolver_name"
                )));
            }
            Ok(sa)
        }
        Some(Kind::Pipe(_)) => Err(ConfigError::unsupported(format!("{path}.pipe"))),
        Some(Kind::EnvoyInternalAddress(_)) => Err(ConfigError::unsupported(format!(
            "{path}.envoy_internal_address"
        ))),
        None => Err(ConfigError::at(
            path,
            "required field is missing (socket_address)",
        )),
    }
}

/// `port_value` (0..=65535); `named_port` is not supported.
pub(crate) fn port(sa: &core_pb::SocketAddress, path: &str) -> Result<u16> {
    use core_pb::socket_address::PortSpecifier;
    match &sa.port_specifier {
        Some(PortSpecifier::PortValue(p)) => u16::try_from(*p).map_err(|_| {
            ConfigError::at(
                format!("{path}.port_value"),
                format!("port {p} is out of range (0-65535)"),
            )
        }),
        Some(PortSpecifier::NamedPort(_)) => {
            Err(ConfigError::unsupported(format!("{path}.named_port")))
        }
        None => Ok(0),
    }
}

/// A `RegexMatcher`, anchored so it must match the whole input (Envoy's semantics).
pub(crate) fn regex(matcher: &matcher_pb::RegexMatcher, path: &str) -> Result<Regex> {
    compile_regex(&matcher.regex, &format!("{path}.regex"), true)
}

/// Compiles a regex (RE2 syntax is close to the `regex` crate's).
pub(crate) fn compile_regex(pattern: &str, path: &str, anchored: bool) -> Result<Regex> {
    let source = if anchored {
        format!("^(?:{pattern})$")
    } else {
        pattern.to_string()
    };
    Regex::new(&source)
        .map_err(|e| ConfigError::at(path, format!("invalid regex '{pattern}': {e}")))
}

/// `envoy.type.matcher.v3.StringMatcher`.
pub(crate) fn string_matcher(
    m: &matcher_pb::StringMatcher,
    path: &str,
) -> Result<model::StringMatcher> {
    use matcher_pb::string_matcher::MatchPattern;
    let fold = |s: &str| {
        if m.ignore_case {
            s.to_ascii_lowercase()
        } else {
            s.to_string()
        }
    };
    let kind = match &m.match_pattern {
        Some(MatchPattern::Exact(s)) => model::StringMatchKind::Exact(fold(s)),
        Some(MatchPattern::Prefix(s)) => {
            model::StringMatchKind::Prefix(fold(required(s, &format!("{path}.prefix"))?))
        }
        Some(MatchPattern::Suffix(s)) => {
            model::StringMatchKind::Suffix(fold(required(s, &format!("{path}.suffix"))?))
        }
        Some(MatchPattern::Contains(s)) => {
            model::StringMatchKind::Contains(fold(required(s, &format!("{path}.contains"))?))
        }
        Some(MatchPattern::SafeRegex(r)) => {
            model::StringMatchKind::Regex(regex(r, &format!("{path}.safe_regex"))?)
        }
        Some(_) => return Err(ConfigError::unsupported(format!("{path}.custom"))),
        None => {
            return Err(ConfigError::at(
                path,
                "one of exact, prefix, suffix, contains, safe_regex is required",
            ))
        }
    };
    Ok(model::StringMatcher {
        kind,
        ignore_case: m.ignore_case,
    })
}

/// Decodes a `typed_config` Any whose type must be `expected` (full message name).
pub(crate) fn decode_any<T: Message + Default>(
    any: &prost_types::Any,
    expected: &str,
    path: &str,
) -> Result<T> {
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    if name != expected {
        return Err(ConfigError::at(
            format!("{path}.@type"),
            format!(
                "expected type.googleapis.com/{expected}, got '{}'",
                any.type_url
            ),
        ));
    }
    T::decode(any.value.as_slice())
        .map_err(|e| ConfigError::at(path, format!("cannot decode {expected}: {e}")))
}

/// The message name of an Any's `@type`.
pub(crate) fn any_type(any: &prost_types::Any) -> &str {
    any.type_url.rsplit('/').next().unwrap_or_default()
}

/// `HeaderValueOption` lists and remove lists -> [`model::HeaderMutations`].
pub(crate) fn header_mutations(
    request_add: &[core_pb::HeaderValueOption],
    request_remove: &[String],
    response_add: &[core_pb::HeaderValueOption],
    response_remove: &[String],
    path: &str,
) -> Result<model::HeaderMutations> {
    if request_add.is_empty()
        && request_remove.is_empty()
        && response_add.is_empty()
        && response_remove.is_empty()
    {
        // What the lists below make of nothing, without formatting their paths (most of
        // an RDS update's 10,000 routes set none).
        return Ok(model::HeaderMutations::default());
    }
    let remove = |names: &[String], field: &str| -> Result<Vec<HeaderName>> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| header_name(n, &format!("{}{field}[{i}]", prefix(path))))
            .collect()
    };
    Ok(model::HeaderMutations {
        request_add: header_value_options(
            request_add,
            &format!("{}request_headers_to_add", prefix(path)),
        )?,
        request_remove: remove(request_remove, "request_headers_to_remove")?,
        response_add: header_value_options(
            response_add,
            &format!("{}response_headers_to_add", prefix(path)),
        )?,
        response_remove: remove(response_remove, "response_headers_to_remove")?,
    })
}

fn prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}.")
    }
}

pub(crate) fn header_value_options(
    options: &[core_pb::HeaderValueOption],
    path: &str,
) -> Result<Vec<model::HeaderValueOption>> {
    use core_pb::header_value_option::HeaderAppendAction as Action;
    options
        .iter()
        .enumerate()
        .map(|(i, option)| {
            let path = format!("{path}[{i}]");
            let header = option.header.as_ref().ok_or_else(|| {
                ConfigError::at(format!("{path}.header"), "required field is missing")
            })?;
            let key = required(&header.key, &format!("{path}.header.key"))?;
            let name = header_name(key, &format!("{path}.header.key"))?;
            let raw;
            let value = if header.raw_value.is_empty() {
                header.value.as_str()
            } else {
                raw = String::from_utf8(header.raw_value.clone()).map_err(|_| {
                    ConfigError::at(format!("{path}.header.raw_value"), "must be UTF-8")
                })?;
                raw.as_str()
            };
            let template = format::parse(value, &format!("{path}.header.value"))?;
            if let Some(literal) = template.as_literal() {
                header_value(literal, &format!("{path}.header.value"))?;
            }
            let append_action = match option.append {
                // The deprecated `append` bool wins when set, as in Envoy.
                Some(true) => model::AppendAction::AppendIfExistsOrAdd,
                Some(false) => model::AppendAction::OverwriteIfExistsOrAdd,
                None => match Action::try_from(option.append_action) {
                    Ok(Action::AppendIfExistsOrAdd) => model::AppendAction::AppendIfExistsOrAdd,
                    Ok(Action::AddIfAbsent) => model::AppendAction::AddIfAbsent,
                    Ok(Action::OverwriteIfExistsOrAdd) => {
                        model::AppendAction::OverwriteIfExistsOrAdd
                    }
                    Ok(Action::OverwriteIfExists) => model::AppendAction::OverwriteIfExists,
                    Err(_) => {
                        return Err(ConfigError::at(
                            format!("{path}.append_action"),
                            "unknown enum value",
                        ))
                    }
                },
            };
            if option.append.is_some() && option.append_action != 0 {
                return Err(ConfigError::at(
                    path,
                    "append and append_action are mutually exclusive",
                ));
            }
            Ok(model::HeaderValueOption {
                name,
                value: template,
                append_action,
                keep_empty_value: option.keep_empty_value,
            })
        })
        .collect()
}

/// `CidrRange` -> model.
pub(crate) fn cidr(range: &core_pb::CidrRange, path: &str) -> Result<model::CidrRange> {
    let addr: IpAddr = range.address_prefix.parse().map_err(|_| {
        ConfigError::at(
            format!("{path}.address_prefix"),
            format!("'{}' is not an IP address", range.address_prefix),
        )
    })?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = range.prefix_len.unwrap_or(max);
    if len > max {
        return Err(ConfigError::at(
            format!("{path}.prefix_len"),
            format!("prefix length {len} exceeds {max}"),
        ));
    }
    Ok(model::CidrRange {
        addr,
        len: len as u8,
    })
}

/// `DataSource` read at load time.
pub(crate) fn data_source(source: &core_pb::DataSource, path: &str) -> Result<bytes::Bytes> {
    use core_pb::data_source::Specifier;
    match &source.specifier {
        Some(Specifier::Filename(name)) => {
            std::fs::read(name).map(bytes::Bytes::from).map_err(|e| {
                ConfigError::at(
                    format!("{path}.filename"),
                    format!("cannot read '{name}': {e}"),
                )
            })
        }
        Some(Specifier::InlineBytes(b)) => Ok(bytes::Bytes::from(b.clone())),
        Some(Specifier::InlineString(s)) => Ok(bytes::Bytes::from(s.clone())),
        Some(Specifier::EnvironmentVariable(var)) => {
            std::env::var(var).map(bytes::Bytes::from).map_err(|_| {
                ConfigError::at(
                    format!("{path}.environment_variable"),
                    format!("environment variable '{var}' is not set"),
                )
            })
        }
        None => Err(ConfigError::at(
            path,
            "one of filename, inline_string, inline_bytes is required",
        )),
    }
}
