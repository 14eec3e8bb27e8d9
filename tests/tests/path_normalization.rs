//! Request-target normalisation in the HTTP connection manager: `normalize_path`
//! (RFC 3986), `merge_slashes`, `path_with_escaped_slashes_action` and Host port
//! stripping (`strip_matching_host_port`, `strip_any_host_port`), over HTTP/1.1 and
//! HTTP/2. Every expected status, `location`, forwarded path and forwarded Host is what
//! Envoy 1.40 does for the same config and request (checked with `BATON_BIN=.../envoy`).

mod stats_support;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::bail;
use baton_tests::config::{
    bootstrap, direct_route, hcm, hcm_filter, listener, merge, prefix_route, route_config,
    static_cluster, vhost, FILE_ACCESS_LOG_TYPE,
};
use baton_tests::{
    eventually, get, get_with, EchoUpstream, Echoed, H2Client, Proxy, RawHttp1, TcpServer, TempDir,
};
use serde_json::{json, Value};
use stats_support::wait_for;

/// A proxy whose listener `http` has the HCM options `extra` and `vhosts`, cluster
/// `backend` being the returned echo upstream.
async fn start(
    extra: Value,
    vhosts: Vec<Value>,
) -> anyhow::Result<(EchoUpstream, Proxy, SocketAddr)> {
    let upstream = EchoUpstream::start("a").await?;
    let mut typed = hcm(route_config(vhosts));
    merge(&mut typed, extra);
    let cfg = bootstrap(
        vec![listener("http", vec![hcm_filter(typed)])],
        vec![static_cluster("backend", &[upstream.addr()])],
    );
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    Ok((upstream, proxy, addr))
}

/// Everything to `backend`.
fn to_backend() -> Vec<Value> {
    vec![vhost("all", &["*"], vec![prefix_route("/", "backend")])]
}

/// The path the upstream received for `GET path` over HTTP/1.1.
async fn forwarded(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let resp = get(addr, path).await?;
    if resp.status != 200 {
        bail!("GET {path}: status {} {}", resp.status, resp.body_text());
    }
    Ok(resp.json()?.req_path())
}

/// Checks `(sent, forwarded)` pairs over HTTP/1.1.
async fn check_forwarded(addr: SocketAddr, cases: &[(&str, &str)]) -> anyhow::Result<()> {
    for (sent, expected) in cases {
        assert_eq!(forwarded(addr, sent).await?, *expected, "sent {sent}");
    }
    Ok(())
}

#[tokio::test]
async fn normalize_path_forwards_the_rfc3986_form() -> anyhow::Result<()> {
    let (_u, _p, addr) = start(json!({ "normalize_path": true }), to_backend()).await?;
    check_forwarded(
        addr,
        &[
            ("/a/../b", "/b"),
            ("/../a", "/a"),
            ("/a/b/../../../../c", "/c"),
            ("/a/./b", "/a/b"),
            ("/a/.", "/a/"),
            ("/a/..", "/"),
            ("/%2e%2E/x", "/x"),
            ("/a/.%2E/b", "/b"),
            ("/%2ea", "/.a"),
            ("/..a/b", "/..a/b"),
            ("/a\\..\\b", "/b"),
            ("/a\\b", "/a/b"),
            ("/%41%62%7e%2d%5f%2E", "/Ab~-_."),
            ("/%7a%5A%30%60%01%7F%80%ff%20", "/zZ0%60%01%7F%80%ff%20"),
            ("/%2f%2F%5c%25%3F%23", "/%2f%2F%5c%25%3F%23"),
            ("/%21%2A%3B%40%5B", "/%21%2A%3B%40%5B"),
            ("/a%zz/b%2/c%", "/a%zz/b%2/c%"),
            ("/a/..%2f/b", "/a/..%2f/b"),
            ("/A/B//c", "/A/B//c"),
            ("/\"q\"|{x}^", "/%22q%22%7C%7Bx%7D%5E"),
            ("/a/b/../c?x=/../%41&y=a//b", "/a/c?x=/../%41&y=a//b"),
            ("/a/b/../?q", "/a/?q"),
        ],
    )
    .await
}

