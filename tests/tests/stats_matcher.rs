//! `stats_config.stats_matcher`: stats it does not match are in none of `/stats`,
//! `/stats?format=json` and `/stats/prometheus`, matched by full name the same for
//! counters, gauges and histograms (measured on Envoy 1.40: `reject_all` leaves nothing
//! at all, not even `server.*`).

mod stats_support;

use baton_tests::config::simple_proxy;
use baton_tests::{get, EchoUpstream, Proxy};
use serde_json::{json, Value};
use stats_support::{value, wait_for};

const N: u64 = 3;

/// A proxy with `stats_matcher` in front of an echo upstream that has served `N`
/// requests.
async fn proxy_with_matcher(matcher: Value) -> anyhow::Result<(EchoUpstream, Proxy)> {
    let upstream = EchoUpstream::start("a").await?;
    let mut config = simple_proxy(&[upstream.addr()]);
    config["stats_config"] = json!({ "stats_matcher": matcher });
    let proxy = Proxy::start(&config).await?;
    let addr = proxy.listener_addr("http").await?;
    for _ in 0..N {
        assert_eq!(get(addr, "/").await?.status, 200);
    }
    Ok((upstream, proxy))
}

/// The three outputs' bodies: text, JSON, Prometheus.
async fn outputs(proxy: &Proxy) -> anyhow::Result<(String, Value, String)> {
    let text = proxy.admin_request("GET", "/stats").await?;
    let json = proxy.admin_request("GET", "/stats?format=json").await?;
    let prometheus = proxy.admin_request("GET", "/stats/prometheus").await?;
    for resp in [&text, &json, &prometheus] {
        anyhow::ensure!(resp.status == 200, "{}", resp.body_text());
    }
    Ok((
        text.body_text(),
        serde_json::from_str(&json.body_text())?,
        prometheus.body_text(),
    ))
}

/// Names of the JSON output's stats and histograms.
fn json_names(json: &Value) -> Vec<String> {
    let mut names = Vec::new();
    for entry in json["stats"].as_array().into_iter().flatten() {
        if let Some(name) = entry["name"].as_str() {
            names.push(name.to_string());
        }
        let histograms = entry["histograms"]["computed_quantiles"].as_array();
        for h in histograms.into_iter().flatten() {
            if let Some(name) = h["name"].as_str() {
                names.push(name.to_string());
            }
        }
    }
    names
}

#[tokio::test]
async fn reject_all_exports_nothing() -> anyhow::Result<()> {
    let (_u, proxy) = proxy_with_matcher(json!({ "reject_all": true })).await?;
    let (text, json, prometheus) = outputs(&proxy).await?;
    assert_eq!(text, "");
    assert_eq!(json, json!({ "stats": [] }));
    assert_eq!(prometheus, "");
    Ok(())
}

#[tokio::test]
async fn inclusion_list_exports_only_matching_stats() -> anyhow::Result<()> {
    let (_u, proxy) = proxy_with_matcher(json!({ "inclusion_list": { "patterns": [
        { "prefix": "server." },
        { "exact": "cluster.backend.upstream_rq_total" },
        { "suffix": "downstream_rq_2xx" },
        { "safe_regex": { "regex": r"cluster\.backend\.upstream_rq_t.me" } },
    ] } }))
    .await?;
    let all = wait_for(
        &proxy,
        &[
            ("cluster.backend.upstream_rq_total", N),
            ("http.ingress.downstream_rq_2xx", N),
        ],
    )
    .await?;
    assert!(value(&all, "server.live").is_ok());
    let kept = |name: &str| {
        name.starts_with("server.")
            || name == "cluster.backend.upstream_rq_total"
            || name.ends_with("downstream_rq_2xx")
            || name == "cluster.backend.upstream_rq_time"
    };
    let (text, json, prometheus) = outputs(&proxy).await?;
    for line in text.lines() {
        let name = line.split(": ").next().unwrap_or(line);
        assert!(kept(name), "{name} exported:\n{text}");
    }
    // The regex matches whole names, and histograms are matched like the rest.
    assert!(
        text.lines()
            .any(|l| l.starts_with("cluster.backend.upstream_rq_time: ")),
        "{text}"
    );
    let names = json_names(&json);
    assert!(names.iter().all(|n| kept(n)), "{names:?}");
    assert!(names
        .iter()
        .any(|n| n == "cluster.backend.upstream_rq_total"));
    assert!(names
        .iter()
        .any(|n| n == "cluster.backend.upstream_rq_time"));
    assert!(
        prometheus.contains("envoy_cluster_upstream_rq_total{envoy_cluster_name=\"backend\"}"),
        "{prometheus}"
    );
    assert!(
        prometheus.contains("envoy_cluster_upstream_rq_time_bucket{"),
        "{prometheus}"
    );
    assert!(
        !prometheus.contains("envoy_cluster_upstream_cx_total"),
        "{prometheus}"
    );
    assert!(
        !prometheus.contains("envoy_cluster_upstream_rq{"),
        "{prometheus}"
    );
    Ok(())
}

#[tokio::test]
async fn exclusion_list_drops_matching_stats() -> anyhow::Result<()> {
    let (_u, proxy) = proxy_with_matcher(json!({ "exclusion_list": { "patterns": [
        { "contains": "upstream_rq" },
        { "prefix": "SERVER.", "ignore_case": true },
    ] } }))
    .await?;
    let all = wait_for(&proxy, &[("http.ingress.downstream_rq_2xx", N)]).await?;
    assert!(value(&all, "cluster.backend.upstream_cx_total").is_ok());
    let (text, json, prometheus) = outputs(&proxy).await?;
    let dropped = |name: &str| name.contains("upstream_rq") || name.starts_with("server.");
    for line in text.lines() {
        let name = line.split(": ").next().unwrap_or(line);
        assert!(!dropped(name), "{name} exported:\n{text}");
    }
    let names = json_names(&json);
    assert!(!names.iter().any(|n| dropped(n)), "{names:?}");
    assert!(!prometheus.contains("upstream_rq"), "{prometheus}");
    assert!(!prometheus.contains("envoy_server_"), "{prometheus}");
    assert!(
        prometheus.contains("envoy_cluster_upstream_cx_total"),
        "{prometheus}"
    );
    Ok(())
}
