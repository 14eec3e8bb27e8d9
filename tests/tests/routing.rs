//! Virtual host selection (exact, `*.suffix`, `prefix*`, `*`, port in Host, case) and every
//! route matcher kind: prefix, path, safe_regex, path_separated_prefix, case_sensitive,
//! header matchers (exact/prefix/suffix/contains/safe_regex/present/range, invert) and
//! query_parameters. Routes answer with direct responses naming themselves.

use std::net::SocketAddr;

use baton_tests::config::{bootstrap, direct_route, http_listener, route_config, vhost};
use baton_tests::{get_with, Proxy};
use serde_json::{json, Value};

fn named(matcher: Value, name: &str) -> Value {
    json!({ "match": matcher, "direct_response": { "status": 200, "body": { "inline_string": name } } })
}

async fn body_for(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<String> {
    let mut all = vec![("host", host)];
    all.extend_from_slice(headers);
    let resp = get_with(addr, path, &all).await?;
    Ok(if resp.status == 200 {
        resp.body_text()
    } else {
        format!("status {}", resp.status)
    })
}

#[tokio::test]
async fn virtual_host_domains_match_like_envoy() -> anyhow::Result<()> {
    let vhosts = vec![
        vhost("default", &["*"], vec![direct_route("/", 200, "default")]),
        vhost(
            "suffix",
            &["*.example.com"],
            vec![direct_route("/", 200, "suffix")],
        ),
        vhost(
            "longer-suffix",
            &["*.b.example.com"],
            vec![direct_route("/", 200, "longer-suffix")],
        ),
        vhost("prefix", &["api.*"], vec![direct_route("/", 200, "prefix")]),
        vhost(
            "exact",
            &["api.example.com", "other.example.org"],
            vec![direct_route("/", 200, "exact")],
        ),
        vhost(
            "ported",
            &["ported.example:8080"],
            vec![direct_route("/", 200, "ported")],
        ),
    ];
    let proxy = Proxy::start(&bootstrap(
        vec![http_listener("http", route_config(vhosts))],
        vec![],
    ))
    .await?;
    let addr = proxy.listener_addr("http").await?;
    let cases = [
        ("api.example.com", "exact"),
        ("other.example.org", "exact"),
        ("API.Example.COM", "exact"),
        ("x.example.com", "suffix"),
        ("x.b.example.com", "longer-suffix"),
        ("api.other", "prefix"),
        ("ported.example:8080", "ported"),
        ("ported.example", "default"),
        ("nothing.here", "default"),
        ("api.example.com:1234", "prefix"),
    ];
    for (host, expected) in cases {
        assert_eq!(
            body_for(addr, host, "/", &[]).await?,
            expected,
            "host {host}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn path_matchers_select_first_matching_route() -> anyhow::Result<()> {
    let routes = vec![
        named(json!({ "path": "/exact" }), "path"),
        named(json!({ "safe_regex": { "regex": "/re/[0-9]+" } }), "regex"),
        named(json!({ "path_separated_prefix": "/sep" }), "sep"),
        named(
            json!({ "prefix": "/CASE", "case_sensitive": false }),
            "case",
        ),
        named(json!({ "prefix": "/pre" }), "prefix"),
        named(json!({ "prefix": "/" }), "fallback"),
    ];
    let proxy = Proxy::start(&bootstrap(
        vec![http_listener(
            "http",
            route_config(vec![vhost("all", &["*"], routes)]),
        )],
        vec![],
    ))
    .await?;
    let addr = proxy.listener_addr("http").await?;
    let cases = [
        ("/exact", "path"),
        ("/exact?query=1", "path"),
        ("/exact/more", "fallback"),
        ("/re/123", "regex"),
        ("/re/123?x=y", "regex"),
        ("/re/12a", "fallback"),
        ("/re/123/x", "fallback"),
        ("/sep", "sep"),
        ("/sep/child", "sep"),
        ("/separate", "fallback"),
        ("/case/x", "case"),
        ("/CaSe", "case"),
        ("/pre", "prefix"),
        ("/prefix/anything", "prefix"),
        ("/PRE", "fallback"),
    ];
    for (path, expected) in cases {
        assert_eq!(
            body_for(addr, "test", path, &[]).await?,
            expected,
            "path {path}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn header_and_query_matchers() -> anyhow::Result<()> {
    let header = |prefix: &str, matcher: Value| json!({ "prefix": prefix, "headers": [matcher] });
    let routes = vec![
        named(
            header(
                "/h/exact",
                json!({ "name": "x-h", "string_match": { "exact": "v" } }),
            ),
            "h-exact",
        ),
        named(
            header(
                "/h/prefix",
                json!({ "name": "x-h", "string_match": { "prefix": "pre" } }),
            ),
            "h-prefix",
        ),
        named(
            header(
                "/h/suffix",
                json!({ "name": "x-h", "string_match": { "suffix": "suf" } }),
            ),
            "h-suffix",
        ),
        named(
            header(
                "/h/contains",
                json!({ "name": "x-h", "string_match": { "contains": "mid" } }),
            ),
            "h-contains",
        ),
        named(
            header(
                "/h/regex",
                json!({ "name": "x-h", "string_match": { "safe_regex": { "regex": "[a-z]+-[0-9]+" } } }),
            ),
            "h-regex",
        ),
        named(
            header(
                "/h/present",
                json!({ "name": "x-h", "present_match": true }),
            ),
            "h-present",
        ),
        named(
            header(
                "/h/range",
                json!({ "name": "x-h", "range_match": { "start": 10, "end": 20 } }),
            ),
            "h-range",
        ),
        named(
            header(
                "/h/invert",
                json!({ "name": "x-h", "string_match": { "exact": "no" }, "invert_match": true }),
            ),
            "h-invert",
        ),
        named(
            json!({ "prefix": "/q/exact", "query_parameters": [ { "name": "k", "string_match": { "exact": "v" } } ] }),
            "q-exact",
        ),
        named(
            json!({ "prefix": "/q/present", "query_parameters": [ { "name": "k", "present_match": true } ] }),
            "q-present",
        ),
        named(json!({ "prefix": "/" }), "fallback"),
    ];
    let proxy = Proxy::start(&bootstrap(
        vec![http_listener(
            "http",
            route_config(vec![vhost("all", &["*"], routes)]),
        )],
        vec![],
    ))
    .await?;
    let addr = proxy.listener_addr("http").await?;
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("/h/exact", Some("v"), "h-exact"),
        ("/h/exact", Some("vv"), "fallback"),
        ("/h/exact", None, "fallback"),
        ("/h/prefix", Some("prefix-value"), "h-prefix"),
        ("/h/prefix", Some("xpre"), "fallback"),
        ("/h/suffix", Some("the-suf"), "h-suffix"),
        ("/h/suffix", Some("suf-not"), "fallback"),
        ("/h/contains", Some("a-mid-b"), "h-contains"),
        ("/h/contains", Some("nothing"), "fallback"),
        ("/h/regex", Some("abc-123"), "h-regex"),
        ("/h/regex", Some("abc-123x"), "fallback"),
        ("/h/present", Some(""), "h-present"),
        ("/h/present", Some("anything"), "h-present"),
        ("/h/present", None, "fallback"),
        ("/h/range", Some("10"), "h-range"),
        ("/h/range", Some("19"), "h-range"),
        ("/h/range", Some("20"), "fallback"),
        ("/h/range", Some("abc"), "fallback"),
        ("/h/invert", Some("yes"), "h-invert"),
        ("/h/invert", Some("no"), "fallback"),
        ("/q/exact?k=v", None, "q-exact"),
        ("/q/exact?a=b&k=v", None, "q-exact"),
        ("/q/exact?k=vv", None, "fallback"),
        ("/q/exact", None, "fallback"),
        ("/q/present?k", None, "q-present"),
        ("/q/present?k=1", None, "q-present"),
        ("/q/present?j=1", None, "fallback"),
    ];
    for (path, value, expected) in cases {
        let headers: Vec<(&str, &str)> = value.map(|v| ("x-h", v)).into_iter().collect();
        assert_eq!(
            body_for(addr, "test", path, &headers).await?,
            *expected,
            "path {path} x-h {value:?}"
        );
    }
    Ok(())
}

/// Header matchers on the request pseudo-headers `:method`, `:authority`, `:path` (with
/// the query) and `:scheme` (the connection's on HTTP/1).
#[tokio::test]
async fn header_matchers_on_pseudo_headers() -> anyhow::Result<()> {
    let exact =
        |name: &str, value: &str| json!([{ "name": name, "string_match": { "exact": value } }]);
    let routes = vec![
        named(
            json!({ "prefix": "/m", "headers": exact(":method", "POST") }),
            "method",
        ),
        named(
            json!({ "prefix": "/m", "headers": exact(":authority", "auth.example") }),
            "authority",
        ),
        named(
            json!({ "prefix": "/m", "headers": exact(":path", "/mpath?q=1") }),
            "path",
        ),
        named(
            json!({ "prefix": "/m", "headers": exact(":scheme", "https") }),
            "https",
        ),
        named(
            json!({ "prefix": "/m", "headers": exact(":scheme", "http") }),
            "http",
        ),
    ];
    let cfg = bootstrap(
        vec![http_listener(
            "http",
            route_config(vec![vhost("all", &["*"], routes)]),
        )],
        vec![],
    );
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    let resp = baton_tests::client::http1_request(
        addr,
        "POST",
        "/m",
        &[("host", "a.example"), ("content-length", "0")],
        b"",
    )
    .await?;
    assert_eq!(resp.body_text(), "method");
    assert_eq!(
        body_for(addr, "auth.example", "/m", &[]).await?,
        "authority"
    );
    assert_eq!(
        body_for(addr, "a.example", "/mpath?q=1", &[]).await?,
        "path"
    );
    // `:path` is the whole request target: no match without the query.
    assert_eq!(body_for(addr, "a.example", "/mpath", &[]).await?, "http");
    assert_eq!(body_for(addr, "a.example", "/m", &[]).await?, "http");
    Ok(())
}

/// With `validate_clusters: false` a route may name a cluster that does not exist: 503
/// (`NC`) at request time, or the route's `cluster_not_found_response_code`; a
/// `cluster_header` naming no cluster (or missing) is the same 503.
#[tokio::test]
async fn missing_cluster_at_request_time() -> anyhow::Result<()> {
    let upstream = baton_tests::EchoUpstream::start("a").await?;
    let routes = vec![
        json!({ "match": { "prefix": "/gone404" }, "route": { "cluster": "nosuch", "cluster_not_found_response_code": "NOT_FOUND" } }),
        json!({ "match": { "prefix": "/gone500" }, "route": { "cluster": "nosuch", "cluster_not_found_response_code": "INTERNAL_SERVER_ERROR" } }),
        json!({ "match": { "prefix": "/gone" }, "route": { "cluster": "nosuch" } }),
        json!({ "match": { "prefix": "/hdr" }, "route": { "cluster_header": "x-cluster" } }),
    ];
    let mut rc = route_config(vec![vhost("all", &["*"], routes)]);
    rc["validate_clusters"] = json!(false);
    let cfg = bootstrap(
        vec![http_listener("http", rc)],
        vec![baton_tests::config::static_cluster(
            "backend",
            &[upstream.addr()],
        )],
    );
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    for (path, headers, status) in [
        ("/gone", vec![], 503),
        ("/gone404", vec![], 404),
        ("/gone500", vec![], 500),
        ("/hdr", vec![], 503),
        ("/hdr", vec![("x-cluster", "nope")], 503),
        ("/hdr", vec![("x-cluster", "backend")], 200),
    ] {
        let resp = get_with(addr, path, &headers).await?;
        assert_eq!(resp.status, status, "{path} {headers:?}");
        if status != 200 {
            assert!(resp.body.is_empty(), "{path}: {}", resp.body_text());
            assert_eq!(resp.header("content-length"), Some("0"), "{path}");
        }
    }
    Ok(())
}

/// `require_tls` on a virtual host: a plain-text request is answered 301 to the same
/// host and path (query included) over https, before any route is matched;
/// `EXTERNAL_ONLY` spares requests Envoy marks internal.
#[tokio::test]
async fn require_tls_redirects_plain_text_requests() -> anyhow::Result<()> {
    let mut all = vhost(
        "secure",
        &["secure.example"],
        vec![direct_route("/only", 200, "ok")],
    );
    all["require_tls"] = json!("ALL");
    let mut ext = vhost("ext", &["ext.example"], vec![direct_route("/", 200, "ok")]);
    ext["require_tls"] = json!("EXTERNAL_ONLY");
    let cfg = bootstrap(
        vec![http_listener(
            "http",
            route_config(vec![
                all,
                ext,
                vhost("any", &["*"], vec![direct_route("/", 200, "plain")]),
            ]),
        )],
        vec![],
    );
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    for (host, path, location) in [
        (
            "secure.example",
            "/only?a=1",
            "https://secure.example/only?a=1",
        ),
        (
            "secure.example",
            "/nothing/matches",
            "https://secure.example/nothing/matches",
        ),
        ("ext.example", "/x", "https://ext.example/x"),
    ] {
        let resp = get_with(addr, path, &[("host", host)]).await?;
        assert_eq!(resp.status, 301, "{host}{path}");
        assert_eq!(resp.header("location"), Some(location));
        assert_eq!(resp.header("content-length"), Some("0"));
        assert!(resp.body.is_empty());
    }
    assert_eq!(body_for(addr, "other.example", "/", &[]).await?, "plain");
    Ok(())
}