#[tokio::test]
async fn routing_and_rewrites_see_the_normalized_path() -> anyhow::Result<()> {
    let routes = vec![
        json!({ "match": { "path": "/admin" }, "direct_response": { "status": 403, "body": { "inline_string": "admin only" } } }),
        json!({ "match": { "prefix": "/api/" }, "route": { "cluster": "backend", "prefix_rewrite": "/v2/" } }),
        prefix_route("/", "backend"),
    ];
    let (_u, _p, addr) = start(
        json!({ "normalize_path": true }),
        vec![vhost("all", &["*"], routes)],
    )
    .await?;
    for sneaky in [
        "/public/../admin",
        "/%61dmin",
        "/./admin",
        "/x/%2e%2e/admin",
    ] {
        let resp = get(addr, sneaky).await?;
        assert_eq!(resp.status, 403, "{sneaky}");
        assert_eq!(resp.body_text(), "admin only", "{sneaky}");
    }
    // The rewrite, and x-envoy-original-path, start from the normal form.
    let resp = get(addr, "/x/../api/%61?q=/../").await?;
    assert_eq!(resp.status, 200);
    let echoed = resp.json()?;
    assert_eq!(echoed.req_path(), "/v2/a?q=/../");
    assert_eq!(
        echoed.req_header("x-envoy-original-path").as_deref(),
        Some("/api/a?q=/../")
    );
    Ok(())
}

#[tokio::test]
async fn unnormalizable_path_is_400_and_counted() -> anyhow::Result<()> {
    let (upstream, proxy, addr) = start(json!({ "normalize_path": true }), to_backend()).await?;
    for path in ["/a%00b", "/x/.%00../y"] {
        let mut conn = RawHttp1::connect(addr).await?;
        conn.send_request("GET", path, &[], b"").await?;
        let resp = conn.read_response().await?;
        assert_eq!(resp.status, 400, "{path}");
        assert_eq!(resp.body_text(), "");
        assert_eq!(resp.header("content-length"), Some("0"));
        assert_eq!(resp.header("content-type"), None);
        assert!(resp.connection_close(), "{path}: {:?}", resp.headers);
        conn.read_to_close().await?;
    }
    let h2 = H2Client::connect(addr).await?;
    let resp = h2.get("/a/%00").await?;
    assert_eq!(resp.status, 400);
    assert!(resp.body.is_empty());
    assert_eq!(upstream.requests(), 0);
    wait_for(
        &proxy,
        &[("http.ingress.downstream_rq_failed_path_normalization", 3)],
    )
    .await?;
    // Without normalize_path the same bytes go through untouched.
    let (_u, _p, plain) = start(json!({}), to_backend()).await?;
    assert_eq!(forwarded(plain, "/a%00b").await?, "/a%00b");
    Ok(())
}

#[tokio::test]
async fn merge_slashes_alone_collapses_slashes_only() -> anyhow::Result<()> {
    let (_u, _p, addr) = start(json!({ "merge_slashes": true }), to_backend()).await?;
    check_forwarded(
        addr,
        &[
            ("//a//b/", "/a/b/"),
            ("///", "//"),
            ("//", "//"),
            ("/a//b?x=//y", "/a/b?x=//y"),
            ("/a/../b//", "/a/../b/"),
            ("/a/%2f/b", "/a/%2f/b"),
            ("/", "/"),
        ],
    )
    .await
}

#[tokio::test]
async fn normalize_then_merge() -> anyhow::Result<()> {
    let (_u, _p, addr) = start(
        json!({ "normalize_path": true, "merge_slashes": true }),
        to_backend(),
    )
    .await?;
    check_forwarded(
        addr,
        &[
            ("/a//..//b", "/a/b"),
            ("/a/.//./b", "/a/b"),
            ("//../a", "/a"),
            ("///..", "//"),
            ("/a/%2e%2e//b", "/b"),
            ("/a\\\\\\b", "/a/b"),
            ("/a//b?x=//../y", "/a/b?x=//../y"),
        ],
    )
    .await?;
    // The same over HTTP/2.
    let h2 = H2Client::connect(addr).await?;
    for (sent, expected) in [
        ("/a//..//b/%2e/c%41?x=/../", "/a/b/cA?x=/../"),
        ("/x/./y", "/x/y"),
    ] {
        let resp = h2.get(sent).await?;
        assert_eq!(resp.status, 200, "{sent}");
        assert_eq!(resp.json()?.req_path(), expected, "{sent}");
    }
    Ok(())
}

#[tokio::test]
async fn paths_are_untouched_by_default() -> anyhow::Result<()> {
    let (_u, _p, addr) = start(json!({}), to_backend()).await?;
    check_forwarded(
        addr,
        &[
            ("/a/../b", "/a/../b"),
            ("/a//b", "/a//b"),
            ("/a%2fb", "/a%2fb"),
            ("/%41\\b", "/%41\\b"),
        ],
    )
    .await
}

