//! Every flag of Envoy 1.40's `--help` is accepted and the proxy serves with it; the flags
//! with a meaning in Baton are checked for their effect (`--stats-tag`,
//! `--allow-unknown-static-fields`, `--ignore_rest`), and bad values exit 1 as in Envoy.

use baton_tests::{get, is_envoy, run_to_completion, Proxy, StartOptions};

fn serving_config() -> serde_json::Value {
    baton_tests::config::direct_ok_proxy()
}

async fn start_with_args(config: &serde_json::Value, args: &[&str]) -> anyhow::Result<Proxy> {
    let opts = StartOptions {
        extra_args: args.iter().map(|a| a.to_string()).collect(),
        ..StartOptions::default()
    };
    Proxy::start_with(config, opts).await
}

async fn assert_serves(proxy: &Proxy) -> anyhow::Result<()> {
    let addr = proxy.listener_addr("http").await?;
    let resp = get(addr, "/").await?;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    Ok(())
}

#[tokio::test]
async fn every_envoy_flag_is_accepted_and_the_proxy_serves() -> anyhow::Result<()> {
    let flags: &[&[&str]] = &[
        &["--stats-tag", "env:prod"],
        &["--enable-core-dump"],
        &["--disable-extensions", "envoy.filters.http.buffer"],
        &["--cpuset-threads"],
        &["--enable-mutex-tracing"],
        &["--file-flush-min-size-kb", "8"],
        &["--file-flush-interval-msec", "500"],
        &["--enable-fine-grain-logging"],
        &["--log-format-escaped"],
        &["--log-stacktrace-single-entry"],
        &["--skip-deprecated-logs"],
        &["--ignore-unknown-dynamic-fields"],
        &["--reject-unknown-dynamic-fields"],
        &["--allow-unknown-static-fields"],
        &["--allow-unknown-fields"],
        &["--skip-hot-restart-parent-stats"],
        &["--skip-hot-restart-on-no-parent"],
        &[
            "--service-cluster",
            "c",
            "--service-node",
            "n",
            "--service-zone",
            "z",
        ],
        &["--local-address-ip-version", "v4"],
        &["--component-log-level", "upstream:debug,http:warning"],
        &["--log-format", "%v"],
        &["--socket-mode", "644"],
        &["--drain-strategy", "immediate"],
        &["--mode", "serve"],
        &["--disable-hot-restart"],
        &["--", "--anything"],
    ];
    for args in flags {
        let proxy = start_with_args(&serving_config(), args)
            .await
            .map_err(|e| anyhow::anyhow!("with {args:?}: {e}"))?;
        assert_serves(&proxy)
            .await
            .map_err(|e| anyhow::anyhow!("with {args:?}: {e}"))?;
    }
    Ok(())
}

#[tokio::test]
async fn stats_tag_labels_every_prometheus_series() -> anyhow::Result<()> {
    let proxy = start_with_args(
        &serving_config(),
        &["--stats-tag", "env:prod", "--stats-tag", "zone:a"],
    )
    .await?;
    let resp = get(proxy.admin(), "/stats/prometheus").await?;
    let body = resp.body_text();
    let live = body
        .lines()
        .find(|l| l.starts_with("envoy_server_live{"))
        .ok_or_else(|| anyhow::anyhow!("no server_live in {body}"))?;
    assert!(live.contains("env=\"prod\""), "{live}");
    assert!(live.contains("zone=\"a\""), "{live}");
    // The plain /stats names are unchanged.
    let text = get(proxy.admin(), "/stats").await?.body_text();
    assert!(text.contains("server.live: 1"), "{text}");
    Ok(())
}

#[tokio::test]
async fn allow_unknown_static_fields_serves_a_config_with_unknown_fields() -> anyhow::Result<()> {
    let mut config = serving_config();
    config["static_resources"]["listeners"][0]["no_such_listener_field"] = serde_json::json!(1);
    config["no_such_top_field"] = serde_json::json!({"x": 1});
    let proxy = start_with_args(&config, &["--allow-unknown-static-fields"]).await?;
    assert_serves(&proxy).await?;
    // Envoy 1.40 counts its one lenient re-parse, however many fields it dropped.
    assert_eq!(proxy.stat("server.static_unknown_fields").await?, Some(1));
    // Without the flag the same config is refused.
    let dir = baton_tests::TempDir::new()?;
    let path = dir.join("unknown.yaml");
    std::fs::write(&path, serde_json::to_string(&config)?)?;
    let path = path.display().to_string();
    let (status, out, err) = run_to_completion(&["--mode", "validate", "-c", &path])?;
    assert!(!status.success(), "{out}\n{err}");
    let (status, out, err) = run_to_completion(&[
        "--mode",
        "validate",
        "--allow-unknown-static-fields",
        "-c",
        &path,
    ])?;
    assert!(status.success(), "{out}\n{err}");
    Ok(())
}

