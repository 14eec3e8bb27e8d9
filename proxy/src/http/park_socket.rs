//! The downstream socket of an HTTP connection, which may give its registration with the
//! runtime up while the connection is parked (issue 17). tokio keeps a 256-byte,
//! 128-aligned record per registered socket; a parked plaintext connection instead
//! hands its bare socket to this worker's parked set, which watches all of them
//! through one epoll set of its own (`parked`), and registers it again when the
//! client's next bytes arrive or the connection closes. Kinds that cannot (TLS: the
//! session wraps the socket) stay registered while parked.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A socket kind that can leave the runtime's I/O driver and come back.
pub trait Reregister: Sized {
    /// The socket without its registration; `Err` gives it back unchanged (a kind that
    /// stays registered). The inner error: the socket was lost while deregistering.
    fn deregister(self) -> Result<io::Result<std::net::TcpStream>, Self> {
        Err(self)
    }

    /// Registers again a socket that [`Self::deregister`] gave.
    fn register(socket: std::net::TcpStream) -> io::Result<Self> {
        drop(socket);
        Err(io::ErrorKind::Unsupported.into())
    }
}

impl Reregister for tokio::net::TcpStream {
    fn deregister(self) -> Result<io::Result<std::net::TcpStream>, Self> {
        // Still non-blocking (tokio leaves the mode as it was).
        Ok(self.into_std())
    }

    fn register(socket: std::net::TcpStream) -> io::Result<Self> {
        tokio::net::TcpStream::from_std(socket)
    }
}

impl<IO> Reregister for tokio_rustls::server::TlsStream<IO> {}

/// Whether a read could find anything, asked without reading: the lean HTTP/1.1 loop
/// watches for the client closing while an exchange is in progress, and a read through
/// TLS that finds nothing costs several hundred instructions (issue 16).
pub trait ReadReadiness {
    /// `Pending` (with `cx` woken when that changes) when a read would surely find no
    /// bytes and no end; `Ready` when it may (or this kind cannot tell): read then.
    fn poll_may_read(&self, cx: &mut Context<'_>) -> Poll<()> {
        let _ = cx;
        Poll::Ready(())
    }
}

impl ReadReadiness for tokio::net::TcpStream {
    fn poll_may_read(&self, cx: &mut Context<'_>) -> Poll<()> {
        // An error is for the read to report.
        self.poll_read_ready(cx).map(|_| ())
    }
}

impl<IO: ReadReadiness> ReadReadiness for tokio_rustls::server::TlsStream<IO> {
    fn poll_may_read(&self, cx: &mut Context<'_>) -> Poll<()> {
        let (io, session) = self.get_ref();
        // Plaintext already decrypted, a close_notify received, or handshake records to
        // send first: the session has something to say without the socket.
        if !session.wants_read() {
            return Poll::Ready(());
        }
        io.poll_may_read(cx)
    }
}

impl<IO: ReadReadiness> ReadReadiness for ParkSocket<IO> {
    fn poll_may_read(&self, cx: &mut Context<'_>) -> Poll<()> {
        match self {
            ParkSocket::Registered(io) => io.poll_may_read(cx),
            ParkSocket::Bare(_) | ParkSocket::Gone => Poll::Ready(()),
        }
    }
}

impl ReadReadiness for tokio::io::DuplexStream {}

/// A downstream socket, registered with the runtime or (parked) not.
#[derive(Debug)]
pub enum ParkSocket<IO> {
    Registered(IO),
    /// Parked without a registration: read only by the parked set, when its epoll set
    /// says the socket is readable.
    Bare(std::net::TcpStream),
    /// Lost while changing over (its error was reported then).
    Gone,
}

impl<IO: Reregister> ParkSocket<IO> {
    /// Gives the registration up if this kind can: the bare socket's descriptor, for
    /// the parked set to watch. `Ok(None)`: the socket stays registered.
    pub fn deregister(&mut self) -> io::Result<Option<RawFd>> {
        match std::mem::replace(self, ParkSocket::Gone) {
            ParkSocket::Registered(io) => match io.deregister() {
                Err(io) => {
                    *self = ParkSocket::Registered(io);
                    Ok(None)
                }
                Ok(socket) => {
                    let socket = socket?;
                    let fd = socket.as_raw_fd();
                    *self = ParkSocket::Bare(socket);
                    Ok(Some(fd))
                }
            },
            ParkSocket::Bare(socket) => {
                let fd = socket.as_raw_fd();
                *self = ParkSocket::Bare(socket);
                Ok(Some(fd))
            }
            ParkSocket::Gone => Err(gone()),
        }
    }

    /// Registers a bare socket again (a registered one is left as it is).
    pub fn reregister(&mut self) -> io::Result<()> {
        match std::mem::replace(self, ParkSocket::Gone) {
            ParkSocket::Bare(socket) => *self = ParkSocket::Registered(IO::register(socket)?),
            ParkSocket::Registered(io) => *self = ParkSocket::Registered(io),
            ParkSocket::Gone => return Err(gone()),
        }
        Ok(())
    }
}

fn gone() -> io::Error {
    io::ErrorKind::NotConnected.into()
}

impl<IO: AsyncRead + Unpin> AsyncRead for ParkSocket<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ParkSocket::Registered(io) => Pin::new(io).poll_read(cx, buf),
            // No waker is registered: the parked set's epoll set wakes for it.
            ParkSocket::Bare(socket) => loop {
                match socket.read(buf.initialize_unfilled()) {
                    Ok(n) => {
                        buf.advance(n);
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            },
            ParkSocket::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ParkSocket<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ParkSocket::Registered(io) => Pin::new(io).poll_write(cx, buf),
            // A parked connection writes nothing before it is registered again.
            ParkSocket::Bare(_) | ParkSocket::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ParkSocket::Registered(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            ParkSocket::Bare(_) | ParkSocket::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ParkSocket::Registered(io) => io.is_write_vectored(),
            ParkSocket::Bare(_) | ParkSocket::Gone => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ParkSocket::Registered(io) => Pin::new(io).poll_flush(cx),
            ParkSocket::Bare(_) | ParkSocket::Gone => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ParkSocket::Registered(io) => Pin::new(io).poll_shutdown(cx),
            ParkSocket::Bare(socket) => Poll::Ready(socket.shutdown(std::net::Shutdown::Write)),
            ParkSocket::Gone => Poll::Ready(Err(gone())),
        }
    }
}
