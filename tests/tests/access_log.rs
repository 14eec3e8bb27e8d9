//! File access logs from the HTTP connection manager: Envoy's default line format, custom
//! text format strings (`%REQ(X)%`, `%RESP(X)%`, `%RESPONSE_CODE%`, `%RESPONSE_FLAGS%`,
//! `%UPSTREAM_HOST%`, `%BYTES_SENT%`, ...) and JSON format. Logs are flushed asynchronously,
//! so lines are awaited with a bounded wait.

use std::path::Path;
use std::time::Duration;

use baton_tests::config::{hcm_of, simple_proxy, FILE_ACCESS_LOG_TYPE};
use baton_tests::{eventually, get_with, EchoUpstream, Proxy, TempDir};
use serde_json::{json, Value};

/// Bound for a logged line to reach the file (Envoy's periodic flush is 10 s; its first
/// write after opening the file is immediate, which is what these tests rely on).
const LOG_WAIT: Duration = Duration::from_secs(15);

fn file_log(path: &Path, format: Option<Value>) -> Value {
    let mut typed = json!({ "@type": FILE_ACCESS_LOG_TYPE, "path": path.display().to_string() });
    if let Some(format) = format {
        typed["log_format"] = format;
    }
    json!([{ "name": "envoy.access_loggers.file", "typed_config": typed }])
}

async fn lines(path: &Path, count: usize) -> anyhow::Result<Vec<String>> {
    eventually(LOG_WAIT, || async move {
        let text = tokio::fs::read_to_string(path).await.unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        Ok((lines.len() >= count).then_some(lines))
    })
    .await
}

/// A proxy to `upstream` logging in Envoy's default format to `log`.
async fn default_format_proxy(upstream: &EchoUpstream, log: &Path) -> anyhow::Result<Proxy> {
    let mut cfg = simple_proxy(&[upstream.addr()]);
    hcm_of(&mut cfg, 0)["access_log"] = file_log(log, None);
    Proxy::start(&cfg).await
}

#[tokio::test]
async fn default_format_line_shape() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let dir = TempDir::new()?;
    let log = dir.join("access.log");
    let proxy = default_format_proxy(&upstream, &log).await?;
    let addr = proxy.listener_addr("http").await?;
    let resp = get_with(
        addr,
        "/logged?q=1",
        &[("user-agent", "test-agent"), ("x-request-id", "rid-1")],
    )
    .await?;
    assert_eq!(resp.status, 200);
    let lines = lines(&log, 1).await?;
    let line = &lines[0];
    let shape = regex::Regex::new(concat!(
        r#"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] "GET /logged\?q=1 HTTP/1\.1" 200 - 0 (\d+) \d+ \d+ "-" "test-agent" "rid-1" "test" "#,
        r#""127\.0\.0\.1:(\d+)"$"#
    ))?;
    let caps = shape
        .captures(line)
        .ok_or_else(|| anyhow::anyhow!("unexpected line {line:?}"))?;
    assert_eq!(
        caps[1].parse::<usize>()?,
        resp.body.len(),
        "BYTES_SENT is the body size"
    );
    assert_eq!(caps[2].parse::<u16>()?, upstream.port());
    Ok(())
}

const CUSTOM_FORMAT: &str = "%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_HOST% %REQ(X-CUSTOM)% %RESP(X-UPSTREAM-NAME)% %BYTES_SENT%\n";

/// A proxy whose only vhost serves host `test`, logging with `CUSTOM_FORMAT` to `log`.
/// (One request per log file: Envoy flushes later lines only every 10 s.)
async fn custom_format_proxy(upstream: &EchoUpstream, log: &Path) -> anyhow::Result<Proxy> {
    let mut cfg = simple_proxy(&[upstream.addr()]);
    let hcm = hcm_of(&mut cfg, 0);
    hcm["route_config"]["virtual_hosts"][0]["domains"] = json!(["test"]);
    hcm["access_log"] = file_log(
        log,
        Some(json!({ "text_format_source": { "inline_string": CUSTOM_FORMAT } })),
    );
    Proxy::start(&cfg).await
}

