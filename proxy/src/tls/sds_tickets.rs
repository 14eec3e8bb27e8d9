//! `session_ticket_keys_sds_secret_config`: session ticket keys from an SDS secret (a
//! watched file or a control plane), swapped in without a restart. New tickets are
//! sealed under the new first key; tickets sealed under any key of the current secret
//! still open, so clients resume across a rotation that keeps the old key listed (as
//! with Envoy's key lists).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use baton_config::model::SdsFileSource;
use baton_proto::pb::envoy::service::discovery::v3::DiscoveryResponse;
use rustls::server::ProducesTickets;

use super::sds_xds::SecretProvider;
use super::tickets::ConfiguredTicketer;

/// Where the current keys are.
#[derive(Debug)]
enum Keys {
    /// A watched secret file's slot.
    File(Arc<ArcSwap<ConfiguredTicketer>>),
    /// A control plane's secret (no tickets until it arrives).
    Xds(Arc<SecretProvider>),
}

/// A ticketer whose keys an SDS secret swaps; loaded per ticket (one pointer read).
#[derive(Debug)]
pub struct SdsTicketer {
    keys: Keys,
    lifetime: u32,
}

fn registry() -> &'static super::sds::Registry<ConfiguredTicketer> {
    static REGISTRY: OnceLock<super::sds::Registry<ConfiguredTicketer>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// A ticket-keys secret file's new keys (an SDS update).
fn ticketer_from(
    resp: &DiscoveryResponse,
    source: &SdsFileSource,
) -> Result<ConfiguredTicketer, String> {
    baton_config::sds::ticket_keys_from(resp, source)
        .map(|keys| ConfiguredTicketer::new(&keys, Duration::ZERO))
        .map_err(|e| e.to_string())
}

impl SdsTicketer {
    /// Keys from `source`'s file, `initial` as read at load.
    pub fn file(source: &SdsFileSource, initial: &[[u8; 80]], lifetime: Duration) -> Self {
        let slot = super::sds::subscribe_with(
            registry(),
            source,
            || ConfiguredTicketer::new(initial, Duration::ZERO),
            ticketer_from,
        );
        Self {
            keys: Keys::File(slot),
            lifetime: u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX),
        }
    }

    /// The file slot of its keys (None for a control plane's).
    pub fn file_slot(&self) -> Option<Arc<ArcSwap<ConfiguredTicketer>>> {
        match &self.keys {
            Keys::File(slot) => Some(slot.clone()),
            Keys::Xds(_) => None,
        }
    }

    /// Keys a control plane delivers through `provider`.
    pub fn xds(provider: Arc<SecretProvider>, lifetime: Duration) -> Self {
        Self {
            keys: Keys::Xds(provider),
            lifetime: u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX),
        }
    }

    fn current(&self) -> Option<Arc<ConfiguredTicketer>> {
        match &self.keys {
            Keys::File(slot) => Some(slot.load_full()),
            Keys::Xds(provider) => provider.ticket_keys(),
        }
    }
}

impl ProducesTickets for SdsTicketer {
    fn enabled(&self) -> bool {
        // Asked once per config by rustls: tickets stay on, and a ticket is simply not
        // issued while no keys have arrived.
        true
    }

    fn lifetime(&self) -> u32 {
        self.lifetime
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.current()?.encrypt(plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.current()?.decrypt(cipher)
    }
}
