//! The certificate resolver of a TLS filter chain: picks the certificate per handshake
//! (SNI, then the client's signature schemes, then the first, as Envoy; SDS slots loaded
//! lock-free), applies `ocsp_staple_policy`, refuses handshakes while an SDS secret is
//! awaited, and counts `ssl.ocsp_staple_*` for clients that asked for a staple.

use std::sync::Arc;

use arc_swap::ArcSwap;
use baton_config::model::{DownstreamTlsContext, OcspStaplePolicy};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;

use super::sds::{CertEntry, SecretSlot};
use super::sds_xds::SecretProvider;
use super::server::VerifierState;
use super::stats::SslStats;

/// Picks a certificate per handshake. Each slot is loaded once per handshake (a
/// lock-free pointer read): an SDS slot is swapped by its file watcher, a static one
/// never; a control plane's secrets follow (none until delivered).
#[derive(Debug)]
pub(super) struct CertResolver {
    pub(super) slots: Vec<Arc<SecretSlot>>,
    /// The SDS secret of each slot (None: configured in the context).
    pub(super) slot_secrets: Vec<Option<String>>,
    pub(super) xds: Vec<Arc<SecretProvider>>,
    /// `ocsp_staple_policy`
    policy: OcspStaplePolicy,
    /// Counts in `server_ssl_socket_factory.downstream_context_secrets_not_ready` a
    /// handshake for which no certificate has arrived (SDS).
    pub(super) stats: Arc<SslStats>,
    /// SDS secrets besides certificates that the context waits for.
    pub(super) awaited: AwaitedSecrets,
    /// The `nextUpdate` (Unix seconds) of each configured staple that has one: past
    /// it, the staple is expired.
    staple_expiries: Vec<(Arc<CertifiedKey>, u64)>,
    /// `tls_params.signature_algorithms`: the only schemes handshakes are signed with.
    signature_schemes: Option<Arc<[rustls::SignatureScheme]>>,
}

impl CertResolver {
    pub(super) fn new(ctx: &DownstreamTlsContext, stats: Arc<SslStats>) -> Self {
        Self {
            policy: ctx.ocsp_staple_policy,
            signature_schemes: ctx.params.signature_schemes.clone(),
            stats,
            awaited: AwaitedSecrets::default(),
            staple_expiries: ctx
                .certificates
                .iter()
                .filter_map(|c| Some((c.certified_key.clone(), c.ocsp_next_update?)))
                .collect(),
            slot_secrets: (0..ctx.certificates.len())
                .map(|i| {
                    ctx.sds_certificates
                        .iter()
                        .find(|s| s.slot == i)
                        .map(|s| s.source.secret_name.clone())
                        .or_else(|| ctx.certificates[i].static_secret.clone())
                })
                .collect(),
            slots: ctx
                .certificates
                .iter()
                .enumerate()
                .map(
                    |(i, c)| match ctx.sds_certificates.iter().find(|s| s.slot == i) {
                        Some(sds) => super::sds::subscribe(&sds.source, c),
                        None => Arc::new(SecretSlot::from_pointee(CertEntry::of(c))),
                    },
                )
                .collect(),
            xds: ctx
                .xds_certificates
                .iter()
                .map(super::sds_xds::provider)
                .collect(),
        }
    }
}

/// A context's SDS secrets other than certificates: a validation context (a file's or a
/// control plane's) and session ticket keys (a file's), each a placeholder while none
/// usable has arrived.
#[derive(Default)]
pub(super) struct AwaitedSecrets {
    pub(super) validation: Option<Arc<ArcSwap<VerifierState>>>,
    pub(super) ticket_keys: Option<Arc<ArcSwap<super::tickets::ConfiguredTicketer>>>,
}

impl std::fmt::Debug for AwaitedSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwaitedSecrets")
            .field("ready", &self.ready())
            .finish()
    }
}

impl AwaitedSecrets {
    /// Whether every one has arrived: a pointer load each, and only for files.
    fn ready(&self) -> bool {
        self.validation
            .as_ref()
            .is_none_or(|v| !v.load().context.awaiting)
            && self
                .ticket_keys
                .as_ref()
                .is_none_or(|k| !k.load().is_empty())
    }
}

impl CertResolver {
    /// Whether a handshake can have a certificate: every awaited SDS secret is there
    /// and some certificate has arrived (a pointer load per slot).
    pub(super) fn ready(&self) -> bool {
        self.awaited.ready()
            && (self.slots.iter().any(|s| !s.load().key.cert.is_empty())
                || self.xds.iter().any(|p| p.certificate().is_some()))
    }

    /// Whether `key`'s staple is past its `nextUpdate` at `now` (Unix seconds).
    fn staple_expired(&self, key: &Arc<CertifiedKey>, now: Option<u64>) -> bool {
        let Some(now) = now else { return false };
        self.staple_expiries
            .iter()
            .any(|(k, next_update)| Arc::ptr_eq(k, key) && now >= *next_update)
    }

