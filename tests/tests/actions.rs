//! Route actions: cluster, weighted_clusters, cluster_header, prefix_rewrite, regex_rewrite,
//! host_rewrite_literal, auto_host_rewrite, redirect variants and direct_response.

use std::collections::HashSet;
use std::net::SocketAddr;

use baton_tests::config::{bootstrap, http_listener, route_config, static_cluster, vhost};
use baton_tests::{get, get_with, EchoUpstream, Echoed, Proxy};
use serde_json::{json, Value};

struct Setup {
    _a: EchoUpstream,
    _b: EchoUpstream,
    _proxy: Proxy,
    addr: SocketAddr,
}

/// Two upstreams `a` and `b` (clusters of the same names) behind `routes`.
async fn setup(routes: Vec<Value>) -> anyhow::Result<Setup> {
    let a = EchoUpstream::start("a").await?;
    let b = EchoUpstream::start("b").await?;
    let cfg = bootstrap(
        vec![http_listener(
            "http",
            route_config(vec![vhost("all", &["*"], routes)]),
        )],
        vec![
            static_cluster("a", &[a.addr()]),
            static_cluster("b", &[b.addr()]),
        ],
    );
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    Ok(Setup {
        _a: a,
        _b: b,
        _proxy: proxy,
        addr,
    })
}

#[tokio::test]
async fn cluster_and_cluster_header_pick_the_upstream() -> anyhow::Result<()> {
    let s = setup(vec![
        json!({ "match": { "prefix": "/by-header" }, "route": { "cluster_header": "x-target" } }),
        json!({ "match": { "prefix": "/b" }, "route": { "cluster": "b" } }),
        json!({ "match": { "prefix": "/" }, "route": { "cluster": "a" } }),
    ])
    .await?;
    assert_eq!(
        get(s.addr, "/a").await?.header("x-upstream-name"),
        Some("a")
    );
    assert_eq!(
        get(s.addr, "/b").await?.header("x-upstream-name"),
        Some("b")
    );
    let resp = get_with(s.addr, "/by-header", &[("x-target", "b")]).await?;
    assert_eq!(resp.header("x-upstream-name"), Some("b"));
    Ok(())
}

