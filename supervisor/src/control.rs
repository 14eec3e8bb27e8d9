//! The control socket: one length-delimited `ControlRequest` per connection, answered by one
//! length-delimited `ControlReply` (prost, `baton.supervisor.v1`). The server side hands
//! each request to the supervisor loop with a reply channel; the client side is used by
//! `baton-supervisor ctl`. Like the hot-restart socket, only peers running as our uid
//! (or root) are answered (SO_PEERCRED), and a request's length is checked against
//! `MAX_REQUEST` before anything is allocated for it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use baton_proto::pb::baton::supervisor::v1::{ControlReply, ControlRequest};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

/// Largest control reply a client accepts (a status lists every generation).
const MAX_REPLY: usize = 1 << 20;
/// Largest control request accepted (requests carry a few short fields).
pub const MAX_REQUEST: usize = 4 * 1024;
/// Time a client has to send its request.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Control socket errors.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Socket I/O.
    #[error("control socket {path}: {source}")]
    Io {
        /// The socket path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Another supervisor answers on the socket.
    #[error("another supervisor is already running on {0}")]
    InUse(String),
    /// The peer sent something that is not a message.
    #[error("bad control message: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A length prefix over the bound or a truncated message.
    #[error("bad control message framing: {0}")]
    Framing(String),
}

/// A request from `ctl`, with the channel its reply goes back on.
#[derive(Debug)]
pub struct Incoming {
    /// The request.
    pub request: ControlRequest,
    /// Where to send the reply (the connection stays open until then).
    pub reply: oneshot::Sender<ControlReply>,
}

/// Binds the control socket at `path` (mode 0600). A stale file from a dead supervisor is
/// replaced; a live one is an error.
pub async fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    let io = |source| ControlError::Io {
        path: path.display().to_string(),
        source,
    };
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(ControlError::InUse(path.display().to_string()));
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}

/// Counts control connections still being answered, so that the supervisor can let the
/// last replies (e.g. to `ctl stop`) reach their clients before it exits.
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(&self) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.0.clone())
    }

    /// Waits until no connection is being answered, at most `limit`.
    pub async fn drain(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.0.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

struct InFlightGuard(Arc<AtomicUsize>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Accepts connections forever, forwarding each request to `requests`.
pub async fn serve(listener: UnixListener, requests: mpsc::Sender<Incoming>, inflight: InFlight) {
    let my_uid = nix::unistd::getuid().as_raw();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                tracing::warn!(error = %err, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match stream.peer_cred() {
            Ok(cred) if peer_allowed(cred.uid(), my_uid) => {}
            Ok(cred) => {
                tracing::warn!(
                    peer_uid = cred.uid(),
                    "refusing a control connection from another uid"
                );
                continue;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot read control peer credentials; refusing");
                continue;
            }
        }
        let requests = requests.clone();
        let guard = inflight.enter();
        tokio::spawn(async move {
            let _guard = guard;
            if let Err(err) = handle(stream, requests).await {
                tracing::debug!(error = %err, "control connection ended");
            }
        });
    }
}

/// Our own uid, or root (which could signal us anyway).
fn peer_allowed(peer_uid: u32, my_uid: u32) -> bool {
    peer_uid == my_uid || peer_uid == 0
}

async fn handle(mut stream: UnixStream, requests: mpsc::Sender<Incoming>) -> anyhow::Result<()> {
    let request: ControlRequest =
        tokio::time::timeout(REQUEST_READ_TIMEOUT, read_message(&mut stream, MAX_REQUEST))
            .await??;
    let (reply_tx, reply_rx) = oneshot::channel();
    requests
        .send(Incoming {
            request,
            reply: reply_tx,
        })
        .await
        .map_err(|_| anyhow::anyhow!("supervisor is shutting down"))?;
    let reply = reply_rx.await.unwrap_or_else(|_| ControlReply {
        ok: false,
        message: "supervisor exited before answering".into(),
        status: None,
    });
    write_message(&mut stream, &reply).await?;
    Ok(())
}

/// Writes one length-delimited message.
pub async fn write_message<M: Message>(
    stream: &mut UnixStream,
    message: &M,
) -> std::io::Result<()> {
    stream
        .write_all(&message.encode_length_delimited_to_vec())
        .await?;
    stream.flush().await
}

/// Reads one length-delimited message (varint length, then the body); a length over
/// `limit` is refused before the body is read or allocated.
pub async fn read_message<M: Message + Default>(
    stream: &mut UnixStream,
    limit: usize,
) -> Result<M, ControlError> {
    let io = |source| ControlError::Io {
        path: "peer".into(),
        source,
    };
    let mut length: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = stream.read_u8().await.map_err(io)?;
        length |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            let length = usize::try_from(length).unwrap_or(usize::MAX);
            if length > limit {
                return Err(ControlError::Framing(format!("{length} bytes is too long")));
            }
            let mut body = vec![0u8; length];
            stream.read_exact(&mut body).await.map_err(io)?;
            return Ok(M::decode(body.as_slice())?);
        }
    }
    Err(ControlError::Framing("length varint too long".into()))
}

/// Client side: sends `request` to the supervisor at `path` and waits up to `timeout`.
pub async fn call(
    path: &Path,
    request: &ControlRequest,
    timeout: Duration,
) -> Result<ControlReply, ControlError> {
    let io = |source| ControlError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut stream = UnixStream::connect(path).await.map_err(io)?;
    write_message(&mut stream, request).await.map_err(io)?;
    match tokio::time::timeout(timeout, read_message(&mut stream, MAX_REPLY)).await {
        Ok(reply) => reply,
        Err(_) => Err(io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {timeout:?}"),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_proto::pb::baton::supervisor::v1::{control_request, StatusRequest};

    #[tokio::test]
    async fn request_reply_round_trip_and_stale_socket() {
        let dir = std::env::temp_dir().join(format!("baton-sup-control-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let path = dir.join("control.sock");
        std::fs::write(&path, b"stale").expect("stale file");
        let listener = bind(&path).await.expect("replaces stale file");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (tx, mut rx) = mpsc::channel(4);
        let server = tokio::spawn(serve(listener, tx, InFlight::default()));
        tokio::spawn(async move {
            while let Some(incoming) = rx.recv().await {
                let ok = matches!(
                    incoming.request.kind,
                    Some(control_request::Kind::Status(_))
                );
                let _ = incoming.reply.send(ControlReply {
                    ok,
                    message: "hi".into(),
                    status: None,
                });
            }
        });
        assert!(matches!(bind(&path).await, Err(ControlError::InUse(_))));
        let request = ControlRequest {
            kind: Some(control_request::Kind::Status(StatusRequest {})),
        };
        let reply = call(&path, &request, Duration::from_secs(5))
            .await
            .expect("reply");
        assert!(reply.ok);
        assert_eq!(reply.message, "hi");
        // A request longer than MAX_REQUEST is refused without an answer.
        let mut raw = UnixStream::connect(&path).await.expect("connect");
        let mut huge = Vec::new();
        prost::encoding::encode_varint(1 << 30, &mut huge);
        raw.write_all(&huge).await.expect("write");
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(0))), "{read:?}");
        server.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_our_uid_or_root_may_call() {
        assert!(peer_allowed(1000, 1000));
        assert!(peer_allowed(0, 1000));
        assert!(!peer_allowed(1001, 1000));
    }
}
