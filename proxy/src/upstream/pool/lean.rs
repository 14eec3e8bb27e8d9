//! The lean HTTP/1.1 upstream exchange: a pool connection that is just the socket and
//! two buffers. A request head is serialised into the connection's write buffer and
//! written at once; the response head is read into its read buffer and parsed once
//! (`lean_codec`); the response body is decoded straight from that buffer by whoever
//! reads it, and the connection goes back to the pool when the body ends. No codec
//! task, no dispatcher, no channel: the request's own task does all of it.
//!
//! It carries HTTP/1.1 requests without a body or with a content-length one (the common
//! cases); the HTTP/1 pool keeps hyper's client for bodies to be sent chunked, HTTP/1.0
//! requests, upgrades and CONNECT (`lean_codec::handles`), converting an idle connection
//! between the two forms when the other one needs it.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::http1::{self, Parked};
use super::lean_codec::{self, BodyDecoder, Decoded, FramingError};
use crate::http::codec::{CopyBuffer, HeaderNameCache};
use crate::upstream::host::OpenConnection;
use crate::upstream::stream::UpstreamStream;
use crate::upstream::{BoxError, RequestBody};

/// First size of a connection's read buffer; it grows (up to the head limit) only for a
/// response head that does not fit.
const READ_BUFFER: usize = 16 * 1024;

/// One HTTP/1.1 upstream connection in its lean form.
pub(super) struct LeanConnection {
    stream: UpstreamStream,
    /// Keeps the connection counted (host and cluster `cx_active`) while it is open.
    open: Option<OpenConnection>,
    /// The waker it is watched under while parked in the pool.
    pub(super) parked: Option<Parked>,
    /// Read buffer (zeroed once); the unread bytes are `read[start..end]`.
    read: Vec<u8>,
    start: usize,
    end: usize,
    /// The request head being written.
    write: Vec<u8>,
    /// The last request's header map, emptied once its head was sent: the next
    /// response's headers go in it (an allocation fewer per exchange).
    spare_headers: Option<http::HeaderMap>,
    /// Where response heads' and body chunks' copies are taken from (no allocation per
    /// exchange once the last one's copies are gone).
    copies: CopyBuffer,
    /// The last response heads' header names, reused when spelt the same.
    names: HeaderNameCache,
    /// A response head larger than this is a protocol error.
    head_limit: usize,
    /// Bytes the last response head took on the wire (skipped 1xx heads included).
    pub(super) last_head_len: usize,
    max_headers: usize,
    closed: bool,
}

/// A response head: the response, its body's decoder, and whether both sides allow
/// another request on the connection.
pub(super) type Head = (Response<()>, BodyDecoder, bool);

/// Why an exchange failed before the response head.
pub(super) enum ExchangeError {
    /// The request could not be written on a reused connection: it never left, so
    /// another connection may carry it.
    Unsent,
    /// The connection failed or closed before the response head.
    Reset(std::io::Error),
    /// The response head broke HTTP.
    Protocol(FramingError),
}

impl LeanConnection {
    /// The connection's local address (IP hosts).
    pub(super) fn local(&self) -> Option<std::net::SocketAddr> {
        self.open.as_ref().and_then(OpenConnection::local)
    }

    pub(super) fn new(
        stream: UpstreamStream,
        open: Option<OpenConnection>,
        parked: Option<Parked>,
        head_limit: usize,
        max_headers: usize,
    ) -> Box<Self> {
        Box::new(Self {
            stream,
            open,
            parked,
            read: vec![0; READ_BUFFER.min(head_limit.max(1024))],
            start: 0,
            end: 0,
            write: Vec::new(),
            spare_headers: None,
            copies: CopyBuffer::default(),
            names: HeaderNameCache::default(),
            head_limit,
            last_head_len: 0,
            max_headers,
            closed: false,
        })
    }

    /// See [`OpenConnection::set_exchange_open`].
    pub(super) fn set_exchange_open(&mut self, open: bool) {
        if let Some(guard) = &mut self.open {
            guard.set_exchange_open(open);
        }
    }

    /// Open (not seen closed).
    pub(super) fn is_open(&self) -> bool {
        !self.closed
    }

