//! The filter chain with test-only filters, through the real stream handler over an
//! in-memory HTTP/1.1 connection: request hooks in config order and response hooks in
//! reverse, a local reply from a middle filter (later filters and the router skipped,
//! every response hook still run, as Envoy 1.40 does), route cache clearing, state from
//! request to response, async hooks, route-based disabling; and the promise that running
//! an empty (or state-free) chain allocates nothing.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::access_log::StreamInfo;
use crate::base::conn_info::ConnInfo;
use crate::base::drain::DrainSignal;
use crate::http::body::RequestProgress;
use crate::http::context::{HcmRuntime, HttpContext};
use crate::http::local_reply::LocalReply;
use crate::http::normalize::tests::allocations_during;
use crate::http::stream::{self, ConnShared, Exchange};
use crate::upstream::ClusterManager;

use super::*;

/// A connection manager with direct-response routes: `/a` (body "a"), `/b` (body "b"),
/// and `/off` (body "off", where the filter named `off` is disabled per route).
fn runtime(filters: Vec<(&str, bool, Box<dyn HttpFilter>)>) -> Arc<HcmRuntime> {
    let yaml = r#"
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: filter_tests
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
          route_config:
            virtual_hosts:
            - name: v
              domains: ["*"]
              routes:
              - name: a
                match: { prefix: "/a" }
                direct_response: { status: 200, body: { inline_string: "a" } }
                response_headers_to_add: [ { header: { key: x-route, value: a } } ]
              - name: b
                match: { prefix: "/b" }
                direct_response: { status: 200, body: { inline_string: "b" } }
              - match: { prefix: "/off" }
                direct_response: { status: 200, body: { inline_string: "off" } }
                typed_per_filter_config:
                  "off": { "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig, disabled: true }
"#;
    let loaded = baton_config::load_yaml_str(yaml).expect("test config loads");
    let baton_config::model::NetworkFilter::Http(hcm) =
        &loaded.model.listeners[0].filter_chains[0].network
    else {
        panic!("not an HCM");
    };
    let mut runtime = HcmRuntime::new(hcm.clone()).expect("runtime");
    runtime.filters = FilterChain::from_filters(filters);
    Arc::new(runtime)
}

async fn shared(runtime: Arc<HcmRuntime>) -> Arc<ConnShared> {
    let clusters = ClusterManager::initialize(&[]).await.expect("no clusters");
    let ctx = Arc::new(HttpContext::new(clusters));
    let addr = "127.0.0.1:1".parse().expect("addr");
    Arc::new(ConnShared::new(
        runtime,
        ctx,
        ConnInfo::plain(addr, addr),
        DrainSignal::never(),
    ))
}

/// Sends `request` through `stream::handle` over an in-memory HTTP/1.1 connection.
async fn send(runtime: Arc<HcmRuntime>, request: Request<Full<Bytes>>) -> (Response<()>, Bytes) {
    let shared = shared(runtime).await;
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
        let shared = shared.clone();
        let req = req.map(crate::http::codec::DownstreamBody::Hyper);
        async move { Ok::<_, Infallible>(stream::handle(shared, req).await) }
    });
    tokio::spawn(
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(server_io), service),
    );
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(client_io))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let response = sender.send_request(request).await.expect("response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (Response::from_parts(parts, ()), body)
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .uri(path)
        .header("host", "example.test")
        .body(Full::default())
        .expect("request")
}

type Log = Arc<Mutex<Vec<String>>>;

fn record(log: &Log, event: String) {
    log.lock().unwrap_or_else(|p| p.into_inner()).push(event);
}

fn events(log: &Log) -> Vec<String> {
    log.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Logs both hooks and appends its tag to `x-order` on the request and the response.
#[derive(Debug)]
struct Tagger {
    tag: &'static str,
    log: Log,
}

impl HttpFilter for Tagger {
    fn on_request_headers<'a>(
        &'a self,
        request: &'a mut RequestContext<'_, '_>,
    ) -> FilterStatus<'a> {
        record(&self.log, format!("request {}", self.tag));
        request
            .headers_mut()
            .append("x-order", HeaderValue::from_static(self.tag));
        FilterStatus::CONTINUE
    }

    fn on_response_headers(&self, response: &mut ResponseContext<'_, '_>) {
        let seen = response.route().map(|r| r.route.name.clone());
        record(&self.log, format!("response {} route={seen:?}", self.tag));
        response
            .headers_mut()
            .append("x-order", HeaderValue::from_static(self.tag));
    }
}

