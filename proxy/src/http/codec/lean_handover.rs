//! Between [`DownstreamIo`] and the lean HTTP/1.1 loop (`lean_conn`): the bytes read
//! ahead go to the loop, the framing check waits while the loop serves (the loop judges
//! each head with the check's own parse), and what the loop hands to hyper's server is
//! checked and read again first.

use std::sync::atomic::Ordering;

use tokio::io::ReadBuf;

use super::{DownstreamIo, SPOILED_HEAD_END};

/// False when `BATON_HTTP1_SERVER=hyper` asks for hyper's HTTP/1 server throughout
/// (for comparisons); the lean loop serves HTTP/1 connections first otherwise.
pub(crate) fn lean_http1() -> bool {
    static LEAN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *LEAN.get_or_init(|| std::env::var_os("BATON_HTTP1_SERVER").is_none_or(|v| v != "hyper"))
}

impl<IO> DownstreamIo<IO> {
    /// For a connection the lean HTTP/1.1 loop serves first (unless
    /// `BATON_HTTP1_SERVER=hyper`): the framing check waits from the first byte (see
    /// [`Self::defer_framing`]).
    pub(crate) fn deferring_framing_to_lean(mut self) -> Self {
        if lean_http1() {
            self.defer_framing();
        }
        self
    }

    /// Reads skip the framing check from now on: the lean loop reads, parses and
    /// judges each head once itself (with the check's parse), and serves only requests
    /// the check would let through; [`Self::resume_framing`] before hyper reads again.
    pub(crate) fn defer_framing(&mut self) {
        if self.framing.is_some() {
            self.framing_deferred = true;
        }
    }

    /// Hands the connection back to the framing check before hyper's server reads:
    /// the requests served meanwhile are counted as the connection manager counted
    /// them, and `unread` (the lean loop's unserved bytes) is checked as a read, then
    /// read again first.
    pub(crate) fn resume_framing(&mut self, unread: &[u8]) {
        if !self.framing_deferred {
            self.unread(unread);
            return;
        }
        self.framing_deferred = false;
        if let (Some(framing), Some(conn)) = (&mut self.framing, &self.conn) {
            framing.heads_served_elsewhere(conn.request_heads.load(Ordering::Relaxed));
        }
        let rest = std::mem::take(&mut self.replay);
        let rest_at = std::mem::replace(&mut self.replay_at, 0);
        let mut checked = vec![0u8; unread.len() + SPOILED_HEAD_END.len()];
        let mut buf = ReadBuf::new(&mut checked);
        buf.put_slice(unread);
        // A spoiled head's end that does not fit goes to `self.replay`, now empty.
        self.check_framing(&mut buf, 0);
        let len = buf.filled().len();
        checked.truncate(len);
        checked.append(&mut self.replay);
        checked.extend_from_slice(&rest[rest_at..]);
        self.replay = checked;
    }

    /// Takes the bytes read and not yet handed on (the lean loop reads them first).
    pub(crate) fn take_unread(&mut self) -> bytes::BytesMut {
        let unread = bytes::BytesMut::from(&self.replay[self.replay_at..]);
        self.replay = Vec::new();
        self.replay_at = 0;
        unread
    }

    /// Gives back bytes read (and framing-checked) but not served, to be read again
    /// first: the lean loop hands a request over to hyper's server this way.
    pub(crate) fn unread(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut replay = bytes.to_vec();
        replay.extend_from_slice(&self.replay[self.replay_at..]);
        self.replay = replay;
        self.replay_at = 0;
    }
}
