//! A route's `max_stream_duration`: how long a stream may last, counted from its start,
//! and the `grpc-timeout` header that replaces it when `grpc_timeout_header_max` is set
//! (Envoy's rules: the header's value, capped by the max unless that is 0, less the
//! offset; 0 means no limit). When it fires before the response started, the client
//! gets Envoy's 408 `downstream duration timeout` (gRPC: DEADLINE_EXCEEDED), flag DT.

use std::time::Duration;

use baton_config::model::MaxStreamDuration;
use http::HeaderMap;

/// The stream's duration limit for a route's settings and the request's headers (None:
/// no limit).
pub fn limit(route: &MaxStreamDuration, headers: &HeaderMap) -> Option<Duration> {
    let grpc = route
        .grpc_header_max
        .and_then(|max| Some((max, grpc_timeout(headers)?)));
    let limit = match grpc {
        None => route.max?,
        Some((max, timeout)) => {
            let capped = if !max.is_zero() && timeout > max {
                max
            } else {
                timeout
            };
            match route.grpc_header_offset {
                Some(offset) if !capped.is_zero() => capped.saturating_sub(offset),
                _ => capped,
            }
        }
    };
    (!limit.is_zero()).then_some(limit)
}

/// The `grpc-timeout` header as Envoy reads it: up to 8 digits and a unit (`H`, `M`,
/// `S`, `m`, `u`, `n`), sub-millisecond values rounded up to a whole millisecond.
pub fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("grpc-timeout")?.as_bytes();
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let ceil_ms = |nanos: u64| Duration::from_millis(nanos.div_ceil(1_000_000));
    Some(match unit[0] {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => ceil_ms(n * 1_000),
        b'n' => ceil_ms(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(timeout: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("grpc-timeout", timeout.parse().expect("value"));
        h
    }

    #[test]
    fn grpc_timeout_units_and_bad_values() {
        assert_eq!(
            grpc_timeout(&headers("100m")),
            Some(Duration::from_millis(100))
        );
        assert_eq!(grpc_timeout(&headers("2S")), Some(Duration::from_secs(2)));
        assert_eq!(
            grpc_timeout(&headers("1H")),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            grpc_timeout(&headers("1500u")),
            Some(Duration::from_millis(2))
        );
        assert_eq!(grpc_timeout(&headers("1n")), Some(Duration::from_millis(1)));
        assert_eq!(grpc_timeout(&headers("123456789m")), None);
        assert_eq!(grpc_timeout(&headers("10x")), None);
        assert_eq!(grpc_timeout(&headers("-1m")), None);
        assert_eq!(grpc_timeout(&headers("m")), None);
    }

    #[test]
    fn limit_follows_envoys_rules() {
        let ms = Duration::from_millis;
        let route = MaxStreamDuration {
            max: Some(ms(1000)),
            grpc_header_max: Some(ms(300)),
            grpc_header_offset: None,
        };
        // The header, capped by the max.
        assert_eq!(limit(&route, &headers("100m")), Some(ms(100)));
        assert_eq!(limit(&route, &headers("5S")), Some(ms(300)));
        // No header: the stream duration.
        assert_eq!(limit(&route, &HeaderMap::new()), Some(ms(1000)));
        // A zero cap is no cap; an offset comes off.
        let uncapped = MaxStreamDuration {
            grpc_header_max: Some(Duration::ZERO),
            grpc_header_offset: Some(ms(50)),
            ..route
        };
        assert_eq!(limit(&uncapped, &headers("5S")), Some(ms(4950)));
        assert_eq!(limit(&uncapped, &headers("20m")), None);
        // Without grpc_timeout_header_max the header is ignored.
        let plain = MaxStreamDuration {
            grpc_header_max: None,
            ..route
        };
        assert_eq!(limit(&plain, &headers("100m")), Some(ms(1000)));
        assert_eq!(limit(&MaxStreamDuration::default(), &headers("1S")), None);
    }
}
