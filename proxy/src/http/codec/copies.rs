//! Owned copies of wire bytes (a parsed head, a body chunk) taken from one reused
//! buffer instead of one allocation each (issues 16 and 17).
//!
//! A head's header values and target are slices of its copy, so a copy must be shared
//! (`Bytes`). `Bytes::copy_from_slice` allocates the copy, and the first slice of it
//! allocates again (the vector is promoted to a shared buffer). Here every copy is a
//! split of one shared buffer: once the copies of an earlier exchange are gone, the
//! next copy reuses the same memory with no allocation at all; while some are still
//! held (a value kept beyond its exchange), the next copy starts a new buffer and the
//! old one lives as long as they do.

use bytes::{Bytes, BytesMut};

/// A fresh buffer's room: a usual head and a small body chunk fit together.
const BUFFER_ROOM: usize = 2048;

/// Copies longer than this are allocated alone (a large body chunk would otherwise
/// pin a buffer sized for it).
const LARGEST_SHARED_COPY: usize = BUFFER_ROOM;

/// One connection's buffer for copies of what it read.
#[derive(Debug, Default)]
pub(crate) struct CopyBuffer {
    buf: BytesMut,
}

impl CopyBuffer {
    /// `data` as owned bytes that can be sliced without allocating.
    pub(crate) fn copy(&mut self, data: &[u8]) -> Bytes {
        if data.len() > LARGEST_SHARED_COPY {
            return Bytes::copy_from_slice(data);
        }
        // Room left after the last copy, or the whole buffer again once no copy of it
        // is held any more; otherwise a new buffer (the old one goes with its copies).
        if !self.buf.try_reclaim(data.len()) {
            self.buf = BytesMut::with_capacity(BUFFER_ROOM);
        }
        self.buf.extend_from_slice(data);
        self.buf.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_equal_to_their_source_and_independent() {
        let mut copies = CopyBuffer::default();
        let a = copies.copy(b"GET / HTTP/1.1\r\n\r\n");
        let b = copies.copy(b"body");
        assert_eq!(&a[..], b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(&b[..], b"body");
        assert_eq!(&a.slice(4..5)[..], b"/");
    }

    #[test]
    fn memory_is_reused_once_earlier_copies_are_dropped() {
        let mut copies = CopyBuffer::default();
        let first = copies.copy(&[b'a'; 1500]);
        let at = first.as_ptr();
        drop(first);
        // No room after the first copy, but it is gone: the buffer's start again.
        let second = copies.copy(&[b'b'; 1500]);
        assert_eq!(second.as_ptr(), at);
        assert!(second.iter().all(|&b| b == b'b'));
    }

    #[test]
    fn held_copies_are_never_overwritten() {
        let mut copies = CopyBuffer::default();
        let held = copies.copy(&[b'a'; 1500]);
        // Does not fit beside the held copy: a new buffer.
        let next = copies.copy(&[b'b'; 1000]);
        assert!(held.iter().all(|&b| b == b'a'));
        assert!(next.iter().all(|&b| b == b'b'));
        let large = copies.copy(&[b'c'; LARGEST_SHARED_COPY + 1]);
        assert_eq!(large.len(), LARGEST_SHARED_COPY + 1);
        assert!(held.iter().all(|&b| b == b'a'));
    }
}