    /// The socket and the counting guard, for hyper's client to take over; None when
    /// bytes are buffered (they would belong to no request).
    pub(super) fn into_stream(self) -> Option<(UpstreamStream, Option<OpenConnection>)> {
        let this = self;
        if this.closed || this.start != this.end {
            return None;
        }
        Some((this.stream, this.open))
    }

    /// Checks an idle connection: false once the upstream closed it or sent bytes no
    /// request asked for (it is then closed). `cx` is woken when that may change.
    pub(super) fn poll_idle(&mut self, cx: &mut Context<'_>) -> bool {
        if self.closed {
            return false;
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        match self.poll_fill(cx) {
            Poll::Pending => true,
            Poll::Ready(_) => {
                self.mark_closed();
                false
            }
        }
    }

    /// [`Self::poll_idle`] under the waker of its parking (a no-op waker without one).
    pub(super) fn poll_idle_parked(&mut self) -> bool {
        let waker = self
            .parked
            .as_ref()
            .map_or(Waker::noop(), |p| p.waker())
            .clone();
        self.poll_idle(&mut Context::from_waker(&waker))
    }

    fn mark_closed(&mut self) {
        self.closed = true;
        self.open = None;
    }

    /// Closes the connection (a TLS close_notify or FIN when it can go at once).
    pub(super) fn close(mut self) {
        if !self.closed {
            let _ =
                Pin::new(&mut self.stream).poll_shutdown(&mut Context::from_waker(Waker::noop()));
        }
    }

    /// Reads what the socket has into the free end of the buffer: the bytes read (0 at
    /// the upstream's close).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.end == self.read.len() {
            if self.start > 0 {
                self.read.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                // Only a head that does not fit yet gets here.
                let grown = (self.read.len() * 2).min(self.head_limit.max(self.read.len() + 1));
                self.read.resize(grown, 0);
            }
        }
        let mut buf = ReadBuf::new(&mut self.read[self.end..]);
        match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len();
                self.end += n;
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Writes `req` (its head, then its content-length body as it arrives) and reads
    /// the response head. A head that arrives before the body is all sent ends the
    /// sending; the connection then is not reused.
    pub(super) async fn exchange(
        &mut self,
        req: &mut Request<RequestBody>,
        reused: bool,
    ) -> Result<Head, ExchangeError> {
        let facts = lean_codec::write_request_head(&mut self.write, req);
        let head_request = req.method() == http::Method::HEAD;
        let close_asked = facts.close_asked;
        let mut out = Outgoing {
            written: 0,
            chunk: Bytes::new(),
            body_taken: false,
            body_done: req.body().is_end_stream(),
            body_sent: 0,
            declared: facts.declared_length.unwrap_or(0),
            flushed: false,
        };
        // The head is in the write buffer: the map is spare once the request is sent
        // (it goes back into the request if the request never left).
        let mut sent_headers = Some(std::mem::take(req.headers_mut()));
        let body = req.body_mut();
        let exchanged = std::future::poll_fn(|cx| {
            if !out.flushed {
                if let Poll::Ready(Err(e)) = self.poll_send(cx, &mut out, body) {
                    self.mark_closed();
                    let unsent = reused && out.written == 0 && !out.body_taken;
                    return Poll::Ready(Err(if unsent { ExchangeError::Unsent } else { e }));
                }
            }
            if out.written > 0 && self.spare_headers.is_none() {
                if let Some(mut spare) = sent_headers.take() {
                    spare.clear();
                    self.spare_headers = Some(spare);
                }
            }
            let head = std::task::ready!(self.poll_head(cx, head_request));
            Poll::Ready(head.map(|(response, decoder, keep_alive)| {
                // Cut short (the upstream answered early): the connection's framing is
                // lost, it is not reused.
                let keep_alive = keep_alive && !close_asked && out.flushed;
                (response, decoder, keep_alive)
            }))
        })
        .await;
        if let (Err(ExchangeError::Unsent), Some(headers)) = (&exchanged, sent_headers) {
            *req.headers_mut() = headers;
        }
        exchanged
    }

