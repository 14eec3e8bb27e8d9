//! `/stats/prometheus` output is read back by the Python `prometheus_client` text parser
//! (the reference implementation's parser), installed in a venv by
//! `scripts/prometheus-venv.sh`.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use baton_shared_stats::{GaugeMode, RenderOptions, StatsStore};
use support::TempDir;

/// Parses stdin with prometheus_client and prints `type name {labels} value` per sample.
const PARSE_SCRIPT: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
        print(f"{family.type} {sample.name} {{{labels}}} {sample.value:g}")
"#;

fn python_with_prometheus_client() -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/prometheus-venv.sh");
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("prometheus-venv");
    let output = Command::new("bash")
        .arg(script)
        .arg(&venv)
        .stderr(Stdio::inherit())
        .output()
        .expect("run prometheus-venv.sh");
    assert!(
        output.status.success(),
        "could not set up prometheus_client venv"
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

#[test]
fn prometheus_client_parses_every_family() {
    let dir = TempDir::new("promparse");
    let store = StatsStore::open_or_create(&dir.config(), 0).unwrap();
    store.counter("cluster.backend.upstream_rq_total").add(12);
    store.counter("cluster.backend.upstream_rq_503").add(2);
    store.counter("http.ingress_http.downstream_rq_2xx").add(10);
    store
        .counter("listener.127.0.0.1_10000.downstream_cx_total")
        .add(4);
    store.counter("tcp.tcp_in.downstream_cx_total").add(1);
    store.gauge("cluster.backend.membership_healthy").set(3);
    store
        .gauge_with_mode("server.live", GaugeMode::NeverImport)
        .set(1);
    let rq_time = store.histogram("cluster.backend.upstream_rq_time");
    for value in [0, 3, 7, 120, 7_000_000] {
        rq_time.record(value);
    }
    let text = store
        .snapshot()
        .unwrap()
        .render_prometheus(&RenderOptions::default());

    let python = python_with_prometheus_client();
    let mut child = Command::new(python)
        .args(["-c", PARSE_SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "parser rejected output: {stderr}\n{text}"
    );
    let parsed = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = parsed.lines().collect();
    for expected in [
        "counter envoy_cluster_upstream_rq_total {envoy_cluster_name=backend} 12",
        "counter envoy_cluster_upstream_rq_total {envoy_cluster_name=backend,envoy_response_code=503} 2",
        "counter envoy_http_downstream_rq_xx_total {envoy_http_conn_manager_prefix=ingress_http,envoy_response_code_class=2} 10",
        "counter envoy_listener_downstream_cx_total {envoy_listener_address=127.0.0.1_10000} 4",
        "counter envoy_tcp_downstream_cx_total {envoy_tcp_prefix=tcp_in} 1",
        "gauge envoy_cluster_membership_healthy {envoy_cluster_name=backend} 3",
        "gauge envoy_server_live {} 1",
        "histogram envoy_cluster_upstream_rq_time_bucket {envoy_cluster_name=backend,le=0.5} 1",
        "histogram envoy_cluster_upstream_rq_time_bucket {envoy_cluster_name=backend,le=10} 3",
        "histogram envoy_cluster_upstream_rq_time_bucket {envoy_cluster_name=backend,le=3600000} 4",
        "histogram envoy_cluster_upstream_rq_time_bucket {envoy_cluster_name=backend,le=+Inf} 5",
        "histogram envoy_cluster_upstream_rq_time_count {envoy_cluster_name=backend} 5",
        "histogram envoy_cluster_upstream_rq_time_sum {envoy_cluster_name=backend} 7.00013e+06",
    ] {
        assert!(lines.contains(&expected), "missing {expected:?} in parsed output:\n{parsed}");
    }
}
