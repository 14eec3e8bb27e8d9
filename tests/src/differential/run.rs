//! Runs one area against one binary: starts the area's upstreams, then for each config (in
//! order of first use) one proxy, runs that config's cases in file order on it, and turns
//! each case's observations into its normalised outcome (a JSON value; see [`outcome`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use super::bootstrap::{self, Placeholders};
use super::exchange::{self, Observed, PROBE_PATH};
use super::normalise::Ports;
use super::spec::{AreaSpec, CaseSpec, Target};
use super::upstream::RecordingUpstream;
use crate::process::{Proxy, StartOptions};

/// Bound for one case (every I/O step inside is bounded too).
const CASE_TIMEOUT: Duration = Duration::from_secs(30);

/// Outcomes of an area's cases by case name (`<area>/<case>`).
pub type Outcomes = BTreeMap<String, Value>;

/// Errors that stop an area run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The proxy did not start on a config, and the caller asked to stop on that (recording).
    #[error("{binary} did not start with config {config} of area {area}: {reason}")]
    ProxyStart {
        /// Binary.
        binary: String,
        /// Area.
        area: String,
        /// Config name.
        config: String,
        /// The start error, with the proxy's log.
        reason: String,
    },
    /// Upstreams or the closed port could not be set up.
    #[error("setting up area {area}: {source}")]
    Setup {
        /// Area.
        area: String,
        /// Cause.
        source: anyhow::Error,
    },
}

/// How to run an area.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The proxy binary.
    pub binary: PathBuf,
    /// Fail instead of recording an error outcome when a proxy does not start.
    pub strict_start: bool,
    /// Only cases whose full name contains this.
    pub filter: Option<String>,
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Runs `area` with `options`.
pub async fn run_area(area: &AreaSpec, options: &RunOptions) -> Result<Outcomes, RunError> {
    let setup = |source: anyhow::Error| RunError::Setup {
        area: area.area.clone(),
        source,
    };
    let mut upstreams = Vec::new();
    for decl in &area.upstreams {
        upstreams.push(
            RecordingUpstream::start(&decl.name, decl.kind)
                .await
                .map_err(setup)?,
        );
    }
    let placeholders = Placeholders {
        upstreams: upstreams
            .iter()
            .map(|u| (u.name().to_string(), u.port()))
            .collect(),
        closed_port: closed_port().map_err(setup)?,
        access_log: None,
    };
    let log_dir = crate::process::TempDir::new().map_err(setup)?;
    let mut config_order: Vec<&str> = Vec::new();
    for case in &area.cases {
        if !config_order.contains(&case.config.as_str()) {
            config_order.push(&case.config);
        }
    }
    let mut outcomes = Outcomes::new();
    for config_name in config_order {
        let cases: Vec<&CaseSpec> = area
            .cases
            .iter()
            .filter(|c| c.config == config_name)
            .filter(|c| {
                options
                    .filter
                    .as_deref()
                    .is_none_or(|f| format!("{}/{}", area.area, c.name).contains(f))
            })
            .collect();
        if cases.is_empty() {
            continue;
        }
        let Some(spec) = area.configs.get(config_name) else {
            continue;
        };
        let log_path = spec
            .access_log
            .as_ref()
            .map(|_| log_dir.join(&format!("{config_name}.log")));
        let mut config_placeholders = placeholders.clone();
        config_placeholders.access_log = log_path.as_ref().map(|p| p.display().to_string());
        let bootstrap = bootstrap::build(spec, &config_placeholders);
        let started = start_proxy(&bootstrap, &options.binary).await;
        let (proxy, listener) = match started {
            Ok(pair) => pair,
            Err(e) if options.strict_start => {
                return Err(RunError::ProxyStart {
                    binary: options.binary.display().to_string(),
                    area: area.area.clone(),
                    config: config_name.to_string(),
                    reason: format!("{e:#}"),
                })
            }
            Err(e) => {
                let reason = start_failure_reason(&format!("{e:#}"));
                for case in cases {
                    outcomes.insert(
                        full_name(area, case),
                        json!({ "error": format!("proxy did not start: {reason}") }),
                    );
                }
                continue;
            }
        };
        for case in cases {
            let outcome = run_case(
                case,
                &proxy,
                listener,
                &upstreams,
                &placeholders,
                log_path.as_deref(),
            )
            .await;
            outcomes.insert(full_name(area, case), outcome);
        }
    }
    Ok(outcomes)
}

