//! The stream table of Baton's own HTTP/2 server codec: the streams that are open or
//! half-closed (RFC 9113 §5.1), each with its two directions, flow-control windows and
//! content-length accounting. Closed streams leave the table at once; that a stream id
//! was used is known from the highest id the client opened, which is all Envoy's answers
//! to frames on closed streams need (it ignores them), so the table never grows past
//! the concurrent-stream limit.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::flow::{RecvWindow, SendWindow};
use super::frame::StreamId;

/// The client's direction of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvState {
    /// HEADERS received without END_STREAM: DATA or trailers may follow.
    Open,
    /// END_STREAM received (half-closed (remote)).
    Closed,
}

/// Our direction of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendState {
    /// No response HEADERS sent yet.
    Idle,
    /// Response HEADERS sent, the body or trailers may follow.
    Open,
    /// END_STREAM sent (half-closed (local)).
    Closed,
}

/// One open or half-closed stream.
#[derive(Clone, Debug)]
pub struct Stream {
    pub recv: RecvState,
    pub send: SendState,
    pub recv_window: RecvWindow,
    pub send_window: SendWindow,
    /// The request's content-length, when it had one.
    pub content_length: Option<u64>,
    /// DATA payload bytes received (padding excluded).
    pub received: u64,
}

impl Stream {
    pub fn new(recv_window: u32, send_window: u32, content_length: Option<u64>) -> Self {
        Self {
            recv: RecvState::Open,
            send: SendState::Idle,
            recv_window: RecvWindow::new(recv_window),
            send_window: SendWindow::new(send_window),
            content_length,
            received: 0,
        }
    }

    /// Both directions ended: the stream leaves the table.
    pub fn is_closed(&self) -> bool {
        self.recv == RecvState::Closed && self.send == SendState::Closed
    }
}

/// Hashes a client stream id (odd and increasing) as itself: no SipHash per frame.
#[derive(Default, Clone, Copy)]
pub struct StreamIdHasher(u64);

impl Hasher for StreamIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u32(&mut self, id: u32) {
        // hashbrown takes the top 7 bits as the tag and the low bits as the bucket:
        // spread the id over both.
        self.0 = u64::from(id >> 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The open and half-closed streams.
pub type StreamTable = HashMap<StreamId, Stream, BuildHasherDefault<StreamIdHasher>>;

/// An empty stream table: it grows on demand up to the concurrent-stream limit (a
/// connection with one stream at a time keeps a table of a few slots; an idle new one,
/// none).
pub fn stream_table() -> StreamTable {
    StreamTable::default()
}
