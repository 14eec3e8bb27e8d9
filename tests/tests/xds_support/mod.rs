//! Helpers for the xDS tests (`tests/xds_*.rs`): a proxy started under the test control
//! plane, the usual CDS+EDS+LDS+RDS snapshot (cluster `backend` over EDS, listener `http`
//! with routes `routes` over RDS), `/stats` and `/config_dump` readers, and a bounded
//! request loop that counts failures.

#![allow(dead_code)] // each test binary uses a different subset

pub mod sds;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use baton_tests::config::{XdsBootstrap, XdsTransport};
use baton_tests::xds::{
    resources, ControlPlane, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE,
};
use baton_tests::{eventually, Proxy, RawHttp1, StartOptions};
use serde_json::Value;

/// Bound for one xDS exchange (response applied and answered) between processes.
pub const XDS_TIMEOUT: Duration = Duration::from_secs(10);

/// Both transports, for tests that run once per transport.
pub const TRANSPORTS: [XdsTransport; 2] = [XdsTransport::Sotw, XdsTransport::Delta];

/// The bootstrap for `control_plane` with `transport`.
pub fn bootstrap(control_plane: &ControlPlane, transport: XdsTransport) -> XdsBootstrap {
    XdsBootstrap::new(control_plane.addr()).transport(transport)
}

/// Starts the proxy with `bootstrap` and waits until it is LIVE.
pub async fn start(bootstrap: &XdsBootstrap) -> anyhow::Result<Proxy> {
    Proxy::start(&bootstrap.build()).await
}

/// Starts the proxy with `bootstrap` without waiting for `/ready`.
pub async fn start_unready(bootstrap: &XdsBootstrap) -> anyhow::Result<Proxy> {
    Proxy::start_with(
        &bootstrap.build(),
        StartOptions {
            no_wait_ready: true,
            ..Default::default()
        },
    )
    .await
}

/// Sets cluster `backend` (EDS) at `version`.
pub fn set_clusters(cp: &ControlPlane, version: &str, names: &[&str]) -> anyhow::Result<()> {
    let clusters: Vec<Value> = names.iter().map(|n| resources::eds_cluster(n)).collect();
    cp.set(CLUSTER_TYPE, version, resources::clusters(&clusters)?)
}

/// Sets the endpoints of each `(cluster, addrs)` at `version`.
pub fn set_endpoints(
    cp: &ControlPlane,
    version: &str,
    assignments: &[(&str, &[SocketAddr])],
) -> anyhow::Result<()> {
    let assignments: Vec<Value> = assignments
        .iter()
        .map(|(cluster, addrs)| resources::load_assignment(cluster, addrs))
        .collect();
    cp.set(
        ENDPOINT_TYPE,
        version,
        resources::load_assignments(&assignments)?,
    )
}

/// Sets listener `http` on 127.0.0.1:`port` (0 = any) with routes `routes` over RDS.
pub fn set_listener(cp: &ControlPlane, version: &str, port: u16) -> anyhow::Result<()> {
    let listener = resources::rds_listener("http", port, "routes");
    cp.set(LISTENER_TYPE, version, resources::listeners(&[listener])?)
}

/// Sets route config `routes` sending everything to `cluster`.
pub fn set_routes(cp: &ControlPlane, version: &str, cluster: &str) -> anyhow::Result<()> {
    let routes = resources::route_to("routes", cluster);
    cp.set(ROUTE_TYPE, version, resources::route_configs(&[routes])?)
}

/// The usual snapshot at `version`: cluster `backend` over EDS with `upstreams`, listener
/// `http` on `port` with RDS `routes` to `backend`.
pub fn set_all(
    cp: &ControlPlane,
    version: &str,
    upstreams: &[SocketAddr],
    port: u16,
) -> anyhow::Result<()> {
    set_clusters(cp, version, &["backend"])?;
    set_endpoints(cp, version, &[("backend", upstreams)])?;
    set_listener(cp, version, port)?;
    set_routes(cp, version, "backend")
}

