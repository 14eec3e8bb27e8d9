//! `envoy.filters.network.http_connection_manager`: codec, timeouts, forwarding headers,
//! HTTP filters (`http_filter`: the router last) and the route table (inline or RDS).

use std::sync::Arc;
use std::time::Duration;

use baton_proto::pb::envoy::config::core::v3 as core_pb;
use baton_proto::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm_pb;

use super::{
    access_log, cidr, duration, header_value, http_filter, local_reply, required, route, timeout,
    xds, Context,
};
use crate::error::{ConfigError, Result};
use crate::model;

/// `routes`: the inline route table's routes when `p` was decoded without them (see
/// [`super::hcm_routes`]).
pub(crate) fn translate(
    p: &hcm_pb::HttpConnectionManager,
    path: &str,
    ctx: &Context<'_>,
    routes: Option<&super::hcm_routes::EncodedRoutes<'_>>,
) -> Result<model::HttpConnectionManager> {
    use hcm_pb::http_connection_manager::{
        CodecType, RouteSpecifier, ServerHeaderTransformation, StripPortMode,
    };
    let field = |name: &str| format!("{path}.{name}");
    let stat_prefix = required(&p.stat_prefix, &field("stat_prefix"))?.to_string();
    let codec_type = match CodecType::try_from(p.codec_type) {
        Ok(CodecType::Auto) => model::CodecType::Auto,
        Ok(CodecType::Http1) => model::CodecType::Http1,
        Ok(CodecType::Http2) => model::CodecType::Http2,
        Ok(CodecType::Http3) => {
            return Err(ConfigError::at(
                field("codec_type"),
                "HTTP3 is not supported by Baton yet",
            ))
        }
        Err(_) => return Err(ConfigError::at(field("codec_type"), "unknown enum value")),
    };
    let (route_config, rds) = match &p.route_specifier {
        Some(RouteSpecifier::RouteConfig(rc)) => (
            route::translate(
                rc,
                &field("route_config"),
                ctx,
                route::Origin::Inline,
                routes,
            )?,
            None,
        ),
        Some(RouteSpecifier::Rds(rds)) => {
            let rds = xds::rds(rds, &field("rds"), ctx.env)?;
            let empty = model::RouteConfig {
                name: rds.route_config_name.clone(),
                ..Default::default()
            };
            (empty, Some(rds))
        }
        Some(RouteSpecifier::ScopedRoutes(_)) => {
            return Err(ConfigError::unsupported(field("scoped_routes")))
        }
        None => {
            return Err(ConfigError::at(
                field("route_config"),
                "required (one of route_config, rds)",
            ))
        }
    };
    let chain = http_filter::http_filters(&p.http_filters, &field("http_filters"))?;
    let strip_any_host_port = matches!(
        p.strip_port_mode,
        Some(StripPortMode::StripAnyHostPort(true))
    );
    if strip_any_host_port && p.strip_matching_host_port {
        // Envoy's wording.
        return Err(ConfigError::at(
            field("strip_matching_host_port"),
            "Only one of `strip_matching_host_port` or `strip_any_host_port` can be set.",
        ));
    }
    let path_with_escaped_slashes_action = {
        use hcm_pb::http_connection_manager::PathWithEscapedSlashesAction as Pb;
        match Pb::try_from(p.path_with_escaped_slashes_action) {
            Ok(Pb::ImplementationSpecificDefault | Pb::KeepUnchanged) => {
                model::EscapedSlashesAction::KeepUnchanged
            }
            Ok(Pb::RejectRequest) => model::EscapedSlashesAction::RejectRequest,
            Ok(Pb::UnescapeAndRedirect) => model::EscapedSlashesAction::UnescapeAndRedirect,
            Ok(Pb::UnescapeAndForward) => model::EscapedSlashesAction::UnescapeAndForward,
            Err(_) => {
                return Err(ConfigError::at(
                    field("path_with_escaped_slashes_action"),
                    "unknown enum value",
                ))
            }
        }
    };

    let server_header_transformation =
        match ServerHeaderTransformation::try_from(p.server_header_transformation) {
            Ok(ServerHeaderTransformation::Overwrite) => {
                model::ServerHeaderTransformation::Overwrite
            }
            Ok(ServerHeaderTransformation::AppendIfAbsent) => {
                model::ServerHeaderTransformation::AppendIfAbsent
            }
            Ok(ServerHeaderTransformation::PassThrough) => {
                model::ServerHeaderTransformation::PassThrough
            }
            Err(_) => {
                return Err(ConfigError::at(
                    field("server_header_transformation"),
                    "unknown enum value",
                ))
            }
        };
    let server_name = header_value(
        if p.server_name.is_empty() {
            "envoy"
        } else {
            &p.server_name
        },
        &field("server_name"),
    )?;
    let via = (!p.via.is_empty())
        .then(|| header_value(&p.via, &field("via")))
        .transpose()?;

    let max_request_headers_kb = p.max_request_headers_kb.unwrap_or(60);
    if !(1..=8192).contains(&max_request_headers_kb) {
        return Err(ConfigError::at(
            field("max_request_headers_kb"),
            format!("{max_request_headers_kb} is out of range (1-8192)"),
        ));
    }

    let common_path = field("common_http_protocol_options");
    let common = p.common_http_protocol_options.unwrap_or_default();
    if common.max_response_headers_kb.is_some() {
        // Envoy's own refusal: the limit applies to upstream responses only.
        return Err(ConfigError::at(
            format!("{common_path}.max_response_headers_kb"),
            "max_response_headers_kb cannot be set on http_connection_manager",
        ));
    }
    let max_headers_count = common.max_headers_count.unwrap_or(100);
    if max_headers_count < 1 {
        return Err(ConfigError::at(
            format!("{common_path}.max_headers_count"),
            "must be at least 1",
        ));
    }

    let mut upgrade_configs = Vec::with_capacity(p.upgrade_configs.len());
    for (i, u) in p.upgrade_configs.iter().enumerate() {
        let upath = format!("{}[{i}]", field("upgrade_configs"));
        if !u.filters.is_empty() {
            return Err(ConfigError::unsupported(format!("{upath}.filters")));
        }
        upgrade_configs.push(model::UpgradeConfig {
            upgrade_type: required(&u.upgrade_type, &format!("{upath}.upgrade_type"))?
                .to_ascii_lowercase(),
            enabled: u.enabled.unwrap_or(true),
            terminate_connect: false,
        });
    }

    let http1 = match &p.http_protocol_options {
        Some(h1) => model::Http1Options {
            accept_http_10: h1.accept_http_10,
            default_host_for_http_10: (!h1.default_host_for_http_10.is_empty())
                .then(|| h1.default_host_for_http_10.clone()),
        },
        None => model::Http1Options::default(),
    };
    let http2 = match &p.http2_protocol_options {
        Some(h2) => {
            let path = field("http2_protocol_options");
            if h2.connection_keepalive.is_some() {
                // Implemented for upstream connections only.
                return Err(ConfigError::unsupported(format!(
                    "{path}.connection_keepalive"
                )));
            }
            http2_options(h2, &path)?
        }
        None => model::Http2Options::default(),
    };
    let internal_cidrs = match &p.internal_address_config {
        Some(cfg) => cfg
            .cidr_ranges
            .iter()
            .enumerate()
            .map(|(i, r)| {
                cidr(
                    r,
                    &format!("{}.cidr_ranges[{i}]", field("internal_address_config")),
                )
            })
            .collect::<Result<Vec<_>>>()?,
        None => Vec::new(),
    };

    use hcm_pb::http_connection_manager::ForwardClientCertDetails as Fcc;
    let forward_client_cert = match Fcc::try_from(p.forward_client_cert_details) {
        Ok(Fcc::Sanitize) => model::ForwardClientCert::Sanitize,
        Ok(Fcc::ForwardOnly) => model::ForwardClientCert::ForwardOnly,
        Ok(Fcc::AppendForward) => model::ForwardClientCert::AppendForward,
        Ok(Fcc::SanitizeSet) => model::ForwardClientCert::SanitizeSet,
        Ok(Fcc::AlwaysForwardOnly) => model::ForwardClientCert::AlwaysForwardOnly,
        Err(_) => {
            return Err(ConfigError::at(
                field("forward_client_cert_details"),
                "unknown enum value",
            ))
        }
    };
    let set_current_client_cert = p
        .set_current_client_cert_details
        .as_ref()
        .map(|d| model::ClientCertDetails {
            subject: d.subject.unwrap_or(false),
            cert: d.cert,
            chain: d.chain,
            dns: d.dns,
            uri: d.uri,
        })
        .unwrap_or_default();
    Ok(model::HttpConnectionManager {
        forward_client_cert,
        set_current_client_cert,
        stat_prefix,
        codec_type,
        route_config: Arc::new(route_config),
        rds,
        http_filters: chain.filters,
        router: chain.router,
        access_logs: access_log::list(&p.access_log, &field("access_log"))?,
        use_remote_address: p.use_remote_address.unwrap_or(false),
        xff_num_trusted_hops: p.xff_num_trusted_hops,
        skip_xff_append: p.skip_xff_append,
        append_x_forwarded_port: p.append_x_forwarded_port,
        server_name,
        server_header_transformation,
        via,
        generate_request_id: p.generate_request_id.unwrap_or(true),
        preserve_external_request_id: p.preserve_external_request_id,
        always_set_request_id_in_response: p.always_set_request_id_in_response,
        request_id: super::hcm_tracing::request_id(
            p.request_id_extension.as_ref(),
            &field("request_id_extension"),
        )?,
        tracing: super::hcm_tracing::tracing(p.tracing.as_ref(), &field("tracing"))?,
        max_request_headers_kb,
        max_headers_count,
        underscore_headers: underscore_headers(common.headers_with_underscores_action),
        scheme: scheme_transformation(
            p.scheme_header_transformation.as_ref(),
            &field("scheme_header_transformation"),
        )?,
        request_headers_timeout: timeout(
            p.request_headers_timeout.as_ref(),
            None,
            &field("request_headers_timeout"),
        )?,
        stream_idle_timeout: timeout(
            p.stream_idle_timeout.as_ref(),
            Some(Duration::from_secs(300)),
            &field("stream_idle_timeout"),
        )?,
        request_timeout: timeout(p.request_timeout.as_ref(), None, &field("request_timeout"))?,
        idle_timeout: timeout(
            common.idle_timeout.as_ref(),
            Some(Duration::from_secs(3600)),
            &format!("{common_path}.idle_timeout"),
        )?,
        max_connection_duration: timeout(
            common.max_connection_duration.as_ref(),
            None,
            &format!("{common_path}.max_connection_duration"),
        )?,
        // Envoy takes 0 as unlimited.
        max_requests_per_connection: common.max_requests_per_connection.filter(|&n| n > 0),
        max_stream_duration: timeout(
            common.max_stream_duration.as_ref(),
            None,
            &format!("{common_path}.max_stream_duration"),
        )?,
        drain_timeout: duration(p.drain_timeout.as_ref(), &field("drain_timeout"))?
            .unwrap_or(Duration::from_secs(5)),
        delayed_close_timeout: duration(
            p.delayed_close_timeout.as_ref(),
            &field("delayed_close_timeout"),
        )?
        .unwrap_or(Duration::from_secs(1)),
        upgrade_configs,
        http1,
        http2,
        normalize_path: p.normalize_path.unwrap_or(false),
        merge_slashes: p.merge_slashes,
        path_with_escaped_slashes_action,
        strip_matching_host_port: p.strip_matching_host_port,
        strip_any_host_port,
        internal_cidrs,
        local_reply: p
            .local_reply_config
            .as_ref()
            .map(|c| local_reply::translate(c, &field("local_reply_config")))
            .transpose()?,
    })
}

