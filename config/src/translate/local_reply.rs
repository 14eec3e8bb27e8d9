//! `local_reply_config` of the connection manager: mappers (an access-log filter, then a
//! status code, body, headers and body format) and the common `body_format`.

use baton_proto::pb::envoy::config::core::v3 as core_pb;
use baton_proto::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm_pb;

use super::{access_log, data_source, header_value_options};
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
        filter: super::access_log_filter::translate(filter, &format!("{path}.filter"))?,
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
