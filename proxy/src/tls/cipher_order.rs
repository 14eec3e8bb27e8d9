//! The TLS 1.2 cipher suite choice of a server chain, as BoringSSL makes it for Envoy:
//! the server's order between equal-preference groups (`[A|B]` in `cipher_suites`,
//! and Envoy's default list), the client's within a group. rustls takes either the
//! client's order or the server's (`ignore_client_order`), so each order of the groups'
//! members a client can ask for is a config of its own, with the server's order and
//! each group sorted as that client prefers: the ClientHello's suites (read by the
//! accept path's peek) pick one. The few orders are built on first use and kept (a
//! pointer load per handshake after that). TLS 1.3 handshakes keep the client's order
//! (as BoringSSL) and the chain's own config.

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::{ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};

/// The TLS 1.2 suites Baton has (`baton_config`'s names), by IANA code: the ones whose
/// position in a ClientHello's list matters.
const TLS12_CODES: [u16; 6] = [0xc02b, 0xc02c, 0xcca9, 0xc02f, 0xc030, 0xcca8];

/// What a ClientHello offers of the suites and versions: its preference among
/// [`TLS12_CODES`] (no allocation per handshake), and whether it offers TLS 1.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSuites {
    /// Position in the client's list of each of [`TLS12_CODES`] (`u8::MAX`: not offered).
    ranks: [u8; TLS12_CODES.len()],
    /// A `supported_versions` extension naming TLS 1.3.
    pub offers_tls13: bool,
}

impl ClientSuites {
    /// From a ClientHello's `cipher_suites` field (two bytes per suite).
    pub(crate) fn from_wire(suites: &[u8]) -> Self {
        let mut ranks = [u8::MAX; TLS12_CODES.len()];
        for (position, code) in suites.chunks_exact(2).enumerate() {
            let code = u16::from_be_bytes([code[0], code[1]]);
            if let Some(i) = TLS12_CODES.iter().position(|c| *c == code) {
                if ranks[i] == u8::MAX {
                    ranks[i] = u8::try_from(position).unwrap_or(u8::MAX - 1);
                }
            }
        }
        Self {
            ranks,
            offers_tls13: false,
        }
    }

    /// Where the client ranks `suite` (lower: preferred; `u8::MAX`: not offered).
    fn rank(&self, suite: SupportedCipherSuite) -> u8 {
        let code = u16::from(suite.suite());
        TLS12_CODES
            .iter()
            .position(|c| *c == code)
            .map_or(u8::MAX, |i| self.ranks[i])
    }
}

/// A TLS 1.2 order's configs: with the chain's ALPN, and without it (see
/// `ServerTls::config_for`).
pub(super) struct OrderedConfig {
    pub(super) config: Arc<ServerConfig>,
    pub(super) without_alpn: Option<Arc<ServerConfig>>,
}

/// A chain's TLS 1.2 groups and the configs of the orders clients asked for.
pub(super) struct Tls12Order {
    /// The context's TLS 1.3 suites, in its order (unchanged in every config).
    tls13: Vec<SupportedCipherSuite>,
    /// The TLS 1.2 groups, in the server's order.
    groups: Vec<Vec<SupportedCipherSuite>>,
    /// One slot per order (the groups' permutations, mixed radix).
    orders: Box<[OnceLock<OrderedConfig>]>,
    /// What every order's config is built from.
    provider: CryptoProvider,
    versions: Vec<&'static SupportedProtocolVersion>,
    verifier: Arc<dyn ClientCertVerifier>,
    base: Arc<ServerConfig>,
}

impl std::fmt::Debug for Tls12Order {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls12Order")
            .field("groups", &self.groups)
            .field("orders", &self.orders.len())
            .finish_non_exhaustive()
    }
}

