//! Stream duration limits: the connection manager's `max_stream_duration`, which a
//! route's `max_stream_duration` replaces (0 turning it off), and the `grpc-timeout`
//! header that replaces both when the route sets `grpc_timeout_header_max` (Envoy's
//! rules: the header's value, capped by the max unless that is 0, less the offset; 0
//! means no limit), all counted from the stream's start.
//!
//! When the limit passes before the response started, the client gets Envoy's
//! `downstream duration timeout` local reply (504, or 408 while the request is still
//! arriving; gRPC: DEADLINE_EXCEEDED). Afterwards [`DurationBody`] ends the response body
//! with [`MaxDurationElapsed`], which resets the stream (HTTP/1.1: the connection closes
//! mid-body; HTTP/2: RST_STREAM on that stream). Both count
//! `downstream_rq_max_duration_reached`; Envoy logs no response flag for either.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use baton_config::model::MaxStreamDuration;
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use crate::upstream::BoxError;
use baton_shared_stats::Counter;

/// The stream's duration limit for its route's settings (None: the route sets none),
/// the connection manager's limit and the request's headers (None: no limit).
pub fn limit(
    route: Option<&MaxStreamDuration>,
    connection_default: Option<Duration>,
    headers: &HeaderMap,
) -> Option<Duration> {
    let route = route.copied().unwrap_or_default();
    let grpc = route
        .grpc_header_max
        .and_then(|max| Some((max, grpc_timeout(headers)?)));
    let limit = match grpc {
        None => match route.max {
            Some(max) => max,
            None => return connection_default,
        },
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

/// The response body ended early because the stream's duration limit passed after the
/// response headers had been sent.
#[derive(Debug, thiserror::Error)]
#[error("downstream duration timeout")]
pub(crate) struct MaxDurationElapsed;

/// A response body under the rest of the stream's duration limit.
pub(crate) struct DurationBody<B> {
    inner: B,
    /// `None` once the body ended (or the limit passed).
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    reached: Counter,
}

impl<B> DurationBody<B> {
    /// Wraps `inner`, failing it at `deadline` (counted in
    /// `downstream_rq_max_duration_reached`).
    pub(crate) fn new(inner: B, deadline: Instant, reached: Counter) -> Self {
        Self {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep_until(deadline.into()))),
            reached,
        }
    }
}

impl<B> Body for DurationBody<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(polled) = Pin::new(&mut this.inner).poll_frame(cx) {
            if polled.is_none() || this.inner.is_end_stream() {
                this.deadline = None;
            }
            return Poll::Ready(polled);
        }
        if let Some(deadline) = this.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                this.deadline = None;
                this.reached.inc();
                return Poll::Ready(Some(Err(Box::new(MaxDurationElapsed))));
            }
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
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
        assert_eq!(limit(Some(&route), None, &headers("100m")), Some(ms(100)));
        assert_eq!(limit(Some(&route), None, &headers("5S")), Some(ms(300)));
        // No header: the stream duration.
        assert_eq!(limit(Some(&route), None, &HeaderMap::new()), Some(ms(1000)));
        // A zero cap is no cap; an offset comes off.
        let uncapped = MaxStreamDuration {
            grpc_header_max: Some(Duration::ZERO),
            grpc_header_offset: Some(ms(50)),
            ..route
        };
        assert_eq!(limit(Some(&uncapped), None, &headers("5S")), Some(ms(4950)));
        assert_eq!(limit(Some(&uncapped), None, &headers("20m")), None);
        // Without grpc_timeout_header_max the header is ignored.
        let plain = MaxStreamDuration {
            grpc_header_max: None,
            ..route
        };
        assert_eq!(limit(Some(&plain), None, &headers("100m")), Some(ms(1000)));
        assert_eq!(
            limit(Some(&MaxStreamDuration::default()), None, &headers("1S")),
            None
        );
    }

    #[test]
    fn the_connection_managers_limit_applies_unless_the_route_sets_one() {
        let ms = Duration::from_millis;
        let hcm = Some(ms(300));
        let none = HeaderMap::new();
        assert_eq!(limit(None, hcm, &none), hcm);
        // Only gRPC settings and no grpc-timeout: the connection manager's.
        let grpc_only = MaxStreamDuration {
            grpc_header_max: Some(Duration::ZERO),
            ..MaxStreamDuration::default()
        };
        assert_eq!(limit(Some(&grpc_only), hcm, &none), hcm);
        assert_eq!(limit(Some(&grpc_only), hcm, &headers("1S")), Some(ms(1000)));
        // The route's own, and 0 turning it off.
        let own = |max| MaxStreamDuration {
            max: Some(max),
            ..MaxStreamDuration::default()
        };
        assert_eq!(limit(Some(&own(ms(5000))), hcm, &none), Some(ms(5000)));
        assert_eq!(limit(Some(&own(Duration::ZERO)), hcm, &none), None);
    }
}
