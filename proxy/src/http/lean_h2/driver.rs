//! The socket driver of Baton's own HTTP/2 server codec: one future per downstream
//! connection that reads bytes into frames ([`FrameReader`]), feeds them to the state
//! machine ([`ServerConnection`]), turns its events into requests for the connection
//! manager's service and request bodies ([`super::body`]), and writes the responses and
//! the state machine's frames ([`FrameWriter`]) back, gathered into one buffer per turn.
//!
//! The streams' service futures are polled in this future (each with its own waker, as
//! `codec::h2_streams` does for hyper's), so a response is written in the same poll that
//! produced it. The request side is in `driver_events`, the response side in
//! `driver_send`. Buffers are let go while the connection is idle (nothing in flight and
//! nothing buffered), so an idle connection holds its HPACK tables and little else.

use std::collections::HashMap;
use std::future::Future;
use std::hash::BuildHasherDefault;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use futures_util::future::{AbortHandle, Abortable};
use futures_util::stream::FuturesUnordered;
use http::{Request, Response};
use hyper::service::Service;
use tokio::io::{AsyncRead, AsyncWrite};

use super::body::BodySender;
use super::conn::{ConnError, ServerConfig, ServerConnection};
use super::frame::StreamId;
use super::streams::StreamIdHasher;
use super::wire::{FrameReader, ReaderConfig};
use super::wire_write::FrameWriter;
use crate::http::codec::{DownstreamBody, DownstreamIo};
use crate::http::codec_conn::CodecError;
use crate::http::stream::ConnShared;
use crate::http::ResponseBody;

/// Whether Baton's own HTTP/2 codec serves downstream HTTP/2 (the default;
/// `BATON_H2_CODEC=hyper` in the environment gives hyper's server instead, for
/// comparisons). Read once.
pub(crate) fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("BATON_H2_CODEC").map_or(true, |v| v != "hyper"))
}

/// Whether the codec serves this connection manager's HTTP/2 connections: not when it
/// may tunnel over an HTTP/2 stream (CONNECT in `upgrade_configs`, or extended CONNECT
/// with `allow_connect`), which only hyper's server can hand over yet.
pub(crate) fn serves(hcm: &baton_config::model::HttpConnectionManager) -> bool {
    enabled()
        && !hcm.http2.allow_connect
        && !hcm
            .upgrade_configs
            .iter()
            .any(|u| u.upgrade_type.eq_ignore_ascii_case("CONNECT"))
}

/// How much is read at a time (one maximal default frame and its header).
const READ_CHUNK: usize = 16 * 1024 + 9;
/// Response DATA stops being produced while this much waits to be written.
pub(super) const WRITE_HIGH_WATER: usize = 64 * 1024;
/// Envoy's `max_outbound_control_frames` default: more PING/SETTINGS acks and
/// RST_STREAM frames than this waiting to be written end the connection.
const MAX_UNWRITTEN_CONTROL: u32 = 1000;
/// Envoy's `max_outbound_frames` default, for frames of every type.
const MAX_UNWRITTEN_FRAMES: u32 = 10_000;

/// A stream's service call, abortable when the stream is reset.
pub(super) struct Call<F> {
    pub(super) stream: StreamId,
    pub(super) fut: Abortable<F>,
}

impl<F: Future + Unpin> Future for Call<F> {
    /// `None`: aborted, or the call panicked (reported here).
    type Output = (StreamId, Option<F::Output>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let stream = this.stream;
        let fut = Pin::new(&mut this.fut);
        // A stream that panics ends alone, as its own task did under hyper.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(Ok(out))) => Poll::Ready((stream, Some(out))),
            Ok(Poll::Ready(Err(_aborted))) => Poll::Ready((stream, None)),
            Err(_) => {
                tracing::error!(stream, "an HTTP/2 stream panicked; its stream ended");
                Poll::Ready((stream, None))
            }
        }
    }
}

