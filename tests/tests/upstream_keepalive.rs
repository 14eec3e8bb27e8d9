//! A cluster's `upstream_connection_options.tcp_keepalive` is on the proxy's upstream
//! socket: `ss` shows the kernel's keepalive timer on it, counting down from
//! `keepalive_time` (not from the system's 2 h default), and a cluster without it has
//! no keepalive timer (Envoy does not turn keepalive on by itself).

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use baton_tests::config::simple_proxy;
use baton_tests::{eventually, get, EchoUpstream, Proxy};
use serde_json::json;

/// `ss` lines of established TCP sockets towards `upstream` (the proxy's side).
fn sockets_to(upstream: SocketAddr) -> anyhow::Result<Vec<String>> {
    let filter = format!("( dport = :{} )", upstream.port());
    let out = Command::new("ss")
        .args(["-tno", "state", "established", &filter])
        .output()?;
    anyhow::ensure!(out.status.success(), "ss failed");
    let peer = format!("{upstream}");
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&peer))
        .map(str::to_string)
        .collect())
}

/// Seconds left on the keepalive timer of an `ss -o` line (`timer:(keepalive,4min59sec,0)`).
fn keepalive_secs(line: &str) -> Option<u64> {
    let rest = line.split("timer:(keepalive,").nth(1)?;
    let time = rest.split(',').next()?;
    let (mins, rest) = match time.split_once("min") {
        Some((m, rest)) => (m.parse::<u64>().ok()?, rest),
        None => (0, time),
    };
    let secs = match rest.strip_suffix("sec") {
        Some(s) if !s.is_empty() => s.parse::<u64>().ok()?,
        _ => 0,
    };
    Some(mins * 60 + secs)
}

/// Sends one request through a proxy for `cluster_extra`, then returns the `ss` lines of
/// its pooled connection to the upstream.
async fn upstream_socket(cluster_extra: serde_json::Value) -> anyhow::Result<Vec<String>> {
    let upstream = EchoUpstream::start("a").await?;
    let mut config = simple_proxy(&[upstream.addr()]);
    baton_tests::config::merge(
        &mut config["static_resources"]["clusters"][0],
        cluster_extra,
    );
    let proxy = Proxy::start(&config).await?;
    let addr = proxy.listener_addr("http").await?;
    assert_eq!(get(addr, "/").await?.status, 200);
    let lines = eventually(Duration::from_secs(5), || async {
        let lines = sockets_to(upstream.addr())?;
        Ok((!lines.is_empty()).then_some(lines))
    })
    .await?;
    drop(proxy);
    Ok(lines)
}

#[tokio::test]
async fn tcp_keepalive_is_on_the_upstream_socket() -> anyhow::Result<()> {
    let lines = upstream_socket(json!({
        "upstream_connection_options": {
            "tcp_keepalive": { "keepalive_time": 300, "keepalive_interval": 20, "keepalive_probes": 4 }
        }
    }))
    .await?;
    for line in &lines {
        let secs =
            keepalive_secs(line).ok_or_else(|| anyhow::anyhow!("no keepalive timer: {line}"))?;
        assert!((200..=300).contains(&secs), "{line}");
    }
    Ok(())
}

#[tokio::test]
async fn no_keepalive_without_the_option() -> anyhow::Result<()> {
    let lines = upstream_socket(json!({})).await?;
    for line in &lines {
        assert!(!line.contains("keepalive"), "{line}");
    }
    Ok(())
}

#[test]
fn keepalive_timer_parses() {
    assert_eq!(
        keepalive_secs("ESTAB 0 0 127.0.0.1:1 127.0.0.1:2 timer:(keepalive,4min59sec,0)"),
        Some(299)
    );
    assert_eq!(keepalive_secs("x timer:(keepalive,59sec,0)"), Some(59));
    assert_eq!(keepalive_secs("x timer:(keepalive,5min,0)"), Some(300));
    assert_eq!(keepalive_secs("x"), None);
}
