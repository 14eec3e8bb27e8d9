//! Header manipulation (request/response add/remove at route config, virtual host and route
//! level, append_action, `%DOWNSTREAM_REMOTE_ADDRESS%` substitutions) and Envoy's forwarding
//! headers (x-forwarded-for/-proto, x-request-id, x-envoy-*, server, via).

use std::net::SocketAddr;

use baton_tests::config::{hcm_of, simple_proxy};
use baton_tests::{get_with, EchoUpstream, Echoed, Proxy, RawHttp1};
use serde_json::{json, Value};

async fn start(
    mutate: impl FnOnce(&mut Value),
) -> anyhow::Result<(EchoUpstream, Proxy, SocketAddr)> {
    let upstream = EchoUpstream::start("a").await?;
    let mut cfg = simple_proxy(&[upstream.addr()]);
    mutate(hcm_of(&mut cfg, 0));
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    Ok((upstream, proxy, addr))
}

fn add(key: &str, value: &str, action: &str) -> Value {
    json!({ "header": { "key": key, "value": value }, "append_action": action })
}

#[tokio::test]
async fn request_headers_to_add_and_remove_with_append_actions() -> anyhow::Result<()> {
    let (_u, _p, addr) = start(|hcm| {
        let vh = &mut hcm["route_config"]["virtual_hosts"][0];
        vh["routes"][0]["request_headers_to_add"] = json!([
            add("x-append", "added", "APPEND_IF_EXISTS_OR_ADD"),
            add("x-if-absent", "added", "ADD_IF_ABSENT"),
            add("x-absent-new", "added", "ADD_IF_ABSENT"),
            add("x-overwrite", "added", "OVERWRITE_IF_EXISTS_OR_ADD"),
            add("x-overwrite-if-exists", "added", "OVERWRITE_IF_EXISTS"),
            add(
                "x-overwrite-if-exists-missing",
                "added",
                "OVERWRITE_IF_EXISTS"
            ),
            add(
                "x-client",
                "%DOWNSTREAM_REMOTE_ADDRESS%",
                "OVERWRITE_IF_EXISTS_OR_ADD"
            ),
            add(
                "x-client-ip",
                "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
                "OVERWRITE_IF_EXISTS_OR_ADD"
            ),
            add("x-literal", "100%%", "OVERWRITE_IF_EXISTS_OR_ADD"),
        ]);
        vh["routes"][0]["request_headers_to_remove"] = json!(["x-remove-me"]);
    })
    .await?;
    let mut conn = RawHttp1::connect(addr).await?;
    let local = conn.local_addr()?;
    conn.send_request(
        "GET",
        "/",
        &[
            ("x-append", "client"),
            ("x-if-absent", "client"),
            ("x-overwrite", "client"),
            ("x-overwrite-if-exists", "client"),
            ("x-remove-me", "client"),
        ],
        b"",
    )
    .await?;
    let echoed = conn.read_response().await?.json()?;
    assert_eq!(echoed.req_header_all("x-append"), vec!["client", "added"]);
    assert_eq!(echoed.req_header_all("x-if-absent"), vec!["client"]);
    assert_eq!(echoed.req_header_all("x-absent-new"), vec!["added"]);
    assert_eq!(echoed.req_header_all("x-overwrite"), vec!["added"]);
    assert_eq!(
        echoed.req_header_all("x-overwrite-if-exists"),
        vec!["added"]
    );
    assert!(echoed
        .req_header_all("x-overwrite-if-exists-missing")
        .is_empty());
    assert_eq!(echoed.req_header("x-client"), Some(local.to_string()));
    assert_eq!(
        echoed.req_header("x-client-ip").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(echoed.req_header("x-literal").as_deref(), Some("100%"));
    assert_eq!(echoed.req_header("x-remove-me"), None);
    Ok(())
}

#[tokio::test]
async fn header_mutations_apply_at_every_level_most_general_last() -> anyhow::Result<()> {
    let (_u, _p, addr) = start(|hcm| {
        let rc = &mut hcm["route_config"];
        rc["request_headers_to_add"] = json!([
            add("x-level", "route_config", "OVERWRITE_IF_EXISTS_OR_ADD"),
            add("x-rc", "1", "APPEND_IF_EXISTS_OR_ADD")
        ]);
        rc["response_headers_to_add"] = json!([add(
            "x-resp-level",
            "route_config",
            "OVERWRITE_IF_EXISTS_OR_ADD"
        )]);
        let vh = &mut rc["virtual_hosts"][0];
        vh["request_headers_to_add"] = json!([
            add("x-level", "vhost", "OVERWRITE_IF_EXISTS_OR_ADD"),
            add("x-vh", "1", "APPEND_IF_EXISTS_OR_ADD")
        ]);
        vh["response_headers_to_add"] =
            json!([add("x-resp-level", "vhost", "OVERWRITE_IF_EXISTS_OR_ADD")]);
        vh["routes"][0]["request_headers_to_add"] = json!([
            add("x-level", "route", "OVERWRITE_IF_EXISTS_OR_ADD"),
            add("x-route", "1", "APPEND_IF_EXISTS_OR_ADD")
        ]);
        vh["routes"][0]["response_headers_to_add"] =
            json!([add("x-resp-level", "route", "OVERWRITE_IF_EXISTS_OR_ADD")]);
    })
    .await?;
    let resp = get_with(addr, "/", &[]).await?;
    let echoed = resp.json()?;
    for name in ["x-rc", "x-vh", "x-route"] {
        assert_eq!(echoed.req_header(name).as_deref(), Some("1"), "{name}");
    }
    // Envoy's default order: route, then virtual host, then route configuration, so the most
    // general level wins an overwrite (unless most_specific_header_mutations_wins).
    assert_eq!(
        echoed.req_header("x-level").as_deref(),
        Some("route_config")
    );
    assert_eq!(resp.header("x-resp-level"), Some("route_config"));
    Ok(())
}

#[tokio::test]
async fn response_headers_to_add_and_remove() -> anyhow::Result<()> {
    let (_u, _p, addr) = start(|hcm| {
        let route = &mut hcm["route_config"]["virtual_hosts"][0]["routes"][0];
        route["response_headers_to_add"] = json!([
            add("x-resp-added", "yes", "APPEND_IF_EXISTS_OR_ADD"),
            add("x-from-upstream", "proxy", "APPEND_IF_EXISTS_OR_ADD"),
            add(
                "x-downstream",
                "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
                "OVERWRITE_IF_EXISTS_OR_ADD"
            ),
        ]);
        route["response_headers_to_remove"] = json!(["x-secret"]);
    })
    .await?;
    let resp = get_with(
        addr,
        "/?header=x-secret:s&header=x-from-upstream:upstream",
        &[],
    )
    .await?;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-resp-added"), Some("yes"));
    assert_eq!(
        resp.header_all("x-from-upstream"),
        vec!["upstream", "proxy"]
    );
    assert_eq!(resp.header("x-downstream"), Some("127.0.0.1"));
    assert_eq!(resp.header("x-secret"), None);
    Ok(())
}

#[tokio::test]
async fn forwarding_headers_with_use_remote_address() -> anyhow::Result<()> {
    let (_u, _p, addr) = start(|hcm| hcm["use_remote_address"] = json!(true)).await?;
    let echoed = get_with(addr, "/", &[("x-forwarded-for", "203.0.113.7")])
        .await?
        .json()?;
    let xff = echoed.req_header("x-forwarded-for").unwrap_or_default();
    // Envoy appends the peer address, except that a loopback peer is replaced by the host's
    // own first non-loopback address (machine-dependent), so only its shape is asserted.
    let (original, appended) = xff.split_once(',').unwrap_or_default();
    assert_eq!(original, "203.0.113.7", "{xff}");
    assert!(appended.parse::<std::net::IpAddr>().is_ok(), "{xff}");
    assert_eq!(
        echoed.req_header("x-forwarded-proto").as_deref(),
        Some("http")
    );
    let fresh = get_with(addr, "/", &[]).await?.json()?;
    assert_eq!(
        fresh.req_header("x-forwarded-for").as_deref(),
        Some(appended)
    );
    Ok(())
}

#[tokio::test]
async fn forwarding_headers_without_use_remote_address() -> anyhow::Result<()> {
    let (_u, _p, addr) = start(|_| {}).await?;
    let echoed = get_with(addr, "/", &[("x-forwarded-for", "203.0.113.7")])
        .await?
        .json()?;
    assert_eq!(
        echoed.req_header("x-forwarded-for").as_deref(),
        Some("203.0.113.7")
    );
    assert_eq!(
        echoed.req_header("x-forwarded-proto").as_deref(),
        Some("http")
    );
    let fresh = get_with(addr, "/", &[]).await?.json()?;
    assert_eq!(fresh.req_header("x-forwarded-for"), None);
    Ok(())
}

#[tokio::test]
async fn x_request_id_generated_and_preserved() -> anyhow::Result<()> {
    let (_u, _p, addr) = start(|_| {}).await?;
    let generated = get_with(addr, "/", &[])
        .await?
        .json()?
        .req_header("x-request-id")
        .unwrap_or_default();
    assert_eq!(generated.len(), 36, "{generated}");
    assert_eq!(generated.matches('-').count(), 4, "{generated}");
    let other = get_with(addr, "/", &[])
        .await?
        .json()?
        .req_header("x-request-id")
        .unwrap_or_default();
    assert_ne!(generated, other);
    let kept = get_with(addr, "/", &[("x-request-id", "client-chosen-id")])
        .await?
        .json()?;
    assert_eq!(
        kept.req_header("x-request-id").as_deref(),
        Some("client-chosen-id")
    );
    Ok(())
}

#[tokio::test]
async fn x_envoy_timing_headers() -> anyhow::Result<()> {
    let (_u, _p, addr) = start(|hcm| {
        hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"]["timeout"] = json!("3s");
    })
    .await?;
    let resp = get_with(addr, "/", &[]).await?;
    let echoed = resp.json()?;
    assert_eq!(
        echoed
            .req_header("x-envoy-expected-rq-timeout-ms")
            .as_deref(),
        Some("3000")
    );
    let service_time = resp
        .header("x-envoy-upstream-service-time")
        .unwrap_or_default();
    assert!(service_time.parse::<u64>().is_ok(), "{service_time:?}");
    Ok(())
}

#[tokio::test]
async fn default_route_timeout_is_15s_in_expected_timeout_header() -> anyhow::Result<()> {
    let (_u, _p, addr) = start(|_| {}).await?;
    let echoed = get_with(addr, "/", &[]).await?.json()?;
    assert_eq!(
        echoed
            .req_header("x-envoy-expected-rq-timeout-ms")
            .as_deref(),
        Some("15000")
    );
    Ok(())
}

#[tokio::test]
async fn external_request_x_envoy_headers_are_stripped() -> anyhow::Result<()> {
    // With use_remote_address and no internal address ranges configured, a 127.0.0.1 client is
    // external, so its x-envoy-* control headers are not trusted.
    let (_u, _p, addr) = start(|hcm| hcm["use_remote_address"] = json!(true)).await?;
    let echoed = get_with(
        addr,
        "/",
        &[("x-envoy-retry-on", "5xx"), ("x-envoy-internal", "true")],
    )
    .await?
    .json()?;
    assert_eq!(echoed.req_header("x-envoy-retry-on"), None);
    assert_eq!(echoed.req_header("x-envoy-internal"), None);
    Ok(())
}

#[tokio::test]
async fn server_name_and_via() -> anyhow::Result<()> {
    let (_u, _p, addr) = start(|hcm| {
        hcm["server_name"] = json!("custom-server");
        hcm["via"] = json!("baton-test");
    })
    .await?;
    let resp = get_with(addr, "/?header=server:upstream-server", &[]).await?;
    assert_eq!(resp.header("server"), Some("custom-server"));
    assert_eq!(resp.header("via"), Some("baton-test"));
    assert_eq!(
        resp.json()?.req_header("via").as_deref(),
        Some("baton-test")
    );
    // Local replies carry the server name too.
    let missing = get_with(addr, "/", &[("host", "x")]).await?;
    assert_eq!(missing.header("server"), Some("custom-server"));
    Ok(())
}

#[tokio::test]
async fn server_header_pass_through() -> anyhow::Result<()> {
    let (_u, _p, addr) =
        start(|hcm| hcm["server_header_transformation"] = json!("PASS_THROUGH")).await?;
    let resp = get_with(addr, "/?header=server:upstream-server", &[]).await?;
    assert_eq!(resp.header("server"), Some("upstream-server"));
    Ok(())
}

#[tokio::test]
async fn x_request_id_from_external_client_is_replaced_with_use_remote_address(
) -> anyhow::Result<()> {
    let (_u, _p, addr) = start(|hcm| hcm["use_remote_address"] = json!(true)).await?;
    let echoed = get_with(addr, "/", &[("x-request-id", "client-chosen-id")])
        .await?
        .json()?;
    let id = echoed.req_header("x-request-id").unwrap_or_default();
    assert_ne!(id, "client-chosen-id");
    assert_eq!(id.len(), 36, "{id}");
    Ok(())
}

#[tokio::test]
async fn x_request_id_kept_with_preserve_external_request_id() -> anyhow::Result<()> {
    let (_u, _p, addr) = start(|hcm| {
        hcm["use_remote_address"] = json!(true);
        hcm["preserve_external_request_id"] = json!(true);
    })
    .await?;
    let echoed = get_with(addr, "/", &[("x-request-id", "client-chosen-id")])
        .await?
        .json()?;
    assert_eq!(
        echoed.req_header("x-request-id").as_deref(),
        Some("client-chosen-id")
    );
    Ok(())
}

#[tokio::test]
async fn xff_num_trusted_hops_picks_client_address_for_external_header() -> anyhow::Result<()> {
    let (_u, _p, addr) = start(|hcm| {
        hcm["use_remote_address"] = json!(true);
        hcm["xff_num_trusted_hops"] = json!(1);
    })
    .await?;
    let echoed = get_with(
        addr,
        "/",
        &[("x-forwarded-for", "198.51.100.1,203.0.113.9")],
    )
    .await?
    .json()?;
    // One trusted hop: 203.0.113.9 (appended by a trusted proxy) is the client.
    assert_eq!(
        echoed.req_header("x-envoy-external-address").as_deref(),
        Some("203.0.113.9")
    );
    Ok(())
}

/// The address Envoy appends to `x-forwarded-for` for a loopback client: the machine's
/// first non-loopback IPv4 interface address, else 127.0.0.1.
fn envoy_local_address() -> String {
    nix::ifaddrs::getifaddrs()
        .ok()
        .and_then(|addrs| {
            addrs
                .filter_map(|a| a.address?.as_sockaddr_in().map(|s| s.ip()))
                .find(|ip| !ip.is_loopback())
        })
        .map_or_else(|| "127.0.0.1".to_string(), |ip| ip.to_string())
}

/// With `use_remote_address`, a client on 127.0.0.1 is recorded in `x-forwarded-for` as
/// the machine's own non-loopback address (Envoy's `local_address`), appended with `,`.
#[tokio::test]
async fn xff_for_a_loopback_client_is_the_local_address() -> anyhow::Result<()> {
    let (_u, _p, addr) = start(|hcm| hcm["use_remote_address"] = json!(true)).await?;
    let local = envoy_local_address();
    let echoed = get_with(addr, "/", &[("x-forwarded-for", "203.0.113.7")])
        .await?
        .json()?;
    assert_eq!(
        echoed.req_header("x-forwarded-for"),
        Some(format!("203.0.113.7,{local}"))
    );
    // x-envoy-external-address still names the peer itself.
    assert_eq!(
        echoed.req_header("x-envoy-external-address").as_deref(),
        Some("127.0.0.1")
    );
    let fresh = get_with(addr, "/", &[]).await?.json()?;
    assert_eq!(fresh.req_header("x-forwarded-for"), Some(local));
    Ok(())
}

/// `via` is appended with `, ` to the request's and to the upstream response's.
#[tokio::test]
async fn via_values_are_joined_with_comma_space() -> anyhow::Result<()> {
    let (_u, _p, addr) = start(|hcm| hcm["via"] = json!("baton-test")).await?;
    let resp = get_with(addr, "/?header=via:upstream-hop", &[("via", "1.1 first")]).await?;
    assert_eq!(resp.header("via"), Some("upstream-hop, baton-test"));
    assert_eq!(
        resp.json()?.req_header("via").as_deref(),
        Some("1.1 first, baton-test")
    );
    Ok(())
}

/// A host rewrite keeps the old host in `x-envoy-original-host` (a client's own value is
/// stripped at the edge) and, with `append_x_forwarded_host`, appends it to
/// `x-forwarded-host` with `,`.
#[tokio::test]
async fn host_rewrite_sets_original_host_and_forwarded_host() -> anyhow::Result<()> {
    let (_u, _p, addr) = start(|hcm| {
        hcm["use_remote_address"] = json!(true);
        let routes = &mut hcm["route_config"]["virtual_hosts"][0]["routes"];
        let fallback = routes[0].clone();
        *routes = json!([
            { "match": { "prefix": "/xfh" }, "route": { "cluster": "backend", "host_rewrite_literal": "new.example", "append_x_forwarded_host": true } },
            { "match": { "prefix": "/rw" }, "route": { "cluster": "backend", "host_rewrite_literal": "new.example" } },
            fallback,
        ]);
    })
    .await?;
    let rw = get_with(addr, "/rw", &[("host", "a.example")])
        .await?
        .json()?;
    assert_eq!(rw.req_header("host").as_deref(), Some("new.example"));
    assert_eq!(
        rw.req_header("x-envoy-original-host").as_deref(),
        Some("a.example")
    );
    assert_eq!(rw.req_header("x-forwarded-host"), None);
    let xfh = get_with(
        addr,
        "/xfh",
        &[("host", "a.example"), ("x-forwarded-host", "z.example")],
    )
    .await?
    .json()?;
    assert_eq!(
        xfh.req_header("x-forwarded-host").as_deref(),
        Some("z.example,a.example")
    );
    let plain = get_with(
        addr,
        "/",
        &[("host", "a.example"), ("x-envoy-original-host", "evil")],
    )
    .await?
    .json()?;
    assert_eq!(plain.req_header("x-envoy-original-host"), None);
    Ok(())
}

/// `auto_host_rewrite` (the picked endpoint's `hostname`) keeps the old host as the
/// other host rewrites do: in `x-envoy-original-host` and, with
/// `append_x_forwarded_host`, in `x-forwarded-host` (Envoy 1.40, measured).
#[tokio::test]
async fn auto_host_rewrite_sets_original_host_and_forwarded_host() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let mut cfg = simple_proxy(&[upstream.addr()]);
    cfg["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
        ["endpoint"]["hostname"] = json!("upstream.example");
    let routes = &mut hcm_of(&mut cfg, 0)["route_config"]["virtual_hosts"][0]["routes"];
    *routes = json!([
        { "match": { "prefix": "/xfh" }, "route": { "cluster": "backend", "auto_host_rewrite": true, "append_x_forwarded_host": true } },
        { "match": { "prefix": "/" }, "route": { "cluster": "backend", "auto_host_rewrite": true } },
    ]);
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    let plain = get_with(addr, "/a", &[("host", "a.example")])
        .await?
        .json()?;
    assert_eq!(
        plain.req_header("host").as_deref(),
        Some("upstream.example")
    );
    assert_eq!(
        plain.req_header("x-envoy-original-host").as_deref(),
        Some("a.example")
    );
    assert_eq!(plain.req_header("x-forwarded-host"), None);
    let xfh = get_with(
        addr,
        "/xfh",
        &[("host", "a.example"), ("x-forwarded-host", "z.example")],
    )
    .await?
    .json()?;
    assert_eq!(xfh.req_header("host").as_deref(), Some("upstream.example"));
    assert_eq!(
        xfh.req_header("x-forwarded-host").as_deref(),
        Some("z.example,a.example")
    );
    assert_eq!(
        xfh.req_header("x-envoy-original-host").as_deref(),
        Some("a.example")
    );
    Ok(())
}
