//! The stats endpoints of a real proxy after real traffic: `/stats` with `filter`,
//! `usedonly` and `format=json`, `/stats/prometheus` read by the Python
//! `prometheus_client` parser with Envoy's tags, `/reset_counters`, and the offline
//! `baton stats` reader printing the region after the proxy exited.

mod stats_support;

use std::time::Duration;

use baton_tests::config::simple_proxy;
use baton_tests::{
    eventually, get, is_envoy, run_to_completion, EchoUpstream, Proxy, StartOptions, TempDir,
};
use serde_json::Value;
use stats_support::{parse_prometheus, parse_text, stats, value, wait_for};

const N: u64 = 4;

/// A proxy in front of an echo upstream that has served `N` requests.
async fn proxy_after_traffic(opts: StartOptions) -> anyhow::Result<(EchoUpstream, Proxy)> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start_with(&simple_proxy(&[upstream.addr()]), opts).await?;
    let addr = proxy.listener_addr("http").await?;
    for _ in 0..N {
        assert_eq!(get(addr, "/").await?.status, 200);
    }
    wait_for(
        &proxy,
        &[
            // Every counter the tests assert: they are bumped one after another, so one
            // reaching N does not mean its neighbours have.
            ("http.ingress.downstream_rq_2xx", N),
            ("cluster.backend.upstream_rq_200", N),
            ("cluster.backend.upstream_rq_2xx", N),
            ("cluster.backend.upstream_rq_total", N),
        ],
    )
    .await?;
    Ok((upstream, proxy))
}

#[tokio::test]
async fn filter_keeps_only_matching_names() -> anyhow::Result<()> {
    let (_u, proxy) = proxy_after_traffic(StartOptions::default()).await?;
    let filtered = stats(&proxy, r"filter=^cluster\.backend\.upstream_rq_").await?;
    assert!(!filtered.is_empty());
    assert!(
        filtered
            .keys()
            .all(|k| k.starts_with("cluster.backend.upstream_rq_")),
        "{filtered:?}"
    );
    assert_eq!(value(&filtered, "cluster.backend.upstream_rq_total")?, N);
    assert_eq!(value(&filtered, "cluster.backend.upstream_rq_2xx")?, N);
    Ok(())
}

#[tokio::test]
async fn usedonly_hides_stats_never_written() -> anyhow::Result<()> {
    let (_u, proxy) = proxy_after_traffic(StartOptions::default()).await?;
    let all = stats(&proxy, "").await?;
    let used = stats(&proxy, "usedonly").await?;
    // Never incremented: present in the full listing, absent with usedonly.
    for name in [
        "http.ingress.downstream_rq_5xx",
        "cluster.backend.upstream_cx_connect_fail",
    ] {
        assert_eq!(value(&all, name)?, 0, "{name}");
        assert!(!used.contains_key(name), "{name} shown with usedonly");
    }
    for name in [
        "http.ingress.downstream_rq_2xx",
        "cluster.backend.upstream_rq_total",
    ] {
        assert_eq!(value(&used, name)?, N, "{name}");
    }
    assert!(used.len() < all.len());
    Ok(())
}

#[tokio::test]
async fn json_format_has_envoys_shape() -> anyhow::Result<()> {
    let (_u, proxy) = proxy_after_traffic(StartOptions::default()).await?;
    let resp = proxy
        .admin_request("GET", "/stats?format=json&filter=ingress")
        .await?;
    assert_eq!(resp.status, 200);
    let json: Value = resp.json()?;
    let entries = json["stats"].as_array().cloned().unwrap_or_default();
    assert!(!entries.is_empty(), "{json}");
    let find = |name: &str| {
        entries
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].clone())
    };
    assert_eq!(
        find("http.ingress.downstream_rq_2xx"),
        Some(Value::from(N)),
        "{json}"
    );
    // Histograms come last, as one {"histograms": {supported_quantiles, computed_quantiles}}.
    let histograms = entries
        .iter()
        .find_map(|e| e.get("histograms"))
        .cloned()
        .unwrap_or(Value::Null);
    assert!(histograms["supported_quantiles"].is_array(), "{histograms}");
    let computed = histograms["computed_quantiles"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        computed
            .iter()
            .any(|h| h["name"] == "http.ingress.downstream_rq_time"),
        "{histograms}"
    );
    Ok(())
}

