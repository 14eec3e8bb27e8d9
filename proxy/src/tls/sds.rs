//! SDS from files: each secret file (a `path_config_source`) is watched once, however
//! many filter chains use it, and its secret (a certificate, or a client-certificate
//! verifier's validation context) is held behind an `ArcSwap` that the chains' resolvers
//! and verifiers load per handshake. A file moved over the path (or, with
//! `watched_directory`, a move there) is re-read: a good secret is swapped in for new
//! handshakes (open connections keep theirs; ticket keys are untouched), a bad one is
//! logged with the file's name and the old secret stays. A file the secret names by
//! `filename` (a certificate, key, CA, ...) that is replaced the same way makes the
//! secret re-read too, as Envoy (a failure counts `key_rotation_failed`). Counted as
//! Envoy's `sds.<secret name>.*` (`update_duration` exists but stays empty for a file, as
//! in Envoy); each swap also counts `ssl_context_update_by_sds` of
//! every socket factory (listener or cluster context) using the secret.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use baton_config::model::{SdsFileSource, TlsCertificate};
use baton_proto::pb::envoy::service::discovery::v3::DiscoveryResponse;
use rustls::sign::CertifiedKey;
use tracing::{info, warn};

use baton_shared_stats::{Counter, Gauge, Histogram, TextReadout};

use crate::stats::Scope;

/// How often a secret file is checked for a move (as `path_config_source` for xDS).
const FILE_POLL: Duration = Duration::from_millis(250);

/// `sds.<secret name>.*`, the counters Envoy has for a secret subscription.
pub(crate) struct SdsStats {
    pub(crate) update_attempt: Counter,
    pub(crate) update_success: Counter,
    pub(crate) update_rejected: Counter,
    pub(crate) update_failure: Counter,
    pub(crate) init_fetch_timeout: Counter,
    /// Re-reading the secret after a file it names was replaced failed.
    pub(crate) key_rotation_failed: Counter,
    version: Gauge,
    /// When an update was last accepted, in milliseconds since the Unix epoch.
    update_time: Gauge,
    /// The accepted `version_info` itself (Envoy's text readout).
    version_text: TextReadout,
    /// Milliseconds a control plane's update took to apply (Envoy records none for a
    /// secret file, and neither does Baton).
    pub(crate) update_duration: Histogram,
}

impl SdsStats {
    pub(crate) fn new(secret_name: &str) -> Self {
        let s = Scope::new(crate::stats::store(), format!("sds.{secret_name}."));
        Self {
            key_rotation_failed: s.counter("key_rotation_failed"),
            update_time: s.gauge_never_import("update_time"),
            init_fetch_timeout: s.counter("init_fetch_timeout"),
            update_attempt: s.counter("update_attempt"),
            update_success: s.counter("update_success"),
            update_rejected: s.counter("update_rejected"),
            update_failure: s.counter("update_failure"),
            version: s.gauge_never_import("version"),
            update_duration: s.histogram("update_duration"),
            version_text: crate::stats::store()
                .text_readout(&format!("sds.{secret_name}.version_text")),
        }
    }

    /// `version` is the xxHash64 of the accepted `version_info`, as Envoy reports it, and
    /// `version_text` the `version_info` itself.
    pub(crate) fn accepted(&self, version_info: &str) {
        self.update_success.inc();
        self.version_text.set(version_info);
        self.version
            .set(xxhash_rust::xxh64::xxh64(version_info.as_bytes(), 0));
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.update_time.set(now_ms);
    }
}

/// A certificate as the resolver uses it: the chain with its key, and the DNS names SNI
/// picks it by.
#[derive(Debug)]
pub struct CertEntry {
    /// Chain and key.
    pub key: Arc<CertifiedKey>,
    /// Lowercased DNS names of the leaf.
    pub names: Vec<String>,
    /// Where the chain came from (a file name, or `<inline>`), for `/certs`.
    pub source: String,
}

impl CertEntry {
    /// The entry of a resolved certificate.
    pub fn of(cert: &TlsCertificate) -> Self {
        Self {
            key: cert.certified_key.clone(),
            names: cert.dns_names.clone(),
            source: cert.chain_source.clone(),
        }
    }
}

/// One watched secret file's current certificate.
pub type SecretSlot = ArcSwap<CertEntry>;

/// Watched secret files by source, each slot shared by the chains that use it.
pub type Registry<T> = Mutex<HashMap<SdsFileSource, Weak<ArcSwap<T>>>>;

/// Turns a parsed secret file into what a slot holds; the error is logged, the
/// update counted as rejected.
pub type Convert<T> = fn(&DiscoveryResponse, &SdsFileSource) -> Result<T, String>;

