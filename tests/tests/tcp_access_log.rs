//! tcp_proxy `access_log`: one entry per downstream connection, written when it closes,
//! with Envoy's values for a TCP stream: per-connection byte counts, upstream host and
//! cluster, duration, response flags for failures (`UF,URX`, `UH`), `-`/0 for HTTP-only
//! fields, and Envoy's default format when none is given.

use std::path::Path;
use std::time::Duration;

use baton_tests::config::{
    bootstrap, free_port, listener, static_cluster, tcp_proxy_filter, FILE_ACCESS_LOG_TYPE,
};
use baton_tests::{eventually, Proxy, RawHttp1, TcpServer, TempDir};
use serde_json::{json, Value};

/// Bound for a line to reach the file (the first write after opening is immediate).
const LOG_WAIT: Duration = Duration::from_secs(15);

const FORMAT: &str = "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% \
%UPSTREAM_HOST% %UPSTREAM_CLUSTER% %PROTOCOL% %REQ(:PATH)% %DOWNSTREAM_LOCAL_ADDRESS%\n";

fn logged_tcp_proxy(cluster: &str, log: &Path, format: Option<Value>) -> Value {
    let mut filter = tcp_proxy_filter(cluster);
    let mut typed = json!({ "@type": FILE_ACCESS_LOG_TYPE, "path": log.display().to_string() });
    if let Some(format) = format {
        typed["log_format"] = format;
    }
    filter["typed_config"]["access_log"] =
        json!([{ "name": "envoy.access_loggers.file", "typed_config": typed }]);
    filter
}

fn text(format: &str) -> Option<Value> {
    Some(json!({ "text_format": format }))
}

async fn first_line(path: &Path) -> anyhow::Result<String> {
    eventually(LOG_WAIT, || async move {
        let text = tokio::fs::read_to_string(path).await.unwrap_or_default();
        Ok(text.lines().next().map(str::to_string))
    })
    .await
}

#[tokio::test]
async fn connection_logged_on_close_with_its_byte_counts() -> anyhow::Result<()> {
    let upstream = TcpServer::echo().await?;
    let dir = TempDir::new()?;
    let log = dir.join("tcp.log");
    let cfg = bootstrap(
        vec![listener(
            "tcp",
            vec![logged_tcp_proxy("echo", &log, text(FORMAT))],
        )],
        vec![static_cluster("echo", &[upstream.addr()])],
    );
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("tcp").await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(b"hello over tcp").await?;
    assert_eq!(conn.read_exact_bytes(14).await?, b"hello over tcp");
    conn.send(b"and more").await?;
    conn.shutdown_write().await?;
    assert_eq!(conn.read_to_close().await?, b"and more");
    let line = first_line(&log).await?;
    assert_eq!(
        line,
        format!("0 - 22 22 {} echo - - {addr}", upstream.addr())
    );
    Ok(())
}

#[tokio::test]
async fn default_format_for_a_tcp_connection() -> anyhow::Result<()> {
    let upstream = TcpServer::echo().await?;
    let dir = TempDir::new()?;
    let log = dir.join("tcp.log");
    let cfg = bootstrap(
        vec![listener("tcp", vec![logged_tcp_proxy("echo", &log, None)])],
        vec![static_cluster("echo", &[upstream.addr()])],
    );
    let proxy = Proxy::start(&cfg).await?;
    let mut conn = RawHttp1::connect(proxy.listener_addr("tcp").await?).await?;
    conn.send(b"ping").await?;
    conn.shutdown_write().await?;
    assert_eq!(conn.read_to_close().await?, b"ping");
    let line = first_line(&log).await?;
    // [start] "- - -" 0 - 4 4 duration - "-" "-" "-" "-" "upstream"
    let (start, rest) = line
        .split_once("] ")
        .ok_or_else(|| anyhow::anyhow!("no start time in {line:?}"))?;
    assert!(start.starts_with('['), "{line}");
    let fields: Vec<&str> = rest.split(' ').collect();
    assert_eq!(
        &fields[..7],
        ["\"-", "-", "-\"", "0", "-", "4", "4"],
        "{line}"
    );
    assert!(fields[7].parse::<u64>().is_ok(), "duration in {line}");
    assert_eq!(
        &fields[8..],
        [
            "-",
            "\"-\"",
            "\"-\"",
            "\"-\"",
            "\"-\"",
            &format!("\"{}\"", upstream.addr())
        ],
        "{line}"
    );
    Ok(())
}

#[tokio::test]
async fn refused_upstream_logged_with_uf_and_urx() -> anyhow::Result<()> {
    let closed = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let dir = TempDir::new()?;
    let log = dir.join("tcp.log");
    let cfg = bootstrap(
        vec![listener(
            "tcp",
            vec![logged_tcp_proxy("down", &log, text(FORMAT))],
        )],
        vec![static_cluster("down", &[closed])],
    );
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("tcp").await?;
    let mut conn = RawHttp1::connect(addr).await?;
    assert!(conn.read_to_close().await?.is_empty());
    let line = first_line(&log).await?;
    assert_eq!(line, format!("0 UF,URX 0 0 {closed} down - - {addr}"));
    Ok(())
}

#[tokio::test]
async fn cluster_without_hosts_logged_with_uh_as_json() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let log = dir.join("tcp.log");
    let json_format = json!({ "json_format": {
        "flags": "%RESPONSE_FLAGS%", "code": "%RESPONSE_CODE%", "received": "%BYTES_RECEIVED%",
        "host": "%UPSTREAM_HOST%", "cluster": "%UPSTREAM_CLUSTER%",
    } });
    let cfg = bootstrap(
        vec![listener(
            "tcp",
            vec![logged_tcp_proxy("empty", &log, Some(json_format))],
        )],
        vec![static_cluster("empty", &[])],
    );
    let proxy = Proxy::start(&cfg).await?;
    let mut conn = RawHttp1::connect(proxy.listener_addr("tcp").await?).await?;
    assert!(conn.read_to_close().await?.is_empty());
    let entry: Value = serde_json::from_str(&first_line(&log).await?)?;
    assert_eq!(
        entry,
        json!({ "flags": "UH", "code": 0, "received": 0, "host": null, "cluster": "empty" })
    );
    Ok(())
}
