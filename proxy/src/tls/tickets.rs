//! Session tickets under `session_ticket_keys`: each configured 80-byte key is Envoy's
//! layout (16-byte name, 32-byte HMAC key, 32-byte AES key); Baton seals tickets with
//! AES-256-GCM under the AES part, named by the first key, and opens a ticket under
//! whichever key its name is. Processes given the same keys resume each other's
//! sessions (their tickets are not Envoy's own format).

use std::time::Duration;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

const NAME_LEN: usize = 16;

/// Tickets sealed under configured keys.
pub struct ConfiguredTicketer {
    keys: Vec<([u8; NAME_LEN], LessSafeKey)>,
    lifetime: u32,
    rng: SystemRandom,
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
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
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

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < NAME_LEN + NONCE_LEN {
            return None;
        }
        let (name, rest) = cipher.split_at(NAME_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let (kname, key) = self.keys.iter().find(|(n, _)| n == name)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let plain = key.open_in_place(nonce, Aad::from(kname), &mut buf).ok()?;
        Some(plain.to_vec())
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
}