    /// Moves the request forward: the head (with a first small body frame in the same
    /// write), then the body's frames, then a flush.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Outgoing,
        body: &mut RequestBody,
    ) -> Poll<Result<(), ExchangeError>> {
        if out.written == 0 && !out.body_done && !out.body_taken {
            // One write for the head and a body that is already here and small.
            if let Poll::Ready(frame) = Pin::new(&mut *body).poll_frame(cx) {
                out.body_taken = true;
                match take_frame(out, frame)? {
                    Some(data) if data.len() <= COALESCE => self.write.extend_from_slice(&data),
                    Some(data) => out.chunk = data,
                    None => {}
                }
            }
        }
        loop {
            if out.written < self.write.len() {
                let n = std::task::ready!(ready_io(
                    Pin::new(&mut self.stream).poll_write(cx, &self.write[out.written..])
                ))?;
                out.written += n;
                continue;
            }
            if !out.chunk.is_empty() {
                let n = std::task::ready!(ready_io(
                    Pin::new(&mut self.stream).poll_write(cx, &out.chunk)
                ))?;
                bytes::Buf::advance(&mut out.chunk, n);
                continue;
            }
            if !out.body_done {
                let frame = std::task::ready!(Pin::new(&mut *body).poll_frame(cx));
                out.body_taken = true;
                if let Some(data) = take_frame(out, frame)? {
                    out.chunk = data;
                }
                continue;
            }
            std::task::ready!(Pin::new(&mut self.stream).poll_flush(cx))
                .map_err(ExchangeError::Reset)?;
            out.flushed = true;
            return Poll::Ready(Ok(()));
        }
    }

    fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        head_request: bool,
    ) -> Poll<Result<Head, ExchangeError>> {
        loop {
            if self.end > self.start {
                let parsed = lean_codec::parse_response_head_into(
                    &self.read[self.start..self.end],
                    self.max_headers,
                    head_request,
                    &mut self.spare_headers,
                    &mut self.copies,
                    &mut self.names,
                );
                match parsed {
                    Ok(Some(head)) => {
                        self.start += head.consumed;
                        self.last_head_len = head.consumed;
                        let decoder = BodyDecoder::new(head.body);
                        return Poll::Ready(Ok((head.response, decoder, head.keep_alive)));
                    }
                    Ok(None) if self.end - self.start >= self.head_limit => {
                        self.mark_closed();
                        return Poll::Ready(Err(ExchangeError::Protocol(
                            FramingError::HeadTooLarge,
                        )));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.mark_closed();
                        return Poll::Ready(Err(ExchangeError::Protocol(e)));
                    }
                }
            }
            match self.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    self.mark_closed();
                    let eof = std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "connection closed before the response head",
                    );
                    return Poll::Ready(Err(ExchangeError::Reset(eof)));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    self.mark_closed();
                    return Poll::Ready(Err(ExchangeError::Reset(e)));
                }
            }
        }
    }
}

/// Body frames up to this size go out in the head's write.
const COALESCE: usize = 16 * 1024;

/// Where sending a request stands.
struct Outgoing {
    /// Bytes of the write buffer (head) written.
    written: usize,
    /// Body bytes taken from the request and not written yet.
    chunk: Bytes,
    /// A body frame was taken (the request can no longer go elsewhere).
    body_taken: bool,
    body_done: bool,
    body_sent: u64,
    /// The request's content-length.
    declared: u64,
    /// All of it is written and flushed.
    flushed: bool,
}

/// The data of a request body frame (trailers have no place in a content-length
/// body); checks the body against its content-length.
fn take_frame(
    out: &mut Outgoing,
    frame: Option<Result<Frame<Bytes>, BoxError>>,
) -> Result<Option<Bytes>, ExchangeError> {
    let data = match frame {
        None => {
            out.body_done = true;
            if out.body_sent != out.declared {
                return Err(body_error("request body shorter than its content-length"));
            }
            return Ok(None);
        }
        Some(Err(e)) => return Err(ExchangeError::Reset(std::io::Error::other(e))),
        Some(Ok(frame)) => match frame.into_data() {
            Ok(data) => data,
            Err(_) => return Ok(None),
        },
    };
    out.body_sent += data.len() as u64;
    if out.body_sent > out.declared {
        return Err(body_error("request body longer than its content-length"));
    }
    Ok(Some(data))
}

fn body_error(what: &'static str) -> ExchangeError {
    ExchangeError::Reset(std::io::Error::other(what))
}

