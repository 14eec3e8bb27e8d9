//! The parked form of a connection's [`DownstreamIo`] (issue 17): what an idle HTTP/1
//! keep-alive connection keeps of its I/O between exchanges. The wrapper's other parts
//! serve an active connection (the pending reply and its progress, the unread bytes,
//! the framing tracker's head buffer, the refused request, the HTTP/2 frame followers)
//! and are empty between exchanges; they are made again, empty, when the client's next
//! bytes arrive. Those bytes are counted and checked when the wrapper is made again, as
//! the read that brought them would have done at once (the parked set resumes the
//! connection in the same turn, and holds the bytes meanwhile). The codec's reply record
//! is dropped too while parked (no reply was given: the connection would have closed)
//! and the new wrapper's fresh one takes its place. A wrapper this form cannot hold
//! stays whole, with its record.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use crate::http::context::HcmRuntime;
use crate::http::park_socket::ParkSocket;
use crate::http::stream::ConnShared;

use super::framing::RequestFraming;
use super::{framing_limits, Codec, CodecReplyRecord, DownstreamIo, HeadTimer, READ_AHEAD};

/// A parked connection's I/O: the lean form when it can hold the wrapper, else the
/// wrapper itself.
pub(crate) enum IdleIo<IO> {
    Lean(ParkedIo<IO>),
    Whole(Box<DownstreamIo<ParkSocket<IO>>>),
}

/// What a wrapper idle between HTTP/1 exchanges needs kept; the rest is made again from
/// the connection's shared state and config.
pub(crate) struct ParkedIo<IO> {
    socket: ParkSocket<IO>,
    /// The wrapper's stats (its HTTP/1 codec stays counted active while parked).
    stats: Option<Arc<HcmRuntime>>,
    head_timer: Option<Box<HeadTimer>>,
    /// The framing tracker's complete heads (it is between requests).
    framing_heads: u64,
    flushed_streams: u64,
    has_framing: bool,
    has_conn: bool,
    framing_deferred: bool,
    flushed: bool,
}

impl<IO> IdleIo<IO> {
    /// The parked form of `io`, a wrapper whose HTTP/1 connection just parked;
    /// `shared` and `codec_reply` are the connection's (and `io`'s): the record is
    /// taken when the lean form is (see the module doc).
    pub(crate) fn park(
        io: DownstreamIo<ParkSocket<IO>>,
        shared: &Arc<ConnShared>,
        codec_reply: &mut Option<Arc<CodecReplyRecord>>,
    ) -> Self {
        match ParkedIo::from_active(io, shared, codec_reply.as_ref()) {
            Ok(lean) => {
                *codec_reply = None;
                IdleIo::Lean(lean)
            }
            Err(io) => {
                tracing::debug!("a parked connection's I/O kept whole");
                IdleIo::Whole(io)
            }
        }
    }

    /// The socket (a parked connection changes its registration through it).
    pub(crate) fn socket_mut(&mut self) -> &mut ParkSocket<IO> {
        match self {
            IdleIo::Lean(lean) => &mut lean.socket,
            IdleIo::Whole(io) => io.socket_mut(),
        }
    }

    /// The wrapper again, to serve the client's next bytes or to close: `read`, what
    /// [`Self::poll_unpark`] read, is served first; the connection's `codec_reply` is
    /// the wrapper's again.
    pub(crate) fn into_active(
        self,
        shared: &Arc<ConnShared>,
        codec_reply: &mut Option<Arc<CodecReplyRecord>>,
        read: Vec<u8>,
    ) -> DownstreamIo<ParkSocket<IO>> {
        match self {
            IdleIo::Lean(lean) => {
                let io = lean.into_active(shared, read);
                *codec_reply = Some(io.codec_reply.clone());
                io
            }
            IdleIo::Whole(io) => *io,
        }
    }
}

impl<IO: AsyncRead + tokio::io::AsyncWrite + Unpin> IdleIo<IO> {
    /// Waits for the client's next bytes (see [`DownstreamIo::poll_unpark`]): true once
    /// they are there (in `read`, or kept by a whole wrapper), false when the client
    /// closed.
    pub(crate) fn poll_unpark(
        &mut self,
        cx: &mut Context<'_>,
        read: &mut Vec<u8>,
    ) -> Poll<io::Result<bool>> {
        match self {
            IdleIo::Lean(lean) => lean.poll_unpark(cx, read),
            IdleIo::Whole(io) => io.poll_unpark(cx),
        }
    }
}

