//! Admin endpoints: /ready, /server_info fields, /listeners (JSON and text), /clusters,
//! /config_dump, /healthcheck/fail and /healthcheck/ok, /runtime and /memory, POST-only
//! endpoints refusing GET, and admin framing (HEAD, HTTP/1.0, h2c).

use baton_tests::config::simple_proxy;
use baton_tests::{get, EchoUpstream, H2Client, Proxy, RawHttp1, StartOptions};
use serde_json::Value;

async fn proxy() -> anyhow::Result<(EchoUpstream, Proxy)> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    Ok((upstream, proxy))
}

#[tokio::test]
async fn ready_is_200_live() -> anyhow::Result<()> {
    let (_u, proxy) = proxy().await?;
    let resp = proxy.admin_request("GET", "/ready").await?;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text().trim(), "LIVE");
    Ok(())
}

#[tokio::test]
async fn server_info_reports_state_version_uptime_and_options() -> anyhow::Result<()> {
    let (_u, proxy) = proxy().await?;
    let resp = proxy.admin_request("GET", "/server_info").await?;
    assert_eq!(resp.status, 200);
    let info: Value = resp.json()?;
    assert_eq!(info["state"], "LIVE");
    assert!(
        info["version"].as_str().is_some_and(|v| !v.is_empty()),
        "{info}"
    );
    assert!(info.get("uptime_current_epoch").is_some(), "{info}");
    assert!(info.get("uptime_all_epochs").is_some(), "{info}");
    let options = &info["command_line_options"];
    assert_eq!(options["concurrency"], 2, "{options}");
    assert_eq!(options["restart_epoch"], 0, "{options}");
    assert!(
        options["config_path"]
            .as_str()
            .is_some_and(|p| p.ends_with("config.yaml")),
        "{options}"
    );
    assert_eq!(options["drain_time"], "1s", "{options}");
    Ok(())
}

#[tokio::test]
async fn listeners_json_and_text() -> anyhow::Result<()> {
    let (_u, proxy) = proxy().await?;
    let addr = proxy.listener_addr("http").await?;
    let text = proxy.admin_request("GET", "/listeners").await?;
    assert_eq!(text.status, 200);
    assert_eq!(text.body_text().trim(), format!("http::{addr}"));
    Ok(())
}

