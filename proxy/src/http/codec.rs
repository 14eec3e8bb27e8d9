//! Codec setup for one downstream connection: hyper's HTTP/1.1 and HTTP/2 servers
//! configured from the connection manager (limits, timeouts, windows), and an I/O
//! wrapper that replaces hyper's bare automatic error responses (400 / 431 on malformed
//! or oversized requests) with Envoy's (`Bad Request` / `Request Header Fields Too
//! Large` text bodies, `connection: close`), counts the connection's bytes and codec
//! in `http.<stat_prefix>.*`, tells a fixed `codec_type` from the other protocol by the
//! first bytes (hyper's upgrade-capable server always detects the protocol itself),
//! runs `request_headers_timeout` (408 `request header timeout`, then close), and has
//! hyper refuse HTTP/1 requests whose framing, method, target or version Envoy refuses
//! (`framing`: 400, 426 or 501, then close), after repairing in place the heads Envoy
//! reads and httparse does not. Short reads (hyper-util's 24-byte protocol detection)
//! read ahead, so that the check sees a head as it arrived. Between HTTP/1 exchanges it
//! can end hyper's connection so that an idle connection parks (`codec_conn`). HTTP/1.1
//! exchanges are served first by the lean loop (`lean_conn`, over this same I/O; its
//! hand-over to hyper is in `lean_handover`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use baton_config::model::CodecType;

use super::context::HcmRuntime;
use super::park_socket::ReadReadiness;
use super::stream::ConnShared;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

mod builders;
mod copies;
mod downstream_body;
mod downstream_write;
mod framing;
mod h2_refusal;
pub(crate) mod h2_streams;
mod h2_wire;
mod head_size;
mod header_names;
pub(crate) mod lean_conn;
mod lean_handover;
pub(crate) mod lean_server;
mod parked_io;
mod reply;

pub use builders::{builder, framing_limits, http1_builder, http2_builder};
pub(crate) use copies::CopyBuffer;
pub use head_size::{http1_head_len, http2_header_bytes, http2_header_count};
pub(crate) use header_names::HeaderNameCache;
pub use reply::{codec_reply_body_len, CodecReplyRecord};
use reply::{codec_reply_details, codec_reply_text, AutomaticReply};

pub use downstream_body::DownstreamBody;
pub(crate) use downstream_body::LeanBody;
pub use framing::{fuzz_request_framing, FramingLimits};
pub(crate) use lean_handover::lean_http1;
pub(crate) use lean_server::parsed_value;
pub(crate) use parked_io::IdleIo;

use framing::{Rejection, RequestFraming};

/// What the first bytes of a connection say about its protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preface {
    /// The HTTP/2 connection preface (or, for an HTTP/1-only codec, its `PRI * HTTP/2.0`
    /// request line, which that codec rejects).
    Http2,
    /// Anything else: an HTTP/1 request.
    Http1,
    /// The client closed before saying.
    Closed,
}

/// The `PRI * HTTP/2.0\r\n` request line that opens the HTTP/2 preface.
const H2_REQUEST_LINE_LEN: usize = 16;

/// What replaces a refused head's final LF: a NUL, which httparse refuses where that LF
/// belonged (after a CR, or where a header line would start), then an empty line so that
/// hyper, which after a partial head only parses once new bytes hold `\n\n` or
/// `\n\r\n`, parses it and answers its automatic 400.
const SPOILED_HEAD_END: &[u8] = b"\0\n\n";

/// Replaces the LF at `at` in `buf` and everything after it with [`SPOILED_HEAD_END`];
/// what does not fit goes to `overflow`, which is read next. The bytes after the head
/// are dropped: hyper closes the connection after refusing it.
fn spoil_head(buf: &mut ReadBuf<'_>, at: usize, overflow: &mut Vec<u8>) {
    debug_assert_eq!(buf.filled().get(at), Some(&b'\n'));
    buf.set_filled(at);
    let fits = buf.remaining().min(SPOILED_HEAD_END.len());
    buf.put_slice(&SPOILED_HEAD_END[..fits]);
    // Empty unless the read was sniffing the protocol into a short buffer; a head that
    // fits there (16 bytes) has no headers to refuse.
    overflow.extend_from_slice(&SPOILED_HEAD_END[fits..]);
}