impl<IO> ParkedIo<IO> {
    /// The lean form of `io`, or `io` back when it holds more than an idle wrapper
    /// does (which the parking checks rule out; kept whole then rather than assumed).
    fn from_active(
        mut io: DownstreamIo<ParkSocket<IO>>,
        shared: &Arc<ConnShared>,
        codec_reply: Option<&Arc<CodecReplyRecord>>,
    ) -> Result<Self, Box<DownstreamIo<ParkSocket<IO>>>> {
        let framing_rebuilt = io.framing.as_ref().is_none_or(|framing| {
            framing.at_request_start() && framing.limits() == framing_limits(&shared.runtime.hcm)
        });
        let idle = io.codec == Codec::Http1
            && io.pending.is_empty()
            && io.written == 0
            && io.replay_at >= io.replay.len()
            && !io.head_timed_out
            && io.rejection.is_none()
            && io.h2.is_none()
            && !io.park_enabled
            && !io.parked
            && !io.h2_settings_seen
            && !io.h2_compression_failed
            && io
                .conn
                .as_ref()
                .is_none_or(|conn| Arc::ptr_eq(conn, shared))
            && codec_reply.is_some_and(|record| Arc::ptr_eq(&io.codec_reply, record))
            && io.codec_reply.is_pristine()
            && framing_rebuilt;
        if !idle {
            return Err(Box::new(io));
        }
        // Taken out of the wrapper, whose drop then counts nothing.
        let stats = io.stats.take();
        Ok(Self {
            socket: std::mem::replace(&mut io.inner, ParkSocket::Gone),
            stats,
            head_timer: io.head_timer.take(),
            framing_heads: io.framing.as_ref().map_or(0, RequestFraming::heads),
            flushed_streams: io.flushed_streams,
            has_framing: io.framing.is_some(),
            has_conn: io.conn.is_some(),
            framing_deferred: io.framing_deferred,
            flushed: io.flushed,
        })
    }

    /// The wrapper again (with a fresh reply record), `read` served first.
    fn into_active(
        mut self,
        shared: &Arc<ConnShared>,
        read: Vec<u8>,
    ) -> DownstreamIo<ParkSocket<IO>> {
        let mut io = DownstreamIo::new(std::mem::replace(&mut self.socket, ParkSocket::Gone));
        // Counted when the connection began, and still active.
        io.stats = self.stats.take();
        io.codec = Codec::Http1;
        io.head_timer = self.head_timer.take();
        if self.has_framing {
            let mut framing = RequestFraming::new(framing_limits(&shared.runtime.hcm));
            framing.heads_served_elsewhere(self.framing_heads);
            io.framing = Some(framing);
        }
        if self.has_conn {
            io.conn = Some(shared.clone());
        }
        io.flushed_streams = self.flushed_streams;
        io.framing_deferred = self.framing_deferred;
        io.flushed = self.flushed;
        if !read.is_empty() {
            io.take_read_ahead(read, &mut ReadBuf::new(&mut []));
        }
        io
    }
}

impl<IO: AsyncRead + Unpin> ParkedIo<IO> {
    /// As [`DownstreamIo::poll_unpark`], the read's bytes in `read` for
    /// [`Self::into_active`].
    fn poll_unpark(&mut self, cx: &mut Context<'_>, read: &mut Vec<u8>) -> Poll<io::Result<bool>> {
        if !read.is_empty() {
            return Poll::Ready(Ok(true));
        }
        *read = std::task::ready!(poll_read_chunk(&mut self.socket, cx, std::mem::take(read)))?;
        Poll::Ready(Ok(!read.is_empty()))
    }
}

impl<IO> Drop for ParkedIo<IO> {
    fn drop(&mut self) {
        // As the wrapper's drop: its HTTP/1 connection is no longer active.
        if let Some(rt) = &self.stats {
            rt.stats.downstream_cx_http1_active.dec();
        }
    }
}

/// Reads up to [`READ_AHEAD`] bytes into `chunk` (its capacity reused): the bytes read.
/// Pending drops the chunk (a connection waiting here may wait long).
pub(super) fn poll_read_chunk<IO: AsyncRead + Unpin>(
    inner: &mut IO,
    cx: &mut Context<'_>,
    mut chunk: Vec<u8>,
) -> Poll<io::Result<Vec<u8>>> {
    chunk.clear();
    chunk.resize(READ_AHEAD, 0);
    let mut ahead = ReadBuf::new(&mut chunk);
    std::task::ready!(Pin::new(inner).poll_read(cx, &mut ahead))?;
    let len = ahead.filled().len();
    chunk.truncate(len);
    Poll::Ready(Ok(chunk))
}