#[tokio::test]
async fn custom_text_format() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let dir = TempDir::new()?;
    let log = dir.join("access.log");
    let proxy = custom_format_proxy(&upstream, &log).await?;
    let ok = get_with(
        proxy.listener_addr("http").await?,
        "/ok?body_bytes=5",
        &[("x-custom", "hello")],
    )
    .await?;
    assert_eq!(ok.status, 200);
    let lines = lines(&log, 1).await?;
    assert_eq!(
        lines[0],
        format!("GET /ok?body_bytes=5 200 - {} hello a 5", upstream.addr())
    );
    Ok(())
}

#[tokio::test]
async fn custom_text_format_no_route_flag() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let dir = TempDir::new()?;
    let log = dir.join("access.log");
    let proxy = custom_format_proxy(&upstream, &log).await?;
    let missing = get_with(
        proxy.listener_addr("http").await?,
        "/nothing",
        &[("host", "nowhere")],
    )
    .await?;
    assert_eq!(missing.status, 404);
    let lines = lines(&log, 1).await?;
    assert_eq!(lines[0], "GET /nothing 404 NR - - - 0");
    Ok(())
}

#[tokio::test]
async fn json_format() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let dir = TempDir::new()?;
    let log = dir.join("access.log");
    let mut cfg = simple_proxy(&[upstream.addr()]);
    hcm_of(&mut cfg, 0)["access_log"] = file_log(
        &log,
        Some(json!({ "json_format": {
            "method": "%REQ(:METHOD)%",
            "path": "%REQ(:PATH)%",
            "code": "%RESPONSE_CODE%",
            "flags": "%RESPONSE_FLAGS%",
            "missing": "%REQ(X-NOT-SENT)%",
            "static": "literal",
        } })),
    );
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    assert_eq!(get_with(addr, "/json?status=201", &[]).await?.status, 201);
    let lines = lines(&log, 1).await?;
    let entry: Value = serde_json::from_str(&lines[0])?;
    assert_eq!(entry["method"], "GET");
    assert_eq!(entry["path"], "/json?status=201");
    assert_eq!(entry["code"], 201);
    assert_eq!(entry["flags"], "-");
    assert_eq!(entry["missing"], Value::Null);
    assert_eq!(entry["static"], "literal");
    Ok(())
}

#[tokio::test]
async fn connect_failure_logged_with_uf_flag() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let log = dir.join("access.log");
    let closed = std::net::SocketAddr::from(([127, 0, 0, 1], baton_tests::config::free_port()?));
    let mut cfg = simple_proxy(&[closed]);
    hcm_of(&mut cfg, 0)["access_log"] = file_log(
        &log,
        Some(
            json!({ "text_format_source": { "inline_string": "%RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_HOST%\n" } }),
        ),
    );
    let proxy = Proxy::start(&cfg).await?;
    assert_eq!(
        get_with(proxy.listener_addr("http").await?, "/", &[])
            .await?
            .status,
        503
    );
    let lines = lines(&log, 1).await?;
    assert_eq!(lines[0], format!("503 UF {closed}"));
    Ok(())
}

#[tokio::test]
async fn stdout_access_log() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let mut cfg = simple_proxy(&[upstream.addr()]);
    hcm_of(&mut cfg, 0)["access_log"] = json!([{
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": { "text_format_source": { "inline_string": "stdout-marker %REQ(:PATH)% %RESPONSE_CODE%\n" } },
        },
    }]);
    let proxy = Proxy::start(&cfg).await?;
    assert_eq!(
        get_with(proxy.listener_addr("http").await?, "/to-stdout", &[])
            .await?
            .status,
        200
    );
    let proxy_ref = &proxy;
    eventually(LOG_WAIT, || async move {
        Ok(proxy_ref
            .log()
            .lines()
            .any(|l| l == "stdout-marker /to-stdout 200")
            .then_some(()))
    })
    .await?;
    Ok(())
}

