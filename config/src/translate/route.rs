//! Inline `route_config`: virtual hosts, route matches, and route / redirect /
//! direct_response actions, with Envoy's validation of domains and cluster references.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use baton_proto::pb::envoy::config::route::v3 as route_pb;

use super::hcm_routes::{EncodedRoutes, RouteSource};
use super::http_filter::filter_overrides;
use super::{
    compile_regex, data_source, duration, header_mutations, header_name, header_value, regex,
    required, string_matcher, with_lazy_path, Context,
};
use crate::error::{ConfigError, Result};
use crate::model;

/// Envoy's default `max_direct_response_body_size_bytes`.
const DEFAULT_MAX_DIRECT_RESPONSE_BODY: u32 = 4096;

/// Where a route table came from: decides `validate_clusters`' default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// An HCM's inline `route_config` (bootstrap or LDS): validated by default.
    Inline,
    /// An RDS `RouteConfiguration`: not validated by default (clusters may come later).
    Rds,
}

/// `encoded`: the virtual hosts' routes when `rc` was decoded without them (see
/// [`super::hcm_routes`]).
pub(crate) fn translate(
    rc: &route_pb::RouteConfiguration,
    path: &str,
    ctx: &Context<'_>,
    origin: Origin,
    encoded: Option<&EncodedRoutes<'_>>,
) -> Result<model::RouteConfig> {
    // Envoy's defaults: inline tables validate their clusters, RDS tables do not.
    let validate_clusters = rc.validate_clusters.unwrap_or(origin == Origin::Inline);
    let max_body = rc
        .max_direct_response_body_size_bytes
        .unwrap_or(DEFAULT_MAX_DIRECT_RESPONSE_BODY);
    let route_ctx = RouteContext {
        ctx,
        validate_clusters,
        max_body,
    };
    let mut virtual_hosts = Vec::with_capacity(rc.virtual_hosts.len());
    let mut seen_domains = HashSet::new();
    for (i, vh) in rc.virtual_hosts.iter().enumerate() {
        let vh_path = format!("{path}.virtual_hosts[{i}]");
        let routes = RouteSource::of(vh, i, encoded);
        let translated = virtual_host(vh, routes, &vh_path, &route_ctx)?;
        for (j, domain) in translated.domains.iter().enumerate() {
            if !seen_domains.insert(domain.clone()) {
                let message = if domain == "*" {
                    format!(
                        "only a single wildcard domain '*' is permitted in route {}",
                        rc.name
                    )
                } else {
                    format!("only unique values for domains are permitted: duplicate entry of domain {domain}")
                };
                return Err(ConfigError::at(format!("{vh_path}.domains[{j}]"), message));
            }
        }
        virtual_hosts.push(translated);
    }
    let internal_only_headers = rc
        .internal_only_headers
        .iter()
        .enumerate()
        .map(|(i, h)| header_name(h, &format!("{path}.internal_only_headers[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    Ok(model::RouteConfig {
        name: rc.name.clone(),
        virtual_hosts,
        headers: header_mutations(
            &rc.request_headers_to_add,
            &rc.request_headers_to_remove,
            &rc.response_headers_to_add,
            &rc.response_headers_to_remove,
            path,
        )?,
        internal_only_headers,
        most_specific_header_mutations_wins: rc.most_specific_header_mutations_wins,
        ignore_port_in_host_matching: rc.ignore_port_in_host_matching,
        filter_overrides: filter_overrides(&rc.typed_per_filter_config, path)?,
    })
}

struct RouteContext<'a> {
    ctx: &'a Context<'a>,
    validate_clusters: bool,
    max_body: u32,
}

impl RouteContext<'_> {
    fn check_cluster(&self, name: &str, path: &str, weighted: bool) -> Result<()> {
        if self.validate_clusters && !(self.ctx.known_cluster)(name) {
            let what = if weighted {
                "weighted cluster"
            } else {
                "cluster"
            };
            return Err(ConfigError::at(
                path,
                format!(
                    "unknown {what} '{name}' (not among {}; set validate_clusters: false to allow)",
                    self.ctx.clusters_origin
                ),
            ));
        }
        Ok(())
    }
}

