//! Per-worker, per-host connection pools. Each worker thread runs a current-thread
//! runtime, so the pools live in a thread-local map keyed by host id: no lock, no
//! cross-thread traffic. Pool state is only touched in short synchronous sections, never
//! across an `.await`, so the request futures stay `Send`.
//!
//! Tasks the pools spawn (HTTP/2 and upgrade connection drivers, idle watchers and
//! reapers) run on the spawning worker's runtime, i.e. on the same thread, and find the
//! same pools. (On a multi-threaded runtime they still work, only the per-thread sharing
//! gets coarser.) HTTP/1.1 pool connections have no task: see `driven`.

mod driven;
mod h2_resets;
mod head_limit;
mod http1;
mod http2;
mod lean;
pub(super) mod lean_codec;

pub use driven::UpstreamBody;

#[cfg(test)]
pub(crate) use http1::idle_connections;
#[cfg(test)]
pub(crate) use http2::open_connections;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

use http::header::{HeaderValue, HOST};
use http::{Request, Response, Uri, Version};

use super::cluster::UpstreamCluster;
use super::error::UpstreamError;
use super::host::{ActiveRequest, Host};
use super::{ConnFactsSlot, RequestBody, UpstreamConnFacts};
use crate::tls::client::TlsOverrides;

/// What a pool's connections share: the host, and the TLS options taken from requests
/// (`auto_sni`, `auto_san_validation`). As in Envoy, connections made with a different
/// SNI or SAN to verify are never shared.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    host_id: u64,
    tls: TlsOverrides,
}

impl PoolKey {
    fn new(host: &Host, tls: &TlsOverrides) -> Self {
        Self {
            host_id: host.id,
            tls: tls.clone(),
        }
    }
}

/// Every pool of one host (and TLS options) on this worker.
struct HostPools {
    /// Dropping the pools once the host is gone (DNS change) and they are empty.
    host: Weak<Host>,
    http1: http1::Http1Pool,
    http2: http2::Http2Pool,
}

/// Looked up several times per request; keys are host ids and, rarely, SNI or SAN names
/// from the TLS options, so the config-keyed hasher serves.
type PoolMap = HashMap<PoolKey, HostPools, crate::base::fast_hash::FastBuildHasher>;

thread_local! {
    static POOLS: RefCell<PoolMap> = RefCell::new(PoolMap::default());
}

/// Runs `f` on this worker's pools for `host` with `tls`, creating them on first use.
/// `f` must not await (it can't: it's a plain closure).
fn with_pools<R>(host: &Arc<Host>, tls: &TlsOverrides, f: impl FnOnce(&mut HostPools) -> R) -> R {
    POOLS.with(|pools| {
        let mut pools = pools.borrow_mut();
        let key = PoolKey::new(host, tls);
        let entry = pools.entry(key).or_insert_with(|| HostPools {
            host: Arc::downgrade(host),
            http1: http1::Http1Pool::default(),
            http2: http2::Http2Pool::default(),
        });
        f(entry)
    })
}

/// Runs `f` on existing pools of a key (background tasks); drops pools of hosts that no
/// longer exist, and those of a request-given SNI or SAN, once they are empty.
fn with_existing_pools<R>(key: &PoolKey, f: impl FnOnce(&mut HostPools) -> R) -> Option<R> {
    // `try_with`: guards may drop while the thread (and its pools) is being torn down.
    POOLS
        .try_with(|pools| {
            let mut pools = pools.borrow_mut();
            let entry = pools.get_mut(key)?;
            let result = f(entry);
            // Pools of a request-given SNI go once empty too: hosts see unbounded names.
            let gone = entry.host.strong_count() == 0 || key.tls != TlsOverrides::default();
            if gone && entry.http1.is_empty() && entry.http2.is_empty() {
                pools.remove(key);
            }
            Some(result)
        })
        .ok()
        .flatten()
}