/// Sets CDS and LDS `version`s that Envoy and Baton NACK: cluster `backend` (EDS) beside
/// a STATIC cluster with a hostname endpoint (`upstream` otherwise), and listener `http`
/// without filter chains.
pub fn set_nacked_clusters_and_listener(
    cp: &ControlPlane,
    version: &str,
    upstream: SocketAddr,
) -> anyhow::Result<()> {
    let mut bad_cluster = resources::static_cluster("bad", &[upstream]);
    bad_cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        ["socket_address"]["address"] = serde_json::json!("localhost");
    let clusters = [resources::eds_cluster("backend"), bad_cluster];
    cp.set(CLUSTER_TYPE, version, resources::clusters(&clusters)?)?;
    let bad_listener = serde_json::json!({
        "name": "http",
        "address": baton_tests::config::socket_address("127.0.0.1", 0),
        "filter_chains": [],
    });
    cp.set(
        LISTENER_TYPE,
        version,
        resources::listeners(&[bad_listener])?,
    )
}

/// The `/stats` lines matching `filter` (a regex) as (name, value) pairs, values as
/// printed (text readouts quoted, histograms summarised).
pub async fn stat_lines(proxy: &Proxy, filter: &str) -> anyhow::Result<Vec<(String, String)>> {
    let body = proxy
        .admin_request("GET", &format!("/stats?filter={filter}"))
        .await?
        .body_text();
    Ok(body
        .lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(": ")?;
            Some((name.to_string(), value.to_string()))
        })
        .collect())
}

/// Waits (bounded) until every type of the usual snapshot at `version` was ACKed.
/// The names the first request for `type_url` subscribed to (`resource_names` over state
/// of the world, `resource_names_subscribe` over delta).
pub fn first_subscription(
    cp: &ControlPlane,
    type_url: &str,
    transport: XdsTransport,
) -> anyhow::Result<Vec<String>> {
    let first = cp
        .requests()
        .into_iter()
        .find(|r| r.type_url == type_url)
        .ok_or_else(|| anyhow::anyhow!("no {type_url} request"))?;
    Ok(match transport {
        XdsTransport::Sotw => first.resource_names,
        XdsTransport::Delta => first.subscribe,
    })
}

pub async fn wait_all_acked(cp: &ControlPlane, version: &str) -> anyhow::Result<()> {
    for type_url in [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE] {
        cp.wait_for_ack(type_url, version, XDS_TIMEOUT).await?;
    }
    Ok(())
}

/// `GET /stats` as name -> value (counters and gauges).
pub async fn stats(proxy: &Proxy) -> anyhow::Result<BTreeMap<String, u64>> {
    let resp = proxy.admin_request("GET", "/stats").await?;
    if resp.status != 200 {
        bail!("GET /stats: {} {}", resp.status, resp.body_text());
    }
    Ok(resp
        .body_text()
        .lines()
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(": ")?;
            Some((name.to_string(), value.trim().parse().ok()?))
        })
        .collect())
}

/// Waits (bounded) until stat `name` equals `value`; returns all stats then.
pub async fn wait_stat(
    proxy: &Proxy,
    name: &str,
    value: u64,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let result = eventually(XDS_TIMEOUT, || async {
        let all = stats(proxy).await?;
        Ok((all.get(name) == Some(&value)).then_some(all))
    })
    .await;
    match result {
        Ok(all) => Ok(all),
        Err(e) => {
            let now = stats(proxy).await.unwrap_or_default().get(name).copied();
            Err(e.context(format!("{name}: expected {value}, last {now:?}")))
        }
    }
}

/// `GET /config_dump` as JSON.
pub async fn config_dump(proxy: &Proxy) -> anyhow::Result<Value> {
    let resp = proxy.admin_request("GET", "/config_dump").await?;
    if resp.status != 200 {
        bail!("GET /config_dump: {} {}", resp.status, resp.body_text());
    }
    resp.json()
}