fn virtual_host(
    vh: &route_pb::VirtualHost,
    source: RouteSource<'_, '_>,
    path: &str,
    rctx: &RouteContext<'_>,
) -> Result<model::VirtualHost> {
    let name = required(&vh.name, &format!("{path}.name"))?.to_string();
    if vh.domains.is_empty() {
        return Err(ConfigError::at(
            format!("{path}.domains"),
            "at least one domain is required",
        ));
    }
    let mut domains = Vec::with_capacity(vh.domains.len());
    for (i, d) in vh.domains.iter().enumerate() {
        let dpath = format!("{path}.domains[{i}]");
        let domain = required(d, &dpath)?.to_ascii_lowercase();
        if domain.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ConfigError::at(dpath, format!("invalid domain '{d}'")));
        }
        domains.push(domain);
    }
    let mut routes = Vec::with_capacity(source.len());
    source.for_each(
        |i| format!("{path}.routes[{i}]"),
        |i, r| with_lazy_path(|| format!("{path}.routes[{i}]"), |p| route(r, p, rctx)),
        &mut routes,
    )?;
    Ok(model::VirtualHost {
        name,
        domains,
        routes,
        headers: header_mutations(
            &vh.request_headers_to_add,
            &vh.request_headers_to_remove,
            &vh.response_headers_to_add,
            &vh.response_headers_to_remove,
            path,
        )?,
        filter_overrides: filter_overrides(&vh.typed_per_filter_config, path)?,
        require_tls: match vh.require_tls {
            1 => model::RequireTls::ExternalOnly,
            2 => model::RequireTls::All,
            _ => model::RequireTls::None,
        },
    })
}

fn route(r: &route_pb::Route, path: &str, rctx: &RouteContext<'_>) -> Result<model::Route> {
    use route_pb::route::Action;
    let matcher = with_lazy_path(
        || format!("{path}.match"),
        |p| {
            route_match(
                r.r#match
                    .as_ref()
                    .ok_or_else(|| ConfigError::at(p, "required field is missing"))?,
                p,
            )
        },
    )?;
    let action = match &r.action {
        Some(Action::Route(a)) => model::RouteAction::Forward(Arc::new(with_lazy_path(
            || format!("{path}.route"),
            |p| forward(a, p, rctx),
        )?)),
        Some(Action::Redirect(a)) => {
            model::RouteAction::Redirect(Arc::new(redirect(a, &format!("{path}.redirect"))?))
        }
        Some(Action::DirectResponse(a)) => model::RouteAction::DirectResponse(Arc::new(
            direct_response(a, &format!("{path}.direct_response"), rctx)?,
        )),
        Some(Action::FilterAction(_)) => {
            return Err(ConfigError::unsupported(format!("{path}.filter_action")))
        }
        Some(Action::NonForwardingAction(_)) => {
            return Err(ConfigError::unsupported(format!(
                "{path}.non_forwarding_action"
            )))
        }
        None => {
            return Err(ConfigError::at(
                path,
                "one of route, redirect, direct_response is required",
            ))
        }
    };
    Ok(model::Route {
        name: r.name.as_str().into(),
        matcher,
        action,
        headers: header_mutations(
            &r.request_headers_to_add,
            &r.request_headers_to_remove,
            &r.response_headers_to_add,
            &r.response_headers_to_remove,
            path,
        )?,
        filter_overrides: filter_overrides(&r.typed_per_filter_config, path)?,
        metadata: r
            .metadata
            .as_ref()
            .filter(|m| !m.filter_metadata.is_empty())
            .map(|m| std::sync::Arc::new(m.filter_metadata.clone())),
        tracing: r
            .tracing
            .as_ref()
            .map(|t| super::hcm_tracing::route_tracing(t, &format!("{path}.tracing")))
            .transpose()?
            .map(Box::new),
    })
}

