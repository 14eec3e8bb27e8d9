//! `xds-scale`: the xDS scale benchmark run by `bench/xds-scale` (a measurement, not a
//! test). The test control plane serves a generated snapshot over ADS state of the world:
//! N EDS clusters `c<i>` with one endpoint each, one listener `http` whose routes come
//! from RDS, and the route config `routes` with N routes (`/c<i>` to cluster `c<i>`). For
//! each proxy binary given, in turn, it starts the proxy against a fresh control plane
//! holding that snapshot and prints, per type, the time from the control plane queuing
//! the response to the proxy's ACK of it, the time from the first CDS response to the RDS
//! ACK, and the proxy's resident memory once everything is ACKed and a request to `/c0`
//! (cluster `c0` is a real echo upstream) was served through the configuration.
//!
//! ```text
//! xds-scale [--clusters N] BINARY [BINARY...]
//! ```
//!
//! Every wait is bounded (`--timeout-s`, default 600); every proxy is killed by pid when
//! its run ends (with `XDS_SCALE_SIGTERM` set, first stopped by SIGTERM and awaited, so a
//! profiler wrapping it writes its output).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use baton_tests::config::vhost;
use baton_tests::xds::{
    resources, short_type, ControlPlane, ALL_TYPES, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE,
    ROUTE_TYPE,
};
use baton_tests::{eventually, EchoUpstream, Proxy, StartOptions};
use prost_types::Any;
use serde_json::{json, Value};

/// The snapshot version every resource is served at.
const VERSION: &str = "1";

/// Command line.
struct Args {
    clusters: usize,
    timeout: Duration,
    binaries: Vec<PathBuf>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        clusters: 10_000,
        timeout: Duration::from_secs(600),
        binaries: Vec::new(),
    };
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--clusters" => {
                args.clusters = argv.next().context("--clusters N")?.parse()?;
            }
            "--timeout-s" => {
                args.timeout = Duration::from_secs(argv.next().context("--timeout-s S")?.parse()?);
            }
            "-h" | "--help" => {
                println!("usage: xds-scale [--clusters N] [--timeout-s S] BINARY [BINARY...]");
                std::process::exit(0);
            }
            flag if flag.starts_with('-') => bail!("unknown flag {flag}"),
            binary => args.binaries.push(PathBuf::from(binary)),
        }
    }
    if args.binaries.is_empty() {
        bail!("no proxy binary given (usage: xds-scale [--clusters N] BINARY [BINARY...])");
    }
    if args.clusters == 0 {
        bail!("--clusters must be at least 1");
    }
    Ok(args)
}

/// The generated resources, encoded once and served to every run.
struct Snapshot {
    clusters: Vec<Any>,
    assignments: Vec<Any>,
    listeners: Vec<Any>,
    routes: Vec<Any>,
}

impl Snapshot {
    /// N EDS clusters; `c0`'s endpoint is `echo`, the others' are addresses nothing
    /// connects to (no traffic, no health checks); one RDS listener; N routes.
    fn generate(n: usize, echo: std::net::SocketAddr) -> anyhow::Result<Self> {
        let names: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
        let clusters: Vec<Value> = names
            .iter()
            .map(|name| resources::eds_cluster(name))
            .collect();
        let assignments: Vec<Value> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let addr = if i == 0 {
                    echo
                } else {
                    // 127.0.1.x:20000+: distinct, never dialled.
                    let port = 20_000 + u16::try_from(i % 40_000).unwrap_or(0);
                    std::net::SocketAddr::from(([127, 0, 1, (i % 250) as u8 + 1], port))
                };
                resources::load_assignment(name, &[addr])
            })
            .collect();
        let routes: Vec<Value> = names
            .iter()
            .map(|name| json!({ "match": { "path": format!("/{name}") }, "route": { "cluster": name } }))
            .collect();
        let route_config = resources::route_config("routes", vec![vhost("all", &["*"], routes)]);
        Ok(Self {
            clusters: resources::clusters(&clusters)?,
            assignments: resources::load_assignments(&assignments)?,
            listeners: resources::listeners(&[resources::rds_listener("http", 0, "routes")])?,
            routes: resources::route_configs(&[route_config])?,
        })
    }

    fn serve(&self, cp: &ControlPlane) -> anyhow::Result<()> {
        cp.set(CLUSTER_TYPE, VERSION, self.clusters.clone())?;
        cp.set(ENDPOINT_TYPE, VERSION, self.assignments.clone())?;
        cp.set(LISTENER_TYPE, VERSION, self.listeners.clone())?;
        cp.set(ROUTE_TYPE, VERSION, self.routes.clone())
    }
}

