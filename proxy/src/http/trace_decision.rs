//! The connection manager's per-request tracing decision without a tracing provider (HCM
//! `tracing` with sampling settings only), as Envoy 1.40 makes it: the reason is read
//! from and packed into the UUID `x-request-id` (its 15th character: `9` sampled, `a`
//! forced, `b` client, `4` none) and counted in `http.<stat_prefix>.tracing.*`. Also owns
//! returning `x-request-id` to a client whose (internal) request carried
//! `x-envoy-force-trace`, which Envoy does with or without `tracing`.

use baton_config::model::{HttpConnectionManager, RequestIdOptions, TracingSampling};
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};

use super::headers::forwarding::X_REQUEST_ID;
use crate::access_log::StreamInfo;
use crate::stats::TracingCounters;

/// `x-client-trace-id`: the client asks for a trace (`client_sampling`).
static X_CLIENT_TRACE_ID: HeaderName = HeaderName::from_static("x-client-trace-id");
/// `x-envoy-force-trace`: an internal caller forces a trace.
static X_ENVOY_FORCE_TRACE: HeaderName = HeaderName::from_static("x-envoy-force-trace");

/// Where the trace reason sits in a UUID request id.
const REASON_AT: usize = 14;
/// A UUID's text length: only ids of this length carry a reason.
const UUID_LEN: usize = 36;
/// The request id's number is taken modulo this before any share's denominator (so a
/// share over 1 000 000 sees only 10 000 values, as in Envoy).
const ID_BUCKETS: u64 = 10_000;

/// Why a request is traced (or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    NotTraceable,
    Sampling,
    ServiceForced,
    ClientForced,
}

impl Reason {
    /// The digit the reason is packed as.
    fn digit(self) -> u8 {
        match self {
            Reason::NotTraceable => b'4',
            Reason::Sampling => b'9',
            Reason::ServiceForced => b'a',
            Reason::ClientForced => b'b',
        }
    }
}

/// The request-side work, after the forwarding headers are settled (the request id made
/// or kept, `x-envoy-force-trace` gone unless `internal`) and the route is chosen (its
/// `tracing` replaces the connection manager's shares, as Envoy decides after routing).
/// The caller skips it when `tracing` is absent and the request is not internal.
pub(crate) fn on_request(
    headers: &mut HeaderMap,
    hcm: &HttpConnectionManager,
    route_sampling: Option<&TracingSampling>,
    counters: Option<&TracingCounters>,
    internal: bool,
    info: &mut StreamInfo,
) {
    if let Some(sampling) = &hcm.tracing {
        let reason = decide(headers, route_sampling.unwrap_or(sampling), hcm.request_id);
        if let Some(counters) = counters {
            match reason {
                Reason::NotTraceable => counters.not_traceable.inc(),
                Reason::Sampling => counters.random_sampling.inc(),
                Reason::ServiceForced => counters.service_forced.inc(),
                Reason::ClientForced => counters.client_enabled.inc(),
            }
        }
        info.trace_forced = reason == Reason::ServiceForced;
    }
    if internal && headers.contains_key(&X_ENVOY_FORCE_TRACE) {
        info.force_trace_request_id = headers.get(&X_REQUEST_ID).cloned();
    }
}

/// Envoy's decision: an id already carrying a reason keeps it; otherwise the client's
/// `x-client-trace-id` (at `client_sampling`), then `x-envoy-force-trace`, then
/// `random_sampling` over the id's leading digits; `overall_sampling` caps it all. An
/// id that is not hex up front is never traced; with `use_request_id_for_trace_sampling`
/// off the id is left alone and every request counts as sampled.
fn decide(headers: &mut HeaderMap, sampling: &TracingSampling, ids: RequestIdOptions) -> Reason {
    if !ids.use_request_id_for_trace_sampling {
        return Reason::Sampling;
    }
    let Some(id_number) = headers
        .get(&X_REQUEST_ID)
        .and_then(|id| crate::access_log::uuid_integer(id.as_bytes()))
    else {
        return Reason::NotTraceable;
    };
    let bucket = id_number % ID_BUCKETS;
    let runtime = crate::runtime::snapshot();
    let mut reason = if ids.pack_trace_reason {
        packed_reason(headers)
    } else {
        Reason::NotTraceable
    };
    if reason == Reason::NotTraceable {
        reason = if headers.contains_key(&X_CLIENT_TRACE_ID)
            && runtime.feature_enabled("tracing.client_enabled", sampling.client, || {
                rand::random::<u64>()
            }) {
            Reason::ClientForced
        } else if headers.contains_key(&X_ENVOY_FORCE_TRACE) {
            Reason::ServiceForced
        } else if runtime.feature_enabled("tracing.random_sampling", sampling.random, || bucket) {
            Reason::Sampling
        } else {
            Reason::NotTraceable
        };
        if reason != Reason::NotTraceable && ids.pack_trace_reason {
            pack(headers, reason);
        }
    }
    if !runtime.feature_enabled("tracing.global_enabled", sampling.overall, || bucket) {
        // Whatever digit the id had (even one that is no reason) becomes `4`.
        if ids.pack_trace_reason {
            pack(headers, Reason::NotTraceable);
        }
        reason = Reason::NotTraceable;
    }
    reason
}

/// An external request id kept at the edge (`preserve_external_request_id`) loses any
/// trace reason it claims: Envoy writes `4` into it, with or without `tracing`.
pub(crate) fn clear_external_reason(headers: &mut HeaderMap, ids: RequestIdOptions) {
    if ids.pack_trace_reason {
        pack(headers, Reason::NotTraceable);
    }
}

