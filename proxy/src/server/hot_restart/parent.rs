//! Parent side: the live generation serves hot-restart requests from one child at a time
//! on its domain socket. Peers with another uid are refused (SO_PEERCRED). A connection
//! must open with the version hello, within `HELLO_DEADLINE`, before anything else is
//! answered; only a peer that said hello becomes "the child in progress", so an idle or
//! half-sent peer can never block a real reload. A second child while one is in progress
//! gets a clear error. A child that disconnects before asking for drain leaves the parent
//! untouched (its admin listener is restored if it had been handed over). A child silent
//! for `SESSION_IDLE_DEADLINE` before the drain request is dropped. The parent expects
//! no file descriptors: any that arrive are closed.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use baton_proto::pb::baton::hot_restart::v1 as pb;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, Notify};
use tracing::{info, warn};

use super::codec::{Channel, CodecError};
use super::{HotRestartError, PROTOCOL_VERSION, STATS_LAYOUT_VERSION};
use crate::listener::ConnectionTracker;
use crate::server::state::{ServerState, ShutdownReason};

/// How long a new connection gets to deliver its complete hello.
const HELLO_DEADLINE: Duration = Duration::from_secs(5);

/// How long a child that said hello may stay silent before it asks to drain us (its
/// initialisation: clusters, xDS first fetch). Past it the child counts as stuck.
const SESSION_IDLE_DEADLINE: Duration = Duration::from_secs(600);

/// Connections still in their hello phase beyond this are closed at once.
const MAX_PENDING_HELLOS: usize = 32;

/// A listen socket the parent can pass on.
#[derive(Debug)]
pub struct PassableSocket {
    /// Address as configured (what the child asks for).
    pub configured: SocketAddr,
    /// The socket (a dup of the one the workers accept on).
    pub socket: TcpListener,
}

/// What the hot-restart session asks the main loop to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentEvent {
    /// The child needs the admin port: stop the admin listener.
    ShutdownAdmin,
    /// The child took our admin listen socket: stop accepting on it, keep it open.
    PauseAdmin,
    /// The child failed after taking admin: serve admin again.
    RestoreAdmin,
}

/// Lists the listen sockets a child may take, at the time it asks.
pub type SocketSupplier = Box<dyn Fn() -> Vec<PassableSocket> + Send + Sync>;

/// The generation's accepted xDS resources as an encoded `XdsState`, when the child's
/// fingerprint (config sources and node) matches ours.
pub type XdsStateSupplier = Box<dyn Fn(&str) -> Option<Vec<u8>> + Send + Sync>;

/// Bytes of xDS state per reply (well inside the codec's message bound).
const XDS_CHUNK: usize = 48 * 1024;

/// Shared state of the parent side.
pub struct ParentContext {
    /// Server state (lifecycle, start times, epoch).
    pub state: Arc<ServerState>,
    /// The sockets a child may take now (the active listeners').
    pub sockets: SocketSupplier,
    /// The xDS state a child may start from.
    pub xds_state: XdsStateSupplier,
    /// To the main loop.
    pub events: mpsc::UnboundedSender<ParentEvent>,
    /// Our hot-restart generation (how many hand-overs led to us).
    pub generation: u32,
    /// Woken when a child has taken over from us (our own draining parent must then
    /// terminate).
    pub child_took_over: Arc<Notify>,
    /// Our downstream connections (`server.parent_connections` for the child).
    pub tracker: Arc<ConnectionTracker>,
    busy: AtomicBool,
    pending_hellos: AtomicUsize,
    draining: AtomicBool,
    admin_handed_over: Mutex<bool>,
    /// Our admin listen socket (configured address, a duplicate fd), for a child whose
    /// admin is configured with the same address.
    admin_socket: Mutex<Option<PassableSocket>>,
}

impl ParentContext {
    /// New context.
    pub fn new(
        state: Arc<ServerState>,
        sockets: SocketSupplier,
        xds_state: XdsStateSupplier,
        events: mpsc::UnboundedSender<ParentEvent>,
        generation: u32,
        child_took_over: Arc<Notify>,
        tracker: Arc<ConnectionTracker>,
    ) -> Arc<Self> {
        Arc::new(Self {
            state,
            sockets,
            xds_state,
            events,
            generation,
            child_took_over,
            tracker,
            busy: AtomicBool::new(false),
            pending_hellos: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            admin_handed_over: Mutex::new(false),
            admin_socket: Mutex::new(None),
        })
    }

