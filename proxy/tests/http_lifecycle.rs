//! End-to-end tests of connection lifecycle and logging: access logs from an Envoy YAML
//! (default text format and typed JSON), drain (HTTP/1.1 `connection: close`, HTTP/2
//! GOAWAY), HTTP/2 prior knowledge, websocket upgrades, `request_timeout` and the parking
//! of idle HTTP/1.1 keep-alive connections.

mod http_support;

use std::time::Duration;

use baton_config::model::{NetworkFilter, UpgradeConfig};
use baton_proxy::base::drain::DrainPhase;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use http_support::*;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn yaml(echo: std::net::SocketAddr, log_dir: &std::path::Path) -> String {
    format!(
        r#"
static_resources:
  listeners:
  - name: l
    address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {dir}/access.log
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {dir}/access.json
              log_format:
                json_format:
                  code: "%RESPONSE_CODE%"
                  flags: "%RESPONSE_FLAGS%"
                  host: "%UPSTREAM_HOST%"
                  path: "%REQ(:PATH)%"
                  bs: "%BYTES_SENT%"
                  mixed: "a %RESPONSE_CODE% b"
                  details: "%RESPONSE_CODE_DETAILS%"
                  rname: "%ROUTE_NAME%"
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
          route_config:
            virtual_hosts:
            - name: vh
              domains: ["*"]
              routes:
              - match: {{prefix: /direct}}
                direct_response: {{status: 200, body: {{inline_string: "hello"}}}}
              - match: {{prefix: /up}}
                name: uproute
                route: {{cluster: echo}}
  clusters:
  - name: echo
    type: STATIC
    load_assignment:
      cluster_name: echo
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}}}]}}]
"#,
        dir = log_dir.display(),
        port = echo.port()
    )
}

async fn read_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    for _ in 0..500 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} has fewer than {n} lines", path.display());
}

