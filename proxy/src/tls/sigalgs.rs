//! `tls_params.signature_algorithms`: the schemes a TLS context signs its handshakes with
//! (its certificate's key, wrapped so that it chooses among those only) and accepts in its
//! peer's (the provider's verification algorithms, filtered), as BoringSSL applies the
//! one list to both in Envoy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::SubjectPublicKeyInfoDer;
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};

/// A signing key that chooses only among `allowed`.
#[derive(Debug)]
struct RestrictedKey {
    inner: Arc<dyn SigningKey>,
    allowed: Arc<[SignatureScheme]>,
}

impl SigningKey for RestrictedKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let offered: Vec<SignatureScheme> = offered
            .iter()
            .copied()
            .filter(|s| self.allowed.contains(s))
            .collect();
        self.inner.choose_scheme(&offered)
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        self.inner.public_key()
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.inner.algorithm()
    }
}

/// `key` signing only with `allowed` (a new one per handshake: the certificate itself is
/// shared).
pub(super) fn restricted(
    key: &Arc<CertifiedKey>,
    allowed: &Arc<[SignatureScheme]>,
) -> Arc<CertifiedKey> {
    Arc::new(CertifiedKey {
        key: Arc::new(RestrictedKey {
            inner: Arc::clone(&key.key),
            allowed: Arc::clone(allowed),
        }),
        ..(**key).clone()
    })
}

/// Whether `key` can sign with one of `offered` that `allowed` (if any) takes.
pub(super) fn can_sign(
    key: &CertifiedKey,
    offered: &[SignatureScheme],
    allowed: Option<&Arc<[SignatureScheme]>>,
) -> bool {
    match allowed {
        None => key.key.choose_scheme(offered).is_some(),
        Some(allowed) => {
            let offered: Vec<SignatureScheme> = offered
                .iter()
                .copied()
                .filter(|s| allowed.contains(s))
                .collect();
            key.key.choose_scheme(&offered).is_some()
        }
    }
}

/// The provider's verification algorithms limited to `allowed`. rustls wants them as
/// static tables: one is made per distinct list and kept for the process's life (a
/// config names few lists).
pub(super) fn verification_algorithms(
    provider: &CryptoProvider,
    allowed: Option<&Arc<[SignatureScheme]>>,
) -> WebPkiSupportedAlgorithms {
    let Some(allowed) = allowed else {
        return provider.signature_verification_algorithms;
    };
    static MADE: OnceLock<Mutex<HashMap<Vec<u16>, WebPkiSupportedAlgorithms>>> = OnceLock::new();
    let mut made = MADE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let key: Vec<u16> = allowed.iter().map(|s| u16::from(*s)).collect();
    *made.entry(key).or_insert_with(|| {
        let all = provider.signature_verification_algorithms;
        let mapping: Vec<_> = all
            .mapping
            .iter()
            .filter(|(scheme, _)| allowed.contains(scheme))
            .copied()
            .collect();
        WebPkiSupportedAlgorithms {
            all: all.all,
            mapping: Box::leak(mapping.into_boxed_slice()),
        }
    })
}

/// A client certificate offered only for the `allowed` schemes, signing with those.
#[derive(Debug)]
pub(super) struct RestrictedClientCert {
    pub(super) inner: Arc<dyn rustls::client::ResolvesClientCert>,
    pub(super) allowed: Arc<[SignatureScheme]>,
}

impl rustls::client::ResolvesClientCert for RestrictedClientCert {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let offered: Vec<SignatureScheme> = sigschemes
            .iter()
            .copied()
            .filter(|s| self.allowed.contains(s))
            .collect();
        self.inner
            .resolve(root_hint_subjects, &offered)
            .map(|key| restricted(&key, &self.allowed))
    }

    fn has_certs(&self) -> bool {
        self.inner.has_certs()
    }
}
