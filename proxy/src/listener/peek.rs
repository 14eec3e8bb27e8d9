//! Peeking at a new connection's first bytes for listener filters (`tls_inspector`,
//! `proxy_protocol`): nothing is consumed, and a wait for more bytes sleeps until the
//! next arrival instead of spinning on a socket that stays readable.

use std::io;
use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::net::TcpStream;

/// What one peek found.
#[derive(Debug, Clone, Copy)]
pub struct Peeked {
    /// Bytes now in the buffer (0: the peer closed without sending more).
    pub len: usize,
    /// The peer has closed its side (the bytes may still be there).
    pub read_closed: bool,
}

/// Peeks into `buf` once more than `seen` bytes have arrived (or the peer closed).
pub async fn peek_more(stream: &TcpStream, buf: &mut [u8], seen: usize) -> io::Result<Peeked> {
    loop {
        let ready = stream.ready(Interest::READABLE).await?;
        let peeked = stream.try_io(Interest::READABLE, || {
            let n = nix::sys::socket::recv(
                stream.as_raw_fd(),
                buf,
                nix::sys::socket::MsgFlags::MSG_PEEK,
            )
            .map_err(io::Error::from)?;
            if n == seen && n != 0 && n != buf.len() {
                // Nothing new: clear readiness and wait for the next arrival.
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        match peeked {
            Ok(len) => {
                return Ok(Peeked {
                    len,
                    read_closed: ready.is_read_closed(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if ready.is_read_closed() {
                    return Ok(Peeked {
                        len: seen,
                        read_closed: true,
                    });
                }
            }
            Err(e) => return Err(e),
        }
    }
}