/// `headers_with_underscores_action`: Envoy's codecs treat every value other than
/// `ALLOW` and `DROP_HEADER` as `REJECT_REQUEST` (the field has no enum check).
fn underscore_headers(action: i32) -> model::UnderscoreHeaders {
    use core_pb::http_protocol_options::HeadersWithUnderscoresAction as Pb;
    match Pb::try_from(action) {
        Ok(Pb::Allow) => model::UnderscoreHeaders::Allow,
        Ok(Pb::DropHeader) => model::UnderscoreHeaders::Drop,
        _ => model::UnderscoreHeaders::Reject,
    }
}

/// `scheme_header_transformation`, with Envoy's check of `scheme_to_overwrite`.
fn scheme_transformation(
    t: Option<&core_pb::SchemeHeaderTransformation>,
    path: &str,
) -> Result<model::SchemeTransformation> {
    use core_pb::scheme_header_transformation::Transformation;
    let Some(t) = t else {
        return Ok(model::SchemeTransformation::Keep);
    };
    Ok(match &t.transformation {
        Some(Transformation::SchemeToOverwrite(scheme)) => match scheme.as_str() {
            "http" => model::SchemeTransformation::Overwrite("http"),
            "https" => model::SchemeTransformation::Overwrite("https"),
            other => {
                return Err(ConfigError::at(
                    format!("{path}.scheme_to_overwrite"),
                    format!("value must be in list [http https], got {other:?}"),
                ))
            }
        },
        None if t.match_upstream => model::SchemeTransformation::MatchUpstream,
        None => model::SchemeTransformation::Keep,
    })
}

