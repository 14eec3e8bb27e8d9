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
#[derive(Debug, Default, Clone)]
pub(super) struct OutboundFrames {
    /// Bytes of the current frame's header seen so far.
    header: [u8; HEADER_LEN],
    header_len: usize,
    /// Payload bytes of the current frame still to come.
    payload_left: usize,
    /// Stream of the last HEADERS frame written.
    last_headers_stream: u32,
}

impl OutboundFrames {
    /// How many bytes of `buf` may be written: all of it, or the bytes before an
    /// RST_STREAM REFUSED_STREAM of a stream that got no HEADERS (`Err(offset)`).
    /// Call [`Self::advance`] with what was written.
    pub(super) fn writable(&self, buf: &[u8]) -> Result<(), usize> {
        let mut probe = self.clone();
        let mut at = 0;
        while at < buf.len() {
            if probe.payload_left == 0 && probe.header_len == 0 && probe.is_refusal(&buf[at..]) {
                return Err(at);
            }
            at += probe.step(&buf[at..]);
        }
        Ok(())
    }

    /// Records `written` bytes as sent.
    pub(super) fn advance(&mut self, written: &[u8]) {
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
        // The first write ends inside the HEADERS frame's header.
        let (first, rest) = out.split_at(17);
        assert_eq!(f.writable(first), Ok(()));
        f.advance(first);
        assert_eq!(f.writable(rest), Err(rest.len() - 13));
    }

    #[test]
    fn leaves_the_refusal_after_a_431_and_other_codes_alone() {
        let mut out = frame(HEADERS, 3, b"431");
        out.extend(frame(RST_STREAM, 3, &REFUSED_STREAM.to_be_bytes()));
        out.extend(frame(RST_STREAM, 5, &2u32.to_be_bytes()));
        assert_eq!(OutboundFrames::default().writable(&out), Ok(()));
    }
}
