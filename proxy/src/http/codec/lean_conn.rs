//! The connection loop of the lean HTTP/1.1 downstream server (issue 17): one task
//! reads request heads into one buffer, hands each request to the service, and writes
//! the response head and body through one write buffer, a write per response when the
//! body is in hand. Pipelined requests are answered in order from the same buffer;
//! keep-alive follows hyper's rules (HTTP/1.0, `connection: close` from either side, a
//! close-delimited answer), and so does a client closing while its exchange is in
//! progress (hyper's server without half-close: the exchange is dropped).
//!
//! It serves the common exchange only: a request whose body, if any, arrived with its
//! head. Anything else (a body still on its way, `expect: 100-continue`, upgrades,
//! CONNECT, a head hyper or the framing check must handle, a head over the read limit)
//! ends the loop at that request's first byte with [`LeanEnd::Fallback`]: the caller
//! hands the connection and the unread bytes to hyper's server, which answers as today.
//! Between exchanges the loop waits for the next request for its park delay, then ends
//! with [`LeanEnd::Idle`], so that an idle connection holds no buffer (it parks).

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use http::{HeaderMap, Request, Response};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Sleep};

pub(crate) use super::downstream_body::LeanBody;
use super::framing::{find_head_end, whole_chunked_len};
use super::lean_server::{
    encode_response_head, parse_request_head_reusing, BodyDecoder, BodyKind, BodyLength, Decoded,
    Exchange, HeadParse, RequestHead,
};
use super::{CopyBuffer, FramingLimits, HeaderNameCache};
use crate::http::park_socket::ReadReadiness;
use crate::http::stream::ConnShared;
use crate::http::ResponseBody;

/// How much one read asks for.
const READ_CHUNK: usize = 8192;
/// Response bytes buffered before they are written while the body goes on.
const WRITE_AT: usize = 16 * 1024;
/// A response header map kept for the next request up to this many headers' room.
const RECYCLE_HEADERS_UP_TO: usize = 64;

/// How the loop ended.
#[derive(Debug)]
pub(crate) enum LeanEnd<IO> {
    /// The connection is over (either side closed it; a last response went out).
    Closed,
    /// Between exchanges with nothing read: the caller waits for the client's next
    /// bytes (and may park), then serves again.
    Idle(IO),
    /// The request at the start of `unread` is for hyper's server.
    Fallback { io: IO, unread: BytesMut },
}

/// What waiting for a next request came to.
enum Wait {
    /// Bytes arrived.
    Bytes,
    /// The client closed the idle connection.
    Closed,
    /// The server is closing: an idle connection closes now.
    Shutdown,
    /// Nothing came for the park delay.
    Idle,
}

/// One lean HTTP/1.1 connection.
pub(crate) struct LeanConn<IO> {
    io: IO,
    limits: FramingLimits,
    read_buf: BytesMut,
    write_buf: Vec<u8>,
    /// The server is closing (drain): the next response says `connection: close`.
    closing: bool,
    /// How long the loop waits between exchanges before it ends idle (zero: at once).
    park_after: Duration,
    /// Wakes the wait between exchanges to end idle; set once and moved only when it
    /// fires, so that a busy connection does not re-arm a timer per request.
    park_timer: Option<Pin<Box<Sleep>>>,
    /// `served` when the park timer was set (None: not set).
    park_armed_at: Option<u64>,
    /// Requests served so far.
    served: u64,
    /// The connection's shared state: its `shutdown_asked` closes an idle loop.
    conn: Option<Arc<ConnShared>>,
    /// The last response's header map, emptied: the next request's headers go in it
    /// (one allocation fewer per exchange, as in hyper's server).
    recycled: Option<HeaderMap>,
    /// Where each request head's copy is taken from (no allocation per head).
    copies: CopyBuffer,
    /// The last request heads' header names, reused when spelt the same.
    names: HeaderNameCache,
}

impl<IO: AsyncRead + AsyncWrite + ReadReadiness + Unpin> LeanConn<IO> {
    /// Serves `io`, whose first unread bytes are `unread`.
    pub(crate) fn new(io: IO, limits: FramingLimits, unread: BytesMut) -> Self {
        Self {
            io,
            limits,
            read_buf: unread,
            write_buf: Vec::new(),
            closing: false,
            park_after: Duration::ZERO,
            park_timer: None,
            park_armed_at: None,
            served: 0,
            conn: None,
            recycled: None,
            copies: CopyBuffer::default(),
            names: HeaderNameCache::default(),
        }
    }

    /// Waits up to `delay` between exchanges for a next request before ending idle,
    /// and closes an idle connection once `conn.shutdown_asked` is set.
    pub(crate) fn idling(mut self, delay: Duration, conn: Arc<ConnShared>) -> Self {
        self.park_after = delay;
        self.conn = Some(conn);
        self
    }

    /// Answers the next response with `connection: close`, then closes.
    pub(crate) fn close_after_next(&mut self) {
        self.closing = true;
    }

