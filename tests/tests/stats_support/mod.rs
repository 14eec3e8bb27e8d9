//! Helpers for the stats tests: reading `/stats` (text and JSON) into name -> value maps,
//! waiting (bounded) for counters to settle, and parsing `/stats/prometheus` with the
//! Python `prometheus_client` parser from the venv that `shared-stats/scripts/
//! prometheus-venv.sh` creates.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use baton_tests::{eventually, Proxy};

/// How long counters may take to settle after the responses were read (a response's
/// completion is counted as its last byte leaves; the client may see it first).
pub const SETTLE: Duration = Duration::from_secs(5);

/// Parses Envoy's `/stats` text: `name: value` lines for counters and gauges; histogram
/// summary lines (`name: P0(...)...` or `No recorded values`) are skipped.
pub fn parse_text(body: &str) -> BTreeMap<String, u64> {
    body.lines()
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(": ")?;
            Some((name.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// `GET /stats` (with `query`, e.g. `filter=^cluster\.`) as a name -> value map.
pub async fn stats(proxy: &Proxy, query: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let path = if query.is_empty() {
        "/stats".to_string()
    } else {
        format!("/stats?{query}")
    };
    let resp = proxy.admin_request("GET", &path).await?;
    if resp.status != 200 {
        bail!("GET {path}: {} {}", resp.status, resp.body_text());
    }
    Ok(parse_text(&resp.body_text()))
}

/// Waits (bounded) until every `(name, value)` in `expected` is what `/stats` shows,
/// then returns the whole map; on timeout the error lists the stats that differ.
pub async fn wait_for(
    proxy: &Proxy,
    expected: &[(&str, u64)],
) -> anyhow::Result<BTreeMap<String, u64>> {
    let holds = |all: &BTreeMap<String, u64>| {
        expected
            .iter()
            .all(|(name, value)| all.get(*name) == Some(value))
    };
    let found = eventually(SETTLE, || async {
        let all = stats(proxy, "").await?;
        Ok(holds(&all).then_some(all))
    })
    .await;
    match found {
        Ok(all) => Ok(all),
        Err(e) => {
            let last = stats(proxy, "").await.unwrap_or_default();
            let diffs: Vec<String> = expected
                .iter()
                .filter(|(name, value)| last.get(*name) != Some(value))
                .map(|(name, value)| format!("{name}: expected {value}, got {:?}", last.get(*name)))
                .collect();
            Err(e.context(format!("stats differ:\n{}", diffs.join("\n"))))
        }
    }
}

/// The value of `name` in `map`, or an error naming it.
pub fn value(map: &BTreeMap<String, u64>, name: &str) -> anyhow::Result<u64> {
    map.get(name)
        .copied()
        .with_context(|| format!("{name} missing from /stats"))
}

/// The stat prefix Envoy gives a listener configured on 127.0.0.1 port 0 (the test
/// configs' address): named after the configured address, not the port it got.
pub const LISTENER: &str = "listener.127.0.0.1_0";

/// Parses stdin with prometheus_client; prints `type name {k=v,...} value` per sample.
const PROMETHEUS_PARSE: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
        print(f"{family.type} {sample.name} {{{labels}}} {sample.value:g}")
"#;

/// The venv's python with `prometheus_client` (created once per target dir).
fn python_with_prometheus_client() -> anyhow::Result<String> {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared-stats/scripts/prometheus-venv.sh");
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("prometheus-venv");
    let output = Command::new("bash")
        .arg(&script)
        .arg(&venv)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!("could not set up the prometheus_client venv");
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_string())
}

/// Parses Prometheus text exposition with the reference Python parser; returns one
/// `type name {labels} value` line per sample, or the parser's error.
pub fn parse_prometheus(text: &str) -> anyhow::Result<Vec<String>> {
    let python = python_with_prometheus_client()?;
    let mut child = Command::new(python)
        .args(["-c", PROMETHEUS_PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running python")?;
    child
        .stdin
        .take()
        .context("python stdin")?
        .write_all(text.as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "prometheus_client rejected the output: {}\n{text}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8(output.stdout)?
        .lines()
        .map(str::to_string)
        .collect())
}
