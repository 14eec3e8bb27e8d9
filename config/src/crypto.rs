//! The crypto provider behind every TLS context: rustls' aws-lc-rs provider with the
//! `aws-lc-rs` cargo feature (a default of this crate and of `baton-proxy`, which forwards
//! it), ring without it (`cargo build -p baton-proxy --no-default-features`). Config
//! translation (key loading, cipher suites, curves) and the proxy's TLS contexts both take
//! it from here, so the two never mix providers. Why aws-lc-rs is the default: README, TLS
//! (measured with `bench/tls`).

#[cfg(feature = "aws-lc-rs")]
use rustls::crypto::aws_lc_rs as selected;
#[cfg(not(feature = "aws-lc-rs"))]
use rustls::crypto::ring as selected;

pub use selected::{cipher_suite, kx_group};

/// The provider's name, as `--version`-style diagnostics and the bench report it.
pub const PROVIDER_NAME: &str = if cfg!(feature = "aws-lc-rs") {
    "aws-lc-rs"
} else {
    "ring"
};

/// The selected provider with its default suites and groups (TLS contexts replace both
/// with what their `tls_params` select). rustls deprecates its ring provider for lacking
/// post-quantum key exchange; Baton offers the curves Envoy does, none of them
/// post-quantum, so either provider negotiates the same groups.
#[allow(deprecated)]
pub fn default_provider() -> rustls::crypto::CryptoProvider {
    selected::default_provider()
}
