//! The command line: unknown flags are errors, `--version`, `--mode validate` (OK message,
//! errors naming path and line with the v3 hint for v2-era fields, nothing bound), and
//! `--config-yaml`.

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
    baton_tests::config::direct_ok_proxy()
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

/// Writes `cfg` and runs `--mode validate` on it; returns (success, combined output).
fn validate(cfg: &serde_json::Value) -> anyhow::Result<(bool, String)> {
    let dir = TempDir::new()?;
    let path = dir.join("config.yaml");
    std::fs::write(&path, serde_json::to_string_pretty(cfg)?)?;
    let path_text = path.display().to_string();
    let (status, out, err) = run_to_completion(&["--mode", "validate", "-c", &path_text])?;
    Ok((status.success(), combined(&out, &err)))
}

#[test]
fn validate_mode_rejects_http_filters_not_ending_with_router() -> anyhow::Result<()> {
    let mut cfg = valid_config();
    let filters = cfg
        .pointer_mut(
            "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/http_filters",
        )
        .ok_or_else(|| anyhow::anyhow!("no http_filters"))?;
    *filters = serde_json::json!([
        { "name": "envoy.filters.http.router", "typed_config": { "@type": baton_tests::config::ROUTER_TYPE } },
        { "name": "envoy.filters.http.router2", "typed_config": { "@type": baton_tests::config::ROUTER_TYPE } },
    ]);
    let (ok, text) = validate(&cfg)?;
    assert!(!ok, "{text}");
    Ok(())
}

#[test]
fn validate_mode_rejects_unknown_http_filter() -> anyhow::Result<()> {
    let mut cfg = valid_config();
    let filters = cfg
        .pointer_mut(
            "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/http_filters",
        )
        .ok_or_else(|| anyhow::anyhow!("no http_filters"))?;
    *filters = serde_json::json!([
        { "name": "my.unknown.filter", "typed_config": { "@type": "type.googleapis.com/my.unknown.v3.Filter" } },
        { "name": "envoy.filters.http.router", "typed_config": { "@type": baton_tests::config::ROUTER_TYPE } },
    ]);
    let (ok, text) = validate(&cfg)?;
    assert!(!ok, "{text}");
    assert!(text.contains("my.unknown"), "{text}");
    Ok(())
}

#[test]
fn validate_mode_rejects_unknown_enum_value() -> anyhow::Result<()> {
    let mut cfg = valid_config();
    cfg["static_resources"]["clusters"] = serde_json::json!([{
        "name": "c", "type": "STATICX", "connect_timeout": "1s",
    }]);
    let (ok, text) = validate(&cfg)?;
    assert!(!ok, "{text}");
    assert!(text.contains("STATICX"), "{text}");
    Ok(())
}

#[test]
fn init_only_mode_initialises_and_exits_zero() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let path = dir.join("config.yaml");
    std::fs::write(&path, serde_json::to_string_pretty(&valid_config())?)?;
    let path_text = path.display().to_string();
    let base_id = (std::process::id().wrapping_mul(100) + 99).to_string();
    let (status, out, err) = run_to_completion(&[
        "--mode",
        "init_only",
        "-c",
        &path_text,
        "--base-id",
        &base_id,
        "--concurrency",
        "1",
    ])?;
    assert!(status.success(), "{status}\n{out}\n{err}");
    Ok(())
}

#[test]
fn validate_mode_rejects_route_to_undefined_cluster() -> anyhow::Result<()> {
    let mut cfg = valid_config();
    let routes = cfg
        .pointer_mut("/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/route_config/virtual_hosts/0/routes")
        .ok_or_else(|| anyhow::anyhow!("no routes"))?;
    *routes = serde_json::json!([{ "match": { "prefix": "/" }, "route": { "cluster": "undefined_cluster" } }]);
    let (ok, text) = validate(&cfg)?;
    assert!(!ok, "{text}");
    assert!(text.contains("undefined_cluster"), "{text}");
    Ok(())
}
