//! The server connection state machine of Baton's own HTTP/2 codec (sans-IO): frames in
//! from the wire layer, events out for the driver (requests, body data, trailers, resets,
//! the client's GOAWAY) and frames out for the wire layer (SETTINGS and PING acks,
//! WINDOW_UPDATE, RST_STREAM, GOAWAY), with Envoy 1.40's answer to every protocol error
//! (`malformed_http2` differential area): RFC 9113 §5.1 stream states, §6 frame rules,
//! §6.9 flow control, and the response side's bookkeeping (send windows, graceful drain).
//!
//! A connection error ends the connection: [`ServerConnection::recv`] returns a
//! [`ConnError`] saying whether a GOAWAY was queued before the close (Envoy closes without
//! one for most errors its own codec callbacks catch).

use std::collections::VecDeque;

use bytes::Bytes;
use http::HeaderMap;

use baton_config::model::HttpConnectionManager;

use super::conn_send::DRAIN_PING;
use super::flow::{RecvWindow, SendWindow, DEFAULT_WINDOW};
use super::frame::MAX_STREAM_ID;
use super::frame::{ErrorCode, FieldList, Frame, Priority, Setting, StreamId, WireError};
use super::request::{
    validate_request, validate_trailers, RefusalCause, Rejection, RequestHead, RequestLimits,
};
use super::streams::{stream_table, RecvState, Stream, StreamTable};

/// The HPACK dynamic table size Envoy announces (the protocol default).
const ANNOUNCED_HEADER_TABLE_SIZE: u32 = 4096;
/// The default and smallest SETTINGS_MAX_FRAME_SIZE (RFC 9113 §6.5.2).
const MIN_MAX_FRAME_SIZE: u32 = 16_384;
/// The largest SETTINGS_MAX_FRAME_SIZE (2^24 - 1).
const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;

/// What a server connection is configured with (the connection manager's settings).
#[derive(Clone, Copy, Debug)]
pub struct ServerConfig {
    /// `http2_protocol_options.max_concurrent_streams`: opening more closes the
    /// connection (without GOAWAY), as Envoy does.
    pub max_concurrent_streams: u32,
    /// `initial_stream_window_size`, announced as SETTINGS_INITIAL_WINDOW_SIZE.
    pub initial_stream_window: u32,
    /// `initial_connection_window_size`, announced by a WINDOW_UPDATE on stream 0.
    pub initial_connection_window: u32,
    /// `http2_protocol_options.stream_error_on_invalid_http_messaging`.
    pub stream_error_on_invalid_http_messaging: bool,
    /// `override_stream_error_on_invalid_http_message` (wins when set).
    pub override_stream_error_on_invalid_http_message: Option<bool>,
    /// What request validation reads.
    pub limits: RequestLimits,
}

impl ServerConfig {
    /// The configuration a connection manager gives (the model folds the two stream-error
    /// options into one: the override when set, else the older option).
    pub fn from_hcm(hcm: &HttpConnectionManager) -> Self {
        Self {
            max_concurrent_streams: hcm.http2.max_concurrent_streams,
            initial_stream_window: hcm.http2.initial_stream_window_size.min(MAX_STREAM_ID),
            initial_connection_window: hcm.http2.initial_connection_window_size.min(MAX_STREAM_ID),
            stream_error_on_invalid_http_messaging: hcm.http2.stream_error_on_invalid_messaging,
            override_stream_error_on_invalid_http_message: None,
            limits: RequestLimits {
                max_headers_count: hcm.max_headers_count as usize,
                max_header_bytes: (hcm.max_request_headers_kb as usize).saturating_mul(1024),
                allow_connect: hcm.http2.allow_connect,
                underscores: hcm.underscore_headers,
            },
        }
    }

    /// A malformed request resets its stream (true) or closes the connection (false).
    pub fn stream_errors(&self) -> bool {
        self.override_stream_error_on_invalid_http_message
            .unwrap_or(self.stream_error_on_invalid_http_messaging)
    }
}

/// Why we reset a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetCause {
    /// A malformed request or trailers, with stream errors enabled.
    Malformed(&'static str),
    /// One of Envoy's header limits (see [`RefusalCause`]).
    Refused(RefusalCause),
    /// DATA beyond the stream's receive window.
    FlowControl,
    /// DATA totals other than the request's content-length.
    ContentLength,
    /// The application asked ([`ServerConnection::reset`]).
    Application,
    /// The response ended before the request: Envoy resets the stream (NO_ERROR), and
    /// request DATA still in flight is ignored.
    ResponseComplete,
}

