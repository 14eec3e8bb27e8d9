//! Envoy-compatible command line (`baton -c envoy.yaml ...`). Every flag of Envoy 1.40's
//! `--help` is accepted with Envoy's spelling, default and meaning; the few that mean
//! nothing for Baton are accepted with a one-line warning (`cli_checks::warn_inert_flags`,
//! listed in the README). Unknown flags are an error, as in Envoy. Checks across flags
//! and of values Envoy validates after parsing live in `cli_checks`.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// `--mode`
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Load, initialise and serve (default).
    Serve,
    /// Check the configuration and exit 0/1; binds nothing.
    Validate,
    /// Initialise (clusters, listeners) then exit without serving.
    #[value(name = "init_only")]
    InitOnly,
}

/// `--drain-strategy`
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DrainStrategy {
    /// Encourage connections to close progressively over the drain time (default).
    Gradual,
    /// Tell every connection to close at once when draining starts.
    Immediate,
}

impl From<DrainStrategy> for crate::base::drain::DrainStrategy {
    fn from(s: DrainStrategy) -> Self {
        match s {
            DrainStrategy::Gradual => Self::Gradual,
            DrainStrategy::Immediate => Self::Immediate,
        }
    }
}

/// `--log-level` values (Envoy's spdlog names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// trace
    Trace,
    /// debug
    Debug,
    /// info (default)
    Info,
    /// warning
    #[value(alias = "warning")]
    Warn,
    /// error
    Error,
    /// critical
    Critical,
    /// off
    Off,
}

/// `--hot-restart-version-mismatch` (Baton-specific).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VersionMismatchPolicy {
    /// Exit with a clear error; the running generation is untouched (default).
    Fail,
    /// Stop the running generation (SIGTERM, wait for it to exit) and start without
    /// socket inheritance: new connections are refused until this generation listens.
    #[value(name = "cold-restart")]
    ColdRestart,
}

/// `--local-address-ip-version`
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IpVersion {
    /// v4 (default)
    V4,
    /// v6
    V6,
}

/// The command line of `baton`, as Envoy's.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "baton",
    about = "Baton: an Envoy-compatible proxy with zero-downtime reloads",
    disable_version_flag = true
)]
pub struct Options {
    /// Path to the bootstrap configuration file (YAML or JSON, Envoy v3 API).
    #[arg(short = 'c', long = "config-path")]
    pub config_path: Option<PathBuf>,

    /// Inline YAML bootstrap, merged over --config-path when both are given.
    #[arg(long = "config-yaml")]
    pub config_yaml: Option<String>,

    /// serve (default), validate (check config, bind nothing), init_only.
    #[arg(long = "mode", value_enum, default_value = "serve")]
    pub mode: Mode,

    /// Hot-restart base id: generations of one service share it; two services on one
    /// host must use different ones.
    #[arg(long = "base-id", default_value_t = 0)]
    pub base_id: u32,

    /// Pick an unused base id (written to --base-id-path).
    #[arg(long = "use-dynamic-base-id")]
    pub use_dynamic_base_id: bool,

    /// Where to write the base id chosen by --use-dynamic-base-id.
    #[arg(long = "base-id-path")]
    pub base_id_path: Option<PathBuf>,

    /// Hot restart epoch of this generation (0 for the first).
    #[arg(long = "restart-epoch", default_value_t = 0)]
    pub restart_epoch: u32,

    /// Seconds the parent drains its connections after a hot restart / on shutdown.
    #[arg(long = "drain-time-s", default_value_t = 600)]
    pub drain_time_s: u64,

    /// Seconds after a hot restart before the parent exits.
    #[arg(long = "parent-shutdown-time-s", default_value_t = 900)]
    pub parent_shutdown_time_s: u64,

    /// gradual (default) or immediate.
    #[arg(long = "drain-strategy", value_enum, default_value = "gradual")]
    pub drain_strategy: DrainStrategy,

    /// Worker threads (default: number of cores).
    #[arg(long = "concurrency")]
    pub concurrency: Option<usize>,

    /// Log level.
    #[arg(short = 'l', long = "log-level", value_enum, default_value = "info")]
    pub log_level: LogLevel,

    /// Per-component log levels (`upstream:debug,connection:trace`); mapped onto Baton's
    /// modules where a component exists.
    #[arg(long = "component-log-level")]
    pub component_log_level: Option<String>,

    /// Log line format (Envoy's `%v`-style: only the default and `%v` (message only) and
    /// `json` are recognised; others fall back to the default with a warning).
    #[arg(long = "log-format")]
    pub log_format: Option<String>,