#[tokio::test]
async fn escaped_slashes_rejected() -> anyhow::Result<()> {
    let (upstream, proxy, addr) = start(
        json!({ "path_with_escaped_slashes_action": "REJECT_REQUEST" }),
        to_backend(),
    )
    .await?;
    for path in ["/a%2fb", "/a%5Cb"] {
        let resp = get(addr, path).await?;
        assert_eq!(resp.status, 400, "{path}");
        assert_eq!(resp.body_text(), "");
        assert!(resp.connection_close());
    }
    assert_eq!(upstream.requests(), 0);
    check_forwarded(
        addr,
        &[
            ("/a?x=%2f", "/a?x=%2f"),
            ("/a%252f", "/a%252f"),
            ("/a/b", "/a/b"),
        ],
    )
    .await?;
    wait_for(
        &proxy,
        &[("http.ingress.downstream_rq_failed_path_normalization", 2)],
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn escaped_slashes_redirected_to_the_normal_form() -> anyhow::Result<()> {
    let (upstream, proxy, addr) = start(
        json!({
            "normalize_path": true,
            "merge_slashes": true,
            "path_with_escaped_slashes_action": "UNESCAPE_AND_REDIRECT",
        }),
        to_backend(),
    )
    .await?;
    let mut conn = RawHttp1::connect(addr).await?;
    for (sent, location) in [
        ("/a%2fb", "/a/b"),
        ("/a%5c..%5Cb", "/b"),
        ("/a%2F%2F/./c?x=%2F", "/a/c?x=%2F"),
    ] {
        conn.send_request("GET", sent, &[], b"").await?;
        let resp = conn.read_response().await?;
        assert_eq!(resp.status, 307, "{sent}");
        assert_eq!(resp.header("location"), Some(location), "{sent}");
        assert_eq!(resp.header("content-length"), Some("0"));
        assert!(
            !resp.connection_close(),
            "{sent}: the connection stays open"
        );
    }
    // Same connection: a path without escaped slashes is normalised and forwarded.
    conn.send_request("GET", "/a/../b", &[], b"").await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.json()?.req_path(), "/b");
    assert_eq!(upstream.requests(), 1);
    let h2 = H2Client::connect(addr).await?;
    let resp = h2.get("/x%2Fy").await?;
    assert_eq!(resp.status, 307);
    assert_eq!(resp.header("location"), Some("/x/y"));
    wait_for(
        &proxy,
        &[
            (
                "http.ingress.downstream_rq_redirected_with_normalized_path",
                4,
            ),
            ("http.ingress.downstream_rq_failed_path_normalization", 0),
        ],
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn escaped_slashes_unescaped_and_forwarded() -> anyhow::Result<()> {
    let (_u, _p, addr) = start(
        json!({ "path_with_escaped_slashes_action": "UNESCAPE_AND_FORWARD" }),
        to_backend(),
    )
    .await?;
    check_forwarded(
        addr,
        &[
            ("/a%2fb", "/a/b"),
            ("/a%5c..%5Cb", "/a\\..\\b"),
            ("/a%2F%2F/./c?x=%2F", "/a///./c?x=%2F"),
        ],
    )
    .await
}

/// Virtual hosts that tell whether the Host was stripped: `example.com` and `[::1]` go to
/// the backend, anything else gets a 404 saying `fallback`.
fn host_vhosts() -> Vec<Value> {
    vec![
        vhost(
            "exact",
            &["example.com", "[::1]"],
            vec![prefix_route("/", "backend")],
        ),
        vhost(
            "fallback",
            &["*"],
            vec![
                json!({ "match": { "prefix": "/" }, "direct_response": { "status": 404, "body": { "inline_string": "fallback" } } }),
            ],
        ),
    ]
}

/// The Host the upstream received for a request with `host`, or `fallback`.
async fn host_seen(addr: SocketAddr, host: &str) -> anyhow::Result<String> {
    let resp = get_with(addr, "/", &[("host", host)]).await?;
    Ok(match resp.status {
        200 => resp.json()?.req_header("host").unwrap_or_default(),
        404 => resp.body_text(),
        other => bail!("host {host}: status {other}"),
    })
}

#[tokio::test]
async fn strip_matching_host_port_strips_only_the_listener_port() -> anyhow::Result<()> {
    let (_u, _p, addr) = start(json!({ "strip_matching_host_port": true }), host_vhosts()).await?;
    let port = addr.port();
    let cases = [
        (format!("example.com:{port}"), "example.com"),
        (format!("EXAMPLE.com:{port}"), "EXAMPLE.com"),
        (format!("example.com:0{port}"), "example.com"),
        ("example.com".to_string(), "example.com"),
        ("example.com:1".to_string(), "fallback"),
        ("example.com:".to_string(), "fallback"),
    ];
    for (host, expected) in &cases {
        assert_eq!(host_seen(addr, host).await?, *expected, "host {host}");
    }
    // HTTP/2 `:authority` alike.
    let h2 = H2Client::connect(addr)
        .await?
        .with_authority(&format!("example.com:{port}"));
    let resp = h2.get("/").await?;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.json()?.req_header("host").as_deref(),
        Some("example.com")
    );
    let resp = h2.with_authority("example.com:1").get("/").await?;
    assert_eq!(resp.status, 404);
    Ok(())
}

#[tokio::test]
async fn strip_any_host_port() -> anyhow::Result<()> {
    let (_u, _p, addr) = start(json!({ "strip_any_host_port": true }), host_vhosts()).await?;
    for (host, expected) in [
        ("example.com:1", "example.com"),
        ("example.com:8080", "example.com"),
        ("example.com:+5", "example.com"),
        ("[::1]:80", "[::1]"),
        ("[::1]", "[::1]"),
        ("example.com:abc", "fallback"),
        ("example.com:99999999999", "fallback"),
    ] {
        assert_eq!(host_seen(addr, host).await?, expected, "host {host}");
    }
    let h2 = H2Client::connect(addr)
        .await?
        .with_authority("example.com:5");
    let resp = h2.get("/").await?;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.json()?.req_header("host").as_deref(),
        Some("example.com")
    );
    Ok(())
}

#[tokio::test]
async fn connect_routes_on_the_stripped_host_but_forwards_its_port() -> anyhow::Result<()> {
    let upstream = TcpServer::upgrade_echo().await?;
    let connect_to_backend = |name: &str, domains: &[&str]| {
        vhost(
            name,
            domains,
            vec![json!({ "match": { "connect_matcher": {} }, "route": { "cluster": "backend" } })],
        )
    };
    let refuse = vhost(
        "fallback",
        &["*"],
        vec![
            json!({ "match": { "connect_matcher": {} }, "direct_response": { "status": 404, "body": { "inline_string": "fallback" } } }),
        ],
    );
    let mut typed = hcm(route_config(vec![
        connect_to_backend("exact", &["example.com"]),
        refuse,
    ]));
    merge(
        &mut typed,
        json!({ "strip_any_host_port": true, "upgrade_configs": [ { "upgrade_type": "CONNECT" } ] }),
    );
    let cfg = bootstrap(
        vec![listener("http", vec![hcm_filter(typed)])],
        vec![static_cluster("backend", &[upstream.addr()])],
    );
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n")
        .await?;
    let resp = conn.read_response_to("HEAD").await?;
    assert_eq!(resp.status, 200);
    conn.send(b"through").await?;
    assert_eq!(conn.read_exact_bytes(7).await?, b"through");
    let heads = upstream.request_heads();
    let head = heads
        .first()
        .map(|h| h.to_ascii_lowercase())
        .unwrap_or_default();
    assert!(head.starts_with("connect example.com:443 "), "{heads:?}");
    assert!(head.contains("\r\nhost: example.com:443\r\n"), "{heads:?}");
    Ok(())
}

#[tokio::test]
async fn access_log_shows_the_request_as_normalized() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let log = dir.join("access.log");
    let (_u, _p, addr) = start(
        json!({
            "normalize_path": true,
            "strip_any_host_port": true,
            "path_with_escaped_slashes_action": "UNESCAPE_AND_REDIRECT",
            "access_log": [{
                "name": "envoy.access_loggers.file",
                "typed_config": {
                    "@type": FILE_ACCESS_LOG_TYPE,
                    "path": log.display().to_string(),
                    "log_format": { "text_format": "%RESPONSE_CODE% %RESPONSE_CODE_DETAILS% %REQ(:PATH)% %REQ(:AUTHORITY)%\n" },
                },
            }],
        }),
        vec![vhost("all", &["*"], vec![direct_route("/", 200, "ok")])],
    )
    .await?;
    for (path, status) in [("/a%2fb", 307), ("/a%00", 400), ("/x/../y", 200)] {
        let resp = get_with(addr, path, &[("host", "h:5")]).await?;
        assert_eq!(resp.status, status, "{path}");
    }
    let h2 = H2Client::connect(addr).await?.with_authority("h:5");
    assert_eq!(h2.get("/z/./w").await?.status, 200);
    // Refused requests are logged with the path as far as it was rewritten, before the
    // Host step; Envoy flushes its log file periodically, hence the wait.
    let lines = eventually(Duration::from_secs(15), || async {
        let text = tokio::fs::read_to_string(&log).await.unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        Ok((lines.len() >= 4).then_some(lines))
    })
    .await?;
    assert_eq!(
        lines,
        [
            "307 path_normalization_failed /a/b h:5",
            "400 path_normalization_failed /a%00 h:5",
            "200 direct_response /y h",
            "200 direct_response /z/w h",
        ]
    );
    Ok(())
}