/// A write's outcome: the bytes written (a zero-byte write is a closed connection).
fn ready_io(polled: Poll<std::io::Result<usize>>) -> Poll<Result<usize, ExchangeError>> {
    match polled {
        Poll::Pending => Poll::Pending,
        Poll::Ready(Ok(0)) => Poll::Ready(Err(ExchangeError::Reset(
            std::io::ErrorKind::WriteZero.into(),
        ))),
        Poll::Ready(Ok(n)) => Poll::Ready(Ok(n)),
        Poll::Ready(Err(e)) => Poll::Ready(Err(ExchangeError::Reset(e))),
    }
}

/// A lean connection out on one request until its response body ends.
pub(super) struct LeanLease {
    pub(super) conn: Box<LeanConnection>,
    pub(super) decoder: BodyDecoder,
    /// Both sides allow another request on the connection.
    pub(super) keep_alive: bool,
    pub(super) checkin: http1::Checkin,
}

impl LeanLease {
    /// The body is over (or abandoned): back to the pool when the connection can carry
    /// another request, closed otherwise.
    pub(super) fn finish(self) {
        let LeanLease {
            conn,
            decoder,
            keep_alive,
            checkin,
        } = self;
        let clean = conn.is_open() && conn.start == conn.end;
        let ready = keep_alive && clean && decoder.is_ended() && decoder.reusable();
        checkin.finish(
            http1::PooledConnection::Lean(conn),
            ready,
            decoder.is_ended(),
        );
    }
}

/// The body of a response read over a lean connection.
pub(super) struct LeanBody {
    /// None once the body ended (the connection went back or closed).
    lease: Option<Box<LeanLease>>,
}

impl LeanBody {
    /// The body of `lease`'s response; a body that is already over gives the connection
    /// back at once.
    pub(super) fn new(lease: Box<LeanLease>) -> Self {
        if lease.decoder.is_ended() {
            (*lease).finish();
            return Self { lease: None };
        }
        Self { lease: Some(lease) }
    }

    pub(super) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some(lease) = self.lease.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = poll_body(lease, cx);
        let ended = match &polled {
            Poll::Ready(Some(Ok(frame))) => !frame.is_data() || lease.decoder.is_ended(),
            Poll::Ready(_) => true,
            Poll::Pending => false,
        };
        if ended {
            if let Some(lease) = self.lease.take() {
                (*lease).finish();
            }
        }
        polled
    }

    pub(super) fn is_end_stream(&self) -> bool {
        self.lease.as_ref().is_none_or(|l| l.decoder.is_ended())
    }

    pub(super) fn size_hint(&self) -> SizeHint {
        match &self.lease {
            None => SizeHint::with_exact(0),
            Some(lease) => lease
                .decoder
                .exact_remaining()
                .map_or_else(SizeHint::default, SizeHint::with_exact),
        }
    }
}

fn poll_body(
    lease: &mut LeanLease,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    let conn = &mut lease.conn;
    loop {
        let mut used = 0;
        let decoded = lease
            .decoder
            .decode(&conn.read[conn.start..conn.end], &mut used);
        let base = conn.start;
        conn.start += used;
        match decoded {
            Ok(Decoded::Data(range)) => {
                let data = conn
                    .copies
                    .copy(&conn.read[base + range.start..base + range.end]);
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            Ok(Decoded::Trailers(trailers)) => {
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
            Ok(Decoded::End) => return Poll::Ready(None),
            Ok(Decoded::NeedMore) => {}
            Err(e) => {
                conn.mark_closed();
                return Poll::Ready(Some(Err(e.into())));
            }
        }
        if conn.start == conn.end {
            conn.start = 0;
            conn.end = 0;
        }
        match conn.poll_fill(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(0)) => {
                conn.mark_closed();
                return match lease.decoder.on_eof() {
                    Ok(()) => Poll::Ready(None),
                    Err(e) => Poll::Ready(Some(Err(e.into()))),
                };
            }
            Poll::Ready(Ok(_)) => {}
            Poll::Ready(Err(e)) => {
                conn.mark_closed();
                return Poll::Ready(Some(Err(e.into())));
            }
        }
    }
}

impl Drop for LeanBody {
    fn drop(&mut self) {
        // Abandoned before its end: the connection closes (its rest is unread).
        if let Some(lease) = self.lease.take() {
            (*lease).finish();
        }
    }
}
