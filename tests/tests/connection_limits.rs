//! Connection limits, as Envoy 1.40 applies them (checked side by side):
//! - `overload_manager` with `envoy.resource_monitors.global_downstream_max_connections`:
//!   a connection over `max_active_downstream_connections` is closed at accept without a
//!   byte and counted in `listener.<prefix>.downstream_global_cx_overflow` (not in
//!   `downstream_cx_total`). Listeners with `ignore_global_conn_limit` or
//!   `bypass_overload_manager` are neither limited nor counted; admin is not counted.
//! - `envoy.filters.network.connection_limit` before the terminal filter: a connection
//!   over `max_connections` on the chain is closed after `delay` without an answer;
//!   `connection_limit.<stat_prefix>.limited_connections` counts it,
//!   `active_connections` the admitted ones. A tcp_proxy behind it opens no upstream
//!   connection for a refused one.
//! - Out of file descriptors (RLIMIT_NOFILE lowered under the proxy), the accept loops
//!   back off; once the extra clients go away, normal clients are served again.

use std::net::SocketAddr;
use std::time::Duration;

use baton_tests::config::{bootstrap, direct_route, hcm, hcm_filter, route_config, vhost};
use baton_tests::eventually::eventually;
use baton_tests::{Proxy, RawHttp1, TcpServer};
use serde_json::{json, Value};

const CONNECTION_LIMIT_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit";
const DOWNSTREAM_CONNECTIONS_TYPE: &str = "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig";

fn stat(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok())
}

async fn stat_value(proxy: &Proxy, name: &str) -> anyhow::Result<Option<u64>> {
    let resp = proxy.admin_request("GET", "/stats").await?;
    Ok(stat(&resp.body_text(), name))
}

/// A listener named `name` (stat prefix `name`) answering 200 `ok` on every path.
fn ok_listener(name: &str, extra: Value) -> Value {
    let mut l = json!({
        "name": name,
        "stat_prefix": name,
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [ { "filters": [
            hcm_filter(hcm(route_config(vec![vhost("all", &["*"], vec![direct_route("/", 200, "ok")])]))),
        ] } ],
    });
    if let (Some(l), Some(extra)) = (l.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            l.insert(k.clone(), v.clone());
        }
    }
    l
}

fn global_limit(max: u64) -> Value {
    json!({
        "resource_monitors": [ {
            "name": "envoy.resource_monitors.global_downstream_max_connections",
            "typed_config": {
                "@type": DOWNSTREAM_CONNECTIONS_TYPE,
                "max_active_downstream_connections": max,
            },
        } ],
    })
}

fn connection_limit_filter(max: u64, delay: &str) -> Value {
    json!({
        "name": "envoy.filters.network.connection_limit",
        "typed_config": {
            "@type": CONNECTION_LIMIT_TYPE,
            "stat_prefix": "limit",
            "max_connections": max,
            "delay": delay,
        },
    })
}

/// A keep-alive connection that got its 200.
async fn served(addr: SocketAddr) -> anyhow::Result<RawHttp1> {
    let mut c = RawHttp1::connect(addr).await?;
    c.send_request("GET", "/", &[], b"").await?;
    let resp = c.read_response().await?;
    anyhow::ensure!(resp.status == 200, "status {}", resp.status);
    Ok(c)
}

/// A connection the proxy closes without answering its request.
async fn refused(addr: SocketAddr) -> anyhow::Result<()> {
    let mut c = RawHttp1::connect(addr).await?;
    // The proxy may already have closed it: a failed write is fine too.
    let _ = c.send_request("GET", "/", &[], b"").await;
    let bytes = c.read_to_close().await?;
    anyhow::ensure!(
        bytes.is_empty(),
        "expected a close without an answer, got {:?}",
        String::from_utf8_lossy(&bytes)
    );
    Ok(())
}

/// Waits until a new connection to `addr` is served again.
async fn served_again(addr: SocketAddr) -> anyhow::Result<RawHttp1> {
    eventually(Duration::from_secs(10), || async {
        Ok(served(addr).await.ok())
    })
    .await
}

