//! `<scope>.ssl.*` as Envoy names them (`listener.<address>.ssl.*`,
//! `cluster.<name>.ssl.*`). Per-version, per-cipher and per-curve counters appear on
//! first use, as Envoy's do. `<scope>.{server,client}_ssl_socket_factory.*` count SDS
//! swaps and connections refused while a secret is not ready.
//! `<scope>.ssl.certificate.<name>.expiration_unix_time_seconds` gauges are set by
//! [`super::certs`] from the certificates a context serves or trusts.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use baton_shared_stats::{Counter, Gauge};

use crate::stats::Scope;

/// Versions, ciphers and curves a rustls connection can report.
const VERSIONS: &[&str] = &["TLSv1.2", "TLSv1.3"];
const CIPHERS: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
];
const CURVES: &[&str] = &["X25519", "P-256", "P-384"];

/// Counters that exist once used.
struct Lazy {
    names: &'static [&'static str],
    prefix: &'static str,
    cells: Vec<OnceLock<Counter>>,
}

impl Lazy {
    fn new(names: &'static [&'static str], prefix: &'static str) -> Self {
        Self {
            names,
            prefix,
            cells: names.iter().map(|_| OnceLock::new()).collect(),
        }
    }

    fn inc(&self, scope: &Scope, name: &str) {
        if let Some(i) = self.names.iter().position(|n| *n == name) {
            self.cells[i]
                .get_or_init(|| scope.counter(&format!("{}.{name}", self.prefix)))
                .inc();
        }
    }
}

/// `<scope>.ssl.*`
pub struct SslStats {
    scope: Scope,
    /// `handshake`
    pub handshake: Counter,
    /// `connection_error`
    pub connection_error: Counter,
    /// `no_certificate`
    pub no_certificate: Counter,
    /// `fail_verify_error`
    pub fail_verify_error: Counter,
    /// `fail_verify_san`
    pub fail_verify_san: Counter,
    /// `fail_verify_no_cert`
    pub fail_verify_no_cert: Counter,
    /// `fail_verify_cert_hash`
    pub fail_verify_cert_hash: Counter,
    /// `session_reused`
    pub session_reused: Counter,
    /// `ocsp_staple_requests`: ClientHellos asking for a staple (`status_request`).
    pub ocsp_staple_requests: Counter,
    /// `ocsp_staple_responses`: of those, answered with the certificate's staple.
    pub ocsp_staple_responses: Counter,
    /// `ocsp_staple_omitted`: of those, answered without one (none configured, or an
    /// expired one under lenient stapling).
    pub ocsp_staple_omitted: Counter,
    /// `ocsp_staple_failed`: of those, refused because no certificate had a staple the
    /// `ocsp_staple_policy` accepts.
    pub ocsp_staple_failed: Counter,
    /// `certificate.<name>.expiration_unix_time_seconds`, by certificate name.
    expirations: Mutex<HashMap<String, Gauge>>,
    /// `server_ssl_socket_factory.*` (listeners) or `client_ssl_socket_factory.*`
    /// (clusters).
    pub factory: SocketFactoryStats,
    versions: Lazy,
    ciphers: Lazy,
    curves: Lazy,
}

impl std::fmt::Debug for SslStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SslStats").finish_non_exhaustive()
    }
}

impl SslStats {
    /// `ssl.*` under `prefix` (`listener.<address>.` or `cluster.<name>.`), with the
    /// socket factory's counters of `side`.
    pub fn new(store: &baton_shared_stats::StatsStore, prefix: &str, side: FactorySide) -> Self {
        let scope = Scope::new(store, format!("{prefix}ssl."));
        Self {
            factory: SocketFactoryStats::new(store, prefix, side),
            handshake: scope.counter("handshake"),
            connection_error: scope.counter("connection_error"),
            no_certificate: scope.counter("no_certificate"),
            fail_verify_error: scope.counter("fail_verify_error"),
            fail_verify_san: scope.counter("fail_verify_san"),
            fail_verify_no_cert: scope.counter("fail_verify_no_cert"),
            fail_verify_cert_hash: scope.counter("fail_verify_cert_hash"),
            session_reused: scope.counter("session_reused"),
            ocsp_staple_requests: scope.counter("ocsp_staple_requests"),
            ocsp_staple_responses: scope.counter("ocsp_staple_responses"),
            ocsp_staple_omitted: scope.counter("ocsp_staple_omitted"),
            ocsp_staple_failed: scope.counter("ocsp_staple_failed"),
            expirations: Mutex::new(HashMap::new()),
            versions: Lazy::new(VERSIONS, "versions"),
            ciphers: Lazy::new(CIPHERS, "ciphers"),
            curves: Lazy::new(CURVES, "curves"),
            scope,
        }
    }

