//! `filter` on ordinary access logs (connection manager and tcp_proxy): every
//! `AccessLogFilter` but `extension_filter`. Every logger of a test writes to one file
//! (Envoy and Baton share a sink per path, written in logger order), each line prefixed
//! with its logger's name, and an unfiltered `end` logger comes last: once the `end`
//! line of the last request is there, everything the filtered loggers wrote is too.
//!
//! Envoy 1.40's answers, measured with these tests: `traceable_filter` never passes
//! without tracing; `runtime_filter` samples `percent_sampled` (0% when unset) unless the
//! runtime key says otherwise, and a key set through `/runtime_modify` applies to the
//! next request; `grpc_status_filter` maps an HTTP status when there is no `grpc-status`
//! (503: UNAVAILABLE; 200: UNKNOWN); `metadata_filter` on a key no one set gives
//! `match_if_key_not_found` (default true); `log_type_filter` sees `DownstreamEnd` for
//! the connection manager and `TcpConnectionEnd` for tcp_proxy; `status_code_filter` and
//! `duration_filter` compare with their value's `runtime_key` when the runtime has it
//! (set through `/runtime_modify`), else with its `default_value`.

use std::path::Path;
use std::time::Duration;

use baton_tests::config::{
    bootstrap, hcm_of, listener, simple_proxy, static_cluster, tcp_proxy_filter,
    FILE_ACCESS_LOG_TYPE,
};
use baton_tests::{eventually, get, EchoUpstream, Proxy, RawHttp1, TcpServer, TempDir};
use serde_json::{json, Value};

const LOG_WAIT: Duration = Duration::from_secs(15);

/// A file logger named `name` (its line prefix) with `filter` (None: unfiltered).
fn logger(path: &Path, name: &str, filter: Option<Value>) -> Value {
    let mut log = json!({ "name": "envoy.access_loggers.file",
        "typed_config": { "@type": FILE_ACCESS_LOG_TYPE, "path": path.display().to_string(),
            "log_format": { "text_format": format!("{name} %RESPONSE_CODE%\n") } } });
    if let Some(filter) = filter {
        log["filter"] = filter;
    }
    log
}

/// The file's lines once it holds `ends` lines from the `end` logger.
async fn lines_after(path: &Path, ends: usize) -> anyhow::Result<Vec<String>> {
    eventually(LOG_WAIT, || async move {
        let text = tokio::fs::read_to_string(path).await.unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        let seen = lines.iter().filter(|l| l.starts_with("end ")).count();
        Ok((seen >= ends).then_some(lines))
    })
    .await
}

