//! HTTP/2 frames as Baton's own HTTP/2 server codec sees them (issue 17): the typed values
//! shared by the wire layer (`wire` and `hpack`: bytes to frames and back, header blocks
//! assembled from HEADERS + CONTINUATION and HPACK-decoded) and the connection state
//! machine (`conn`: stream states, flow control, request validation, Envoy's answers).
//!
//! The wire layer reports every frame it can decode, however wrong for its stream or
//! state; only what breaks the framing itself (lengths, padding, HPACK, the preface) is a
//! [`WireError`]. Whether a decodable frame is allowed is the state machine's decision.

use bytes::Bytes;

/// A stream identifier (31 bits; 0 is the connection).
pub type StreamId = u32;

/// The largest stream identifier and window size (2^31 - 1).
pub const MAX_STREAM_ID: u32 = (1 << 31) - 1;

/// An HTTP/2 error code (RFC 9113 §7). Unknown codes are kept as received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    pub const NO_ERROR: Self = Self(0x0);
    pub const PROTOCOL_ERROR: Self = Self(0x1);
    pub const INTERNAL_ERROR: Self = Self(0x2);
    pub const FLOW_CONTROL_ERROR: Self = Self(0x3);
    pub const SETTINGS_TIMEOUT: Self = Self(0x4);
    pub const STREAM_CLOSED: Self = Self(0x5);
    pub const FRAME_SIZE_ERROR: Self = Self(0x6);
    pub const REFUSED_STREAM: Self = Self(0x7);
    pub const CANCEL: Self = Self(0x8);
    pub const COMPRESSION_ERROR: Self = Self(0x9);
    pub const CONNECT_ERROR: Self = Self(0xa);
    pub const ENHANCE_YOUR_CALM: Self = Self(0xb);
    pub const INADEQUATE_SECURITY: Self = Self(0xc);
    pub const HTTP_1_1_REQUIRED: Self = Self(0xd);
}

/// A PRIORITY frame's or a HEADERS frame's priority fields (RFC 9113 §5.3.2, deprecated
/// but still parsed: a stream depending on itself is an error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Priority {
    pub dependency: StreamId,
    pub exclusive: bool,
    /// The weight as sent (0-255; the weight is this plus one).
    pub weight: u8,
}

/// One decoded header field, bytes as the peer sent them (after HPACK and Huffman
/// decoding), not yet validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: Bytes,
    pub value: Bytes,
}

/// A whole decoded header block, fields in the order received.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldList {
    pub fields: Vec<Field>,
    /// The block's size as SETTINGS_MAX_HEADER_LIST_SIZE counts it (RFC 9113 §6.5.2:
    /// name + value + 32 per field).
    pub list_size: usize,
}

/// One SETTINGS parameter (RFC 9113 §6.5.2, RFC 8441 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    HeaderTableSize(u32),
    EnablePush(u32),
    MaxConcurrentStreams(u32),
    InitialWindowSize(u32),
    MaxFrameSize(u32),
    MaxHeaderListSize(u32),
    EnableConnectProtocol(u32),
    /// An identifier this codec does not know: ignored, as RFC 9113 §6.5.2 says.
    Unknown(u16, u32),
}

/// A frame, received or to be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// DATA. `flow_len` is what the frame counts against flow control: the whole payload
    /// including padding and the pad length byte (RFC 9113 §6.9.1).
    Data {
        stream: StreamId,
        data: Bytes,
        end_stream: bool,
        flow_len: u32,
    },
    /// HEADERS with its CONTINUATION frames, the block decoded.
    Headers {
        stream: StreamId,
        fields: FieldList,
        end_stream: bool,
        priority: Option<Priority>,
    },
    Priority {
        stream: StreamId,
        priority: Priority,
    },
    RstStream {
        stream: StreamId,
        code: ErrorCode,
    },
    Settings {
        ack: bool,
        settings: Vec<Setting>,
    },
    /// PUSH_PROMISE: a client never sends one (RFC 9113 §8.4); kept so that the state
    /// machine gives Envoy's answer.
    PushPromise {
        stream: StreamId,
        promised: StreamId,
    },
    Ping {
        ack: bool,
        payload: [u8; 8],
    },
    GoAway {
        last_stream: StreamId,
        code: ErrorCode,
        debug: Bytes,
    },
    WindowUpdate {
        stream: StreamId,
        increment: u32,
    },
    /// A frame type this codec does not know: ignored (RFC 9113 §5.5).
    Unknown {
        kind: u8,
        stream: StreamId,
    },
}

/// What the wire layer cannot turn into a frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A connection error: the connection ends with GOAWAY `code` (or, where Envoy
    /// closes without one, as the state machine decides from `code` and `reason`).
    #[error("connection error {code:?}: {reason}")]
    Connection {
        code: ErrorCode,
        /// A short fixed phrase for logs and tests ("frame too large", "bad padding").
        reason: &'static str,
    },
    /// A stream error the wire layer alone can see (none today besides what RFC 9113
    /// makes connection errors; kept for HPACK-independent stream limits).
    #[error("stream {stream} error {code:?}: {reason}")]
    Stream {
        stream: StreamId,
        code: ErrorCode,
        reason: &'static str,
    },
}
