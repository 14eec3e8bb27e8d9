//! Output compared line by line with real Envoy 1.40: the fixtures are its `/stats` and
//! `/stats/prometheus` for one HTTP listener, one TCP proxy listener and one cluster. The
//! same names and values are loaded into a region and rendered. (`?format=json` too.)

mod support;

use std::collections::HashMap;

use baton_shared_stats::render::tags::extract_tags;
use baton_shared_stats::{RenderOptions, StatsStore};
use support::TempDir;

const ENVOY_STATS: &str = include_str!("fixtures/envoy-1.40-stats.txt");
const ENVOY_PROMETHEUS: &str = include_str!("fixtures/envoy-1.40-prometheus.txt");
const ENVOY_JSON: &str = include_str!("fixtures/envoy-1.40-stats.json");

fn is_histogram_line(line: &str) -> bool {
    line.contains(": P0(") || line.ends_with(": No recorded values")
}

/// Envoy's plain stats as (name, value).
fn envoy_plain_stats() -> Vec<(&'static str, u64)> {
    ENVOY_STATS
        .lines()
        .filter(|line| !is_histogram_line(line))
        .map(|line| {
            let (name, value) = line.rsplit_once(": ").expect("name: value");
            (name, value.parse().expect("integer value"))
        })
        .collect()
}

/// Envoy's Prometheus counter and gauge section (everything before the histograms).
fn envoy_plain_prometheus() -> Vec<&'static str> {
    ENVOY_PROMETHEUS
        .lines()
        .take_while(|line| !(line.starts_with("# TYPE") && line.ends_with(" histogram")))
        .collect()
}

fn load_envoy_values(store: &StatsStore) -> Vec<String> {
    let family_types: HashMap<&str, &str> = ENVOY_PROMETHEUS
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .collect();
    let mut unknown = Vec::new();
    for (name, value) in envoy_plain_stats() {
        let family: String = format!("envoy_{}", extract_tags(name).extracted)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        match family_types.get(family.as_str()) {
            Some(&"gauge") => store.gauge(name).set(value),
            Some(&"counter") => store.counter(name).add(value),
            _ => unknown.push(format!("{name} -> {family}")),
        }
    }
    unknown
}

fn without_overflow_stat(rendered: &str) -> Vec<String> {
    let mut lines: Vec<String> = rendered.lines().map(str::to_string).collect();
    // Baton's own overflow counter has no Envoy counterpart; drop its line(s).
    lines.retain(|l| !l.contains("stats_overflow"));
    lines
}

#[test]
fn text_output_matches_envoy_for_counters_and_gauges() {
    let dir = TempDir::new("envoy-text");
    let store = StatsStore::open_or_create(&dir.config(), 0).unwrap();
    let unknown = load_envoy_values(&store);
    assert!(
        unknown.is_empty(),
        "tag extraction differs from Envoy for: {unknown:#?}"
    );
    let ours = without_overflow_stat(
        &store
            .snapshot()
            .unwrap()
            .render_text(&RenderOptions::default()),
    );
    let envoy: Vec<&str> = ENVOY_STATS
        .lines()
        .filter(|l| !is_histogram_line(l))
        .collect();
    assert_eq!(ours, envoy);
}

#[test]
fn prometheus_output_matches_envoy_for_counters_and_gauges() {
    let dir = TempDir::new("envoy-prom");
    let store = StatsStore::open_or_create(&dir.config(), 0).unwrap();
    load_envoy_values(&store);
    let rendered = store
        .snapshot()
        .unwrap()
        .render_prometheus(&RenderOptions::default());
    let ours = without_overflow_stat(&rendered);
    let envoy = envoy_plain_prometheus();
    support::assert_same_prometheus_lines(&ours, &envoy);
}

#[test]
fn prometheus_histogram_series_match_envoy_shape() {
    let dir = TempDir::new("envoy-hist");
    let store = StatsStore::open_or_create(&dir.config(), 0).unwrap();
    let histogram = store.histogram("cluster.my.backend.external.upstream_rq_time");
    histogram.record(0);
    histogram.record(0);
    let rendered = store
        .snapshot()
        .unwrap()
        .render_prometheus(&RenderOptions::from_query("filter=upstream_rq_time").unwrap());
    let envoy: Vec<&str> = ENVOY_PROMETHEUS
        .lines()
        .skip_while(|l| *l != "# TYPE envoy_cluster_backend_external_upstream_rq_time histogram")
        .take(1 + 20 + 2)
        .collect();
    assert_eq!(rendered.lines().collect::<Vec<_>>(), envoy);
}

#[test]
fn json_output_matches_envoy_for_counters_and_gauges() {
    let dir = TempDir::new("envoy-json");
    let store = StatsStore::open_or_create(&dir.config(), 0).unwrap();
    load_envoy_values(&store);
    let ours: serde_json::Value = serde_json::from_str(
        &store
            .snapshot()
            .unwrap()
            .render_json(&RenderOptions::default()),
    )
    .unwrap();
    let envoy: serde_json::Value = serde_json::from_str(ENVOY_JSON).unwrap();
    let plain = |doc: &serde_json::Value| -> Vec<(String, Option<u64>)> {
        doc["stats"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|item| item.get("name").is_some())
            .filter(|item| item["name"] != "server.stats_overflow")
            .map(|item| {
                let name = item["name"].as_str().unwrap().to_string();
                // Admin counters moved between the scrapes that made the fixtures.
                let value = (!name.contains("admin")).then(|| item["value"].as_u64().unwrap());
                (name, value)
            })
            .collect()
    };
    assert_eq!(plain(&ours), plain(&envoy));
    // Same object shape, byte for byte, for a plain stat.
    let rendered = store
        .snapshot()
        .unwrap()
        .render_json(&RenderOptions::default());
    assert!(rendered.starts_with(
        "{\"stats\":[{\"name\":\"cluster.my.backend.assignment_stale\",\"value\":0},"
    ));
    assert!(ENVOY_JSON.starts_with(
        "{\"stats\":[{\"name\":\"cluster.my.backend.assignment_stale\",\"value\":0},"
    ));
}

#[test]
fn handles_and_store_are_cheap_shareable_values() {
    fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
    assert_shareable::<StatsStore>();
    assert_shareable::<baton_shared_stats::Counter>();
    assert_shareable::<baton_shared_stats::Gauge>();
    assert_shareable::<baton_shared_stats::Histogram>();
    let dir = TempDir::new("threads");
    let store = StatsStore::open_or_create(&dir.config(), 0).unwrap();
    let counter = store.counter("cluster.a.upstream_rq_total");
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let counter = counter.clone();
            std::thread::spawn(move || (0..10_000).for_each(|_| counter.inc()))
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    assert_eq!(
        store
            .snapshot()
            .unwrap()
            .value("cluster.a.upstream_rq_total"),
        Some(40_000)
    );
}
