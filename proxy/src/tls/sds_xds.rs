//! SDS from a control plane: `sds_config` with `ads: {}` or its own `api_config_source`.
//!
//! Each secret is one [`SecretProvider`], shared by every TLS context naming it through
//! the same source (as Envoy shares one SDS subscription). Per source, the names in use
//! are what the `Secret` subscription asks for; the server attaches the xDS client
//! ([`attach`]) and the subscription follows the names. A delivered certificate (or
//! validation context) is checked like one from a config, then swapped in for new
//! handshakes (open connections
//! keep theirs); a bad one is NACKed with the error and the old one keeps serving.
//! Listeners using a secret warm until it arrives or its `initial_fetch_timeout` passes.
//! Counted as Envoy's `sds.<secret name>.*`; an accepted secret that differs from the
//! one before counts `ssl_context_update_by_sds` of every context using it, as Envoy's
//! (SotW resends an unchanged secret with the others: not counted).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use baton_config::model::{ConfigSource, ValidationContext, XdsSecretSource};
use baton_config::resource::ResourceDump;
use baton_proto::pb::envoy::extensions::transport_sockets::tls::v3::CertificateValidationContext;
use tokio::sync::watch;
use tracing::{info, warn};

use baton_shared_stats::Counter;

use super::sds::{CertEntry, SdsStats, UpdateCount};
use crate::xds::{HandlerFuture, ResourceHandler, Update};

/// What /config_dump shows of a delivered secret.
#[derive(Debug, Clone)]
pub struct SecretMeta {
    /// `version_info` of the response that delivered it.
    pub version_info: String,
    /// When it was applied.
    pub last_updated: SystemTime,
    /// The resource (private keys redacted when rendered).
    pub config_dump: ResourceDump,
}

/// One secret from a control plane: the current certificate (None until one arrives)
/// and whether listeners may stop waiting for it.
pub struct SecretProvider {
    name: String,
    certificate: ArcSwapOption<CertEntry>,
    validation: ArcSwapOption<ValidationContext>,
    /// The delivered validation context as sent, for contexts that merge it onto their
    /// `combined_validation_context` default.
    validation_proto: ArcSwapOption<CertificateValidationContext>,
    /// Delivered session ticket keys.
    ticket_keys: ArcSwapOption<super::tickets::ConfiguredTicketer>,
    /// Bumped on every accepted secret (what derived verifiers follow).
    updates: watch::Sender<u64>,
    /// True once a secret arrived, its initial fetch timed out, or the first one was
    /// rejected (Envoy lets initialisation go on then).
    ready: watch::Sender<bool>,
    meta: Mutex<Option<SecretMeta>>,
    stats: SdsStats,
    /// The xxHash64 of the last accepted resource (None before one): only a change is
    /// an update of the contexts using it.
    applied_hash: Mutex<Option<u64>>,
    /// The contexts' `ssl_context_update_by_sds`, each while its context holds the
    /// [`UpdateCount`].
    update_counters: Mutex<Vec<(Weak<()>, Counter)>>,
    initial_fetch_timeout: Option<Duration>,
}