#[tokio::test]
async fn prometheus_output_parses_with_envoys_tags() -> anyhow::Result<()> {
    let (_u, proxy) = proxy_after_traffic(StartOptions::default()).await?;
    let listener = stats_support::LISTENER.replacen("listener.", "", 1);
    let expected = [
        format!("counter envoy_cluster_upstream_rq_total {{envoy_cluster_name=backend}} {N}"),
        format!(
            "counter envoy_cluster_upstream_rq_total {{envoy_cluster_name=backend,envoy_response_code=200}} {N}"
        ),
        format!(
            "counter envoy_cluster_upstream_rq_xx_total {{envoy_cluster_name=backend,envoy_response_code_class=2}} {N}"
        ),
        format!(
            "counter envoy_http_downstream_rq_xx_total {{envoy_http_conn_manager_prefix=ingress,envoy_response_code_class=2}} {N}"
        ),
        format!(
            "counter envoy_listener_downstream_cx_total {{envoy_listener_address={listener}}} {N}"
        ),
        "gauge envoy_cluster_membership_healthy {envoy_cluster_name=backend} 1".to_string(),
        "gauge envoy_cluster_manager_active_clusters {} 1".to_string(),
        format!(
            "histogram envoy_http_downstream_rq_time_count {{envoy_http_conn_manager_prefix=ingress}} {N}"
        ),
        format!(
            "histogram envoy_cluster_upstream_rq_time_bucket {{envoy_cluster_name=backend,le=+Inf}} {N}"
        ),
    ];
    // Envoy publishes histograms at its stats flush (every 5 s); Baton's are live.
    eventually(Duration::from_secs(15), || async {
        let resp = proxy.admin_request("GET", "/stats/prometheus").await?;
        anyhow::ensure!(resp.status == 200, "status {}", resp.status);
        let samples = parse_prometheus(&resp.body_text())?;
        let missing: Vec<&String> = expected.iter().filter(|e| !samples.contains(e)).collect();
        anyhow::ensure!(
            missing.is_empty(),
            "missing {missing:?} in parsed samples:\n{}",
            samples.join("\n")
        );
        Ok(Some(()))
    })
    .await?;
    Ok(())
}

/// `stats_config.stats_tags` as Envoy Gateway sets them, plus a fixed value and the
/// command line's `--stats-tag`: the raw `/stats/prometheus` lines, label order included
/// (unprefixed extractors, then those of the name's first token), as Envoy 1.40 prints
/// them; `/stats` keeps the full names.
#[tokio::test]
async fn prometheus_custom_tags_as_envoy() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let mut config = simple_proxy(&[upstream.addr()]);
    config["stats_config"] = serde_json::json!({
        "use_all_default_tags": true,
        "stats_tags": [
            { "tag_name": "from_zone", "regex": r"\.zone(\.(([^\.]+)\.))" },
            { "tag_name": "socket_match_name", "regex": r"^cluster(\..+\.(.+))\.total_match_count$" },
            { "tag_name": "priority", "regex": r"circuit_breakers\.((.+?)\.).+" },
            { "tag_name": "deployment", "fixed_value": "blue" },
        ],
    });
    let opts = StartOptions {
        extra_args: vec!["--stats-tag".into(), "cli:val".into()],
        ..StartOptions::default()
    };
    let proxy = Proxy::start_with(&config, opts).await?;
    let addr = proxy.listener_addr("http").await?;
    for _ in 0..N {
        assert_eq!(get(addr, "/").await?.status, 200);
    }
    wait_for(&proxy, &[("cluster.backend.upstream_rq_200", N)]).await?;
    let expected = [
        format!(
            r#"envoy_cluster_upstream_rq{{envoy_response_code="200",cli="val",deployment="blue",envoy_cluster_name="backend"}} {N}"#
        ),
        format!(
            r#"envoy_cluster_upstream_rq_total{{cli="val",deployment="blue",envoy_cluster_name="backend"}} {N}"#
        ),
    ];
    let resp = proxy.admin_request("GET", "/stats/prometheus").await?;
    assert_eq!(resp.status, 200);
    let body = resp.body_text();
    let lines: Vec<&str> = body.lines().collect();
    for line in &expected {
        assert!(lines.contains(&line.as_str()), "missing {line} in:\n{body}");
    }
    // (Envoy's `priority` tag is checked against its output in shared-stats'
    // envoy_custom_tags: Baton has no circuit-breaker gauges yet.)
    let text = stats(&proxy, "filter=upstream_rq_total").await?;
    assert_eq!(value(&text, "cluster.backend.upstream_rq_total")?, N);
    Ok(())
}