    /// Write logs to this file instead of stderr.
    #[arg(long = "log-path")]
    pub log_path: Option<PathBuf>,

    /// node.cluster override.
    #[arg(long = "service-cluster")]
    pub service_cluster: Option<String>,

    /// node.id override.
    #[arg(long = "service-node")]
    pub service_node: Option<String>,

    /// node.locality.zone override.
    #[arg(long = "service-zone")]
    pub service_zone: Option<String>,

    /// Write the admin listener's bound address (ip:port) here once it listens.
    #[arg(long = "admin-address-path")]
    pub admin_address_path: Option<PathBuf>,

    /// Disable hot restart (no domain socket, no socket inheritance).
    #[arg(long = "disable-hot-restart")]
    pub disable_hot_restart: bool,

    /// Start cleanly when --restart-epoch > 0 but no parent is found (Baton always does,
    /// and logs it; the flag is accepted for Envoy compatibility).
    #[arg(long = "skip-hot-restart-on-no-parent")]
    pub skip_hot_restart_on_no_parent: bool,

    /// Directory of the hot-restart domain socket (default: the runtime directory).
    #[arg(long = "socket-path")]
    pub socket_path: Option<PathBuf>,

    /// Mode of the hot-restart domain socket (octal, default 600).
    #[arg(long = "socket-mode", default_value = "600")]
    pub socket_mode: String,

    /// Runtime directory for the stats region and hot-restart sockets (default:
    /// $RUNTIME_DIRECTORY, else $XDG_RUNTIME_DIR/baton, else /tmp/baton-<uid>).
    #[arg(long = "runtime-dir")]
    pub runtime_dir: Option<PathBuf>,

    /// What a new generation does when the running one speaks another hot-restart or
    /// stats-layout version: `fail` (default) or `cold-restart` (stop it, start fresh,
    /// refusing connections briefly). Baton-specific.
    #[arg(
        long = "hot-restart-version-mismatch",
        value_enum,
        default_value = "fail"
    )]
    pub hot_restart_version_mismatch: VersionMismatchPolicy,

    /// Capacity (stat names) of the shared stats region when this generation creates it
    /// (Baton-specific). By default sized from the config: 64 Ki plus room for about 190
    /// stats per cluster and 130 per listener; stats past it keep counting in process
    /// memory and `server.stats_overflow` counts them.
    #[arg(long = "stats-max-stats")]
    pub stats_max_stats: Option<u32>,

    /// IP version of the local address used for the admin /server_info and stats.
    #[arg(long = "local-address-ip-version", value_enum, default_value = "v4")]
    pub local_address_ip_version: IpVersion,

    /// Milliseconds between access-log file flushes.
    #[arg(long = "file-flush-interval-msec", default_value_t = 10000)]
    pub file_flush_interval_msec: u64,

    /// Print the hot-restart compatibility version and exit.
    #[arg(long = "hot-restart-version")]
    pub hot_restart_version: bool,

    /// Print the version and exit.
    #[arg(long = "version")]
    pub version: bool,

    /// A universal tag `name:value` added to every stat in `/stats/prometheus`
    /// (repeatable; alphanumeric names, values without '.').
    #[arg(long = "stats-tag")]
    pub stats_tags: Vec<String>,

    /// Raise the core-file size limit to its hard limit and mark the process dumpable.
    #[arg(long = "enable-core-dump")]
    pub enable_core_dump: bool,

    /// Comma-separated extension names to disable (a config naming one is rejected).
    #[arg(long = "disable-extensions")]
    pub disable_extensions: Option<String>,

    /// Default worker count from the CPU set (Baton always does; accepted with a warning).
    #[arg(long = "cpuset-threads")]
    pub cpuset_threads: bool,

    /// Mutex contention tracing (nothing to trace in Baton; accepted with a warning).
    #[arg(long = "enable-mutex-tracing")]
    pub enable_mutex_tracing: bool,

    /// Minimum size in KiB of buffered access-log data before a flush.
    #[arg(long = "file-flush-min-size-kb", default_value_t = 64)]
    pub file_flush_min_size_kb: u32,

    /// File-level log control (Baton's is `BATON_LOG`; accepted with a warning).
    #[arg(long = "enable-fine-grain-logging")]
    pub enable_fine_grain_logging: bool,

    /// Escape C-style control characters (newlines, tabs, ...) in log messages.
    #[arg(long = "log-format-escaped")]
    pub log_format_escaped: bool,

    /// Stack traces in one log entry (Baton logs none; accepted with a warning).
    #[arg(long = "log-stacktrace-single-entry")]
    pub log_stacktrace_single_entry: bool,

    /// Skip deprecated-field warnings (Baton logs none; accepted with a warning).
    #[arg(long = "skip-deprecated-logs")]
    pub skip_deprecated_logs: bool,

    /// Unknown fields in dynamic (xDS) resources are ignored without a warning.
    #[arg(long = "ignore-unknown-dynamic-fields")]
    pub ignore_unknown_dynamic_fields: bool,

    /// Unknown fields in dynamic (xDS) resources reject the update.
    #[arg(long = "reject-unknown-dynamic-fields")]
    pub reject_unknown_dynamic_fields: bool,

    /// Unknown fields in the bootstrap are ignored with a warning instead of an error.
    #[arg(long = "allow-unknown-static-fields")]
    pub allow_unknown_static_fields: bool,

    /// Deprecated spelling of --allow-unknown-static-fields.
    #[arg(long = "allow-unknown-fields")]
    pub allow_unknown_fields: bool,

    /// A hot-restarted generation starts its stats from zero instead of continuing the
    /// parent's.
    #[arg(long = "skip-hot-restart-parent-stats")]
    pub skip_hot_restart_parent_stats: bool,

    /// `--base-id` as given (the effective `base_id` differs under
    /// --use-dynamic-base-id); /server_info shows this one, as Envoy does.
    #[arg(skip)]
    pub base_id_given: Option<u32>,

    /// Arguments after `--` (or Envoy's `--ignore_rest`), ignored as Envoy ignores them.
    #[arg(last = true, hide = true)]
    pub ignored_rest: Vec<String>,
}

