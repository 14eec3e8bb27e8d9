//! The command line: unknown flags are errors, `--version`, `--mode validate` (OK message,
//! errors naming path and line with the v3 hint for v2-era fields, nothing bound), and
//! `--config-yaml`.

use baton_tests::config::{bootstrap, direct_route, http_listener, route_config, vhost};
use baton_tests::{is_envoy, run_to_completion, TempDir};

fn combined(out: &str, err: &str) -> String {
    format!("{out}\n{err}")
}

#[test]
fn unknown_flag_is_an_error() -> anyhow::Result<()> {
    let (status, out, err) = run_to_completion(&["--no-such-flag"])?;
    assert!(!status.success(), "{status}");
    assert!(
        combined(&out, &err).contains("no-such-flag"),
        "{out}\n{err}"
    );
    Ok(())
}

#[test]
fn version_prints_and_exits_zero() -> anyhow::Result<()> {
    let (status, out, err) = run_to_completion(&["--version"])?;
    assert!(status.success(), "{status}: {err}");
    assert!(out.contains("version"), "{out}");
    Ok(())
}

fn valid_config() -> serde_json::Value {
    bootstrap(
        vec![http_listener(
            "http",
            route_config(vec![vhost(
                "all",
                &["*"],
                vec![direct_route("/", 200, "ok")],
            )]),
        )],
        vec![],
    )
}

#[test]
fn validate_mode_accepts_good_config_and_binds_nothing() -> anyhow::Result<()> {
    // The listener names a port this test holds: validate mode must not try to bind it.
    let held = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    let mut cfg = valid_config();
    cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] =
        serde_json::json!(held.local_addr()?.port());
    let dir = TempDir::new()?;
    let path = dir.join("good.yaml");
    std::fs::write(&path, serde_json::to_string_pretty(&cfg)?)?;
    let path_text = path.display().to_string();
    let (status, out, err) = run_to_completion(&["--mode", "validate", "-c", &path_text])?;
    assert!(status.success(), "{status}\n{out}\n{err}");
    assert!(
        combined(&out, &err).contains(&format!("configuration '{path_text}' OK")),
        "{out}\n{err}"
    );
    Ok(())
}

#[test]
fn validate_mode_rejects_unknown_field_with_path_and_line() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let path = dir.join("bad.yaml");
    std::fs::write(
        &path,
        "static_resources:\n  clusters:\n  - name: c\n    type: STATIC\n    connect_timeout: 1s\n    bogus_field: 1\n",
    )?;
    let path_text = path.display().to_string();
    let (status, out, err) = run_to_completion(&["--mode", "validate", "-c", &path_text])?;
    assert!(!status.success(), "{status}\n{out}\n{err}");
    let text = combined(&out, &err);
    assert!(text.contains("bogus_field"), "{text}");
    if !is_envoy() {
        // Baton's error format (issue 3): FILE:LINE: path: message.
        assert!(text.contains(&format!("{path_text}:6:")), "{text}");
        assert!(text.contains("static_resources.clusters[0]"), "{text}");
    }
    Ok(())
}

#[test]
fn validate_mode_names_v3_replacement_for_v2_fields() -> anyhow::Result<()> {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/bad-v2.yaml");
    let (status, out, err) = run_to_completion(&["--mode", "validate", "-c", example])?;
    assert!(!status.success(), "{status}\n{out}\n{err}");
    let text = combined(&out, &err);
    assert!(text.contains("hosts"), "{text}");
    if !is_envoy() {
        assert!(text.contains("load_assignment"), "v3 hint missing: {text}");
        assert!(text.contains("static_resources.clusters[0]"), "{text}");
        assert!(text.contains("bad-v2.yaml:"), "line missing: {text}");
    }
    Ok(())
}

#[test]
fn validate_mode_rejects_v2_config_field_and_filter_names() -> anyhow::Result<()> {
    if is_envoy() {
        return Ok(()); // The v3 hints are Baton's; Envoy only says "unknown field".
    }
    let dir = TempDir::new()?;
    let path = dir.join("v2names.yaml");
    std::fs::write(
        &path,
        "static_resources:\n  listeners:\n  - name: l\n    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }\n    filter_chains:\n    - filters:\n      - name: envoy.http_connection_manager\n        config:\n          stat_prefix: x\n",
    )?;
    let path_text = path.display().to_string();
    let (status, out, err) = run_to_completion(&["--mode", "validate", "-c", &path_text])?;
    assert!(!status.success());
    let text = combined(&out, &err);
    assert!(text.contains("typed_config"), "v3 hint missing: {text}");
    Ok(())
}

#[test]
fn validate_mode_with_config_yaml() -> anyhow::Result<()> {
    let inline = serde_json::to_string(&valid_config())?;
    let (status, out, err) = run_to_completion(&["--mode", "validate", "--config-yaml", &inline])?;
    assert!(status.success(), "{status}\n{out}\n{err}");
    assert!(combined(&out, &err).contains("OK"), "{out}\n{err}");
    Ok(())
}
