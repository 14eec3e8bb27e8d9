//! The HCM's `tracing` (sampling settings only: no provider) and `request_id_extension`
//! (`UuidRequestIdConfig`) fields. Without a provider Envoy still makes the per-request
//! tracing decision, packs it into `x-request-id` and counts it; that is all these mean.

use baton_proto::pb::envoy::config::route::v3 as route_pb;
use baton_proto::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm_pb;
use baton_proto::pb::envoy::extensions::request_id::uuid::v3::UuidRequestIdConfig;
use baton_proto::pb::envoy::r#type::v3::{FractionalPercent, Percent};

use super::{any_type, decode_any};
use crate::error::{ConfigError, Result};
use crate::model;

/// The one request-id extension Envoy 1.40 ships.
const UUID_REQUEST_ID: &str = "envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig";

/// `request_id_extension` at `path`: the UUID extension's options; any other type is
/// refused naming its `typed_config`.
pub(crate) fn request_id(
    extension: Option<&hcm_pb::RequestIdExtension>,
    path: &str,
) -> Result<model::RequestIdOptions> {
    let Some(any) = extension.and_then(|e| e.typed_config.as_ref()) else {
        return Ok(model::RequestIdOptions::default());
    };
    let typed_path = format!("{path}.typed_config");
    if any_type(any) != UUID_REQUEST_ID {
        return Err(ConfigError::at(
            typed_path,
            format!(
                "request id extension '{}' is not supported by Baton yet (supported: {UUID_REQUEST_ID})",
                any_type(any)
            ),
        ));
    }
    let uuid: UuidRequestIdConfig = decode_any(any, UUID_REQUEST_ID, &typed_path)?;
    Ok(model::RequestIdOptions {
        pack_trace_reason: uuid.pack_trace_reason.unwrap_or(true),
        use_request_id_for_trace_sampling: uuid.use_request_id_for_trace_sampling.unwrap_or(true),
    })
}

/// `tracing` at `path`. A `provider` is refused by the supported-fields check before
/// translation (it names `tracing.provider`); `verbose`, `max_path_tag_length`,
/// `custom_tags` and `spawn_upstream_span` shape spans only, and without a provider there
/// are none, so Envoy's answers do not change with them.
pub(crate) fn tracing(
    tracing: Option<&hcm_pb::http_connection_manager::Tracing>,
    path: &str,
) -> Result<Option<model::TracingSampling>> {
    let Some(t) = tracing else {
        return Ok(None);
    };
    if t.provider.is_some() {
        return Err(ConfigError::unsupported(format!("{path}.provider")));
    }
    Ok(Some(model::TracingSampling {
        client: hundredths(
            t.client_sampling.as_ref(),
            &format!("{path}.client_sampling"),
        )?,
        random: hundredths(
            t.random_sampling.as_ref(),
            &format!("{path}.random_sampling"),
        )?,
        overall: hundredths(
            t.overall_sampling.as_ref(),
            &format!("{path}.overall_sampling"),
        )?,
    }))
}

/// A route's `tracing` at `path`: each share a `FractionalPercent`, 100 % when unset (not
/// the connection manager's). `custom_tags` shape spans only (see [`tracing`]).
pub(crate) fn route_tracing(t: &route_pb::Tracing, path: &str) -> Result<model::TracingSampling> {
    let share = |value: Option<&FractionalPercent>, field: &str| match value {
        None => Ok(model::Fraction::ALL),
        Some(p) => super::fraction(p, &format!("{path}.{field}")),
    };
    Ok(model::TracingSampling {
        client: share(t.client_sampling.as_ref(), "client_sampling")?,
        random: share(t.random_sampling.as_ref(), "random_sampling")?,
        overall: share(t.overall_sampling.as_ref(), "overall_sampling")?,
    })
}

/// A sampling `Percent` as hundredths of a percent over 10 000 (default 100 %).
fn hundredths(value: Option<&Percent>, path: &str) -> Result<model::Fraction> {
    Ok(model::Fraction {
        numerator: u64::from(super::scaled_percent(value, path, 100.0)?),
        denominator: 10_000,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_defaults_to_all_and_rounds_to_hundredths() {
        let p = |v: f64| Percent { value: v };
        fn numerator(v: Option<&Percent>) -> u64 {
            hundredths(v, "t").expect("valid").numerator
        }
        assert_eq!(numerator(None), 10_000);
        assert_eq!(numerator(Some(&p(0.0))), 0);
        assert_eq!(numerator(Some(&p(12.345))), 1235);
        assert_eq!(hundredths(None, "t").expect("default").denominator, 10_000);
        assert_eq!(
            hundredths(Some(&p(100.5)), "t.random_sampling")
                .unwrap_err()
                .to_string(),
            "t.random_sampling.value: value must be inside range [0, 100]"
        );
    }
}