/// The socket a driver serves.
pub(crate) trait DriverIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> DriverIo for T {}

/// The connection manager's service as the driver calls it, once per stream.
pub(crate) trait DriverService:
    Service<
        Request<DownstreamBody>,
        Response = Response<ResponseBody>,
        Error: Into<CodecError>,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}
impl<T> DriverService for T where
    T: Service<
            Request<DownstreamBody>,
            Response = Response<ResponseBody>,
            Error: Into<CodecError>,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// What the driver keeps per open stream.
#[derive(Default)]
pub(super) struct Slot {
    /// The request body's sending end (None: the request ended with its headers, or
    /// its body has ended).
    pub(super) body: Option<BodySender>,
    /// Aborts the service call (None: the call has answered).
    pub(super) call: Option<AbortHandle>,
    /// The response being sent, once its HEADERS went out.
    pub(super) out: Option<Box<super::driver_send::Outgoing>>,
}

pub(super) type Slots = HashMap<StreamId, Slot, BuildHasherDefault<StreamIdHasher>>;

/// Why the connection is ending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ending {
    /// Serving.
    No,
    /// Write what is queued (a GOAWAY, when the error has one), then close.
    Closing,
    /// The client closed or the socket failed: nothing more to write.
    Gone,
}

/// One connection served by Baton's own HTTP/2 codec.
pub(crate) struct Driver<IO, S>
where
    S: Service<Request<DownstreamBody>, Response = Response<ResponseBody>>,
{
    pub(super) io: DownstreamIo<IO>,
    pub(super) service: S,
    pub(super) shared: Arc<ConnShared>,
    pub(super) conn: ServerConnection,
    pub(super) reader: FrameReader,
    pub(super) writer: FrameWriter,
    pub(super) read_buf: BytesMut,
    pub(super) write_buf: BytesMut,
    pub(super) slots: Slots,
    pub(super) calls: FuturesUnordered<Call<Pin<Box<S::Future>>>>,
    pub(super) ending: Ending,
    /// The connection failed with this error (logged once it closes).
    pub(super) error: Option<ConnError>,
    /// A graceful close was asked for.
    pub(super) drain_asked: bool,
    /// The request a malformed-messaging close left in flight: kept until the driver is
    /// dropped, after the connection manager noted the requests in flight.
    pub(super) in_flight: Option<crate::http::stats::ActiveStream>,
    /// A call was started and not yet polled: a reset must let it begin first (so the
    /// request is counted, and a premature reset seen, as Envoy counts them).
    pub(super) calls_unpolled: bool,
    /// Frames in `write_buf` (all, and the control ones Envoy counts apart): a client
    /// that sends PINGs and reads nothing is cut off, not answered into memory.
    pub(super) unwritten_frames: u32,
    pub(super) unwritten_control: u32,
    /// Envoy's inbound flood counts (see `driver_events::InboundFloods`).
    pub(super) inbound: super::driver_events::InboundFloods,
}

