//! A tiny DNS responder for DNS-cluster tests: UDP on 127.0.0.1:0, authoritative for one
//! name. A queries for that name get the current answer (an IPv4 address and a TTL, both
//! changeable while running) or NXDOMAIN once the name is removed; other query types for
//! the name get an empty NOERROR answer; every other name gets NXDOMAIN. It counts the A
//! queries for its name, so tests can see how often the proxy re-resolved. It answers
//! each datagram independently (no TCP, no EDNS in replies) and stops when dropped.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::sync::Notify;

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
const RCODE_NXDOMAIN: u8 = 3;
const HEADER_LEN: usize = 12;

/// What the responder says for its name: an address and TTL, or NXDOMAIN.
type Answer = Option<(Ipv4Addr, u32)>;

#[derive(Debug)]
struct State {
    /// Lowercase, without a trailing dot.
    name: String,
    answer: Mutex<Answer>,
    a_queries: AtomicUsize,
}

/// A running responder; stops answering when dropped.
#[derive(Debug)]
pub struct DnsResponder {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: Arc<Notify>,
}

impl DnsResponder {
    /// Starts a responder for `name` answering `ip` with `ttl` seconds.
    pub async fn start(name: &str, ip: Ipv4Addr, ttl: u32) -> anyhow::Result<Self> {
        let socket = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = socket.local_addr()?;
        let state = Arc::new(State {
            name: normalize(name),
            answer: Mutex::new(Some((ip, ttl))),
            a_queries: AtomicUsize::new(0),
        });
        let shutdown = Arc::new(Notify::new());
        tokio::spawn(serve(socket, state.clone(), shutdown.clone()));
        Ok(Self {
            addr,
            state,
            shutdown,
        })
    }

    /// Where it listens (UDP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers `ip` with `ttl` from now on.
    pub fn set_answer(&self, ip: Ipv4Addr, ttl: u32) {
        *self.answer() = Some((ip, ttl));
    }

    /// Answers NXDOMAIN for its name from now on.
    pub fn remove_name(&self) {
        *self.answer() = None;
    }

    /// A queries received for its name so far.
    pub fn queries(&self) -> usize {
        self.state.a_queries.load(Ordering::SeqCst)
    }

    fn answer(&self) -> std::sync::MutexGuard<'_, Answer> {
        // A panic while holding the lock cannot leave the answer half-written.
        self.state
            .answer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for DnsResponder {
    fn drop(&mut self) {
        self.shutdown.notify_one();
    }
}

async fn serve(socket: UdpSocket, state: Arc<State>, shutdown: Arc<Notify>) {
    let mut buf = [0u8; 1500];
    loop {
        let received = tokio::select! {
            received = socket.recv_from(&mut buf) => received,
            () = shutdown.notified() => return,
        };
        let Ok((len, peer)) = received else {
            continue;
        };
        let Some(reply) = reply_to(&buf[..len], &state) else {
            continue;
        };
        let _ = socket.send_to(&reply, peer).await;
    }
}

/// The reply to one query datagram; None for anything that is not a one-question query.
fn reply_to(query: &[u8], state: &State) -> Option<Vec<u8>> {
    let header = query.get(..HEADER_LEN)?;
    let is_response = header[2] & 0x80 != 0;
    let question_count = u16::from_be_bytes([header[4], header[5]]);
    if is_response || question_count != 1 {
        return None;
    }
    let (name, name_end) = read_name(query, HEADER_LEN)?;
    let fixed = query.get(name_end..name_end + 4)?;
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
    let question = &query[HEADER_LEN..name_end + 4];

    let ours = name == state.name && qclass == CLASS_IN;
    let wants_a = ours && qtype == TYPE_A;
    if wants_a {
        state.a_queries.fetch_add(1, Ordering::SeqCst);
    }
    let answer = *state
        .answer
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (rcode, record) = match (ours, answer) {
        (false, _) | (true, None) => (RCODE_NXDOMAIN, None),
        (true, Some(found)) => (0, wants_a.then_some(found)),
    };

    let mut reply = Vec::with_capacity(question.len() + 32);
    reply.extend_from_slice(&header[..2]); // id
                                           // QR, the query's opcode and RD, AA; RA; rcode.
    reply.push(0x80 | (header[2] & 0x79) | 0x04);
    reply.push(0x80 | rcode);
    reply.extend_from_slice(&1u16.to_be_bytes()); // questions
    reply.extend_from_slice(&u16::from(record.is_some()).to_be_bytes()); // answers
    reply.extend_from_slice(&[0, 0, 0, 0]); // authority, additional
    reply.extend_from_slice(question);
    if let Some((ip, ttl)) = record {
        reply.extend_from_slice(&[0xc0, HEADER_LEN as u8]); // the question's name
        reply.extend_from_slice(&TYPE_A.to_be_bytes());
        reply.extend_from_slice(&CLASS_IN.to_be_bytes());
        reply.extend_from_slice(&ttl.to_be_bytes());
        reply.extend_from_slice(&4u16.to_be_bytes());
        reply.extend_from_slice(&ip.octets());
    }
    Some(reply)
}

/// The name starting at `start` (uncompressed labels, as queries carry) and where it ends.
fn read_name(message: &[u8], start: usize) -> Option<(String, usize)> {
    let mut labels = Vec::new();
    let mut at = start;
    loop {
        let len = usize::from(*message.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(message.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    Some((labels.join("."), at))
}

fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    }

    fn state(answer: Answer) -> State {
        State {
            name: "backend.test".to_owned(),
            answer: Mutex::new(answer),
            a_queries: AtomicUsize::new(0),
        }
    }

    #[test]
    fn answers_a_with_address_and_ttl() {
        let s = state(Some((Ipv4Addr::new(127, 0, 0, 2), 7)));
        let q = query(0x1234, "Backend.Test", TYPE_A);
        let r = reply_to(&q, &s).expect("reply");
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(r[3] & 0x0f, 0, "NOERROR");
        assert_eq!(&r[6..8], &[0, 1], "one answer");
        let answer = &r[q.len()..];
        assert_eq!(&answer[6..10], &7u32.to_be_bytes());
        assert_eq!(&answer[12..], &[127, 0, 0, 2]);
        assert_eq!(s.a_queries.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn other_types_are_empty_and_other_names_nxdomain() {
        let s = state(Some((Ipv4Addr::LOCALHOST, 1)));
        let r = reply_to(&query(1, "backend.test", 28), &s).expect("reply");
        assert_eq!((r[3] & 0x0f, r[7]), (0, 0));
        let r = reply_to(&query(1, "other.test", TYPE_A), &s).expect("reply");
        assert_eq!((r[3] & 0x0f, r[7]), (RCODE_NXDOMAIN, 0));
        let s = state(None);
        let r = reply_to(&query(1, "backend.test", TYPE_A), &s).expect("reply");
        assert_eq!(r[3] & 0x0f, RCODE_NXDOMAIN);
        assert_eq!(reply_to(&[0; 5], &s), None);
    }
}
