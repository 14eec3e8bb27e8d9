//! The supervisor's resolved settings: the YAML config file (optional) overlaid with command
//! line flags, with defaults filled in. Also finds the control socket for `ctl`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cli::RunArgs;

/// Default runtime directory when neither a flag nor `$RUNTIME_DIRECTORY` names one.
pub const DEFAULT_RUNTIME_DIR: &str = "/run/baton";
/// File name of the control socket inside the runtime directory.
pub const CONTROL_SOCKET_NAME: &str = "control.sock";

/// Why settings could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The config file could not be read.
    #[error("cannot read supervisor config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid.
    #[error("invalid supervisor config {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The YAML error (with line and column).
        source: serde_yaml_ng::Error,
    },
    /// No baton arguments: the proxy needs at least a config.
    #[error("no baton arguments: pass them after `--` (e.g. `-- -c /etc/baton/baton.yaml`) or as `args:` in --config")]
    NoBatonArgs,
}

/// The config file (`--config`): every key is optional and flags override it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// `binary:`
    pub binary: Option<PathBuf>,
    /// `args:` for baton.
    pub args: Option<Vec<String>>,
    /// `runtime_dir:`
    pub runtime_dir: Option<PathBuf>,
    /// `control_socket:`
    pub control_socket: Option<PathBuf>,
    /// `base_id:`
    pub base_id: Option<u32>,
    /// `hold_sockets:`
    pub hold_sockets: Option<bool>,
    /// `ready_timeout_s:`
    pub ready_timeout_s: Option<u64>,
    /// `stop_timeout_s:`
    pub stop_timeout_s: Option<u64>,
    /// `respawn_backoff_ms:`
    pub respawn_backoff_ms: Option<u64>,
    /// `respawn_max_backoff_ms:`
    pub respawn_max_backoff_ms: Option<u64>,
    /// `respawn_limit:`
    pub respawn_limit: Option<u32>,
    /// `respawn_reset_s:`
    pub respawn_reset_s: Option<u64>,
}

impl FileSettings {
    /// Reads `path`, or returns empty settings when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, SettingsError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_yaml_ng::from_str(&text).map_err(|source| SettingsError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Crash-respawn policy.
#[derive(Debug, Clone, Copy)]
pub struct RespawnPolicy {
    /// Delay before the first respawn.
    pub initial_backoff: Duration,
    /// Upper bound of the doubling delay.
    pub max_backoff: Duration,
    /// Consecutive crashes tolerated; one more and the supervisor exits.
    pub limit: u32,
    /// A generation that stayed LIVE this long resets the consecutive count.
    pub reset_after: Duration,
}

impl RespawnPolicy {
    /// Delay before respawn number `attempt` (1-based) of a crash streak.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Everything the supervisor runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The baton binary for new generations (an upgrade replaces it).
    pub binary: PathBuf,
    /// The user's baton arguments (`-c ...`); the supervisor appends epoch/base id/runtime dir.
    pub baton_args: Vec<String>,
    /// The runtime directory (0700).
    pub runtime_dir: PathBuf,
    /// The control socket (0600).
    pub control_socket: PathBuf,
    /// `--base-id` for every generation.
    pub base_id: u32,
    /// Bind the bootstrap's listeners here and pass them down.
    pub hold_sockets: bool,
    /// Time a new generation has to report READY=1 when configured (`0` = wait
    /// forever); None: derived from the bootstrap (see [`Settings::ready_timeout`]).
    pub ready_timeout_configured: Option<Duration>,
    /// Time a graceful stop waits before SIGKILL.
    pub stop_timeout: Duration,
    /// Crash respawn.
    pub respawn: RespawnPolicy,
}

/// Ready timeout for a static bootstrap.
const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Added to the chained xDS fetch timeouts (process start, DNS, warming).
const XDS_READY_MARGIN: Duration = Duration::from_secs(30);

impl Settings {
    /// Resolves flags over the config file over defaults.
    pub fn resolve(args: RunArgs) -> Result<Self, SettingsError> {
        let file = FileSettings::load(args.config.as_deref())?;
        let baton_args = if args.baton_args.is_empty() {
            file.args.unwrap_or_default()
        } else {
            args.baton_args
        };
        if baton_args.is_empty() {
            return Err(SettingsError::NoBatonArgs);
        }
        let runtime_dir = args
            .runtime_dir
            .or(file.runtime_dir)
            .unwrap_or_else(default_runtime_dir);
        let control_socket = args
            .control_socket
            .or(file.control_socket)
            .unwrap_or_else(|| runtime_dir.join(CONTROL_SOCKET_NAME));
        Ok(Self {
            binary: args
                .binary
                .or(file.binary)
                .unwrap_or_else(default_baton_binary),
            baton_args,
            runtime_dir,
            control_socket,
            base_id: args.base_id.or(file.base_id).unwrap_or(0),
            hold_sockets: args.hold_sockets || file.hold_sockets.unwrap_or(false),
            ready_timeout_configured: args
                .ready_timeout_s
                .or(file.ready_timeout_s)
                .map(Duration::from_secs),
            stop_timeout: Duration::from_secs(
                args.stop_timeout_s.or(file.stop_timeout_s).unwrap_or(30),
            ),
            respawn: RespawnPolicy {
                initial_backoff: Duration::from_millis(
                    args.respawn_backoff_ms
                        .or(file.respawn_backoff_ms)
                        .unwrap_or(100),
                ),
                max_backoff: Duration::from_millis(
                    args.respawn_max_backoff_ms
                        .or(file.respawn_max_backoff_ms)
                        .unwrap_or(10_000),
                ),
                limit: args.respawn_limit.or(file.respawn_limit).unwrap_or(5),
                reset_after: Duration::from_secs(
                    args.respawn_reset_s.or(file.respawn_reset_s).unwrap_or(60),
                ),
            },
        })
    }