impl Options {
    /// Parses an Envoy command line: `--ignore_rest` ends the flags as `--` does.
    pub fn parse_envoy_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString>,
    {
        let mut ended = false;
        let args = args.into_iter().map(|a| {
            let a: std::ffi::OsString = a.into();
            if !ended && (a == "--ignore_rest" || a == "--") {
                ended = true;
                return std::ffi::OsString::from("--");
            }
            a
        });
        Self::try_parse_from(args)
    }

    /// `--disable-extensions` as a list of names.
    pub fn disabled_extensions(&self) -> Vec<String> {
        self.disable_extensions
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// What unknown fields in xDS resources do: rejected with
    /// `--reject-unknown-dynamic-fields` (which wins), silently accepted with
    /// `--ignore-unknown-dynamic-fields`, else accepted with a warning (Envoy's default).
    pub fn unknown_dynamic_fields(&self) -> baton_config::resource::UnknownFields {
        use baton_config::resource::UnknownFields;
        if self.reject_unknown_dynamic_fields {
            UnknownFields::Reject
        } else if self.ignore_unknown_dynamic_fields {
            UnknownFields::Ignore
        } else {
            UnknownFields::Warn
        }
    }

    /// Bootstrap unknown fields allowed (`--allow-unknown-static-fields` or its old name).
    pub fn allows_unknown_static_fields(&self) -> bool {
        self.allow_unknown_static_fields || self.allow_unknown_fields
    }

    /// Number of workers: `--concurrency`, else the number of cores.
    pub fn workers(&self) -> usize {
        self.concurrency
            .filter(|n| *n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// The command line as Envoy's /server_info shows it under `command_line_options`.
    pub fn to_server_info_json(&self) -> serde_json::Value {
        serde_json::json!({
            "base_id": self.base_id_given.unwrap_or(self.base_id).to_string(),
            "use_dynamic_base_id": self.use_dynamic_base_id,
            "base_id_path": path_str(&self.base_id_path),
            "concurrency": self.workers(),
            "config_path": path_str(&self.config_path),
            "config_yaml": self.config_yaml.clone().unwrap_or_default(),
            "admin_address_path": path_str(&self.admin_address_path),
            "local_address_ip_version": match self.local_address_ip_version { IpVersion::V4 => "v4", IpVersion::V6 => "v6" },
            "log_level": format!("{:?}", self.log_level).to_lowercase(),
            "component_log_level": self.component_log_level.clone().unwrap_or_default(),
            "log_format": self.log_format.clone().unwrap_or_else(|| crate::server::logging::DEFAULT_LOG_FORMAT.to_string()),
            "log_path": path_str(&self.log_path),
            "service_cluster": self.service_cluster.clone().unwrap_or_default(),
            "service_node": self.service_node.clone().unwrap_or_default(),
            "service_zone": self.service_zone.clone().unwrap_or_default(),
            "file_flush_interval": format!("{}s", self.file_flush_interval_msec as f64 / 1000.0),
            "drain_time": format!("{}s", self.drain_time_s),
            "drain_strategy": match self.drain_strategy { DrainStrategy::Gradual => "Gradual", DrainStrategy::Immediate => "Immediate" },
            "parent_shutdown_time": format!("{}s", self.parent_shutdown_time_s),
            "mode": match self.mode { Mode::Serve => "Serve", Mode::Validate => "Validate", Mode::InitOnly => "InitOnly" },
            "disable_hot_restart": self.disable_hot_restart,
            "restart_epoch": self.restart_epoch,
            "socket_path": path_str(&self.socket_path),
            "socket_mode": self.socket_mode,
            "enable_core_dump": self.enable_core_dump,
            "cpuset_threads": self.cpuset_threads,
            "enable_mutex_tracing": self.enable_mutex_tracing,
            "enable_fine_grain_logging": self.enable_fine_grain_logging,
            "log_format_escaped": self.log_format_escaped,
            "disabled_extensions": self.disabled_extensions(),
            "ignore_unknown_dynamic_fields": self.ignore_unknown_dynamic_fields,
            "reject_unknown_dynamic_fields": self.reject_unknown_dynamic_fields,
            "allow_unknown_static_fields": self.allows_unknown_static_fields(),
            "skip_hot_restart_on_no_parent": self.skip_hot_restart_on_no_parent,
            "skip_hot_restart_parent_stats": self.skip_hot_restart_parent_stats,
            "stats_tag": self.stats_tags,
            "file_flush_min_size": self.file_flush_min_size_kb.saturating_mul(1024).to_string(),
        })
    }
}

fn path_str(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_style_flags_parse() {
        let o = Options::try_parse_from([
            "baton",
            "-c",
            "envoy.yaml",
            "--mode",
            "validate",
            "--restart-epoch",
            "3",
            "--drain-strategy",
            "immediate",
            "-l",
            "warning",
            "--concurrency=2",
        ])
        .expect("parses");
        assert_eq!(o.config_path, Some(PathBuf::from("envoy.yaml")));
        assert_eq!(o.mode, Mode::Validate);
        assert_eq!(o.restart_epoch, 3);
        assert_eq!(o.drain_strategy, DrainStrategy::Immediate);
        assert_eq!(o.log_level, LogLevel::Warn);
        assert_eq!(o.workers(), 2);
    }

    #[test]
    fn init_only_and_unknown_flags() {
        let o = Options::try_parse_from(["baton", "--mode", "init_only"]).expect("parses");
        assert_eq!(o.mode, Mode::InitOnly);
        assert!(Options::try_parse_from(["baton", "--no-such-flag"]).is_err());
        // Envoy 1.40 has no --ignore-unknown-flags either.
        assert!(Options::try_parse_from(["baton", "--ignore-unknown-flags"]).is_err());
    }

    #[test]
    fn ignore_rest_ends_the_flags() {
        let o = Options::parse_envoy_args(["baton", "--base-id", "3", "--ignore_rest", "--bogus"])
            .expect("parses");
        assert_eq!(o.base_id, 3);
        assert_eq!(o.ignored_rest, vec!["--bogus".to_string()]);
        let o = Options::parse_envoy_args(["baton", "--", "x"]).expect("parses");
        assert_eq!(o.ignored_rest, vec!["x".to_string()]);
    }

    #[test]
    fn every_envoy_flag_parses() {
        let o = Options::parse_envoy_args([
            "baton",
            "--stats-tag",
            "env:prod",
            "--stats-tag",
            "zone:a",
            "--enable-core-dump",
            "--disable-extensions",
            "envoy.filters.http.buffer",
            "--cpuset-threads",
            "--enable-mutex-tracing",
            "--file-flush-min-size-kb",
            "8",
            "--enable-fine-grain-logging",
            "--log-format-escaped",
            "--log-stacktrace-single-entry",
            "--skip-deprecated-logs",
            "--ignore-unknown-dynamic-fields",
            "--reject-unknown-dynamic-fields",
            "--allow-unknown-static-fields",
            "--allow-unknown-fields",
            "--skip-hot-restart-parent-stats",
            "--skip-hot-restart-on-no-parent",
        ])
        .expect("parses");
        assert_eq!(o.stats_tags.len(), 2);
        assert_eq!(o.disabled_extensions(), vec!["envoy.filters.http.buffer"]);
        assert!(o.allows_unknown_static_fields());
    }
}