    /// Offers our admin listen socket to children (see `ShutdownAdmin.address`).
    pub fn set_admin_socket(&self, socket: Option<PassableSocket>) {
        *self.admin_socket.lock().unwrap_or_else(|e| e.into_inner()) = socket;
    }
}

/// Binds the generation's private socket (mode from `--socket-mode`), to be published
/// with [`publish`] once LIVE.
pub fn bind(private: &Path, mode: u32) -> Result<UnixListener, HotRestartError> {
    let err = |source| HotRestartError::Socket {
        path: private.to_path_buf(),
        source,
    };
    let _ = std::fs::remove_file(private);
    let listener = UnixListener::bind(private).map_err(err)?;
    std::fs::set_permissions(private, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    Ok(listener)
}

/// Atomically makes `private` the service's hot-restart socket (replacing a stale one or
/// the previous generation's: rename never fails with "address in use").
pub fn publish(private: &Path, public: &Path) -> Result<(), HotRestartError> {
    std::fs::rename(private, public).map_err(|source| HotRestartError::Socket {
        path: public.to_path_buf(),
        source,
    })
}

/// Serves children until the process exits.
pub async fn serve(listener: UnixListener, ctx: Arc<ParentContext>) {
    let my_uid = nix::unistd::getuid().as_raw();
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                warn!(error = %e, "hot-restart accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == my_uid => {}
            Ok(cred) => {
                warn!(
                    peer_uid = cred.uid(),
                    "refusing hot-restart peer with another uid"
                );
                continue;
            }
            Err(e) => {
                warn!(error = %e, "cannot read hot-restart peer credentials; refusing");
                continue;
            }
        }
        if ctx.pending_hellos.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING_HELLOS {
            ctx.pending_hellos.fetch_sub(1, Ordering::AcqRel);
            warn!("too many hot-restart connections waiting for their hello; closing one");
            continue;
        }
        let ctx = Arc::clone(&ctx);
        tokio::spawn(async move {
            let mut channel = Channel::new(stream);
            let hello = first_hello(&mut channel).await;
            ctx.pending_hellos.fetch_sub(1, Ordering::AcqRel);
            let hello = match hello {
                Ok(h) => h,
                Err(why) if why.is_empty() => {
                    // Closed without a byte: another generation checking for a stale socket.
                    tracing::debug!("hot-restart connection closed before its hello");
                    return;
                }
                Err(why) => {
                    warn!("closing a hot-restart connection: {why}");
                    let _ = refuse(&mut channel, &why).await;
                    return;
                }
            };
            if ctx.busy.swap(true, Ordering::AcqRel) {
                warn!(
                    child_epoch = hello.child_epoch,
                    child_pid = hello.child_pid,
                    "refusing a second hot restart while one is in progress"
                );
                let _ = refuse(&mut channel, "a hot restart is already in progress").await;
                return;
            }
            let outcome = session(&mut channel, &ctx, hello).await;
            ctx.busy.store(false, Ordering::Release);
            match outcome {
                Ok(()) => {}
                Err(e) => {
                    if !ctx.draining.load(Ordering::Acquire) {
                        warn!(error = %e, "hot restart failed; this generation keeps serving");
                        restore_admin(&ctx);
                    }
                }
            }
        });
    }
}

/// The connection's first message, which must be a complete hello within
/// `HELLO_DEADLINE`; otherwise why the connection is closed (empty when the peer hung up
/// without sending anything).
async fn first_hello(channel: &mut Channel) -> Result<pb::Hello, String> {
    match tokio::time::timeout(HELLO_DEADLINE, channel.recv::<pb::Request>()).await {
        Err(_) => Err(format!("no hello within {HELLO_DEADLINE:?}")),
        Ok(Err(CodecError::Closed)) if channel.nothing_received() => Err(String::new()),
        Ok(Err(e)) => Err(format!("no hello: {e}")),
        Ok(Ok(pb::Request {
            kind: Some(pb::request::Kind::Hello(h)),
        })) => {
            discard_fds(channel);
            Ok(h)
        }
        Ok(Ok(_)) => Err("the first request must be the version hello".to_string()),
    }
}

/// Closes file descriptors a peer sent: the parent never expects any.
fn discard_fds(channel: &mut Channel) {
    let mut closed = 0;
    while channel.take_fd().is_some() {
        closed += 1;
    }
    if closed > 0 {
        warn!(
            closed,
            "closed file descriptors a hot-restart child sent unasked"
        );
    }
}