fn certificate_registry() -> &'static Registry<CertEntry> {
    static REGISTRY: OnceLock<Registry<CertEntry>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

fn certificate_entry(
    resp: &DiscoveryResponse,
    source: &SdsFileSource,
) -> Result<CertEntry, String> {
    baton_config::sds::certificate_from(resp, source)
        .map(|cert| CertEntry::of(&cert))
        .map_err(|e| e.to_string())
}

/// The `ssl_context_update_by_sds` counters of the contexts using each source, each
/// kept while its context holds the [`UpdateCount`].
type UpdateCounters = Mutex<HashMap<SdsFileSource, Vec<(Weak<()>, Counter)>>>;

fn update_counters() -> &'static UpdateCounters {
    static COUNTERS: OnceLock<UpdateCounters> = OnceLock::new();
    COUNTERS.get_or_init(Default::default)
}

/// While held, swaps of a source's secret count in a context's
/// `ssl_context_update_by_sds`.
#[derive(Debug)]
pub struct UpdateCount(#[allow(dead_code)] Arc<()>);

impl UpdateCount {
    /// A new token and the weak side a counter list keeps (alive while the token is).
    pub(crate) fn token() -> (Self, Weak<()>) {
        let token = Arc::new(());
        let alive = Arc::downgrade(&token);
        (Self(token), alive)
    }
}

/// Counts each later swap of `source`'s secret in `counter` while the returned token
/// lives. Taken before the context subscribes, so that the first read of a file counts
/// as Envoy's first update does.
pub fn count_updates(source: &SdsFileSource, counter: &Counter) -> UpdateCount {
    let token = Arc::new(());
    // Config build time only, never per request.
    let mut map = update_counters().lock().unwrap_or_else(|e| e.into_inner());
    let entries = map.entry(source.clone()).or_default();
    entries.retain(|(alive, _)| alive.strong_count() > 0);
    entries.push((Arc::downgrade(&token), counter.clone()));
    UpdateCount(token)
}

/// A swap of `source`'s secret: counted for every context still using it.
fn count_swap(source: &SdsFileSource) {
    // Only when a secret changes, never per request.
    let mut map = update_counters().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(entries) = map.get_mut(source) {
        entries.retain(|(alive, _)| alive.strong_count() > 0);
        for (_, counter) in entries.iter() {
            counter.inc();
        }
    }
    drop(map);
    // The contexts' certificate expiration gauges follow the new secret.
    super::certs::refresh_expiration_gauges();
}

/// The certificate slot of `source` (see [`subscribe_with`]); `initial` is the
/// certificate read when the config was loaded.
pub fn subscribe(source: &SdsFileSource, initial: &TlsCertificate) -> Arc<SecretSlot> {
    subscribe_with(
        certificate_registry(),
        source,
        || CertEntry::of(initial),
        certificate_entry,
    )
}

/// The slot of `source` in `registry`, shared with every other chain using it; created
/// (holding `initial()`) with its file watcher when no chain holds it. The watcher ends
/// once no chain does.
pub fn subscribe_with<T: Send + Sync + 'static>(
    registry: &'static Registry<T>,
    source: &SdsFileSource,
    initial: impl FnOnce() -> T,
    convert: Convert<T>,
) -> Arc<ArcSwap<T>> {
    // Config build time only, never per request.
    let mut map = registry.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(slot) = map.get(source).and_then(Weak::upgrade) {
        return slot;
    }
    map.retain(|_, weak| weak.strong_count() > 0);
    let slot = Arc::new(ArcSwap::from_pointee(initial()));
    map.insert(source.clone(), Arc::downgrade(&slot));
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(watch(source.clone(), Arc::downgrade(&slot), convert));
        }
        Err(_) => warn!(
            secret = %source.secret_name,
            path = %source.path.display(),
            "no runtime to watch the SDS file: the secret will not rotate"
        ),
    }
    slot
}

/// What a poll compares: the file's identity, and with a watched directory what the
/// path resolves to (a symlink swapped by a move), as the xDS file watcher.
type Stamp = Option<((u64, u64), Option<(u64, u64)>)>;

fn stamp(source: &SdsFileSource) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let own = std::fs::symlink_metadata(&source.path).ok()?;
    let resolved = if source.watched_directory.is_some() {
        std::fs::metadata(&source.path)
            .ok()
            .map(|m| (m.dev(), m.ino()))
    } else {
        None
    };
    Some(((own.dev(), own.ino()), resolved))
}

/// A file's identity (following symlinks): a move over it changes it.
type FileId = Option<(u64, u64)>;

