//! `/stats/prometheus`: Envoy's text exposition. Stats are tag-extracted, grouped into
//! families by extracted name, and written counters first, then gauges, then histograms,
//! each section in extracted-name order with one `# TYPE` line per family. Text readouts
//! are left out unless asked for (`text_readouts`): then they come after the gauges, as
//! gauges of value 0 with the text in a `text_value` label, as Envoy.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::tags::TaggedName;
use super::{format_f64, RenderOptions};
use crate::histogram::{HistogramSnapshot, DEFAULT_BUCKETS};
use crate::snapshot::{StatKind, StatsSnapshot};

/// `envoy_` + the name with every character outside `[A-Za-z0-9_]` replaced by `_`.
fn metric_name(extracted: &str) -> String {
    let mut name = String::with_capacity(extracted.len() + 6);
    name.push_str("envoy_");
    name.extend(extracted.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    name
}

/// Appends `value` with Prometheus label escaping (backslash, double quote, newline).
fn push_label_value(out: &mut String, value: &str) {
    if !value.contains(['\\', '"', '\n']) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            other => out.push(other),
        }
    }
}

/// Appends `{k="v",...}`: the tags in extraction order, with an optional extra label
/// last.
fn push_labels(out: &mut String, tagged: &TaggedName<'_>, extra: Option<(&str, &str)>) {
    out.push('{');
    let pairs = tagged
        .tags
        .iter()
        .map(|tag| (tag.label, tag.value.as_str()))
        .chain(extra);
    for (index, (label, value)) in pairs.enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(label);
        out.push_str("=\"");
        push_label_value(out, value);
        out.push('"');
    }
    out.push('}');
}

/// Appends one sample line: `name{labels} value`.
fn push_sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    tagged: &TaggedName<'_>,
    extra: Option<(&str, &str)>,
    value: u64,
) {
    out.push_str(name);
    out.push_str(suffix);
    push_labels(out, tagged, extra);
    let _ = writeln!(out, " {value}");
}

type Families<'a, T> = BTreeMap<String, Vec<(TaggedName<'a>, T)>>;

/// Renders `snapshot` as Envoy's Prometheus text exposition.
pub fn render_prometheus(snapshot: &StatsSnapshot, options: &RenderOptions) -> String {
    // extracted name -> series (tagged name, value), in stat name order.
    let mut counters: Families<'_, u64> = BTreeMap::new();
    let mut gauges: Families<'_, u64> = BTreeMap::new();
    for stat in snapshot.stats.iter().filter(|s| options.keeps_stat(s)) {
        let tagged = options.tags.extract(&stat.name);
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
                push_sample(&mut out, &name, "", tagged, None, *value);
            }
        }
    }
    if options.text_readouts {
        let mut readouts: Families<'_, &str> = BTreeMap::new();
        for readout in snapshot
            .text_readouts
            .iter()
            .filter(|r| options.keeps_text_readout(r))
        {
            let tagged = options.tags.extract(&readout.name);
            readouts
                .entry(tagged.extracted.clone())
                .or_default()
                .push((tagged, readout.value.as_str()));
        }
        for (extracted, series) in &readouts {
            let name = metric_name(extracted);
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (tagged, text) in series {
                push_sample(&mut out, &name, "", tagged, Some(("text_value", text)), 0);
            }
        }
    }
    let mut histograms: Families<'_, &HistogramSnapshot> = BTreeMap::new();
    for histogram in snapshot
        .histograms
        .iter()
        .filter(|h| options.keeps_histogram(h))
    {
        let tagged = options.tags.extract(&histogram.name);
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
                push_sample(
                    &mut out,
                    &name,
                    "_bucket",
                    tagged,
                    Some(("le", &le)),
                    cumulative,
                );
            }
            let count = histogram.count();
            push_sample(
                &mut out,
                &name,
                "_bucket",
                tagged,
                Some(("le", "+Inf")),
                count,
            );
            push_sample(&mut out, &name, "_sum", tagged, None, histogram.sum);
            push_sample(&mut out, &name, "_count", tagged, None, count);
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
        let mut escaped = String::new();
        push_label_value(&mut escaped, "a\"b\\c\nd");
        assert_eq!(escaped, "a\\\"b\\\\c\\nd");
    }
}