#[tokio::test]
async fn reset_counters_zeroes_counters_but_not_gauges() -> anyhow::Result<()> {
    let (_u, proxy) = proxy_after_traffic(StartOptions::default()).await?;
    let resp = proxy.admin_request("POST", "/reset_counters").await?;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let after = stats(&proxy, "").await?;
    assert_eq!(value(&after, "http.ingress.downstream_rq_2xx")?, 0);
    assert_eq!(value(&after, "cluster.backend.upstream_rq_total")?, 0);
    assert_eq!(value(&after, "cluster.backend.membership_total")?, 1);
    // Counting goes on from zero.
    let addr = proxy.listener_addr("http").await?;
    assert_eq!(get(addr, "/").await?.status, 200);
    wait_for(
        &proxy,
        &[
            ("http.ingress.downstream_rq_2xx", 1),
            ("cluster.backend.upstream_rq_200", 1),
        ],
    )
    .await?;
    Ok(())
}

/// `--base-id` the process guard gave the proxy (read from its command line).
fn base_id_of(proxy: &Proxy) -> anyhow::Result<String> {
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", proxy.pid()))?;
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    args.iter()
        .position(|a| a == "--base-id")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no --base-id in {args:?}"))
}

#[tokio::test]
async fn offline_reader_prints_the_region_after_the_proxy_exited() -> anyhow::Result<()> {
    baton_tests::skip_for_envoy!("`baton stats` is Baton's offline reader");
    let runtime = TempDir::new()?;
    // A directory baton creates itself (the region wants a 0700 directory).
    let dir = runtime.join("run");
    let opts = StartOptions {
        extra_args: vec!["--runtime-dir".into(), dir.display().to_string()],
        ..StartOptions::default()
    };
    let (_u, mut proxy) = proxy_after_traffic(opts).await?;
    let base_id = base_id_of(&proxy)?;
    proxy.sigterm()?;
    let status = proxy.wait_exit(Duration::from_secs(15)).await?;
    assert!(status.success(), "{status}");

    let dir = dir.display().to_string();
    let (status, out, err) = run_to_completion(&[
        "stats",
        "--base-id",
        &base_id,
        "--runtime-dir",
        &dir,
        "--filter",
        r"^(http\.ingress|cluster\.backend)\.",
    ])?;
    assert!(status.success(), "baton stats failed: {err}");
    let printed = parse_text(&out);
    assert_eq!(
        value(&printed, "http.ingress.downstream_rq_2xx")?,
        N,
        "{out}"
    );
    assert_eq!(
        value(&printed, "cluster.backend.upstream_rq_total")?,
        N,
        "{out}"
    );
    // Gauges of a generation that is gone show nothing live.
    assert_eq!(
        value(&printed, "http.ingress.downstream_cx_active")?,
        0,
        "{out}"
    );
    assert!(
        printed
            .keys()
            .all(|k| k.starts_with("http.ingress.") || k.starts_with("cluster.backend.")),
        "{out}"
    );
    assert!(!is_envoy());
    Ok(())
}