fn file_id(path: &std::path::Path) -> FileId {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The files `resp`'s secret names, each with its identity now.
fn named_files(resp: &DiscoveryResponse, source: &SdsFileSource) -> Vec<(PathBuf, FileId)> {
    baton_config::sds::referenced_files(resp, source)
        .into_iter()
        .map(|p| {
            let id = file_id(&p);
            (p, id)
        })
        .collect()
}

/// Whether `resp` holds exactly one secret, named `name`.
fn holds_only(resp: &DiscoveryResponse, name: &str) -> bool {
    match resp.resources.as_slice() {
        [one] => baton_config::sds::decode_secret(one).is_ok_and(|secret| secret.name == name),
        _ => false,
    }
}

/// A refused secret file's certificate expiry in its contexts' gauges, as Envoy 1.40.
fn show_refused_expiration(resp: &DiscoveryResponse, name: &str) {
    let not_after = resp
        .resources
        .iter()
        .filter_map(|any| baton_config::sds::decode_secret(any).ok())
        .find(|secret| secret.name == name)
        .and_then(|secret| baton_config::sds::secret_certificate_not_after(&secret));
    if let Some(t) = not_after {
        super::certs::show_refused_expiration(name, t);
    }
}

async fn watch<T: Send + Sync + 'static>(
    source: SdsFileSource,
    slot: Weak<ArcSwap<T>>,
    convert: Convert<T>,
) {
    let stats = SdsStats::new(&source.secret_name);
    let file = source.path.display().to_string();
    let mut last: Stamp = None;
    let mut first = true;
    // The last secret file read, and the files its secret names as they were then.
    let mut last_resp: Option<DiscoveryResponse> = None;
    let mut named: Vec<(PathBuf, FileId)> = Vec::new();
    // The secret last accepted from the file: one moved in holding the same secret
    // (only `version_info` new, or nothing) counts as an update, but the contexts are
    // not updated (Envoy compares the secret's hash).
    let mut accepted: Option<Vec<prost_types::Any>> = None;
    loop {
        let Some(current) = slot.upgrade() else {
            return;
        };
        let now = stamp(&source);
        if first || (now.is_some() && now != last) {
            first = false;
            last = now;
            stats.update_attempt.inc();
            match baton_config::sds::parse_file(&source) {
                Err(e) => {
                    stats.update_failure.inc();
                    warn!(secret = %source.secret_name, path = %file, error = %e,
                        "SDS file unreadable: keeping the current secret");
                }
                Ok(resp) if accepted.as_ref() == Some(&resp.resources) => {
                    stats.accepted(&resp.version_info);
                    info!(secret = %source.secret_name, path = %file,
                        version = %resp.version_info, "SDS secret unchanged");
                    last_resp = Some(resp);
                }
                Ok(resp) => {
                    named = named_files(&resp, &source);
                    match convert(&resp, &source) {
                        Ok(value) => {
                            current.store(Arc::new(value));
                            stats.accepted(&resp.version_info);
                            count_swap(&source);
                            accepted = Some(resp.resources.clone());
                            info!(secret = %source.secret_name, path = %file,
                                version = %resp.version_info, "SDS secret applied");
                        }
                        Err(e) => {
                            stats.update_rejected.inc();
                            show_refused_expiration(&resp, &source.secret_name);
                            // As Envoy 1.40, which takes in a secret of the right name
                            // before its contexts refuse it: the next file is compared
                            // with this one.
                            if holds_only(&resp, &source.secret_name) {
                                accepted = Some(resp.resources.clone());
                            }
                            warn!(secret = %source.secret_name, path = %file, error = %e,
                                "SDS secret rejected: keeping the current one");
                        }
                    }
                    last_resp = Some(resp);
                }
            }
        } else if let Some(resp) = &last_resp {
            let replaced = named.iter().any(|(path, id)| {
                let now = file_id(path);
                now.is_some() && now != *id
            });
            if replaced {
                named = named_files(resp, &source);
                match convert(resp, &source) {
                    Ok(value) => {
                        current.store(Arc::new(value));
                        count_swap(&source);
                        info!(secret = %source.secret_name, path = %file,
                            "SDS secret re-read: a file it names was replaced");
                    }
                    Err(e) => {
                        // Envoy 1.40 counts each failed re-read twice (measured with
                        // one context, two filter chains, a listener and a cluster).
                        stats.key_rotation_failed.add(2);
                        show_refused_expiration(resp, &source.secret_name);
                        warn!(secret = %source.secret_name, path = %file, error = %e,
                            "SDS secret re-read after a file it names was replaced failed: keeping the current one");
                    }
                }
            }
        }
        drop(current);
        tokio::time::sleep(FILE_POLL).await;
    }
}
