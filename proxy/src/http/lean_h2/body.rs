//! The request body of one HTTP/2 stream served by Baton's own codec: the socket driver
//! pushes what the state machine reports for the stream (DATA, trailers, the end, a
//! reset, the connection's end) into a [`BodySender`]; the connection manager reads the
//! other end, a [`RequestBody`], as any `http_body::Body`.
//!
//! Flow control follows consumption: the bytes the reader has taken are counted and the
//! driver takes the count ([`BodySender::take_consumed`]) to return that much window to
//! the client (WINDOW_UPDATE). A slow upstream therefore holds back the client instead of
//! the proxy buffering without bound: at most one stream window is ever buffered here.
//!
//! A request that ends with its headers (most GETs) needs none of this: the driver gives
//! it an empty body of its own and allocates nothing. Both ends of a channel live in the
//! connection's task (its streams are polled there); the lock is never contended and is
//! there only because the futures must be `Send`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use super::frame::ErrorCode;

/// Why a request body ended before its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The client reset the stream (RST_STREAM with this code).
    #[error("the client reset the stream ({0:?})")]
    Reset(ErrorCode),
    /// The connection ended (closed, or a connection error) before the body did.
    #[error("the connection ended before the request body")]
    ConnectionEnded,
    /// The DATA received disagree with the request's `content-length` (RFC 9113 §8.1.1).
    #[error("request body length differs from content-length")]
    LengthMismatch,
}

