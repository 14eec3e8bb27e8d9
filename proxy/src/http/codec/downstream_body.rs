//! The request body the connection manager gets from whichever server read the request:
//! hyper's `Incoming` (HTTP/2, and HTTP/1 exchanges the lean loop hands over), the lean
//! loop's [`LeanBody`], which it has whole, or a stream of Baton's own HTTP/2 codec
//! (`lean_h2`). One enum rather than a boxed body, so the common exchange allocates
//! nothing for its body.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::upstream::BoxError;

/// A request body the lean server has whole: nothing, or its bytes and trailers.
/// A chunked one looks as hyper's does (no size known, not ended until read), so that
/// it goes upstream chunked as before.
#[derive(Debug, Default)]
pub struct LeanBody {
    pub(super) data: Option<Bytes>,
    pub(super) trailers: Option<HeaderMap>,
    pub(super) chunked: bool,
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
        !self.chunked && self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.chunked {
            return SizeHint::default();
        }
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// A downstream request body, from whichever server read the request.
#[derive(Debug)]
pub enum DownstreamBody {
    /// Read by hyper's server (HTTP/2, or an HTTP/1 exchange the lean loop handed over).
    Hyper(Incoming),
    /// Read whole with its head by the lean HTTP/1.1 loop (also the empty body of an
    /// HTTP/2 request that ended with its headers).
    Lean(LeanBody),
    /// A stream's body from Baton's own HTTP/2 codec.
    LeanH2(crate::http::lean_h2::body::RequestBody),
}

impl DownstreamBody {
    /// hyper's `body` of a request; for an HTTP/2 request that ended with its headers
    /// (`http2`), an empty body of its own instead: the same end and size as hyper's, but
    /// the exchange's looks at the body's end (three per request) no longer each take
    /// h2's stream lock, and h2's receive half is let go at once (its stream is closed
    /// for receiving already, so that sends nothing).
    pub(crate) fn from_hyper(body: Incoming, http2: bool) -> Self {
        if http2 && body.is_end_stream() {
            return Self::Lean(LeanBody::default());
        }
        Self::Hyper(body)
    }
}

impl From<Incoming> for DownstreamBody {
    fn from(body: Incoming) -> Self {
        Self::Hyper(body)
    }
}

impl Body for DownstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Hyper(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(Into::into))),
            Self::Lean(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(|never| match never {}))),
            Self::LeanH2(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Hyper(body) => body.is_end_stream(),
            Self::Lean(body) => body.is_end_stream(),
            Self::LeanH2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Hyper(body) => body.size_hint(),
            Self::Lean(body) => body.size_hint(),
            Self::LeanH2(body) => body.size_hint(),
        }
    }
}
