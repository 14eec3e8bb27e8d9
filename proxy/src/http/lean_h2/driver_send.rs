//! The response side of the HTTP/2 driver (`driver`): a service call's response becomes
//! HEADERS, its body DATA within the send windows (waiting for WINDOW_UPDATE when they
//! are spent) and trailers, all gathered into the connection's write buffer; the state
//! machine's own frames (SETTINGS, acks, WINDOW_UPDATE, RST_STREAM, GOAWAY) go into the
//! same buffer in the order they were queued.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http::Response;
use http_body::Body;

use super::body::BodyError;
use super::conn::ServerConnection;
use super::driver::{Driver, DriverIo, DriverService, WRITE_HIGH_WATER};
use super::frame::{ErrorCode, Frame, StreamId};
use super::wire_write::{data_frame_header, FrameWriter};
use crate::http::ResponseBody;

/// A response whose HEADERS went out and whose body is being sent.
pub(crate) struct Outgoing {
    body: ResponseBody,
    /// Body bytes polled and not yet sent (the send window was spent).
    pending: Option<Bytes>,
    /// `pending` ends the body (its last frame carries END_STREAM).
    last: bool,
}

/// Where sending a response's body stopped.
enum Sent {
    /// Waiting: for the body, for window, or for the write buffer to drain (`full`).
    Waiting { full: bool },
    /// The response is whole.
    Done,
    /// The body failed or the stream is gone: reset it.
    Failed,
}

impl<IO, S> Driver<IO, S>
where
    IO: DriverIo,
    S: DriverService,
{
    /// The state machine's frames, written in the order queued.
    pub(super) fn queue_frames(&mut self) {
        while let Some(frame) = self.conn.poll_frame() {
            match frame {
                Frame::RstStream { .. } => {
                    crate::stats::downstream_http2().tx_reset.inc();
                    self.unwritten_control += 1;
                }
                Frame::Ping { ack: true, .. } | Frame::Settings { ack: true, .. } => {
                    self.unwritten_control += 1;
                }
                _ => {}
            }
            self.unwritten_frames += 1;
            self.writer.write(&frame, &mut self.write_buf);
        }
    }

    /// A service call answered `stream`: its HEADERS go out, its body follows.
    pub(super) fn start_response(&mut self, stream: StreamId, resp: Response<ResponseBody>) {
        if !self.drain_asked
            && self
                .shared
                .max_requests_drain
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            // This response asked for the drain (a refused CONNECT or upgrade): its
            // GOAWAY goes before it, as Envoy's codec sends it.
            self.graceful_shutdown();
        }
        // Our SETTINGS (and anything else queued) go before the first response.
        self.queue_frames();
        let Some(slot) = self.slots.get_mut(&stream) else {
            return;
        };
        slot.call = None;
        let (parts, body) = resp.into_parts();
        let end = body.is_end_stream();
        if self.conn.send_headers(stream, end).is_err() {
            self.drop_stream(stream, BodyError::ConnectionEnded);
            return;
        }
        self.unwritten_frames += 1;
        self.inbound.data_frames_sent += 1;
        self.writer.response_headers(
            stream,
            parts.status,
            &parts.headers,
            end,
            &mut self.write_buf,
        );
        if end {
            self.response_done(stream);
        } else {
            slot.out = Some(Box::new(Outgoing {
                body,
                pending: None,
                last: false,
            }));
        }
    }

    /// A response went out whole: the stream is done here (the rest of a request still
    /// coming is the state machine's to ignore, its unread bytes' window returned).
    fn response_done(&mut self, stream: StreamId) {
        self.drop_stream(stream, BodyError::Reset(ErrorCode::NO_ERROR));
    }

    /// Sends what the responses' bodies have, within the windows; true when it stopped
    /// because the write buffer is full (the caller writes, then comes back).
    pub(super) fn poll_responses(&mut self, cx: &mut Context<'_>) -> bool {
        let mut done: Vec<StreamId> = Vec::new();
        let mut failed: Vec<StreamId> = Vec::new();
        let mut full = false;
        for (&stream, slot) in self.slots.iter_mut() {
            let Some(out) = slot.out.as_deref_mut() else {
                continue;
            };
            let before = self.inbound.data_frames_sent;
            let sent = send_body(
                stream,
                out,
                &mut self.conn,
                &mut self.writer,
                &mut self.write_buf,
                &mut self.inbound.data_frames_sent,
                cx,
            );
            self.unwritten_frames += (self.inbound.data_frames_sent - before) as u32;
            match sent {
                Sent::Waiting { full: true } => {
                    full = true;
                    break;
                }
                Sent::Waiting { full: false } => {}
                Sent::Done => done.push(stream),
                Sent::Failed => failed.push(stream),
            }
        }
        for stream in done {
            self.response_done(stream);
        }
        for stream in failed {
            self.conn.reset(stream, ErrorCode::INTERNAL_ERROR);
            self.drop_stream(stream, BodyError::Reset(ErrorCode::INTERNAL_ERROR));
        }
        full
    }
}

/// Sends as much of one response body as the windows and the write buffer allow.
fn send_body(
    stream: StreamId,
    out: &mut Outgoing,
    conn: &mut ServerConnection,
    writer: &mut FrameWriter,
    buf: &mut BytesMut,
    data_frames: &mut u64,
    cx: &mut Context<'_>,
) -> Sent {
    loop {
        if buf.len() >= WRITE_HIGH_WATER {
            return Sent::Waiting { full: true };
        }
        if let Some(data) = &mut out.pending {
            let capacity = conn.send_capacity(stream) as usize;
            if capacity == 0 && !data.is_empty() {
                // WINDOW_UPDATE wakes the connection (a read), which comes back here.
                return Sent::Waiting { full: false };
            }
            let chunk = data.split_to(data.len().min(capacity));
            let end = data.is_empty() && out.last;
            buf.put_slice(&data_frame_header(stream, chunk.len(), end));
            *data_frames += 1;
            buf.put_slice(&chunk);
            if conn.sent_data(stream, chunk.len() as u32, end).is_err() {
                return Sent::Failed;
            }
            if !data.is_empty() {
                continue;
            }
            out.pending = None;
            if end {
                return Sent::Done;
            }
            continue;
        }
        match Pin::new(&mut out.body).poll_frame(cx) {
            Poll::Pending => return Sent::Waiting { full: false },
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    out.last = out.body.is_end_stream();
                    if data.is_empty() && !out.last {
                        continue;
                    }
                    out.pending = Some(data);
                }
                Err(frame) => {
                    let Ok(trailers) = frame.into_trailers() else {
                        continue;
                    };
                    if conn.send_headers(stream, true).is_err() {
                        return Sent::Failed;
                    }
                    writer.trailers(stream, &trailers, buf);
                    return Sent::Done;
                }
            },
            Poll::Ready(None) => {
                // The body ended after its last frame: an empty DATA ends the stream.
                buf.put_slice(&data_frame_header(stream, 0, true));
                *data_frames += 1;
                if conn.sent_data(stream, 0, true).is_err() {
                    return Sent::Failed;
                }
                return Sent::Done;
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::debug!(stream, error = %e, "HTTP/2 response body failed; resetting");
                return Sent::Failed;
            }
        }
    }
}