impl std::fmt::Debug for SecretProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretProvider")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SecretProvider {
    /// The secret's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current certificate (one pointer load; None before one arrived).
    pub fn certificate(&self) -> Option<Arc<CertEntry>> {
        self.certificate.load_full()
    }

    /// The current validation context (None before one arrived).
    pub fn validation(&self) -> Option<Arc<ValidationContext>> {
        self.validation.load_full()
    }

    /// The current validation context merged onto `default` (a
    /// `combined_validation_context`'s encoded default; None: the secret's own). None
    /// before one arrived.
    pub fn validation_for(
        &self,
        default: Option<&[u8]>,
    ) -> Option<Result<Arc<ValidationContext>, String>> {
        let Some(default) = default else {
            return self.validation().map(Ok);
        };
        let dynamic = self.validation_proto.load_full()?;
        let path = format!("{}.validation_context", self.name);
        Some(
            baton_config::sds::merged_validation_context(Some(default), &dynamic, &path)
                .map_err(|e| e.to_string()),
        )
    }

    /// The current session ticket keys (None before they arrived).
    pub fn ticket_keys(&self) -> Option<Arc<super::tickets::ConfiguredTicketer>> {
        self.ticket_keys.load_full()
    }

    /// Changes whenever a secret is accepted.
    pub fn updates(&self) -> watch::Receiver<u64> {
        self.updates.subscribe()
    }

    /// Whether the listeners using it may stop warming.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Resolves once a secret arrived, or its initial fetch timed out.
    pub async fn wait_ready(&self) {
        let mut rx = self.ready.subscribe();
        let wait = rx.wait_for(|r| *r);
        match self.initial_fetch_timeout {
            Some(t) => {
                if tokio::time::timeout(t, wait).await.is_err() {
                    warn!(secret = %self.name, "SDS initial fetch timed out; listeners stop waiting for it");
                    self.stats.init_fetch_timeout.inc();
                    self.ready.send_replace(true);
                }
            }
            None => {
                let _ = wait.await;
            }
        }
    }

    /// Counts each later change of this secret in `counter` (a context's
    /// `ssl_context_update_by_sds`) while the returned token lives.
    pub fn count_updates(&self, counter: &Counter) -> UpdateCount {
        let (token, alive) = UpdateCount::token();
        // Config build time only, never per request.
        let mut counters = self
            .update_counters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        counters.retain(|(alive, _)| alive.strong_count() > 0);
        counters.push((alive, counter.clone()));
        token
    }

    /// What /config_dump shows, once a secret arrived.
    pub fn meta(&self) -> Option<SecretMeta> {
        self.meta.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Counts changes of each secret in `providers` (once per secret) in `counter`.
pub fn count_updates(providers: &[Arc<SecretProvider>], counter: &Counter) -> Vec<UpdateCount> {
    let mut seen: Vec<&Arc<SecretProvider>> = Vec::new();
    let mut tokens = Vec::new();
    for provider in providers {
        if seen.iter().any(|p| Arc::ptr_eq(p, provider)) {
            continue;
        }
        seen.push(provider);
        tokens.push(provider.count_updates(counter));
    }
    tokens
}

/// Subscribes a source's `Secret` names with a handler (the server's xDS client).
pub type Subscriber = Arc<
    dyn Fn(&ConfigSource, watch::Receiver<Vec<String>>, Arc<dyn ResourceHandler>) + Send + Sync,
>;

/// The secrets of one config source.
struct SourceSecrets {
    source: ConfigSource,
    providers: HashMap<String, Weak<SecretProvider>>,
    names: watch::Sender<Vec<String>>,
    subscribed: bool,
}

#[derive(Default)]
struct Registry {
    /// By config source (its `Debug` form: one subscription per source).
    sources: HashMap<String, SourceSecrets>,
    subscriber: Option<Subscriber>,
}

fn registry() -> MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    // Config build and admin only, never per request.
    REGISTRY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn source_key(source: &ConfigSource) -> String {
    format!("{:?}", source.kind)
}

/// The provider of `secret`, shared with every context naming it through the same
/// source; made (and subscribed) on first use.
pub fn provider(secret: &XdsSecretSource) -> Arc<SecretProvider> {
    let mut reg = registry();
    let key = source_key(&secret.source);
    let subscriber = reg.subscriber.clone();
    let entry = reg
        .sources
        .entry(key.clone())
        .or_insert_with(|| SourceSecrets {
            source: secret.source.clone(),
            providers: HashMap::new(),
            names: watch::channel(Vec::new()).0,
            subscribed: false,
        });
    if let Some(p) = entry
        .providers
        .get(&secret.secret_name)
        .and_then(Weak::upgrade)
    {
        return p;
    }
    let stats = SdsStats::new(&secret.secret_name);
    // Envoy counts the subscription's initial request as an attempt.
    stats.update_attempt.inc();
    let p = Arc::new(SecretProvider {
        name: secret.secret_name.clone(),
        certificate: ArcSwapOption::empty(),
        validation: ArcSwapOption::empty(),
        validation_proto: ArcSwapOption::empty(),
        ticket_keys: ArcSwapOption::empty(),
        updates: watch::channel(0).0,
        ready: watch::channel(false).0,
        meta: Mutex::new(None),
        stats,
        applied_hash: Mutex::new(None),
        update_counters: Mutex::new(Vec::new()),
        initial_fetch_timeout: secret.source.initial_fetch_timeout,
    });
    entry
        .providers
        .insert(secret.secret_name.clone(), Arc::downgrade(&p));
    publish(entry);
    if let Some(subscriber) = subscriber {
        subscribe(entry, &key, &subscriber);
    }
    p
}

fn publish(entry: &mut SourceSecrets) {
    entry.providers.retain(|_, p| p.strong_count() > 0);
    let mut names: Vec<String> = entry.providers.keys().cloned().collect();
    names.sort();
    entry.names.send_if_modified(|current| {
        if *current == names {
            return false;
        }
        *current = names;
        true
    });
}

fn subscribe(entry: &mut SourceSecrets, key: &str, subscriber: &Subscriber) {
    if entry.subscribed {
        return;
    }
    entry.subscribed = true;
    let handler = Arc::new(SdsHandler {
        source_key: key.to_string(),
    });
    subscriber(&entry.source, entry.names.subscribe(), handler);
}

/// Gives the registry the server's xDS client: every source in use is subscribed now,
/// later ones when first used.
pub fn attach(subscriber: Subscriber) {
    let mut reg = registry();
    reg.subscriber = Some(subscriber.clone());
    for (key, entry) in reg.sources.iter_mut() {
        subscribe(entry, key, &subscriber);
    }
}

/// Drops the names no context uses any more from their subscriptions.
pub fn prune() {
    for entry in registry().sources.values_mut() {
        publish(entry);
    }
}

/// Every secret in use, by name (for /config_dump), sorted.
pub fn all() -> Vec<Arc<SecretProvider>> {
    let reg = registry();
    let mut all: Vec<_> = reg
        .sources
        .values()
        .flat_map(|e| e.providers.values().filter_map(Weak::upgrade))
        .collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

fn providers_named(source_key: &str, name: &str) -> Option<Arc<SecretProvider>> {
    registry()
        .sources
        .get(source_key)
        .and_then(|e| e.providers.get(name))
        .and_then(Weak::upgrade)
}

/// Applies one source's `Secret` responses.
struct SdsHandler {
    source_key: String,
}

impl SdsHandler {
    /// Checks and applies one delivered secret to its provider.
    fn apply_one(
        provider: &SecretProvider,
        resource: &crate::xds::Resource,
        version_info: &str,
    ) -> Result<(), String> {
        let secret = baton_config::sds::decode_secret(&resource.any)
            .map_err(|e| format!("{}: {e}", resource.name))?;
        let hash = xxhash_rust::xxh64::xxh64(&resource.any.value, 0);
        let built = Self::store_secret(provider, &secret, &resource.name);
        // Envoy 1.40 takes a secret in before its contexts refuse it, so the next one
        // is compared with the refused one: resending the last good secret after a
        // NACK counts as a change (`ssl_context_update_by_sds`).
        let previous = provider
            .applied_hash
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(hash);
        if built.is_err() {
            if let Some(t) = baton_config::sds::secret_certificate_not_after(&secret) {
                super::certs::show_refused_expiration(&resource.name, t);
            }
        }
        built?;
        provider.updates.send_modify(|n| *n += 1);
        *provider.meta.lock().unwrap_or_else(|e| e.into_inner()) = Some(SecretMeta {
            version_info: version_info.to_string(),
            last_updated: SystemTime::now(),
            config_dump: ResourceDump::new(&resource.any),
        });
        provider.stats.accepted(version_info);
        if previous != Some(hash) {
            let mut counters = provider
                .update_counters
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            counters.retain(|(alive, _)| alive.strong_count() > 0);
            for (_, counter) in counters.iter() {
                counter.inc();
            }
        }
        provider.ready.send_replace(true);
        info!(secret = %provider.name, version = %version_info, "SDS secret applied");
        Ok(())
    }

    /// Checks `secret` and swaps it into `provider` for new handshakes.
    fn store_secret(
        provider: &SecretProvider,
        secret: &baton_proto::pb::envoy::extensions::transport_sockets::tls::v3::Secret,
        resource_name: &str,
    ) -> Result<(), String> {
        use baton_proto::pb::envoy::extensions::transport_sockets::tls::v3::secret::Type;
        if let Some(Type::ValidationContext(proto)) = &secret.r#type {
            let v = baton_config::sds::secret_validation_context(secret, None, resource_name)
                .map_err(|e| e.to_string())?;
            provider
                .validation_proto
                .store(Some(Arc::new(proto.clone())));
            provider.validation.store(Some(v));
        } else if let Some(Type::SessionTicketKeys(_)) = &secret.r#type {
            let keys = baton_config::sds::secret_ticket_keys(secret, resource_name)
                .map_err(|e| e.to_string())?;
            provider
                .ticket_keys
                .store(Some(Arc::new(super::tickets::ConfiguredTicketer::new(
                    &keys,
                    Duration::ZERO,
                ))));
        } else {
            let cert = baton_config::sds::secret_certificate(secret, resource_name)
                .map_err(|e| e.to_string())?;
            provider
                .certificate
                .store(Some(Arc::new(CertEntry::of(&cert))));
        }
        Ok(())
    }
}

