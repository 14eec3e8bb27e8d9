//! Which stats exist, by name, next to Envoy 1.40's: a bootstrap with an HTTP listener, a
//! tcp_proxy listener and a static cluster, after one request through each, read through
//! `/stats`. Envoy's names are a fixture (`tests/fixtures/stat_names/envoy.txt`); the
//! names Baton does not have yet (`baton_missing.txt`) and the ones only Baton has
//! (`baton_only.txt`) are listed, so the gap is measured and can only shrink: a name
//! Baton gains must leave the missing list, a name it loses fails the test.
//!
//! Names are normalised: listener ports become `PORT`. Against Envoy
//! (`BATON_BIN=.../envoy`) the test checks the fixture itself; with `RECORD_STAT_NAMES=1`
//! it rewrites `envoy.txt` (run against Envoy) or the two lists (run against Baton).

use std::collections::BTreeSet;
use std::path::PathBuf;

use baton_tests::config::{
    bootstrap, http_listener, listener, prefix_route, route_config, static_cluster,
    tcp_proxy_filter, vhost,
};
use baton_tests::{is_envoy, EchoUpstream, Proxy, RawHttp1, TcpServer};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/stat_names")
        .join(name)
}

fn read_set(name: &str) -> anyhow::Result<BTreeSet<String>> {
    let text = std::fs::read_to_string(fixture(name))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// `listener.127.0.0.1_40123.x` -> `listener.127.0.0.1_PORT.x`.
fn normalise(name: &str) -> String {
    let Some(rest) = name.strip_prefix("listener.127.0.0.1_") else {
        return name.to_string();
    };
    match rest.find('.') {
        Some(dot) if rest[..dot].bytes().all(|b| b.is_ascii_digit()) => {
            format!("listener.127.0.0.1_PORT{}", &rest[dot..])
        }
        _ => name.to_string(),
    }
}

/// Every stat name `/stats` shows (counters, gauges, text readouts, histograms).
async fn stat_names(proxy: &Proxy) -> anyhow::Result<BTreeSet<String>> {
    let body = proxy.admin_request("GET", "/stats").await?.body_text();
    Ok(body
        .lines()
        .filter_map(|l| l.split_once(": ").map(|(name, _)| normalise(name)))
        .collect())
}

fn sorted(set: &BTreeSet<String>) -> String {
    set.iter().map(|n| format!("{n}\n")).collect()
}

#[tokio::test]
async fn stat_names_match_envoys_but_for_the_listed_gap() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("u1").await?;
    let tcp_upstream = TcpServer::echo().await?;
    let config = bootstrap(
        vec![
            http_listener(
                "http",
                route_config(vec![vhost(
                    "all",
                    &["*"],
                    vec![prefix_route("/", "backend")],
                )]),
            ),
            listener("tcp", vec![tcp_proxy_filter("tcp_backend")]),
        ],
        vec![
            static_cluster("backend", &[upstream.addr()]),
            static_cluster("tcp_backend", &[tcp_upstream.addr()]),
        ],
    );
    let proxy = Proxy::start(&config).await?;
    let mut http = RawHttp1::connect(proxy.listener_addr("http").await?).await?;
    http.send_request("GET", "/", &[], b"").await?;
    assert_eq!(http.read_response().await?.status, 200);
    drop(http);
    let mut tcp = tokio::net::TcpStream::connect(proxy.listener_addr("tcp").await?).await?;
    tcp.set_nodelay(true)?;
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        tcp.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        tokio::time::timeout(baton_tests::IO_TIMEOUT, tcp.read_exact(&mut buf)).await??;
        assert_eq!(&buf, b"ping");
    }
    drop(tcp);

    let names = stat_names(&proxy).await?;
    if is_envoy() {
        if std::env::var_os("RECORD_STAT_NAMES").is_some() {
            std::fs::create_dir_all(fixture(""))?;
            std::fs::write(fixture("envoy.txt"), sorted(&names))?;
        }
        let recorded = read_set("envoy.txt")?;
        let gone: Vec<_> = recorded.difference(&names).collect();
        let new: Vec<_> = names.difference(&recorded).collect();
        assert!(
            gone.is_empty() && new.is_empty(),
            "Envoy's names changed: gone {gone:?}, new {new:?}"
        );
        return Ok(());
    }
    let envoy = read_set("envoy.txt")?;
    let now_missing: BTreeSet<String> = envoy.difference(&names).cloned().collect();
    let now_only: BTreeSet<String> = names.difference(&envoy).cloned().collect();
    if std::env::var_os("RECORD_STAT_NAMES").is_some() {
        std::fs::write(fixture("baton_missing.txt"), sorted(&now_missing))?;
        std::fs::write(fixture("baton_only.txt"), sorted(&now_only))?;
    }
    let missing = read_set("baton_missing.txt")?;
    let only = read_set("baton_only.txt")?;
    let newly_missing: Vec<_> = now_missing.difference(&missing).collect();
    let gained: Vec<_> = missing.difference(&now_missing).collect();
    assert!(
        newly_missing.is_empty(),
        "Envoy has these and Baton lost them: {newly_missing:?}"
    );
    assert!(
        gained.is_empty(),
        "Baton has these now: remove them from baton_missing.txt: {gained:?}"
    );
    assert_eq!(
        sorted(&now_only),
        sorted(&only),
        "names only Baton shows changed (baton_only.txt)"
    );
    Ok(())
}