/// Reads into a buffer with less room than this read ahead (`poll_read_ahead`).
const READ_AHEAD_BELOW: usize = 64;
/// How much a read ahead reads at most (hyper's own first read buffer is as large).
const READ_AHEAD: usize = 8192;

/// How much of what a client sent is read and dropped before closing a failed HTTP/2
/// connection.
const DRAIN_AT_MOST: usize = 1024 * 1024;

/// The HTTP/2 connection preface a client sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Which codec serves the connection, for `downstream_cx_http1_*` / `_http2_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    /// AUTO and nothing read yet.
    Unknown,
    Http1,
    Http2,
}

/// `request_headers_timeout` for HTTP/1: armed by the first bytes of a request head,
/// disarmed once the connection manager has the head.
#[derive(Debug)]
struct HeadTimer {
    timeout: Duration,
    conn: Arc<ConnShared>,
    /// `conn.request_heads` when armed; None while disarmed.
    armed_at_heads: Option<u64>,
    sleep: Pin<Box<Sleep>>,
}

impl HeadTimer {
    /// Bytes arrived: the first ones of a request head start the clock.
    fn on_bytes(&mut self) {
        if self.armed_at_heads.is_none() && self.conn.awaiting_request_head.load(Ordering::Relaxed)
        {
            self.armed_at_heads = Some(self.conn.request_heads.load(Ordering::Relaxed));
            let deadline = tokio::time::Instant::now() + self.timeout;
            self.sleep.as_mut().reset(deadline);
        }
    }

    /// True when the head being read took longer than the timeout (registers the
    /// wake-up otherwise).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(at) = self.armed_at_heads else {
            return false;
        };
        if self.conn.request_heads.load(Ordering::Relaxed) != at {
            // The head arrived; the next one re-arms.
            self.armed_at_heads = None;
            return false;
        }
        self.sleep.as_mut().poll(cx).is_ready()
    }
}

/// The HTTP/2 frame followers of one connection, boxed so that an HTTP/1 connection
/// (idle ones included) carries no room for them.
#[derive(Debug, Default)]
struct H2Frames {
    /// Follows outbound HTTP/2 frames: a stream over `max_concurrent_streams` ends the
    /// connection, as in Envoy.
    outbound: h2_refusal::OutboundFrames,
    /// Follows inbound HTTP/2 frames (see `h2_wire`).
    inbound: h2_wire::InboundFrames,
}

/// Downstream I/O with hyper's automatic error responses rewritten.
#[derive(Debug)]
pub struct DownstreamIo<IO> {
    inner: IO,
    pending: Vec<u8>,
    written: usize,
    /// A rewritten error reply or a reply the codec wrote itself, for the access log
    /// and stats.
    pub codec_reply: Arc<CodecReplyRecord>,
    /// Where bytes and the codec are counted (none: not counted).
    stats: Option<Arc<HcmRuntime>>,
    codec: Codec,
    /// Bytes read while sniffing the protocol, handed to hyper before anything else.
    replay: Vec<u8>,
    replay_at: usize,
    /// Boxed: configured on few connections, and every connection carries the field.
    head_timer: Option<Box<HeadTimer>>,
    /// The request header timeout fired: its 408 is going out, then reads fail.
    head_timed_out: bool,
    /// Follows HTTP/1 request framing (None: not checked).
    framing: Option<RequestFraming>,
    /// The request the framing check refused; hyper's 400 for it becomes Envoy's reply.
    rejection: Option<Box<Rejection>>,
    /// Counts the request heads hyper handed to the connection manager, which tells
    /// whose automatic 400 is being written.
    conn: Option<Arc<ConnShared>>,
    /// HTTP/2 only: the frame followers (see [`H2Frames`]), made on first use.
    h2: Option<Box<H2Frames>>,
    /// hyper's HTTP/1 connection may be ended between exchanges so that the connection
    /// idles without it (see [`Self::may_park`]).
    park_enabled: bool,
    /// No write since the last completed flush: hyper's write buffer was empty then.
    flushed: bool,
    /// `conn.streams_ended` at the last completed flush: the responses whose last bytes
    /// that flush wrote (hyper buffers a response's end in the call that ends its body).
    flushed_streams: u64,
    /// A read was answered with a pretend end of stream to end hyper's connection; its
    /// shutdown of the socket is skipped (the connection parks, see `park`).
    parked: bool,
    /// The server's first SETTINGS frame was looked at (see `h2_wire::envoy_settings`).
    h2_settings_seen: bool,
    /// A header field too large for Envoy's HPACK decoder arrived: its GOAWAY is going
    /// out, then reads fail.
    h2_compression_failed: bool,
    /// The lean loop reads: it judges the heads it serves with the framing check's own
    /// parse, and what it hands to hyper is checked then ([`Self::resume_framing`]).
    framing_deferred: bool,
    /// Baton's own HTTP/2 codec serves the connection (`lean_h2`): it gives Envoy's
    /// answers itself, so bytes pass without the frame followers hyper's server needs.
    own_h2: bool,
}

