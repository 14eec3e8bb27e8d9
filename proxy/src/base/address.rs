//! Addresses of upstream hosts: an IP socket address or a Unix domain socket (Envoy's
//! `pipe`). Shared by `upstream/` (where connections go), `access_log/`
//! (`%UPSTREAM_HOST%`) and `admin/` (`/clusters`), which all show them as Envoy does:
//! `ip:port`, or the socket path (`@name` for an abstract socket).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::unix::net::SocketAddr as UnixSocketAddr;
use std::path::Path;
use std::sync::Arc;

/// Where an upstream host accepts connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostAddress {
    /// TCP to an IP address and port.
    Ip(SocketAddr),
    /// A Unix domain socket.
    Pipe(PipeAddress),
}

impl HostAddress {
    /// The IP socket address, for an IP host.
    pub fn ip(&self) -> Option<SocketAddr> {
        match self {
            Self::Ip(addr) => Some(*addr),
            Self::Pipe(_) => None,
        }
    }
}

impl From<SocketAddr> for HostAddress {
    fn from(addr: SocketAddr) -> Self {
        Self::Ip(addr)
    }
}

impl From<PipeAddress> for HostAddress {
    fn from(pipe: PipeAddress) -> Self {
        Self::Pipe(pipe)
    }
}

impl fmt::Display for HostAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(addr) => addr.fmt(f),
            Self::Pipe(pipe) => f.write_str(pipe.name()),
        }
    }
}

/// A Unix domain socket address, resolved once from its configured path. Cloning shares
/// it (hosts, log records and connection tasks all hold one).
#[derive(Clone)]
pub struct PipeAddress(Arc<PipeInner>);

struct PipeInner {
    /// The path as Envoy prints it: the path itself, or `@name` for an abstract socket
    /// (with any NUL byte in the name shown as `@` too).
    name: Box<str>,
    /// The `sockaddr_un` connections go to.
    socket: UnixSocketAddr,
}

impl PipeAddress {
    /// The socket at `path`; a leading `@` names a Linux abstract socket. Fails when the
    /// path cannot be a socket address (too long, a NUL byte outside an abstract name),
    /// which config translation already rules out.
    pub fn new(path: &Path) -> io::Result<Self> {
        let bytes = path.as_os_str().as_encoded_bytes();
        let (name, socket) = match bytes.strip_prefix(b"@") {
            Some(abstract_name) => {
                let shown: String = String::from_utf8_lossy(abstract_name)
                    .chars()
                    .map(|c| if c == '\0' { '@' } else { c })
                    .collect();
                (format!("@{shown}"), abstract_socket(abstract_name)?)
            }
            None => (
                path.to_string_lossy().into_owned(),
                UnixSocketAddr::from_pathname(path)?,
            ),
        };
        Ok(Self(Arc::new(PipeInner {
            name: name.into_boxed_str(),
            socket,
        })))
    }

    /// The path as Envoy shows it (`/clusters`, `%UPSTREAM_HOST%`).
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The socket address to connect to.
    pub fn socket_addr(&self) -> &UnixSocketAddr {
        &self.0.socket
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_socket(name: &[u8]) -> io::Result<UnixSocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    UnixSocketAddr::from_abstract_name(name)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_socket(_name: &[u8]) -> io::Result<UnixSocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract Unix sockets exist on Linux only",
    ))
}

impl PartialEq for PipeAddress {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.name == other.0.name
    }
}

impl Eq for PipeAddress {}

impl fmt::Debug for PipeAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PipeAddress").field(&self.0.name).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_as_envoy_shows_them() {
        let ip = HostAddress::from(SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(ip.to_string(), "127.0.0.1:8080");
        let pipe = HostAddress::from(PipeAddress::new(Path::new("/run/up.sock")).expect("pipe"));
        assert_eq!(pipe.to_string(), "/run/up.sock");
        assert_eq!(pipe.ip(), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn abstract_names_keep_their_at() {
        use std::os::linux::net::SocketAddrExt;
        let pipe = PipeAddress::new(Path::new("@baton\0x")).expect("abstract");
        assert_eq!(pipe.name(), "@baton@x");
        assert_eq!(
            pipe.socket_addr().as_abstract_name(),
            Some(&b"baton\0x"[..])
        );
        assert!(pipe.socket_addr().as_pathname().is_none());
    }

    #[test]
    fn equal_by_path() {
        let a = PipeAddress::new(Path::new("/run/a.sock")).expect("a");
        let a2 = PipeAddress::new(Path::new("/run/a.sock")).expect("a2");
        let b = PipeAddress::new(Path::new("/run/b.sock")).expect("b");
        assert_eq!(a, a2);
        assert_ne!(a, b);
    }

    #[test]
    fn too_long_a_path_is_an_error() {
        let long = format!("/tmp/{}", "a".repeat(200));
        assert!(PipeAddress::new(Path::new(&long)).is_err());
    }
}
