//! File-based subscriptions: a `path_config_source` (a `DiscoveryResponse`) or a
//! `file://` collection locator (a `Resource` holding a collection of inline entries),
//! read at once and again whenever a file is moved over it (or, with
//! `watched_directory`, a move there changes what it resolves to); like Envoy, never on
//! an in-place write. A file that cannot be read or parsed counts `update_failure`; one
//! whose resources the handler refuses counts `update_rejected`; either way the last
//! accepted config stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use super::stats::SubscriptionStats;
use super::stream::InitOnce;
use super::{Resource, ResourceHandler, Update};

/// How often a file is checked for a change.
const FILE_POLL: Duration = Duration::from_millis(250);

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FileShape {
    /// A `DiscoveryResponse` (`path_config_source`).
    DiscoveryResponse,
    /// A `Resource` whose resource is a collection (`file://` locator).
    Collection,
}

/// One watched file.
#[derive(Debug, Clone)]
pub(super) struct FileSource {
    /// The file.
    pub(super) path: PathBuf,
    /// `watched_directory` of a `path_config_source`.
    pub(super) watched_directory: Option<PathBuf>,
    /// What it holds.
    pub(super) shape: FileShape,
}

/// Identity of a directory entry: (device, inode, birth time). A file renamed over the
/// name changes it; writing into the file in place does not. The birth time tells a reused
/// inode apart.
type FileId = (u64, u64, Option<SystemTime>);

fn file_id(meta: &std::fs::Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino(), meta.created().ok())
}

/// What a poll compares, to reload when Envoy does (it watches for moves only, never
/// for writes, so a half-written file is never read): the name `path` itself (a file
/// moved over it) and, with a `watched_directory`, what `path` resolves to (a symlink
/// swapped by a move in that directory, as Kubernetes updates a mounted ConfigMap).
/// None while `path` does not exist (Envoy ignores a deletion; the next move reloads).
fn watch_stamp(path: &Path, watched_directory: bool) -> Option<(FileId, Option<FileId>)> {
    let own = file_id(&std::fs::symlink_metadata(path).ok()?);
    let resolved = if watched_directory {
        std::fs::metadata(path).ok().map(|meta| file_id(&meta))
    } else {
        None
    };
    Some((own, resolved))
}

/// Applies the file now and whenever a file is moved over it (or, with
/// `watched_directory`, whenever what it resolves to changes).
pub(super) async fn watch_file(
    source: FileSource,
    handler: Arc<dyn ResourceHandler>,
    stats: Option<SubscriptionStats>,
    init: Arc<InitOnce>,
) {
    let FileSource {
        path,
        watched_directory,
        shape,
    } = source;
    let watched = watched_directory.is_some();
    let mut last = None;
    let mut first = true;
    let mut last_fingerprint = None;
    loop {
        let stamp = watch_stamp(&path, watched);
        if first || (stamp.is_some() && stamp != last) {
            first = false;
            last = stamp;
            if let Some(st) = &stats {
                st.update_attempt.inc();
            }
            let loaded = match shape {
                FileShape::DiscoveryResponse => load_file(&path),
                FileShape::Collection => load_collection(&path),
            };
            match loaded {
                Ok(update) => {
                    let version = update.version_info.clone();
                    let fingerprint = update.fingerprint();
                    let started = std::time::Instant::now();
                    match handler.apply(update).await {
                        Ok(()) => {
                            info!(path = %path.display(), %version, "xDS file applied");
                            if let Some(st) = &stats {
                                let reloaded = last_fingerprint != Some(fingerprint);
                                st.accepted(&version, started.elapsed(), reloaded);
                            }
                            last_fingerprint = Some(fingerprint);
                        }
                        Err(e) => {
                            warn!(path = %path.display(), error = %e, "xDS file rejected");
                            if let Some(st) = &stats {
                                st.rejected(false);
                            }
                        }
                    }
                }
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "xDS file unreadable");
                    if let Some(st) = &stats {
                        st.update_failure.inc();
                    }
                }
            }
            init.fire();
        }
        tokio::time::sleep(FILE_POLL).await;
    }
}

fn load_file(path: &Path) -> Result<Update, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let resp = baton_config::resource::parse_discovery_response(&text).map_err(|mut e| {
        e.file = Some(path.display().to_string());
        e.to_string()
    })?;
    let mut resources = Vec::with_capacity(resp.resources.len());
    for any in resp.resources {
        let name = baton_config::resource::resource_name(&any).map_err(|e| e.to_string())?;
        resources.push(Resource {
            name,
            version: resp.version_info.clone(),
            any: Arc::new(any),
        });
    }
    Ok(Update {
        version_info: resp.version_info,
        resources,
        removed: Vec::new(),
        state_of_the_world: true,
    })
}

/// A `file://` collection as a state-of-the-world update: each inline entry named by its
/// `name` (else its resource's), versioned by its `version`, as Envoy names and versions
/// collection members.
fn load_collection(path: &Path) -> Result<Update, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file = baton_config::resource::parse_collection_file(&text).map_err(|mut e| {
        e.file = Some(path.display().to_string());
        e.to_string()
    })?;
    let mut resources = Vec::with_capacity(file.members.len());
    for member in file.members {
        let name = if member.name.is_empty() {
            baton_config::resource::resource_name(&member.resource).map_err(|e| e.to_string())?
        } else {
            member.name
        };
        resources.push(Resource {
            name,
            version: member.version,
            any: Arc::new(member.resource),
        });
    }
    Ok(Update {
        version_info: file.version,
        resources,
        removed: Vec::new(),
        state_of_the_world: true,
    })
}
