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