impl ResourceHandler for SdsHandler {
    fn apply(&self, update: Update) -> HandlerFuture<'_> {
        Box::pin(async move {
            let mut errors = Vec::new();
            let mut any_applied = false;
            for r in &update.resources {
                let Some(provider) = providers_named(&self.source_key, &r.name) else {
                    continue;
                };
                provider.stats.update_attempt.inc();
                let started = std::time::Instant::now();
                let applied = Self::apply_one(&provider, r, &update.version_info);
                if applied.is_ok() {
                    crate::stats::record_ms(&provider.stats.update_duration, started.elapsed());
                    any_applied = true;
                }
                if let Err(e) = applied {
                    warn!(secret = %r.name, error = %e, "SDS secret rejected: keeping the current one");
                    provider.stats.update_rejected.inc();
                    if !update.state_of_the_world {
                        // Measured on Envoy 1.40: a NACKed delta response counts two
                        // attempts (a SotW one, one).
                        provider.stats.update_attempt.inc();
                    }
                    // As Envoy: a rejected first secret lets initialisation go on.
                    provider.ready.send_replace(true);
                    errors.push(e);
                }
            }
            // Delta: a removed secret counts as an accepted update of the new system
            // version, as Envoy 1.40's (which keeps serving the secret it had).
            for name in &update.removed {
                if let Some(provider) = providers_named(&self.source_key, name) {
                    provider.stats.update_attempt.inc();
                    provider.stats.accepted(&update.version_info);
                }
            }
            if any_applied {
                // Once per update, however many secrets it carried.
                super::certs::refresh_expiration_gauges();
            }
            if errors.is_empty() {
                Ok(())
            } else {
                Err(errors.join("\n"))
            }
        })
    }
}