/// Values of the server-level stats Envoy 1.40 shows on a plain bootstrap (measured):
/// the workers started, the initialisation time recorded once, the counters of events
/// neither proxy has here at 0.
#[tokio::test]
async fn server_level_values_match_envoys() -> anyhow::Result<()> {
    let proxy = Proxy::start(&baton_tests::config::direct_ok_proxy()).await?;
    assert_eq!(
        proxy.stat("listener_manager.workers_started").await?,
        Some(1)
    );
    for zero in [
        "server.static_unknown_fields",
        "server.debug_assertion_failures",
        "server.envoy_bug_failures",
        "server.envoy_notifications",
        "server.dropped_stat_flushes",
        "server.wip_protos",
    ] {
        assert_eq!(proxy.stat(zero).await?, Some(0), "{zero}");
    }
    let physical = proxy.stat("server.memory_physical_size").await?;
    assert!(physical.is_some_and(|bytes| bytes > 0), "{physical:?}");
    // Recorded once (Envoy's histograms show after a flush, every 5 s).
    let count = baton_tests::eventually(std::time::Duration::from_secs(15), || async {
        let body = proxy
            .admin_request("GET", "/stats/prometheus")
            .await?
            .body_text();
        Ok(body
            .lines()
            .find_map(|l| l.strip_prefix("envoy_server_initialization_time_ms_count{} "))
            .filter(|n| *n != "0")
            .map(str::to_string))
    })
    .await?;
    assert_eq!(count, "1");
    Ok(())
}

/// Envoy's per-worker listener stats: every worker has `listener.<address>.worker_<n>.*`
/// from the start, and they add up to the listener's own counts.
#[tokio::test]
async fn per_worker_listener_counts_add_up() -> anyhow::Result<()> {
    let proxy = Proxy::start(&baton_tests::config::direct_ok_proxy()).await?;
    let addr = proxy.listener_addr("http").await?;
    // Named after the configured address (port 0), as Envoy names it.
    let prefix = "listener.127.0.0.1_0".to_string();
    let workers = |name: &'static str| {
        let proxy = &proxy;
        let prefix = prefix.clone();
        async move {
            let mut sum = 0;
            for worker in 0..2 {
                let stat = format!("{prefix}.worker_{worker}.{name}");
                sum += proxy
                    .stat(&stat)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no {stat}"))?;
            }
            anyhow::Ok(sum)
        }
    };
    assert_eq!(workers("downstream_cx_total").await?, 0);
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut http = RawHttp1::connect(addr).await?;
        http.send_request("GET", "/", &[], b"").await?;
        assert_eq!(http.read_response().await?.status, 200);
        open.push(http);
    }
    let total = proxy.stat(&format!("{prefix}.downstream_cx_total")).await?;
    assert_eq!(total, Some(4));
    assert_eq!(workers("downstream_cx_total").await?, 4);
    assert_eq!(workers("downstream_cx_active").await?, 4);
    drop(open);
    baton_tests::eventually(baton_tests::IO_TIMEOUT, || async {
        Ok((workers("downstream_cx_active").await? == 0).then_some(()))
    })
    .await?;
    assert_eq!(workers("downstream_cx_total").await?, 4);
    Ok(())
}
