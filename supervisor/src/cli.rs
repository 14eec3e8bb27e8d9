//! Command line of `baton-supervisor`: run the supervisor (the default), `ctl` to talk to a
//! running one, and the hidden `exec-child` step used to start a generation with
//! `LISTEN_PID` equal to its own pid.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `baton-supervisor [OPTIONS] [-- BATON ARGS...]` or `baton-supervisor ctl COMMAND`.
#[derive(Debug, Parser)]
#[command(
    name = "baton-supervisor",
    version,
    about = "Runs baton generations: zero-downtime reload and upgrade, crash respawn, sd_notify",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// `ctl` (talk to a running supervisor); without it, run the supervisor.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Supervisor settings (flags override the config file).
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Talk to a running supervisor over its control socket.
    Ctl(CtlArgs),
    /// Internal: sets LISTEN_PID to this process's pid, then execs the given command.
    #[command(name = "exec-child", hide = true)]
    ExecChild {
        /// The program and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        argv: Vec<String>,
    },
}

/// Flags of the supervisor itself. Every one can also come from `--config`.
#[derive(Debug, Default, Args)]
pub struct RunArgs {
    /// Supervisor config file (YAML; see docs/systemd.md). Flags override its values.
    #[arg(long = "config")]
    pub config: Option<PathBuf>,

    /// The `baton` binary (default: `baton` next to this executable, else from PATH).
    #[arg(long = "binary")]
    pub binary: Option<PathBuf>,

    /// Runtime directory owned by the supervisor (mode 0700): hot-restart, notify and
    /// control sockets (default: $RUNTIME_DIRECTORY, else /run/baton).
    #[arg(long = "runtime-dir")]
    pub runtime_dir: Option<PathBuf>,

    /// Control socket path (default: <runtime-dir>/control.sock).
    #[arg(long = "control-socket")]
    pub control_socket: Option<PathBuf>,

    /// `--base-id` passed to every generation.
    #[arg(long = "base-id")]
    pub base_id: Option<u32>,

    /// Bind the bootstrap's listeners in the supervisor and pass them to every
    /// generation, so even a crash of the live generation refuses no connection.
    #[arg(long = "hold-sockets")]
    pub hold_sockets: bool,

    /// Seconds a new generation has to report READY=1.
    #[arg(long = "ready-timeout-s")]
    pub ready_timeout_s: Option<u64>,

    /// Seconds a graceful stop waits for generations to drain before killing them.
    #[arg(long = "stop-timeout-s")]
    pub stop_timeout_s: Option<u64>,

    /// First crash-respawn delay in milliseconds (doubles on each consecutive crash).
    #[arg(long = "respawn-backoff-ms")]
    pub respawn_backoff_ms: Option<u64>,

    /// Largest crash-respawn delay in milliseconds.
    #[arg(long = "respawn-max-backoff-ms")]
    pub respawn_max_backoff_ms: Option<u64>,

    /// Consecutive crashes after which the supervisor gives up (exit code 3).
    #[arg(long = "respawn-limit")]
    pub respawn_limit: Option<u32>,

    /// A generation LIVE this many seconds resets the consecutive-crash count.
    #[arg(long = "respawn-reset-s")]
    pub respawn_reset_s: Option<u64>,

    /// Arguments for `baton` (after `--`), e.g. `-- -c /etc/baton/baton.yaml`.
    #[arg(last = true)]
    pub baton_args: Vec<String>,
}

/// `baton-supervisor ctl ...`
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// Control socket path (default: <runtime-dir>/control.sock).
    #[arg(long = "control-socket", global = true)]
    pub control_socket: Option<PathBuf>,

    /// Runtime directory of the supervisor (default: $RUNTIME_DIRECTORY, else /run/baton).
    #[arg(long = "runtime-dir", global = true)]
    pub runtime_dir: Option<PathBuf>,

    /// Supervisor config file, to find the control socket the same way it does.
    #[arg(long = "config", global = true)]
    pub config: Option<PathBuf>,

    /// Seconds to wait for the answer (a reload waits for the new generation).
    #[arg(long = "timeout-s", global = true, default_value_t = 120)]
    pub timeout_s: u64,

    /// What to ask.
    #[command(subcommand)]
    pub action: CtlAction,
}

/// The control operations.
#[derive(Debug, Subcommand)]
pub enum CtlAction {
    /// Generations (epoch, pid, state, uptime, binary) and the last reload's result.
    /// Exit 0 when a generation is LIVE, 1 when none is, 3 when the supervisor is unreachable.
    Status {
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Start the next generation; exit 0 once it is LIVE, 1 with its error otherwise.
    Reload,
    /// Start the next generation from another binary (checked with --version and
    /// --mode validate first); exit 0 once it is LIVE.
    Upgrade {
        /// Path of the new `baton` binary.
        #[arg(long)]
        binary: PathBuf,
    },
    /// Graceful stop: drain every generation, then the supervisor exits 0.
    Stop,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_flags_and_trailing_baton_args() {
        let cli = Cli::try_parse_from([
            "baton-supervisor",
            "--hold-sockets",
            "--runtime-dir",
            "/tmp/x",
            "--",
            "-c",
            "b.yaml",
            "--concurrency",
            "2",
        ])
        .expect("parses");
        assert!(cli.command.is_none());
        assert!(cli.run.hold_sockets);
        assert_eq!(cli.run.baton_args, ["-c", "b.yaml", "--concurrency", "2"]);
    }

    #[test]
    fn ctl_subcommands() {
        let cli = Cli::try_parse_from(["baton-supervisor", "ctl", "status", "--json"]).expect("ok");
        assert!(matches!(
            cli.command,
            Some(Command::Ctl(CtlArgs {
                action: CtlAction::Status { json: true },
                ..
            }))
        ));
        let cli = Cli::try_parse_from([
            "baton-supervisor",
            "ctl",
            "--runtime-dir",
            "/r",
            "upgrade",
            "--binary",
            "/b",
        ])
        .expect("ok");
        match cli.command {
            Some(Command::Ctl(ctl)) => {
                assert_eq!(ctl.runtime_dir, Some(PathBuf::from("/r")));
                assert!(matches!(ctl.action, CtlAction::Upgrade { .. }));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn exec_child_keeps_hyphen_args() {
        let cli = Cli::try_parse_from([
            "baton-supervisor",
            "exec-child",
            "/bin/baton",
            "-c",
            "x",
            "--restart-epoch",
            "1",
        ])
        .expect("ok");
        match cli.command {
            Some(Command::ExecChild { argv }) => {
                assert_eq!(argv, ["/bin/baton", "-c", "x", "--restart-epoch", "1"])
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