/// Answers 418 with a header of its own.
#[derive(Debug)]
struct Teapot {
    log: Log,
}

impl HttpFilter for Teapot {
    fn on_request_headers<'a>(&'a self, _: &'a mut RequestContext<'_, '_>) -> FilterStatus<'a> {
        record(&self.log, "request teapot".into());
        let mut reply = LocalReply::new(418, "short and stout", None, "teapot");
        reply
            .headers_mut()
            .insert("x-teapot", HeaderValue::from_static("1"));
        FilterStatus::reply(reply)
    }

    fn on_response_headers(&self, _: &mut ResponseContext<'_, '_>) {
        record(&self.log, "response teapot".into());
    }
}

fn tagger(tag: &'static str, log: &Log) -> Box<dyn HttpFilter> {
    Box::new(Tagger {
        tag,
        log: log.clone(),
    })
}

fn order(response: &Response<()>) -> Vec<&str> {
    response
        .headers()
        .get_all("x-order")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

#[tokio::test]
async fn request_hooks_in_order_response_hooks_in_reverse() {
    let log = Log::default();
    let rt = runtime(vec![
        ("one", false, tagger("one", &log)),
        ("two", false, tagger("two", &log)),
        ("three", false, tagger("three", &log)),
    ]);
    let (response, body) = send(rt, get("/a")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(&body[..], b"a", "the router answered");
    // Route response mutations come before the filters' response hooks (as in Envoy).
    assert_eq!(response.headers()["x-route"], "a");
    assert_eq!(order(&response), ["three", "two", "one"]);
    assert_eq!(
        events(&log),
        [
            "request one",
            "request two",
            "request three",
            "response three route=Some(\"a\")",
            "response two route=Some(\"a\")",
            "response one route=Some(\"a\")",
        ]
    );
}

#[tokio::test]
async fn local_reply_from_a_middle_filter_skips_the_rest_but_not_the_response_hooks() {
    let log = Log::default();
    let rt = runtime(vec![
        ("one", false, tagger("one", &log)),
        ("teapot", false, Box::new(Teapot { log: log.clone() })),
        ("three", false, tagger("three", &log)),
    ]);
    let (response, body) = send(rt, get("/a")).await;
    assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
    assert_eq!(&body[..], b"short and stout", "the router did not run");
    assert_eq!(response.headers()["x-teapot"], "1");
    assert_eq!(response.headers()["content-type"], "text/plain");
    // A filter's local reply gets no route response mutations (Envoy's behaviour).
    assert!(response.headers().get("x-route").is_none());
    // Envoy 1.40 encodes a local reply through every encoder filter, including those
    // after the one that replied (whose request hook never ran).
    assert_eq!(order(&response), ["three", "one"]);
    assert_eq!(
        events(&log),
        [
            "request one",
            "request teapot",
            "response three route=Some(\"a\")",
            "response teapot",
            "response one route=Some(\"a\")",
        ]
    );
}

#[tokio::test]
async fn connection_manager_replies_pass_the_response_hooks() {
    // Envoy sends its own local replies (here 404 no route from the router, and 400 for
    // a request the connection manager refuses) through the filters too.
    let log = Log::default();
    let rt = runtime(vec![("one", false, tagger("one", &log))]);
    let (response, _) = send(rt.clone(), get("/none")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(order(&response), ["one"]);
    let refused = Request::builder()
        .uri("/a")
        .version(http::Version::HTTP_10)
        .body(Full::default())
        .expect("request");
    let (response, _) = send(rt, refused).await;
    assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
    assert_eq!(order(&response), ["one"]);
}

/// Rewrites `/a...` to `/b...` and clears the route cache.
#[derive(Debug)]
struct Rewriter {
    seen: Log,
}

impl HttpFilter for Rewriter {
    fn on_request_headers<'a>(
        &'a self,
        request: &'a mut RequestContext<'_, '_>,
    ) -> FilterStatus<'a> {
        let before = request.route().map(|r| r.route.name.clone());
        record(&self.seen, format!("before {before:?}"));
        let path = request.parts().uri.path().replacen("/a", "/b", 1);
        request.parts_mut().uri = path.parse().expect("uri");
        // Without clearing, the cached route stays.
        let cached = request.route().map(|r| r.route.name.clone());
        record(&self.seen, format!("cached {cached:?}"));
        request.clear_route_cache();
        let after = request.route().map(|r| r.route.name.clone());
        record(&self.seen, format!("after {after:?}"));
        FilterStatus::CONTINUE
    }
}

#[tokio::test]
async fn clearing_the_route_cache_reroutes() {
    let seen = Log::default();
    let rt = runtime(vec![(
        "rewrite",
        false,
        Box::new(Rewriter { seen: seen.clone() }),
    )]);
    let (response, body) = send(rt, get("/a")).await;
    assert_eq!(&body[..], b"b", "the router used the new route");
    assert!(response.headers().get("x-route").is_none());
    assert_eq!(
        events(&seen),
        [
            "before Some(\"a\")",
            "cached Some(\"a\")",
            "after Some(\"b\")"
        ]
    );
}

/// Stores the request's `x-carry` value on the request side, echoes it on the response.
#[derive(Debug)]
struct Carrier;

impl HttpFilter for Carrier {
    fn on_request_headers<'a>(
        &'a self,
        request: &'a mut RequestContext<'_, '_>,
    ) -> FilterStatus<'a> {
        if let Some(v) = request.headers().get("x-carry").cloned() {
            request.set_state(v);
        }
        FilterStatus::CONTINUE
    }

    fn on_response_headers(&self, response: &mut ResponseContext<'_, '_>) {
        if let Some(v) = response.take_state::<HeaderValue>() {
            response.headers_mut().insert("x-carried", v);
        }
    }
}

