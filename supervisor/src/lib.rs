//! `baton-supervisor`: runs `baton` generations in the foreground (under systemd or a
//! terminal) and makes reloads, binary upgrades and crashes cost no requests.
//!
//! - [`cli`] / [`settings`]: flags and the optional YAML config file.
//! - [`supervisor`] / [`transitions`]: the event loop owning every [`generation`].
//! - [`spawn`]: starting a generation (sd_notify socket, passed listen sockets, death
//!   signal, prefixed output forwarding).
//! - [`notify`]: sd_notify to systemd and from the generations (READY=1 = LIVE).
//! - [`sockets`]: socket activation and supervisor-held listen sockets.
//! - [`control`] / [`ctl`]: the control socket and the `ctl` client; [`upgrade`]: checks
//!   of a new binary.
//!
//! The sequences are walked through in `LIFECYCLE.md` next to this crate's sources.

pub mod cli;
pub mod control;
pub mod ctl;
pub mod generation;
pub mod notify;
pub mod settings;
pub mod sockets;
pub mod spawn;
pub mod supervisor;
mod transitions;
pub mod upgrade;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use clap::Parser;
use tokio::sync::mpsc;

use crate::cli::{Cli, Command};
use crate::settings::Settings;

/// Exit codes of `baton-supervisor` and `baton-supervisor ctl`.
pub mod exit {
    /// Success (a clean stop; a ctl request that succeeded; `status` with a LIVE generation).
    pub const OK: u8 = 0;
    /// Failure: a ctl request failed (reload/upgrade error, no live generation), or the
    /// supervisor could not set up (runtime dir, control socket, listen sockets).
    pub const FAILED: u8 = 1;
    /// Bad command line or supervisor config (clap's own code is also 2).
    pub const USAGE: u8 = 2;
    /// `ctl`: the supervisor is not reachable (not running), as LSB's "not running".
    pub const UNREACHABLE: u8 = 3;
    /// Generation 0 never became LIVE (its error is logged).
    pub const START_FAILED: u8 = 4;
    /// The live generation kept crashing past the respawn limit.
    pub const RESPAWN_LIMIT: u8 = 5;
}

/// The whole program: parses the command line and runs the supervisor, `ctl` or the
/// `exec-child` step. Returns the process exit code.
pub fn main_entry() -> u8 {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::ExecChild { argv }) => {
            // Only returns when exec failed.
            let err = spawn::exec_child(&argv);
            eprintln!("baton-supervisor: {err:#}");
            exit::FAILED
        }
        Some(Command::Ctl(args)) => match current_thread_runtime() {
            Ok(runtime) => runtime.block_on(ctl::run(args)),
            Err(err) => {
                eprintln!("baton-supervisor ctl: {err}");
                exit::FAILED
            }
        },
        None => {
            init_logging();
            let settings = match Settings::resolve(cli.run) {
                Ok(settings) => settings,
                Err(err) => {
                    tracing::error!("{err}");
                    return exit::USAGE;
                }
            };
            match run_supervisor(settings) {
                Ok(code) => code,
                Err(err) => {
                    tracing::error!("{err:#}");
                    exit::FAILED
                }
            }
        }
    }
}

/// The supervisor runs on one thread on purpose: PR_SET_PDEATHSIG fires when the thread
/// that forked a child exits, so every generation is forked from the main thread.
fn current_thread_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BATON_SUPERVISOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // Colours only on a terminal, never in the journal or a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Prepares the runtime directory and listen sockets, binds the control socket and runs
/// the loop.
pub fn run_supervisor(settings: Settings) -> anyhow::Result<u8> {
    use anyhow::Context;
    // Socket-activation fds first, before anything else could open fds over them.
    let activated = sockets::take_activation_sockets()?;
    prepare_private_dir(&settings.runtime_dir)?;
    // The supervisor owns the stats region: it creates it before generation 0 and holds
    // it for its whole life, so the region is never replaced between generations (even
    // when every generation has crashed) and counters survive reloads and respawns.
    // Sized from the bootstrap so a big config does not overflow it; a bootstrap that
    // does not load gets the default size (the generation reports the error).
    let bootstrap = settings
        .bootstrap_path()
        .map(|path| baton_config::load_file(&path));
    let max_stats = match &bootstrap {
        Some(Ok(loaded)) => loaded.model.stats_capacity_hint(),
        _ => baton_shared_stats::RegionConfig::new(&settings.runtime_dir, 0).max_stats,
    };
    let stats_region = baton_shared_stats::RegionOwner::open_or_create(
        &baton_shared_stats::RegionConfig::for_stats(
            &settings.runtime_dir,
            settings.base_id,
            max_stats,
        ),
    )
    .with_context(|| {
        format!(
            "creating the stats region in {}",
            settings.runtime_dir.display()
        )
    })?;
    let listen_sockets = if settings.hold_sockets || !activated.is_empty() {
        let listeners = match (settings.bootstrap_path(), bootstrap) {
            (Some(path), Some(loaded)) => sockets::bootstrap_listeners(&path, loaded)?,
            _ if settings.hold_sockets => return Err(sockets::SocketsError::NoBootstrap.into()),
            _ => Vec::new(),
        };
        sockets::prepare(activated, &listeners, settings.hold_sockets)?
    } else {
        Vec::new()
    };
    let notifier = notify::Notifier::from_env();
    let runtime = current_thread_runtime()?;
    runtime.block_on(async move {
        let control_path = settings.control_socket.clone();
        let listener = control::bind(&control_path).await?;
        tracing::info!(
            pid = std::process::id(),
            control = %control_path.display(),
            runtime_dir = %settings.runtime_dir.display(),
            sockets = listen_sockets.len(),
            "baton-supervisor starting"
        );
        let (control_tx, control_rx) = mpsc::channel(16);
        let inflight = control::InFlight::default();
        let server = tokio::spawn(control::serve(listener, control_tx, inflight.clone()));
        let (events_tx, events_rx) = mpsc::channel(256);
        let supervisor = supervisor::Supervisor::new(settings, listen_sockets, notifier, events_tx);
        let code = supervisor.run(events_rx, control_rx).await;
        server.abort();
        // The supervisor (and its reply senders) is gone: let the last answers out.
        inflight.drain(Duration::from_secs(2)).await;
        let _ = std::fs::remove_file(&control_path);
        drop(stats_region);
        code
    })
}

/// Creates `dir` if needed, refuses it when another user owns it (they could then talk
/// to our control socket or replace our sockets), and makes it 0700.
fn prepare_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::os::unix::fs::MetadataExt;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating runtime dir {}", dir.display()))?;
    let meta = std::fs::metadata(dir).with_context(|| format!("stat {}", dir.display()))?;
    let me = nix::unistd::getuid().as_raw();
    if meta.uid() != me {
        anyhow::bail!(
            "runtime directory {} is owned by uid {}, not by us (uid {me})",
            dir.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("chmod 0700 {}", dir.display()))?;
    }
    Ok(())
}