    /// Serves requests until the connection ends, idles, or needs hyper.
    pub(crate) async fn serve<F, Fut, E>(mut self, mut service: F) -> io::Result<LeanEnd<IO>>
    where
        F: FnMut(Request<LeanBody>) -> Fut,
        Fut: Future<Output = Result<Response<ResponseBody>, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        loop {
            if self.read_buf.is_empty() {
                match self.wait_for_request().await? {
                    Wait::Bytes => {}
                    Wait::Idle => return Ok(LeanEnd::Idle(self.io)),
                    Wait::Closed | Wait::Shutdown => {
                        // As hyper's connection ending: the write side shuts.
                        if let Err(e) = self.io.shutdown().await {
                            tracing::debug!(error = %e, "shutting down an idle connection");
                        }
                        return Ok(LeanEnd::Closed);
                    }
                }
            }
            let parsed = parse_request_head_reusing(
                &self.read_buf,
                &self.limits,
                &mut self.recycled,
                &mut self.copies,
                &mut self.names,
            );
            let (head, len) = match parsed {
                // A head longer than hyper's read buffer: hyper's 431.
                HeadParse::Request { len, .. } if len > self.limits.read_buffer_limit => {
                    return Ok(self.fallback())
                }
                HeadParse::Request { head, len } => (head, len),
                HeadParse::Partial => {
                    // Parsed again only once a read brings what may end the head (as
                    // hyper and the framing check do): a head sent a byte at a time
                    // costs linear time, not quadratic.
                    loop {
                        if self.read_buf.len() >= self.limits.read_buffer_limit {
                            return Ok(self.fallback());
                        }
                        let before = self.read_buf.len();
                        if !self.read_more().await? {
                            // The client closed inside a head: hyper answers nothing.
                            return Ok(LeanEnd::Closed);
                        }
                        let (seen, new) = self.read_buf.split_at(before);
                        if find_head_end(seen, new).is_some() {
                            break;
                        }
                    }
                    continue;
                }
                HeadParse::Refused { .. } | HeadParse::Fallback => return Ok(self.fallback()),
            };
            if head.expect_continue {
                return Ok(self.fallback());
            }
            let Some((body, body_len)) = whole_body(&head, &self.read_buf[len..]) else {
                return Ok(self.fallback());
            };
            self.read_buf.advance(len + body_len);
            self.served += 1;
            let RequestHead {
                request,
                keep_alive,
                accepts_trailers,
                ..
            } = head;
            let (parts, ()) = request.into_parts();
            let method = parts.method.clone();
            let version = parts.version;
            let response = {
                let mut exchange = pin!(service(Request::from_parts(parts, body)));
                std::future::poll_fn(|cx| {
                    if let Poll::Ready(response) = exchange.as_mut().poll(cx) {
                        return Poll::Ready(Ok(response));
                    }
                    poll_client_gone(&mut self.io, &mut self.read_buf, cx)
                })
                .await?
            };
            let response = response.map_err(|e| io::Error::other(e.into()))?;
            let exchange = Exchange {
                method: &method,
                version,
                keep_alive: keep_alive && !self.closing,
            };
            let last = self
                .write_response(response, &exchange, accepts_trailers)
                .await?;
            if last {
                self.io.shutdown().await?;
                return Ok(LeanEnd::Closed);
            }
            if self.write_buf.capacity() > WRITE_AT * 2 {
                self.write_buf = Vec::new();
            }
        }
    }

    fn fallback(self) -> LeanEnd<IO> {
        LeanEnd::Fallback {
            io: self.io,
            unread: self.read_buf,
        }
    }

    /// Reads more request bytes; false when the client closed.
    async fn read_more(&mut self) -> io::Result<bool> {
        self.read_buf.reserve(READ_CHUNK);
        Ok(self.io.read_buf(&mut self.read_buf).await? > 0)
    }

    /// Waits for the client's next request, for the park delay at most.
    async fn wait_for_request(&mut self) -> io::Result<Wait> {
        if self.park_after.is_zero() {
            return Ok(Wait::Idle);
        }
        std::future::poll_fn(|cx| self.poll_wait(cx)).await
    }

    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Wait>> {
        if self
            .conn
            .as_ref()
            .is_some_and(|c| c.shutdown_asked.load(Ordering::Relaxed))
        {
            return Poll::Ready(Ok(Wait::Shutdown));
        }
        // A read that would find nothing is not made (it costs the TLS session's whole
        // read path); the readiness check registers the same wakeup.
        if self.io.poll_may_read(cx).is_ready() {
            self.read_buf.reserve(READ_CHUNK);
            match pin!(self.io.read_buf(&mut self.read_buf)).poll(cx) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Ok(Wait::Closed)),
                Poll::Ready(Ok(_)) => return Poll::Ready(Ok(Wait::Bytes)),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        loop {
            if self.park_armed_at.is_none() {
                let at = Instant::now() + self.park_after;
                match &mut self.park_timer {
                    Some(timer) => timer.as_mut().reset(at),
                    None => self.park_timer = Some(Box::pin(tokio::time::sleep_until(at))),
                }
                self.park_armed_at = Some(self.served);
            }
            let Some(timer) = &mut self.park_timer else {
                return Poll::Pending;
            };
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if self.park_armed_at.take() == Some(self.served) {
                // Nothing kept while idle.
                self.read_buf = BytesMut::new();
                return Poll::Ready(Ok(Wait::Idle));
            }
        }
    }

    /// Writes one response; true when the connection closes after it.
    async fn write_response(
        &mut self,
        response: Response<ResponseBody>,
        exchange: &Exchange<'_>,
        accepts_trailers: bool,
    ) -> io::Result<bool> {
        let (mut parts, mut body) = response.into_parts();
        self.write_buf.clear();
        let length = BodyLength::of(&body);
        let mut encoder = encode_response_head(&mut self.write_buf, &mut parts, length, exchange)
            .map_err(io::Error::other)?;
        if parts.headers.capacity() <= RECYCLE_HEADERS_UP_TO {
            self.recycled = Some(std::mem::take(&mut parts.headers));
        }
        let mut trailers = None;
        if length != BodyLength::None {
            loop {
                let frame = std::future::poll_fn(|cx| {
                    if let Poll::Ready(frame) = Pin::new(&mut body).poll_frame(cx) {
                        return Poll::Ready(Ok(frame));
                    }
                    poll_client_gone(&mut self.io, &mut self.read_buf, cx)
                })
                .await?;
                let Some(frame) = frame else { break };
                let frame = frame.map_err(io::Error::other)?;
                match frame.into_data() {
                    Ok(data) => {
                        if !encoder.is_eof() {
                            encoder.encode_data(&mut self.write_buf, &data);
                        }
                        if self.write_buf.len() >= WRITE_AT {
                            self.io.write_all(&self.write_buf).await?;
                            self.write_buf.clear();
                        }
                    }
                    Err(frame) => trailers = frame.into_trailers().ok(),
                }
                // hyper stops at a body's end rather than polling it once more.
                if body.is_end_stream() {
                    break;
                }
            }
        }
        drop(body);
        let sent_trailers = trailers.as_ref().filter(|_| accepts_trailers);
        encoder
            .encode_end(&mut self.write_buf, sent_trailers)
            .map_err(io::Error::other)?;
        self.io.write_all(&self.write_buf).await?;
        self.io.flush().await?;
        self.write_buf.clear();
        Ok(encoder.is_last())
    }
}