/// Log rotation as with Envoy: the file is moved away, then `POST /reopen_logs` (or
/// SIGUSR1) makes the next lines go to a new file at the path; the process lives on.
#[tokio::test]
async fn reopen_logs_and_sigusr1_start_a_new_file() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let dir = TempDir::new()?;
    let log = dir.join("access.log");
    let proxy = default_format_proxy(&upstream, &log).await?;
    let addr = proxy.listener_addr("http").await?;
    let request = |path: &'static str| async move {
        let resp = get_with(addr, path, &[]).await?;
        anyhow::ensure!(resp.status == 200, "{path}: {}", resp.status);
        anyhow::Ok(())
    };

    request("/first").await?;
    lines(&log, 1).await?;
    std::fs::rename(&log, dir.join("access.log.1"))?;
    let reopened = proxy.admin_request("POST", "/reopen_logs").await?;
    assert_eq!(
        (reopened.status, reopened.body_text().as_str()),
        (200, "OK\n")
    );
    request("/second").await?;
    assert!(lines(&log, 1).await?[0].contains("/second"));

    std::fs::rename(&log, dir.join("access.log.2"))?;
    proxy.signal(nix::sys::signal::Signal::SIGUSR1)?;
    // The signal is handled in its own time: the new file shows when it was.
    eventually(LOG_WAIT, || async { Ok(log.exists().then_some(())) }).await?;
    request("/third").await?;
    assert!(lines(&log, 1).await?[0].contains("/third"));

    for (rotated, path) in [("access.log.1", "/first"), ("access.log.2", "/second")] {
        let text = std::fs::read_to_string(dir.join(rotated))?;
        let logged: Vec<&str> = text.lines().collect();
        assert_eq!(logged.len(), 1, "{rotated}: {text}");
        assert!(logged[0].contains(path), "{rotated}: {text}");
    }
    Ok(())
}

/// `filesystem.*` as Envoy's: a line taken into a file's write buffer counts
/// `write_buffered`, a write of the buffer `write_completed`, and the bytes waiting
/// show in `write_total_buffered` (0 once written); a reopen whose path can no longer
/// be opened counts `reopen_failed`. The names exist before any line is logged.
#[tokio::test]
async fn filesystem_stats_count_buffered_and_written_lines() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let dir = TempDir::new()?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let log = logs.join("access.log");
    let proxy = default_format_proxy(&upstream, &log).await?;
    for name in [
        "write_buffered",
        "write_completed",
        "write_failed",
        "flushed_by_timer",
        "reopen_failed",
        "write_total_buffered",
    ] {
        let stat = format!("filesystem.{name}");
        assert_eq!(proxy.stat(&stat).await?, Some(0), "{stat}");
    }
    let addr = proxy.listener_addr("http").await?;
    for path in ["/a", "/b", "/c"] {
        assert_eq!(get_with(addr, path, &[]).await?.status, 200);
    }
    lines(&log, 3).await?;
    eventually(LOG_WAIT, || async {
        Ok((proxy.stat("filesystem.write_total_buffered").await? == Some(0)).then_some(()))
    })
    .await?;
    assert_eq!(proxy.stat("filesystem.write_buffered").await?, Some(3));
    assert!(proxy.stat("filesystem.write_completed").await? >= Some(1));
    assert_eq!(proxy.stat("filesystem.write_failed").await?, Some(0));
    assert_eq!(proxy.stat("filesystem.reopen_failed").await?, Some(0));

    // Rotation into a directory that is gone: the reopen fails and is counted.
    std::fs::remove_dir_all(&logs)?;
    let reopened = proxy.admin_request("POST", "/reopen_logs").await?;
    assert_eq!(reopened.status, 200);
    eventually(LOG_WAIT, || async {
        Ok((proxy.stat("filesystem.reopen_failed").await? >= Some(1)).then_some(()))
    })
    .await?;
    Ok(())
}

/// The admin's `access_log_path` (deprecated, still in generated bootstraps): admin
/// requests logged in Envoy's default format. Measured on Envoy 1.40.
#[tokio::test]
async fn admin_access_log_path_logs_admin_requests() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let dir = TempDir::new()?;
    let log = dir.join("admin.log");
    let mut cfg = simple_proxy(&[upstream.addr()]);
    cfg["admin"]["access_log_path"] = json!(log.display().to_string());
    let proxy = Proxy::start(&cfg).await?;
    let resp = proxy.admin_request("GET", "/server_info").await?;
    assert_eq!(resp.status, 200);
    let shape = regex::Regex::new(
        r#"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] "GET /server_info HTTP/1\.1" 200 - 0 \d+ \d+ - "[^"]*" "-" "-" "test" "-"$"#,
    )?;
    let log = &log;
    eventually(LOG_WAIT, || {
        let shape = shape.clone();
        async move {
            let text = tokio::fs::read_to_string(log).await.unwrap_or_default();
            Ok(text.lines().any(|l| shape.is_match(l)).then_some(()))
        }
    })
    .await?;
    Ok(())
}