#[tokio::test]
async fn weighted_clusters_split_by_weight() -> anyhow::Result<()> {
    let s = setup(vec![
        json!({ "match": { "prefix": "/only-a" }, "route": { "weighted_clusters": { "clusters": [
            { "name": "a", "weight": 1 }, { "name": "b", "weight": 0 } ] } } }),
        json!({ "match": { "prefix": "/" }, "route": { "weighted_clusters": { "clusters": [
            { "name": "a", "weight": 50 }, { "name": "b", "weight": 50 } ] } } }),
    ])
    .await?;
    let mut seen = HashSet::new();
    // 60 requests at 50/50: missing either side has probability 2^-59.
    for _ in 0..60 {
        let resp = get(s.addr, "/split").await?;
        seen.insert(
            resp.header("x-upstream-name")
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert_eq!(seen, HashSet::from(["a".to_string(), "b".to_string()]));
    for _ in 0..10 {
        assert_eq!(
            get(s.addr, "/only-a").await?.header("x-upstream-name"),
            Some("a")
        );
    }
    Ok(())
}

#[tokio::test]
async fn prefix_and_regex_rewrites_change_the_forwarded_path() -> anyhow::Result<()> {
    let s = setup(vec![
        json!({ "match": { "prefix": "/old/" }, "route": { "cluster": "a", "prefix_rewrite": "/new/" } }),
        json!({ "match": { "prefix": "/strip" }, "route": { "cluster": "a", "prefix_rewrite": "/" } }),
        json!({ "match": { "prefix": "/re/" }, "route": { "cluster": "a", "regex_rewrite": {
            "pattern": { "regex": "^/re/([0-9]+)/(.*)$" }, "substitution": "/\\2/\\1" } } }),
    ])
    .await?;
    let resp = get(s.addr, "/old/x/y?q=1").await?;
    assert_eq!(resp.json()?.req_path(), "/new/x/y?q=1");
    assert_eq!(
        get(s.addr, "/strip/child").await?.json()?.req_path(),
        "//child"
    );
    assert_eq!(
        get(s.addr, "/re/42/name?z=2").await?.json()?.req_path(),
        "/name/42?z=2"
    );
    // The original path travels in x-envoy-original-path.
    let echoed = get(s.addr, "/old/p").await?.json()?;
    assert_eq!(
        echoed.req_header("x-envoy-original-path").as_deref(),
        Some("/old/p")
    );
    Ok(())
}

#[tokio::test]
async fn host_rewrite_literal_replaces_host() -> anyhow::Result<()> {
    let s = setup(vec![
        json!({ "match": { "prefix": "/" }, "route": { "cluster": "a", "host_rewrite_literal": "rewritten.example" } }),
    ])
    .await?;
    let echoed = get_with(s.addr, "/", &[("host", "original.example")])
        .await?
        .json()?;
    assert_eq!(
        echoed.req_header("host").as_deref(),
        Some("rewritten.example")
    );
    Ok(())
}

#[tokio::test]
async fn auto_host_rewrite_uses_dns_cluster_hostname() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("dns").await?;
    let cluster = json!({
        "name": "dns",
        "type": "STRICT_DNS",
        "connect_timeout": "0.25s",
        "dns_lookup_family": "V4_ONLY",
        "load_assignment": { "cluster_name": "dns", "endpoints": [ { "lb_endpoints": [
            { "endpoint": { "address": { "socket_address": { "address": "localhost", "port_value": upstream.port() } } } }
        ] } ] },
    });
    let cfg = bootstrap(
        vec![http_listener(
            "http",
            route_config(vec![vhost(
                "all",
                &["*"],
                vec![
                    json!({ "match": { "prefix": "/" }, "route": { "cluster": "dns", "auto_host_rewrite": true } }),
                ],
            )]),
        )],
        vec![cluster],
    );
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    let echoed = get_with(addr, "/", &[("host", "original.example")])
        .await?
        .json()?;
    assert_eq!(echoed.req_header("host").as_deref(), Some("localhost"));
    Ok(())
}

/// Each request carries the name of the host the load balancer picked for it, not one
/// name for the whole cluster; a host without a hostname leaves Host alone.
#[tokio::test]
async fn auto_host_rewrite_uses_the_picked_hosts_name() -> anyhow::Result<()> {
    let one = EchoUpstream::start("one").await?;
    let two = EchoUpstream::start("two").await?;
    let unnamed = EchoUpstream::start("unnamed").await?;
    let endpoint = |port: u16, hostname: Option<&str>| {
        let mut e = json!({ "endpoint": { "address": { "socket_address": {
            "address": "127.0.0.1", "port_value": port } } } });
        if let Some(h) = hostname {
            e["endpoint"]["hostname"] = json!(h);
        }
        e
    };
    let cluster = json!({
        "name": "named",
        "type": "STATIC",
        "connect_timeout": "0.25s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": { "cluster_name": "named", "endpoints": [ { "lb_endpoints": [
            endpoint(one.port(), Some("one.example")),
            endpoint(two.port(), Some("two.example")),
            endpoint(unnamed.port(), None),
        ] } ] },
    });
    let cfg = bootstrap(
        vec![http_listener(
            "http",
            route_config(vec![vhost(
                "all",
                &["*"],
                vec![
                    json!({ "match": { "prefix": "/" }, "route": { "cluster": "named", "auto_host_rewrite": true } }),
                ],
            )]),
        )],
        vec![cluster],
    );
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut seen = HashSet::new();
    for _ in 0..6 {
        let resp = get_with(addr, "/", &[("host", "original.example")]).await?;
        let upstream = resp.header("x-upstream-name").map(str::to_string);
        let host = resp.json()?.req_header("host");
        let expected = match upstream.as_deref() {
            Some("one") => "one.example",
            Some("two") => "two.example",
            _ => "original.example",
        };
        assert_eq!(host.as_deref(), Some(expected), "answered by {upstream:?}");
        seen.insert(upstream);
    }
    assert_eq!(seen.len(), 3, "round robin reaches every host: {seen:?}");
    Ok(())
}

fn redirect(prefix: &str, redirect: Value) -> Value {
    json!({ "match": { "prefix": prefix }, "redirect": redirect })
}

#[tokio::test]
async fn redirects_build_location_and_status() -> anyhow::Result<()> {
    let s = setup(vec![
        redirect("/https", json!({ "https_redirect": true })),
        redirect(
            "/scheme",
            json!({ "scheme_redirect": "https", "response_code": "FOUND" }),
        ),
        redirect(
            "/host",
            json!({ "host_redirect": "new.example", "response_code": "SEE_OTHER" }),
        ),
        redirect(
            "/port",
            json!({ "port_redirect": 8443, "response_code": "TEMPORARY_REDIRECT" }),
        ),
        redirect(
            "/path",
            json!({ "path_redirect": "/elsewhere", "response_code": "PERMANENT_REDIRECT" }),
        ),
        redirect("/prefix/", json!({ "prefix_rewrite": "/moved/" })),
        redirect(
            "/strip",
            json!({ "path_redirect": "/stripped", "strip_query": true }),
        ),
    ])
    .await?;
    let cases = [
        ("/https/x?q=1", 301, "https://test/https/x?q=1"),
        ("/scheme/x", 302, "https://test/scheme/x"),
        ("/host/x", 303, "http://new.example/host/x"),
        ("/port/x", 307, "http://test:8443/port/x"),
        ("/path/x?keep=1", 308, "http://test/elsewhere?keep=1"),
        ("/prefix/a/b", 301, "http://test/moved/a/b"),
        ("/strip?drop=1", 301, "http://test/stripped"),
    ];
    for (path, status, location) in cases {
        let resp = get(s.addr, path).await?;
        assert_eq!(resp.status, status, "{path}");
        assert_eq!(resp.header("location"), Some(location), "{path}");
        assert!(resp.body.is_empty(), "{path}: {}", resp.body_text());
    }
    Ok(())
}

#[tokio::test]
async fn direct_response_returns_status_and_body() -> anyhow::Result<()> {
    let s = setup(vec![
        json!({ "match": { "prefix": "/teapot" }, "direct_response": { "status": 418, "body": { "inline_string": "short and stout" } } }),
        json!({ "match": { "prefix": "/empty" }, "direct_response": { "status": 204 } }),
    ])
    .await?;
    let resp = get(s.addr, "/teapot").await?;
    assert_eq!(resp.status, 418);
    assert_eq!(resp.body_text(), "short and stout");
    assert_eq!(resp.header("content-type"), Some("text/plain"));
    let empty = get(s.addr, "/empty").await?;
    assert_eq!(empty.status, 204);
    assert!(empty.body.is_empty());
    Ok(())
}

/// A `201` direct response points `location` at the request's URL (scheme from
/// `x-forwarded-proto`, host and path with the query), as Envoy 1.40 does.
#[tokio::test]
async fn direct_response_201_gets_the_request_url_as_location() -> anyhow::Result<()> {
    let s = setup(vec![
        json!({ "match": { "prefix": "/made" }, "direct_response": { "status": 201, "body": { "inline_string": "made" } } }),
        json!({ "match": { "prefix": "/ok" }, "direct_response": { "status": 200 } }),
    ])
    .await?;
    let resp = get(s.addr, "/made/x?q=1").await?;
    assert_eq!(resp.status, 201);
    assert_eq!(resp.header("location"), Some("http://test/made/x?q=1"));
    assert_eq!(resp.body_text(), "made");
    let forwarded = get_with(s.addr, "/made", &[("x-forwarded-proto", "https")]).await?;
    assert_eq!(forwarded.header("location"), Some("https://test/made"));
    assert_eq!(get(s.addr, "/ok").await?.header("location"), None);
    Ok(())
}

/// The status line of `GET path` on a new connection.
async fn status_line(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    conn.write_all(format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n").as_bytes())
        .await?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        let n = tokio::time::timeout(baton_tests::eventually::IO_TIMEOUT, conn.read(&mut byte))
            .await??;
        anyhow::ensure!(n == 1, "closed in the status line: {line:?}");
        line.push(byte[0]);
    }
    line.truncate(line.len() - 2);
    Ok(String::from_utf8(line)?)
}

/// Reason phrases are Envoy's own (measured on Envoy 1.40 for every code), whoever
/// produced the response: `Unknown` for codes Envoy has no name for.
#[tokio::test]
async fn status_lines_carry_envoys_reason_phrases() -> anyhow::Result<()> {
    let cases = [
        (200, "OK"),
        (201, "Created"),
        (203, "Non-Authoritative Information"),
        (226, "IM Used"),
        (306, "Unknown"),
        (413, "Payload Too Large"),
        (416, "Range Not Satisfiable"),
        (418, "Unknown"),
        (422, "Unprocessable Entity"),
        (425, "Too Early"),
        (451, "Unknown"),
        (499, "Unknown"),
        (509, "Unknown"),
        (599, "Last Unassigned Server Error Code"),
    ];
    let mut routes: Vec<Value> = cases
        .iter()
        .map(|(code, _)| json!({ "match": { "path": format!("/s/{code}") }, "direct_response": { "status": code } }))
        .collect();
    routes.push(json!({ "match": { "prefix": "/" }, "route": { "cluster": "a" } }));
    let s = setup(routes).await?;
    for (code, reason) in cases {
        assert_eq!(
            status_line(s.addr, &format!("/s/{code}")).await?,
            format!("HTTP/1.1 {code} {reason}")
        );
    }
    // An upstream's answer gets Envoy's phrase too.
    assert_eq!(
        status_line(s.addr, "/up?status=203").await?,
        "HTTP/1.1 203 Non-Authoritative Information"
    );
    Ok(())
}
