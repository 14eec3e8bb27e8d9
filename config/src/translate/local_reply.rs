//! `local_reply_config` of the connection manager: mappers (an access-log filter, then a
//! status code, body, headers and body format) and the common `body_format`.

use baton_proto::pb::envoy::config::accesslog::v3 as accesslog_pb;
use baton_proto::pb::envoy::config::core::v3 as core_pb;
use baton_proto::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm_pb;

use super::{access_log, data_source, header_value_options, route};
use crate::error::{ConfigError, Result};
use crate::model;

/// `local_reply_config`.
pub(crate) fn translate(
    config: &hcm_pb::LocalReplyConfig,
    path: &str,
) -> Result<model::LocalReplyConfig> {
    let mappers = config
        .mappers
        .iter()
        .enumerate()
        .map(|(i, m)| mapper(m, &format!("{path}.mappers[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    let body_format = config
        .body_format
        .as_ref()
        .map(|f| body_format(f, &format!("{path}.body_format")))
        .transpose()?;
    Ok(model::LocalReplyConfig {
        mappers,
        body_format,
    })
}

fn mapper(m: &hcm_pb::ResponseMapper, path: &str) -> Result<model::LocalReplyMapper> {
    let filter = m
        .filter
        .as_ref()
        .ok_or_else(|| ConfigError::at(format!("{path}.filter"), "required field is missing"))?;
    let status_code = match m.status_code {
        None => None,
        Some(code) if (200..600).contains(&code) => Some(code as u16),
        Some(code) => {
            return Err(ConfigError::at(
                format!("{path}.status_code"),
                format!("{code} is out of range (200-599)"),
            ))
        }
    };
    let body = m
        .body
        .as_ref()
        .map(|b| {
            let body_path = format!("{path}.body");
            let bytes = data_source(b, &body_path)?;
            String::from_utf8(bytes.to_vec())
                .map_err(|_| ConfigError::at(&body_path, "must be UTF-8"))
        })
        .transpose()?;
    Ok(model::LocalReplyMapper {
        filter: access_log_filter(filter, &format!("{path}.filter"))?,
        status_code,
        body,
        body_format_override: m
            .body_format_override
            .as_ref()
            .map(|f| body_format(f, &format!("{path}.body_format_override")))
            .transpose()?,
        headers_to_add: header_value_options(&m.headers_to_add, &format!("{path}.headers_to_add"))?,
    })
}

/// A `SubstitutionFormatString` used as a reply body.
fn body_format(f: &core_pb::SubstitutionFormatString, path: &str) -> Result<model::BodyFormat> {
    use core_pb::substitution_format_string::Format;
    if f.format.is_none() {
        return Err(ConfigError::at(
            path,
            "one of text_format, text_format_source, json_format is required",
        ));
    }
    let format = access_log::substitution_format_body(f, path)?;
    let content_type = if f.content_type.is_empty() {
        match f.format {
            Some(Format::JsonFormat(_)) => "application/json",
            _ => "text/plain",
        }
        .to_string()
    } else {
        super::header_value(&f.content_type, &format!("{path}.content_type"))?;
        f.content_type.clone()
    };
    Ok(model::BodyFormat {
        format,
        content_type,
        omit_empty_values: f.omit_empty_values,
    })
}

/// Envoy's response flag short names (`ResponseFlagFilter.flags`).
const RESPONSE_FLAGS: &[&str] = &[
    "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC",
    "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO", "DR",
    "UDO",
];

/// An `AccessLogFilter`; filters Baton cannot evaluate are refused by name.
pub(crate) fn access_log_filter(
    f: &accesslog_pb::AccessLogFilter,
    path: &str,
) -> Result<model::AccessLogFilter> {
    use accesslog_pb::access_log_filter::FilterSpecifier as Spec;
    let comparison = |c: Option<&accesslog_pb::ComparisonFilter>, at: String| {
        let c = c.ok_or_else(|| {
            ConfigError::at(format!("{at}.comparison"), "required field is missing")
        })?;
        let op = match accesslog_pb::comparison_filter::Op::try_from(c.op) {
            Ok(accesslog_pb::comparison_filter::Op::Eq) => model::ComparisonOp::Eq,
            Ok(accesslog_pb::comparison_filter::Op::Ge) => model::ComparisonOp::Ge,
            Ok(accesslog_pb::comparison_filter::Op::Le) => model::ComparisonOp::Le,
            Ok(accesslog_pb::comparison_filter::Op::Ne) => model::ComparisonOp::Ne,
            Err(_) => {
                return Err(ConfigError::at(
                    format!("{at}.comparison.op"),
                    "unknown enum value",
                ))
            }
        };
        let value = c.value.as_ref().ok_or_else(|| {
            ConfigError::at(
                format!("{at}.comparison.value"),
                "required field is missing",
            )
        })?;
        Ok(model::Comparison {
            op,
            value: u64::from(value.default_value),
        })
    };
    let list = |filters: &[accesslog_pb::AccessLogFilter], at: String| {
        if filters.len() < 2 {
            return Err(ConfigError::at(
                format!("{at}.filters"),
                "needs at least 2 filters",
            ));
        }
        filters
            .iter()
            .enumerate()
            .map(|(i, f)| access_log_filter(f, &format!("{at}.filters[{i}]")))
            .collect::<Result<Vec<_>>>()
    };
    Ok(match &f.filter_specifier {
        Some(Spec::StatusCodeFilter(s)) => model::AccessLogFilter::StatusCode(comparison(
            s.comparison.as_ref(),
            format!("{path}.status_code_filter"),
        )?),
        Some(Spec::DurationFilter(d)) => model::AccessLogFilter::Duration(comparison(
            d.comparison.as_ref(),
            format!("{path}.duration_filter"),
        )?),
        Some(Spec::NotHealthCheckFilter(_)) => model::AccessLogFilter::NotHealthCheck,
        Some(Spec::AndFilter(a)) => {
            model::AccessLogFilter::And(list(&a.filters, format!("{path}.and_filter"))?)
        }
        Some(Spec::OrFilter(o)) => {
            model::AccessLogFilter::Or(list(&o.filters, format!("{path}.or_filter"))?)
        }
        Some(Spec::HeaderFilter(h)) => {
            let at = format!("{path}.header_filter.header");
            let header = h
                .header
                .as_ref()
                .ok_or_else(|| ConfigError::at(&at, "required field is missing"))?;
            model::AccessLogFilter::Header(route::header_matcher(header, &at)?)
        }
        Some(Spec::ResponseFlagFilter(r)) => {
            for (i, flag) in r.flags.iter().enumerate() {
                if !RESPONSE_FLAGS.contains(&flag.as_str()) {
                    return Err(ConfigError::at(
                        format!("{path}.response_flag_filter.flags[{i}]"),
                        format!("unknown response flag '{flag}'"),
                    ));
                }
            }
            model::AccessLogFilter::ResponseFlag(r.flags.clone())
        }
        Some(Spec::TraceableFilter(_)) => {
            return Err(ConfigError::unsupported(format!("{path}.traceable_filter")))
        }
        Some(Spec::RuntimeFilter(_)) => {
            return Err(ConfigError::unsupported(format!("{path}.runtime_filter")))
        }
        Some(Spec::GrpcStatusFilter(_)) => {
            return Err(ConfigError::unsupported(format!(
                "{path}.grpc_status_filter"
            )))
        }
        Some(Spec::ExtensionFilter(_)) => {
            return Err(ConfigError::unsupported(format!("{path}.extension_filter")))
        }
        Some(Spec::MetadataFilter(_)) => {
            return Err(ConfigError::unsupported(format!("{path}.metadata_filter")))
        }
        Some(Spec::LogTypeFilter(_)) => {
            return Err(ConfigError::unsupported(format!("{path}.log_type_filter")))
        }
        None => {
            return Err(ConfigError::at(
                path,
                "one of status_code_filter, duration_filter, ... is required",
            ))
        }
    })
}
