//! Access loggers (`envoy.access_loggers.file` / `stdout` / `stderr`) and their formats.

use baton_proto::pb::envoy::config::accesslog::v3 as accesslog_pb;
use baton_proto::pb::envoy::config::core::v3 as core_pb;
use baton_proto::pb::envoy::extensions::access_loggers::file::v3 as file_pb;
use baton_proto::pb::envoy::extensions::access_loggers::stream::v3 as stream_pb;

use super::{any_type, data_source, decode_any, format};
use crate::error::{ConfigError, Result};
use crate::model::{AccessLog, AccessLogFormat, AccessLogSink, JsonFormatValue};

const FILE_TYPE: &str = "envoy.extensions.access_loggers.file.v3.FileAccessLog";
const STDOUT_TYPE: &str = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog";
const STDERR_TYPE: &str = "envoy.extensions.access_loggers.stream.v3.StderrAccessLog";

/// An `access_log` list.
pub(crate) fn list(logs: &[accesslog_pb::AccessLog], path: &str) -> Result<Vec<AccessLog>> {
    logs.iter()
        .enumerate()
        .map(|(i, log)| translate(log, &format!("{path}[{i}]")))
        .collect()
}

/// The admin's deprecated `access_log_path`: a file log in Envoy's default format
/// (`/dev/null` and empty: none).
pub(crate) fn admin_path_log(file: &str) -> Result<Option<AccessLog>> {
    if file.is_empty() || file == "/dev/null" {
        return Ok(None);
    }
    let sink = match file {
        "/dev/stdout" => AccessLogSink::Stdout,
        "/dev/stderr" => AccessLogSink::Stderr,
        other => AccessLogSink::File(other.into()),
    };
    Ok(Some(AccessLog {
        filter: None,
        sink,
        format: default_format()?,
        omit_empty_values: false,
    }))
}

fn translate(log: &accesslog_pb::AccessLog, path: &str) -> Result<AccessLog> {
    use accesslog_pb::access_log::ConfigType;
    let filter = log
        .filter
        .as_ref()
        .map(|f| super::access_log_filter::translate(f, &format!("{path}.filter")))
        .transpose()?;
    let any = match &log.config_type {
        Some(ConfigType::TypedConfig(any)) => any,
        None => {
            return Err(ConfigError::at(
                format!("{path}.typed_config"),
                format!("required (e.g. \"@type\": type.googleapis.com/{FILE_TYPE})"),
            ))
        }
    };
    let typed_path = format!("{path}.typed_config");
    match any_type(any) {
        FILE_TYPE => {
            use file_pb::file_access_log::AccessLogFormat as Format;
            let file: file_pb::FileAccessLog = decode_any(any, FILE_TYPE, &typed_path)?;
            let file_path = super::required(&file.path, &format!("{typed_path}.path"))?;
            let sink = match file_path {
                "/dev/stdout" => AccessLogSink::Stdout,
                "/dev/stderr" => AccessLogSink::Stderr,
                other => AccessLogSink::File(other.into()),
            };
            let mut omit_empty_values = false;
            let format = match &file.access_log_format {
                None => default_format()?,
                Some(Format::Format(text)) if text.is_empty() => default_format()?,
                Some(Format::Format(text)) => {
                    AccessLogFormat::Text(format::parse(text, &format!("{typed_path}.format"))?)
                }
                Some(Format::JsonFormat(json)) => {
                    json_format(json, &format!("{typed_path}.json_format"))?
                }
                Some(Format::LogFormat(f)) => {
                    omit_empty_values = f.omit_empty_values;
                    substitution_format_body(f, &format!("{typed_path}.log_format"))?
                }
                Some(Format::TypedJsonFormat(_)) => {
                    return Err(ConfigError::unsupported(format!(
                        "{typed_path}.typed_json_format"
                    )))
                }
            };
            Ok(AccessLog {
                filter,
                sink,
                format,
                omit_empty_values,
            })
        }
        STDOUT_TYPE => {
            let stdout: stream_pb::StdoutAccessLog = decode_any(any, STDOUT_TYPE, &typed_path)?;
            let (format, omit_empty_values) = match &stdout.access_log_format {
                Some(stream_pb::stdout_access_log::AccessLogFormat::LogFormat(f)) => (
                    substitution_format_body(f, &format!("{typed_path}.log_format"))?,
                    f.omit_empty_values,
                ),
                None => (default_format()?, false),
            };
            Ok(AccessLog {
                filter,
                sink: AccessLogSink::Stdout,
                format,
                omit_empty_values,
            })
        }
        STDERR_TYPE => {
            let stderr: stream_pb::StderrAccessLog = decode_any(any, STDERR_TYPE, &typed_path)?;
            let (format, omit_empty_values) = match &stderr.access_log_format {
                Some(stream_pb::stderr_access_log::AccessLogFormat::LogFormat(f)) => (
                    substitution_format_body(f, &format!("{typed_path}.log_format"))?,
                    f.omit_empty_values,
                ),
                None => (default_format()?, false),
            };
            Ok(AccessLog {
                filter,
                sink: AccessLogSink::Stderr,
                format,
                omit_empty_values,
            })
        }
        other => Err(ConfigError::at(
            format!("{typed_path}.@type"),
            format!("unsupported access logger type '{other}' (supported: file, stdout, stderr)"),
        )),
    }
}