/// The line of a start failure that says why (the config error, without the temp path).
fn start_failure_reason(text: &str) -> String {
    static CONFIG_ERROR: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = CONFIG_ERROR
        .get_or_init(|| regex::Regex::new(r".*config\.yaml:\d+: (.*)$").expect("constant regex"));
    text.lines()
        .rev()
        .find_map(|line| re.captures(line).map(|c| c[1].to_string()))
        .unwrap_or_else(|| text.lines().next().unwrap_or_default().to_string())
}

/// `<area>/<case>`.
pub fn full_name(area: &AreaSpec, case: &CaseSpec) -> String {
    format!("{}/{}", area.area, case.name)
}

async fn start_proxy(
    bootstrap: &Value,
    binary: &Path,
) -> anyhow::Result<(Proxy, std::net::SocketAddr)> {
    // Cases count admin requests (`http.admin.*`): `/ready` is asked once, after the
    // proxy logged that it is LIVE, not polled from the moment the admin listener is up
    // (a slow start under load added a 503 and a connection).
    // Access logs reach their file within 100 ms (Envoy buffers them for 10 s by default;
    // Baton writes each line at once and only warns about the flag).
    let opts = StartOptions {
        binary: Some(binary.to_path_buf()),
        log_level: Some("info".into()),
        no_wait_ready: true,
        extra_args: vec!["--file-flush-interval-msec".into(), "100".into()],
        ..StartOptions::default()
    };
    let mut proxy = Proxy::start_with(bootstrap, opts).await?;
    proxy.wait_live_then_ready().await?;
    let listener = proxy.listener_addr("main").await?;
    Ok((proxy, listener))
}

async fn run_case(
    case: &CaseSpec,
    proxy: &Proxy,
    listener: std::net::SocketAddr,
    upstreams: &[RecordingUpstream],
    placeholders: &Placeholders,
    access_log: Option<&Path>,
) -> Value {
    for upstream in upstreams {
        upstream.prepare(&case.upstream);
    }
    let log_start = access_log.map(|path| std::fs::metadata(path).map_or(0, |m| m.len()));
    let addr = match case.target {
        Target::Listener => listener,
        Target::Admin => proxy.admin(),
    };
    let observed = tokio::time::timeout(CASE_TIMEOUT, exchange::run(case, addr)).await;
    let received: Vec<_> = upstreams
        .iter()
        .flat_map(|u| u.received())
        .filter(|r| !r.path.starts_with(PROBE_PATH))
        .collect();
    // The proxy's side of its upstream connections: of each request (pooled connections
    // may come from an earlier case) and of connections accepted during the case.
    let upstream_client_ports: Vec<u16> = received
        .iter()
        .map(|r| r.peer_port)
        .chain(upstreams.iter().flat_map(RecordingUpstream::peer_ports))
        .collect();
    for upstream in upstreams {
        upstream.prepare(&Default::default());
    }
    let mut ports = Ports::default();
    if let Some(ip) = super::normalise::host_ip() {
        ports.set_host_ip(ip);
    }
    ports.add(listener.port(), "listener");
    ports.add(proxy.admin().port(), "admin");
    for (name, port) in &placeholders.upstreams {
        ports.add(*port, name);
    }
    ports.add(placeholders.closed_port, "closed");
    let observed = match observed {
        Ok(Ok(observed)) => observed,
        Ok(Err(e)) => return json!({ "error": format!("{e:#}") }),
        Err(_) => return json!({ "error": "case timed out" }),
    };
    ports.add(observed.client_port, "client");
    for port in upstream_client_ports {
        ports.add(port, "upstream-client");
    }
    let mut upstream: Vec<Value> = received.iter().map(|r| ports.received(r)).collect();
    mask_remaining_timeouts(&mut upstream);
    let mut out = outcome(case, &observed, &ports, upstream);
    if let (Some(path), Some(start)) = (access_log, log_start) {
        let lines = new_log_lines(path, start).await;
        out["access_log"] = json!(lines.iter().map(|l| ports.text(l)).collect::<Vec<_>>());
    }
    out
}