/// Sends `req` to `host` over this worker's pool for `host` and `tls`.
pub(crate) async fn send(
    cluster: &UpstreamCluster,
    host: &Arc<Host>,
    tls: &TlsOverrides,
    req: Request<RequestBody>,
    (http2, scheme): (bool, &'static str),
    upgrade: bool,
    facts: &ConnFactsSlot,
) -> Result<Response<UpstreamBody>, UpstreamError> {
    let slot = cluster.request_slot()?;
    let active = ActiveRequest::new(host.clone(), slot.into_owned(), cluster.stats().clone());
    let result = if http2 {
        // Boxed: HTTP/1.1 requests' futures need no room for it.
        Box::pin(http2::send(
            cluster,
            host,
            tls,
            into_http2(req, host, scheme),
            active,
            facts,
        ))
        .await
        .map(|response| response.map(UpstreamBody::plain))
    } else {
        // Pinned in place, not copied into this future (see `http::stream::handle`).
        std::pin::pin!(http1::send(
            cluster,
            host,
            tls,
            into_http1(req, host),
            upgrade,
            active,
            facts
        ))
        .await
    };
    if result.is_err() {
        host.rq_error
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    result
}

/// Notes the connection a request got (the first one: a request retried on another
/// connection after its first closed unsent keeps the first's).
fn note(facts: &ConnFactsSlot, local: Option<std::net::SocketAddr>, protocol: Version) {
    let _ = facts.set(UpstreamConnFacts {
        local,
        protocol: Some(protocol),
    });
}

/// HTTP/1.1 upstream form: origin-form URI, a Host header (from the authority when
/// the downstream spoke HTTP/2), version 1.x.
fn into_http1(mut req: Request<RequestBody>, host: &Host) -> Request<RequestBody> {
    if req.headers().get(HOST).is_none() {
        let authority = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_else(|| host.address.to_string());
        if let Ok(value) = HeaderValue::from_str(&authority) {
            req.headers_mut().insert(HOST, value);
        }
    }
    if req.method() != http::Method::CONNECT && req.uri().authority().is_some() {
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        if let Ok(uri) = Uri::try_from(path) {
            *req.uri_mut() = uri;
        }
    }
    if req.version() != Version::HTTP_10 {
        *req.version_mut() = Version::HTTP_11;
    }
    // As Envoy's HTTP/1 codec: a request without a body whose method may carry one says
    // so with `content-length: 0` (not GET, HEAD, DELETE or TRACE).
    if http_body::Body::is_end_stream(req.body())
        && !matches!(
            *req.method(),
            http::Method::GET | http::Method::HEAD | http::Method::DELETE | http::Method::TRACE
        )
        && req.method() != http::Method::CONNECT
        && !req.headers().contains_key(http::header::CONTENT_LENGTH)
        && !req.headers().contains_key(http::header::TRANSFER_ENCODING)
    {
        req.headers_mut()
            .insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    // A GET or HEAD whose body is still coming and has no length (an HTTP/2 stream not
    // ended with its headers) goes chunked, as Envoy's HTTP/1 codec sends it: hyper's
    // client would assume no body for those methods and drop what follows.
    if req.version() == Version::HTTP_11
        && matches!(*req.method(), http::Method::GET | http::Method::HEAD)
        && !http_body::Body::is_end_stream(req.body())
        && !req.headers().contains_key(http::header::CONTENT_LENGTH)
        && !req.headers().contains_key(http::header::TRANSFER_ENCODING)
    {
        req.headers_mut().insert(
            http::header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    req
}

/// HTTP/2 upstream form: absolute URI (`:scheme` given, `:authority` from Host), no Host
/// header, version 2.
fn into_http2(mut req: Request<RequestBody>, host: &Host, scheme: &str) -> Request<RequestBody> {
    if req.uri().authority().is_none() {
        let authority = req
            .headers_mut()
            .remove(HOST)
            .and_then(|v| v.to_str().ok().map(str::to_owned))
            .unwrap_or_else(|| host.address.to_string());
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let absolute = if req.method() == http::Method::CONNECT {
            Uri::builder().authority(authority.as_str()).build()
        } else {
            Uri::builder()
                .scheme(scheme)
                .authority(authority.as_str())
                .path_and_query(path)
                .build()
        };
        match absolute {
            Ok(uri) => *req.uri_mut() = uri,
            Err(e) => tracing::debug!(error = %e, "bad authority for HTTP/2 upstream"),
        }
    } else {
        req.headers_mut().remove(HOST);
    }
    *req.version_mut() = Version::HTTP_2;
    req
}

/// Maps a hyper error on a sent request (before response headers) to a reset.
/// How Envoy reports HTTP/2 response headers over the cluster's limits: its codec resets
/// the stream, and the router answers 503 "remote reset" (`upstream_rq_rx_reset`).
fn http2_headers_refused(host: &Arc<Host>) -> UpstreamError {
    UpstreamError::Reset {
        host: host.clone(),
        reason: "remote reset".to_owned(),
    }
}

/// h2 refuses (REFUSED_STREAM, raised locally) a response whose header list is over the
/// connection's `max_header_list_size` (see [`http2_headers_refused`]).
fn is_oversized_h2_headers(e: &hyper::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<h2::Error>())
        .is_some_and(|h2| h2.is_library() && h2.reason() == Some(h2::Reason::REFUSED_STREAM))
}

fn reset(host: &Arc<Host>, e: &hyper::Error) -> UpstreamError {
    tracing::debug!(host = %host.address, error = %e, "upstream request failed before response headers");
    if e.is_parse() || e.is_parse_too_large() {
        return UpstreamError::ProtocolError { host: host.clone() };
    }
    if is_oversized_h2_headers(e) {
        return http2_headers_refused(host);
    }
    UpstreamError::Reset {
        host: host.clone(),
        reason: "connection termination".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty};

    fn body() -> RequestBody {
        Empty::new().map_err(|never| match never {}).boxed()
    }

    fn test_host() -> Host {
        Host::new(
            std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
            None,
            1,
            Arc::from(""),
            0,
            true,
        )
    }

    #[test]
    fn http1_form_is_origin_form_with_host() {
        let req = Request::builder()
            .uri("http://example.com/a?b=1")
            .version(Version::HTTP_2)
            .body(body())
            .expect("request");
        let req = into_http1(req, &test_host());
        assert_eq!(req.uri(), "/a?b=1");
        assert_eq!(req.headers()[HOST], "example.com");
        assert_eq!(req.version(), Version::HTTP_11);
    }

    #[test]
    fn http2_form_moves_host_into_authority() {
        let req = Request::builder()
            .uri("/x")
            .header(HOST, "svc.local:81")
            .body(body())
            .expect("request");
        let req = into_http2(req, &test_host(), "http");
        assert_eq!(req.uri(), "http://svc.local:81/x");
        assert!(req.headers().get(HOST).is_none());
        assert_eq!(req.version(), Version::HTTP_2);
    }
}