fn default_format() -> Result<AccessLogFormat> {
    Ok(AccessLogFormat::Text(format::parse(
        format::DEFAULT_ACCESS_LOG_FORMAT,
        "",
    )?))
}

/// The format of a `SubstitutionFormatString` (`log_format`, a local reply's
/// `body_format`; callers take its `omit_empty_values`).
pub(crate) fn substitution_format_body(
    f: &core_pb::SubstitutionFormatString,
    path: &str,
) -> Result<AccessLogFormat> {
    use core_pb::substitution_format_string::Format;
    if !f.formatters.is_empty() {
        return Err(ConfigError::unsupported(format!("{path}.formatters")));
    }
    #[allow(deprecated)]
    match &f.format {
        Some(Format::TextFormat(text)) => Ok(AccessLogFormat::Text(format::parse(
            text,
            &format!("{path}.text_format"),
        )?)),
        Some(Format::TextFormatSource(source)) => {
            let source_path = format!("{path}.text_format_source");
            let bytes = data_source(source, &source_path)?;
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| ConfigError::at(&source_path, "must be UTF-8"))?;
            Ok(AccessLogFormat::Text(format::parse(text, &source_path)?))
        }
        Some(Format::JsonFormat(json)) => json_format(json, &format!("{path}.json_format")),
        None => default_format(),
    }
}

fn json_format(json: &prost_types::Struct, path: &str) -> Result<AccessLogFormat> {
    Ok(AccessLogFormat::Json(json_object(json, path)?))
}

fn json_object(json: &prost_types::Struct, path: &str) -> Result<Vec<(String, JsonFormatValue)>> {
    json.fields
        .iter()
        .map(|(key, value)| Ok((key.clone(), json_value(value, &format!("{path}.{key}"))?)))
        .collect()
}

fn json_value(value: &prost_types::Value, path: &str) -> Result<JsonFormatValue> {
    use prost_types::value::Kind;
    Ok(match &value.kind {
        Some(Kind::StringValue(s)) => JsonFormatValue::Template(format::parse(s, path)?),
        Some(Kind::StructValue(s)) => JsonFormatValue::Object(json_object(s, path)?),
        Some(Kind::NumberValue(n)) => JsonFormatValue::Constant(
            serde_json::Number::from_f64(*n)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
        ),
        Some(Kind::BoolValue(b)) => JsonFormatValue::Constant(serde_json::Value::Bool(*b)),
        Some(Kind::NullValue(_)) | None => JsonFormatValue::Constant(serde_json::Value::Null),
        Some(Kind::ListValue(_)) => {
            return Err(ConfigError::at(
                path,
                "lists are not allowed in json_format (as in Envoy)",
            ))
        }
    })
}