/// Lines appended to `path` after byte `start`, once some have come and no more came for
/// 300 ms (bounded: 10 s), without the probe request's.
async fn new_log_lines(path: &Path, start: u64) -> Vec<String> {
    let read = || {
        std::fs::read(path)
            .ok()
            .and_then(|bytes| bytes.get(start as usize..).map(<[u8]>::to_vec))
            .unwrap_or_default()
    };
    let mut seen = Vec::new();
    let mut quiet = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = read();
        if !now.is_empty() && now == seen {
            quiet += 1;
            if quiet == 3 {
                break;
            }
        } else {
            quiet = 0;
        }
        seen = now;
    }
    String::from_utf8_lossy(&seen)
        .lines()
        .filter(|line| !line.contains(PROBE_PATH))
        .map(str::to_string)
        .collect()
}

/// A retried request carries the time left of the route timeout in
/// `x-envoy-expected-rq-timeout-ms`, which depends on how long the earlier tries took: a
/// value below the first request's becomes `<remaining>` (an equal or larger one, e.g. a
/// proxy that does not count down, stays and is compared).
fn mask_remaining_timeouts(upstream: &mut [Value]) {
    const HEADER: &str = "x-envoy-expected-rq-timeout-ms";
    let millis = |v: &Value| {
        v["headers"][HEADER]
            .as_str()
            .and_then(|t| t.parse::<u64>().ok())
    };
    let Some(first) = upstream.first().and_then(millis) else {
        return;
    };
    for request in upstream.iter_mut().skip(1) {
        if millis(request).is_some_and(|ms| ms < first) {
            request["headers"][HEADER] = json!("<remaining>");
        }
    }
}

/// The normalised outcome: `responses` (status, version, headers, body, framing),
/// `read_error`, `closed`, `echoed`/`eof_after_half_close` (tunnels, tcp) and `upstream`
/// (what each upstream received). Absent fields are left out.
pub fn outcome(case: &CaseSpec, observed: &Observed, ports: &Ports, upstream: Vec<Value>) -> Value {
    let reduced = case.body_mode != super::spec::BodyMode::Exact;
    let responses: Vec<Value> = observed
        .responses
        .iter()
        .map(|r| {
            json!({
                "status": r.status,
                "version": r.version,
                "headers": ports.headers(&r.headers, reduced),
                "body": ports.body(&r.body, &case.body_mode),
                "framing": r.framing,
            })
        })
        .collect();
    let mut out = serde_json::Map::new();
    out.insert("responses".into(), json!(responses));
    if let Some(error) = &observed.read_error {
        out.insert("read_error".into(), json!(error));
    }
    if let Some(closed) = observed.closed {
        out.insert("closed".into(), json!(closed));
    }
    if let Some(echoed) = &observed.echoed {
        out.insert(
            "echoed".into(),
            json!(String::from_utf8_lossy(echoed).into_owned()),
        );
    }
    if let Some(h2) = &observed.h2 {
        out.insert(
            "h2".into(),
            super::h2raw::normalised(h2, ports, &case.body_mode),
        );
    }
    if let Some(eof) = observed.eof_after_half_close {
        out.insert("eof_after_half_close".into(), json!(eof));
    }
    if let Some(tls) = &observed.tls {
        out.insert("tls".into(), tls.clone());
    }
    out.insert("upstream".into(), json!(upstream));
    Value::Object(out)
}
