//! `stats_config.stats_tags` compared with real Envoy 1.40. Each fixture is a config
//! (`envoy-1.40-*-tags.json`, run with `--concurrency 1`) and Envoy's `/stats` and
//! `/stats/prometheus` after a few requests: Envoy Gateway's four regexes plus a fixed
//! value, a `tcp.`-prefixed regex and `--stats-tag cli:val`; Istio's tag set with
//! `use_all_default_tags: false`. The same names and values are loaded into a region and
//! rendered with a [`TagProducer`] built from the same config.

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use baton_shared_stats::render::tags::{TagProducer, TagSpecifier, TagValue};
use baton_shared_stats::{RenderOptions, StatsStore};
use support::TempDir;

struct Fixture {
    config: &'static str,
    stats: &'static str,
    prometheus: &'static str,
    universal: &'static [(&'static str, &'static str)],
}

const ENVOY_GATEWAY: Fixture = Fixture {
    config: include_str!("fixtures/envoy-1.40-eg-tags.json"),
    stats: include_str!("fixtures/envoy-1.40-eg-tags-stats.txt"),
    prometheus: include_str!("fixtures/envoy-1.40-eg-tags-prometheus.txt"),
    universal: &[("cli", "val")],
};

const ISTIO: Fixture = Fixture {
    config: include_str!("fixtures/envoy-1.40-istio-tags.json"),
    stats: include_str!("fixtures/envoy-1.40-istio-tags-stats.txt"),
    prometheus: include_str!("fixtures/envoy-1.40-istio-tags-prometheus.txt"),
    universal: &[],
};

/// The producer for the fixture's `stats_config` and command-line tags.
fn producer(fixture: &Fixture) -> TagProducer {
    let config: serde_json::Value = serde_json::from_str(fixture.config).unwrap();
    let stats_config = &config["stats_config"];
    let specifiers: Vec<TagSpecifier> = stats_config["stats_tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tag| TagSpecifier {
            name: tag["tag_name"].as_str().unwrap().to_string(),
            value: match tag["fixed_value"].as_str() {
                Some(fixed) => TagValue::Fixed(fixed.to_string()),
                None => TagValue::Regex(tag["regex"].as_str().unwrap_or("").to_string()),
            },
        })
        .collect();
    let universal: Vec<(String, String)> = fixture
        .universal
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let use_all = stats_config["use_all_default_tags"]
        .as_bool()
        .unwrap_or(true);
    TagProducer::new(use_all, &universal, &specifiers).unwrap()
}

fn sanitized(extracted: &str) -> String {
    let body: String = extracted
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("envoy_{body}")
}

/// Loads Envoy's counters and gauges into `store`, typed by the Prometheus family the
/// producer puts each in; returns the names whose family Envoy does not have.
fn load(fixture: &Fixture, producer: &TagProducer, store: &StatsStore) -> Vec<String> {
    let family_types: HashMap<&str, &str> = fixture
        .prometheus
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .collect();
    let mut unknown = Vec::new();
    for line in fixture.stats.lines() {
        if line.contains(": P0(") || line.ends_with(": No recorded values") {
            continue;
        }
        let (name, value) = line.rsplit_once(": ").unwrap();
        let value: u64 = value.parse().unwrap();
        let family = sanitized(&producer.extract(name).extracted);
        match family_types.get(family.as_str()) {
            Some(&"gauge") => store.gauge(name).set(value),
            Some(&"counter") => store.counter(name).add(value),
            _ => unknown.push(format!("{name} -> {family}")),
        }
    }
    unknown
}

fn compare(fixture: &Fixture, label: &str) {
    let producer = Arc::new(producer(fixture));
    let dir = TempDir::new(label);
    let store = StatsStore::open_or_create(&dir.config(), 0).unwrap();
    let unknown = load(fixture, &producer, &store);
    assert!(
        unknown.is_empty(),
        "names Envoy tags differently: {unknown:#?}"
    );
    let options = RenderOptions {
        tags: producer,
        ..RenderOptions::default()
    };
    let rendered = store.snapshot().unwrap().render_prometheus(&options);
    let ours: Vec<&str> = rendered
        .lines()
        .filter(|l| !l.contains("stats_overflow"))
        .collect();
    let envoy: Vec<&str> = fixture
        .prometheus
        .lines()
        .take_while(|line| !(line.starts_with("# TYPE") && line.ends_with(" histogram")))
        .collect();
    support::assert_same_prometheus_lines(&ours, &envoy);
    // `/stats` keeps the full names whatever the tags.
    let text = store.snapshot().unwrap().render_text(&options);
    assert!(text.contains("cluster.backend.upstream_rq_total: "));
}

#[test]
fn envoy_gateway_tags_render_as_envoy() {
    compare(&ENVOY_GATEWAY, "eg-tags");
}

#[test]
fn istio_tags_without_default_tags_render_as_envoy() {
    compare(&ISTIO, "istio-tags");
}