#[tokio::test]
async fn connection_manager_logs_pass_their_filters() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let dir = TempDir::new()?;
    let log = dir.join("access.log");
    let mut cfg = simple_proxy(&[upstream.addr()]);
    cfg["layered_runtime"] = json!({ "layers": [
        { "name": "static", "static_layer": {} },
        { "name": "admin", "admin_layer": {} } ] });
    hcm_of(&mut cfg, 0)["access_log"] = json!([
        logger(
            &log,
            "errors",
            Some(json!({ "status_code_filter": { "comparison":
            { "op": "GE", "value": { "default_value": 400, "runtime_key": "log.min_status" } } } }))
        ),
        logger(
            &log,
            "slow",
            Some(json!({ "duration_filter": { "comparison":
            { "op": "GE", "value": { "default_value": 100000, "runtime_key": "log.min_ms" } } } }))
        ),
        logger(&log, "traced", Some(json!({ "traceable_filter": {} }))),
        logger(
            &log,
            "sampled",
            Some(json!({ "runtime_filter": { "runtime_key": "log.sample" } }))
        ),
        logger(
            &log,
            "unavailable",
            Some(json!({ "grpc_status_filter": { "statuses": ["UNAVAILABLE"] } }))
        ),
        logger(
            &log,
            "not_unknown",
            Some(json!({ "grpc_status_filter": { "statuses": ["UNKNOWN"], "exclude": true } }))
        ),
        logger(
            &log,
            "metadata_absent",
            Some(json!({ "metadata_filter": { "matcher": {
            "filter": "example", "path": [{ "key": "k" }], "value": { "string_match": { "exact": "v" } } } } }))
        ),
        logger(
            &log,
            "metadata_strict",
            Some(json!({ "metadata_filter": { "matcher": {
            "filter": "example", "path": [{ "key": "k" }], "value": { "string_match": { "exact": "v" } } },
            "match_if_key_not_found": false } }))
        ),
        logger(
            &log,
            "downstream_end",
            Some(json!({ "log_type_filter": { "types": ["DownstreamEnd"] } }))
        ),
        logger(
            &log,
            "tcp_end",
            Some(json!({ "log_type_filter": { "types": ["TcpConnectionEnd"] } }))
        ),
        logger(
            &log,
            "and",
            Some(json!({ "and_filter": { "filters": [
            { "status_code_filter": { "comparison": { "op": "EQ", "value": { "default_value": 200, "runtime_key": "k1" } } } },
            { "log_type_filter": { "types": ["DownstreamEnd"], "exclude": true } } ] } }))
        ),
        logger(&log, "end", None),
    ]);
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    assert_eq!(get(addr, "/?status=503").await?.status, 503);
    assert_eq!(get(addr, "/").await?.status, 200);
    let lines = lines_after(&log, 2).await?;
    assert_eq!(
        lines,
        [
            "errors 503",
            "unavailable 503",
            "not_unknown 503",
            "metadata_absent 503",
            "downstream_end 503",
            "end 503",
            "metadata_absent 200",
            "downstream_end 200",
            "end 200",
        ]
    );
    // The runtime key now samples every request.
    let resp = proxy
        .admin_request("POST", "/runtime_modify?log.sample=100")
        .await?;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    assert_eq!(get(addr, "/").await?.status, 200);
    let lines = lines_after(&log, 3).await?;
    assert_eq!(
        lines[9..],
        [
            "sampled 200",
            "metadata_absent 200",
            "downstream_end 200",
            "end 200"
        ]
    );
    // The comparison filters' runtime keys replace their default values.
    for key in ["log.min_status=200", "log.min_ms=0"] {
        let resp = proxy
            .admin_request("POST", &format!("/runtime_modify?{key}"))
            .await?;
        assert_eq!(resp.status, 200, "{}", resp.body_text());
    }
    assert_eq!(get(addr, "/").await?.status, 200);
    let lines = lines_after(&log, 4).await?;
    assert_eq!(
        lines[13..],
        [
            "errors 200",
            "slow 200",
            "sampled 200",
            "metadata_absent 200",
            "downstream_end 200",
            "end 200"
        ]
    );
    Ok(())
}

#[tokio::test]
async fn tcp_proxy_logs_see_the_tcp_connection_end_type() -> anyhow::Result<()> {
    let upstream = TcpServer::echo().await?;
    let dir = TempDir::new()?;
    let log = dir.join("tcp.log");
    let mut filter = tcp_proxy_filter("echo");
    filter["typed_config"]["access_log"] = json!([
        logger(
            &log,
            "tcp_end",
            Some(json!({ "log_type_filter": { "types": ["TcpConnectionEnd"] } }))
        ),
        logger(
            &log,
            "downstream_end",
            Some(json!({ "log_type_filter": { "types": ["DownstreamEnd"] } }))
        ),
        logger(&log, "end", None),
    ]);
    let cfg = bootstrap(
        vec![listener("tcp", vec![filter])],
        vec![static_cluster("echo", &[upstream.addr()])],
    );
    let proxy = Proxy::start(&cfg).await?;
    let mut conn = RawHttp1::connect(proxy.listener_addr("tcp").await?).await?;
    conn.send(b"ping").await?;
    assert_eq!(conn.read_exact_bytes(4).await?, b"ping");
    conn.shutdown_write().await?;
    conn.read_to_close().await?;
    let lines = lines_after(&log, 1).await?;
    assert_eq!(lines, ["tcp_end 0", "end 0"]);
    Ok(())
}