/// Waits (as an I/O-bound filter would) before tagging the request it still borrows.
#[derive(Debug)]
struct Waiter;

impl HttpFilter for Waiter {
    fn on_request_headers<'a>(
        &'a self,
        request: &'a mut RequestContext<'_, '_>,
    ) -> FilterStatus<'a> {
        FilterStatus::pending(async move {
            tokio::task::yield_now().await;
            if request
                .headers()
                .get("x-carry")
                .is_some_and(|v| v == "deny")
            {
                return Verdict::LocalReply(LocalReply::new(403, "denied", None, "waiter"));
            }
            request.set_state(1u8);
            Verdict::Continue
        })
    }
}

#[tokio::test]
async fn filter_state_reaches_the_response_side_and_hooks_may_wait() {
    let rt = runtime(vec![
        ("carry", false, Box::new(Carrier)),
        ("wait", false, Box::new(Waiter)),
    ]);
    let mut request = get("/b");
    request
        .headers_mut()
        .insert("x-carry", HeaderValue::from_static("v1"));
    let (response, body) = send(rt.clone(), request).await;
    assert_eq!(&body[..], b"b");
    assert_eq!(response.headers()["x-carried"], "v1");

    let mut request = get("/b");
    request
        .headers_mut()
        .insert("x-carry", HeaderValue::from_static("deny"));
    let (response, body) = send(rt, request).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(&body[..], b"denied");
    assert_eq!(response.headers()["x-carried"], "deny");
}

#[tokio::test]
async fn route_based_disabling() {
    let log = Log::default();
    let rt = runtime(vec![
        ("off", false, tagger("off", &log)),
        // Disabled by default, and no route enables it.
        ("dormant", true, tagger("dormant", &log)),
        ("on", false, tagger("on", &log)),
    ]);
    let (response, body) = send(rt.clone(), get("/off")).await;
    assert_eq!(&body[..], b"off");
    assert_eq!(order(&response), ["on"]);
    let (response, _) = send(rt, get("/a")).await;
    assert_eq!(order(&response), ["on", "off"]);
}

/// Buffers the request body (at most `limit` bytes) and reports its length on the
/// response.
#[derive(Debug)]
struct Buffering {
    limit: usize,
}

