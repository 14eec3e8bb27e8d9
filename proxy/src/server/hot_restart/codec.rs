//! Framing for the hot-restart protocol: prost messages, varint length-delimited, over a
//! Unix stream socket, with file descriptors riding along as SCM_RIGHTS. Because a
//! stream may split or merge chunks, received fds are queued and claimed by the message
//! that announces one (`PassListenSocketReply { found: true }`).

use std::collections::VecDeque;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use bytes::{Buf, BytesMut};
use prost::Message;
use sendfd::{RecvWithFd, SendWithFd};
use tokio::net::UnixStream;

/// Largest message accepted from a peer (protects against garbage on the socket). Large
/// hand-overs travel in chunks well inside it (xDS state: 48 KiB per reply); nothing is
/// buffered for a length over it.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Received file descriptors waiting to be claimed; a peer sending more is broken or
/// hostile (the protocol passes one per `PassListenSocketReply`).
const MAX_QUEUED_FDS: usize = 16;

/// Errors on the hot-restart channel.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Socket I/O failed.
    #[error("hot-restart socket: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection.
    #[error("hot-restart peer closed the connection")]
    Closed,
    /// The peer sent something that is not a valid message.
    #[error("hot-restart peer sent an invalid message: {0}")]
    Invalid(String),
}

/// One end of the hot-restart channel.
#[derive(Debug)]
pub struct Channel {
    stream: UnixStream,
    buf: BytesMut,
    fds: VecDeque<OwnedFd>,
    received_any: bool,
}

impl Channel {
    /// Wraps a connected stream.
    pub fn new(stream: UnixStream) -> Self {
        Self {
            stream,
            buf: BytesMut::with_capacity(1024),
            fds: VecDeque::new(),
            received_any: false,
        }
    }

    /// The underlying stream (peer credentials).
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Sends one message, with `fd` attached to its first byte when given.
    pub async fn send<M: Message>(&mut self, msg: &M, fd: Option<RawFd>) -> Result<(), CodecError> {
        let bytes = msg.encode_length_delimited_to_vec();
        let mut sent = 0;
        let mut fds: &[RawFd] = match &fd {
            Some(fd) => std::slice::from_ref(fd),
            None => &[],
        };
        while sent < bytes.len() {
            self.stream.writable().await?;
            match self.stream.send_with_fd(&bytes[sent..], fds) {
                Ok(0) => return Err(CodecError::Closed),
                Ok(n) => {
                    sent += n;
                    fds = &[];
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Receives one message.
    pub async fn recv<M: Message + Default>(&mut self) -> Result<M, CodecError> {
        loop {
            if let Some(msg) = self.try_decode()? {
                return Ok(msg);
            }
            self.stream.readable().await?;
            let mut chunk = [0u8; 4096];
            let mut fds: [RawFd; 4] = [-1; 4];
            match self.stream.recv_with_fd(&mut chunk, &mut fds) {
                Ok((0, 0)) => return Err(CodecError::Closed),
                Ok((n, nfds)) => {
                    self.received_any = true;
                    self.buf.extend_from_slice(&chunk[..n]);
                    // Owned first, so every received fd is closed if we give up below.
                    let received: Vec<OwnedFd> =
                        fds[..nfds].iter().map(|fd| take_fd(*fd)).collect();
                    if self.fds.len() + received.len() > MAX_QUEUED_FDS {
                        return Err(CodecError::Invalid(format!(
                            "more than {MAX_QUEUED_FDS} unclaimed file descriptors"
                        )));
                    }
                    self.fds.extend(received);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// True while no byte has arrived (nor been decoded) on this channel.
    pub fn nothing_received(&self) -> bool {
        self.buf.is_empty() && !self.received_any
    }

    /// Claims the oldest received file descriptor.
    pub fn take_fd(&mut self) -> Option<OwnedFd> {
        self.fds.pop_front()
    }

    fn try_decode<M: Message + Default>(&mut self) -> Result<Option<M>, CodecError> {
        let Some((msg, used)) = decode_frame(&self.buf)? else {
            return Ok(None);
        };
        self.buf.advance(used);
        Ok(Some(msg))
    }
}

/// Decodes one length-delimited message from the front of `buf`: `None` while it is
/// incomplete, else the message and the bytes it used. Rejects a length over
/// `MAX_MESSAGE` before waiting for (or allocating) its bytes. Also the fuzzing entry
/// point for hot-restart message decoding.
pub fn decode_frame<M: Message + Default>(buf: &[u8]) -> Result<Option<(M, usize)>, CodecError> {
    let mut peek = buf;
    let len = match prost::encoding::decode_varint(&mut peek) {
        Ok(len) => len as usize,
        // Not enough bytes for the length prefix yet (or garbage: caught below).
        Err(_) if buf.len() < 10 => return Ok(None),
        Err(e) => return Err(CodecError::Invalid(e.to_string())),
    };
    if len > MAX_MESSAGE {
        return Err(CodecError::Invalid(format!("message of {len} bytes")));
    }
    let prefix = buf.len() - peek.len();
    if peek.len() < len {
        return Ok(None);
    }
    let msg = M::decode(&peek[..len]).map_err(|e| CodecError::Invalid(e.to_string()))?;
    Ok(Some((msg, prefix + len)))
}

#[allow(unsafe_code)]
fn take_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the kernel just installed this fd in our table via SCM_RIGHTS; nothing
    // else refers to it, so this is its only owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
