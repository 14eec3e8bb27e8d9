//! The request side of the HTTP/2 driver (`driver`): frames from the client applied to
//! the state machine, its events turned into service calls and request bodies, resets
//! passed on, the receive window returned as bodies are consumed, and Envoy's
//! accounting of the requests its codec refuses (what the connection manager's service
//! counts for hyper's server, which passes such requests on).

use std::sync::Arc;
use std::task::Context;
use std::time::Instant;

use futures_util::future::{AbortHandle, Abortable};
use http::{Request, Version};

use super::body::{self, BodyError};
use super::conn::{ConnError, Event, ResetCause};
use super::driver::{Call, Driver, DriverIo, DriverService, Slot};
use super::frame::{ErrorCode, Frame, StreamId};
use super::request::{RefusalCause, RequestHead};
use crate::http::codec::{DownstreamBody, LeanBody};
use crate::http::codec_conn::CodecError;
use crate::http::stats::ActiveStream;
use crate::http::stream::ConnShared;

impl<IO, S> Driver<IO, S>
where
    IO: DriverIo,
    S: DriverService,
{
    /// Applies one frame from the client.
    pub(super) fn apply_frame(&mut self, frame: Frame) -> Result<(), ConnError> {
        let settings = matches!(frame, Frame::Settings { ack: false, .. });
        match frame {
            Frame::RstStream { .. } => {
                // Every RST_STREAM read, as Envoy counts them (also for closed streams).
                crate::stats::downstream_http2().rx_reset.inc();
            }
            Frame::WindowUpdate { .. } => self.inbound.window_update()?,
            Frame::Priority { .. } => self.inbound.priority()?,
            _ => {}
        }
        self.conn.recv(frame)?;
        if settings {
            let peer = *self.conn.peer_settings();
            self.writer.set_peer_max_frame_size(peer.max_frame_size);
            self.writer
                .set_peer_header_table_size(peer.header_table_size);
        }
        Ok(())
    }

    /// Acts on every event the state machine has.
    pub(super) fn handle_events(&mut self, cx: &mut Context<'_>) {
        while let Some(event) = self.conn.poll_event() {
            match event {
                Event::Request {
                    stream,
                    head,
                    end_stream,
                } => self.start_request(stream, head, end_stream),
                Event::Data {
                    stream,
                    data,
                    end_stream,
                } => {
                    let len = data.len();
                    match self.slots.get_mut(&stream).and_then(|s| s.body.as_ref()) {
                        Some(tx) if !tx.reader_gone() => {
                            tx.push_data(data, end_stream);
                        }
                        // Nobody reads it: the window comes back at once.
                        _ => self.conn.release_capacity(stream, len as u32),
                    }
                }
                Event::Trailers { stream, trailers } => {
                    crate::stats::downstream_http2().trailers.inc();
                    if let Some(tx) = self.slots.get(&stream).and_then(|s| s.body.as_ref()) {
                        tx.push_trailers(trailers);
                    }
                }
                Event::PeerReset { stream, code } => {
                    if self.calls_unpolled {
                        self.poll_calls(cx);
                    }
                    self.drop_stream(stream, BodyError::Reset(code));
                }
                Event::LocalReset {
                    stream,
                    code: _,
                    cause,
                } => self.local_reset(stream, cause),
                Event::GoAway { .. } | Event::WindowOpened { .. } => {}
            }
        }
        // Window consumed while handling (a body read synchronously) goes back now.
        self.return_windows(cx);
    }

    /// A request the state machine accepted: the service is called.
    fn start_request(&mut self, stream: StreamId, head: Box<RequestHead>, end_stream: bool) {
        let RequestHead {
            mut parts,
            protocol,
            content_length,
            dropped_underscores,
        } = *head;
        if dropped_underscores > 0 {
            crate::stats::downstream_http2()
                .dropped_headers_with_underscores
                .add(u64::from(dropped_underscores));
        }
        if let Some(protocol) = protocol
            .as_deref()
            .and_then(|p| std::str::from_utf8(p).ok())
        {
            parts
                .extensions
                .insert(hyper::ext::Protocol::from(protocol));
        }
        let (tx, body) = if end_stream {
            (None, DownstreamBody::Lean(LeanBody::default()))
        } else {
            let (tx, rx) = body::channel(content_length);
            (Some(tx), DownstreamBody::LeanH2(rx))
        };
        let fut = self.service.call(Request::from_parts(parts, body));
        let (abort, registration) = AbortHandle::new_pair();
        self.calls_unpolled = true;
        self.calls.push(Call {
            stream,
            fut: Abortable::new(Box::pin(fut), registration),
        });
        self.slots.insert(
            stream,
            Slot {
                body: tx,
                call: Some(abort),
                out: None,
            },
        );
    }

    /// The stream is over for the client or by a reset: its call is aborted, its body
    /// fails with `error`, its unread body bytes go back to the connection's window.
    pub(super) fn drop_stream(&mut self, stream: StreamId, error: BodyError) {
        let Some(slot) = self.slots.remove(&stream) else {
            return;
        };
        if let Some(call) = slot.call {
            call.abort();
        }
        if let Some(tx) = slot.body {
            let unread = tx.buffered() + tx.take_consumed();
            tx.fail(error);
            if unread > 0 {
                self.conn.release_capacity(stream, unread as u32);
            }
        }
    }

    /// We reset `stream` (the state machine decided and queued the RST_STREAM).
    fn local_reset(&mut self, stream: StreamId, cause: ResetCause) {
        match cause {
            ResetCause::Refused(refusal) => {
                // Refused before the connection manager saw it: counted as its service
                // counts such a request under hyper.
                count_refused(&self.shared, refusal);
            }
            ResetCause::Malformed(_) if !self.slots.contains_key(&stream) => {
                crate::stats::downstream_http2().rx_messaging_error.inc();
                drop(ActiveStream::begin(
                    &self.shared,
                    Version::HTTP_2,
                    Instant::now(),
                ));
            }
            ResetCause::ResponseComplete => {
                // The response is whole; the rest of the request is not wanted.
                if let Some(slot) = self.slots.get_mut(&stream) {
                    if let Some(tx) = slot.body.take() {
                        let unread = tx.buffered() + tx.take_consumed();
                        tx.fail(BodyError::Reset(ErrorCode::NO_ERROR));
                        if unread > 0 {
                            self.conn.release_capacity(stream, unread as u32);
                        }
                    }
                    if slot.call.is_none() && slot.out.is_none() {
                        self.slots.remove(&stream);
                    }
                }
                return;
            }
            _ => {}
        }
        let error = match cause {
            ResetCause::ContentLength => BodyError::LengthMismatch,
            _ => BodyError::Reset(ErrorCode::PROTOCOL_ERROR),
        };
        self.drop_stream(stream, error);
    }

    /// Returns the window of the body bytes the readers consumed, and asks to be woken
    /// when they consume more.
    pub(super) fn return_windows(&mut self, cx: &mut Context<'_>) {
        let mut released: Vec<(StreamId, u32)> = Vec::new();
        for (&stream, slot) in &self.slots {
            if let Some(tx) = &slot.body {
                let n = tx.take_consumed_and_watch(cx.waker());
                if n > 0 {
                    released.push((stream, n as u32));
                }
            }
        }
        for (stream, n) in released {
            self.conn.release_capacity(stream, n);
        }
    }

    /// The connection is over: every call and body ends.
    pub(super) fn end_streams(&mut self) {
        let streams: Vec<StreamId> = self.slots.keys().copied().collect();
        for stream in streams {
            self.drop_stream(stream, BodyError::ConnectionEnded);
        }
    }

    /// Polls the service calls that were woken; true when any answered.
    pub(super) fn poll_calls(&mut self, cx: &mut Context<'_>) -> bool {
        use futures_util::StreamExt;
        self.calls_unpolled = false;
        let mut answered = false;
        while let std::task::Poll::Ready(Some((stream, out))) = self.calls.poll_next_unpin(cx) {
            answered = true;
            match out {
                Some(Ok(resp)) => self.start_response(stream, resp),
                Some(Err(e)) => {
                    let e: CodecError = e.into();
                    let code = reset_code(&*e);
                    tracing::debug!(stream, error = %e, "HTTP/2 stream refused by the service");
                    self.conn.reset(stream, code);
                    self.drop_stream(stream, BodyError::Reset(code));
                }
                None => {
                    if let Some(slot) = self.slots.get_mut(&stream) {
                        slot.call = None;
                    }
                    // Aborted (the stream is gone already) or panicked: reset it.
                    if self.slots.contains_key(&stream) {
                        self.conn.reset(stream, ErrorCode::INTERNAL_ERROR);
                        self.drop_stream(stream, BodyError::Reset(ErrorCode::INTERNAL_ERROR));
                    }
                }
            }
        }
        answered
    }
}