impl<IO> DownstreamIo<IO> {
    /// Wraps `inner`. Its own replies name the connection manager's `server_name`
    /// (from [`Self::with_stats`]; `envoy` without).
    pub fn new(inner: IO) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            written: 0,
            codec_reply: Arc::new(CodecReplyRecord::new()),
            stats: None,
            codec: Codec::Unknown,
            replay: Vec::new(),
            replay_at: 0,
            head_timer: None,
            head_timed_out: false,
            framing: None,
            rejection: None,
            conn: None,
            h2: None,
            park_enabled: false,
            flushed: true,
            flushed_streams: 0,
            parked: false,
            h2_settings_seen: false,
            h2_compression_failed: false,
            own_h2: false,
            framing_deferred: false,
        }
    }

    /// The socket (a parked connection changes its registration through it).
    pub(crate) fn socket_mut(&mut self) -> &mut IO {
        &mut self.inner
    }

    /// The connection's codec as its first bytes (or `codec_type`) said: true for
    /// HTTP/1 (an AUTO connection whose first bytes are not the HTTP/2 preface's).
    pub(crate) fn is_http1(&self) -> bool {
        self.codec == Codec::Http1
    }

    /// True when the bytes read and not yet handed on begin with the whole HTTP/2
    /// preface: the connection speaks HTTP/2, whichever way the protocol is detected.
    /// Baton's own HTTP/2 codec serves this connection from now on (see `own_h2`).
    pub(crate) fn serve_own_h2(&mut self) {
        self.own_h2 = true;
    }

    pub(crate) fn has_h2_preface(&self) -> bool {
        self.replay
            .get(self.replay_at..)
            .is_some_and(|unread| unread.starts_with(H2_PREFACE))
    }

    /// Lets a read end hyper's HTTP/1 connection between exchanges (see
    /// [`Self::may_park`]); set while such a connection serves this I/O.
    pub(crate) fn enable_park(&mut self, enabled: bool) {
        self.park_enabled = enabled;
    }

    /// True when a read ended hyper's connection for parking: the connection is idle
    /// between exchanges and its socket still open.
    pub(crate) fn parked(&self) -> bool {
        self.parked
    }

    /// Takes the I/O back from an ended hyper connection that parked: `read_buf` (what
    /// hyper had read and not parsed; empty unless hyper read ahead of the framing
    /// check) is read again first, and idle-only memory is given back.
    pub(crate) fn park(&mut self, read_buf: &[u8]) {
        self.parked = false;
        self.park_enabled = false;
        if let Some(conn) = &self.conn {
            conn.idle_read.store(false, Ordering::Relaxed);
            conn.park_now.store(false, Ordering::Relaxed);
        }
        self.unread(read_buf);
        if let Some(framing) = &mut self.framing {
            framing.release_memory();
        }
    }

    /// True when a read that would block may instead end hyper's HTTP/1 connection
    /// with a pretend end of stream (once `conn.park_now` says the connection idled
    /// long enough), which hyper takes as the client closing an idle keep-alive
    /// connection: every request read so far was whole and reached the
    /// connection manager, every response ended and was flushed after its end, and no
    /// byte of a next request arrived. hyper's read buffer is then empty and it is
    /// reading only to find the next request head.
    fn may_park(&self) -> bool {
        if !self.park_enabled
            || !self.flushed
            || self.codec != Codec::Http1
            || self.head_timed_out
            || !self.pending.is_empty()
            || self.replay_at < self.replay.len()
        {
            return false;
        }
        let (Some(framing), Some(conn)) = (&self.framing, &self.conn) else {
            return false;
        };
        let heads = conn.request_heads.load(Ordering::Relaxed);
        heads > 0
            && framing.heads() == heads
            && self.flushed_streams == heads
            && framing.at_request_start()
    }

    /// Checks HTTP/1 request framing as Envoy does (see `framing`): a refused request
    /// gets hyper's automatic 400, rewritten to Envoy's status, after the responses to
    /// the requests before it. `conn` counts the heads hyper delivered.
    pub(crate) fn with_request_framing(
        mut self,
        limits: FramingLimits,
        conn: Arc<ConnShared>,
    ) -> Self {
        self.framing = Some(RequestFraming::new(limits));
        self.conn = Some(conn);
        self
    }

    /// Enforces `request_headers_timeout` on HTTP/1 request heads; `conn` says when a
    /// head may begin and when the connection manager received one.
    pub(crate) fn with_request_headers_timeout(
        mut self,
        timeout: Duration,
        conn: Arc<ConnShared>,
    ) -> Self {
        self.head_timer = Some(Box::new(HeadTimer {
            timeout,
            conn,
            armed_at_heads: None,
            sleep: Box::pin(tokio::time::sleep(timeout)),
        }));
        self
    }

    /// Counts this connection in `runtime`'s stats: rx/tx bytes, and its codec
    /// (`downstream_cx_http1_total` / `_http2_total` and their `_active` gauges): fixed
    /// by `codec_type`, or with AUTO decided by the first bytes as hyper decides it (the
    /// HTTP/2 preface, or anything else for HTTP/1).
    pub(crate) fn with_stats(mut self, runtime: Arc<HcmRuntime>) -> Self {
        let codec = match runtime.hcm.codec_type {
            CodecType::Auto => Codec::Unknown,
            CodecType::Http1 => Codec::Http1,
            CodecType::Http2 => Codec::Http2,
        };
        // Set from the start: the first bytes are read (and would be followed) before
        // the codec is chosen.
        self.own_h2 = super::lean_h2::driver::serves(&runtime.hcm);
        self.stats = Some(runtime);
        self.set_codec(codec);
        self
    }

    fn set_codec(&mut self, codec: Codec) {
        self.codec = codec;
        let Some(rt) = &self.stats else { return };
        match codec {
            Codec::Unknown => {}
            Codec::Http1 => {
                crate::stats::http1();
                rt.stats.downstream_cx_http1_total.inc();
                rt.stats.downstream_cx_http1_active.inc();
            }
            Codec::Http2 => {
                crate::stats::downstream_http2()
                    .downstream_connections
                    .inc();
                rt.stats.downstream_cx_http2_total.inc();
                rt.stats.downstream_cx_http2_active.inc();
            }
        }
    }

    /// Counts bytes just read; the first ones decide an AUTO codec, and on HTTP/1 they
    /// may start the request header timer.
    fn on_read(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.codec == Codec::Unknown {
            let n = data.len().min(H2_PREFACE.len());
            let codec = if data[..n] == H2_PREFACE[..n] {
                Codec::Http2
            } else {
                Codec::Http1
            };
            self.set_codec(codec);
        }
        if let Some(rt) = &self.stats {
            rt.stats.downstream_cx_rx_bytes_total.add(data.len() as u64);
        }
        if self.park_enabled {
            if let Some(conn) = &self.conn {
                conn.idle_read.store(false, Ordering::Relaxed);
                conn.park_now.store(false, Ordering::Relaxed);
            }
        }
        if self.codec == Codec::Http2 && !self.own_h2 {
            let seen = self
                .h2
                .get_or_insert_with(Default::default)
                .inbound
                .on_read(data);
            if self.stats.is_some() && (seen.resets > 0 || seen.trailers > 0) {
                let codec_stats = crate::stats::downstream_http2();
                codec_stats.rx_reset.add(seen.resets);
                codec_stats.trailers.add(seen.trailers);
            }
            if let Some(last_stream) = seen.compression_error {
                // Envoy's HPACK decoder fails the connection: GOAWAY, then close. What
                // h2 was still writing goes first (a short write of it would be cut).
                tracing::debug!(
                    last_stream,
                    "HTTP/2 header field over 64 KiB: GOAWAY COMPRESSION_ERROR"
                );
                self.h2_compression_failed = true;
                self.pending = h2_wire::compression_error_goaway(last_stream);
                self.written = 0;
            }
        }
        if self.codec != Codec::Http2 {
            if let Some(timer) = &mut self.head_timer {
                timer.on_bytes();
            }
        }
    }

    /// Runs the framing check over the bytes read into `buf` after `before`; a refused
    /// head that ended in them is spoiled so hyper refuses it (see [`spoil_head`]).
    fn check_framing(&mut self, buf: &mut ReadBuf<'_>, before: usize) {
        if self.codec != Codec::Http1 {
            return;
        }
        let Some(framing) = self.framing.as_mut() else {
            return;
        };
        let (rejection, len) = framing.on_read(&mut buf.filled_mut()[before..]);
        // A repaired head is shorter than read.
        buf.set_filled(before + len);
        let Some(rejection) = rejection else {
            return;
        };
        tracing::debug!(
            request = rejection.request,
            status = rejection.status,
            details = rejection.details,
            "refusing an HTTP/1 request for its framing"
        );
        if let Some(end) = rejection.head_end {
            spoil_head(buf, before + end, &mut self.replay);
        }
        self.rejection = Some(Box::new(rejection));
    }

    /// Envoy's reply for hyper's automatic `status`: a 400 for the request the framing
    /// check refused becomes that refusal's status.
    fn automatic_reply(&self, automatic: AutomaticReply) -> AutomaticReply {
        let Some(rejection) = &self.rejection else {
            return automatic;
        };
        // hyper writes a request's automatic error after handing over every head before
        // it, so the count of delivered heads names the refused one.
        let delivered = self
            .conn
            .as_ref()
            .map(|c| c.request_heads.load(Ordering::Relaxed));
        if automatic.status == 400 && delivered.is_none_or(|d| d == rejection.request) {
            let text = if rejection.empty_body {
                ""
            } else {
                codec_reply_text(rejection.status)
            };
            AutomaticReply {
                status: rejection.status,
                text,
                details: rejection.details,
            }
        } else {
            automatic
        }
    }

    /// The bytes of the codec's own `reply`, through the connection manager's
    /// `local_reply_config` when it has one; records the codec's status (it says what
    /// happened), the status and body sent, and the details, for stats and the access
    /// log.
    fn codec_reply(&self, r: AutomaticReply) -> Vec<u8> {
        let _ = self.codec_reply.details.set(r.details);
        let mapping = match (&self.stats, &self.conn) {
            (Some(rt), Some(conn)) => rt
                .hcm
                .local_reply
                .as_ref()
                .map(|config| reply::Mapping { config, conn }),
            _ => None,
        };
        // Read from the config when needed rather than copied into every connection.
        let server = self
            .stats
            .as_ref()
            .and_then(|rt| rt.hcm.server_name.to_str().ok())
            .unwrap_or("envoy");
        let rendered = reply::render(r.status, r.text, r.details, server, mapping);
        self.codec_reply
            .record(r.status, rendered.status, rendered.body_len);
        rendered.bytes
    }

    /// Takes bytes read ahead (`chunk`, the read's whole result): counts and checks
    /// them as read, hands what fits to `buf` and keeps the rest to be read next.
    fn take_read_ahead(&mut self, mut chunk: Vec<u8>, buf: &mut ReadBuf<'_>) {
        self.on_read(&chunk);
        if !self.framing_deferred {
            let read = chunk.len();
            let mut ahead = ReadBuf::new(&mut chunk);
            ahead.set_filled(read);
            self.check_framing(&mut ahead, 0);
            let len = ahead.filled().len();
            chunk.truncate(len);
        }
        // A spoiled head's end that did not fit.
        let overflow = std::mem::take(&mut self.replay);
        chunk.extend_from_slice(&overflow);
        let served = buf.remaining().min(chunk.len());
        buf.put_slice(&chunk[..served]);
        if served < chunk.len() {
            self.replay = chunk;
            self.replay_at = served;
        } else {
            self.replay_at = 0;
        }
    }

    fn on_written(&self, n: usize) {
        if let Some(rt) = &self.stats {
            rt.stats.downstream_cx_tx_bytes_total.add(n as u64);
        }
    }
}