    /// The time a new generation has to report READY=1 (None: no limit). Configured
    /// (`ready_timeout_s`, `0` = no limit), else derived from the bootstrap as it is now:
    /// 60 s, or for a bootstrap with dynamic resources the chained
    /// `initial_fetch_timeout`s (static EDS, CDS, the CDS clusters' EDS, LDS, RDS) plus
    /// 30 s when that is longer, and no limit when one of them is `0s` (wait forever).
    pub fn ready_timeout(&self) -> Option<Duration> {
        if let Some(t) = self.ready_timeout_configured {
            return (!t.is_zero()).then_some(t);
        }
        let budget = self
            .bootstrap_path()
            .and_then(|p| baton_config::load_file(&p).ok())
            .map(|l| l.model.xds_init_budget());
        match budget {
            Some(baton_config::model::XdsInitBudget::Unbounded) => None,
            Some(baton_config::model::XdsInitBudget::Bounded(d)) => {
                Some(DEFAULT_READY_TIMEOUT.max(d + XDS_READY_MARGIN))
            }
            _ => Some(DEFAULT_READY_TIMEOUT),
        }
    }

    /// The bootstrap path from the baton arguments (`-c X`, `-cX`, `--config-path X`,
    /// `--config-path=X`), used to find the listeners the supervisor holds.
    pub fn bootstrap_path(&self) -> Option<PathBuf> {
        bootstrap_path(&self.baton_args)
    }
}

/// See [`Settings::bootstrap_path`].
pub fn bootstrap_path(args: &[String]) -> Option<PathBuf> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "-c" || arg == "--config-path" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(value) = arg.strip_prefix("--config-path=") {
            return Some(PathBuf::from(value));
        }
        if let Some(value) = arg.strip_prefix("-c").filter(|v| !v.is_empty()) {
            return Some(PathBuf::from(value));
        }
    }
    None
}

/// `$RUNTIME_DIRECTORY` (set by systemd's `RuntimeDirectory=`; the first entry when it
/// lists several) or [`DEFAULT_RUNTIME_DIR`].
pub fn default_runtime_dir() -> PathBuf {
    std::env::var_os("RUNTIME_DIRECTORY")
        .and_then(|dirs| {
            dirs.to_string_lossy()
                .split(':')
                .next()
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RUNTIME_DIR))
}

/// `baton` next to this executable when it exists there, else plain `baton` (PATH lookup).
fn default_baton_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("baton")))
        .filter(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from("baton"))
}

/// The control socket `ctl` talks to: flag, else the config file's, else in the runtime dir.
pub fn ctl_socket_path(
    control_socket: Option<PathBuf>,
    runtime_dir: Option<PathBuf>,
    config: Option<&Path>,
) -> Result<PathBuf, SettingsError> {
    if let Some(path) = control_socket {
        return Ok(path);
    }
    let file = FileSettings::load(config)?;
    if let Some(path) = file.control_socket {
        return Ok(path);
    }
    let dir = runtime_dir
        .or(file.runtime_dir)
        .unwrap_or_else(default_runtime_dir);
    Ok(dir.join(CONTROL_SOCKET_NAME))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn finds_bootstrap_path_in_every_spelling() {
        assert_eq!(
            bootstrap_path(&strings(&["-c", "a.yaml"])),
            Some("a.yaml".into())
        );
        assert_eq!(
            bootstrap_path(&strings(&["-cb.yaml"])),
            Some("b.yaml".into())
        );
        assert_eq!(
            bootstrap_path(&strings(&["-l", "info", "--config-path", "c.yaml"])),
            Some("c.yaml".into())
        );
        assert_eq!(
            bootstrap_path(&strings(&["--config-path=d.yaml"])),
            Some("d.yaml".into())
        );
        assert_eq!(bootstrap_path(&strings(&["--concurrency", "2"])), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RespawnPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            limit: 5,
            reset_after: Duration::from_secs(60),
        };
        assert_eq!(policy.backoff(1), Duration::from_millis(100));
        assert_eq!(policy.backoff(2), Duration::from_millis(200));
        assert_eq!(policy.backoff(4), Duration::from_millis(800));
        assert_eq!(policy.backoff(5), Duration::from_millis(1000));
        assert_eq!(policy.backoff(64), Duration::from_millis(1000));
    }

    #[test]
    fn flags_override_file_and_file_args_are_used() {
        let dir = std::env::temp_dir().join(format!("baton-sup-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let file = dir.join("sup.yaml");
        std::fs::write(
            &file,
            "binary: /opt/baton\nargs: [\"-c\", \"/etc/b.yaml\"]\nruntime_dir: /run/x\nready_timeout_s: 5\n",
        )
        .expect("write");
        let settings = Settings::resolve(RunArgs {
            config: Some(file.clone()),
            ready_timeout_s: Some(7),
            ..RunArgs::default()
        })
        .expect("resolves");
        assert_eq!(settings.binary, PathBuf::from("/opt/baton"));
        assert_eq!(settings.baton_args, ["-c", "/etc/b.yaml"]);
        assert_eq!(
            settings.control_socket,
            PathBuf::from("/run/x/control.sock")
        );
        assert_eq!(settings.ready_timeout(), Some(Duration::from_secs(7)));
        std::fs::write(&file, "bogus: 1\n").expect("write");
        let err = Settings::resolve(RunArgs {
            config: Some(file),
            ..RunArgs::default()
        })
        .expect_err("unknown key");
        assert!(err.to_string().contains("bogus"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
