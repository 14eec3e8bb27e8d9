//! What Envoy checks after parsing its command line (stats-tag syntax, component names,
//! flag combinations), with Envoy's meaning and exit code 1, and the one-line warnings
//! for flags that mean nothing in Baton (each listed in the README).

use tracing::warn;

use super::cli::Options;

/// Envoy's logger components: `--component-log-level` accepts exactly these names.
const ENVOY_COMPONENTS: &[&str] = &[
    "admin",
    "alternate_protocols_cache",
    "aws",
    "assert",
    "backtrace",
    "basic_auth",
    "cache_filter",
    "client",
    "config",
    "connection",
    "conn_handler",
    "compression",
    "credential_injector",
    "decompression",
    "dns",
    "dubbo",
    "envoy_bug",
    "ext_authz",
    "ext_proc",
    "rocketmq",
    "file",
    "filter",
    "forward_proxy",
    "geolocation",
    "grpc",
    "happy_eyeballs",
    "hc",
    "health_checker",
    "http",
    "http2",
    "hystrix",
    "init",
    "io",
    "jwt",
    "kafka",
    "key_value_store",
    "lua",
    "main",
    "matcher",
    "misc",
    "mongo",
    "multi_connection",
    "oauth2",
    "quic",
    "quic_stream",
    "pool",
    "rate_limit_quota",
    "rbac",
    "rds",
    "redis",
    "router",
    "runtime",
    "stats",
    "secret",
    "tap",
    "testing",
    "thrift",
    "tracing",
    "upstream",
    "udp",
    "wasm",
    "websocket",
    "golang",
    "ip_tagging",
    "dynamic_modules",
    "mcp",
];

/// Log level names `-l` and `--component-log-level` accept.
const LEVELS: &[&str] = &[
    "trace", "debug", "info", "warning", "warn", "error", "critical", "off",
];

/// Checks Envoy makes once the flags are parsed; the error is printed as `error: ...`
/// and the process exits 1, as Envoy does.
pub fn check(opts: &Options) -> Result<(), String> {
    for tag in &opts.stats_tags {
        check_stats_tag(tag)?;
    }
    if let Some(components) = &opts.component_log_level {
        if opts.enable_fine_grain_logging {
            return Err(
                "--component-log-level will not work with --enable-fine-grain-logging".into(),
            );
        }
        component_levels(components)?;
    }
    if opts.use_dynamic_base_id && opts.restart_epoch > 0 {
        return Err(format!(
            "cannot use --restart-epoch={} with --use-dynamic-base-id",
            opts.restart_epoch
        ));
    }
    Ok(())
}

/// `name:value`: an alphanumeric name, a value without '.'.
fn check_stats_tag(tag: &str) -> Result<(), String> {
    let Some((name, value)) = tag.split_once(':') else {
        return Err(format!("misformatted stats-tag '{tag}'"));
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "misformatted stats-tag '{tag}' contains invalid char in '{name}'"
        ));
    }
    if value.contains('.') {
        return Err(format!(
            "misformatted stats-tag '{tag}' contains invalid char in '{value}'"
        ));
    }
    Ok(())
}

/// The universal stats tags as (name, value), the first of each name kept (Envoy warns
/// about and skips later duplicates).
pub fn stats_tags(opts: &Options) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = Vec::new();
    for (name, value) in opts.stats_tags.iter().filter_map(|t| t.split_once(':')) {
        if tags.iter().any(|(n, _)| n == name) {
            warn!(tag = name, "skipping duplicate --stats-tag");
            continue;
        }
        tags.push((name.to_string(), value.to_string()));
    }
    tags
}

/// `upstream:debug,http:trace` -> [(component, level)], with Envoy's errors for a pair
/// without ':', an unknown component or an unknown level.
pub fn component_levels(spec: &str) -> Result<Vec<(&str, &str)>, String> {
    let mut pairs = Vec::new();
    for pair in spec.split(',') {
        let Some((component, level)) = pair.split_once(':') else {
            return Err(format!(
                "component log level not correctly specified '{pair}'"
            ));
        };
        if !ENVOY_COMPONENTS.contains(&component) {
            return Err(format!("invalid component specified '{component}'"));
        }
        if !LEVELS.contains(&level) {
            return Err(format!("invalid log level specified '{level}'"));
        }
        pairs.push((component, level));
    }
    Ok(pairs)
}

/// One warning per given flag that changes nothing in Baton (after logging is up).
pub fn warn_inert_flags(opts: &Options) {
    let (_, unknown) = baton_config::disabled::resolve(&opts.disabled_extensions());
    for entry in unknown {
        warn!("--disable-extensions: '{entry}' names no extension Baton has (the form is category/name); nothing disabled");
    }
    let inert: [(bool, &str, &str); 7] = [
        (
            opts.cpuset_threads,
            "--cpuset-threads",
            "the default worker count already follows the CPU set",
        ),
        (
            opts.enable_mutex_tracing,
            "--enable-mutex-tracing",
            "Baton has no mutex contention tracing",
        ),
        (
            opts.enable_fine_grain_logging,
            "--enable-fine-grain-logging",
            "per-module log levels are set with BATON_LOG",
        ),
        (
            opts.log_stacktrace_single_entry,
            "--log-stacktrace-single-entry",
            "Baton logs no stack traces",
        ),
        (
            opts.skip_deprecated_logs,
            "--skip-deprecated-logs",
            "Baton logs no deprecated-field warnings",
        ),
        (
            opts.file_flush_min_size_kb != 64,
            "--file-flush-min-size-kb",
            "access logs are written line by line without a size threshold",
        ),
        (
            opts.file_flush_interval_msec != 10_000,
            "--file-flush-interval-msec",
            "access logs are written line by line without a flush timer",
        ),
    ];
    for (given, flag, why) in inert {
        if given {
            warn!("{flag} is accepted for Envoy compatibility and has no effect: {why}");
        }
    }
    if opts.allow_unknown_fields {
        warn!("--allow-unknown-fields is deprecated, use --allow-unknown-static-fields instead");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_tags_are_checked_as_envoy_does() {
        assert!(check_stats_tag("env:prod").is_ok());
        assert!(check_stats_tag("env:").is_ok());
        assert_eq!(
            check_stats_tag("bad"),
            Err("misformatted stats-tag 'bad'".to_string())
        );
        assert!(check_stats_tag("a.b:c").is_err());
        assert!(check_stats_tag("a_b:c").is_err());
        assert!(check_stats_tag("a:b.c").is_err());
    }

    #[test]
    fn component_levels_are_checked_as_envoy_does() {
        assert_eq!(
            component_levels("upstream:debug,http:warning"),
            Ok(vec![("upstream", "debug"), ("http", "warning")])
        );
        assert!(component_levels("bogus:debug").is_err());
        assert!(component_levels("upstream").is_err());
        assert!(component_levels("upstream:bogus").is_err());
        assert!(component_levels("upstream:debug,").is_err());
    }
}
