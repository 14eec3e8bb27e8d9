//! `local_reply_config`: the connection manager's rewrite of every local reply. The first
//! mapper whose access-log filter matches sets the body, adds headers (formatted with the
//! original status), then overrides the status; the mapper's body format, else the
//! common `body_format`, then renders the body (`%LOCAL_REPLY_BODY%` is the body so far,
//! `%RESPONSE_CODE%` the final status).

use baton_config::model::{
    AccessLogFilter, AccessLogFormat, AccessLogType, BodyFormat, LocalReplyConfig,
};
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::access_log::format;
use crate::access_log::{FormatInput, StreamInfo};

use super::headers::mutation;
use super::local_reply::LocalReply;

/// Whether an access-log filter passes for this stream (`request_headers`: the
/// downstream request's, when known).
pub fn filter_matches(
    filter: &AccessLogFilter,
    info: &StreamInfo,
    request_headers: Option<&HeaderMap>,
) -> bool {
    let input = FormatInput {
        request_headers,
        ..FormatInput::new(info)
    };
    crate::access_log::filter::matches(filter, &input, AccessLogType::NotSet)
}

/// Applies `config` to `reply` (the stream's response code is the reply's status
/// afterwards, as Envoy records it before the filters run).
pub(crate) fn rewrite(
    config: &LocalReplyConfig,
    reply: &mut LocalReply,
    info: &mut StreamInfo,
    parts: Option<&Parts>,
) {
    info.response_code = Some(reply.status.as_u16());
    let request_headers = parts.map(|p| &p.headers);
    let mut formatter = None;
    for mapper in &config.mappers {
        if !filter_matches(&mapper.filter, info, request_headers) {
            continue;
        }
        if let Some(body) = &mapper.body {
            reply.body = Bytes::from(body.clone());
        }
        if !mapper.headers_to_add.is_empty() {
            let snapshot = reply.headers.as_deref().cloned().unwrap_or_default();
            let input = FormatInput {
                method: parts.map(|p| &p.method),
                uri: parts.map(|p| &p.uri),
                request_headers,
                response_headers: Some(&snapshot),
                ..FormatInput::new(info)
            };
            mutation::add_response(reply.headers_mut(), &mapper.headers_to_add, &input);
        }
        if let Some(code) = mapper.status_code {
            if let Ok(status) = StatusCode::from_u16(code) {
                reply.status = status;
                info.response_code = Some(code);
            }
        }
        formatter = mapper.body_format_override.as_ref();
        break;
    }
    let Some(body_format) = formatter.or(config.body_format.as_ref()) else {
        return;
    };
    let original = String::from_utf8_lossy(&reply.body).into_owned();
    let empty = HeaderMap::new();
    let input = FormatInput {
        method: parts.map(|p| &p.method),
        uri: parts.map(|p| &p.uri),
        request_headers,
        response_headers: Some(reply.headers.as_deref().unwrap_or(&empty)),
        local_reply_body: Some(&original),
        ..FormatInput::new(info)
    };
    let body = render(body_format, &input);
    reply.content_type = HeaderValue::from_str(&body_format.content_type)
        .ok()
        .map(Box::new);
    reply.body = Bytes::from(body);
}

fn render(body_format: &BodyFormat, input: &FormatInput<'_>) -> String {
    let mut out = String::new();
    let omit = body_format.omit_empty_values;
    match &body_format.format {
        AccessLogFormat::Text(template) => {
            format::render_text_with(template, input, &mut out, omit)
        }
        AccessLogFormat::Json(fields) => format::render_json(fields, input, &mut out, omit),
    }
    out
}
