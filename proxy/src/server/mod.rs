//! Process lifecycle: command line, config load, Envoy's initialisation order (clusters,
//! then listeners), workers, the admin listener, signals and drain.

pub mod cli;
pub mod cli_checks;
pub mod core_dump;
pub mod dynamic;
pub mod hot_restart;
pub mod init;
pub mod listener_manager;
pub mod logging;
pub mod notify;
pub mod run;
pub mod runtime_dir;
mod signals;
pub mod state;
pub mod stats_cmd;
mod stats_region;
pub mod workers;
pub mod xds_handlers;

pub use run::run;

/// Baton's version string (`--version`, /server_info).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `--version` line, shaped like Envoy's.
pub fn version_line() -> String {
    let build = if cfg!(debug_assertions) {
        "DEBUG"
    } else {
        "RELEASE"
    };
    format!("baton  version: {VERSION}/Clean/{build}/rustls-ring")
}
