//! Process logging: `tracing` with the level from `-l/--log-level`, optional per-component
//! levels, plain or JSON lines, to stderr or `--log-path`.

use std::fs::OpenOptions;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

use super::cli::{LogLevel, Options};

/// Envoy's default `--log-format`, shown in /server_info.
pub const DEFAULT_LOG_FORMAT: &str = "[%Y-%m-%d %T.%e][%t][%l][%n] [%g:%#] %v";

/// Installs the global subscriber. `BATON_LOG` (an EnvFilter directive) overrides the flags.
pub fn init(opts: &Options) -> anyhow::Result<()> {
    let level = match opts.log_level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error | LogLevel::Critical => "error",
        LogLevel::Off => "off",
    };
    let mut directives = level.to_string();
    if let Some(components) = &opts.component_log_level {
        for pair in components.split(',') {
            if let Some((component, lvl)) = pair.split_once(':') {
                let target = match component.trim() {
                    "upstream" | "pool" | "dns" => "baton_proxy::upstream",
                    "http" | "http2" | "router" => "baton_proxy::http",
                    "connection" | "conn_handler" => "baton_proxy::listener",
                    "admin" => "baton_proxy::admin",
                    "main" | "config" | "hot_restart" => "baton_proxy::server",
                    other => {
                        eprintln!("warning: unknown log component '{other}' ignored");
                        continue;
                    }
                };
                let lvl = if lvl.trim() == "warning" {
                    "warn"
                } else {
                    lvl.trim()
                };
                directives.push_str(&format!(",{target}={lvl}"));
            }
        }
    }
    let filter = match std::env::var("BATON_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::try_new(v)?,
        _ => EnvFilter::try_new(directives)?,
    };
    let json = opts.log_format.as_deref() == Some("json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_thread_names(true)
        .with_target(true);
    match &opts.log_path {
        Some(path) => {
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            let writer = Mutex::new(file);
            if json {
                builder.json().with_writer(writer).try_init()
            } else {
                builder.with_ansi(false).with_writer(writer).try_init()
            }
        }
        None => {
            if json {
                builder.json().with_writer(std::io::stderr).try_init()
            } else {
                builder
                    .with_ansi(false)
                    .with_writer(std::io::stderr)
                    .try_init()
            }
        }
    }
    .map_err(|e| anyhow::anyhow!("cannot install logger: {e}"))
}