impl<IO, S> Driver<IO, S>
where
    IO: DriverIo,
    S: DriverService,
{
    /// Serves `io` (its first bytes, the client preface, wait in its replay buffer).
    pub(crate) fn new(mut io: DownstreamIo<IO>, service: S, shared: Arc<ConnShared>) -> Self {
        io.serve_own_h2();
        let hcm = &shared.runtime.hcm;
        let config = ServerConfig::from_hcm(hcm);
        let list_cap = config
            .limits
            .max_header_bytes
            .saturating_add(32 * (config.limits.max_headers_count + 1))
            .saturating_add(64);
        let defaults = ReaderConfig::default();
        let reader = FrameReader::new(ReaderConfig {
            max_header_list_size: list_cap,
            // A block as sent is rarely larger than the fields it decodes to: room for
            // any request within `max_request_headers_kb`.
            max_header_block: defaults
                .max_header_block
                .max(config.limits.max_header_bytes.saturating_mul(2)),
            ..defaults
        });
        Self {
            io,
            service,
            shared,
            conn: ServerConnection::new(config),
            reader,
            writer: FrameWriter::new(),
            read_buf: BytesMut::new(),
            write_buf: BytesMut::new(),
            slots: Slots::default(),
            calls: FuturesUnordered::new(),
            ending: Ending::No,
            error: None,
            drain_asked: false,
            in_flight: None,
            calls_unpolled: false,
            unwritten_frames: 0,
            unwritten_control: 0,
            inbound: Default::default(),
        }
    }

    /// Envoy's graceful close: GOAWAY 2^31-1 and a PING, then the final GOAWAY once the
    /// PING is acknowledged (or at once when the client has opened nothing since); the
    /// connection closes when its streams are done.
    pub(crate) fn graceful_shutdown(&mut self) {
        self.drain_asked = true;
        self.conn.start_drain();
    }

    /// Reads what the socket has, runs it through the codec; true when bytes came.
    fn poll_input(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.read_buf.capacity() - self.read_buf.len() < 1024 {
            self.read_buf.reserve(READ_CHUNK);
        }
        let n = std::task::ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.io),
            cx,
            &mut self.read_buf
        ))?;
        Poll::Ready(Ok(n))
    }

    /// Decodes every whole frame read and applies it.
    fn process_input(&mut self, cx: &mut Context<'_>) {
        loop {
            if self.ending != Ending::No {
                return;
            }
            match self.reader.next_frame(&mut self.read_buf) {
                Ok(Some(frame)) => {
                    if let Err(e) = self.apply_frame(frame) {
                        self.fail(e);
                    }
                    self.handle_events(cx);
                }
                Ok(None) => return,
                Err(wire) => {
                    let block = self.reader.open_block_stream();
                    let res = self.conn.wire_error(&wire, block);
                    self.handle_events(cx);
                    match res {
                        Err(e) => self.fail(e),
                        // A stream error: the reader cannot go on after an error either.
                        Ok(()) => self.fail(ConnError {
                            code: super::frame::ErrorCode::PROTOCOL_ERROR,
                            goaway: true,
                            reason: "wire error",
                            messaging: false,
                        }),
                    }
                }
            }
        }
    }

    /// The connection ends on `e`: what is queued (its GOAWAY, if any) is written, then
    /// the socket closes.
    fn fail(&mut self, e: ConnError) {
        if e.reason == super::wire::REASON_EMPTY_FRAMES_FLOOD {
            crate::stats::downstream_http2()
                .inbound_empty_frames_flood
                .inc();
        }
        if e.messaging {
            self.in_flight = Some(super::driver_events::count_messaging_close(&self.shared));
        }
        tracing::debug!(error = %e, conn = self.shared.conn.id, "HTTP/2 connection error");
        self.error = Some(e);
        self.ending = Ending::Closing;
    }

    /// Writes `write_buf` out; Ready once it is all written and flushed.
    fn poll_output(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.write_buf.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.io).poll_write(cx, &self.write_buf))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.write_buf.advance(n);
        }
        self.unwritten_frames = 0;
        self.unwritten_control = 0;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// Envoy's outbound flood limits (see [`MAX_UNWRITTEN_CONTROL`]): counted, and true
    /// when the connection must end now.
    fn outbound_flooded(&self) -> bool {
        let stats = crate::stats::downstream_http2();
        if self.unwritten_control > MAX_UNWRITTEN_CONTROL {
            stats.outbound_control_flood.inc();
        } else if self.unwritten_frames > MAX_UNWRITTEN_FRAMES {
            stats.outbound_flood.inc();
        } else {
            return false;
        }
        tracing::debug!(
            conn = self.shared.conn.id,
            "HTTP/2 client reads nothing while frames pile up; closing"
        );
        true
    }

    /// Nothing in flight and nothing buffered: the buffers go (the next read makes one).
    fn release_idle_buffers(&mut self) {
        if self.slots.is_empty() && self.read_buf.is_empty() && self.write_buf.is_empty() {
            if self.read_buf.capacity() > 0 {
                self.read_buf = BytesMut::new();
            }
            if self.write_buf.capacity() > 0 {
                self.write_buf = BytesMut::new();
            }
        }
    }

    /// One turn of the connection; Ready when it is over.
    fn poll_turn(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), CodecError>> {
        loop {
            let mut progress = false;
            if self.ending == Ending::No {
                match self.poll_input(cx) {
                    Poll::Ready(Ok(0)) => {
                        // The client closed: streams in flight cannot be answered.
                        self.ending = Ending::Gone;
                    }
                    Poll::Ready(Ok(_)) => {
                        progress = true;
                        self.process_input(cx);
                    }
                    Poll::Ready(Err(e)) => {
                        tracing::debug!(error = %e, "HTTP/2 connection read failed");
                        self.ending = Ending::Gone;
                    }
                    Poll::Pending => {}
                }
            }
            if self.ending == Ending::Gone {
                self.end_streams();
                return Poll::Ready(Ok(()));
            }
            // Our SETTINGS and acks go before any response.
            self.queue_frames();
            // Once the connection is ending no request goes further (Envoy reads a
            // whole buffer before acting: a request in it before a connection error is
            // never forwarded).
            if self.ending == Ending::No && self.poll_calls(cx) {
                progress = true;
            }
            if !self.drain_asked && self.shared.max_requests_drain.load(Ordering::Relaxed) {
                // A refused CONNECT/upgrade or `max_requests_per_connection`: the drain's
                // GOAWAY goes out with the response that asked for it.
                self.graceful_shutdown();
            }
            let mut stopped_full = false;
            if self.ending == Ending::No {
                stopped_full = self.poll_responses(cx);
                // What sending did to the streams (a response that ended before its
                // request is a reset).
                self.handle_events(cx);
                if self.conn.is_drained() {
                    self.ending = Ending::Closing;
                }
            }
            self.return_windows(cx);
            self.queue_frames();
            if self.outbound_flooded() {
                // Cut off at once: what waits would never be read.
                self.end_streams();
                return Poll::Ready(Ok(()));
            }
            match self.poll_output(cx) {
                Poll::Ready(Ok(())) => {
                    if self.ending == Ending::Closing {
                        return self.poll_close(cx);
                    }
                    // Sending stopped at the write buffer's high-water mark and all of it
                    // went out: go on. (While the socket is full, the write's waker
                    // brings the connection back; looping then would only spin.)
                    if stopped_full {
                        progress = true;
                    }
                }
                Poll::Ready(Err(e)) => {
                    tracing::debug!(error = %e, "HTTP/2 connection write failed");
                    self.end_streams();
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending => {}
            }
            if !progress {
                self.release_idle_buffers();
                return Poll::Pending;
            }
        }
    }

    /// Everything is written: shut the socket.
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), CodecError>> {
        self.end_streams();
        if self.error.is_some_and(|e| !e.goaway) {
            // Envoy closes without a GOAWAY here: what the client sent after the
            // offending frame is read first, so that the close is a FIN, not a reset.
            self.read_buf.clear();
        }
        let res = std::task::ready!(Pin::new(&mut self.io).poll_shutdown(cx));
        if let Err(e) = res {
            tracing::debug!(error = %e, "shutting down an HTTP/2 connection");
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO, S> Future for Driver<IO, S>
where
    IO: DriverIo,
    S: DriverService + Unpin,
{
    type Output = Result<(), CodecError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let res = self.poll_turn(cx);
        if res.is_ready() {
            if self.error.is_some_and(|e| e.messaging) {
                self.shared.close_locally();
            }
            // Noted while the requests in flight still are (their futures, and a refused
            // request's count, end when the driver is dropped, right after this).
            self.shared.codec_ended();
        }
        res
    }
}
