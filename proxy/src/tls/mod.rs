//! TLS transport sockets (rustls, with the provider `baton_config::crypto` selects): the
//! server side of a filter chain (`DownstreamTlsContext`, built once per compiled chain),
//! the client side of a cluster (`UpstreamTlsContext`, in `client`), the `tls_inspector`
//! listener filter, the `ssl.*` stats, `/certs`, and what access logs and XFCC read from a TLS connection.

pub mod certs;
pub mod cipher_order;
pub mod client;
pub mod inspector;
pub mod peer;
mod resolver;
pub mod sds;
pub mod sds_tickets;
pub mod sds_xds;
pub mod server;
mod sigalgs;
pub mod stats;
pub mod tickets;

pub use inspector::{inspect, ClientHelloInfo};
pub use peer::{CertDetails, PeerCertificate};
pub use resolver::{with_hello, HelloScope};
pub use server::{build_server_config, ServerTls};
pub use stats::SslStats;

/// The crypto provider every TLS context uses: `baton_config::crypto`'s (aws-lc-rs, or
/// ring when built without the `aws-lc-rs` feature; README, TLS), made once.
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<std::sync::Arc<rustls::crypto::CryptoProvider>> =
        std::sync::OnceLock::new();
    PROVIDER
        .get_or_init(|| std::sync::Arc::new(baton_config::crypto::default_provider()))
        .clone()
}