/// The reason a UUID request id already carries.
fn packed_reason(headers: &HeaderMap) -> Reason {
    let Some(id) = headers.get(&X_REQUEST_ID).map(HeaderValue::as_bytes) else {
        return Reason::NotTraceable;
    };
    if id.len() != UUID_LEN {
        return Reason::NotTraceable;
    }
    match id[REASON_AT] {
        b'9' => Reason::Sampling,
        b'a' => Reason::ServiceForced,
        b'b' => Reason::ClientForced,
        _ => Reason::NotTraceable,
    }
}

/// Writes `reason` into a UUID request id (other ids stay as they are).
fn pack(headers: &mut HeaderMap, reason: Reason) {
    let Some(id) = headers.get(&X_REQUEST_ID) else {
        return;
    };
    if id.len() != UUID_LEN || id.as_bytes()[REASON_AT] == reason.digit() {
        return;
    }
    let mut text = id.as_bytes().to_vec();
    text[REASON_AT] = reason.digit();
    // The one byte changed is a hex digit: the value stays a valid header value.
    if let Ok(packed) = HeaderValue::from_bytes(&text) {
        headers.insert(X_REQUEST_ID.clone(), packed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_config::model::Fraction;

    fn sampling(client: u64, random: u64, overall: u64) -> TracingSampling {
        let hundredths = |numerator| Fraction {
            numerator,
            denominator: 10_000,
        };
        TracingSampling {
            client: hundredths(client),
            random: hundredths(random),
            overall: hundredths(overall),
        }
    }

    fn request(id: &str, extra: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID.clone(), HeaderValue::from_str(id).expect("id"));
        for name in extra {
            h.insert(*name, HeaderValue::from_static("1"));
        }
        h
    }

    fn id(h: &HeaderMap) -> &str {
        h.get(&X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    const PLAIN: &str = "00001387-d9cb-469f-a165-70867728950e";

    #[test]
    fn random_sampling_reads_the_ids_leading_digits() {
        // 0x1387 = 4999: inside 50 %; 0x1388 = 5000: outside.
        let mut h = request(PLAIN, &[]);
        let r = decide(
            &mut h,
            &sampling(10_000, 5000, 10_000),
            RequestIdOptions::default(),
        );
        assert_eq!(
            (r, id(&h)),
            (Reason::Sampling, "00001387-d9cb-969f-a165-70867728950e")
        );
        let mut h = request("00001388-d9cb-469f-a165-70867728950e", &[]);
        let r = decide(
            &mut h,
            &sampling(10_000, 5000, 10_000),
            RequestIdOptions::default(),
        );
        assert_eq!(
            (r, id(&h)),
            (Reason::NotTraceable, "00001388-d9cb-469f-a165-70867728950e")
        );
    }

    #[test]
    fn client_then_forced_then_random_and_overall_caps() {
        let all = sampling(10_000, 0, 10_000);
        let mut h = request(PLAIN, &["x-client-trace-id", "x-envoy-force-trace"]);
        assert_eq!(
            decide(&mut h, &all, RequestIdOptions::default()),
            Reason::ClientForced
        );
        assert_eq!(&id(&h)[14..15], "b");
        let mut h = request(PLAIN, &["x-client-trace-id", "x-envoy-force-trace"]);
        let no_client = sampling(0, 0, 10_000);
        assert_eq!(
            decide(&mut h, &no_client, RequestIdOptions::default()),
            Reason::ServiceForced
        );
        let mut h = request("00001387-d9cb-969f-a165-70867728950e", &[]);
        assert_eq!(
            decide(
                &mut h,
                &sampling(10_000, 10_000, 0),
                RequestIdOptions::default()
            ),
            Reason::NotTraceable
        );
        assert_eq!(id(&h), PLAIN);
        // The cap writes `4` over any digit, reason or not.
        let mut h = request("00001387-d9cb-169f-a165-70867728950e", &[]);
        assert_eq!(
            decide(
                &mut h,
                &sampling(10_000, 10_000, 0),
                RequestIdOptions::default()
            ),
            Reason::NotTraceable
        );
        assert_eq!(id(&h), PLAIN);
    }

    #[test]
    fn ids_that_are_not_uuids_are_left_alone() {
        let mut h = request("my-own-id", &["x-envoy-force-trace"]);
        assert_eq!(
            decide(
                &mut h,
                &sampling(10_000, 10_000, 10_000),
                RequestIdOptions::default()
            ),
            Reason::NotTraceable
        );
        assert_eq!(id(&h), "my-own-id");
        let mut h = request("0f8fad5b-d9cb-469f", &["x-envoy-force-trace"]);
        assert_eq!(
            decide(
                &mut h,
                &sampling(10_000, 10_000, 10_000),
                RequestIdOptions::default()
            ),
            Reason::ServiceForced
        );
        assert_eq!(id(&h), "0f8fad5b-d9cb-469f");
    }

    #[test]
    fn without_packing_or_id_sampling_the_id_is_untouched() {
        let no_pack = RequestIdOptions {
            pack_trace_reason: false,
            use_request_id_for_trace_sampling: true,
        };
        let mut h = request("00001387-d9cb-969f-a165-70867728950e", &[]);
        assert_eq!(
            decide(&mut h, &sampling(10_000, 10_000, 10_000), no_pack),
            Reason::Sampling
        );
        assert_eq!(&id(&h)[14..15], "9");
        let no_ids = RequestIdOptions {
            pack_trace_reason: true,
            use_request_id_for_trace_sampling: false,
        };
        let mut h = request(PLAIN, &[]);
        assert_eq!(decide(&mut h, &sampling(0, 0, 0), no_ids), Reason::Sampling);
        assert_eq!(id(&h), PLAIN);
    }
}
