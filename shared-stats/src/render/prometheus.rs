//! `/stats/prometheus`: Envoy's text exposition. Stats are tag-extracted, grouped into
//! families by extracted name, and written counters first, then gauges, then histograms,
//! each section in extracted-name order with one `# TYPE` line per family.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::tags::{extract_tags, TaggedName};
use super::{format_f64, RenderOptions};
use crate::histogram::{HistogramSnapshot, DEFAULT_BUCKETS};
use crate::snapshot::{StatKind, StatsSnapshot};

/// `envoy_` + the name with every character outside `[A-Za-z0-9_]` replaced by `_`.
fn metric_name(extracted: &str) -> String {
    let mut out = String::with_capacity(extracted.len() + 6);
    out.push_str("envoy_");
    out.extend(extracted.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    out
}

fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `k="v",...` for the tags (no braces), with an optional extra label last.
fn labels(tagged: &TaggedName, extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = tagged
        .tags
        .iter()
        .map(|(tag, value)| {
            format!(
                "{}=\"{}\"",
                tag.replace('.', "_"),
                escape_label_value(value)
            )
        })
        .collect();
    if let Some((key, value)) = extra {
        parts.push(format!("{key}=\"{value}\""));
    }
    parts.join(",")
}

/// Renders `snapshot` as Envoy's Prometheus text exposition.
pub fn render_prometheus(snapshot: &StatsSnapshot, options: &RenderOptions) -> String {
    // extracted name -> series (tagged name, value), in stat name order.
    let mut counters: BTreeMap<String, Vec<(TaggedName, u64)>> = BTreeMap::new();
    let mut gauges: BTreeMap<String, Vec<(TaggedName, u64)>> = BTreeMap::new();
    for stat in snapshot.stats.iter().filter(|s| options.keeps_stat(s)) {
        let tagged = extract_tags(&stat.name);
        let section = match stat.kind {
            StatKind::Counter => &mut counters,
            StatKind::Gauge => &mut gauges,
        };
        section
            .entry(tagged.extracted.clone())
            .or_default()
            .push((tagged, stat.value));
    }
    let mut out = String::new();
    for (section, kind) in [(&counters, "counter"), (&gauges, "gauge")] {
        for (extracted, series) in section {
            let name = metric_name(extracted);
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (tagged, value) in series {
                let _ = writeln!(out, "{name}{{{}}} {value}", labels(tagged, None));
            }
        }
    }
    let mut histograms: BTreeMap<String, Vec<(TaggedName, &HistogramSnapshot)>> = BTreeMap::new();
    for histogram in snapshot
        .histograms
        .iter()
        .filter(|h| options.keeps_histogram(h))
    {
        let tagged = extract_tags(&histogram.name);
        histograms
            .entry(tagged.extracted.clone())
            .or_default()
            .push((tagged, histogram));
    }
    for (extracted, series) in &histograms {
        let name = metric_name(extracted);
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (tagged, histogram) in series {
            for (bound, cumulative) in DEFAULT_BUCKETS.iter().zip(histogram.cumulative_counts()) {
                let le = format_f64(*bound);
                let _ = writeln!(
                    out,
                    "{name}_bucket{{{}}} {cumulative}",
                    labels(tagged, Some(("le", &le)))
                );
            }
            let count = histogram.count();
            let _ = writeln!(
                out,
                "{name}_bucket{{{}}} {count}",
                labels(tagged, Some(("le", "+Inf")))
            );
            let _ = writeln!(
                out,
                "{name}_sum{{{}}} {}",
                labels(tagged, None),
                histogram.sum
            );
            let _ = writeln!(out, "{name}_count{{{}}} {count}", labels(tagged, None));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_are_sanitized_and_prefixed() {
        assert_eq!(
            metric_name("cluster.upstream_rq"),
            "envoy_cluster_upstream_rq"
        );
        assert_eq!(metric_name("a-b.c:d"), "envoy_a_b_c_d");
        assert_eq!(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
