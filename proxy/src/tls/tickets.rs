//! Session tickets. Under `session_ticket_keys` ([`ConfiguredTicketer`]): each
//! configured 80-byte key is Envoy's layout (16-byte name, 32-byte HMAC key, 32-byte AES
//! key); Baton seals tickets with AES-256-GCM under the AES part, named by the first key,
//! and opens a ticket under whichever key its name is. Processes given the same keys
//! resume each other's sessions (their tickets are not Envoy's own format).
//!
//! Without configured keys ([`GeneratedTicketer`]) each context gets random keys that
//! rotate every [`ROTATION_INTERVAL`] (BoringSSL's schedule), the previous key still
//! opening tickets. Unlike Envoy, those keys survive a hot restart: the [`registry`]
//! keys them by the context's config digest, a parent hands them to its child over the
//! hot-restart socket (never to disk), and the child's unchanged contexts continue them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

const NAME_LEN: usize = 16;

/// Bytes of one generated key as handed over: its name, then its AES-256 key.
pub const GENERATED_KEY_LEN: usize = NAME_LEN + 32;

/// How often generated keys rotate (BoringSSL rotates its automatic ticket keys every
/// two days); a ticket stays valid for one more interval under the previous key.
pub const ROTATION_INTERVAL: Duration = Duration::from_secs(2 * 24 * 3600);

/// Seals `plain` under `key` named `name`: name, nonce, ciphertext and tag.
fn seal(
    name: &[u8; NAME_LEN],
    key: &LessSafeKey,
    rng: &SystemRandom,
    plain: &[u8],
) -> Option<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce).ok()?;
    let mut out = Vec::with_capacity(NAME_LEN + NONCE_LEN + plain.len() + 16);
    out.extend_from_slice(name);
    out.extend_from_slice(&nonce);
    let mut sealed = plain.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(name),
        &mut sealed,
    )
    .ok()?;
    out.extend_from_slice(&sealed);
    Some(out)
}

/// Opens a ticket under whichever of `keys` its name says.
fn open<'a>(
    keys: impl IntoIterator<Item = (&'a [u8; NAME_LEN], &'a LessSafeKey)>,
    cipher: &[u8],
) -> Option<Vec<u8>> {
    if cipher.len() < NAME_LEN + NONCE_LEN {
        return None;
    }
    let (name, rest) = cipher.split_at(NAME_LEN);
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let (kname, key) = keys.into_iter().find(|(n, _)| n.as_slice() == name)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = sealed.to_vec();
    let plain = key.open_in_place(nonce, Aad::from(kname), &mut buf).ok()?;
    Some(plain.to_vec())
}

/// Tickets sealed under configured keys.
pub struct ConfiguredTicketer {
    keys: Vec<([u8; NAME_LEN], LessSafeKey)>,
    lifetime: u32,
    rng: SystemRandom,
}

impl ConfiguredTicketer {
    /// Whether it has no key (an SDS file that held none usable at load).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl std::fmt::Debug for ConfiguredTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key material never appears in logs.
        f.debug_struct("ConfiguredTicketer")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl ConfiguredTicketer {
    /// `keys` as configured (at least one); the first encrypts.
    pub fn new(keys: &[[u8; 80]], lifetime: Duration) -> Self {
        let keys = keys
            .iter()
            .filter_map(|k| {
                let mut name = [0u8; NAME_LEN];
                name.copy_from_slice(&k[..NAME_LEN]);
                let key = UnboundKey::new(&AES_256_GCM, &k[48..80]).ok()?;
                Some((name, LessSafeKey::new(key)))
            })
            .collect();
        Self {
            keys,
            lifetime: u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX),
            rng: SystemRandom::new(),
        }
    }
}

impl rustls::server::ProducesTickets for ConfiguredTicketer {
    fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    fn lifetime(&self) -> u32 {
        self.lifetime
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let (name, key) = self.keys.first()?;
        seal(name, key, &self.rng, plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        open(self.keys.iter().map(|(n, k)| (n, k)), cipher)
    }
}

/// One generated key: its raw bytes (for the hand-over) and the AEAD key.
struct GeneratedKey {
    raw: [u8; GENERATED_KEY_LEN],
    aead: LessSafeKey,
}

impl GeneratedKey {
    fn from_raw(raw: [u8; GENERATED_KEY_LEN]) -> Option<Self> {
        let key = UnboundKey::new(&AES_256_GCM, &raw[NAME_LEN..]).ok()?;
        Some(Self {
            raw,
            aead: LessSafeKey::new(key),
        })
    }

    fn random(rng: &SystemRandom) -> Option<Self> {
        let mut raw = [0u8; GENERATED_KEY_LEN];
        rng.fill(&mut raw).ok()?;
        Self::from_raw(raw)
    }

