//! End-to-end tests of the HTTP connection manager through real sockets: local replies,
//! routing, forwarding headers, upstream failures, and the HTTP/1.1 codec's error
//! replies, with expectations recorded from Envoy 1.40 on the same configs.

mod http_support;

use std::sync::Arc;
use std::time::Duration;

use baton_config::model::*;
use http::HeaderValue;
use http_support::*;

async fn basic_proxy() -> (Proxy, tokio::task::JoinHandle<()>) {
    let (echo, echo_task) = start_echo().await;
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let mut slow = forward_to("echo");
    slow.timeout = Some(Duration::from_millis(500));
    let mut rewrite = forward_to("echo");
    rewrite.prefix_rewrite = Some("/new".into());
    let mut by_header = forward_to("echo");
    by_header.cluster = ClusterSpecifier::Header(http::HeaderName::from_static("x-cluster"));
    let mut up = prefix_route("uproute", "/up", forward("echo"));
    up.headers.response_add.push(HeaderValueOption {
        name: http::HeaderName::from_static("x-route"),
        value: FormatTemplate {
            parts: vec![FormatPart::Literal("r".into())],
        },
        append_action: AppendAction::AppendIfExistsOrAdd,
        keep_empty_value: false,
    });
    let routes = vec![
        prefix_route("", "/direct", direct(200, "hello")),
        prefix_route("", "/empty", direct(503, "")),
        prefix_route(
            "",
            "/redir",
            RouteAction::Redirect(Arc::new(RedirectAction {
                scheme: None,
                host: Some("example.com".into()),
                port: None,
                path: PathRedirect::Prefix("/new".into()),
                response_code: 301,
                strip_query: false,
            })),
        ),
        prefix_route("", "/unknown", RouteAction::Forward(Arc::new(by_header))),
        prefix_route("", "/refused", forward("refused")),
        prefix_route("", "/nohealthy", forward("empty")),
        prefix_route("", "/slow", RouteAction::Forward(Arc::new(slow))),
        prefix_route("", "/rewrite", RouteAction::Forward(Arc::new(rewrite))),
        up,
    ];
    let mut h = hcm(vec![vhost("vh", &["*"], routes)]);
    let mut rc = (*h.route_config).clone();
    rc.headers.response_add.push(HeaderValueOption {
        name: http::HeaderName::from_static("x-rc"),
        value: FormatTemplate {
            parts: vec![FormatPart::Command(FormatCommand {
                op: FormatOperator::DownstreamRemoteAddressWithoutPort,
                max_len: None,
            })],
        },
        append_action: AppendAction::AppendIfExistsOrAdd,
        keep_empty_value: false,
    });
    h.route_config = Arc::new(rc);
    let mut empty = (*cluster("empty", refused)).clone();
    empty.load_assignment.localities.clear();
    let proxy = start_proxy(
        h,
        vec![
            cluster("echo", echo),
            cluster("refused", refused),
            Arc::new(empty),
        ],
    )
    .await;
    (proxy, echo_task)
}

#[tokio::test]
async fn local_replies_match_envoy() {
    let (proxy, _echo) = basic_proxy().await;
    let r = get(proxy.addr, "/direct", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("server"), Some("envoy"));
    assert!(r.header("date").is_some());
    assert_eq!(r.header("x-rc"), Some("127.0.0.1"));

    let r = get(proxy.addr, "/empty", &[]).await;
    assert_eq!((r.status, r.body.len()), (503, 0));
    assert_eq!(r.header("content-type"), None);
    assert_eq!(r.header("content-length"), Some("0"));

    let r = get(proxy.addr, "/redir/x?q=1", &[]).await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("http://example.com/new/x?q=1"));

    let r = get(proxy.addr, "/unknown", &[("x-cluster", "nope")]).await;
    assert_eq!((r.status, r.body.len()), (503, 0));

    let r = get(proxy.addr, "/refused", &[]).await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.text(),
        "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"
    );
    assert_eq!(r.header("content-type"), Some("text/plain"));

    let r = get(proxy.addr, "/nohealthy", &[]).await;
    assert_eq!((r.status, r.text().as_str()), (503, "no healthy upstream"));

    let r = get(proxy.addr, "/nomatch", &[]).await;
    assert_eq!((r.status, r.body.len()), (404, 0));
    assert_eq!(
        r.header("x-rc"),
        None,
        "no route: no route-config mutations"
    );

    let r = get(proxy.addr, "/slow", &[]).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (504, "upstream request timeout")
    );
}