/// hyper's server without half-close: while an exchange is in progress and nothing
/// is buffered, it reads; the client closing ends the connection (the exchange is
/// dropped), and bytes it sent (a pipelined request) wait in the buffer. Never ready
/// with `Ok`: the caller's own future decides when to go on.
fn poll_client_gone<IO: AsyncRead + ReadReadiness + Unpin, T>(
    io: &mut IO,
    read_buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<T>> {
    if !read_buf.is_empty() || io.poll_may_read(cx).is_pending() {
        return Poll::Pending;
    }
    read_buf.reserve(READ_CHUNK);
    match pin!(io.read_buf(read_buf)).poll(cx) {
        Poll::Ready(Ok(0)) => Poll::Ready(Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the client closed the connection during an exchange",
        ))),
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Ready(Ok(_)) | Poll::Pending => Poll::Pending,
    }
}

/// The request body when all of it is in `after_head`, and how many bytes it took.
fn whole_body(head: &RequestHead, after_head: &[u8]) -> Option<(LeanBody, usize)> {
    if head.body == BodyKind::Empty {
        return Some((LeanBody::default(), 0));
    }
    let mut decoder = BodyDecoder::new(head.body);
    let mut data: Option<BytesMut> = None;
    let mut trailers = None;
    let mut at = 0;
    while !decoder.is_ended() {
        let mut used = 0;
        match decoder.decode(&after_head[at..], &mut used).ok()? {
            Decoded::Data(range) => data
                .get_or_insert_with(BytesMut::new)
                .extend_from_slice(&after_head[at + range.start..at + range.end]),
            Decoded::Trailers(map) => trailers = Some(map),
            Decoded::End => {}
            Decoded::NeedMore => return None,
        }
        at += used;
    }
    // The framing check does not see what the loop serves (`DownstreamIo::
    // defer_framing`): a chunked body it would refuse goes to hyper, through the check.
    if head.body == BodyKind::Chunked && whole_chunked_len(after_head) != Some(at) {
        return None;
    }
    let body = LeanBody {
        data: data.map(BytesMut::freeze).filter(|d| !d.is_empty()),
        trailers,
        chunked: head.body == BodyKind::Chunked,
    };
    Some((body, at))
}

#[cfg(test)]
#[path = "lean_conn_tests.rs"]
mod tests;