    fn name(&self) -> &[u8; NAME_LEN] {
        self.raw[..NAME_LEN].try_into().unwrap_or(&[0u8; NAME_LEN])
    }
}

/// The keys of one context as a parent hands them to its child.
#[derive(Clone, PartialEq, Eq)]
pub struct ExportedKeys {
    /// The context's config digest.
    pub digest: [u8; 32],
    /// The key that seals new tickets.
    pub current: [u8; GENERATED_KEY_LEN],
    /// The key before it (still opens tickets).
    pub previous: Option<[u8; GENERATED_KEY_LEN]>,
    /// When `current` began sealing (Unix seconds): rotation continues on schedule.
    pub current_since_unix: u64,
}

impl std::fmt::Debug for ExportedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportedKeys")
            .field("current_since_unix", &self.current_since_unix)
            .finish_non_exhaustive()
    }
}

struct KeyRing {
    current: GeneratedKey,
    previous: Option<GeneratedKey>,
    current_since_unix: u64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Tickets sealed under generated keys that rotate on their own schedule.
pub struct GeneratedTicketer {
    digest: [u8; 32],
    ring: RwLock<KeyRing>,
    interval: u64,
    lifetime: u32,
    rng: SystemRandom,
}

impl std::fmt::Debug for GeneratedTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedTicketer").finish_non_exhaustive()
    }
}

impl GeneratedTicketer {
    fn new(digest: [u8; 32], ring: KeyRing, lifetime: Duration, interval: Duration) -> Self {
        Self {
            digest,
            ring: RwLock::new(ring),
            interval: interval.as_secs().max(1),
            lifetime: u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX),
            rng: SystemRandom::new(),
        }
    }

    fn fresh_ring(rng: &SystemRandom, now: u64) -> Option<KeyRing> {
        Some(KeyRing {
            current: GeneratedKey::random(rng)?,
            previous: None,
            current_since_unix: now,
        })
    }

    /// Rotates when the current key is due (`now` in Unix seconds).
    fn rotate_if_due(&self, now: u64) {
        let due = |r: &KeyRing| now >= r.current_since_unix.saturating_add(self.interval);
        if !due(&self.ring.read().unwrap_or_else(|e| e.into_inner())) {
            return;
        }
        let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
        if !due(&ring) {
            return;
        }
        let Some(next) = GeneratedKey::random(&self.rng) else {
            return;
        };
        // Long overdue (a parent idle for two intervals): the old key is too old to keep.
        let keep_previous = now < ring.current_since_unix.saturating_add(2 * self.interval);
        let old = std::mem::replace(&mut ring.current, next);
        ring.previous = keep_previous.then_some(old);
        ring.current_since_unix = now;
    }

    fn export(&self) -> ExportedKeys {
        let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
        ExportedKeys {
            digest: self.digest,
            current: ring.current.raw,
            previous: ring.previous.as_ref().map(|k| k.raw),
            current_since_unix: ring.current_since_unix,
        }
    }

    fn encrypt_at(&self, plain: &[u8], now: u64) -> Option<Vec<u8>> {
        self.rotate_if_due(now);
        let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
        seal(ring.current.name(), &ring.current.aead, &self.rng, plain)
    }

    fn decrypt_at(&self, cipher: &[u8], now: u64) -> Option<Vec<u8>> {
        self.rotate_if_due(now);
        let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
        let keys = std::iter::once(&ring.current).chain(ring.previous.as_ref());
        open(keys.map(|k| (k.name(), &k.aead)), cipher)
    }
}

impl rustls::server::ProducesTickets for GeneratedTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.lifetime
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.encrypt_at(plain, unix_now())
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.decrypt_at(cipher, unix_now())
    }
}

enum RegistryEntry {
    /// Handed over by the parent, not yet claimed by a context of ours.
    Inherited(ExportedKeys),
    /// In use by this generation's contexts (gone when they all are).
    Live(Weak<GeneratedTicketer>),
}

/// This generation's generated ticket keys, by context config digest.
pub struct TicketKeyRegistry {
    entries: Mutex<HashMap<[u8; 32], RegistryEntry>>,
    rng: SystemRandom,
}

impl std::fmt::Debug for TicketKeyRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketKeyRegistry").finish_non_exhaustive()
    }
}

/// The process's registry.
pub fn registry() -> &'static TicketKeyRegistry {
    static REGISTRY: OnceLock<TicketKeyRegistry> = OnceLock::new();
    REGISTRY.get_or_init(TicketKeyRegistry::new)
}