/// The reset code a service error asks for: an `h2::Reason` in its chain (a malformed
/// request's PROTOCOL_ERROR), else INTERNAL_ERROR (as hyper resets).
fn reset_code(err: &(dyn std::error::Error + 'static)) -> ErrorCode {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(h2e) = e.downcast_ref::<h2::Error>() {
            if let Some(reason) = h2e.reason() {
                return ErrorCode(u32::from(reason));
            }
        }
        cause = e.source();
    }
    ErrorCode::INTERNAL_ERROR
}

/// A request refused by one of Envoy's header limits: its stat, and the request counted
/// as one the client reset (as Envoy's codec resets it).
fn count_refused(shared: &Arc<ConnShared>, refusal: RefusalCause) {
    let codec_stats = crate::stats::downstream_http2();
    match refusal {
        RefusalCause::TooManyHeaders => codec_stats.header_overflow.inc(),
        RefusalCause::HeaderListTooLarge => codec_stats.header_list_size_too_large.inc(),
        RefusalCause::Underscore => codec_stats
            .requests_rejected_with_underscores_in_headers
            .inc(),
    }
    drop(ActiveStream::begin(shared, Version::HTTP_2, Instant::now()));
    if refusal == RefusalCause::Underscore {
        crate::http::underscore_headers::log_http2_refusal(shared);
    }
}

