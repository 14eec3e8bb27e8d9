//! HPACK (RFC 7541) for Baton's own HTTP/2 server codec: the [`Decoder`] for request
//! header blocks and the [`Encoder`] for response heads and trailers, each one per
//! connection, with the static table, the dynamic table (eviction, size updates), prefix
//! integers with overflow checks, and Huffman coding.
//!
//! Peer input is never trusted: every malformed block is an [`HpackError`] (the caller
//! answers it with a connection COMPRESSION_ERROR, as Envoy does), never a panic; a size
//! update above the SETTINGS_HEADER_TABLE_SIZE we announced, or after the first field of a
//! block, or missing after we lowered the limit, is one too. A hostile block cannot make the decoder allocate past what the
//! caller allows: fields past the caller's list size cap are decoded (the table must stay
//! in step) but not stored, and `FieldList::list_size` keeps counting so the caller can
//! answer it.
//!
//! Allocations (counted by the tests in `tests.rs`, with the crate's counting allocator):
//! - Decoding h2load's request block (`:method GET`, `:scheme`, `:authority`, `:path`,
//!   `user-agent`, `accept`), once its table is warm: 1 (the field list's `Vec`). Literal
//!   strings that are not Huffman-coded are `Bytes` slices of the block; indexed fields
//!   are static `Bytes` or reference-counted table entries. A block with Huffman literals
//!   adds 2 (one buffer for all its decoded strings, plus `bytes`' shared header), and a
//!   field inserted into the table 1 or 2 (owned copies, so that the table never pins a
//!   read buffer).
//! - Encoding a typical response head (`:status 200`, `server`, `date`,
//!   `content-type`, `content-length`, `x-envoy-upstream-service-time`) into a `BytesMut`
//!   with room: 0 once `server`/`content-type`/`date` are in the table (the first
//!   response inserts them: `HeaderName`/`HeaderValue` clones).
//!
//! Cost, measured once (these files built in release in a small harness
//! outside the workspace, 10,000 iterations under callgrind, the empty run subtracted):
//! decoding that warm request block about 1,380 instructions including the list's
//! allocation and drop; encoding that warm response head about 1,290 (2,370 before the
//! encoder inserted `x-envoy-upstream-service-time`'s name once instead of
//! Huffman-coding it in every response, and wrote Huffman output 32 bits at a time). For
//! scale: the h2 crate spends about 22,000 instructions on a whole request.

mod decoder;
mod encoder;
pub mod huffman;
mod table;
#[cfg(test)]
mod tests;

pub use decoder::Decoder;
pub use encoder::{Encoder, ENCODER_TABLE_MAX};

/// A header block the decoder cannot read: all are connection COMPRESSION_ERRORs (RFC
/// 9113 §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HpackError {
    /// The block ends inside a field representation.
    #[error("header block truncated")]
    Truncated,
    /// A prefix integer does not fit in 32 bits.
    #[error("integer overflow")]
    IntegerOverflow,
    /// An index names no static or dynamic table entry (or is 0).
    #[error("index out of range")]
    BadIndex,
    /// A Huffman string decodes EOS or is badly padded.
    #[error("bad huffman string")]
    Huffman,
    /// A dynamic table size update above the SETTINGS_HEADER_TABLE_SIZE we announced.
    #[error("table size update over the limit")]
    SizeUpdateTooLarge,
    /// No dynamic table size update at the start of the first block after we lowered
    /// SETTINGS_HEADER_TABLE_SIZE below the table's size (RFC 7541 §4.2).
    #[error("table size update missing after a lower limit")]
    SizeUpdateMissing,
    /// A dynamic table size update after the block's first field.
    #[error("table size update not at the start of the block")]
    MisplacedSizeUpdate,
    /// A name or value literal longer than [`MAX_STRING_LEN`] as sent.
    #[error("string literal over 64 KiB")]
    StringTooLong,
}

/// The longest name or value literal (its length as sent) Envoy's HPACK decoder takes
/// (nghttp2's 64 KiB): past it the block fails, a COMPRESSION_ERROR.
pub const MAX_STRING_LEN: usize = 64 * 1024;

impl HpackError {
    /// A fixed phrase for the wire layer's errors.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Truncated => "hpack: truncated block",
            Self::IntegerOverflow => "hpack: integer overflow",
            Self::BadIndex => "hpack: index out of range",
            Self::Huffman => "hpack: bad huffman string",
            Self::SizeUpdateTooLarge => "hpack: table size update over the limit",
            Self::SizeUpdateMissing => "hpack: table size update missing",
            Self::MisplacedSizeUpdate => "hpack: table size update after a field",
            Self::StringTooLong => "hpack: string literal over 64 KiB",
        }
    }
}
