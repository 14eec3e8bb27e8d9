//! Child side: a new generation's link to the live one. `connect` finds the parent (or
//! reports that there is none: no socket file, or a stale one left by a crash), checks
//! versions, and the methods walk the hand-over in order: take listen sockets, take the
//! admin listener, tell the parent to drain, and later (when a newer generation arrives)
//! tell it to terminate.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use baton_proto::pb::baton::hot_restart::v1 as pb;
use tokio::net::UnixStream;
use tracing::info;

use super::codec::Channel;
use super::{HotRestartError, PROTOCOL_VERSION, STATS_LAYOUT_VERSION};

/// How long one protocol step may take before the child gives up.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// The connection to the parent generation.
#[derive(Debug)]
pub struct ParentLink {
    channel: Channel,
    /// Parent's restart epoch.
    pub parent_epoch: u32,
    /// Parent's pid.
    pub parent_pid: u32,
    /// Optional requests the parent answers.
    features: Vec<String>,
}

/// Bound on the xDS state a child accepts from its parent.
const MAX_XDS_STATE: usize = 1024 * 1024 * 1024;

/// Connects to the live generation's socket. `Ok(None)`: there is no parent.
pub async fn connect(path: &Path, epoch: u32) -> Result<Option<ParentLink>, HotRestartError> {
    let stream = match UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            if e.kind() == std::io::ErrorKind::ConnectionRefused {
                info!(path = %path.display(), "stale hot-restart socket (previous generation is gone)");
            }
            return Ok(None);
        }
        Err(source) => {
            return Err(HotRestartError::Socket {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut channel = Channel::new(stream);
    let hello = pb::Request {
        kind: Some(pb::request::Kind::Hello(pb::Hello {
            protocol_version: PROTOCOL_VERSION,
            stats_layout_version: STATS_LAYOUT_VERSION,
            child_epoch: epoch,
            child_pid: std::process::id(),
            child_version: crate::server::VERSION.to_string(),
        })),
    };
    let reply = step(&mut channel, hello, None).await?;
    let Some(pb::reply::Kind::Hello(h)) = reply.kind else {
        return Err(unexpected(reply));
    };
    if h.protocol_version != PROTOCOL_VERSION || h.stats_layout_version != STATS_LAYOUT_VERSION {
        return Err(HotRestartError::ParentMismatch {
            detail: format!(
                "parent (epoch {}, pid {}, version {}) speaks hot-restart protocol {} / stats layout {}; this binary speaks {PROTOCOL_VERSION} / {STATS_LAYOUT_VERSION}",
                h.parent_epoch, h.parent_pid, h.parent_version, h.protocol_version, h.stats_layout_version
            ),
            parent_pid: h.parent_pid,
        });
    }
    Ok(Some(ParentLink {
        channel,
        parent_epoch: h.parent_epoch,
        parent_pid: h.parent_pid,
        features: h.features,
    }))
}

fn unexpected(reply: pb::Reply) -> HotRestartError {
    match reply.kind {
        Some(pb::reply::Kind::Error(e)) => HotRestartError::Refused(e.message),
        other => HotRestartError::Protocol(format!("unexpected reply {other:?}")),
    }
}

async fn step(
    channel: &mut Channel,
    req: pb::Request,
    timeout: Option<Duration>,
) -> Result<pb::Reply, HotRestartError> {
    let exchange = async {
        channel.send(&req, None).await?;
        channel.recv::<pb::Reply>().await
    };
    match tokio::time::timeout(timeout.unwrap_or(STEP_TIMEOUT), exchange).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(HotRestartError::Protocol(
            "parent did not answer in time".to_string(),
        )),
    }
}

impl ParentLink {
    /// The parent's accepted xDS resources (an encoded `XdsState`), when it has some
    /// for the same config sources and node (`fingerprint`). Fetched in chunks so a
    /// large state never needs one large message. `Ok(None)`: nothing to inherit (an
    /// older parent, another fingerprint, or no xDS state).
    pub async fn xds_state(
        &mut self,
        fingerprint: &str,
    ) -> Result<Option<Vec<u8>>, HotRestartError> {
        if !self
            .features
            .iter()
            .any(|f| f == super::FEATURE_XDS_RESOURCES)
        {
            return Ok(None);
        }
        let mut data = Vec::new();
        for chunk in 0u32.. {
            let req = pb::Request {
                kind: Some(pb::request::Kind::XdsResources(pb::XdsResources {
                    fingerprint: fingerprint.to_string(),
                    chunk,
                })),
            };
            let reply = step(&mut self.channel, req, None).await?;
            let Some(pb::reply::Kind::XdsResources(r)) = reply.kind else {
                return Err(unexpected(reply));
            };
            if !r.available {
                return Ok(None);
            }
            if data.len() + r.data.len() > MAX_XDS_STATE {
                return Err(HotRestartError::Protocol(format!(
                    "parent's xDS state exceeds {MAX_XDS_STATE} bytes"
                )));
            }
            data.extend_from_slice(&r.data);
            if !r.more {
                break;
            }
        }
        Ok(Some(data))
    }

    /// Takes over the session ticket keys the parent generated (see
    /// `hot_restart::ticket_keys`); returns how many contexts' keys arrived. An older
    /// parent (no `ticket_keys` feature) gives none: this generation makes its own.
    pub async fn take_ticket_keys(&mut self) -> Result<usize, HotRestartError> {
        if !self
            .features
            .iter()
            .any(|f| f == super::FEATURE_TICKET_KEYS)
        {
            return Ok(0);
        }
        let mut data = Vec::new();
        for chunk in 0u32.. {
            let req = pb::Request {
                kind: Some(pb::request::Kind::TicketKeys(pb::TicketKeys { chunk })),
            };
            let reply = step(&mut self.channel, req, None).await?;
            let Some(pb::reply::Kind::TicketKeys(r)) = reply.kind else {
                return Err(unexpected(reply));
            };
            if data.len() + r.data.len() > super::ticket_keys::MAX_STATE {
                return Err(HotRestartError::Protocol(format!(
                    "parent's ticket keys exceed {} bytes",
                    super::ticket_keys::MAX_STATE
                )));
            }
            data.extend_from_slice(&r.data);
            if !r.more {
                break;
            }
        }
        let keys = super::ticket_keys::decode(&data)
            .map_err(|e| HotRestartError::Protocol(format!("ticket keys: {e}")))?;
        let count = keys.len();
        crate::tls::tickets::registry().inherit(keys);
        Ok(count)
    }

    /// Asks for the parent's listen socket configured as `addr`.
    pub async fn take_listen_socket(
        &mut self,
        addr: SocketAddr,
    ) -> Result<Option<TcpListener>, HotRestartError> {
        let req = pb::Request {
            kind: Some(pb::request::Kind::PassListenSocket(pb::PassListenSocket {
                address: addr.to_string(),
                protocol: "tcp".to_string(),
            })),
        };
        let reply = step(&mut self.channel, req, None).await?;
        match reply.kind {
            Some(pb::reply::Kind::PassListenSocket(r)) if r.found => {
                let fd = self.channel.take_fd().ok_or_else(|| {
                    HotRestartError::Protocol("listen socket announced but no fd received".into())
                })?;
                Ok(Some(TcpListener::from(fd)))
            }
            Some(pb::reply::Kind::PassListenSocket(_)) => Ok(None),
            _ => Err(unexpected(reply)),
        }
    }

    /// Takes over the admin listener; returns the first generation's start time and the
    /// parent's hot-restart generation.
    pub async fn shutdown_admin(&mut self) -> Result<(SystemTime, u32), HotRestartError> {
        let (start, generation, _) = self.admin_request(String::new()).await?;
        Ok((start, generation))
    }

    /// Whether the parent hands its admin listen socket over right after hello.
    pub fn passes_admin_socket(&self) -> bool {
        self.features
            .iter()
            .any(|f| f == super::FEATURE_ADMIN_SOCKET)
    }

    /// Asks for the parent's admin listen socket configured as `addr` (early, so admin
    /// answers for this generation while it initialises, as Envoy's child does). `None`
    /// socket: the parent's admin is configured otherwise and stays with it.
    pub async fn take_admin_socket(
        &mut self,
        addr: SocketAddr,
    ) -> Result<(SystemTime, u32, Option<TcpListener>), HotRestartError> {
        self.admin_request(addr.to_string()).await
    }

    async fn admin_request(
        &mut self,
        address: String,
    ) -> Result<(SystemTime, u32, Option<TcpListener>), HotRestartError> {
        let req = pb::Request {
            kind: Some(pb::request::Kind::ShutdownAdmin(pb::ShutdownAdmin {
                address,
            })),
        };
        let reply = step(&mut self.channel, req, None).await?;
        let Some(pb::reply::Kind::ShutdownAdmin(r)) = reply.kind else {
            return Err(unexpected(reply));
        };
        let socket = if r.socket_passed {
            let fd = self.channel.take_fd().ok_or_else(|| {
                HotRestartError::Protocol("admin socket announced but no fd received".into())
            })?;
            Some(TcpListener::from(fd))
        } else {
            None
        };
        Ok((
            UNIX_EPOCH + Duration::from_secs(r.original_start_time_unix),
            r.hot_restart_generation,
            socket,
        ))
    }

    /// Tells the parent to stop accepting and drain.
    pub async fn drain(&mut self) -> Result<(), HotRestartError> {
        self.simple(pb::request::Kind::DrainListeners(pb::DrainListeners {}))
            .await
    }

    /// Tells the parent to exit now (a newer generation is taking over from us).
    pub async fn terminate(&mut self) -> Result<(), HotRestartError> {
        self.simple(pb::request::Kind::Terminate(pb::Terminate {}))
            .await
    }

    async fn simple(&mut self, kind: pb::request::Kind) -> Result<(), HotRestartError> {
        let reply = step(&mut self.channel, pb::Request { kind: Some(kind) }, None).await?;
        match reply.kind {
            Some(pb::reply::Kind::Ack(_)) => Ok(()),
            _ => Err(unexpected(reply)),
        }
    }

    /// The parent's open downstream connections (`server.parent_connections`).
    pub async fn parent_connections(&mut self) -> Result<u64, HotRestartError> {
        let req = pb::Request {
            kind: Some(pb::request::Kind::Stats(pb::Stats {})),
        };
        let reply = step(&mut self.channel, req, None).await?;
        match reply.kind {
            Some(pb::reply::Kind::Stats(r)) => Ok(r.parent_connections),
            _ => Err(unexpected(reply)),
        }
    }

    /// Resolves when the parent has gone (its end of the socket closed).
    pub async fn closed(&mut self) {
        loop {
            match self.channel.recv::<pb::Reply>().await {
                Ok(_) => continue,
                Err(_) => return,
            }
        }
    }
}
