//! TLS for the test control plane: the server config new connections are accepted with
//! (swappable while serving, so a test can fix a certificate the proxy refused while it
//! retries) and what each handshake negotiated or why it failed.

use std::sync::{Arc, Mutex, MutexGuard};

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;

/// What one completed handshake negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// The ALPN protocol agreed (`None`: the client offered none the server has).
    pub alpn: Option<String>,
    /// The SNI the client sent.
    pub sni: Option<String>,
    /// Whether the client presented a certificate.
    pub client_cert: bool,
}

#[derive(Debug)]
struct State {
    config: Arc<ServerConfig>,
    handshakes: Vec<Handshake>,
    failures: Vec<String>,
}

/// The TLS side of a control plane.
#[derive(Debug)]
pub struct ServingTls {
    state: Mutex<State>,
}

impl ServingTls {
    /// Accepts with `config`.
    pub fn new(config: Arc<ServerConfig>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                config,
                handshakes: Vec::new(),
                failures: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections accepted from now on use `config`.
    pub fn set_config(&self, config: Arc<ServerConfig>) {
        self.lock().config = config;
    }

    /// Every completed handshake so far, in order.
    pub fn handshakes(&self) -> Vec<Handshake> {
        self.lock().handshakes.clone()
    }

    /// Every failed handshake so far (the error rustls gave), in order.
    pub fn failures(&self) -> Vec<String> {
        self.lock().failures.clone()
    }

    /// The handshake on an accepted connection, logged either way.
    pub(super) async fn accept<S>(&self, stream: S) -> Option<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let config = self.lock().config.clone();
        let accepted = tokio::time::timeout(
            crate::IO_TIMEOUT,
            tokio_rustls::TlsAcceptor::from(config).accept(stream),
        )
        .await;
        match accepted {
            Ok(Ok(tls)) => {
                let session = tls.get_ref().1;
                let handshake = Handshake {
                    alpn: session
                        .alpn_protocol()
                        .map(|p| String::from_utf8_lossy(p).into_owned()),
                    sni: session.server_name().map(str::to_owned),
                    client_cert: session.peer_certificates().is_some_and(|c| !c.is_empty()),
                };
                self.lock().handshakes.push(handshake);
                Some(tls)
            }
            Ok(Err(e)) => {
                self.lock().failures.push(e.to_string());
                None
            }
            Err(_) => {
                self.lock().failures.push("handshake timed out".into());
                None
            }
        }
    }
}