    /// Whether `key` may serve under `ocsp_staple_policy`, as Envoy: strict stapling
    /// drops a certificate whose staple expired, must-staple also one without a staple.
    fn may_serve(&self, key: &Arc<CertifiedKey>, now: Option<u64>) -> bool {
        match self.policy {
            OcspStaplePolicy::Lenient => true,
            OcspStaplePolicy::Strict => !self.staple_expired(key, now),
            OcspStaplePolicy::MustStaple => key.ocsp.is_some() && !self.staple_expired(key, now),
        }
    }
}

fn name_matches(pattern: &str, sni: &str) -> bool {
    if pattern.eq_ignore_ascii_case(sni) {
        return true;
    }
    // `*.example.com` covers one label: `a.example.com`, not `a.b.example.com`.
    match (pattern.strip_prefix("*."), sni.split_once('.')) {
        (Some(suffix), Some((label, rest))) => {
            !label.is_empty() && rest.eq_ignore_ascii_case(suffix)
        }
        _ => false,
    }
}

/// [`name_matches`] for an SNI as sent, case-sensitively (BoringSSL's comparison).
fn name_matches_as_sent(pattern: &str, sni: &str) -> bool {
    if pattern == sni {
        return true;
    }
    match (pattern.strip_prefix("*."), sni.split_once('.')) {
        (Some(suffix), Some((label, rest))) => !label.is_empty() && rest == suffix,
        _ => false,
    }
}

impl CertResolver {
    /// Among the certificates naming the SNI (only the first when an SNI names none, all
    /// of them without SNI): the first
    /// ECDSA one for a client that can use ECDSA P-256, else the first the client can
    /// verify, else the first, as Envoy ("the first ECDSA certificate is used for clients
    /// that support ECDSA").
    ///
    /// `scope.staple_requested`: the client asked for a staple. Only then does a strict
    /// or must-staple policy drop certificates, as Envoy (a client that did not ask is
    /// served whatever the staple's state, and gets none). An SNI sent with uppercase
    /// letters is matched as sent, case-sensitively, as BoringSSL's names in Envoy. A
    /// client is ECDSA-capable by its own `signature_algorithms`, whatever suites it
    /// offers, as Envoy (a TLS 1.2 client offering only RSA suites then fails the
    /// handshake).
    fn choose(
        &self,
        hello: &ClientHello<'_>,
        scope: &HelloScope,
    ) -> Result<Arc<CertifiedKey>, Refusal> {
        let staple_requested = scope.staple_requested;
        if !self.awaited.ready() {
            // As Envoy, a context missing any SDS secret refuses every handshake.
            self.stats
                .factory
                .downstream_context_secrets_not_ready
                .inc();
            return Err(Refusal::NotReady);
        }
        // One certificate (the common case) is the answer whatever the client offers:
        // no per-handshake collecting.
        // (Not with a staple that can expire: that one is checked below.)
        if let ([only], true) = (self.slots.as_slice(), self.staple_expiries.is_empty()) {
            let entry = only.load();
            // An SDS file that held no good certificate yet: the handshake fails.
            if entry.key.cert.is_empty() {
                self.stats
                    .factory
                    .downstream_context_secrets_not_ready
                    .inc();
                return Err(Refusal::NotReady);
            }
            return Ok(Arc::clone(&entry.key));
        }
        let narrowed = hello.signature_schemes();
        // The P-256 scheme rustls took out (the client offers no ECDSA suite) is put
        // back for the choice: Envoy chooses the ECDSA certificate for such a client.
        let restored: Vec<SignatureScheme>;
        let schemes = if scope.ecdsa_p256_signatures
            && !narrowed.contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
        {
            restored = narrowed
                .iter()
                .copied()
                .chain([SignatureScheme::ECDSA_NISTP256_SHA256])
                .collect();
            &restored[..]
        } else {
            narrowed
        };
        let ecdsa_capable = schemes.contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            && hello
                .named_groups()
                .is_none_or(|groups| groups.contains(&rustls::NamedGroup::secp256r1));
        let loaded: Vec<Arc<CertEntry>> = self
            .slots
            .iter()
            .map(|s| s.load_full())
            .chain(self.xds.iter().filter_map(|p| p.certificate()))
            .filter(|e| !e.key.cert.is_empty())
            .collect();
        if loaded.is_empty() {
            // No secret has arrived yet (SDS): the handshake fails.
            self.stats
                .factory
                .downstream_context_secrets_not_ready
                .inc();
            return Err(Refusal::NotReady);
        }
        let sni = hello.server_name();
        let named = |entry: &CertEntry| match &scope.server_name_as_sent {
            Some(sent) => entry.names.iter().any(|n| name_matches_as_sent(n, sent)),
            None => sni.is_some_and(|sni| entry.names.iter().any(|n| name_matches(n, sni))),
        };
        // As Envoy 1.40 (no full scan on an SNI mismatch): an SNI no certificate names
        // gets the first certificate, whatever the client can verify; no SNI, all of them.
        let candidates: Vec<&Arc<CertifiedKey>> = if loaded.iter().any(|e| named(e)) {
            loaded.iter().filter(|e| named(e)).map(|e| &e.key).collect()
        } else if sni.is_some() {
            loaded.iter().take(1).map(|e| &e.key).collect()
        } else {
            loaded.iter().map(|e| &e.key).collect()
        };
        // The clock is read only when some staple can expire.
        let now = (!self.staple_expiries.is_empty()).then(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
        let mut candidates = candidates;
        if self.policy != OcspStaplePolicy::Lenient && staple_requested {
            candidates.retain(|ck| self.may_serve(ck, now));
        }
        let is_ecdsa = |ck: &CertifiedKey| ck.key.algorithm() == rustls::SignatureAlgorithm::ECDSA;
        let allowed = self.signature_schemes.as_ref();
        let usable = |ck: &CertifiedKey| super::sigalgs::can_sign(ck, schemes, allowed);
        let preferred = candidates
            .iter()
            .find(|ck| ecdsa_capable && is_ecdsa(ck) && usable(ck))
            .or_else(|| candidates.iter().find(|ck| usable(ck)))
            .or_else(|| candidates.first());
        // Candidates were there: only the staple policy can have refused them all.
        let chosen = preferred
            .map(|ck| Arc::clone(ck))
            .ok_or(Refusal::StaplePolicy)?;
        let chosen = if self.staple_expired(&chosen, now) {
            // Lenient stapling: an expired staple is not sent, the certificate still is.
            Arc::new(CertifiedKey {
                ocsp: None,
                ..(*chosen).clone()
            })
        } else {
            chosen
        };
        Ok(chosen)
    }
}

/// Why no certificate was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// An SDS secret has not arrived (counted in the socket factory's stats).
    NotReady,
    /// `ocsp_staple_policy` refused every candidate.
    StaplePolicy,
}