#[tokio::test]
async fn access_logs_from_envoy_yaml() {
    let (echo, _task) = start_echo().await;
    let dir = std::env::temp_dir().join(format!("baton-http-al-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let loaded = baton_config::load_yaml_str(&yaml(echo, &dir)).expect("config");
    let NetworkFilter::Http(hcm) = &loaded.model.listeners[0].filter_chains[0].network else {
        panic!("expected an HCM");
    };
    let proxy = start_proxy((**hcm).clone(), loaded.model.clusters.clone()).await;
    let r = get(proxy.addr, "/direct", &[("user-agent", "ua/1")]).await;
    assert_eq!(r.text(), "hello");
    let r = get(
        proxy.addr,
        "/up/x",
        &[("user-agent", "ua/1"), ("x-request-id", "rid")],
    )
    .await;
    assert_eq!(r.status, 200);
    let r = get(proxy.addr, "/nothing", &[]).await;
    assert_eq!(r.status, 404);

    let text = read_lines(&dir.join("access.log"), 3).await;
    // `[START] "GET /direct HTTP/1.1" 200 - 0 5 0 - "-" "ua/1" "<uuid>" "test.local" "-"`
    let direct = &text[0];
    let after_time = direct.split_once("] ").expect("time").1;
    let fields: Vec<&str> = after_time.split(' ').collect();
    assert_eq!(
        &fields[..6],
        &["\"GET", "/direct", "HTTP/1.1\"", "200", "-", "0"],
        "{direct}"
    );
    assert_eq!(fields[6], "5");
    assert_eq!(
        fields[8], "-",
        "no upstream service time on direct responses"
    );
    assert!(direct.contains("\"test.local\" \"-\""), "{direct}");
    let up = &text[1];
    assert!(up.contains("\"GET /up/x HTTP/1.1\" 200 - 0 "), "{up}");
    assert!(
        up.contains(&format!("\"rid\" \"test.local\" \"{echo}\"")),
        "{up}"
    );
    assert!(text[2].contains("\" 404 NR 0 0 "), "{}", text[2]);

    let json = read_lines(&dir.join("access.json"), 3).await;
    let v: serde_json::Value = serde_json::from_str(&json[0]).expect("json");
    assert_eq!(v["code"], 200);
    assert_eq!(v["bs"], 5);
    assert_eq!(v["flags"], "-");
    assert_eq!(v["host"], serde_json::Value::Null);
    assert_eq!(v["mixed"], "a 200 b");
    assert_eq!(v["details"], "direct_response");
    let v: serde_json::Value = serde_json::from_str(&json[1]).expect("json");
    assert_eq!(v["host"], echo.to_string());
    assert_eq!(v["rname"], "uproute");
    assert_eq!(v["details"], "via_upstream");
    assert!(
        json[0].starts_with("{\"bs\":"),
        "keys are sorted: {}",
        json[0]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A proxy whose `/up` goes to an echo upstream (its task is the second value) and
/// whose other paths get a direct 200 `ok`.
async fn echo_and_direct_proxy() -> (Proxy, tokio::task::JoinHandle<()>) {
    let (echo, task) = start_echo().await;
    let proxy = start_proxy(
        hcm(vec![vhost(
            "vh",
            &["*"],
            vec![
                prefix_route("", "/up", forward("echo")),
                prefix_route("", "/", direct(200, "ok")),
            ],
        )]),
        vec![cluster("echo", echo)],
    )
    .await;
    (proxy, task)
}

#[tokio::test]
async fn drain_closes_http1_after_response() {
    let (proxy, _echo) = echo_and_direct_proxy().await;
    let mut busy = TcpStream::connect(proxy.addr).await.expect("connect");
    let mut idle = TcpStream::connect(proxy.addr).await.expect("connect");
    let mut quiet = TcpStream::connect(proxy.addr).await.expect("connect");
    let mut buf = Vec::new();
    busy.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    let r = read_response(&mut busy, &mut buf).await.expect("response");
    assert_eq!(r.header("connection"), None);
    for conn in [&mut idle, &mut quiet] {
        conn.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .expect("write");
        let _ = read_response(conn, &mut Vec::new())
            .await
            .expect("response");
    }

    // A request in flight when the drain starts gets `connection: close`, then the
    // connection closes.
    busy.write_all(b"POST /up HTTP/1.1\r\nHost: a\r\ncontent-length: 5\r\n\r\nab")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(50)).await;
    proxy.drain.set(DrainPhase::Draining);
    busy.write_all(b"cde").await.expect("write");
    let r = read_response(&mut busy, &mut buf).await.expect("response");
    assert_eq!(r.status, 200);
    assert!(r.text().ends_with("\nabcde"), "{}", r.text());
    assert_eq!(r.header("connection"), Some("close"));
    assert!(closes(&mut busy).await);

    // An idle keep-alive connection is not closed under a client that may be sending
    // on it: its next request is served with `connection: close`, then it closes.
    idle.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    let r = read_response(&mut idle, &mut Vec::new())
        .await
        .expect("idle connection still served during drain");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(closes(&mut idle).await);

    // One that stays quiet closes when the drain time is over.
    proxy.drain.set(DrainPhase::Closed);
    assert!(
        closes(&mut quiet).await,
        "quiet connection closes at drain end"
    );
}

#[tokio::test]
async fn http2_prior_knowledge_and_goaway_on_drain() {
    let (echo, _task) = start_echo().await;
    let proxy = start_proxy(
        hcm(vec![vhost(
            "vh",
            &["*"],
            vec![prefix_route("", "/", forward("echo"))],
        )]),
        vec![cluster("echo", echo)],
    )
    .await;
    let sock = TcpStream::connect(proxy.addr).await.expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(sock))
            .await
            .expect("h2 handshake");
    let conn_task = tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(format!("http://{}/h2path", proxy.addr))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = tokio::time::timeout(WAIT, send.send_request(req))
        .await
        .expect("bounded")
        .expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.headers()["server"], "envoy");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.starts_with("GET /h2path\n"), "{body}");
    assert!(body.contains(&format!("host: {}\n", proxy.addr)), "{body}");

    proxy.drain.set(DrainPhase::Draining);
    // GOAWAY: the client connection finishes cleanly.
    let done = tokio::time::timeout(WAIT, conn_task)
        .await
        .expect("connection ends after GOAWAY");
    assert!(done.is_ok());
}

