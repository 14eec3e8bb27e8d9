//! The crypto provider behind every TLS context: rustls' ring provider by default, or
//! aws-lc-rs with the `aws-lc-rs` cargo feature (of this crate, or `baton-proxy`'s, which
//! forwards it). Config translation (key loading, cipher suites, curves) and the proxy's
//! TLS contexts both take it from here, so the two can never mix providers. Why ring is
//! the default: README, TLS (measured with `bench/tls`).

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
