//! `per_connection_buffer_limit_bytes` (listeners and clusters, Envoy's soft limit on a
//! connection's read buffer, 1 MiB unless set; 0 means no limit): how much Baton reads
//! from one connection ahead of the other side consuming it. Reading stops at the limit
//! and resumes as data drains, so a slow or stalled peer holds back its sender instead
//! of growing Baton's memory.
//!
//! Where it applies:
//! - tcp_proxy: each direction's copy buffer is at most the reading side's limit
//!   (downstream: the listener's, upstream: the cluster's), and never above 8 KiB, so
//!   many idle connections stay cheap.
//! - HTTP/1.1 upstream connections: hyper's read buffer is bounded by the cluster's
//!   limit (hyper needs at least 8 KiB).
//! - Downstream HTTP/1.1 reads are bounded by `max_request_headers_kb` (a request head
//!   must fit), HTTP/2 by the connection manager's flow-control windows; bodies stream
//!   through with backpressure rather than being buffered whole.

/// Largest tcp_proxy copy buffer per direction (tokio's default copy buffer size).
pub const MAX_COPY_BUFFER: usize = 8 * 1024;

/// Smallest read buffer hyper's HTTP/1.1 codec accepts.
pub const MIN_HTTP1_BUFFER: usize = 8 * 1024;

/// tcp_proxy copy buffer for a side whose limit is `limit`.
pub fn copy_buffer(limit: u32) -> usize {
    match limit {
        0 => MAX_COPY_BUFFER,
        n => (n as usize).min(MAX_COPY_BUFFER),
    }
}

/// hyper's HTTP/1.1 `max_buf_size` for an upstream connection of a cluster whose limit
/// is `limit`; `None` keeps hyper's default (no configured limit).
pub fn http1_read_buffer(limit: u32) -> Option<usize> {
    match limit {
        0 => None,
        n => Some((n as usize).max(MIN_HTTP1_BUFFER)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_buffer_never_exceeds_the_limit_or_the_cap() {
        assert_eq!(copy_buffer(1024), 1024);
        assert_eq!(copy_buffer(1), 1);
        assert_eq!(copy_buffer(1024 * 1024), MAX_COPY_BUFFER);
        assert_eq!(copy_buffer(0), MAX_COPY_BUFFER, "0: no limit");
    }

    #[test]
    fn http1_read_buffer_follows_the_limit_above_hypers_minimum() {
        assert_eq!(http1_read_buffer(1024 * 1024), Some(1024 * 1024));
        assert_eq!(http1_read_buffer(100), Some(MIN_HTTP1_BUFFER));
        assert_eq!(http1_read_buffer(0), None);
    }
}
