//! `/stats?format=json`: `{"stats":[{"name":..,"value":..},...,{"histograms":{...}}]}`,
//! text readouts first (their value a JSON string).

use std::fmt::Write;

use super::RenderOptions;
use crate::histogram::SUPPORTED_QUANTILES;
use crate::snapshot::StatsSnapshot;

fn json_number(value: f64) -> String {
    match serde_json::Number::from_f64(value) {
        Some(_) if value.fract() == 0.0 && value.abs() < 9.0e15 => format!("{}", value as i64),
        Some(number) => number.to_string(),
        None => "null".to_string(),
    }
}

fn json_string(value: &str) -> String {
    serde_json::Value::String(value.to_string()).to_string()
}

/// Renders `snapshot` as Envoy's JSON stats document.
pub fn render_json(snapshot: &StatsSnapshot, options: &RenderOptions) -> String {
    let readouts = snapshot
        .text_readouts
        .iter()
        .filter(|r| options.keeps_text_readout(r))
        .map(|r| {
            format!(
                "{{\"name\":{},\"value\":{}}}",
                json_string(&r.name),
                json_string(&r.value)
            )
        });
    let values = snapshot
        .stats
        .iter()
        .filter(|s| options.keeps_stat(s))
        .map(|s| {
            format!(
                "{{\"name\":{},\"value\":{}}}",
                json_string(&s.name),
                s.value
            )
        });
    let mut items: Vec<String> = readouts.chain(values).collect();
    let histograms: Vec<String> = snapshot
        .histograms
        .iter()
        .filter(|h| options.keeps_histogram(h))
        .map(|h| {
            let values: Vec<String> = SUPPORTED_QUANTILES
                .iter()
                .map(|&q| {
                    let cumulative = h.quantile(q).map_or("null".to_string(), json_number);
                    let interval = h
                        .interval_quantile(q)
                        .map_or("null".to_string(), json_number);
                    format!("{{\"cumulative\":{cumulative},\"interval\":{interval}}}")
                })
                .collect();
            format!(
                "{{\"name\":{},\"values\":[{}]}}",
                json_string(&h.name),
                values.join(",")
            )
        })
        .collect();
    if !histograms.is_empty() {
        let supported: Vec<String> = SUPPORTED_QUANTILES
            .iter()
            .map(|&q| json_number(q))
            .collect();
        let mut item = String::new();
        let _ = write!(
            item,
            "{{\"histograms\":{{\"supported_quantiles\":[{}],\"computed_quantiles\":[{}]}}}}",
            supported.join(","),
            histograms.join(",")
        );
        items.push(item);
    }
    format!("{{\"stats\":[{}]}}", items.join(","))
}