#[tokio::test]
async fn clusters_lists_hosts_with_counters() -> anyhow::Result<()> {
    let (upstream, proxy) = proxy().await?;
    let addr = proxy.listener_addr("http").await?;
    for _ in 0..3 {
        assert_eq!(get(addr, "/").await?.status, 200);
    }
    let resp = proxy.admin_request("GET", "/clusters").await?;
    assert_eq!(resp.status, 200);
    let body = resp.body_text();
    let host = format!("backend::{}", upstream.addr());
    assert!(
        body.contains(&format!("{host}::health_flags::healthy")),
        "{body}"
    );
    assert!(body.contains(&format!("{host}::rq_total::3")), "{body}");
    assert!(body.contains(&format!("{host}::cx_active::")), "{body}");
    assert!(
        body.contains("backend::default_priority::max_connections::"),
        "{body}"
    );
    let json = proxy
        .admin_request("GET", "/clusters?format=json")
        .await?
        .json()?;
    let statuses = json["cluster_statuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(statuses.iter().any(|c| c["name"] == "backend"), "{json}");
    Ok(())
}

#[tokio::test]
async fn config_dump_contains_bootstrap_listeners_and_clusters() -> anyhow::Result<()> {
    let (_u, proxy) = proxy().await?;
    let resp = proxy.admin_request("GET", "/config_dump").await?;
    assert_eq!(resp.status, 200);
    let dump = resp.json()?;
    let types: Vec<String> = dump["configs"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|e| e["@type"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for expected in [
        "BootstrapConfigDump",
        "ClustersConfigDump",
        "ListenersConfigDump",
    ] {
        assert!(
            types.iter().any(|t| t.ends_with(expected)),
            "{expected} missing from {types:?}"
        );
    }
    let text = resp.body_text();
    assert!(text.contains("\"backend\""), "cluster missing");
    assert!(text.contains("\"http\""), "listener missing");
    Ok(())
}

#[tokio::test]
async fn healthcheck_fail_and_ok_toggle_readiness() -> anyhow::Result<()> {
    let (_u, proxy) = proxy().await?;
    assert_eq!(
        proxy
            .admin_request("POST", "/healthcheck/fail")
            .await?
            .status,
        200
    );
    let info = proxy.admin_request("GET", "/server_info").await?.json()?;
    assert_eq!(info["state"], "DRAINING");
    assert_eq!(proxy.admin_request("GET", "/ready").await?.status, 503);
    assert_eq!(
        proxy.admin_request("POST", "/healthcheck/ok").await?.status,
        200
    );
    assert_eq!(proxy.admin_request("GET", "/ready").await?.status, 200);
    assert_eq!(
        proxy.admin_request("GET", "/server_info").await?.json()?["state"],
        "LIVE"
    );
    Ok(())
}

#[tokio::test]
async fn mutating_endpoints_require_post() -> anyhow::Result<()> {
    let (_u, proxy) = proxy().await?;
    let resp = proxy.admin_request("GET", "/healthcheck/fail").await?;
    assert_eq!(resp.status, 405);
    assert_eq!(proxy.admin_request("GET", "/ready").await?.status, 200);
    Ok(())
}

#[tokio::test]
async fn unknown_admin_path_is_404() -> anyhow::Result<()> {
    let (_u, proxy) = proxy().await?;
    assert_eq!(
        proxy
            .admin_request("GET", "/no-such-admin-page")
            .await?
            .status,
        404
    );
    Ok(())
}

#[tokio::test]
async fn server_info_echoes_service_cluster_and_node() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let opts = StartOptions {
        extra_args: ["--service-cluster", "edge", "--service-node", "node-1"]
            .map(String::from)
            .to_vec(),
        ..StartOptions::default()
    };
    let proxy = Proxy::start_with(&simple_proxy(&[upstream.addr()]), opts).await?;
    let info = proxy.admin_request("GET", "/server_info").await?.json()?;
    let options = &info["command_line_options"];
    assert_eq!(options["service_cluster"], "edge", "{options}");
    assert_eq!(options["service_node"], "node-1", "{options}");
    assert_eq!(info["node"]["cluster"], "edge", "{info}");
    assert_eq!(info["node"]["id"], "node-1", "{info}");
    Ok(())
}

/// Envoy 1.40 streams every admin answer: chunked, no `content-length`, `server: envoy`,
/// and its headers in this order (measured side by side).
#[tokio::test]
async fn admin_answers_are_chunked_with_envoys_headers() -> anyhow::Result<()> {
    let (_u, proxy) = proxy().await?;
    for (path, content_type) in [
        ("/ready", "text/plain; charset=UTF-8"),
        ("/server_info", "application/json"),
        ("/stats", "text/plain; charset=UTF-8"),
        ("/stats?format=json", "application/json"),
        ("/stats/prometheus", "text/plain; charset=UTF-8"),
        ("/stats?format=prometheus", "text/plain; charset=UTF-8"),
        ("/clusters", "text/plain; charset=UTF-8"),
        ("/clusters?format=json", "application/json"),
        ("/listeners", "text/plain; charset=UTF-8"),
        ("/listeners?format=json", "application/json"),
        ("/config_dump", "application/json"),
        ("/init_dump", "application/json"),
        ("/help", "text/plain; charset=UTF-8"),
        ("/hot_restart_version", "text/plain; charset=UTF-8"),
        ("/no-such-admin-page", "text/plain; charset=UTF-8"),
    ] {
        let resp = proxy.admin_request("GET", path).await?;
        let names: Vec<&str> = resp.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "content-type",
                "cache-control",
                "x-content-type-options",
                "date",
                "server",
                "transfer-encoding"
            ],
            "{path}: {:?}",
            resp.headers
        );
        assert_eq!(resp.header("content-type"), Some(content_type), "{path}");
        assert_eq!(resp.header("server"), Some("envoy"), "{path}");
        assert_eq!(resp.header("transfer-encoding"), Some("chunked"), "{path}");
        assert_eq!(resp.header("cache-control"), Some("no-cache, max-age=0"));
        assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
        // Envoy's stats JSON is one line with no final newline; its other JSON answers
        // are pretty-printed.
        if content_type == "application/json" && path != "/stats?format=json" {
            // One-space indentation and a final newline, as Envoy prints JSON.
            let body = resp.body_text();
            assert!(body.ends_with('\n'), "{path}: {body:?}");
            if path != "/init_dump" {
                assert!(body.starts_with("{\n \""), "{path}: {body:?}");
            }
        }
    }
    Ok(())
}