fn route_match(m: &route_pb::RouteMatch, path: &str) -> Result<model::RouteMatch> {
    use route_pb::route_match::PathSpecifier;
    let path_match = match &m.path_specifier {
        Some(PathSpecifier::Prefix(p)) => model::PathMatch::Prefix(p.clone()),
        Some(PathSpecifier::Path(p)) => model::PathMatch::Path(p.clone()),
        Some(PathSpecifier::SafeRegex(r)) => {
            model::PathMatch::Regex(regex(r, &format!("{path}.safe_regex"))?)
        }
        Some(PathSpecifier::ConnectMatcher(_)) => model::PathMatch::Connect,
        Some(PathSpecifier::PathSeparatedPrefix(p)) => {
            let ppath = format!("{path}.path_separated_prefix");
            if !p.starts_with('/') || p.contains(['?', '#']) || (p.len() > 1 && p.ends_with('/')) {
                return Err(ConfigError::at(
                    ppath,
                    format!(
                        "'{p}' must start with '/', not end with '/', and contain no '?' or '#'"
                    ),
                ));
            }
            model::PathMatch::PathSeparatedPrefix(p.clone())
        }
        Some(_) => {
            return Err(ConfigError::unsupported(format!(
                "{path}.path_match_policy"
            )))
        }
        None => return Err(ConfigError::at(
            path,
            "one of prefix, path, safe_regex, path_separated_prefix, connect_matcher is required",
        )),
    };
    let headers = m
        .headers
        .iter()
        .enumerate()
        .map(|(i, h)| header_matcher(h, &format!("{path}.headers[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    let query_parameters = m
        .query_parameters
        .iter()
        .enumerate()
        .map(|(i, q)| query_matcher(q, &format!("{path}.query_parameters[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    Ok(model::RouteMatch {
        path: path_match,
        case_sensitive: m.case_sensitive.unwrap_or(true),
        headers,
        query_parameters,
        grpc: m.grpc.is_some(),
        runtime_fraction: m
            .runtime_fraction
            .as_ref()
            .map(|f| runtime_fraction(f, &format!("{path}.runtime_fraction")))
            .transpose()?,
        tls_context: m
            .tls_context
            .map(|t| model::TlsContextMatch {
                presented: t.presented,
                validated: t.validated,
            })
            .unwrap_or_default(),
    })
}

/// A route match's `runtime_fraction`.
fn runtime_fraction(
    f: &baton_proto::pb::envoy::config::core::v3::RuntimeFractionalPercent,
    path: &str,
) -> Result<model::RuntimeFraction> {
    let default = f.default_value.as_ref().ok_or_else(|| {
        ConfigError::at(format!("{path}.default_value"), "required field is missing")
    })?;
    let model::Fraction {
        numerator,
        denominator,
    } = super::fraction(default, &format!("{path}.default_value"))?;
    Ok(model::RuntimeFraction {
        runtime_key: f.runtime_key.clone(),
        numerator,
        denominator,
    })
}

#[allow(deprecated)]
pub(crate) fn header_matcher(
    h: &route_pb::HeaderMatcher,
    path: &str,
) -> Result<model::HeaderMatcher> {
    use route_pb::header_matcher::HeaderMatchSpecifier as Spec;
    let pseudo = match h.name.to_ascii_lowercase().as_str() {
        ":method" => Some(model::PseudoHeader::Method),
        ":path" => Some(model::PseudoHeader::Path),
        ":scheme" => Some(model::PseudoHeader::Scheme),
        _ => None,
    };
    let name = if pseudo.is_some() {
        // Not looked up: the value comes from the request line.
        http::header::HOST
    } else {
        header_name(
            required(&h.name, &format!("{path}.name"))?,
            &format!("{path}.name"),
        )
        .or_else(|e| {
            if h.name.starts_with(':') {
                pseudo_header_name(&h.name).ok_or(e)
            } else {
                Err(e)
            }
        })?
    };
    let plain = |kind: model::StringMatchKind| {
        model::HeaderMatchSpec::String(model::StringMatcher {
            kind,
            ignore_case: false,
        })
    };
    let spec = match &h.header_match_specifier {
        None => model::HeaderMatchSpec::Present(true),
        Some(Spec::PresentMatch(p)) => model::HeaderMatchSpec::Present(*p),
        Some(Spec::ExactMatch(s)) => plain(model::StringMatchKind::Exact(s.clone())),
        Some(Spec::PrefixMatch(s)) => plain(model::StringMatchKind::Prefix(
            required(s, &format!("{path}.prefix_match"))?.to_string(),
        )),
        Some(Spec::SuffixMatch(s)) => plain(model::StringMatchKind::Suffix(
            required(s, &format!("{path}.suffix_match"))?.to_string(),
        )),
        Some(Spec::ContainsMatch(s)) => plain(model::StringMatchKind::Contains(
            required(s, &format!("{path}.contains_match"))?.to_string(),
        )),
        Some(Spec::SafeRegexMatch(r)) => plain(model::StringMatchKind::Regex(regex(
            r,
            &format!("{path}.safe_regex_match"),
        )?)),
        Some(Spec::RangeMatch(r)) => {
            if r.start >= r.end {
                return Err(ConfigError::at(
                    format!("{path}.range_match"),
                    "start must be less than end",
                ));
            }
            model::HeaderMatchSpec::Range {
                start: r.start,
                end: r.end,
            }
        }
        Some(Spec::StringMatch(m)) => {
            model::HeaderMatchSpec::String(string_matcher(m, &format!("{path}.string_match"))?)
        }
    };
    Ok(model::HeaderMatcher {
        name,
        pseudo,
        spec,
        invert: h.invert_match,
        treat_missing_as_empty: h.treat_missing_header_as_empty,
    })
}

/// Route header matchers may name pseudo-headers; only `:authority`/`:method`/`:path`/
/// `:scheme` have regular-header equivalents the proxy can look up.
fn pseudo_header_name(name: &str) -> Option<http::header::HeaderName> {
    match name.to_ascii_lowercase().as_str() {
        ":authority" => Some(http::header::HOST),
        _ => None,
    }
}

fn query_matcher(
    q: &route_pb::QueryParameterMatcher,
    path: &str,
) -> Result<model::QueryParameterMatcher> {
    use route_pb::query_parameter_matcher::QueryParameterMatchSpecifier as Spec;
    let name = required(&q.name, &format!("{path}.name"))?.to_string();
    let value = match &q.query_parameter_match_specifier {
        Some(Spec::StringMatch(m)) => Some(string_matcher(m, &format!("{path}.string_match"))?),
        Some(Spec::PresentMatch(true)) | None => None,
        Some(Spec::PresentMatch(false)) => {
            return Err(ConfigError::at(
                format!("{path}.present_match"),
                "present_match: false is not supported by Baton yet",
            ))
        }
    };
    Ok(model::QueryParameterMatcher { name, value })
}

fn forward(
    a: &route_pb::RouteAction,
    path: &str,
    rctx: &RouteContext<'_>,
) -> Result<model::ForwardAction> {
    use route_pb::route_action::{ClusterSpecifier, HostRewriteSpecifier};
    let cluster = match &a.cluster_specifier {
        Some(ClusterSpecifier::Cluster(name)) => {
            with_lazy_path(
                || format!("{path}.cluster"),
                |cpath| {
                    required(name, cpath)?;
                    rctx.check_cluster(name, cpath, false)
                },
            )?;
            model::ClusterSpecifier::Name(name.clone())
        }
        Some(ClusterSpecifier::ClusterHeader(h)) => {
            let hpath = format!("{path}.cluster_header");
            model::ClusterSpecifier::Header(header_name(required(h, &hpath)?, &hpath)?)
        }
        Some(ClusterSpecifier::WeightedClusters(w)) => model::ClusterSpecifier::Weighted(
            weighted_clusters(w, &format!("{path}.weighted_clusters"), rctx)?,
        ),
        Some(ClusterSpecifier::ClusterSpecifierPlugin(_))
        | Some(ClusterSpecifier::InlineClusterSpecifierPlugin(_)) => {
            return Err(ConfigError::unsupported(format!(
                "{path}.cluster_specifier_plugin"
            )))
        }
        None => {
            return Err(ConfigError::at(
                path,
                "one of cluster, cluster_header, weighted_clusters is required",
            ))
        }
    };
    if !a.prefix_rewrite.is_empty() && a.regex_rewrite.is_some() {
        return Err(ConfigError::at(
            path,
            "cannot specify both prefix_rewrite and regex_rewrite",
        ));
    }
    let regex_rewrite = a
        .regex_rewrite
        .as_ref()
        .map(|rr| {
            let rpath = format!("{path}.regex_rewrite");
            let pattern = rr.pattern.as_ref().ok_or_else(|| {
                ConfigError::at(format!("{rpath}.pattern"), "required field is missing")
            })?;
            let re = compile_regex(&pattern.regex, &format!("{rpath}.pattern.regex"), false)?;
            Ok::<_, ConfigError>((re, rr.substitution.clone()))
        })
        .transpose()?;
    let host_rewrite = match &a.host_rewrite_specifier {
        None | Some(HostRewriteSpecifier::AutoHostRewrite(false)) => model::HostRewrite::None,
        Some(HostRewriteSpecifier::AutoHostRewrite(true)) => model::HostRewrite::Auto,
        Some(HostRewriteSpecifier::HostRewriteLiteral(h)) => {
            let hpath = format!("{path}.host_rewrite_literal");
            model::HostRewrite::Literal(header_value(required(h, &hpath)?, &hpath)?)
        }
        Some(HostRewriteSpecifier::HostRewriteHeader(h)) => {
            let hpath = format!("{path}.host_rewrite_header");
            model::HostRewrite::Header(header_name(required(h, &hpath)?, &hpath)?)
        }
        Some(HostRewriteSpecifier::HostRewritePathRegex(rr)) => {
            let hpath = format!("{path}.host_rewrite_path_regex");
            let pattern = rr.pattern.as_ref().ok_or_else(|| {
                ConfigError::at(format!("{hpath}.pattern"), "required field is missing")
            })?;
            let re = compile_regex(&pattern.regex, &format!("{hpath}.pattern.regex"), false)?;
            model::HostRewrite::PathRegex(re, rr.substitution.clone())
        }
        Some(HostRewriteSpecifier::HostRewrite(_)) => {
            return Err(ConfigError::unsupported(format!("{path}.host_rewrite")))
        }
    };
    let upgrade_configs = a
        .upgrade_configs
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let upath = format!("{path}.upgrade_configs[{i}]");
            let upgrade_type =
                required(&u.upgrade_type, &format!("{upath}.upgrade_type"))?.to_ascii_lowercase();
            if u.connect_config.is_some() && upgrade_type != "connect" {
                return Err(ConfigError::at(
                    format!("{upath}.connect_config"),
                    "only valid with upgrade_type CONNECT",
                ));
            }
            Ok(model::UpgradeConfig {
                upgrade_type,
                enabled: u.enabled.unwrap_or(true),
                terminate_connect: u.connect_config.is_some(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(model::ForwardAction {
        cluster,
        prefix_rewrite: (!a.prefix_rewrite.is_empty()).then(|| a.prefix_rewrite.clone()),
        regex_rewrite,
        host_rewrite,
        append_x_forwarded_host: a.append_x_forwarded_host,
        // SERVICE_UNAVAILABLE, NOT_FOUND, INTERNAL_SERVER_ERROR.
        cluster_not_found_status: match a.cluster_not_found_response_code {
            1 => 404,
            2 => 500,
            _ => 503,
        },
        // A route with `max_stream_duration` uses no router timeout (Envoy's "new
        // timeouts"): no `x-envoy-expected-rq-timeout-ms` either.
        timeout: if a.max_stream_duration.is_some() {
            None
        } else {
            with_lazy_path(
                || format!("{path}.timeout"),
                |p| super::timeout(a.timeout.as_ref(), Some(Duration::from_secs(15)), p),
            )?
        },
        // Unset -> None (use the connection manager's stream_idle_timeout);
        // an explicit 0 is kept as Some(ZERO): disabled for this route.
        idle_timeout: with_lazy_path(
            || format!("{path}.idle_timeout"),
            |p| duration(a.idle_timeout.as_ref(), p),
        )?,
        upgrade_configs,
        max_stream_duration: a
            .max_stream_duration
            .as_ref()
            .map(|m| -> Result<model::MaxStreamDuration> {
                let p = format!("{path}.max_stream_duration");
                Ok(model::MaxStreamDuration {
                    max: duration(
                        m.max_stream_duration.as_ref(),
                        &format!("{p}.max_stream_duration"),
                    )?,
                    grpc_header_max: duration(
                        m.grpc_timeout_header_max.as_ref(),
                        &format!("{p}.grpc_timeout_header_max"),
                    )?,
                    grpc_header_offset: duration(
                        m.grpc_timeout_header_offset.as_ref(),
                        &format!("{p}.grpc_timeout_header_offset"),
                    )?,
                })
            })
            .transpose()?,
    })
}

fn weighted_clusters(
    w: &route_pb::WeightedCluster,
    path: &str,
    rctx: &RouteContext<'_>,
) -> Result<model::WeightedClusters> {
    if w.clusters.is_empty() {
        return Err(ConfigError::at(
            format!("{path}.clusters"),
            "at least one cluster is required",
        ));
    }
    if w.random_value_specifier.is_some() || !w.runtime_key_prefix.is_empty() {
        return Err(ConfigError::unsupported(format!("{path}.header_name")));
    }
    let mut clusters = Vec::with_capacity(w.clusters.len());
    let mut total = 0u32;
    for (i, c) in w.clusters.iter().enumerate() {
        let cpath = format!("{path}.clusters[{i}]");
        if !c.cluster_header.is_empty() {
            return Err(ConfigError::unsupported(format!("{cpath}.cluster_header")));
        }
        let name = required(&c.name, &format!("{cpath}.name"))?;
        rctx.check_cluster(name, &format!("{cpath}.name"), true)?;
        let weight = c.weight.unwrap_or(0);
        total = total.checked_add(weight).ok_or_else(|| {
            ConfigError::at(format!("{cpath}.weight"), "sum of weights overflows")
        })?;
        clusters.push(model::WeightedCluster {
            name: name.to_string(),
            weight,
            headers: header_mutations(
                &c.request_headers_to_add,
                &c.request_headers_to_remove,
                &c.response_headers_to_add,
                &c.response_headers_to_remove,
                &cpath,
            )?,
            filter_overrides: filter_overrides(&c.typed_per_filter_config, &cpath)?,
        });
    }
    if total == 0 {
        return Err(ConfigError::at(
            format!("{path}.clusters"),
            "sum of weights must be greater than 0",
        ));
    }
    if let Some(declared) = w.total_weight {
        if declared != total {
            return Err(ConfigError::at(
                format!("{path}.total_weight"),
                format!("sum of weights is {total}, but total_weight is {declared}"),
            ));
        }
    }
    Ok(model::WeightedClusters {
        clusters,
        total_weight: total,
    })
}

fn redirect(r: &route_pb::RedirectAction, path: &str) -> Result<model::RedirectAction> {
    use route_pb::redirect_action::{
        PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier,
    };
    let scheme = match &r.scheme_rewrite_specifier {
        Some(SchemeRewriteSpecifier::HttpsRedirect(true)) => Some("https".to_string()),
        Some(SchemeRewriteSpecifier::HttpsRedirect(false)) | None => None,
        Some(SchemeRewriteSpecifier::SchemeRedirect(s)) => Some(s.to_ascii_lowercase()),
    };
    let port = match r.port_redirect {
        0 => None,
        p => Some(u16::try_from(p).map_err(|_| {
            ConfigError::at(
                format!("{path}.port_redirect"),
                format!("port {p} is out of range (1-65535)"),
            )
        })?),
    };
    let path_redirect = match &r.path_rewrite_specifier {
        None => model::PathRedirect::Keep,
        Some(PathRewriteSpecifier::PathRedirect(p)) => model::PathRedirect::Path(p.clone()),
        Some(PathRewriteSpecifier::PrefixRewrite(p)) => model::PathRedirect::Prefix(p.clone()),
        Some(PathRewriteSpecifier::RegexRewrite(rr)) => {
            let rpath = format!("{path}.regex_rewrite");
            let pattern = rr.pattern.as_ref().ok_or_else(|| {
                ConfigError::at(format!("{rpath}.pattern"), "required field is missing")
            })?;
            let re = compile_regex(&pattern.regex, &format!("{rpath}.pattern.regex"), false)?;
            model::PathRedirect::Regex(re, rr.substitution.clone())
        }
        Some(_) => return Err(ConfigError::unsupported(format!("{path}.path_rewrite"))),
    };
    let response_code = match RedirectResponseCode::try_from(r.response_code) {
        Ok(RedirectResponseCode::MovedPermanently) => 301,
        Ok(RedirectResponseCode::Found) => 302,
        Ok(RedirectResponseCode::SeeOther) => 303,
        Ok(RedirectResponseCode::TemporaryRedirect) => 307,
        Ok(RedirectResponseCode::PermanentRedirect) => 308,
        Err(_) => {
            return Err(ConfigError::at(
                format!("{path}.response_code"),
                "unknown enum value",
            ))
        }
    };
    Ok(model::RedirectAction {
        scheme,
        host: (!r.host_redirect.is_empty()).then(|| r.host_redirect.clone()),
        port,
        path: path_redirect,
        response_code,
        strip_query: r.strip_query,
    })
}

fn direct_response(
    d: &route_pb::DirectResponseAction,
    path: &str,
    rctx: &RouteContext<'_>,
) -> Result<model::DirectResponseAction> {
    if !(200..600).contains(&d.status) {
        return Err(ConfigError::at(
            format!("{path}.status"),
            format!("status {} is out of range (200-599)", d.status),
        ));
    }
    if d.body_format.is_some() {
        return Err(ConfigError::unsupported(format!("{path}.body_format")));
    }
    let body = d
        .body
        .as_ref()
        .map(|b| data_source(b, &format!("{path}.body")))
        .transpose()?;
    if let Some(body) = &body {
        if body.len() > rctx.max_body as usize {
            return Err(ConfigError::at(
                format!("{path}.body"),
                format!(
                    "response body size is {} bytes; maximum is {} (max_direct_response_body_size_bytes)",
                    body.len(),
                    rctx.max_body
                ),
            ));
        }
    }
    Ok(model::DirectResponseAction {
        status: d.status as u16,
        body,
    })
}