/// What the connection tells the driver, in order.
#[derive(Debug)]
pub enum Event {
    /// A valid request opened `stream`; `end_stream` when it has no body.
    Request {
        stream: StreamId,
        head: Box<RequestHead>,
        end_stream: bool,
    },
    /// Request body bytes. Their flow-control credit comes back through
    /// [`ServerConnection::release_capacity`] once the application consumed them.
    Data {
        stream: StreamId,
        data: Bytes,
        end_stream: bool,
    },
    /// The request's trailers (they end the stream).
    Trailers {
        stream: StreamId,
        trailers: HeaderMap,
    },
    /// The client reset `stream` (RST_STREAM `code`).
    PeerReset { stream: StreamId, code: ErrorCode },
    /// We reset `stream` (the RST_STREAM is queued); the application drops it if it
    /// had it.
    LocalReset {
        stream: StreamId,
        code: ErrorCode,
        cause: ResetCause,
    },
    /// The client's GOAWAY: streams above `last_stream` were not processed by it (a
    /// server has none); the connection serves the streams in flight on.
    GoAway {
        last_stream: StreamId,
        code: ErrorCode,
        debug: Bytes,
    },
    /// The send window of `stream` grew (0: the connection's, every stream may send).
    WindowOpened { stream: StreamId },
}

/// A connection error: the connection is over. When `goaway` is true a GOAWAY (`code`,
/// the last stream the client opened) is queued and must be written before the close;
/// otherwise the connection closes without one, as Envoy does for this error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("HTTP/2 connection error {code:?} ({reason}), goaway: {goaway}")]
pub struct ConnError {
    pub code: ErrorCode,
    pub goaway: bool,
    pub reason: &'static str,
    /// A malformed request ended the connection (Envoy's invalid messaging, with stream
    /// errors off): the driver counts it as Envoy does (`http2.rx_messaging_error`, a
    /// request reset, `downstream_cx_protocol_error`).
    pub messaging: bool,
}

/// The client's SETTINGS (RFC 9113 §6.5.2 defaults until it sends its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerSettings {
    pub header_table_size: u32,
    pub initial_window_size: u32,
    pub max_frame_size: u32,
    /// None: unlimited.
    pub max_header_list_size: Option<u32>,
}

impl Default for PeerSettings {
    fn default() -> Self {
        Self {
            header_table_size: 4096,
            initial_window_size: DEFAULT_WINDOW,
            max_frame_size: MIN_MAX_FRAME_SIZE,
            max_header_list_size: None,
        }
    }
}

/// Where a graceful drain is (Envoy's two-GOAWAY sequence).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drain {
    /// Serving.
    No,
    /// GOAWAY with 2^31 - 1 and a PING sent; new streams still accepted until the
    /// PING's ack.
    Notified,
    /// The final GOAWAY naming this last stream sent: later streams are ignored.
    Final(StreamId),
}

/// One HTTP/2 server connection's state.
#[derive(Debug)]
pub struct ServerConnection {
    pub(super) config: ServerConfig,
    pub(super) streams: StreamTable,
    /// The highest stream id the client opened (0: none): every lower id is closed
    /// unless in `streams`.
    pub(super) last_peer_stream: StreamId,
    /// The highest stream id the client sent HEADERS on, processed or not (after the
    /// final GOAWAY new streams are ignored, their DATA too, not refused as idle).
    pub(super) highest_stream: StreamId,
    pub(super) conn_recv: RecvWindow,
    pub(super) conn_send: SendWindow,
    pub(super) peer: PeerSettings,
    pub(super) settings_acked: bool,
    pub(super) drain: Drain,
    pub(super) events: VecDeque<Event>,
    pub(super) frames: VecDeque<Frame>,
    pub(super) failed: Option<ConnError>,
}

