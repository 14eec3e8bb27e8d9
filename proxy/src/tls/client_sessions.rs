//! Upstream session resumption that follows SDS rotation. Envoy builds a new client
//! context (with an empty session cache) when a client certificate or validation
//! context rotates, so no connection resumes a session made with the old identity or
//! verified against the old CA. Here one rustls client config lives as long as the
//! cluster, so its session store is swapped for an empty one whenever what the
//! context's SDS slots hold changes.

use std::sync::{Arc, Mutex};

use rustls::client::{ClientSessionMemoryCache, ClientSessionStore};
use rustls::client::{Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;
use rustls::NamedGroup;

/// Sessions per cluster config (rustls' default size).
const SESSIONS: usize = 256;

/// Identifies what a context currently holds (the addresses of its slots' values).
pub(crate) type Identity = Box<dyn Fn() -> Vec<usize> + Send + Sync>;

/// A session store emptied whenever the identity changes. Used once per handshake.
pub(crate) struct RotatingSessions {
    identity: Identity,
    current: Mutex<(Vec<usize>, Arc<ClientSessionMemoryCache>)>,
}

impl std::fmt::Debug for RotatingSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatingSessions").finish_non_exhaustive()
    }
}

impl RotatingSessions {
    pub(crate) fn new(identity: Identity) -> Self {
        let now = identity();
        Self {
            identity,
            current: Mutex::new((now, Arc::new(ClientSessionMemoryCache::new(SESSIONS)))),
        }
    }

    fn store(&self) -> Arc<ClientSessionMemoryCache> {
        let now = (self.identity)();
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.0 != now {
            *current = (now, Arc::new(ClientSessionMemoryCache::new(SESSIONS)));
        }
        current.1.clone()
    }
}

impl ClientSessionStore for RotatingSessions {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.store().set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.store().kx_hint(server_name)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.store().set_tls12_session(server_name, value);
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.store().tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.store().remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        self.store().insert_tls13_ticket(server_name, value);
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        self.store().take_tls13_ticket(server_name)
    }
}
