//! The response side of Baton's own HTTP/2 server connection (`conn`): what the
//! application sends (response HEADERS, DATA within the send windows, resets), the
//! receive-window credit it gives back as it consumes request bodies, and the graceful
//! drain (Envoy's GOAWAY 2^31-1 + PING, then the final GOAWAY).

use bytes::Bytes;

use super::conn::{Drain, ResetCause, ServerConnection};
use super::frame::{ErrorCode, Frame, StreamId, MAX_STREAM_ID};
use super::streams::{RecvState, SendState};

/// The payload of the PING that follows the drain's first GOAWAY; its ack means the
/// client has seen that GOAWAY.
pub const DRAIN_PING: [u8; 8] = *b"baton-dr";

/// A response-side call that does not fit the stream's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("stream {0} is not open")]
    NoStream(StreamId),
    #[error("stream {0} already sent its response headers")]
    HeadersSent(StreamId),
    #[error("stream {0} has no response headers yet or already ended")]
    NotSending(StreamId),
    #[error("stream {0}: more DATA than the send window allows")]
    OverWindow(StreamId),
}

impl ServerConnection {
    pub(super) fn release_connection(&mut self, len: u32) {
        if let Some(increment) = self.conn_recv.release(len) {
            self.frames.push_back(Frame::WindowUpdate {
                stream: 0,
                increment,
            });
        }
    }

    /// The application consumed `len` body bytes of `stream` (also after the stream
    /// ended or was reset: every byte of every [`Event::Data`] must come back, or the
    /// connection window shrinks for good). WINDOW_UPDATEs go out once half a window
    /// is consumed, as nghttp2 sends them for Envoy.
    pub fn release_capacity(&mut self, stream: StreamId, len: u32) {
        if let Some(s) = self.streams.get_mut(&stream) {
            if s.recv == RecvState::Open {
                if let Some(increment) = s.recv_window.release(len) {
                    self.frames
                        .push_back(Frame::WindowUpdate { stream, increment });
                }
            }
        }
        self.release_connection(len);
    }

    /// The response HEADERS (or, on a stream already sending, trailers, which must end
    /// it) of `stream` are being sent.
    pub fn send_headers(&mut self, stream: StreamId, end_stream: bool) -> Result<(), SendError> {
        let s = self
            .streams
            .get_mut(&stream)
            .ok_or(SendError::NoStream(stream))?;
        match s.send {
            SendState::Idle => {}
            SendState::Open if end_stream => {}
            SendState::Open => return Err(SendError::HeadersSent(stream)),
            SendState::Closed => return Err(SendError::NotSending(stream)),
        }
        s.send = if end_stream {
            SendState::Closed
        } else {
            SendState::Open
        };
        if end_stream {
            self.local_end(stream);
        }
        Ok(())
    }

    /// An informational (1xx) response HEADERS of `stream` is being sent: the final
    /// response may still follow.
    pub fn send_interim_headers(&mut self, stream: StreamId) -> Result<(), SendError> {
        match self.streams.get(&stream) {
            None => Err(SendError::NoStream(stream)),
            Some(s) if s.send == SendState::Idle => Ok(()),
            Some(_) => Err(SendError::HeadersSent(stream)),
        }
    }

    /// How many DATA payload bytes `stream` may send in its next frame: the smaller of
    /// its send window, the connection's, and the client's SETTINGS_MAX_FRAME_SIZE.
    pub fn send_capacity(&self, stream: StreamId) -> u32 {
        match self.streams.get(&stream) {
            Some(s) if s.send == SendState::Open => s
                .send_window
                .capacity()
                .min(self.conn_send.capacity())
                .min(self.peer.max_frame_size),
            _ => 0,
        }
    }

    /// A DATA frame of `len` bytes was sent on `stream`.
    pub fn sent_data(
        &mut self,
        stream: StreamId,
        len: u32,
        end_stream: bool,
    ) -> Result<(), SendError> {
        if len > self.send_capacity(stream) && len > 0 {
            return Err(match self.streams.get(&stream) {
                None => SendError::NoStream(stream),
                Some(s) if s.send != SendState::Open => SendError::NotSending(stream),
                Some(_) => SendError::OverWindow(stream),
            });
        }
        let s = self
            .streams
            .get_mut(&stream)
            .ok_or(SendError::NoStream(stream))?;
        if s.send != SendState::Open {
            return Err(SendError::NotSending(stream));
        }
        s.send_window.consume(len);
        self.conn_send.consume(len);
        if end_stream {
            s.send = SendState::Closed;
            self.local_end(stream);
        }
        Ok(())
    }

    /// Our side of `stream` ended: the stream closes, or, with the request still coming,
    /// is reset with NO_ERROR as Envoy does (RFC 9113 §8.1), the rest of the request
    /// ignored.
    fn local_end(&mut self, stream: StreamId) {
        match self.streams.get(&stream).map(|s| s.recv) {
            Some(RecvState::Closed) => {
                self.streams.remove(&stream);
            }
            Some(RecvState::Open) => {
                self.reset_stream(stream, ErrorCode::NO_ERROR, ResetCause::ResponseComplete);
            }
            None => {}
        }
    }

    /// The application resets `stream` (RST_STREAM `code` queued). Nothing happens for
    /// a stream already closed.
    pub fn reset(&mut self, stream: StreamId, code: ErrorCode) {
        if self.streams.remove(&stream).is_some() {
            self.frames.push_back(Frame::RstStream { stream, code });
        }
    }

    /// Starts a graceful drain as Envoy does: GOAWAY NO_ERROR naming 2^31 - 1 and a PING;
    /// the PING's ack sends the final GOAWAY naming the last stream opened
    /// ([`Self::finish_drain`] sends it at once, e.g. when the ack is late).
    pub fn start_drain(&mut self) {
        if self.drain != Drain::No {
            return;
        }
        self.drain = Drain::Notified;
        self.frames.push_back(Frame::GoAway {
            last_stream: MAX_STREAM_ID,
            code: ErrorCode::NO_ERROR,
            debug: Bytes::new(),
        });
        self.frames.push_back(Frame::Ping {
            ack: false,
            payload: DRAIN_PING,
        });
    }

    /// Sends the final GOAWAY (NO_ERROR, the last stream the client opened); streams
    /// opened later are ignored.
    pub fn finish_drain(&mut self) {
        if matches!(self.drain, Drain::Final(_)) {
            return;
        }
        let last = self.last_peer_stream;
        self.drain = Drain::Final(last);
        self.frames.push_back(Frame::GoAway {
            last_stream: last,
            code: ErrorCode::NO_ERROR,
            debug: Bytes::new(),
        });
    }
}