/// What the certificate resolver needs of a ClientHello that rustls does not tell it
/// (the accept path peeks at the ClientHello and scopes the handshake with it).
#[derive(Debug, Default)]
pub struct HelloScope {
    /// The client asked for an OCSP staple (`status_request`).
    pub staple_requested: bool,
    /// The SNI as sent, when not all lowercase (rustls lowercases it).
    pub server_name_as_sent: Option<String>,
    /// The client's `signature_algorithms` name ECDSA P-256 (rustls shows the resolver
    /// only the schemes its offered TLS 1.2 suites can use).
    pub ecdsa_p256_signatures: bool,
}

tokio::task_local! {
    /// The ClientHello facts of the handshake this task runs.
    static HELLO: HelloScope;
}

/// Runs `handshake` with its ClientHello's facts at hand for the certificate resolver
/// (`ssl.ocsp_staple_*`, the SNI's case, ECDSA capability).
pub async fn with_hello<F: std::future::Future>(hello: HelloScope, handshake: F) -> F::Output {
    HELLO.scope(hello, handshake).await
}

impl ResolvesServerCert for CertResolver {
    /// [`CertResolver::choose`], counting `ssl.ocsp_staple_*` as Envoy does when the
    /// client asked for a staple: a request, then a response (the chosen certificate
    /// has a valid staple), an omission (it has none), or a failure (the policy refused
    /// every certificate). A context still waiting for SDS counts none of them.
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let (chosen, asked) = HELLO
            .try_with(|scope| (self.choose(&hello, scope), scope.staple_requested))
            .unwrap_or_else(|_| (self.choose(&hello, &HelloScope::default()), false));
        if asked {
            let ssl = &self.stats;
            match &chosen {
                Ok(key) => {
                    ssl.ocsp_staple_requests.inc();
                    if key.ocsp.is_some() {
                        ssl.ocsp_staple_responses.inc();
                    } else {
                        ssl.ocsp_staple_omitted.inc();
                    }
                }
                Err(Refusal::StaplePolicy) => {
                    ssl.ocsp_staple_requests.inc();
                    ssl.ocsp_staple_failed.inc();
                }
                Err(Refusal::NotReady) => {}
            }
        }
        let chosen = chosen.ok()?;
        Some(match &self.signature_schemes {
            Some(allowed) => super::sigalgs::restricted(&chosen, allowed),
            None => chosen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{name_matches, name_matches_as_sent};

    #[test]
    fn an_sni_as_sent_matches_case_sensitively() {
        assert!(name_matches_as_sent("www.example.com", "www.example.com"));
        assert!(!name_matches_as_sent("www.example.com", "WWW.Example.com"));
        assert!(name_matches_as_sent("*.example.com", "A.example.com"));
        assert!(!name_matches_as_sent("*.example.com", "a.EXAMPLE.com"));
    }

    #[test]
    fn wildcard_covers_one_label() {
        assert!(name_matches("*.example.com", "a.example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(name_matches("Example.com", "example.COM"));
    }
}