impl Tls12Order {
    /// The order of a chain whose provider has `provider.cipher_suites` grouped by
    /// `groups` (one number per suite, equal for a group's consecutive members). None
    /// without TLS 1.2 suites or TLS 1.2.
    pub(super) fn new(
        provider: CryptoProvider,
        groups: &[u16],
        versions: &[&'static SupportedProtocolVersion],
        verifier: Arc<dyn ClientCertVerifier>,
        base: Arc<ServerConfig>,
    ) -> Option<Self> {
        if !versions.contains(&&rustls::version::TLS12) {
            return None;
        }
        let mut tls13 = Vec::new();
        let mut tls12: Vec<Vec<SupportedCipherSuite>> = Vec::new();
        let mut last_group = None;
        for (i, suite) in provider.cipher_suites.iter().enumerate() {
            if suite.version() == &rustls::version::TLS13 {
                tls13.push(*suite);
                continue;
            }
            let group = groups.get(i).copied();
            match tls12.last_mut() {
                Some(members) if group.is_some() && group == last_group => members.push(*suite),
                _ => tls12.push(vec![*suite]),
            }
            last_group = group;
        }
        if tls12.is_empty() {
            return None;
        }
        let count: usize = tls12.iter().map(|g| factorial(g.len())).product();
        Some(Self {
            tls13,
            groups: tls12,
            orders: (0..count).map(|_| OnceLock::new()).collect(),
            provider,
            versions: versions.to_vec(),
            verifier,
            base,
        })
    }

    /// The configs for a TLS 1.2 handshake with a client preferring `client`'s order.
    /// None: the order's config could not be built (the chain's own serves).
    pub(super) fn for_client(&self, client: &ClientSuites) -> Option<&OrderedConfig> {
        let index = order_index(&self.groups, client);
        let slot = self.orders.get(index)?;
        if let Some(built) = slot.get() {
            return Some(built);
        }
        let built = self.build(client)?;
        Some(slot.get_or_init(|| built))
    }

    fn build(&self, client: &ClientSuites) -> Option<OrderedConfig> {
        let mut suites = self.tls13.clone();
        for members in &self.groups {
            let permutation = client_permutation(members, client);
            suites.extend(permutation[..members.len()].iter().map(|&i| members[i]));
        }
        let provider = CryptoProvider {
            cipher_suites: suites,
            ..self.provider.clone()
        };
        let base = &self.base;
        let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&self.versions)
            .map_err(|e| tracing::warn!(error = %e, "TLS 1.2 cipher order config refused"))
            .ok()?
            .with_client_cert_verifier(Arc::clone(&self.verifier))
            .with_cert_resolver(Arc::clone(&base.cert_resolver));
        config.ignore_client_order = true;
        config.alpn_protocols = base.alpn_protocols.clone();
        config.session_storage = Arc::clone(&base.session_storage);
        config.ticketer = Arc::clone(&base.ticketer);
        config.send_tls13_tickets = base.send_tls13_tickets;
        let without_alpn = (!config.alpn_protocols.is_empty()).then(|| {
            let mut without = config.clone();
            without.alpn_protocols = Vec::new();
            Arc::new(without)
        });
        Some(OrderedConfig {
            config: Arc::new(config),
            without_alpn,
        })
    }
}

/// Each group's members sorted by the client's preference (stable: the server's order
/// among those it does not rank), as a permutation index per group in mixed radix
/// (Lehmer code): below the product of the groups' sizes' factorials.
fn order_index(groups: &[Vec<SupportedCipherSuite>], client: &ClientSuites) -> usize {
    let mut index = 0;
    for members in groups {
        let permutation = client_permutation(members, client);
        let n = members.len().min(TLS12_CODES.len());
        let mut code = 0;
        for (i, &p) in permutation[..n].iter().enumerate() {
            let smaller_after = permutation[i + 1..n].iter().filter(|&&q| q < p).count();
            code += smaller_after * factorial(n - 1 - i);
        }
        index = index * factorial(n) + code;
    }
    index
}

/// The indices of `members` in the client's order of preference (at most six
/// members: Baton has six TLS 1.2 suites).
fn client_permutation(
    members: &[SupportedCipherSuite],
    client: &ClientSuites,
) -> [usize; TLS12_CODES.len()] {
    let mut permutation = [0, 1, 2, 3, 4, 5];
    let n = members.len().min(TLS12_CODES.len());
    permutation[..n].sort_by_key(|&i| (client.rank(members[i]), i));
    permutation
}

fn factorial(n: usize) -> usize {
    (1..=n).product()
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_config::crypto::cipher_suite as cs;

    fn client(codes: &[u16]) -> ClientSuites {
        let wire: Vec<u8> = codes.iter().flat_map(|c| c.to_be_bytes()).collect();
        ClientSuites::from_wire(&wire)
    }

    #[test]
    fn group_members_follow_the_client() {
        let members = [
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ];
        // Client: AES-256, CHACHA20, AES-128.
        let c = client(&[0xc02c, 0xcca9, 0xc02b]);
        assert_eq!(client_permutation(&members, &c)[..2], [1, 0]);
        // Client: AES-128 before CHACHA20.
        let c = client(&[0xc02c, 0xc02b, 0xcca9]);
        assert_eq!(client_permutation(&members, &c)[..2], [0, 1]);
        // Not offered: the server's order.
        let c = client(&[0xc030]);
        assert_eq!(client_permutation(&members, &c)[..2], [0, 1]);
    }

    #[test]
    fn each_client_order_has_its_own_index() {
        let groups = vec![
            vec![
                cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            ],
            vec![cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384],
            vec![
                cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            ],
        ];
        let ecdsa = [0xc02b, 0xcca9, 0xc02c];
        let mut seen = std::collections::BTreeSet::new();
        for a in 0..3 {
            for b in 0..3 {
                for c in 0..3 {
                    if a == b || b == c || a == c {
                        continue;
                    }
                    for rsa in [[0xc02f, 0xcca8], [0xcca8, 0xc02f]] {
                        let order = [ecdsa[a], ecdsa[b], ecdsa[c], 0xc030, rsa[0], rsa[1]];
                        let index = order_index(&groups, &client(&order));
                        assert!(index < 12, "{index}");
                        seen.insert(index);
                    }
                }
            }
        }
        assert_eq!(seen.len(), 12);
    }

    #[test]
    fn ranks_take_the_first_occurrence() {
        let c = client(&[0x1301, 0xcca9, 0xc02b, 0xcca9]);
        assert_eq!(c.rank(cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256), 1);
        assert_eq!(c.rank(cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256), 2);
        assert_eq!(c.rank(cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256), u8::MAX);
    }
}