/// GET on an endpoint that changes state: 405 with Envoy's sentence; the 404 for an
/// unknown path lists the endpoints after `invalid path. `.
#[tokio::test]
async fn wrong_method_and_unknown_path_bodies() -> anyhow::Result<()> {
    let (_u, proxy) = proxy().await?;
    for path in [
        "/quitquitquit",
        "/healthcheck/fail",
        "/healthcheck/ok",
        "/reset_counters",
        "/drain_listeners",
    ] {
        let resp = proxy.admin_request("GET", path).await?;
        assert_eq!(resp.status, 405, "{path}");
        assert_eq!(resp.body_text(), "Method GET not allowed, POST required.");
    }
    // Read-only endpoints answer any method.
    assert_eq!(proxy.admin_request("POST", "/ready").await?.status, 200);
    let resp = proxy.admin_request("GET", "/no-such-admin-page").await?;
    assert_eq!(resp.status, 404);
    let body = resp.body_text();
    assert!(
        body.starts_with("invalid path. admin commands are:\n  /"),
        "{body}"
    );
    assert!(
        body.contains("\n  /quitquitquit (POST): exit the server\n"),
        "{body}"
    );
    assert!(body.contains("\n  /ready: print server state"), "{body}");
    let help = proxy.admin_request("GET", "/help").await?;
    assert_eq!(help.status, 200);
    assert!(help.body_text().starts_with("admin commands are:\n  /"));
    Ok(())
}

/// Envoy's admin listener refuses HTTP/1.0 with 426 and a fixed-length body, closing.
#[tokio::test]
async fn http10_admin_request_is_426() -> anyhow::Result<()> {
    let (_u, proxy) = proxy().await?;
    let mut conn = baton_tests::client::RawHttp1::connect(proxy.admin()).await?;
    conn.send(b"GET /ready HTTP/1.0\r\n\r\n").await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 426);
    assert_eq!(resp.body_text(), "Upgrade Required");
    assert_eq!(resp.header("content-length"), Some("16"));
    assert_eq!(resp.header("content-type"), Some("text/plain"));
    assert_eq!(resp.header("server"), Some("envoy"));
    assert!(resp.connection_close());
    Ok(())
}

/// `/server_info` has exactly Envoy's keys, in Envoy's order (top level, node and
/// `command_line_options`).
#[tokio::test]
async fn server_info_has_envoys_key_set_in_order() -> anyhow::Result<()> {
    let (_u, proxy) = proxy().await?;
    let resp = proxy.admin_request("GET", "/server_info").await?;
    let body = resp.body_text();
    let keys_at = |indent: usize| -> Vec<String> {
        let prefix = format!("{}\"", " ".repeat(indent));
        body.lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .filter_map(|l| l.split_once("\":").map(|(k, _)| k.to_string()))
            .collect()
    };
    assert_eq!(
        keys_at(1),
        [
            "version",
            "state",
            "uptime_current_epoch",
            "uptime_all_epochs",
            "hot_restart_version",
            "command_line_options",
            "node",
            "hot_restart_initializing"
        ],
        "{body}"
    );
    let info = resp.json()?;
    let options: Vec<&str> = info["command_line_options"]
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let mut expected = vec![
        "base_id",
        "concurrency",
        "config_path",
        "config_yaml",
        "allow_unknown_static_fields",
        "admin_address_path",
        "local_address_ip_version",
        "log_level",
        "component_log_level",
        "log_format",
        "log_path",
        "service_cluster",
        "service_node",
        "service_zone",
        "file_flush_interval",
        "drain_time",
        "parent_shutdown_time",
        "mode",
        "disable_hot_restart",
        "enable_mutex_tracing",
        "restart_epoch",
        "cpuset_threads",
        "reject_unknown_dynamic_fields",
        "log_format_escaped",
        "disabled_extensions",
        "ignore_unknown_dynamic_fields",
        "use_dynamic_base_id",
        "base_id_path",
        "drain_strategy",
        "enable_fine_grain_logging",
        "socket_path",
        "socket_mode",
        "enable_core_dump",
        "stats_tag",
        "skip_hot_restart_on_no_parent",
        "skip_hot_restart_parent_stats",
        "skip_deprecated_logs",
        "file_flush_min_size",
        "log_stacktrace_single_entry",
    ];
    // serde_json's map is sorted: compare the sets here, the order in the text below.
    let mut sorted = options.clone();
    sorted.sort_unstable();
    expected.sort_unstable();
    assert_eq!(sorted, expected);
    let cli_text = body
        .split("\"command_line_options\": {")
        .nth(1)
        .and_then(|rest| rest.split("\n }").next())
        .unwrap_or_default();
    let order: Vec<&str> = cli_text
        .lines()
        .filter_map(|l| l.trim().strip_prefix('"'))
        .filter_map(|l| l.split_once("\":").map(|(k, _)| k))
        .collect();
    assert_eq!(order.first(), Some(&"base_id"), "{cli_text}");
    assert_eq!(
        order.last(),
        Some(&"log_stacktrace_single_entry"),
        "{cli_text}"
    );
    assert_eq!(info["command_line_options"]["log_level"], "info");
    assert_eq!(info["command_line_options"]["socket_mode"], 0);
    assert!(info["command_line_options"]["base_id"].is_string());
    let node: Vec<&str> = info["node"]
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for key in [
        "id",
        "cluster",
        "user_agent_name",
        "user_agent_build_version",
        "extensions",
        "client_features",
        "listening_addresses",
        "dynamic_parameters",
    ] {
        assert!(node.contains(&key), "node lacks {key}: {node:?}");
    }
    assert_eq!(info["hot_restart_initializing"], false);
    Ok(())
}