/// The config dump section whose `@type` ends with `suffix` (e.g. `ClustersConfigDump`).
pub fn dump_section<'a>(dump: &'a Value, suffix: &str) -> anyhow::Result<&'a Value> {
    dump["configs"]
        .as_array()
        .context("config_dump has no configs")?
        .iter()
        .find(|c| {
            c["@type"]
                .as_str()
                .and_then(|t| t.rsplit('.').next())
                .is_some_and(|t| t == suffix)
        })
        .with_context(|| format!("config_dump has no {suffix}"))
}

/// `GET /ready` status.
pub async fn ready_status(proxy: &Proxy) -> anyhow::Result<u16> {
    Ok(proxy.admin_request("GET", "/ready").await?.status)
}

/// One GET of `path` on a fresh connection; returns (status, upstream name or "").
pub async fn get_once(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let resp = baton_tests::get(addr, path).await?;
    let upstream = resp
        .header("x-upstream-name")
        .unwrap_or_default()
        .to_string();
    Ok((resp.status, upstream))
}

/// Waits (bounded) until GET `/` on `addr` is answered by upstream `name`.
pub async fn wait_served_by(addr: SocketAddr, name: &str) -> anyhow::Result<()> {
    eventually(XDS_TIMEOUT, || async {
        let (status, upstream) = get_once(addr, "/").await?;
        Ok((status == 200 && upstream == name).then_some(()))
    })
    .await
    .with_context(|| format!("waiting for {addr} to be served by {name}"))
}

/// A request loop running on its own task until stopped: keep-alive connections
/// (reconnecting after a close) sending GET `/`, counting outcomes.
pub struct RequestLoop {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<anyhow::Result<LoopOutcome>>,
    ok: Arc<AtomicUsize>,
    closes: Arc<AtomicUsize>,
    last_upstream: Arc<Mutex<String>>,
}

/// What a request loop saw.
#[derive(Debug, Default, Clone)]
pub struct LoopOutcome {
    /// Requests answered 200.
    pub ok: usize,
    /// Other statuses or errors, with what happened.
    pub failures: Vec<String>,
    /// Answers per upstream name.
    pub upstreams: BTreeMap<String, usize>,
}

impl RequestLoop {
    /// Starts the loop against `addr`, over keep-alive connections.
    pub fn start(addr: SocketAddr) -> Self {
        Self::start_with(addr, true)
    }

    /// Starts the loop against `addr` with a new connection per request (`connection:
    /// close`), as clients that do not reuse connections send.
    pub fn start_new_connections(addr: SocketAddr) -> Self {
        Self::start_with(addr, false)
    }

    fn start_with(addr: SocketAddr, keep_alive: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let closes = Arc::new(AtomicUsize::new(0));
        let last_upstream = Arc::new(Mutex::new(String::new()));
        let task = tokio::spawn(run_loop(
            addr,
            keep_alive,
            Arc::clone(&stop),
            Arc::clone(&ok),
            Arc::clone(&closes),
            Arc::clone(&last_upstream),
        ));
        Self {
            stop,
            task,
            ok,
            closes,
            last_upstream,
        }
    }

    /// Responses so far that closed their connection (`connection: close`, as a draining
    /// listener answers).
    pub fn closes(&self) -> usize {
        self.closes.load(Ordering::Relaxed)
    }

    /// Requests answered 200 so far.
    pub fn ok(&self) -> usize {
        self.ok.load(Ordering::Relaxed)
    }

    /// Waits (bounded) until `more` further requests were answered 200.
    pub async fn wait_more(&self, more: usize) -> anyhow::Result<()> {
        let target = self.ok() + more;
        eventually(XDS_TIMEOUT, || async {
            Ok((self.ok() >= target).then_some(()))
        })
        .await
    }