impl ServerConnection {
    /// A new connection; its first frames (our SETTINGS and, for a connection window
    /// above 65,535, a WINDOW_UPDATE) are queued, as Envoy sends them.
    pub fn new(config: ServerConfig) -> Self {
        let conn_window = config.initial_connection_window.max(DEFAULT_WINDOW);
        let mut frames = VecDeque::with_capacity(4);
        frames.push_back(Frame::Settings {
            ack: false,
            settings: vec![
                Setting::HeaderTableSize(ANNOUNCED_HEADER_TABLE_SIZE),
                Setting::EnableConnectProtocol(u32::from(config.limits.allow_connect)),
                Setting::MaxConcurrentStreams(config.max_concurrent_streams),
                Setting::InitialWindowSize(config.initial_stream_window),
            ],
        });
        if conn_window > DEFAULT_WINDOW {
            frames.push_back(Frame::WindowUpdate {
                stream: 0,
                increment: conn_window - DEFAULT_WINDOW,
            });
        }
        Self {
            streams: stream_table(),
            config,
            last_peer_stream: 0,
            highest_stream: 0,
            conn_recv: RecvWindow::new(conn_window),
            conn_send: SendWindow::new(DEFAULT_WINDOW),
            peer: PeerSettings::default(),
            settings_acked: false,
            drain: Drain::No,
            events: VecDeque::new(),
            frames,
            failed: None,
        }
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next frame to write.
    pub fn poll_frame(&mut self) -> Option<Frame> {
        self.frames.pop_front()
    }

    /// The client's settings, for the writer (frame size, HPACK table size).
    pub fn peer_settings(&self) -> &PeerSettings {
        &self.peer
    }

    /// The client acknowledged our SETTINGS.
    pub fn settings_acked(&self) -> bool {
        self.settings_acked
    }

    /// The receive window of a new stream: 65,535 until the client acknowledges our
    /// SETTINGS, as Envoy (oghttp2) enforces it, then `initial_stream_window`.
    fn local_stream_window(&self) -> u32 {
        if self.settings_acked {
            self.config.initial_stream_window
        } else {
            DEFAULT_WINDOW
        }
    }

    /// The highest stream id the client opened.
    pub fn last_peer_stream(&self) -> StreamId {
        self.last_peer_stream
    }

    /// Streams open or half-closed.
    pub fn active_streams(&self) -> usize {
        self.streams.len()
    }

    pub fn drain_state(&self) -> Drain {
        self.drain
    }

    /// The final GOAWAY is sent and every stream is done: the connection may close.
    pub fn is_drained(&self) -> bool {
        matches!(self.drain, Drain::Final(_)) && self.streams.is_empty()
    }

    /// The connection failed (the error `recv` returned).
    pub fn failure(&self) -> Option<ConnError> {
        self.failed
    }

    /// Applies one frame from the client.
    pub fn recv(&mut self, frame: Frame) -> Result<(), ConnError> {
        if let Some(failed) = self.failed {
            return Err(failed);
        }
        let result = match frame {
            Frame::Data {
                stream,
                data,
                end_stream,
                flow_len,
            } => self.recv_data(stream, data, end_stream, flow_len),
            Frame::Headers {
                stream,
                fields,
                end_stream,
                priority,
            } => self.recv_headers(stream, &fields, end_stream, priority),
            Frame::Priority { .. } | Frame::Unknown { .. } => Ok(()),
            Frame::RstStream { stream, code } => self.recv_rst(stream, code),
            Frame::Settings { ack, settings } => self.recv_settings(ack, &settings),
            Frame::PushPromise { .. } => Err(Self::silent(
                ErrorCode::PROTOCOL_ERROR,
                "PUSH_PROMISE from a client",
            )),
            Frame::Ping { ack, payload } => {
                self.recv_ping(ack, payload);
                Ok(())
            }
            Frame::GoAway {
                last_stream,
                code,
                debug,
            } => {
                self.events.push_back(Event::GoAway {
                    last_stream,
                    code,
                    debug,
                });
                Ok(())
            }
            Frame::WindowUpdate { stream, increment } => self.recv_window_update(stream, increment),
        };
        if let Err(e) = result {
            self.failed = Some(e);
        }
        result
    }

    /// What the wire layer could not decode. `open_block` is the stream of a header
    /// block being received, when there is one (Envoy's GOAWAY names it). A connection
    /// error is answered with GOAWAY, except a connection-level frame on a stream,
    /// which Envoy answers by closing without one (the wire layer's
    /// [`super::wire::envoy_sends_goaway`] says which).
    pub fn wire_error(
        &mut self,
        err: &WireError,
        open_block: Option<StreamId>,
    ) -> Result<(), ConnError> {
        if let Some(failed) = self.failed {
            return Err(failed);
        }
        let e = match *err {
            WireError::Stream { stream, code, .. } => {
                self.reset_stream(stream, code, ResetCause::Malformed("wire"));
                return Ok(());
            }
            WireError::Connection { code, reason } => {
                if !super::wire::envoy_sends_goaway(err) {
                    ConnError {
                        code,
                        goaway: false,
                        reason,
                        messaging: false,
                    }
                } else {
                    if let Some(block) = open_block {
                        self.last_peer_stream = self.last_peer_stream.max(block);
                    }
                    self.goaway(code, reason)
                }
            }
        };
        self.failed = Some(e);
        Err(e)
    }

    /// A connection error answered with GOAWAY `code`: queues it.
    fn goaway(&mut self, code: ErrorCode, reason: &'static str) -> ConnError {
        self.frames.push_back(Frame::GoAway {
            last_stream: self.last_peer_stream,
            code,
            debug: Bytes::new(),
        });
        ConnError {
            code,
            goaway: true,
            reason,
            messaging: false,
        }
    }

    /// A connection error Envoy answers by closing without a GOAWAY.
    fn silent(code: ErrorCode, reason: &'static str) -> ConnError {
        ConnError {
            code,
            goaway: false,
            reason,
            messaging: false,
        }
    }

    fn recv_headers(
        &mut self,
        stream: StreamId,
        fields: &FieldList,
        end_stream: bool,
        priority: Option<Priority>,
    ) -> Result<(), ConnError> {
        if stream == 0 {
            return Err(Self::silent(
                ErrorCode::PROTOCOL_ERROR,
                "HEADERS on stream 0",
            ));
        }
        if stream.is_multiple_of(2) {
            return Err(Self::silent(
                ErrorCode::PROTOCOL_ERROR,
                "HEADERS on a server stream id",
            ));
        }
        if priority.is_some_and(|p| p.dependency == stream) {
            return Err(Self::silent(
                ErrorCode::PROTOCOL_ERROR,
                "HEADERS making a stream depend on itself",
            ));
        }
        if let Some(s) = self.streams.get(&stream) {
            return match s.recv {
                // Unlike DATA there (GOAWAY STREAM_CLOSED), Envoy closes without a GOAWAY.
                RecvState::Closed => Err(Self::silent(
                    ErrorCode::STREAM_CLOSED,
                    "HEADERS on a half-closed (remote) stream",
                )),
                RecvState::Open => self.recv_trailers(stream, fields, end_stream),
            };
        }
        if stream <= self.highest_stream {
            // A closed stream, or an id skipped: Envoy ignores the frame and serves on.
            return Ok(());
        }
        self.highest_stream = stream;
        if let Drain::Final(last) = self.drain {
            if stream > last {
                return Ok(());
            }
        }
        self.last_peer_stream = stream;
        if self.streams.len() >= self.config.max_concurrent_streams as usize {
            return Err(Self::silent(
                ErrorCode::REFUSED_STREAM,
                "over max_concurrent_streams",
            ));
        }
        match validate_request(fields, end_stream, &self.config.limits) {
            Ok(head) => {
                let mut s = Stream::new(
                    self.local_stream_window(),
                    self.peer.initial_window_size,
                    head.content_length,
                );
                if end_stream {
                    s.recv = RecvState::Closed;
                }
                self.streams.insert(stream, s);
                self.events.push_back(Event::Request {
                    stream,
                    head: Box::new(head),
                    end_stream,
                });
                Ok(())
            }
            Err(rejection) => self.reject(stream, rejection),
        }
    }

    /// A refused request or trailer block: the stream's reset, or the connection's end.
    fn reject(&mut self, stream: StreamId, rejection: Rejection) -> Result<(), ConnError> {
        match rejection {
            Rejection::Refused(cause) => {
                self.reset_stream(
                    stream,
                    ErrorCode::INTERNAL_ERROR,
                    ResetCause::Refused(cause),
                );
                Ok(())
            }
            Rejection::Malformed(why) if self.config.stream_errors() => {
                self.reset_stream(
                    stream,
                    ErrorCode::PROTOCOL_ERROR,
                    ResetCause::Malformed(why),
                );
                Ok(())
            }
            Rejection::Malformed(why) => Err(ConnError {
                messaging: true,
                ..Self::silent(ErrorCode::PROTOCOL_ERROR, why)
            }),
        }
    }

    fn recv_trailers(
        &mut self,
        stream: StreamId,
        fields: &FieldList,
        end_stream: bool,
    ) -> Result<(), ConnError> {
        if !end_stream {
            return self.reject(stream, Rejection::Malformed("trailers without END_STREAM"));
        }
        let trailers = match validate_trailers(fields, &self.config.limits) {
            Ok(trailers) => trailers,
            Err(rejection) => return self.reject(stream, rejection),
        };
        let Some(s) = self.streams.get_mut(&stream) else {
            return Ok(());
        };
        if s.content_length.is_some_and(|n| n != s.received) {
            self.reset_stream(stream, ErrorCode::PROTOCOL_ERROR, ResetCause::ContentLength);
            return Ok(());
        }
        s.recv = RecvState::Closed;
        if s.is_closed() {
            self.streams.remove(&stream);
        }
        self.events.push_back(Event::Trailers { stream, trailers });
        Ok(())
    }

    fn recv_data(
        &mut self,
        stream: StreamId,
        data: Bytes,
        end_stream: bool,
        flow_len: u32,
    ) -> Result<(), ConnError> {
        if stream == 0 {
            return Err(self.goaway(ErrorCode::PROTOCOL_ERROR, "DATA on stream 0"));
        }
        if stream > self.highest_stream {
            return Err(self.goaway(ErrorCode::PROTOCOL_ERROR, "DATA on an idle stream"));
        }
        if !self.conn_recv.receive(flow_len) {
            return Err(self.goaway(
                ErrorCode::FLOW_CONTROL_ERROR,
                "DATA beyond the connection window",
            ));
        }
        let Some(s) = self.streams.get_mut(&stream) else {
            // A closed stream: ignored, its bytes given back to the connection window.
            self.release_connection(flow_len);
            return Ok(());
        };
        if s.recv == RecvState::Closed {
            return Err(self.goaway(
                ErrorCode::STREAM_CLOSED,
                "DATA on a half-closed (remote) stream",
            ));
        }
        if !s.recv_window.receive(flow_len) {
            self.reset_stream(
                stream,
                ErrorCode::FLOW_CONTROL_ERROR,
                ResetCause::FlowControl,
            );
            self.release_connection(flow_len);
            return Ok(());
        }
        let len = u32::try_from(data.len()).unwrap_or(flow_len).min(flow_len);
        s.received += u64::from(len);
        if s.content_length
            .is_some_and(|n| s.received > n || (end_stream && s.received != n))
        {
            self.reset_stream(stream, ErrorCode::PROTOCOL_ERROR, ResetCause::ContentLength);
            self.release_connection(flow_len);
            return Ok(());
        }
        let padding = flow_len - len;
        if end_stream {
            s.recv = RecvState::Closed;
            if s.is_closed() {
                self.streams.remove(&stream);
            }
        }
        if padding > 0 {
            // Padding is nobody's data: its credit comes back at once.
            self.release_capacity(stream, padding);
        }
        self.events.push_back(Event::Data {
            stream,
            data,
            end_stream,
        });
        Ok(())
    }

    fn recv_rst(&mut self, stream: StreamId, code: ErrorCode) -> Result<(), ConnError> {
        if stream == 0 {
            return Err(Self::silent(
                ErrorCode::PROTOCOL_ERROR,
                "RST_STREAM on stream 0",
            ));
        }
        if stream > self.highest_stream {
            return Err(Self::silent(
                ErrorCode::PROTOCOL_ERROR,
                "RST_STREAM on an idle stream",
            ));
        }
        if self.streams.remove(&stream).is_some() {
            self.events.push_back(Event::PeerReset { stream, code });
        }
        Ok(())
    }

    fn recv_settings(&mut self, ack: bool, settings: &[Setting]) -> Result<(), ConnError> {
        if ack {
            if !settings.is_empty() {
                return Err(self.goaway(ErrorCode::FRAME_SIZE_ERROR, "SETTINGS ack with a payload"));
            }
            if !self.settings_acked {
                self.settings_acked = true;
                let target = self.config.initial_stream_window;
                for s in self.streams.values_mut() {
                    s.recv_window.retarget(target);
                }
            }
            return Ok(());
        }
        for setting in settings {
            match *setting {
                Setting::HeaderTableSize(n) => self.peer.header_table_size = n,
                Setting::EnablePush(n) if n > 1 => {
                    return Err(Self::silent(
                        ErrorCode::PROTOCOL_ERROR,
                        "ENABLE_PUSH over 1",
                    ));
                }
                Setting::EnableConnectProtocol(n) if n > 1 => {
                    return Err(Self::silent(
                        ErrorCode::PROTOCOL_ERROR,
                        "ENABLE_CONNECT_PROTOCOL over 1",
                    ));
                }
                Setting::EnablePush(_)
                | Setting::EnableConnectProtocol(_)
                | Setting::MaxConcurrentStreams(_)
                | Setting::Unknown(..) => {}
                Setting::InitialWindowSize(n) => {
                    if n > MAX_STREAM_ID {
                        return Err(Self::silent(
                            ErrorCode::FLOW_CONTROL_ERROR,
                            "INITIAL_WINDOW_SIZE over 2^31-1",
                        ));
                    }
                    let delta = i64::from(n) - i64::from(self.peer.initial_window_size);
                    self.peer.initial_window_size = n;
                    for s in self.streams.values_mut() {
                        if s.send_window.grow(delta).is_err() {
                            return Err(Self::silent(
                                ErrorCode::FLOW_CONTROL_ERROR,
                                "INITIAL_WINDOW_SIZE overflows a stream window",
                            ));
                        }
                    }
                    if delta > 0 && !self.streams.is_empty() {
                        self.events.push_back(Event::WindowOpened { stream: 0 });
                    }
                }
                Setting::MaxFrameSize(n) => {
                    if !(MIN_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&n) {
                        return Err(Self::silent(
                            ErrorCode::PROTOCOL_ERROR,
                            "MAX_FRAME_SIZE out of range",
                        ));
                    }
                    self.peer.max_frame_size = n;
                }
                Setting::MaxHeaderListSize(n) => self.peer.max_header_list_size = Some(n),
            }
        }
        self.frames.push_back(Frame::Settings {
            ack: true,
            settings: Vec::new(),
        });
        Ok(())
    }

    fn recv_ping(&mut self, ack: bool, payload: [u8; 8]) {
        if !ack {
            self.frames.push_back(Frame::Ping { ack: true, payload });
        } else if self.drain == Drain::Notified && payload == DRAIN_PING {
            self.finish_drain();
        }
    }

    fn recv_window_update(&mut self, stream: StreamId, increment: u32) -> Result<(), ConnError> {
        if stream == 0 {
            if increment == 0 {
                return Err(Self::silent(
                    ErrorCode::PROTOCOL_ERROR,
                    "WINDOW_UPDATE of 0 on the connection",
                ));
            }
            if self.conn_send.grow(i64::from(increment)).is_err() {
                return Err(Self::silent(
                    ErrorCode::FLOW_CONTROL_ERROR,
                    "connection window over 2^31-1",
                ));
            }
            self.events.push_back(Event::WindowOpened { stream: 0 });
            return Ok(());
        }
        if stream > self.highest_stream || stream.is_multiple_of(2) {
            return Err(Self::silent(
                ErrorCode::PROTOCOL_ERROR,
                "WINDOW_UPDATE on an idle stream",
            ));
        }
        let Some(s) = self.streams.get_mut(&stream) else {
            return Ok(());
        };
        if increment == 0 {
            return Err(Self::silent(
                ErrorCode::PROTOCOL_ERROR,
                "WINDOW_UPDATE of 0 on a stream",
            ));
        }
        if s.send_window.grow(i64::from(increment)).is_err() {
            return Err(Self::silent(
                ErrorCode::FLOW_CONTROL_ERROR,
                "stream window over 2^31-1",
            ));
        }
        self.events.push_back(Event::WindowOpened { stream });
        Ok(())
    }

    /// Resets `stream` from our side: RST_STREAM queued, the stream closed, the driver
    /// told.
    pub(super) fn reset_stream(&mut self, stream: StreamId, code: ErrorCode, cause: ResetCause) {
        self.streams.remove(&stream);
        self.frames.push_back(Frame::RstStream { stream, code });
        self.events.push_back(Event::LocalReset {
            stream,
            code,
            cause,
        });
    }
}