impl Default for TicketKeyRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl TicketKeyRegistry {
    /// Empty registry.
    pub fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            rng: SystemRandom::new(),
        }
    }

    /// The ticketer of the context with `digest`: the one already in use (a rebuilt
    /// listener keeps resuming), else one continuing the parent's keys, else fresh keys.
    /// `None` only when the system RNG fails.
    pub fn ticketer_for(
        &self,
        digest: [u8; 32],
        lifetime: Duration,
    ) -> Option<Arc<GeneratedTicketer>> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let ring = match entries.get(&digest) {
            Some(RegistryEntry::Live(weak)) => match weak.upgrade() {
                Some(live) => return Some(live),
                None => GeneratedTicketer::fresh_ring(&self.rng, unix_now())?,
            },
            Some(RegistryEntry::Inherited(keys)) => match GeneratedKey::from_raw(keys.current) {
                Some(current) => KeyRing {
                    current,
                    previous: keys.previous.and_then(GeneratedKey::from_raw),
                    current_since_unix: keys.current_since_unix,
                },
                None => GeneratedTicketer::fresh_ring(&self.rng, unix_now())?,
            },
            None => GeneratedTicketer::fresh_ring(&self.rng, unix_now())?,
        };
        let ticketer = Arc::new(GeneratedTicketer::new(
            digest,
            ring,
            lifetime,
            ROTATION_INTERVAL,
        ));
        entries.retain(|_, e| !matches!(e, RegistryEntry::Live(w) if w.strong_count() == 0));
        entries.insert(digest, RegistryEntry::Live(Arc::downgrade(&ticketer)));
        Some(ticketer)
    }

    /// Every context's keys, for a child generation.
    pub fn export(&self) -> Vec<ExportedKeys> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .values()
            .filter_map(|e| match e {
                RegistryEntry::Live(w) => w.upgrade().map(|t| t.export()),
                RegistryEntry::Inherited(k) => Some(k.clone()),
            })
            .collect()
    }

    /// Takes the parent's keys over (before any context of ours is built; a context
    /// already built keeps its own keys).
    pub fn inherit(&self, keys: Vec<ExportedKeys>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            entries
                .entry(k.digest)
                .or_insert(RegistryEntry::Inherited(k));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::ProducesTickets;

    #[test]
    fn sealed_under_first_opened_under_any() {
        let a = [1u8; 80];
        let b = [2u8; 80];
        let old = ConfiguredTicketer::new(&[a], Duration::from_secs(60));
        let new = ConfiguredTicketer::new(&[b, a], Duration::from_secs(60));
        let t = old.encrypt(b"state").expect("sealed");
        assert_eq!(new.decrypt(&t).as_deref(), Some(&b"state"[..]));
        let t2 = new.encrypt(b"state").expect("sealed");
        assert_eq!(old.decrypt(&t2), None);
        let mut bad = t.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(new.decrypt(&bad), None);
    }

    #[test]
    fn generated_keys_rotate_keeping_the_previous_one() {
        let rng = SystemRandom::new();
        let ring = GeneratedTicketer::fresh_ring(&rng, 1000).expect("rng");
        let t = GeneratedTicketer::new(
            [0; 32],
            ring,
            Duration::from_secs(60),
            Duration::from_secs(100),
        );
        let before = t.encrypt_at(b"s", 1050).expect("sealed");
        // Rotated at 1100: the old ticket still opens, new ones use the new key.
        let after = t.encrypt_at(b"s", 1100).expect("sealed");
        assert_ne!(before[..NAME_LEN], after[..NAME_LEN]);
        assert_eq!(t.decrypt_at(&before, 1150).as_deref(), Some(&b"s"[..]));
        // Two rotations later the first key is gone.
        t.encrypt_at(b"s", 1200);
        assert_eq!(t.decrypt_at(&before, 1200), None);
        assert_eq!(t.decrypt_at(&after, 1200).as_deref(), Some(&b"s"[..]));
    }

    #[test]
    fn registry_hands_keys_to_a_child_by_digest() {
        let parent = TicketKeyRegistry::new();
        let a = parent
            .ticketer_for([1; 32], Duration::from_secs(60))
            .expect("rng");
        let same = parent
            .ticketer_for([1; 32], Duration::from_secs(60))
            .expect("rng");
        assert!(Arc::ptr_eq(&a, &same));
        let other = parent
            .ticketer_for([2; 32], Duration::from_secs(60))
            .expect("rng");
        let ticket = a.encrypt(b"session").expect("sealed");

        let child = TicketKeyRegistry::new();
        child.inherit(parent.export());
        let continued = child
            .ticketer_for([1; 32], Duration::from_secs(60))
            .expect("rng");
        assert_eq!(continued.decrypt(&ticket).as_deref(), Some(&b"session"[..]));
        let changed = child
            .ticketer_for([3; 32], Duration::from_secs(60))
            .expect("rng");
        assert_eq!(changed.decrypt(&ticket), None);
        assert_eq!(other.decrypt(&ticket), None);
    }
}
