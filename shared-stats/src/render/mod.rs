//! Rendering a [`StatsSnapshot`] the way Envoy's admin endpoints do: `/stats` text,
//! `/stats?format=json` and `/stats/prometheus`, with `filter`, `usedonly` and
//! `text_readouts`.

mod json;
mod producer;
mod prometheus;
pub mod tags;
mod text;

pub use json::render_json;
pub use prometheus::render_prometheus;
pub use text::render_text;

use std::sync::Arc;

use regex::Regex;

use self::tags::TagProducer;

use crate::histogram::HistogramSnapshot;
use crate::snapshot::{StatValue, StatsSnapshot};
use crate::text_readout::TextReadoutValue;

/// Query options shared by all formats.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Only stats whose name contains a match of this regex (Envoy's `filter=`).
    pub filter: Option<Regex>,
    /// Only stats that were ever written (Envoy's `usedonly`).
    pub used_only: bool,
    /// How Prometheus names are split into name and labels: Envoy's default tags, or
    /// the configured `stats_config` and `--stats-tag` ones.
    pub tags: Arc<TagProducer>,
    /// Which stats are exported at all (the configured `stats_matcher`); None: all.
    pub exported: Option<ExportFilter>,
    /// Prometheus only: include text readouts as gauges (Envoy's `text_readouts`
    /// parameter; text and JSON always show them).
    pub text_readouts: bool,
}

/// A predicate on full stat names deciding which stats any output shows (Envoy's
/// `stats_matcher`, which the config crate owns).
#[derive(Clone)]
pub struct ExportFilter(Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl ExportFilter {
    /// A filter keeping the stats for which `keeps` is true.
    pub fn new(keeps: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        ExportFilter(Arc::new(keeps))
    }

    /// Whether the stat named `name` is shown.
    pub fn keeps(&self, name: &str) -> bool {
        (self.0)(name)
    }
}

impl std::fmt::Debug for ExportFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExportFilter")
    }
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            filter: None,
            used_only: false,
            tags: Arc::clone(TagProducer::envoy_default()),
            exported: None,
            text_readouts: false,
        }
    }
}

/// A query parameter that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// `filter=` is not a valid regular expression.
    #[error("invalid regex in filter: {0}")]
    BadFilter(#[from] regex::Error),
}

impl RenderOptions {
    /// Parses the admin query string (`filter=<regex>&usedonly`, without the `?`);
    /// unknown parameters such as `format` are left to the caller.
    pub fn from_query(query: &str) -> Result<Self, QueryError> {
        let mut options = RenderOptions::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "usedonly" => options.used_only = true,
                "text_readouts" => options.text_readouts = true,
                "filter" if !value.is_empty() => {
                    options.filter = Some(Regex::new(&percent_decode(value))?);
                }
                _ => {}
            }
        }
        Ok(options)
    }

    fn keeps_name(&self, name: &str) -> bool {
        self.exported.as_ref().is_none_or(|e| e.keeps(name))
            && self.filter.as_ref().is_none_or(|re| re.is_match(name))
    }

    pub(crate) fn keeps_stat(&self, stat: &StatValue) -> bool {
        (!self.used_only || stat.used) && self.keeps_name(&stat.name)
    }

    pub(crate) fn keeps_text_readout(&self, readout: &TextReadoutValue) -> bool {
        (!self.used_only || readout.used) && self.keeps_name(&readout.name)
    }

    pub(crate) fn keeps_histogram(&self, histogram: &HistogramSnapshot) -> bool {
        (!self.used_only || histogram.count() > 0) && self.keeps_name(&histogram.name)
    }
}

/// Decodes `%XX` escapes and `+` (as a space) in a query value.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Formats a quantile or sum the way Envoy prints doubles: shortest round-trip form,
/// integers without a decimal point.
pub(crate) fn format_f64(value: f64) -> String {
    if value.is_nan() {
        "nan".to_string()
    } else {
        format!("{value}")
    }
}

impl StatsSnapshot {
    /// Envoy's `/stats` text output.
    pub fn render_text(&self, options: &RenderOptions) -> String {
        render_text(self, options)
    }

    /// Envoy's `/stats?format=json` output.
    pub fn render_json(&self, options: &RenderOptions) -> String {
        render_json(self, options)
    }

    /// Envoy's `/stats/prometheus` output.
    pub fn render_prometheus(&self, options: &RenderOptions) -> String {
        render_prometheus(self, options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing_reads_filter_and_usedonly() {
        let options =
            RenderOptions::from_query("usedonly&filter=%5Ecluster%5C.&format=json").unwrap();
        assert!(options.used_only);
        assert!(!options.text_readouts);
        assert!(
            RenderOptions::from_query("text_readouts")
                .unwrap()
                .text_readouts
        );
        assert_eq!(options.filter.unwrap().as_str(), "^cluster\\.");
        assert!(RenderOptions::from_query("filter=(").is_err());
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("a+b%41"), "a bA");
    }
}
