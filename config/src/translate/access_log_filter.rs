//! `AccessLogFilter`s (access logs and local reply mappers): every filter Envoy has but
//! `extension_filter`, which is refused by name.

use baton_proto::pb::envoy::config::accesslog::v3 as accesslog_pb;

use super::route;
use crate::error::{ConfigError, Result};
use crate::model;

/// Envoy's response flag short names (`ResponseFlagFilter.flags`).
const RESPONSE_FLAGS: &[&str] = &[
    "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC",
    "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO", "DR",
    "UDO",
];

/// An `AccessLogFilter`; `extension_filter` is refused by name.
pub(crate) fn translate(
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
            runtime_key: value.runtime_key.clone(),
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
            .map(|(i, f)| translate(f, &format!("{at}.filters[{i}]")))
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
        Some(Spec::TraceableFilter(_)) => model::AccessLogFilter::Traceable,
        Some(Spec::RuntimeFilter(r)) => {
            model::AccessLogFilter::Runtime(runtime_filter(r, &format!("{path}.runtime_filter"))?)
        }
        Some(Spec::GrpcStatusFilter(g)) => {
            use accesslog_pb::grpc_status_filter::Status;
            for (i, status) in g.statuses.iter().enumerate() {
                if Status::try_from(*status).is_err() {
                    return Err(ConfigError::at(
                        format!("{path}.grpc_status_filter.statuses[{i}]"),
                        "unknown enum value",
                    ));
                }
            }
            model::AccessLogFilter::GrpcStatus {
                statuses: g.statuses.clone(),
                exclude: g.exclude,
            }
        }
        Some(Spec::ExtensionFilter(_)) => {
            return Err(ConfigError::unsupported(format!("{path}.extension_filter")))
        }
        Some(Spec::MetadataFilter(m)) => model::AccessLogFilter::Metadata {
            match_if_key_not_found: m.match_if_key_not_found.unwrap_or(true),
        },
        Some(Spec::LogTypeFilter(l)) => {
            use baton_proto::pb::envoy::data::accesslog::v3::AccessLogType as Pb;
            let types = l
                .types
                .iter()
                .enumerate()
                .map(|(i, t)| match Pb::try_from(*t) {
                    Ok(Pb::NotSet) => Ok(model::AccessLogType::NotSet),
                    Ok(Pb::TcpConnectionEnd) => Ok(model::AccessLogType::TcpConnectionEnd),
                    Ok(Pb::DownstreamEnd) => Ok(model::AccessLogType::DownstreamEnd),
                    Ok(_) => Ok(model::AccessLogType::Other(*t)),
                    Err(_) => Err(ConfigError::at(
                        format!("{path}.log_type_filter.types[{i}]"),
                        "unknown enum value",
                    )),
                })
                .collect::<Result<Vec<_>>>()?;
            model::AccessLogFilter::LogType {
                types,
                exclude: l.exclude,
            }
        }
        None => {
            return Err(ConfigError::at(
                path,
                "one of status_code_filter, duration_filter, ... is required",
            ))
        }
    })
}

/// A `RuntimeFilter` (`percent_sampled` defaults to 0/100, as Envoy's).
fn runtime_filter(r: &accesslog_pb::RuntimeFilter, path: &str) -> Result<model::RuntimeFilter> {
    let runtime_key = super::required(&r.runtime_key, &format!("{path}.runtime_key"))?;
    let model::Fraction {
        numerator,
        denominator,
    } = match &r.percent_sampled {
        None => model::Fraction {
            numerator: 0,
            denominator: 100,
        },
        Some(p) => super::fraction(p, &format!("{path}.percent_sampled"))?,
    };
    Ok(model::RuntimeFilter {
        runtime_key: runtime_key.to_string(),
        numerator,
        denominator,
        use_independent_randomness: r.use_independent_randomness,
    })
}