    /// Sets `certificate.<name>.expiration_unix_time_seconds` (created on first use):
    /// the certificate's `notAfter` in Unix seconds. Called when a context is built or
    /// SDS swaps a secret, never per connection.
    pub fn set_expiration(&self, name: &str, not_after: u64) {
        let mut gauges = self.expirations.lock().unwrap_or_else(|e| e.into_inner());
        gauges
            .entry(name.to_string())
            .or_insert_with(|| {
                self.scope
                    .gauge_never_import(&format!("certificate.{name}.expiration_unix_time_seconds"))
            })
            .set(not_after);
    }

    /// One completed handshake.
    pub fn record_handshake(&self, hs: &HandshakeFacts) {
        self.handshake.inc();
        if hs.resumed {
            self.session_reused.inc();
        }
        if let Some(v) = hs.version {
            self.versions.inc(&self.scope, v);
        }
        if let Some(c) = hs.cipher {
            self.ciphers.inc(&self.scope, c);
        }
        if let Some(c) = hs.curve {
            self.curves.inc(&self.scope, c);
        }
    }
}

/// Which socket factory a context is: a listener's or a cluster's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorySide {
    /// `server_ssl_socket_factory`
    Server,
    /// `client_ssl_socket_factory`
    Client,
}

/// `<scope>.{server,client}_ssl_socket_factory.*`: Envoy gives both kinds all three.
#[derive(Clone)]
pub struct SocketFactoryStats {
    /// `ssl_context_update_by_sds`: a secret the context uses was swapped by SDS.
    pub ssl_context_update_by_sds: Counter,
    /// `upstream_context_secrets_not_ready`
    pub upstream_context_secrets_not_ready: Counter,
    /// `downstream_context_secrets_not_ready`
    pub downstream_context_secrets_not_ready: Counter,
}

impl std::fmt::Debug for SocketFactoryStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketFactoryStats").finish_non_exhaustive()
    }
}

impl SocketFactoryStats {
    fn new(store: &baton_shared_stats::StatsStore, prefix: &str, side: FactorySide) -> Self {
        let kind = match side {
            FactorySide::Server => "server",
            FactorySide::Client => "client",
        };
        let scope = Scope::new(store, format!("{prefix}{kind}_ssl_socket_factory."));
        Self {
            ssl_context_update_by_sds: scope.counter("ssl_context_update_by_sds"),
            upstream_context_secrets_not_ready: scope.counter("upstream_context_secrets_not_ready"),
            downstream_context_secrets_not_ready: scope
                .counter("downstream_context_secrets_not_ready"),
        }
    }
}

/// What a finished handshake negotiated, in Envoy's (OpenSSL) spelling.
#[derive(Debug, Clone, Copy, Default)]
pub struct HandshakeFacts {
    /// `TLSv1.2` / `TLSv1.3`
    pub version: Option<&'static str>,
    /// OpenSSL cipher name (`ECDHE-RSA-AES128-GCM-SHA256`, `TLS_AES_128_GCM_SHA256`).
    pub cipher: Option<&'static str>,
    /// `X25519`, `P-256`, `P-384`
    pub curve: Option<&'static str>,
    /// The session was resumed.
    pub resumed: bool,
}

impl HandshakeFacts {
    /// Reads them from a connection whose handshake is complete.
    pub fn of<D>(conn: &rustls::ConnectionCommon<D>) -> Self {
        use rustls::{CipherSuite as C, NamedGroup, ProtocolVersion};
        let version = match conn.protocol_version() {
            Some(ProtocolVersion::TLSv1_2) => Some("TLSv1.2"),
            Some(ProtocolVersion::TLSv1_3) => Some("TLSv1.3"),
            _ => None,
        };
        let cipher = conn.negotiated_cipher_suite().and_then(|s| {
            Some(match s.suite() {
                C::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
                C::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
                C::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
                C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
                C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
                C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-ECDSA-CHACHA20-POLY1305",
                C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
                C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
                C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
                _ => return None,
            })
        });
        let curve = conn
            .negotiated_key_exchange_group()
            .and_then(|g| match g.name() {
                NamedGroup::X25519 => Some("X25519"),
                NamedGroup::secp256r1 => Some("P-256"),
                NamedGroup::secp384r1 => Some("P-384"),
                _ => None,
            });
        let resumed = matches!(conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
        Self {
            version,
            cipher,
            curve,
            resumed,
        }
    }
}
