//! `--enable-core-dump`: the core-file size limit raised to its hard limit and the process
//! marked dumpable, so a crash leaves a core file where the system puts them.

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use tracing::{info, warn};

/// Applies `--enable-core-dump`; failures are logged, never fatal (as in Envoy).
pub fn enable() {
    match getrlimit(Resource::RLIMIT_CORE) {
        Ok((_, hard)) => {
            if let Err(e) = setrlimit(Resource::RLIMIT_CORE, hard, hard) {
                warn!("--enable-core-dump: cannot raise the core size limit: {e}");
            }
        }
        Err(e) => warn!("--enable-core-dump: cannot read the core size limit: {e}"),
    }
    if let Err(e) = nix::sys::prctl::set_dumpable(true) {
        warn!("--enable-core-dump: cannot mark the process dumpable: {e}");
    }
    info!("core dumps enabled");
}