#[tokio::test]
async fn global_limit_closes_connections_over_it_at_accept() -> anyhow::Result<()> {
    let mut config = bootstrap(
        vec![
            ok_listener("limited", json!({})),
            ok_listener("ignoring", json!({ "ignore_global_conn_limit": true })),
            ok_listener("bypassing", json!({ "bypass_overload_manager": true })),
        ],
        vec![],
    );
    config["overload_manager"] = global_limit(2);
    let proxy = Proxy::start(&config).await?;
    let limited = proxy.listener_addr("limited").await?;
    let ignoring = proxy.listener_addr("ignoring").await?;
    let bypassing = proxy.listener_addr("bypassing").await?;

    // Listeners that ignore the limit are not counted: two of theirs leave room for two.
    let _free = (served(ignoring).await?, served(bypassing).await?);
    let first = served(limited).await?;
    let _second = served(limited).await?;
    refused(limited).await?;
    // At the limit, the other listeners and admin still serve.
    let _more_free = (served(ignoring).await?, served(bypassing).await?);
    assert_eq!(proxy.admin_request("GET", "/ready").await?.status, 200);

    assert_eq!(
        stat_value(&proxy, "listener.limited.downstream_global_cx_overflow").await?,
        Some(1)
    );
    assert_eq!(
        stat_value(&proxy, "listener.limited.downstream_cx_total").await?,
        Some(2),
        "a refused connection is not counted as accepted"
    );
    assert_eq!(
        stat_value(&proxy, "listener.ignoring.downstream_global_cx_overflow").await?,
        Some(0)
    );

    // A closed connection frees its slot.
    drop(first);
    let _third = served_again(limited).await?;
    Ok(())
}

#[tokio::test]
async fn connection_limit_filter_closes_connections_over_max_connections() -> anyhow::Result<()> {
    let listener = json!({
        "name": "limited",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [ { "filters": [
            connection_limit_filter(1, "0.2s"),
            hcm_filter(hcm(route_config(vec![vhost("all", &["*"], vec![direct_route("/", 200, "ok")])]))),
        ] } ],
    });
    let proxy = Proxy::start(&bootstrap(vec![listener], vec![])).await?;
    let addr = proxy.listener_addr("limited").await?;

    let first = served(addr).await?;
    refused(addr).await?;
    assert_eq!(
        stat_value(&proxy, "connection_limit.limit.limited_connections").await?,
        Some(1)
    );
    assert_eq!(
        stat_value(&proxy, "connection_limit.limit.active_connections").await?,
        Some(1)
    );

    // Once the proxy sees the close, the slot is free (attempts before that are refused).
    drop(first);
    let _again = served_again(addr).await?;
    Ok(())
}

#[tokio::test]
async fn connection_limit_before_tcp_proxy_opens_no_upstream_for_a_refused_connection(
) -> anyhow::Result<()> {
    let upstream = TcpServer::echo().await?;
    let listener = json!({
        "name": "tcp",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [ { "filters": [
            connection_limit_filter(1, "0s"),
            baton_tests::config::tcp_proxy_filter("echo"),
        ] } ],
    });
    let cluster = baton_tests::config::static_cluster("echo", &[upstream.addr()]);
    let proxy = Proxy::start(&bootstrap(vec![listener], vec![cluster])).await?;
    let addr = proxy.listener_addr("tcp").await?;

    let mut first = RawHttp1::connect(addr).await?;
    first.send(b"ping").await?;
    assert_eq!(first.read_exact_bytes(4).await?, b"ping");
    let mut second = RawHttp1::connect(addr).await?;
    let _ = second.send(b"pong").await;
    assert!(
        second.read_to_close().await?.is_empty(),
        "refused without data"
    );
    assert_eq!(upstream.connections(), 1, "no upstream for the refused one");
    assert_eq!(
        stat_value(&proxy, "connection_limit.limit.limited_connections").await?,
        Some(1)
    );
    Ok(())
}

/// Open file descriptors of `pid`.
fn open_fds(pid: u32) -> anyhow::Result<u64> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64)
}

/// Sets `pid`'s RLIMIT_NOFILE (soft and hard) with util-linux `prlimit`.
fn set_nofile(pid: u32, limit: u64) -> anyhow::Result<()> {
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:{limit}"))
        .status()?;
    anyhow::ensure!(status.success(), "prlimit failed: {status}");
    Ok(())
}

#[tokio::test]
async fn out_of_file_descriptors_the_proxy_recovers_once_clients_go_away() -> anyhow::Result<()> {
    let proxy = Proxy::start(&bootstrap(vec![ok_listener("http", json!({}))], vec![])).await?;
    let addr = proxy.listener_addr("http").await?;
    let _warm = served(addr).await?;
    // Room for a few connections only; more clients than that wait in the accept queue
    // while every accept fails with EMFILE.
    let limit = open_fds(proxy.pid())? + 4;
    set_nofile(proxy.pid(), limit)?;
    let mut extra = Vec::new();
    for _ in 0..32 {
        extra.push(RawHttp1::connect(addr).await?);
    }
    // Let the proxy meet the limit (each client that gets in has sent a request).
    for c in extra.iter_mut() {
        let _ = c.send_request("GET", "/", &[], b"").await;
    }
    eventually(Duration::from_secs(10), || async {
        Ok((open_fds(proxy.pid())? >= limit - 1).then_some(()))
    })
    .await?;
    drop(extra);
    drop(_warm);

    let _served = served_again(addr).await?;
    assert!(
        std::path::Path::new(&format!("/proc/{}", proxy.pid())).exists(),
        "the proxy lived"
    );
    Ok(())
}