    /// Waits (bounded) until the loop's latest 200 came from upstream `name` (e.g. after a
    /// route change, once its keep-alive connection was drained and reopened).
    pub async fn wait_for_upstream(&self, name: &str) -> anyhow::Result<()> {
        eventually(XDS_TIMEOUT, || async {
            let last = self.last_upstream.lock().unwrap_or_else(|e| e.into_inner());
            Ok((*last == name).then_some(()))
        })
        .await
        .with_context(|| format!("waiting for the request loop to be served by {name}"))
    }

    /// Stops the loop and returns what it saw.
    pub async fn finish(self) -> anyhow::Result<LoopOutcome> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.context("request loop task")?
    }
}

/// Pause between requests: keeps a 2-core machine responsive.
const PACE: Duration = Duration::from_millis(1);

/// Bound on the loop's length, so a stop that never comes cannot hang a test.
const LOOP_MAX_REQUESTS: usize = 200_000;

async fn run_loop(
    addr: SocketAddr,
    keep_alive: bool,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    closes: Arc<AtomicUsize>,
    last_upstream: Arc<Mutex<String>>,
) -> anyhow::Result<LoopOutcome> {
    let mut outcome = LoopOutcome::default();
    let mut conn: Option<RawHttp1> = None;
    for _ in 0..LOOP_MAX_REQUESTS {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let result = async {
            let connection = match conn.as_mut() {
                Some(connection) => connection,
                None => conn.insert(RawHttp1::connect(addr).await?),
            };
            let headers: &[(&str, &str)] = if keep_alive {
                &[]
            } else {
                &[("connection", "close")]
            };
            connection.send_request("GET", "/", headers, b"").await?;
            connection.read_response().await
        }
        .await;
        match result {
            Ok(resp) => {
                if !keep_alive {
                    conn = None;
                } else if resp.connection_close() {
                    closes.fetch_add(1, Ordering::Relaxed);
                    conn = None;
                }
                if resp.status == 200 {
                    ok.fetch_add(1, Ordering::Relaxed);
                    outcome.ok += 1;
                    let upstream = resp.header("x-upstream-name").unwrap_or_default();
                    *outcome.upstreams.entry(upstream.to_string()).or_default() += 1;
                    upstream
                        .clone_into(&mut last_upstream.lock().unwrap_or_else(|e| e.into_inner()));
                } else {
                    outcome
                        .failures
                        .push(format!("{} {}", resp.status, resp.body_text()));
                }
            }
            Err(e) => {
                conn = None;
                outcome.failures.push(format!("error: {e:#}"));
            }
        }
        tokio::time::sleep(PACE).await;
    }
    Ok(outcome)
}

/// Generates `mod NAME { sotw, delta }` tests calling `NAME(XdsTransport::Sotw)` and
/// `NAME(XdsTransport::Delta)` (async fns returning `anyhow::Result<()>`).
#[macro_export]
macro_rules! sotw_and_delta {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use baton_tests::config::XdsTransport;

                #[tokio::test]
                async fn sotw() -> anyhow::Result<()> {
                    super::$name(XdsTransport::Sotw).await
                }

                #[tokio::test]
                async fn delta() -> anyhow::Result<()> {
                    super::$name(XdsTransport::Delta).await
                }
            }
        )*
    };
}

/// The entry named `name` in the config dump array at `pointer` whose items hold the name
/// at `name_pointer` (e.g. `/cluster/name`).
pub fn dump_entry<'a>(
    section: &'a Value,
    array: &str,
    name_pointer: &str,
    name: &str,
) -> anyhow::Result<&'a Value> {
    section[array]
        .as_array()
        .with_context(|| format!("no {array} in {section}"))?
        .iter()
        .find(|entry| entry.pointer(name_pointer).and_then(Value::as_str) == Some(name))
        .with_context(|| format!("no {name} in {array}: {section}"))
}
