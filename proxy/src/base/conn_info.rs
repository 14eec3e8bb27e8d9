//! Facts about one accepted downstream connection, shared by the network filters
//! (HTTP connection manager, tcp_proxy) and access logs, and the handle through which
//! access logs hold them ([`ConnRef`]: the facts live inside whatever per-connection
//! state the network filter keeps, so that a connection costs one allocation, not two).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// One downstream connection as seen at accept time.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Process-unique connection id (`%CONNECTION_ID%`).
    pub id: u64,
    /// The client's address: the peer's, or the one a PROXY protocol header gave.
    pub remote: SocketAddr,
    /// Local address the connection arrived on (`%DOWNSTREAM_LOCAL_ADDRESS%`), or the
    /// destination a PROXY protocol header gave.
    pub local: SocketAddr,
    /// The peer's own address when a PROXY protocol header replaced `remote` (boxed:
    /// most connections have none).
    pub proxied_from: Option<Box<SocketAddr>>,
    /// TLS SNI when the transport is TLS (`%REQUESTED_SERVER_NAME%`).
    pub server_name: Option<Box<str>>,
    /// True when the transport is TLS (x-forwarded-proto https).
    pub tls: bool,
    /// The TLS session, once its handshake is done.
    pub tls_info: Option<std::sync::Arc<TlsInfo>>,
}

impl ConnInfo {
    /// A plaintext connection accepted now.
    pub fn plain(remote: SocketAddr, local: SocketAddr) -> Self {
        Self {
            id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
            remote,
            local,
            proxied_from: None,
            server_name: None,
            tls: false,
            tls_info: None,
        }
    }
}

impl ConnInfo {
    /// The peer's address (`%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%`).
    pub fn direct_remote(&self) -> SocketAddr {
        self.proxied_from.as_deref().copied().unwrap_or(self.remote)
    }

    /// Takes the addresses of a PROXY protocol header (remote, local).
    pub fn proxied(&mut self, (remote, local): (SocketAddr, SocketAddr)) {
        self.proxied_from = Some(Box::new(self.remote));
        self.remote = remote;
        self.local = local;
    }
}

/// Per-connection state that holds a connection's [`ConnInfo`] (the facts themselves, or
/// the HTTP connection manager's shared state with the facts inside).
pub trait HoldsConnInfo: std::fmt::Debug + Send + Sync + 'static {
    /// The connection's facts.
    fn conn_info(&self) -> &ConnInfo;
}

impl HoldsConnInfo for ConnInfo {
    fn conn_info(&self) -> &ConnInfo {
        self
    }
}

/// A shared handle on one connection's facts (dereferences to [`ConnInfo`]): what a
/// stream's access-log state keeps of its connection.
#[derive(Debug, Clone)]
pub struct ConnRef(Arc<dyn HoldsConnInfo>);

impl std::ops::Deref for ConnRef {
    type Target = ConnInfo;

    fn deref(&self) -> &ConnInfo {
        self.0.conn_info()
    }
}

impl<T: HoldsConnInfo> From<Arc<T>> for ConnRef {
    fn from(holder: Arc<T>) -> Self {
        Self(holder)
    }
}

/// A downstream TLS session's facts for access logs and XFCC.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// `TLSv1.2` / `TLSv1.3` (`%DOWNSTREAM_TLS_VERSION%`).
    pub version: Option<&'static str>,
    /// The client's certificate, parsed (`%DOWNSTREAM_PEER_SUBJECT%`, XFCC).
    pub peer: Option<crate::tls::PeerCertificate>,
    /// The client's certificate chain as it sent it, DER (XFCC `Cert` / `Chain`).
    pub peer_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// OpenSSL's name of the cipher suite (`%DOWNSTREAM_TLS_CIPHER%`).
    pub cipher: Option<&'static str>,
    /// URI SAN of Baton's own certificate for this connection (XFCC `By`).
    pub local_uri_san: Option<std::sync::Arc<str>>,
    /// Subject of Baton's own certificate (`%DOWNSTREAM_LOCAL_SUBJECT%`).
    pub local_subject: Option<std::sync::Arc<str>>,
    /// DNS SANs of Baton's own certificate (`%DOWNSTREAM_LOCAL_DNS_SAN%`).
    pub local_dns_san: Option<std::sync::Arc<str>>,
    /// The client's certificate was checked against trusted CAs in this handshake (a
    /// route's `tls_context.validated`; false on a resumed session, as Envoy's).
    pub peer_validated: bool,
}
