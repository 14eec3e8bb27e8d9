//! Cross-process integration test support for Baton (used by `tests/tests/*.rs`):
//! a process guard for the proxy under test ([`process`]), Envoy v3 bootstrap builders
//! ([`config`]), a test xDS control plane ([`xds`]), in-process upstreams ([`upstream`] for
//! HTTP echo, [`tcp`] for raw TCP and upgrades), a DNS responder for DNS clusters ([`dns`]), downstream clients ([`client`])
//! bounded waiting ([`eventually`]) and zoned load-balancing setups ([`zone`]).
//!
//! The same tests run against real Envoy with `BATON_BIN=/path/to/envoy`, which is how their
//! expectations are checked to be Envoy's.

pub mod client;
pub mod config;
pub mod differential;
pub mod dns;
pub mod eventually;
pub mod h2raw;
pub mod hpack;
pub mod process;
pub mod socket_match;
pub mod tcp;
pub mod tls;
pub mod tls_upstream;
pub mod upstream;
pub mod xds;
pub mod zone;

pub use client::{get, get_with, http1_request, H2Client, RawHttp1, RawResponse};
pub use eventually::{eventually, IO_TIMEOUT, STARTUP_TIMEOUT};
pub use process::{
    is_envoy, proxy_binary, run_to_completion, run_to_completion_in, Proxy, StartOptions, TempDir,
};
pub use tcp::TcpServer;
pub use upstream::{EchoUpstream, Echoed};

/// Skips the rest of a test when running against real Envoy, for behaviour that an issue says
/// Baton does differently by design. Usage: `skip_for_envoy!("reason");`
#[macro_export]
macro_rules! skip_for_envoy {
    ($reason:expr) => {
        if $crate::is_envoy() {
            eprintln!("skipped for Envoy: {}", $reason);
            return Ok(());
        }
    };
}