impl<IO> Drop for DownstreamIo<IO> {
    fn drop(&mut self) {
        let Some(rt) = &self.stats else { return };
        match self.codec {
            Codec::Unknown => {}
            Codec::Http1 => rt.stats.downstream_cx_http1_active.dec(),
            Codec::Http2 => rt.stats.downstream_cx_http2_active.dec(),
        }
    }
}

impl<IO: AsyncWrite + Unpin> DownstreamIo<IO> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n = std::task::ready!(
                Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.on_written(n);
            self.written += n;
        }
        if !self.pending.is_empty() {
            self.pending = Vec::new();
            self.written = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> DownstreamIo<IO> {
    /// Reads the first bytes until they tell an HTTP/2 preface from an HTTP/1 request
    /// (for an HTTP/1-only codec, the preface's `PRI * HTTP/2.0` request line is
    /// enough). The bytes read are handed to hyper afterwards.
    pub async fn sniff_preface(&mut self, http1_only: bool) -> io::Result<Preface> {
        let enough = if http1_only {
            H2_REQUEST_LINE_LEN
        } else {
            H2_PREFACE.len()
        };
        let mut seen = [0u8; H2_PREFACE.len()];
        let mut len = 0;
        let verdict = loop {
            if len >= enough {
                break Preface::Http2;
            }
            let n = self.read(&mut seen[len..enough]).await?;
            if n == 0 {
                break Preface::Closed;
            }
            len += n;
            if seen[..len] != H2_PREFACE[..len] {
                break Preface::Http1;
            }
        };
        // What the last read read ahead follows the sniffed bytes.
        let mut replay = seen[..len].to_vec();
        replay.extend_from_slice(&self.replay[self.replay_at..]);
        self.replay = replay;
        self.replay_at = 0;
        Ok(verdict)
    }

    /// A short read (hyper-util's protocol detection reads 24 bytes, `sniff_preface`
    /// as many) reads up to [`READ_AHEAD`] bytes into the replay buffer instead, so
    /// that the framing check sees a request head as it arrived, not cut after its
    /// first bytes (only a head in one read can be repaired); the rest is replayed.
    fn poll_read_ahead(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Only reached with the replay buffer drained: its capacity is reused.
        let chunk = std::mem::take(&mut self.replay);
        match parked_io::poll_read_chunk(&mut self.inner, cx, chunk) {
            Poll::Ready(Ok(chunk)) => {
                self.take_read_ahead(chunk, buf);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                self.replay_at = 0;
                Poll::Pending
            }
        }
    }

    /// While parked: waits for the client's next bytes, read ahead into the replay
    /// buffer for the next hyper connection (counted and checked as any read).
    /// `false`: the client closed.
    pub(crate) fn poll_unpark(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if self.replay_at < self.replay.len() {
            return Poll::Ready(Ok(true));
        }
        let mut nothing = ReadBuf::new(&mut []);
        std::task::ready!(self.poll_read_ahead(cx, &mut nothing))?;
        Poll::Ready(Ok(self.replay_at < self.replay.len()))
    }

    /// Reads and drops what is readable now, up to [`DRAIN_AT_MOST`] bytes.
    fn drain_unread(&mut self, cx: &mut Context<'_>) {
        let mut scratch = [0u8; 8192];
        let mut drained = 0;
        while drained < DRAIN_AT_MOST {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => drained += buf.filled().len(),
                _ => return,
            }
        }
    }

    /// Writes a reply of the codec's own (`codec_reply`) and closes the connection.
    pub async fn reply_and_close(&mut self, status: u16) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let reply = self.codec_reply(AutomaticReply {
            status,
            text: codec_reply_text(status),
            details: codec_reply_details(status),
        });
        self.write_all(&reply).await?;
        self.shutdown().await
    }
}