/// What one run measured.
struct Outcome {
    binary: PathBuf,
    /// Per type (ALL_TYPES order): response queued -> ACK.
    response_to_ack: Vec<Duration>,
    /// First CDS response -> RDS ACK.
    total: Duration,
    /// The proxy's CPU time (user + system) from just before the first CDS response to
    /// its RDS ACK: the counted work of applying the whole configuration, which a loaded
    /// machine does not inflate as it does wall time.
    push_cpu: Duration,
    /// VmRSS once everything was ACKed and `/c0` served, in KiB.
    rss_kib: u64,
    /// Requests the proxy sent for each type up to its ACK (2: the first and the ACK).
    requests: Vec<usize>,
    /// `server.stats_overflow` once serving (stats the region had no room for); None
    /// when the proxy has no such stat (Envoy).
    stats_overflow: Option<u64>,
}

/// CPU time (utime + stime) `pid` has used so far, from /proc/<pid>/stat.
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at state (field 3);
    // utime and stime are fields 14 and 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("no ')' in /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |index: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(index)
            .context("short /proc/<pid>/stat")?
            .parse()?)
    };
    // /proc counts in USER_HZ ticks: 100 per second on Linux.
    let per_second = 100;
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_millis(total * 1000 / per_second))
}

/// Resident set size of `pid` in KiB, from /proc.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/<pid>/status")
}

