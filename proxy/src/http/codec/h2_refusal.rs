//! `max_concurrent_streams` as Envoy 1.40 enforces it: a client that opens a stream over
//! the limit loses the whole connection (no GOAWAY, no answer to the streams in flight),
//! where h2 refuses only that stream (RST_STREAM REFUSED_STREAM). The connection's
//! outbound HTTP/2 frames are followed; h2's refusal of a stream it never answered ends
//! the connection before the RST_STREAM is written. (h2 also refuses, after its 431, a
//! stream whose header block is too large: that stream got HEADERS just before and is
//! left alone.)

/// RST_STREAM frame type.
const RST_STREAM: u8 = 0x3;
/// HEADERS frame type.
const HEADERS: u8 = 0x1;
/// REFUSED_STREAM error code.
const REFUSED_STREAM: u32 = 0x7;
/// Frame header length.
const HEADER_LEN: usize = 9;

/// Follows the server's frames across writes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct OutboundFrames {
    /// Bytes of the current frame's header seen so far.
    header: [u8; HEADER_LEN],
    header_len: usize,
    /// Payload bytes of the current frame still to come.
    payload_left: usize,
    /// Stream of the last HEADERS frame written.
    last_headers_stream: u32,
    /// RST_STREAM frames written (`http2.tx_reset`).
    pub(super) resets: u64,
}

/// What may be written of one buffer, from a single pass over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct WritePlan {
    /// Bytes that may be written now.
    pub(super) len: usize,
    /// The bytes at `len` are a refusal the connection must end before.
    pub(super) refusal: bool,
    /// The follower's state once all `len` bytes are written.
    after: OutboundFrames,
}

impl OutboundFrames {
    /// One pass over `buf`: all of it may be written, or the bytes before an
    /// RST_STREAM REFUSED_STREAM of a stream that got no HEADERS. A frame header that
    /// starts near the end and could still be such a refusal is held back (when
    /// something precedes it) so it is judged whole on the next write; h2 hands over
    /// whole frames, so that only happens after a short write.
    pub(super) fn plan(&self, buf: &[u8]) -> WritePlan {
        let mut state = *self;
        let mut at = 0;
        while at < buf.len() {
            if state.payload_left == 0 && state.header_len == 0 {
                let rest = &buf[at..];
                if state.is_refusal(rest) {
                    return WritePlan {
                        len: at,
                        refusal: true,
                        after: state,
                    };
                }
                let maybe_refusal = rest.len() < 4 || rest[3] == RST_STREAM;
                if at > 0 && rest.len() < HEADER_LEN + 4 && maybe_refusal {
                    return WritePlan {
                        len: at,
                        refusal: false,
                        after: state,
                    };
                }
            }
            at += state.step(&buf[at..]);
        }
        WritePlan {
            len: buf.len(),
            refusal: false,
            after: state,
        }
    }

    /// Records what was written of a planned buffer: the planned state when all of it
    /// went out, otherwise a walk over the `written` prefix (short writes only).
    pub(super) fn commit(&mut self, plan: &WritePlan, written: &[u8]) {
        if written.len() == plan.len {
            *self = plan.after;
            return;
        }
        let mut at = 0;
        while at < written.len() {
            at += self.step(&written[at..]);
        }
    }

    /// A whole RST_STREAM REFUSED_STREAM frame at the start of `buf`, for a stream
    /// that was not just answered.
    fn is_refusal(&self, buf: &[u8]) -> bool {
        if buf.len() < HEADER_LEN + 4 || buf[3] != RST_STREAM {
            return false;
        }
        let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
        let code = u32::from_be_bytes([buf[9], buf[10], buf[11], buf[12]]);
        code == REFUSED_STREAM && stream != self.last_headers_stream
    }

    /// Consumes the next piece of `buf` (header bytes or payload); returns its length.
    fn step(&mut self, buf: &[u8]) -> usize {
        if self.payload_left > 0 {
            let n = self.payload_left.min(buf.len());
            self.payload_left -= n;
            return n;
        }
        let n = (HEADER_LEN - self.header_len).min(buf.len());
        self.header[self.header_len..self.header_len + n].copy_from_slice(&buf[..n]);
        self.header_len += n;
        if self.header_len == HEADER_LEN {
            let h = &self.header;
            self.payload_left =
                usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
            if h[3] == HEADERS {
                self.last_headers_stream =
                    u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
            }
            if h[3] == RST_STREAM {
                self.resets += 1;
            }
            self.header_len = 0;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, 0];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn finds_a_refusal_after_other_frames_split_across_writes() {
        let mut out = frame(0x4, 0, &[0, 3, 0, 0, 0, 2]);
        out.extend(frame(HEADERS, 1, b"abc"));
        out.extend(frame(RST_STREAM, 5, &REFUSED_STREAM.to_be_bytes()));
        let mut f = OutboundFrames::default();
        // The first buffer ends 2 bytes into the HEADERS frame's header: held back.
        let plan = f.plan(&out[..17]);
        assert_eq!((plan.len, plan.refusal), (15, false));
        f.commit(&plan, &out[..15]);
        // A short write stops inside the HEADERS frame's header.
        let plan = f.plan(&out[15..]);
        assert_eq!((plan.len, plan.refusal), (out.len() - 15 - 13, true));
        f.commit(&plan, &out[15..20]);
        let plan = f.plan(&out[20..]);
        assert_eq!((plan.len, plan.refusal), (out.len() - 20 - 13, true));
    }

    #[test]
    fn leaves_the_refusal_after_a_431_and_other_codes_alone() {
        let mut out = frame(HEADERS, 3, b"431");
        out.extend(frame(RST_STREAM, 3, &REFUSED_STREAM.to_be_bytes()));
        out.extend(frame(RST_STREAM, 5, &2u32.to_be_bytes()));
        let plan = OutboundFrames::default().plan(&out);
        assert_eq!((plan.len, plan.refusal), (out.len(), false));
    }

    #[test]
    fn a_short_write_then_a_refusal_split_across_buffers_is_still_found() {
        let mut out = frame(HEADERS, 1, b"abc");
        out.extend(frame(RST_STREAM, 5, &REFUSED_STREAM.to_be_bytes()));
        let mut f = OutboundFrames::default();
        // A buffer that ends 5 bytes into the RST_STREAM: those 5 are held back.
        let cut = 12 + 5;
        let plan = f.plan(&out[..cut]);
        assert_eq!((plan.len, plan.refusal), (12, false));
        // Only 7 bytes go out (a short write); the follower walks them.
        f.commit(&plan, &out[..7]);
        let plan = f.plan(&out[7..]);
        assert_eq!((plan.len, plan.refusal), (5, true));
        f.commit(&plan, &out[7..12]);
        let plan = f.plan(&out[12..]);
        assert_eq!((plan.len, plan.refusal), (0, true));
    }
}