#[tokio::test]
async fn forwards_with_envoy_headers() {
    let (proxy, _echo) = basic_proxy().await;
    let r = get(
        proxy.addr,
        "/up/abc",
        &[
            ("x-request-id", "abc"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-envoy-internal", "x"),
            ("connection", "keep-alive, x-foo"),
            ("x-foo", "1"),
            ("te", "trailers"),
            ("x-envoy-upstream-rq-timeout-ms", "100"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let body = r.text();
    assert!(body.starts_with("GET /up/abc\n"), "{body}");
    assert!(body.contains("x-request-id: abc\n"), "{body}");
    assert!(body.contains("x-forwarded-for: 1.2.3.4\n"), "{body}");
    assert!(body.contains("x-forwarded-proto: http\n"), "{body}");
    assert!(
        body.contains("x-envoy-expected-rq-timeout-ms: 15000\n"),
        "{body}"
    );
    assert!(body.contains("te: trailers\n"), "{body}");
    assert!(!body.contains("x-foo"), "{body}");
    assert!(!body.contains("x-envoy-internal"), "{body}");
    assert!(!body.contains("x-envoy-upstream-rq-timeout-ms"), "{body}");
    assert_eq!(r.header("x-up"), Some("1"));
    assert_eq!(r.header("server"), Some("envoy"));
    assert_eq!(r.header("x-route"), Some("r"));
    // DOWNSTREAM_REMOTE_ADDRESS comes from XFF when use_remote_address is false.
    assert_eq!(r.header("x-rc"), Some("1.2.3.4"));
    assert!(r.header("x-envoy-upstream-service-time").is_some());

    // A generated request id is a UUIDv4.
    let r = get(proxy.addr, "/up", &[]).await;
    let id = r
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: ").map(str::to_string))
        .expect("request id");
    assert_eq!(id.len(), 36);

    let r = get(proxy.addr, "/rewrite/x?y=1", &[]).await;
    assert!(r.text().starts_with("GET /new/x?y=1\n"), "{}", r.text());
    assert!(r.text().contains("x-envoy-original-path: /rewrite/x?y=1\n"));
}

#[tokio::test]
async fn use_remote_address_and_via() {
    let (echo, _task) = start_echo().await;
    let mut h = hcm(vec![vhost(
        "vh",
        &["*"],
        vec![prefix_route("", "/", forward("echo"))],
    )]);
    h.use_remote_address = true;
    h.via = Some(HeaderValue::from_static("myvia"));
    let proxy = start_proxy(h, vec![cluster("echo", echo)]).await;
    let r = get(
        proxy.addr,
        "/",
        &[
            ("x-forwarded-for", "9.9.9.9"),
            ("x-request-id", "keepme"),
            ("x-envoy-retry-on", "5xx"),
        ],
    )
    .await;
    let body = r.text();
    // A loopback peer is recorded as the machine's own non-loopback address, as Envoy
    // does (which one depends on the machine).
    let xff = body
        .lines()
        .find_map(|l| l.strip_prefix("x-forwarded-for: "))
        .unwrap_or_default();
    let appended = xff.strip_prefix("9.9.9.9,").unwrap_or_default();
    assert!(
        appended.parse::<std::net::IpAddr>().is_ok(),
        "appended address in {body}"
    );
    assert!(
        body.contains("x-envoy-external-address: 127.0.0.1\n"),
        "{body}"
    );
    assert!(body.contains("via: myvia\n"), "{body}");
    assert!(
        !body.contains("keepme"),
        "edge request ids are regenerated: {body}"
    );
    assert!(!body.contains("x-envoy-retry-on"), "{body}");
    assert_eq!(r.header("via"), Some("myvia"));
}

#[tokio::test]
async fn codec_errors_match_envoy() {
    let (proxy, _echo) = basic_proxy().await;
    let r = raw_request(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n",
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (400, "Bad Request"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("connection"), Some("close"));

    let mut big = b"GET /up HTTP/1.1\r\nHost: x\r\nx-big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 70_000));
    big.extend_from_slice(b"\r\n\r\n");
    let r = raw_request(proxy.addr, &big).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (431, "Request Header Fields Too Large")
    );

    let mut many = b"GET /up HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..120 {
        many.extend_from_slice(format!("x-h{i}: 1\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let r = raw_request(proxy.addr, &many).await;
    assert_eq!(r.status, 431);

    let r = raw_request(proxy.addr, b"GET /up HTTP/1.0\r\n\r\n").await;
    assert_eq!((r.status, r.text().as_str()), (426, "Upgrade Required"));
    let r = raw_request(proxy.addr, b"GET /up HTTP/1.1\r\n\r\n").await;
    assert_eq!((r.status, r.body.len()), (400, 0));
}

#[tokio::test]
async fn keep_alive_and_pipelining() {
    let (proxy, _echo) = basic_proxy().await;
    let mut sock = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    use tokio::io::AsyncWriteExt;
    sock.write_all(
        b"GET /direct HTTP/1.1\r\nHost: a\r\n\r\nGET /up/1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /up/2 HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .await
    .expect("write");
    let mut buf = Vec::new();
    let a = read_response(&mut sock, &mut buf).await.expect("first");
    let b = read_response(&mut sock, &mut buf).await.expect("second");
    let c = read_response(&mut sock, &mut buf).await.expect("third");
    assert_eq!(a.text(), "hello");
    assert!(b.text().starts_with("GET /up/1\n"));
    assert!(c.text().starts_with("POST /up/2\n"));
    assert!(c.text().ends_with("\nabc"), "{}", c.text());
}