/// What the driver has pushed and the reader has not taken yet.
#[derive(Debug, Default)]
struct Queue {
    data: VecDeque<Bytes>,
    /// Bytes in `data`.
    buffered: usize,
    trailers: Option<HeaderMap>,
    /// The client ended the stream (END_STREAM on DATA or trailers).
    ended: bool,
    /// The body ended in error; reported once the data before it is read.
    error: Option<BodyError>,
    /// Bytes the reader took since the driver last asked.
    consumed: usize,
    /// The reader waiting for more.
    waker: Option<Waker>,
    /// The driver, to be woken when the reader takes bytes it has not yet counted
    /// (the reader may run in another task, e.g. an HTTP/2 upstream's connection).
    driver: Option<Waker>,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while the lock is held leaves a queue that is still consistent (every
        // change is a single push or pop), so a poisoned lock is taken over.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A body channel for a stream whose request did not end with its headers.
/// `content_length`: the request's declared length, for the reader's size hint.
pub fn channel(content_length: Option<u64>) -> (BodySender, RequestBody) {
    let shared = Arc::new(Shared::default());
    (
        BodySender {
            shared: Arc::clone(&shared),
        },
        RequestBody {
            shared: Some(shared),
            content_length,
            done: false,
        },
    )
}

/// The driver's end of a stream's request body.
#[derive(Debug)]
pub struct BodySender {
    shared: Arc<Shared>,
}

impl BodySender {
    /// DATA for the stream (`end`: it carried END_STREAM). Empty DATA without END_STREAM
    /// is not queued (it carries nothing, and a reader woken for it would find nothing).
    pub fn push_data(&self, data: Bytes, end: bool) {
        let mut q = self.shared.lock();
        if q.ended || q.error.is_some() {
            return;
        }
        if !data.is_empty() {
            q.buffered += data.len();
            q.data.push_back(data);
        } else if !end {
            return;
        }
        q.ended = end;
        wake(q);
    }

    /// The request's trailers (they end the stream).
    pub fn push_trailers(&self, trailers: HeaderMap) {
        let mut q = self.shared.lock();
        if q.ended || q.error.is_some() {
            return;
        }
        q.trailers = Some(trailers);
        q.ended = true;
        wake(q);
    }

    /// The body ends in error (a reset, the connection's end, a length mismatch). Data
    /// already queued is still read first. Nothing changes once the body has ended.
    pub fn fail(&self, error: BodyError) {
        let mut q = self.shared.lock();
        if q.ended || q.error.is_some() {
            return;
        }
        q.error = Some(error);
        wake(q);
    }

    /// Bytes the reader took since the last call: window to give back to the client.
    pub fn take_consumed(&self) -> usize {
        std::mem::take(&mut self.shared.lock().consumed)
    }

    /// [`Self::take_consumed`], and `driver` is woken when the reader next takes bytes.
    pub fn take_consumed_and_watch(&self, driver: &Waker) -> usize {
        let mut q = self.shared.lock();
        if !q.driver.as_ref().is_some_and(|w| w.will_wake(driver)) {
            q.driver = Some(driver.clone());
        }
        std::mem::take(&mut q.consumed)
    }

    /// Bytes pushed and not yet read.
    pub fn buffered(&self) -> usize {
        self.shared.lock().buffered
    }

    /// Whether the reader is gone (the exchange ended without reading the whole body):
    /// the driver stops queueing and may reset the stream as Envoy does.
    pub fn reader_gone(&self) -> bool {
        Arc::strong_count(&self.shared) == 1
    }
}

impl Drop for BodySender {
    /// A sender dropped before the body ended (the driver lost the stream, the
    /// connection went): the reader sees the connection's end, never a hang.
    fn drop(&mut self) {
        self.fail(BodyError::ConnectionEnded);
    }
}

fn wake(mut q: MutexGuard<'_, Queue>) {
    let waker = q.waker.take();
    drop(q);
    if let Some(w) = waker {
        w.wake();
    }
}

/// The connection manager's end: the request body as the client sends it.
#[derive(Debug)]
pub struct RequestBody {
    /// `None`: a request that ended with its headers (no channel at all).
    shared: Option<Arc<Shared>>,
    content_length: Option<u64>,
    /// The end (or an error) was returned.
    done: bool,
}

impl RequestBody {
    /// The body of a request that ended with its headers.
    pub fn empty() -> Self {
        Self {
            shared: None,
            content_length: Some(0),
            done: true,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let Some(shared) = self.shared.as_ref() else {
            return Poll::Ready(None);
        };
        let mut q = shared.lock();
        if let Some(data) = q.data.pop_front() {
            q.buffered -= data.len();
            let first = q.consumed == 0;
            q.consumed += data.len();
            // The driver returns the window: woken once per batch it has not counted.
            let driver = if first { q.driver.take() } else { None };
            drop(q);
            if let Some(driver) = driver {
                driver.wake();
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if let Some(trailers) = q.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        if q.ended {
            drop(q);
            self.done = true;
            return Poll::Ready(None);
        }
        if let Some(error) = q.error.clone() {
            drop(q);
            self.done = true;
            return Poll::Ready(Some(Err(error)));
        }
        if !q.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            q.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Only a request that ended with its headers, or a body read to its end: one whose
    /// END_STREAM came in a later frame is framed upstream as a body (chunked, or by its
    /// content-length) even when it turned out empty, as Envoy decides at the headers.
    fn is_end_stream(&self) -> bool {
        self.done || self.shared.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.content_length {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use super::*;

    async fn next(body: &mut RequestBody) -> Option<Result<Frame<Bytes>, BodyError>> {
        poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
    }

    #[tokio::test]
    async fn data_then_trailers_then_end_and_consumption_counted() {
        let (tx, mut body) = channel(None);
        tx.push_data(Bytes::from_static(b"hello "), false);
        tx.push_data(Bytes::from_static(b"world"), false);
        assert_eq!(tx.buffered(), 11);
        assert_eq!(tx.take_consumed(), 0);
        let first = next(&mut body).await.expect("frame").expect("data");
        assert_eq!(first.into_data().expect("data"), "hello ");
        assert_eq!(tx.take_consumed(), 6);
        let mut trailers = HeaderMap::new();
        trailers.insert("x-t", "1".parse().expect("value"));
        tx.push_trailers(trailers);
        assert!(!body.is_end_stream());
        let second = next(&mut body).await.expect("frame").expect("data");
        assert_eq!(second.into_data().expect("data"), "world");
        let t = next(&mut body).await.expect("frame").expect("trailers");
        assert_eq!(t.into_trailers().expect("trailers")["x-t"], "1");
        // Ended only once read to its end (see `is_end_stream`).
        assert!(!body.is_end_stream());
        assert!(next(&mut body).await.is_none());
        assert!(body.is_end_stream());
        assert_eq!(tx.take_consumed(), 5);
        assert_eq!(tx.buffered(), 0);
    }

    #[tokio::test]
    async fn a_reader_waits_and_is_woken_by_the_end() {
        let (tx, mut body) = channel(Some(3));
        assert_eq!(body.size_hint().exact(), Some(3));
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(frame) = next(&mut body).await {
                got.extend_from_slice(&frame.expect("no error").into_data().expect("data"));
            }
            got
        });
        tokio::task::yield_now().await;
        tx.push_data(Bytes::from_static(b"abc"), false);
        tokio::task::yield_now().await;
        // Empty DATA with END_STREAM ends the body.
        tx.push_data(Bytes::new(), true);
        assert_eq!(reader.await.expect("reader"), b"abc");
    }

    #[tokio::test]
    async fn a_reset_comes_after_the_data_already_received_and_ends_the_body() {
        let (tx, mut body) = channel(None);
        tx.push_data(Bytes::from_static(b"part"), false);
        tx.fail(BodyError::Reset(ErrorCode::CANCEL));
        // Nothing after the error is taken.
        tx.push_data(Bytes::from_static(b"late"), true);
        assert!(next(&mut body).await.expect("frame").is_ok());
        assert_eq!(
            next(&mut body).await.expect("frame").expect_err("reset"),
            BodyError::Reset(ErrorCode::CANCEL)
        );
        assert!(next(&mut body).await.is_none());
    }

    #[tokio::test]
    async fn a_dropped_sender_ends_the_body_with_the_connection() {
        let (tx, mut body) = channel(None);
        drop(tx);
        assert_eq!(
            next(&mut body).await.expect("frame").expect_err("ended"),
            BodyError::ConnectionEnded
        );
        // An ended body is not failed by the sender's drop.
        let (tx, mut body) = channel(None);
        tx.push_data(Bytes::from_static(b"x"), true);
        drop(tx);
        assert!(next(&mut body).await.expect("frame").is_ok());
        assert!(next(&mut body).await.is_none());
    }

    #[tokio::test]
    async fn the_driver_sees_a_reader_that_went_away() {
        let (tx, body) = channel(None);
        assert!(!tx.reader_gone());
        drop(body);
        assert!(tx.reader_gone());
    }

    #[tokio::test]
    async fn an_empty_body_has_ended_and_allocates_no_channel() {
        let mut body = RequestBody::empty();
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
        assert!(next(&mut body).await.is_none());
    }
}
