//! `application_log_config`: a `json_format` turns the process log into JSON lines once
//! the bootstrap is loaded (each implementation with its own fields: Envoy the
//! configured ones, Baton its own), and giving a log format in the bootstrap and with
//! `--log-format` is refused with Envoy's error.

use std::time::Duration;

use baton_tests::config::{bootstrap, direct_route, http_listener, route_config, vhost};
use baton_tests::{get, run_to_completion, Proxy, StartOptions, TempDir};
use serde_json::{json, Value};

fn serving_config(log_format: Value) -> Value {
    let mut config = bootstrap(
        vec![http_listener(
            "http",
            route_config(vec![vhost(
                "all",
                &["*"],
                vec![direct_route("/", 200, "ok")],
            )]),
        )],
        vec![],
    );
    config["application_log_config"] = json!({ "log_format": log_format });
    config
}

#[tokio::test]
async fn json_format_writes_json_lines() -> anyhow::Result<()> {
    let config = serving_config(json!({ "json_format": { "Level": "%l", "Message": "%j" } }));
    let mut proxy = Proxy::start_with(&config, StartOptions::default()).await?;
    let addr = proxy.listener_addr("http").await?;
    assert_eq!(get(addr, "/").await?.status, 200);
    // Shutting down logs at info level, after the bootstrap was loaded.
    proxy.sigterm()?;
    proxy.wait_exit(Duration::from_secs(10)).await?;
    let log = proxy.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let first_json = lines
        .iter()
        .position(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v.is_object()))
        .ok_or_else(|| anyhow::anyhow!("no JSON line in:\n{log}"))?;
    for line in &lines[first_json..] {
        let parsed: Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("not a JSON line ({e}): {line}\n{log}"))?;
        assert!(parsed.is_object(), "{line}");
    }
    assert!(lines.len() > first_json + 1, "{log}");
    Ok(())
}

#[test]
fn a_log_format_in_the_bootstrap_and_on_the_command_line_is_refused() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let path = dir.join("bootstrap.json");
    let config = serving_config(json!({ "text_format": "%l %v" }));
    std::fs::write(&path, serde_json::to_string(&config)?)?;
    let path = path.display().to_string();
    let (status, _, _) = run_to_completion(&["--mode", "validate", "-c", &path])?;
    assert!(status.success());
    let (status, out, err) =
        run_to_completion(&["--mode", "validate", "-c", &path, "--log-format", "%v"])?;
    assert!(!status.success());
    let text = format!("{out}{err}");
    assert!(
        text.contains(
            "Only one of ApplicationLogConfig.log_format or CLI option --log-format can be specified."
        ),
        "{text}"
    );
    Ok(())
}
