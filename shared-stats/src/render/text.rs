//! `/stats` plain text: text readouts first (`name: "text"`), then `name: value` for
//! counters and gauges merged in name order, then one quantile summary line per
//! histogram.

use std::fmt::Write;

use super::{format_f64, RenderOptions};
use crate::histogram::{HistogramSnapshot, SUPPORTED_QUANTILES};
use crate::snapshot::StatsSnapshot;

/// Renders `snapshot` as Envoy's `/stats` text.
pub fn render_text(snapshot: &StatsSnapshot, options: &RenderOptions) -> String {
    let mut out = String::new();
    for readout in snapshot
        .text_readouts
        .iter()
        .filter(|r| options.keeps_text_readout(r))
    {
        let _ = writeln!(
            out,
            "{}: \"{}\"",
            readout.name,
            html_escaped(&readout.value)
        );
    }
    for stat in snapshot.stats.iter().filter(|s| options.keeps_stat(s)) {
        let _ = writeln!(out, "{}: {}", stat.name, stat.value);
    }
    for histogram in snapshot
        .histograms
        .iter()
        .filter(|h| options.keeps_histogram(h))
    {
        let _ = writeln!(out, "{}: {}", histogram.name, histogram_summary(histogram));
    }
    out
}

/// `P0(interval,cumulative) P25(...) ...`, or `No recorded values`; an interval with no
/// samples (or before the first flush) prints `nan`, as in Envoy.
fn histogram_summary(histogram: &HistogramSnapshot) -> String {
    if histogram.count() == 0 {
        return "No recorded values".to_string();
    }
    SUPPORTED_QUANTILES
        .iter()
        .map(|&q| {
            let interval = histogram.interval_quantile(q).unwrap_or(f64::NAN);
            let cumulative = histogram.quantile(q).unwrap_or(f64::NAN);
            format!(
                "P{}({},{})",
                format_f64(q),
                format_f64(interval),
                format_f64(cumulative)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text with HTML's special characters escaped, as Envoy prints a text readout.
fn html_escaped(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['&', '<', '>', '"', '\'']) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    std::borrow::Cow::Owned(out)
}