#[tokio::test]
async fn websocket_upgrade_tunnels_bytes_and_is_403_when_disabled() {
    let (echo, _task) = start_echo().await;
    let routes = vec![prefix_route("", "/", forward("echo"))];
    let disabled = start_proxy(
        hcm(vec![vhost("vh", &["*"], routes.clone())]),
        vec![cluster("echo", echo)],
    )
    .await;
    let upgrade_req =
        b"GET /ws HTTP/1.1\r\nHost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n";
    let r = raw_request(disabled.addr, upgrade_req).await;
    assert_eq!((r.status, r.body.len()), (403, 0));
    assert_eq!(r.header("connection"), Some("close"));

    let mut h = hcm(vec![vhost("vh", &["*"], routes)]);
    h.upgrade_configs = vec![UpgradeConfig {
        upgrade_type: "websocket".into(),
        enabled: true,
        terminate_connect: false,
    }];
    let proxy = start_proxy(h, vec![cluster("echo", echo)]).await;
    let mut sock = TcpStream::connect(proxy.addr).await.expect("connect");
    sock.write_all(upgrade_req).await.expect("write");
    let mut buf = Vec::new();
    let r = read_response(&mut sock, &mut buf).await.expect("101");
    assert_eq!(r.status, 101);
    assert_eq!(r.header("upgrade"), Some("websocket"));
    sock.write_all(b"ping-bytes").await.expect("write");
    let mut got = buf;
    while got.len() < 10 {
        let mut chunk = [0u8; 64];
        let n = tokio::time::timeout(WAIT, sock.read(&mut chunk))
            .await
            .expect("bounded")
            .expect("read");
        assert!(n > 0, "tunnel closed early");
        got.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(&got[..], b"ping-bytes");
}

#[tokio::test]
async fn request_timeout_is_408_with_envoy_body() {
    let (echo, _task) = start_echo().await;
    let mut h = hcm(vec![vhost(
        "vh",
        &["*"],
        vec![prefix_route("", "/", forward("echo"))],
    )]);
    h.request_timeout = Some(Duration::from_millis(300));
    let proxy = start_proxy(h, vec![cluster("echo", echo)]).await;
    let mut sock = TcpStream::connect(proxy.addr).await.expect("connect");
    sock.write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        .await
        .expect("write");
    let r = read_response(&mut sock, &mut Vec::new())
        .await
        .expect("408");
    assert_eq!((r.status, r.text().as_str()), (408, "request timeout"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(closes(&mut sock).await);
}

/// An idle HTTP/1.1 keep-alive connection parks (issue 17): once its response went out
/// and no next request came for the park delay, it leaves its task for the worker's
/// parked set, still open, and the next request on it is served. Checked after a direct
/// response and after one streamed from an upstream. (Until the flush that writes a
/// response's end marked the connection idle, none parked: hyper's last read, which found
/// nothing, came before that flush.)
#[tokio::test]
async fn idle_http1_keep_alive_connection_parks_and_serves_the_next_request() {
    let (mut proxy, _echo) = echo_and_direct_proxy().await;
    for path in ["/direct", "/up"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n");
        let mut sock = TcpStream::connect(proxy.addr).await.expect("connect");
        let mut buf = Vec::new();
        sock.write_all(request.as_bytes()).await.expect("write");
        let r = read_response(&mut sock, &mut buf).await.expect("response");
        assert_eq!(r.status, 200, "{path}");
        let served = tokio::time::timeout(WAIT, proxy.served.recv())
            .await
            .expect("accepted")
            .expect("reported");
        tokio::time::timeout(WAIT, served.first_task)
            .await
            .unwrap_or_else(|_| panic!("{path}: the idle connection never parked"))
            .expect("the connection's task ran");
        assert!(
            served.alive.upgrade().is_some(),
            "{path}: the task ended with the connection open (parked), not closed"
        );
        // Woken by the next request, the parked connection serves it.
        for _ in 0..2 {
            sock.write_all(request.as_bytes()).await.expect("write");
            let r = read_response(&mut sock, &mut buf)
                .await
                .expect("a parked connection answers");
            assert_eq!(r.status, 200, "{path}");
        }
        drop(sock);
        let deadline = tokio::time::Instant::now() + WAIT;
        while served.alive.strong_count() > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path}: the connection outlived its client"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
