//! The connection loop of the lean HTTP/1.1 downstream server (issue 17; not wired in
//! yet, see `lean_server`): one task reads request heads into one buffer, hands each
//! request to the service, and writes the response head and body through one write
//! buffer, a write per response when the body is in hand. Pipelined requests are
//! answered in order from the same buffer; keep-alive follows hyper's rules (HTTP/1.0,
//! `connection: close` from either side, a close-delimited answer).
//!
//! It serves the common exchange only: a request whose body, if any, arrived with its
//! head. Anything else (a body still on its way, `expect: 100-continue`, upgrades,
//! CONNECT, a head hyper or the framing check must handle, a head over the read limit)
//! ends the loop at that request's first byte with [`LeanEnd::Fallback`]: the caller
//! hands the connection and the unread bytes to hyper's server, which answers as today.
//! With nothing buffered between exchanges the loop ends with [`LeanEnd::Idle`], so an
//! idle connection holds no buffer.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::lean_server::{
    encode_response_head, parse_request_head, BodyDecoder, BodyKind, BodyLength, Decoded, Exchange,
    HeadParse, RequestHead,
};
use super::FramingLimits;
use crate::http::ResponseBody;

/// How much one read asks for.
const READ_CHUNK: usize = 8192;
/// Response bytes buffered before they are written while the body goes on.
const WRITE_AT: usize = 16 * 1024;

/// A request body the lean server has whole: nothing, or its bytes and trailers.
#[derive(Debug, Default)]
pub(crate) struct LeanBody {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Body for LeanBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// How the loop ended.
#[derive(Debug)]
pub(crate) enum LeanEnd<IO> {
    /// The connection is over (either side closed it; a last response went out).
    Closed,
    /// Between exchanges with nothing read: the caller waits for the client's next
    /// bytes (and may park), then serves again.
    Idle(IO),
    /// The request at the start of `unread` is for hyper's server.
    Fallback { io: IO, unread: Bytes },
}

/// One lean HTTP/1.1 connection.
pub(crate) struct LeanConn<IO> {
    io: IO,
    limits: FramingLimits,
    read_buf: BytesMut,
    write_buf: Vec<u8>,
    /// The server is closing (drain): the next response says `connection: close`.
    closing: bool,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> LeanConn<IO> {
    /// Serves `io`, whose first unread bytes are `unread`.
    pub(crate) fn new(io: IO, limits: FramingLimits, unread: &[u8]) -> Self {
        Self {
            io,
            limits,
            read_buf: BytesMut::from(unread),
            write_buf: Vec::new(),
            closing: false,
        }
    }

    /// Answers the next response with `connection: close`, then closes.
    pub(crate) fn close_after_next(&mut self) {
        self.closing = true;
    }

    /// Serves requests until the connection ends, idles, or needs hyper.
    pub(crate) async fn serve<F, Fut>(mut self, mut service: F) -> io::Result<LeanEnd<IO>>
    where
        F: FnMut(Request<LeanBody>) -> Fut,
        Fut: Future<Output = Response<ResponseBody>>,
    {
        loop {
            if self.read_buf.is_empty() {
                return Ok(LeanEnd::Idle(self.io));
            }
            let (head, len) = match parse_request_head(&self.read_buf, &self.limits) {
                HeadParse::Request { head, len } => (head, len),
                HeadParse::Partial => {
                    if self.read_buf.len() >= self.limits.read_buffer_limit {
                        return Ok(self.fallback());
                    }
                    if !self.read_more().await? {
                        // The client closed inside a head: hyper answers nothing either.
                        return Ok(LeanEnd::Closed);
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
            let RequestHead {
                request,
                keep_alive,
                accepts_trailers,
                ..
            } = head;
            let (parts, ()) = request.into_parts();
            let method = parts.method.clone();
            let version = parts.version;
            let response = service(Request::from_parts(parts, body)).await;
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
            if self.read_buf.is_empty() {
                // Nothing kept while idle.
                self.read_buf = BytesMut::new();
                if self.write_buf.capacity() > WRITE_AT * 2 {
                    self.write_buf = Vec::new();
                }
            }
        }
    }

    fn fallback(self) -> LeanEnd<IO> {
        LeanEnd::Fallback {
            io: self.io,
            unread: self.read_buf.freeze(),
        }
    }

    /// Reads more request bytes; false when the client closed.
    async fn read_more(&mut self) -> io::Result<bool> {
        self.read_buf.reserve(READ_CHUNK);
        Ok(self.io.read_buf(&mut self.read_buf).await? > 0)
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
        let mut trailers = None;
        if length != BodyLength::None {
            while let Some(frame) = body.frame().await {
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
            }
        }
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
    let body = LeanBody {
        data: data.map(BytesMut::freeze).filter(|d| !d.is_empty()),
        trailers,
    };
    Some((body, at))
}

#[cfg(test)]
#[path = "lean_conn_tests.rs"]
mod tests;