async fn refuse(channel: &mut Channel, why: &str) -> Result<(), CodecError> {
    channel
        .send(
            &pb::Reply {
                kind: Some(pb::reply::Kind::Error(pb::Error {
                    message: why.to_string(),
                })),
            },
            None,
        )
        .await
}

fn restore_admin(ctx: &ParentContext) {
    let mut handed = ctx
        .admin_handed_over
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if *handed {
        *handed = false;
        let _ = ctx.events.send(ParentEvent::RestoreAdmin);
    }
}

fn reply(kind: pb::reply::Kind) -> pb::Reply {
    pb::Reply { kind: Some(kind) }
}

/// One child's session, from its hello, request by request, until it disconnects.
async fn session(
    channel: &mut Channel,
    ctx: &ParentContext,
    hello: pb::Hello,
) -> Result<(), HotRestartError> {
    let sockets = (ctx.sockets)();
    // Encoded once per session, on the first chunk request.
    let mut xds_state: Option<Option<Vec<u8>>> = None;
    let mut ticket_keys: Option<Vec<u8>> = None;
    let mut claimed = vec![false; sockets.len()];
    let mut child = String::from("unknown child");
    let mut next = Some(pb::Request {
        kind: Some(pb::request::Kind::Hello(hello)),
    });
    loop {
        let received = match next.take() {
            Some(first) => Ok(first),
            None if ctx.draining.load(Ordering::Acquire) => channel.recv().await,
            None => match tokio::time::timeout(SESSION_IDLE_DEADLINE, channel.recv()).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(HotRestartError::Protocol(format!(
                        "{child} silent for {SESSION_IDLE_DEADLINE:?}; dropped"
                    )))
                }
            },
        };
        discard_fds(channel);
        let req: pb::Request = match received {
            Ok(r) => r,
            Err(CodecError::Closed) if ctx.draining.load(Ordering::Acquire) => return Ok(()),
            Err(CodecError::Closed) => {
                return Err(HotRestartError::Protocol(format!(
                    "{child} disconnected before taking over"
                )))
            }
            Err(e) => return Err(e.into()),
        };
        match req.kind {
            Some(pb::request::Kind::Hello(h)) => {
                child = format!("child epoch {} pid {}", h.child_epoch, h.child_pid);
                info!(%child, "hot restart: child says hello");
                let r = reply(pb::reply::Kind::Hello(pb::HelloReply {
                    protocol_version: PROTOCOL_VERSION,
                    stats_layout_version: STATS_LAYOUT_VERSION,
                    parent_epoch: ctx.state.options.restart_epoch,
                    parent_pid: std::process::id(),
                    parent_state: ctx.state.lifecycle().as_str().to_string(),
                    parent_version: crate::server::VERSION.to_string(),
                    features: vec![
                        super::FEATURE_XDS_RESOURCES.to_string(),
                        super::FEATURE_ADMIN_SOCKET.to_string(),
                        super::FEATURE_TICKET_KEYS.to_string(),
                    ],
                }));
                channel.send(&r, None).await?;
                if h.protocol_version != PROTOCOL_VERSION
                    || h.stats_layout_version != STATS_LAYOUT_VERSION
                {
                    return Err(HotRestartError::VersionMismatch(format!(
                        "{child} speaks protocol {} / stats layout {}, we speak {PROTOCOL_VERSION} / {STATS_LAYOUT_VERSION}",
                        h.protocol_version, h.stats_layout_version
                    )));
                }
            }
            Some(pb::request::Kind::PassListenSocket(p)) => {
                let wanted: Option<SocketAddr> = p.address.parse().ok();
                let found = sockets
                    .iter()
                    .enumerate()
                    .position(|(i, s)| !claimed[i] && Some(s.configured) == wanted);
                match found {
                    Some(i) => {
                        claimed[i] = true;
                        let fd = sockets[i].socket.as_raw_fd();
                        let r = reply(pb::reply::Kind::PassListenSocket(
                            pb::PassListenSocketReply { found: true },
                        ));
                        channel.send(&r, Some(fd)).await?;
                        info!(%child, address = %p.address, "hot restart: passed listen socket");
                    }
                    None => {
                        let r = reply(pb::reply::Kind::PassListenSocket(
                            pb::PassListenSocketReply { found: false },
                        ));
                        channel.send(&r, None).await?;
                    }
                }
            }
            Some(pb::request::Kind::ShutdownAdmin(req)) => {
                let first = *ctx
                    .state
                    .first_start_wall
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                // Early form (the child's configured address): hand over the very socket
                // when it is configured alike, else keep our admin (the child binds its
                // own address). Late form (no address): close ours.
                let passed = if req.address.is_empty() {
                    // The admin port must really be free for this child.
                    ctx.admin_socket
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take();
                    None
                } else {
                    let wanted: Option<SocketAddr> = req.address.parse().ok();
                    let ours = ctx.admin_socket.lock().unwrap_or_else(|e| e.into_inner());
                    ours.as_ref()
                        .filter(|s| Some(s.configured) == wanted)
                        .and_then(|s| s.socket.try_clone().ok())
                };
                let hand_over = req.address.is_empty() || passed.is_some();
                if hand_over {
                    *ctx.admin_handed_over
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = true;
                }
                let r = reply(pb::reply::Kind::ShutdownAdmin(pb::ShutdownAdminReply {
                    original_start_time_unix: first
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                    hot_restart_generation: ctx.generation,
                    socket_passed: passed.is_some(),
                }));
                channel
                    .send(&r, passed.as_ref().map(|s| s.as_raw_fd()))
                    .await?;
                if passed.is_some() {
                    // Stop accepting only once the child holds the socket: nobody who
                    // connects meanwhile is refused.
                    let _ = ctx.events.send(ParentEvent::PauseAdmin);
                    info!(%child, "hot restart: admin listen socket handed over");
                } else if hand_over {
                    let _ = ctx.events.send(ParentEvent::ShutdownAdmin);
                    info!(%child, "hot restart: admin handed over");
                }
            }
            Some(pb::request::Kind::DrainListeners(_)) => {
                ctx.draining.store(true, Ordering::Release);
                ctx.state.request_shutdown(ShutdownReason::HotRestart);
                // Our own draining parent (if any) must go now: at most one generation
                // drains at a time. Only now, so a child that fails earlier costs it nothing.
                ctx.child_took_over.notify_one();
                channel
                    .send(&reply(pb::reply::Kind::Ack(pb::Ack {})), None)
                    .await?;
                info!(%child, "hot restart: child is live; draining");
            }
            Some(pb::request::Kind::Terminate(_)) => {
                ctx.draining.store(true, Ordering::Release);
                // Straight to the server state: the main loop no longer reads events once
                // it drains, and Terminate must cut a drain short.
                ctx.state.request_shutdown(ShutdownReason::Terminate);
                channel
                    .send(&reply(pb::reply::Kind::Ack(pb::Ack {})), None)
                    .await?;
                info!(%child, "hot restart: asked to terminate");
            }
            Some(pb::request::Kind::XdsResources(x)) => {
                if x.chunk == 0 || xds_state.is_none() {
                    xds_state = Some((ctx.xds_state)(&x.fingerprint));
                }
                let r = match xds_state.as_ref().and_then(Option::as_ref) {
                    Some(data) => {
                        let start = (x.chunk as usize).saturating_mul(XDS_CHUNK).min(data.len());
                        let end = (start + XDS_CHUNK).min(data.len());
                        pb::XdsResourcesReply {
                            available: true,
                            data: data[start..end].to_vec(),
                            more: end < data.len(),
                        }
                    }
                    None => pb::XdsResourcesReply::default(),
                };
                if x.chunk == 0 {
                    info!(%child, available = r.available, "hot restart: xDS state requested");
                }
                channel
                    .send(&reply(pb::reply::Kind::XdsResources(r)), None)
                    .await?;
            }
            Some(pb::request::Kind::TicketKeys(t)) => {
                if t.chunk == 0 || ticket_keys.is_none() {
                    let keys = crate::tls::tickets::registry().export();
                    info!(%child, contexts = keys.len(), "hot restart: session ticket keys requested");
                    ticket_keys = Some(super::ticket_keys::encode(&keys));
                }
                let data = ticket_keys.as_deref().unwrap_or_default();
                let r = super::ticket_keys::chunk_reply(data, t.chunk);
                channel
                    .send(&reply(pb::reply::Kind::TicketKeys(r)), None)
                    .await?;
            }
            Some(pb::request::Kind::Stats(_)) => {
                let r = reply(pb::reply::Kind::Stats(pb::StatsReply {
                    parent_connections: ctx.tracker.active() as u64,
                }));
                channel.send(&r, None).await?;
            }
            None => {
                return Err(HotRestartError::Protocol(format!(
                    "{child} sent an empty request"
                )))
            }
        }
    }
}
