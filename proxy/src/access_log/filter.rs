//! Access-log filters (`AccessLogFilter`) evaluated for one entry: by access loggers
//! before they format a line, and by `local_reply_config` mappers.

use baton_config::model::{AccessLogFilter, AccessLogType, Comparison, RuntimeFilter};
use http::HeaderMap;

use super::FormatInput;
use crate::http::router::route_match::header_matches;

/// Whether `filter` passes for an entry of `log_type` about `input`.
pub fn matches(filter: &AccessLogFilter, input: &FormatInput<'_>, log_type: AccessLogType) -> bool {
    let info = input.info;
    match filter {
        AccessLogFilter::StatusCode(c) => {
            c.matches(u64::from(info.response_code.unwrap_or(0)), runtime_value(c))
        }
        AccessLogFilter::Duration(c) => {
            c.matches(info.elapsed().as_millis() as u64, runtime_value(c))
        }
        AccessLogFilter::NotHealthCheck => true,
        AccessLogFilter::Traceable => info.trace_forced,
        AccessLogFilter::Runtime(r) => runtime_sampled(r, input.request_headers),
        AccessLogFilter::ResponseFlag(flags) if flags.is_empty() => !info.flags.is_empty(),
        AccessLogFilter::ResponseFlag(flags) => flags.iter().any(|f| info.flags.has_named(f)),
        AccessLogFilter::Header(m) => match input.request_headers {
            Some(h) => header_matches(m, h),
            None => header_matches(m, &HeaderMap::new()),
        },
        AccessLogFilter::GrpcStatus { statuses, exclude } => {
            // Envoy: no status at all counts as UNKNOWN.
            let status = grpc_status(input).unwrap_or(2);
            statuses.contains(&status) != *exclude
        }
        AccessLogFilter::Metadata {
            match_if_key_not_found,
        } => *match_if_key_not_found,
        AccessLogFilter::LogType { types, exclude } => types.contains(&log_type) != *exclude,
        AccessLogFilter::And(all) => all.iter().all(|f| matches(f, input, log_type)),
        AccessLogFilter::Or(any) => any.iter().any(|f| matches(f, input, log_type)),
    }
}

/// A comparison's value: its runtime key's (as `/runtime_modify` or a runtime layer
/// set it), else its default, as Envoy reads it per entry.
fn runtime_value(c: &Comparison) -> u64 {
    if c.runtime_key.is_empty() {
        return c.value;
    }
    crate::runtime::snapshot()
        .integer(&c.runtime_key)
        .unwrap_or(c.value)
}

/// The stream's gRPC status as Envoy's filter reads it: `grpc-status` of the trailers,
/// else of the headers (a value past the known codes is not a status), else mapped from
/// the HTTP status.
fn grpc_status(input: &FormatInput<'_>) -> Option<i32> {
    let from = |headers: Option<&HeaderMap>| {
        let value = headers?.get("grpc-status")?.to_str().ok()?;
        let code: i32 = value.trim().parse().ok()?;
        Some(if (0..=16).contains(&code) { code } else { -1 })
    };
    from(input.response_trailers)
        .or_else(|| from(input.response_headers))
        .or_else(|| input.info.response_code.map(http_to_grpc_status))
}

/// Envoy's mapping of an HTTP status to a gRPC status.
fn http_to_grpc_status(status: u16) -> i32 {
    match status {
        400 => 13,             // INTERNAL
        401 => 16,             // UNAUTHENTICATED
        403 => 7,              // PERMISSION_DENIED
        404 => 12,             // UNIMPLEMENTED
        429 | 502..=504 => 14, // UNAVAILABLE
        _ => 2,                // UNKNOWN
    }
}

/// Envoy's runtime sampling: the percentage from the runtime key (else the configured
/// one) against a value drawn from the request's `x-request-id` (a UUID) unless
/// `use_independent_randomness`, else a random one.
fn runtime_sampled(filter: &RuntimeFilter, request_headers: Option<&HeaderMap>) -> bool {
    let denominator = filter.denominator;
    let drawn = if filter.use_independent_randomness {
        None
    } else {
        request_headers
            .and_then(|h| h.get("x-request-id"))
            .and_then(|v| uuid_integer(v.as_bytes()))
            .map(|n| n % denominator)
    };
    let drawn = drawn.unwrap_or_else(rand::random::<u64>);
    let numerator = crate::runtime::snapshot()
        .integer(&filter.runtime_key)
        .unwrap_or(filter.numerator);
    drawn % denominator < numerator.min(denominator)
}

/// The integer Envoy's UUID request ids give for sampling: their first 8 hex digits.
pub(crate) fn uuid_integer(id: &[u8]) -> Option<u64> {
    let head = std::str::from_utf8(id.get(..8)?).ok()?;
    u64::from_str_radix(head, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_request_ids_sample_by_their_first_digits() {
        assert_eq!(
            uuid_integer(b"0000000a-e29b-41d4-a716-446655440000"),
            Some(10)
        );
        assert_eq!(uuid_integer(b"zzzzzzzz-e29b-41d4-a716-446655440000"), None);
        assert_eq!(uuid_integer(b"short"), None);
    }

    #[test]
    fn http_statuses_map_to_grpc_statuses_as_envoy() {
        assert_eq!(http_to_grpc_status(503), 14);
        assert_eq!(http_to_grpc_status(404), 12);
        assert_eq!(http_to_grpc_status(200), 2);
    }
}