async fn run(binary: &Path, snapshot: &Snapshot, timeout: Duration) -> anyhow::Result<Outcome> {
    let cp = ControlPlane::start().await?;
    let bootstrap = baton_tests::config::XdsBootstrap::new(cp.addr())
        .initial_fetch_timeout(Duration::ZERO)
        .build();
    let options = StartOptions {
        binary: Some(binary.to_path_buf()),
        log_level: Some("warn".into()),
        no_wait_ready: true,
        ..Default::default()
    };
    let mut proxy = Proxy::start_with(&bootstrap, options).await?;
    // The snapshot is served once the proxy asked for clusters, so its CPU time up to
    // here (start-up) is not counted in the push.
    cp.wait_for_request(|r| r.type_url == CLUSTER_TYPE, timeout)
        .await?;
    let cpu_before = cpu_time(proxy.pid())?;
    snapshot.serve(&cp)?;
    let mut response_to_ack = Vec::new();
    let mut request_counts = Vec::new();
    let mut first_cds = None;
    let mut rds_ack = None;
    for (type_url, expected) in [
        (CLUSTER_TYPE, snapshot.clusters.len()),
        (ENDPOINT_TYPE, snapshot.assignments.len()),
        (LISTENER_TYPE, snapshot.listeners.len()),
        (ROUTE_TYPE, snapshot.routes.len()),
    ] {
        // The complete response (a proxy that subscribes EDS names in steps gets partial
        // ones first) and its answer.
        let response = cp
            .wait_for_response(
                |r| r.type_url == type_url && r.version == VERSION && r.resources.len() == expected,
                timeout,
            )
            .await?;
        let ack = cp
            .wait_for_request(
                |r| r.stream == response.stream && r.response_nonce == response.nonce,
                timeout,
            )
            .await?;
        if ack.is_nack() {
            bail!(
                "{} NACKed {}: {}",
                binary.display(),
                short_type(type_url),
                ack.error_message()
            );
        }
        response_to_ack.push(ack.at.saturating_duration_since(response.at));
        request_counts.push(
            cp.requests()
                .iter()
                .filter(|r| r.type_url == type_url && r.index <= ack.index)
                .count(),
        );
        if type_url == CLUSTER_TYPE {
            first_cds = cp
                .responses()
                .iter()
                .find(|r| r.type_url == CLUSTER_TYPE)
                .map(|r| r.at);
        }
        if type_url == ROUTE_TYPE {
            rds_ack = Some((ack.at, cpu_time(proxy.pid())?));
        }
    }
    let (total, push_cpu) = match (first_cds, rds_ack) {
        (Some(start), Some((end, cpu_after))) => (
            end.saturating_duration_since(start),
            cpu_after.saturating_sub(cpu_before),
        ),
        _ => bail!("no CDS response or RDS ACK"),
    };
    // Serving: /c0 goes through cluster c0 to the echo upstream (the listener may still
    // be moving from warming to active right after the RDS ACK).
    eventually(Duration::from_secs(30), || async {
        let addr = proxy.listener_addr("http").await?;
        let resp = baton_tests::get(addr, "/c0").await?;
        Ok((resp.status == 200).then_some(()))
    })
    .await
    .context("GET /c0 through the proxy")?;
    let rss_kib = rss_kib(proxy.pid())?;
    let stats_overflow = proxy
        .admin_request("GET", "/stats?filter=^server.stats_overflow$")
        .await
        .ok()
        .and_then(|resp| {
            let text = resp.body_text();
            text.lines()
                .find_map(|line| line.strip_prefix("server.stats_overflow: "))
                .and_then(|value| value.trim().parse().ok())
        });
    if std::env::var_os("XDS_SCALE_SIGTERM").is_some() {
        // A profiler wrapping the proxy (valgrind --tool=callgrind) writes its output when
        // the process exits, which SIGKILL at drop would prevent.
        proxy.sigterm()?;
        proxy.wait_exit(timeout).await?;
    }
    Ok(Outcome {
        binary: binary.to_path_buf(),
        response_to_ack,
        total,
        push_cpu,
        rss_kib,
        requests: request_counts,
        stats_overflow,
    })
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn print_table(n: usize, outcomes: &[Outcome]) {
    let names: Vec<String> = outcomes
        .iter()
        .map(|o| {
            o.binary.file_name().map_or_else(
                || o.binary.display().to_string(),
                |f| f.to_string_lossy().into_owned(),
            )
        })
        .collect();
    println!(
        "\n{n} EDS clusters with 1 endpoint each, 1 listener, 1 route config of {n} routes; ADS state of the world"
    );
    print!("{:<44}", "");
    for name in &names {
        print!("{name:>14}");
    }
    println!();
    for (index, type_url) in ALL_TYPES.iter().enumerate() {
        print!(
            "{:<44}",
            format!("{} response -> ACK (ms)", short_type(type_url))
        );
        for outcome in outcomes {
            print!("{:>14}", ms(outcome.response_to_ack[index]));
        }
        println!();
    }
    print!("{:<44}", "first CDS response -> RDS ACK (ms)");
    for outcome in outcomes {
        print!("{:>14}", ms(outcome.total));
    }
    println!();
    print!("{:<44}", "proxy CPU, CDS response -> RDS ACK (ms)");
    for outcome in outcomes {
        print!("{:>14}", ms(outcome.push_cpu));
    }
    println!();
    print!("{:<44}", "RSS once serving (MiB)");
    for outcome in outcomes {
        print!("{:>14}", format!("{:.1}", outcome.rss_kib as f64 / 1024.0));
    }
    println!();
    print!("{:<44}", "server.stats_overflow (stats not counted)");
    for outcome in outcomes {
        let value = outcome
            .stats_overflow
            .map_or_else(|| "-".to_string(), |v| v.to_string());
        print!("{value:>14}");
    }
    println!();
    // The first request and the ACK are 2; more means names subscribed in steps or NACKs.
    if outcomes.iter().any(|o| o.requests.iter().any(|&r| r > 2)) {
        print!("{:<44}", "requests per type up to the ACK (C/E/L/R)");
        for outcome in outcomes {
            let counts: Vec<String> = outcome.requests.iter().map(usize::to_string).collect();
            print!("{:>14}", counts.join("/"));
        }
        println!();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let echo = EchoUpstream::start("c0").await?;
    let started = Instant::now();
    let snapshot = Snapshot::generate(args.clusters, echo.addr())?;
    eprintln!(
        "generated {} clusters, {} assignments and {} routes in {} ms",
        args.clusters,
        args.clusters,
        args.clusters,
        ms(started.elapsed())
    );
    let mut outcomes = Vec::new();
    for binary in &args.binaries {
        eprintln!("running {} ...", binary.display());
        let outcome = run(binary, &snapshot, args.timeout)
            .await
            .with_context(|| format!("run of {}", binary.display()))?;
        outcomes.push(outcome);
    }
    print_table(args.clusters, &outcomes);
    Ok(())
}