#[tokio::test]
async fn post_only_endpoints_refuse_get_with_405() -> anyhow::Result<()> {
    let (_u, proxy) = proxy().await?;
    for path in ["/logging", "/cpuprofiler", "/runtime_modify?a=b"] {
        let resp = proxy.admin_request("GET", path).await?;
        assert_eq!(resp.status, 405, "{path}");
        assert_eq!(
            resp.body_text(),
            "Method GET not allowed, POST required.",
            "{path}"
        );
    }
    Ok(())
}

/// The profiling endpoints a build may lack answer as Envoy 1.40's pip build does for
/// what it lacks: `/heapprofiler` 501 whatever the query, `/contention` 200 (tracing
/// off).
#[tokio::test]
async fn profiler_endpoints_answer_as_a_build_without_them() -> anyhow::Result<()> {
    let (_u, proxy) = proxy().await?;
    for path in ["/heapprofiler", "/heapprofiler?enable=y"] {
        let resp = proxy.admin_request("POST", path).await?;
        assert_eq!(resp.status, 501, "{path}");
        assert_eq!(
            resp.body_text(),
            "The current build does not support heap profiler"
        );
    }
    let resp = proxy.admin_request("GET", "/contention").await?;
    assert_eq!(resp.status, 200);
    assert!(resp.body_text().contains("ontention tracing is not"));
    Ok(())
}

#[tokio::test]
async fn runtime_and_memory_have_envoys_keys() -> anyhow::Result<()> {
    let (_u, proxy) = proxy().await?;
    let runtime: Value = proxy.admin_request("GET", "/runtime").await?.json()?;
    assert_eq!(runtime, serde_json::json!({"entries": {}, "layers": []}));
    let memory: Value = proxy.admin_request("GET", "/memory").await?.json()?;
    let mut keys: Vec<&str> = memory
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "allocated",
            "heap_size",
            "pageheap_free",
            "pageheap_unmapped",
            "total_physical_bytes",
            "total_thread_cache"
        ]
    );
    let resident = memory["total_physical_bytes"].as_str().unwrap_or_default();
    assert!(resident.parse::<u64>().is_ok_and(|b| b > 0), "{memory}");
    Ok(())
}

#[tokio::test]
async fn admin_framing_head_http10_and_h2c() -> anyhow::Result<()> {
    let (_u, proxy) = proxy().await?;
    // HEAD: chunked, no length, no body.
    let mut conn = RawHttp1::connect(proxy.admin()).await?;
    conn.send_request("HEAD", "/ready", &[], b"").await?;
    let head = conn.read_response_to("HEAD").await?;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
    assert_eq!(head.header("content-length"), None);
    assert!(head.body.is_empty());
    // HTTP/1.0: 426 in an HTTP/1.1 status line, then close.
    let mut conn = RawHttp1::connect(proxy.admin()).await?;
    conn.send(b"GET /ready HTTP/1.0\r\n\r\n").await?;
    let refused = conn.read_response().await?;
    assert_eq!(
        (refused.status, refused.version.as_str()),
        (426, "HTTP/1.1")
    );
    assert_eq!(refused.body_text(), "Upgrade Required");
    // h2c with prior knowledge.
    let h2 = H2Client::connect(proxy.admin()).await?;
    let ready = h2.get("/ready").await?;
    assert_eq!(ready.status, 200);
    Ok(())
}

/// `/hot_restart_version` answers what `--hot-restart-version` prints (Envoy: `11.104`;
/// Baton: its own protocol's version, which `/server_info` shows too).
#[tokio::test]
async fn hot_restart_version_matches_the_command_line() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("u").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let resp = proxy.admin_request("GET", "/hot_restart_version").await?;
    assert_eq!(resp.status, 200);
    let (status, out, err) = baton_tests::run_to_completion(&["--hot-restart-version"])?;
    assert!(status.success(), "{err}");
    // Envoy 1.40 writes it to stderr.
    let printed = if out.trim().is_empty() { err } else { out };
    assert_eq!(resp.body_text(), printed.trim());
    let info = proxy.admin_request("GET", "/server_info").await?;
    let info: Value = serde_json::from_slice(&info.body)?;
    assert_eq!(info["hot_restart_version"], resp.body_text().as_str());
    Ok(())
}
