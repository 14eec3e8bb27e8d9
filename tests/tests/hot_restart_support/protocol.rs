//! A minimal speaker of Baton's hot-restart protocol (length-delimited prost messages over
//! the generation's Unix socket) for tests that play a fake child or a fake parent.

use std::path::Path;

use anyhow::Context;
use baton_proto::pb::baton::hot_restart::v1 as pb;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use baton_tests::IO_TIMEOUT;

/// One end of a hot-restart connection.
#[derive(Debug)]
pub struct Peer {
    stream: UnixStream,
    buf: Vec<u8>,
}

impl Peer {
    /// Connects to a generation's socket.
    pub async fn connect(path: &Path) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(IO_TIMEOUT, UnixStream::connect(path))
            .await
            .context("connect timed out")??;
        Ok(Self::from_stream(stream))
    }

    /// Wraps an accepted stream (fake parent).
    pub fn from_stream(stream: UnixStream) -> Self {
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Sends one message.
    pub async fn send<M: Message>(&mut self, msg: &M) -> anyhow::Result<()> {
        let bytes = msg.encode_length_delimited_to_vec();
        tokio::time::timeout(IO_TIMEOUT, self.stream.write_all(&bytes))
            .await
            .context("write timed out")??;
        Ok(())
    }

    /// Receives one message; `None` when the peer closed the connection first.
    pub async fn recv<M: Message + Default>(&mut self) -> anyhow::Result<Option<M>> {
        loop {
            if !self.buf.is_empty() {
                let mut peek = &self.buf[..];
                if let Ok(len) = prost::decode_length_delimiter(&mut peek) {
                    let prefix = self.buf.len() - peek.len();
                    if peek.len() >= len {
                        let msg = M::decode(&peek[..len])?;
                        self.buf.drain(..prefix + len);
                        return Ok(Some(msg));
                    }
                }
            }
            let mut chunk = [0u8; 4096];
            let n = match tokio::time::timeout(IO_TIMEOUT, self.stream.read(&mut chunk))
                .await
                .context("read timed out")?
            {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A hello as a child of `protocol_version` would send it.
pub fn hello(protocol_version: u32, epoch: u32) -> pb::Request {
    pb::Request {
        kind: Some(pb::request::Kind::Hello(pb::Hello {
            protocol_version,
            stats_layout_version: STATS_LAYOUT_VERSION,
            child_epoch: epoch,
            child_pid: std::process::id(),
            child_version: "test".to_string(),
        })),
    }
}

/// The protocol version this baton speaks (`--hot-restart-version` prints it).
pub const PROTOCOL_VERSION: u32 = 1;

/// The stats region layout this baton lays out (`baton_shared_stats::LAYOUT_VERSION`).
pub const STATS_LAYOUT_VERSION: u32 = 2;
