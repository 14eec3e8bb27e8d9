//! A keep-alive TLS HTTP/1.1 upstream that reports the SNI of each connection, for
//! upstream TLS tests (SNI choice, connection reuse, transport socket matches).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::tls::TestCert;

/// A keep-alive TLS HTTP/1.1 upstream: each response's body is the SNI of its connection
/// (`-` without one); `handshakes` lists the SNI of every accepted connection.
pub struct SniUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    handshakes: Arc<Mutex<Vec<Option<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SniUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SniUpstream {
    /// Serves `cert` on 127.0.0.1:0.
    pub async fn start(cert: &TestCert) -> anyhow::Result<Self> {
        let chain = vec![CertificateDer::from_pem_slice(cert.cert_pem.as_bytes())?];
        let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes())?;
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let log = handshakes.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let sni = tls.get_ref().1.server_name().map(str::to_string);
                    if let Ok(mut log) = log.lock() {
                        log.push(sni.clone());
                    }
                    let body = sni.unwrap_or_else(|| "-".to_string());
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let response = format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if tls.write_all(response.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        Ok(Self {
            addr,
            handshakes,
            task,
        })
    }

    /// The SNI of every handshake so far, in order.
    pub fn handshakes(&self) -> Vec<Option<String>> {
        self.handshakes
            .lock()
            .map(|h| h.clone())
            .unwrap_or_default()
    }
}