#[test]
fn ignore_rest_ends_the_flags() -> anyhow::Result<()> {
    let (status, out, err) = run_to_completion(&[
        "--mode",
        "validate",
        "--config-yaml",
        "{}",
        "--ignore_rest",
        "--no-such-flag",
    ])?;
    assert!(status.success(), "{status}\n{out}\n{err}");
    Ok(())
}

#[test]
fn bad_values_exit_1_as_in_envoy() -> anyhow::Result<()> {
    let cases: &[(&[&str], &str)] = &[
        (&["--stats-tag", "bad"], "misformatted stats-tag 'bad'"),
        (&["--stats-tag", "a.b:c"], "misformatted stats-tag"),
        (&["--stats-tag", "a:b.c"], "misformatted stats-tag"),
        (&["--component-log-level", "bogus:debug"], "bogus"),
        (&["--component-log-level", "upstream"], "upstream"),
        (&["--component-log-level", "upstream:bogus"], "bogus"),
        (
            &[
                "--enable-fine-grain-logging",
                "--component-log-level",
                "upstream:debug",
            ],
            "--enable-fine-grain-logging",
        ),
        (
            &["--use-dynamic-base-id", "--restart-epoch", "1"],
            "--use-dynamic-base-id",
        ),
        (&["--mode", "bogus"], "bogus"),
        (&["-l", "bogus"], "bogus"),
        (&["--drain-strategy", "bogus"], "drain-strategy"),
        (&["--local-address-ip-version", "v5"], "v5"),
        (&["--concurrency", "abc"], "abc"),
        (&["--base-id", "abc"], "abc"),
        (&["--ignore-unknown-flags"], "ignore-unknown-flags"),
    ];
    for (args, needle) in cases {
        let mut full: Vec<&str> = vec!["--mode", "validate", "--config-yaml", "{}"];
        if args.contains(&"--mode") {
            full.truncate(0);
            full.extend(["--config-yaml", "{}"]);
        }
        full.extend(args.iter());
        let (status, out, err) = run_to_completion(&full)?;
        assert_eq!(status.code(), Some(1), "{args:?}: {out}\n{err}");
        if !is_envoy() || !needle.starts_with("--") {
            assert!(
                format!("{out}\n{err}").contains(needle),
                "{args:?}: wanted {needle:?} in {out}\n{err}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn dynamic_base_id_is_chosen_and_written_to_base_id_path() -> anyhow::Result<()> {
    let dir = baton_tests::TempDir::new()?;
    let path = dir.join("base-id");
    let path_text = path.display().to_string();
    let proxy = start_with_args(
        &serving_config(),
        &["--use-dynamic-base-id", "--base-id-path", &path_text],
    )
    .await?;
    assert_serves(&proxy).await?;
    let written = std::fs::read_to_string(&path)?;
    // Digits only, no newline (as Envoy writes it).
    let id: u32 = written.parse()?;
    assert!(id > 0, "{written:?}");
    let info = get(proxy.admin(), "/server_info").await?.json()?;
    assert_eq!(
        info["command_line_options"]["use_dynamic_base_id"],
        serde_json::json!(true),
        "{info}"
    );
    Ok(())
}

#[test]
fn a_disabled_extension_fails_the_config_that_uses_it() -> anyhow::Result<()> {
    let dir = baton_tests::TempDir::new()?;
    let path = dir.join("config.yaml");
    std::fs::write(&path, serde_json::to_string(&serving_config())?)?;
    let path = path.display().to_string();
    let (status, out, err) = run_to_completion(&[
        "--mode",
        "validate",
        "-c",
        &path,
        "--disable-extensions",
        "envoy.filters.http/envoy.filters.http.router",
    ])?;
    assert_eq!(status.code(), Some(1), "{out}\n{err}");
    assert!(format!("{out}\n{err}").contains("router"), "{out}\n{err}");
    // A bare name is not Envoy's category/name form: a warning, nothing disabled.
    let (status, out, err) = run_to_completion(&[
        "--mode",
        "validate",
        "-c",
        &path,
        "--disable-extensions",
        "envoy.filters.http.router",
    ])?;
    assert!(status.success(), "{out}\n{err}");
    Ok(())
}