/// A malformed request ended the connection (Envoy's default for invalid messaging):
/// counted as `h2_messaging` counts it under hyper; the request stays in flight until
/// the connection is gone.
pub(super) fn count_messaging_close(shared: &Arc<ConnShared>) -> ActiveStream {
    crate::stats::downstream_http2().rx_messaging_error.inc();
    let stream = ActiveStream::begin(shared, Version::HTTP_2, Instant::now());
    shared.runtime.stats.downstream_cx_protocol_error.inc();
    stream
}

/// Envoy's limits on inbound frames that cost the server work and carry nothing
/// (`http2_protocol_options` defaults; the formulas measured on Envoy 1.40, whose server
/// leaves the stream term of its formulas at 0): over the connection's life, more
/// WINDOW_UPDATE frames than 5 + 2 x 10 x the DATA frames sent (Envoy sends a response's
/// end as an empty DATA frame where Baton ends its last DATA or HEADERS frame, so Baton
/// counts a response's HEADERS too), or more than 100 PRIORITY frames, end the connection
/// without a GOAWAY, counted in `http2.inbound_window_update_frames_flood` /
/// `inbound_priority_frames_flood`.
#[derive(Debug, Default)]
pub(super) struct InboundFloods {
    /// DATA frames and response HEADERS sent.
    pub(super) data_frames_sent: u64,
    window_updates: u64,
    priorities: u64,
}

/// `max_inbound_window_update_frames_per_data_frame_sent`'s default.
const WINDOW_UPDATES_PER_DATA_FRAME: u64 = 10;
/// `max_inbound_priority_frames_per_stream`'s default (times 1 + 0 streams).
const PRIORITIES_PER_STREAM: u64 = 100;

impl InboundFloods {
    fn window_update(&mut self) -> Result<(), ConnError> {
        self.window_updates += 1;
        let allowed = 5 + 2 * WINDOW_UPDATES_PER_DATA_FRAME * self.data_frames_sent;
        if self.window_updates > allowed {
            crate::stats::downstream_http2()
                .inbound_window_update_frames_flood
                .inc();
            return Err(flood("too many WINDOW_UPDATE frames"));
        }
        Ok(())
    }

    fn priority(&mut self) -> Result<(), ConnError> {
        self.priorities += 1;
        if self.priorities > PRIORITIES_PER_STREAM {
            crate::stats::downstream_http2()
                .inbound_priority_frames_flood
                .inc();
            return Err(flood("too many PRIORITY frames"));
        }
        Ok(())
    }
}

fn flood(reason: &'static str) -> ConnError {
    ConnError {
        code: ErrorCode::ENHANCE_YOUR_CALM,
        goaway: false,
        reason,
        messaging: false,
    }
}