/// `Http2ProtocolOptions` with Envoy's ranges.
pub(crate) fn http2_options(
    h2: &core_pb::Http2ProtocolOptions,
    path: &str,
) -> Result<model::Http2Options> {
    let defaults = model::Http2Options::default();
    let ranged = |value: Option<u32>, default: u32, min: u32, name: &str| -> Result<u32> {
        let v = value.unwrap_or(default);
        if v < min || v > 2_147_483_647 {
            return Err(ConfigError::at(
                format!("{path}.{name}"),
                format!("{v} is out of range ({min}-2147483647)"),
            ));
        }
        Ok(v)
    };
    // The h2 crate answers most malformed requests (RFC 9113 §8.1.1) with RST_STREAM
    // PROTOCOL_ERROR and serves on: what Envoy does with these set to true. Asking for
    // Envoy's default instead (close the connection) by name is refused; left unset it is
    // a known difference (tests/differential/known_differences.yaml, malformed_http2).
    // The requests h2 passes on and Baton refuses as Envoy's codec (no authority, `*`
    // for another method than OPTIONS) follow the options exactly.
    if h2.override_stream_error_on_invalid_http_message == Some(false) {
        return Err(ConfigError::at(
            format!("{path}.override_stream_error_on_invalid_http_message"),
            "false is not supported: a malformed HTTP/2 request resets only its stream",
        ));
    }
    Ok(model::Http2Options {
        max_concurrent_streams: ranged(
            h2.max_concurrent_streams,
            defaults.max_concurrent_streams,
            1,
            "max_concurrent_streams",
        )?,
        initial_stream_window_size: ranged(
            h2.initial_stream_window_size,
            defaults.initial_stream_window_size,
            65_535,
            "initial_stream_window_size",
        )?,
        initial_connection_window_size: ranged(
            h2.initial_connection_window_size,
            defaults.initial_connection_window_size,
            65_535,
            "initial_connection_window_size",
        )?,
        allow_connect: h2.allow_connect,
        stream_error_on_invalid_messaging: h2
            .override_stream_error_on_invalid_http_message
            .unwrap_or(h2.stream_error_on_invalid_http_messaging),
        keepalive: keepalive(
            h2.connection_keepalive.as_ref(),
            &format!("{path}.connection_keepalive"),
        )?,
    })
}

/// `connection_keepalive`: PINGs every `interval`, the connection closed when one is not
/// answered within `timeout` (required, as Envoy's validation says). Without an
/// `interval` no PING is sent. `interval_jitter` and `connection_idle_interval` are
/// refused by `supported.rs`.
fn keepalive(
    settings: Option<&core_pb::KeepaliveSettings>,
    path: &str,
) -> Result<Option<model::Http2Keepalive>> {
    let Some(settings) = settings else {
        return Ok(None);
    };
    let at_least_1ms =
        |d: Option<&prost_types::Duration>, name: &str| -> Result<Option<Duration>> {
            let d = super::duration(d, &format!("{path}.{name}"))?;
            if d.is_some_and(|d| d < Duration::from_millis(1)) {
                return Err(ConfigError::at(
                    format!("{path}.{name}"),
                    "must be at least 1ms",
                ));
            }
            Ok(d)
        };
    let timeout = at_least_1ms(settings.timeout.as_ref(), "timeout")?
        .ok_or_else(|| ConfigError::at(format!("{path}.timeout"), "value is required"))?;
    let interval = at_least_1ms(settings.interval.as_ref(), "interval")?;
    Ok(interval.map(|interval| model::Http2Keepalive { interval, timeout }))
}
