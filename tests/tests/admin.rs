//! Admin endpoints: /ready, /server_info fields, /listeners (JSON and text), /clusters,
//! /config_dump, /healthcheck/fail and /healthcheck/ok.

use baton_tests::config::simple_proxy;
use baton_tests::{get, EchoUpstream, Proxy, StartOptions};
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
