//! The load client of `bench/reload-under-load` (ignored as a test; the script runs it with
//! `--ignored`): keeps HTTP/1.1 keep-alive, HTTP/1.1 new-connection-per-request and HTTP/2
//! clients busy against baton while doing `RELOADS` hot restarts, and prints, per reload,
//! the requests served, failed and the connections refused for each kind, then the totals.
//! It measures and reports; it asserts nothing.
//!
//! Settings (environment): `RELOADS` (20), `CLIENTS` per kind (2), `SETTLE_MS` between
//! reloads (300), `BATON_CONCURRENCY` (2).

mod hot_restart_support;

use std::time::{Duration, Instant};

use baton_tests::config::simple_proxy;
use baton_tests::EchoUpstream;
use hot_restart_support::{ClientKind, Load, Service, EXIT_TIMEOUT};

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn kind_name(kind: ClientKind) -> &'static str {
    match kind {
        ClientKind::Http1KeepAlive => "h1-keepalive",
        ClientKind::Http1NewConnection => "h1-newconn",
        ClientKind::Http2 => "h2",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by bench/reload-under-load"]
async fn reload_under_load() -> anyhow::Result<()> {
    let reloads = setting("RELOADS", 20);
    let clients = usize::try_from(setting("CLIENTS", 2))?;
    let settle = Duration::from_millis(setting("SETTLE_MS", 300));
    let concurrency = setting("BATON_CONCURRENCY", 2).to_string();
    let extra = ["--concurrency", concurrency.as_str()];

    let upstream = EchoUpstream::start("bench").await?;
    let svc = Service::new()?;
    let config = svc.write_config("config", &simple_proxy(&[upstream.addr()]))?;
    let mut live = svc.start(0, &config, &extra).await?;
    let addr = live.listener_addr("http").await?;
    let kinds = [
        ClientKind::Http1KeepAlive,
        ClientKind::Http1NewConnection,
        ClientKind::Http2,
    ];
    let load = Load::start(addr, &kinds, clients);
    tokio::time::sleep(settle).await;

    println!(
        "reload  live_ms  {:>34}  {:>34}  {:>34}",
        "h1-keepalive served/failed/refused",
        "h1-newconn served/failed/refused",
        "h2 served/failed/refused"
    );
    let mut before = load.snapshot();
    let mut live_ms_total = 0u128;
    for n in 1..=reloads {
        let epoch = u32::try_from(n)?;
        let started = Instant::now();
        let next = svc.start(epoch, &config, &extra).await?;
        let live_ms = started.elapsed().as_millis();
        live_ms_total += live_ms;
        let mut old = std::mem::replace(&mut live, next);
        old.wait_exit(EXIT_TIMEOUT).await?;
        drop(old);
        tokio::time::sleep(settle).await;
        let after = load.snapshot();
        let mut row = format!("{n:>6}  {live_ms:>7}");
        for ((_, s1, f1, r1), (_, s0, f0, r0)) in after.iter().zip(&before) {
            row.push_str(&format!(
                "  {:>34}",
                format!("{}/{}/{}", s1 - s0, f1 - f0, r1 - r0)
            ));
        }
        println!("{row}");
        before = after;
    }
    let reports = load.finish().await;
    println!(
        "\ntotals over {reloads} reloads (mean time to LIVE {} ms):",
        live_ms_total / u128::from(reloads.max(1))
    );
    for (kind, r) in &reports {
        println!(
            "  {:<13} served {:>8}  failed {:>4}  refused {:>4}  connection-close {:>6}  h2-reconnects {:>5}  h2-retried-unprocessed {:>4}",
            kind_name(*kind),
            r.served,
            r.failed,
            r.refused,
            r.connection_close,
            r.reconnects,
            r.retried
        );
        for e in r.errors.iter().take(5) {
            println!("      e.g. {e}");
        }
    }
    let failed: u64 = reports.iter().map(|(_, r)| r.failed + r.refused).sum();
    println!("RESULT reloads={reloads} failed_or_refused={failed}");
    Ok(())
}