impl<IO: ReadReadiness> ReadReadiness for DownstreamIo<IO> {
    fn poll_may_read(&self, cx: &mut Context<'_>) -> Poll<()> {
        // Bytes to replay, a head timer to watch, a reply or parking to decide: only a
        // read does all that.
        if self.replay_at < self.replay.len()
            || self.head_timer.is_some()
            || self.head_timed_out
            || self.h2_compression_failed
            || self.may_park()
        {
            return Poll::Ready(());
        }
        self.inner.poll_may_read(cx)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for DownstreamIo<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.replay_at < this.replay.len() {
            let n = buf.remaining().min(this.replay.len() - this.replay_at);
            buf.put_slice(&this.replay[this.replay_at..this.replay_at + n]);
            this.replay_at += n;
            if this.replay_at == this.replay.len() {
                this.replay = Vec::new();
                this.replay_at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        if !this.head_timed_out && !this.h2_compression_failed {
            let before = buf.filled().len();
            let polled = if buf.remaining() < READ_AHEAD_BELOW
                && this.framing.is_some()
                && this.codec != Codec::Http2
            {
                this.poll_read_ahead(cx, buf)
            } else {
                let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
                if polled.is_ready() {
                    this.on_read(&buf.filled()[before..]);
                    if !this.framing_deferred {
                        this.check_framing(buf, before);
                    }
                }
                polled
            };
            if this.h2_compression_failed {
                // h2 gets none of the failing read.
                buf.set_filled(before);
                this.replay = Vec::new();
                this.replay_at = 0;
            }
            match polled {
                Poll::Ready(_) if this.h2_compression_failed => {}
                Poll::Ready(res) => return Poll::Ready(res),
                Poll::Pending => {
                    let expired = this.head_timer.as_mut().is_some_and(|t| t.expired(cx));
                    if !expired {
                        if this.may_park() {
                            if let Some(conn) = &this.conn {
                                if conn.park_now.load(Ordering::Relaxed) {
                                    this.parked = true;
                                    return Poll::Ready(Ok(()));
                                }
                                conn.idle_read.store(true, Ordering::Relaxed);
                            }
                        }
                        return Poll::Pending;
                    }
                    // Envoy answers a head that took too long with 408 and closes.
                    this.head_timed_out = true;
                    this.pending = this.codec_reply(AutomaticReply {
                        status: 408,
                        text: codec_reply_text(408),
                        details: codec_reply_details(408),
                    });
                    this.written = 0;
                }
            }
        }
        std::task::ready!(this.poll_pending(cx))?;
        if this.h2_compression_failed {
            // What the client already sent is read first, so the close is a FIN (as
            // Envoy's, which read it all) rather than a reset that could lose the GOAWAY.
            this.drain_unread(cx);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "HTTP/2 header field over the HPACK limit",
            )));
        }
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "request headers timeout",
        )))
    }
}

#[cfg(test)]
mod tests;