impl HttpFilter for Buffering {
    fn on_request_headers<'a>(
        &'a self,
        request: &'a mut RequestContext<'_, '_>,
    ) -> FilterStatus<'a> {
        FilterStatus::pending(async move {
            match request.body_mut().buffer(self.limit).await {
                Ok(body) => {
                    request.set_state(body.len());
                    Verdict::Continue
                }
                Err(reply) => Verdict::LocalReply(reply),
            }
        })
    }

    fn on_response_headers(&self, response: &mut ResponseContext<'_, '_>) {
        if let Some(len) = response.take_state::<usize>() {
            response.headers_mut().insert("x-body-len", len.into());
        }
    }
}

#[tokio::test]
async fn request_body_buffered_up_to_a_limit() {
    let post = || {
        Request::builder()
            .method("POST")
            .uri("/b")
            .header("host", "example.test")
            .body(Full::new(Bytes::from_static(b"0123456789")))
            .expect("request")
    };
    let (response, body) = send(
        runtime(vec![("buffer", false, Box::new(Buffering { limit: 16 }))]),
        post(),
    )
    .await;
    assert_eq!(&body[..], b"b");
    assert_eq!(response.headers()["x-body-len"], "10");
    let (response, body) = send(
        runtime(vec![("buffer", false, Box::new(Buffering { limit: 8 }))]),
        post(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(&body[..], b"Payload Too Large");
    assert_eq!(response.headers()["connection"], "close");
}

/// Polls `future` once on this thread (no runtime, no allocation).
fn poll_once<F: Future>(future: F) -> Poll<F::Output> {
    let mut future = pin!(future);
    future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
}

/// A filter that touches the headers and keeps no state.
#[derive(Debug)]
struct Passive;

impl HttpFilter for Passive {
    fn on_request_headers<'a>(
        &'a self,
        request: &'a mut RequestContext<'_, '_>,
    ) -> FilterStatus<'a> {
        let _ = request.headers().get("host");
        FilterStatus::CONTINUE
    }

    fn on_response_headers(&self, response: &mut ResponseContext<'_, '_>) {
        let _ = response.status();
    }
}

/// Keeps state on every request (a box and the slot list: the counter sees them).
#[derive(Debug)]
struct Stateful;

impl HttpFilter for Stateful {
    fn on_request_headers<'a>(
        &'a self,
        request: &'a mut RequestContext<'_, '_>,
    ) -> FilterStatus<'a> {
        request.set_state(7u8);
        FilterStatus::CONTINUE
    }
}

#[test]
fn running_the_chain_allocates_nothing() {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    for (filters, expected) in [
        (Vec::<(&str, bool, Box<dyn HttpFilter>)>::new(), 0),
        (
            vec![
                ("p1", false, Box::new(Passive) as Box<dyn HttpFilter>),
                ("p2", false, Box::new(Passive)),
            ],
            0,
        ),
        // The counter counts: state costs its box and the slot list.
        (
            vec![("s", false, Box::new(Stateful) as Box<dyn HttpFilter>)],
            2,
        ),
    ] {
        let count = filters.len();
        let rt = runtime(filters);
        let shared = tokio.block_on(shared(rt.clone()));
        let mut ex = Exchange {
            info: StreamInfo::new(shared.clone(), Some(http::Version::HTTP_11)),
            progress: Arc::new(RequestProgress::new(Instant::now())),
            log_head: None,
            request_head: None,
            request_facts: None,
            shared,
        };
        // An unnamed route (a named one shares its name with the stream info: no copy).
        let (mut parts, ()) = Request::builder()
            .uri("/off")
            .header("host", "example.test")
            .body(())
            .expect("request")
            .into_parts();
        let mut body = RequestBodySlot::empty();
        let mut response = LocalReply::no_route().into_response(false);
        let allocations = allocations_during(|| {
            let routes = rt.routes.current();
            let mut stream = StreamFilters::new(&rt.filters, &routes);
            refresh_route(&mut stream, &mut ex, &parts);
            stream.start_chain();
            let decoded = poll_once(decode_headers(&mut stream, &mut ex, &mut parts, &mut body));
            assert!(matches!(decoded, Poll::Ready(None)));
            encode_headers(&mut stream, &mut ex, &mut response);
        });
        assert_eq!(allocations, expected, "{count} filters");
    }
}
