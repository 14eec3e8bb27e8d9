//! The per-thread set of parked HTTP/1 keep-alive connections (issue 17). A connection
//! that parks between exchanges leaves its task: what it needs to wait (its I/O, shared
//! state, drain progress and the guards that count it) moves into this set, which one
//! task per worker drives with one timer and one drain wait per drain signal for all of
//! them. The client's next bytes start a new task that serves them as before; drain,
//! idle timeout and max connection duration close a parked connection as the waiting
//! connection task did (`conn_manager::ConnDeadlines`), and the client closing ends it.
//! An idle connection so costs its boxed state and a slot, not a task with a timer and
//! a drain wait of its own. A plaintext socket also leaves the runtime's I/O
//! driver while parked (`park_socket`): the set watches such sockets through one epoll
//! set of its own, registered with the runtime once.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use mio::unix::SourceFd;
use tokio::io::unix::AsyncFd;

use crate::base::drain::{DrainPhase, DrainSignal};

use super::conn_manager::{ConnDeadlines, ParkedConn, Phases};
use super::heap_trim::HeapTrim;
use super::parked_deadlines::{Deadlines, MAX_SLOTS, NO_DEADLINE};
use super::stream::ConnShared;

/// A parked connection, whatever its I/O type.
pub(super) trait Parked: Send {
    /// The connection's shared state.
    fn shared(&self) -> &ConnShared;
    /// What the connection saw of the drain.
    fn phases(&mut self) -> &mut Phases;
    /// Waits for the client's next bytes: true once they are there (in `read`, or kept
    /// by the connection), false when the client closed. (The set holds the bytes
    /// until [`Self::resume`], in the same turn, so that no parked connection keeps
    /// room for them.)
    fn poll_unpark(&mut self, cx: &mut Context<'_>, read: &mut Vec<u8>) -> Poll<io::Result<bool>>;
    /// Gives the socket's registration with the runtime up, if its kind can: the
    /// descriptor the set then watches. `Ok(None)`: it stays registered (and wakes the
    /// slot's waker).
    fn deregister(&mut self) -> io::Result<Option<RawFd>>;
    /// Serves the bytes that arrived (`read`, then what it kept) in a new task
    /// (registered again first).
    fn resume(self: Box<Self>, read: Vec<u8>);
    /// Ends the connection; `shut_write`: shut the write side first (as hyper's graceful
    /// shutdown of an idle connection does).
    fn close(self: Box<Self>, shut_write: bool);
}

/// The kind of parked connection most are: plaintext, accepted by a listener.
type PlainParked = ParkedConn<tokio::net::TcpStream, crate::listener::accept::ConnGuard>;

/// A parked connection as the set holds it: the common kind in its slot, other kinds
/// boxed. An idle connection's state so lies in the set's one array, not in a small
/// heap allocation made among an active connection's short-lived ones, whose pages it
/// would keep resident once they are freed. (Unboxed on purpose: the slot array is
/// where the connection lives.)
#[allow(clippy::large_enum_variant)]
enum Held {
    Plain(PlainParked),
    Boxed(Box<dyn Parked>),
}

impl Held {
    /// `conn` as held: unboxed when it is the plain kind.
    fn of<T: Parked + 'static>(conn: T) -> Option<Self> {
        let mut conn = Some(conn);
        let any: &mut dyn std::any::Any = &mut conn;
        if let Some(plain) = any.downcast_mut::<Option<PlainParked>>() {
            return plain.take().map(Held::Plain);
        }
        conn.map(|conn| Held::Boxed(Box::new(conn)))
    }

    fn get(&mut self) -> &mut dyn Parked {
        match self {
            Held::Plain(conn) => conn,
            Held::Boxed(conn) => &mut **conn,
        }
    }

    fn shared(&self) -> &ConnShared {
        match self {
            Held::Plain(conn) => conn.shared(),
            Held::Boxed(conn) => conn.shared(),
        }
    }

    fn resume(self, read: Vec<u8>) {
        match self {
            Held::Plain(conn) => conn.resume_owned(read),
            Held::Boxed(conn) => conn.resume(read),
        }
    }

    fn close(self, shut_write: bool) {
        match self {
            Held::Plain(conn) => conn.close_owned(shut_write),
            Held::Boxed(conn) => conn.close(shut_write),
        }
    }
}

/// Hands a parked connection to this thread's set (made, with its driving task, on
/// first use and again after that task ended with its runtime).
pub(super) fn park<T: Parked + 'static>(conn: T) {
    let Some(conn) = Held::of(conn) else {
        return;
    };
    let shared = SET.with(|cell| {
        let mut weak = cell.borrow_mut();
        // Only the driving task holds the set (wakers hold it weakly): it is alive
        // exactly while that task is.
        if let Some(shared) = weak.upgrade() {
            return shared;
        }
        let shared = Arc::new(Shared::default());
        *weak = Arc::downgrade(&shared);
        tokio::spawn(drive(Arc::clone(&shared)));
        shared
    });
    lock(&shared.incoming).push(conn);
    shared.driver.wake();
}

thread_local! {
    /// This thread's set, while its driving task lives.
    static SET: RefCell<Weak<Shared>> = const { RefCell::new(Weak::new()) };
}

/// What connection tasks and wakers share with the driving task.
#[derive(Default)]
struct Shared {
    /// Connections parked since the driver last looked.
    incoming: Mutex<Vec<Held>>,
    /// Slots whose socket became readable (or may have: a stale wake is harmless).
    ready: Mutex<Vec<usize>>,
    /// The driving task.
    driver: AtomicWaker,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Wakes the driver for one slot's socket.
struct SlotWaker {
    slot: usize,
    shared: Weak<Shared>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(shared) = self.shared.upgrade() {
            lock(&shared.ready).push(self.slot);
            shared.driver.wake();
        }
    }
}

/// The drive of this thread's set: runs until its runtime drops it, which drops (and
/// so closes) whatever is still parked.
async fn drive(shared: Arc<Shared>) {
    let mut set = ParkedSet::new(shared);
    std::future::poll_fn(|cx| set.poll(cx)).await
}

impl ParkedSet {
    fn new(shared: Arc<Shared>) -> Self {
        ParkedSet {
            shared,
            slots: Vec::new(),
            free: BinaryHeap::new(),
            incoming: Vec::new(),
            ready: Vec::new(),
            wakers: Vec::new(),
            deadlines: Deadlines::new(),
            groups: Vec::new(),
            timer: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
            timer_at: None,
            watch: None,
            watch_failed: false,
            watched_ready: Vec::new(),
            trim: HeapTrim::default(),
        }
    }
}

/// One parked connection's place in the set (the connection and 16 bytes: an idle
/// connection pays for its slot, so the rarely used parts live elsewhere,
/// `ParkedSet::wakers`).
struct Slot {
    conn: Option<Held>,
    /// Its entry in `ParkedSet::deadlines` ([`NO_DEADLINE`]: none).
    deadline: u64,
    /// Its drain signal's index in `ParkedSet::groups`.
    group: u32,
    /// The connection's bare socket, in the set's epoll set (see `park_socket`;
    /// [`NOT_WATCHED`]: none).
    watched: RawFd,
}

/// `Slot::watched` of a socket that stays registered with the runtime.
const NOT_WATCHED: RawFd = -1;

/// Slots (or free-list entries) kept beyond what is in use when the set shrinks.
const SLACK_SLOTS: usize = 64;

/// The set's own epoll set, for parked sockets without a runtime registration: the
/// runtime watches its descriptor, it watches theirs (edge-triggered, readable or
/// closed), a slot's index as their token.
struct Watch {
    poll: AsyncFd<PollFd>,
    events: mio::Events,
}

/// `mio::Poll` with its descriptor, for `AsyncFd`.
struct PollFd(mio::Poll);

impl AsRawFd for PollFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Events taken from the epoll set per `epoll_wait`.
const WATCH_EVENTS: usize = 256;

impl Watch {
    fn new() -> io::Result<Self> {
        let poll = PollFd(mio::Poll::new()?);
        // SAFETY: `PollFd` owns the epoll descriptor, open and the same for as long as
        // it lives, and `AsyncFd` owns the `PollFd`.
        #[allow(unsafe_code)]
        let poll = unsafe { AsyncFd::register_with_interest(poll, tokio::io::Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Self {
            poll,
            events: mio::Events::with_capacity(WATCH_EVENTS),
        })
    }
}

/// The parked connections watching one drain signal, and one wait for its next phase.
struct DrainGroup {
    signal: DrainSignal,
    /// The phase the group last acted on.
    seen: DrainPhase,
    members: usize,
    wait: Pin<Box<dyn Future<Output = DrainPhase> + Send>>,
}

impl DrainGroup {
    fn new(signal: &DrainSignal, seen: DrainPhase) -> Self {
        Self {
            signal: signal.clone(),
            seen,
            members: 0,
            wait: Self::wait_past(signal, seen),
        }
    }

    fn wait_past(
        signal: &DrainSignal,
        seen: DrainPhase,
    ) -> Pin<Box<dyn Future<Output = DrainPhase> + Send>> {
        let mut signal = signal.clone();
        Box::pin(async move { signal.past(seen).await })
    }
}

/// The driving task's state: the parked connections and what they wait on.
struct ParkedSet {
    shared: Arc<Shared>,
    slots: Vec<Slot>,
    /// Slots without a connection, reused first, lowest first (so that the array's
    /// tail empties and goes, see [`Self::shrink`]); may name slots already gone or
    /// taken again (skipped).
    free: BinaryHeap<Reverse<usize>>,
    /// What `Shared` handed over, swapped out under its lock (keeps the capacity).
    incoming: Vec<Held>,
    ready: Vec<usize>,
    /// Slots' wakers, for sockets that stay registered with the runtime (made on first
    /// need, kept for the slot's later connections; bare sockets in the epoll set need
    /// none, so that this stays empty without TLS).
    wakers: Vec<Option<Waker>>,
    /// Every connection's deadline, if it has one.
    deadlines: Deadlines,
    groups: Vec<Option<DrainGroup>>,
    timer: Pin<Box<tokio::time::Sleep>>,
    timer_at: Option<Instant>,
    /// Made for the first socket that can leave the runtime's driver.
    watch: Option<Watch>,
    /// Making `watch` failed: sockets stay registered.
    watch_failed: bool,
    /// Slots the epoll set reported (kept for its capacity).
    watched_ready: Vec<usize>,
    /// Gives what parking connections freed back to the kernel (see `heap_trim`).
    trim: HeapTrim,
}

/// What to do with a connection after looking at it.
enum Next {
    Keep,
    /// With the bytes `poll_unpark` read.
    Resume(Vec<u8>),
    Close {
        shut_write: bool,
    },
}

impl ParkedSet {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.shared.driver.register(cx.waker());
        let mut incoming = std::mem::take(&mut self.incoming);
        std::mem::swap(&mut incoming, &mut *lock(&self.shared.incoming));
        for conn in incoming.drain(..) {
            self.insert(conn);
        }
        self.incoming = incoming;
        let mut ready = std::mem::take(&mut self.ready);
        std::mem::swap(&mut ready, &mut *lock(&self.shared.ready));
        for slot in ready.drain(..) {
            self.poll_slot(slot);
        }
        self.ready = ready;
        self.poll_watched(cx);
        self.poll_drain(cx);
        self.poll_timer(cx);
        self.trim.poll(cx);
        self.shrink();
        Poll::Pending
    }

    /// The lowest free slot, if any.
    fn take_free(&mut self) -> Option<usize> {
        while let Some(Reverse(slot)) = self.free.pop() {
            if self
                .slots
                .get(slot)
                .is_some_and(|entry| entry.conn.is_none())
            {
                return Some(slot);
            }
        }
        None
    }

    /// Drops the empty slots at the array's end, and most of its room once it is
    /// mostly unused: a slot holds a whole connection, so that a burst of parked
    /// connections would otherwise keep its memory after they are gone. (Once per
    /// poll, after the slots' indexes are no longer in use.)
    fn shrink(&mut self) {
        while self.slots.last().is_some_and(|entry| entry.conn.is_none()) {
            self.slots.pop();
        }
        let len = self.slots.len();
        self.wakers.truncate(len);
        if self.slots.capacity() > 4 * len + SLACK_SLOTS {
            self.slots.shrink_to(2 * len + SLACK_SLOTS);
            self.wakers.shrink_to(len);
        }
        if self.free.len() > len + SLACK_SLOTS {
            let slots = &self.slots;
            self.free
                .retain(|&Reverse(slot)| slots.get(slot).is_some_and(|entry| entry.conn.is_none()));
            self.free.shrink_to(2 * self.free.len() + SLACK_SLOTS);
        }
    }

    fn insert(&mut self, conn: Held) {
        self.trim.on_park();
        let free = self.take_free();
        if free.is_none() && self.slots.len() >= MAX_SLOTS {
            tracing::warn!("parked connections: set full; closing");
            conn.close(false);
            return;
        }
        let group = self.group_of(&conn.shared().drain);
        let slot = match free {
            Some(slot) => slot,
            None => {
                let slot = self.slots.len();
                self.slots.push(Slot {
                    conn: None,
                    deadline: NO_DEADLINE,
                    group: 0,
                    watched: NOT_WATCHED,
                });
                slot
            }
        };
        let entry = &mut self.slots[slot];
        entry.conn = Some(conn);
        entry.group = group;
        entry.deadline = NO_DEADLINE;
        if let Some(g) = self.groups[group as usize].as_mut() {
            g.members += 1;
        }
        if let Err(e) = self.watch_socket(slot) {
            tracing::debug!(error = %e, "parking a connection's socket");
            self.apply(slot, Next::Close { shut_write: false });
            return;
        }
        // A phase the connection has not acted on yet (the drain began while it was
        // serving) is acted on now, as the connection's own drain wait would at once.
        let phase = self.groups[group as usize].as_ref().map(|g| g.seen);
        let next = match phase {
            Some(phase) if phase > self.phases_of(slot).seen => self.on_phase(slot, phase),
            _ => Next::Keep,
        };
        if self.apply(slot, next) {
            self.poll_slot(slot);
        }
    }

    /// The group for `signal` (connections of one listener share it). There are at
    /// most as many groups as members, so that the index fits a slot's `u32`.
    fn group_of(&mut self, signal: &DrainSignal) -> u32 {
        let found = self
            .groups
            .iter()
            .position(|g| g.as_ref().is_some_and(|g| g.signal.same_source(signal)));
        let index = match found {
            Some(index) => index,
            None => {
                // Starting from Serving: a phase already past is acted on at the first
                // poll.
                let group = DrainGroup::new(signal, DrainPhase::Serving);
                match self.groups.iter().position(Option::is_none) {
                    Some(index) => {
                        self.groups[index] = Some(group);
                        index
                    }
                    None => {
                        self.groups.push(Some(group));
                        self.groups.len() - 1
                    }
                }
            }
        };
        index as u32
    }

    fn phases_of(&mut self, slot: usize) -> Phases {
        match self.slots[slot].conn.as_mut() {
            Some(conn) => *conn.get().phases(),
            None => Phases::default(),
        }
    }

    /// Polls a slot's socket: a registered one with the slot's waker, a bare one (the
    /// epoll set reports it) with none.
    fn poll_slot(&mut self, slot: usize) {
        let shared = &self.shared;
        let Some(entry) = self.slots.get_mut(slot) else {
            return;
        };
        let waker = if entry.watched != NOT_WATCHED {
            Waker::noop()
        } else {
            if self.wakers.len() <= slot {
                self.wakers.resize(slot + 1, None);
            }
            &*self.wakers[slot].get_or_insert_with(|| {
                Waker::from(Arc::new(SlotWaker {
                    slot,
                    shared: Arc::downgrade(shared),
                }))
            })
        };
        let Some(conn) = entry.conn.as_mut().map(Held::get) else {
            return;
        };
        let mut read = Vec::new();
        let next = match conn.poll_unpark(&mut Context::from_waker(waker), &mut read) {
            Poll::Pending => Next::Keep,
            Poll::Ready(Ok(true)) => Next::Resume(read),
            Poll::Ready(Ok(false)) => Next::Close { shut_write: false },
            Poll::Ready(Err(e)) => {
                tracing::debug!(error = %e, conn = conn.shared().conn.id, "downstream connection ended with error");
                Next::Close { shut_write: false }
            }
        };
        self.apply(slot, next);
    }

    /// Carries out `next` for `slot`; true when the connection stays parked.
    fn apply(&mut self, slot: usize, next: Next) -> bool {
        if let Next::Keep = next {
            self.schedule(slot);
            return true;
        }
        let Some(conn) = self.remove(slot) else {
            return false;
        };
        match next {
            Next::Keep => {}
            Next::Resume(read) => conn.resume(read),
            Next::Close { shut_write } => conn.close(shut_write),
        }
        false
    }

    /// (Re)arms the slot's deadline from the connection's state.
    fn schedule(&mut self, slot: usize) {
        let entry = &mut self.slots[slot];
        let Some(conn) = entry.conn.as_mut().map(Held::get) else {
            return;
        };
        let drain_seen = conn.phases().drain_seen;
        let shared = conn.shared();
        let next = ConnDeadlines::of(shared).next(shared, None, drain_seen, false);
        let next = next.map_or(NO_DEADLINE, |at| self.deadlines.key(at, slot));
        if next == entry.deadline {
            return;
        }
        let old = std::mem::replace(&mut entry.deadline, next);
        let slots = &self.slots;
        self.deadlines
            .replace(old, next, |key| deadline_is_current(slots, key));
    }

    fn remove(&mut self, slot: usize) -> Option<Held> {
        let entry = &mut self.slots[slot];
        let conn = entry.conn.take()?;
        let watched = std::mem::replace(&mut entry.watched, NOT_WATCHED);
        if let (true, Some(watch)) = (watched != NOT_WATCHED, self.watch.as_ref()) {
            // Before the socket is registered again or closed (a stale event for the
            // slot is harmless: its next occupant's read would block).
            if let Err(e) = watch
                .poll
                .get_ref()
                .0
                .registry()
                .deregister(&mut SourceFd(&watched))
            {
                tracing::debug!(error = %e, "unwatching a parked socket");
            }
        }
        let old = std::mem::replace(&mut entry.deadline, NO_DEADLINE);
        let group = entry.group as usize;
        let slots = &self.slots;
        self.deadlines
            .replace(old, NO_DEADLINE, |key| deadline_is_current(slots, key));
        self.free.push(Reverse(slot));
        if let Some(g) = self.groups[group].as_mut() {
            g.members -= 1;
            if g.members == 0 {
                self.groups[group] = None;
            }
        }
        Some(conn)
    }

    /// Takes the slot's socket off the runtime's driver into the set's epoll set, when
    /// its kind can leave (an error: the socket is lost or unwatched, close it).
    fn watch_socket(&mut self, slot: usize) -> io::Result<()> {
        if self.watch.is_none() && !self.watch_failed {
            match Watch::new() {
                Ok(watch) => self.watch = Some(watch),
                Err(e) => {
                    tracing::warn!(error = %e, "parked connections stay registered: no epoll set");
                    self.watch_failed = true;
                }
            }
        }
        let Some(watch) = self.watch.as_ref() else {
            return Ok(());
        };
        let entry = &mut self.slots[slot];
        let Some(conn) = entry.conn.as_mut().map(Held::get) else {
            return Ok(());
        };
        let Some(fd) = conn.deregister()? else {
            return Ok(());
        };
        watch.poll.get_ref().0.registry().register(
            &mut SourceFd(&fd),
            mio::Token(slot),
            mio::Interest::READABLE,
        )?;
        entry.watched = fd;
        Ok(())
    }

    /// Polls the slots whose bare sockets the epoll set reports, until it has no more
    /// events (then the runtime wakes the set on its next one).
    fn poll_watched(&mut self, cx: &mut Context<'_>) {
        loop {
            let mut ready = std::mem::take(&mut self.watched_ready);
            {
                let Some(watch) = self.watch.as_mut() else {
                    return;
                };
                let mut guard = match watch.poll.poll_read_ready_mut(cx) {
                    Poll::Ready(Ok(guard)) => guard,
                    Poll::Ready(Err(e)) => {
                        tracing::warn!(error = %e, "parked sockets' epoll set failed");
                        return;
                    }
                    Poll::Pending => {
                        self.watched_ready = ready;
                        return;
                    }
                };
                let events = &mut watch.events;
                if let Err(e) = guard.get_inner_mut().0.poll(events, Some(Duration::ZERO)) {
                    // Interrupted: tried again on the next turn.
                    tracing::debug!(error = %e, "polling parked sockets");
                    cx.waker().wake_by_ref();
                    self.watched_ready = ready;
                    return;
                }
                ready.extend(events.iter().map(|event| event.token().0));
                if ready.is_empty() {
                    guard.clear_ready();
                }
            }
            for slot in ready.drain(..) {
                self.poll_slot(slot);
            }
            self.watched_ready = ready;
        }
    }

    /// A drain signal moved past what its group saw: every connection of the group
    /// acts on the new phase.
    fn poll_drain(&mut self, cx: &mut Context<'_>) {
        for group in 0..self.groups.len() {
            // Until the wait is pending again (so that it is registered), or the group
            // is gone with its last member.
            while let Some(g) = self.groups[group].as_mut() {
                let Poll::Ready(phase) = g.wait.as_mut().poll(cx) else {
                    break;
                };
                g.seen = phase;
                g.wait = DrainGroup::wait_past(&g.signal, phase);
                let members: Vec<usize> = (0..self.slots.len())
                    .filter(|&s| {
                        self.slots[s].group as usize == group && self.slots[s].conn.is_some()
                    })
                    .collect();
                for slot in members {
                    if phase > self.phases_of(slot).seen {
                        let next = self.on_phase(slot, phase);
                        self.apply(slot, next);
                    }
                }
                if phase >= DrainPhase::Closed {
                    // Every member closed; nothing is past Closed.
                    self.groups[group] = None;
                }
            }
        }
    }

    /// As a waiting connection on a drain phase change.
    fn on_phase(&mut self, slot: usize, phase: DrainPhase) -> Next {
        let Some(conn) = self.slots[slot].conn.as_mut().map(Held::get) else {
            return Next::Keep;
        };
        conn.phases().seen = phase;
        if phase >= DrainPhase::Closed {
            return Next::Close { shut_write: false };
        }
        conn.phases().drain_seen = true;
        let shared = conn.shared();
        shared.runtime.stats.downstream_cx_drain_close.inc();
        shared.draining.store(true, Ordering::Relaxed);
        if shared.drain.close_idle() {
            shared.closing.store(true, Ordering::Relaxed);
            return Next::Close { shut_write: true };
        }
        Next::Keep
    }

    /// As a waiting connection when its timer fires: a drain with no successor closes
    /// it, so do the idle timeout and the max connection duration (counted).
    fn on_deadline(&mut self, slot: usize, now: Instant) -> Next {
        let Some(conn) = self.slots[slot].conn.as_mut().map(Held::get) else {
            return Next::Keep;
        };
        let drain_seen = conn.phases().drain_seen;
        let shared = conn.shared();
        if drain_seen && shared.drain.close_idle() {
            shared.closing.store(true, Ordering::Relaxed);
            return Next::Close { shut_write: true };
        }
        if let Some(reason) = ConnDeadlines::of(shared).expired(shared, now) {
            reason.count(&shared.runtime);
            shared.closing.store(true, Ordering::Relaxed);
            return Next::Close { shut_write: true };
        }
        Next::Keep
    }

    /// Looks at every connection whose deadline passed, then arms the one timer for the
    /// earliest deadline left.
    fn poll_timer(&mut self, cx: &mut Context<'_>) {
        loop {
            let now = Instant::now();
            loop {
                let slots = &self.slots;
                let Some(key) = self
                    .deadlines
                    .pop_due(now, |key| deadline_is_current(slots, key))
                else {
                    break;
                };
                let slot = Deadlines::slot(key);
                self.slots[slot].deadline = NO_DEADLINE;
                let next = self.on_deadline(slot, now);
                self.apply(slot, next);
            }
            let slots = &self.slots;
            let Some(at) = self
                .deadlines
                .next_at(|key| deadline_is_current(slots, key))
            else {
                self.timer_at = None;
                return;
            };
            if self.timer_at != Some(at) {
                self.timer_at = Some(at);
                self.timer.as_mut().reset(at.into());
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return;
            }
        }
    }
}

/// Whether `key` is its slot's deadline (see `parked_deadlines`).
fn deadline_is_current(slots: &[Slot], key: u64) -> bool {
    slots
        .get(Deadlines::slot(key))
        .is_some_and(|entry| entry.deadline == key)
}

#[cfg(test)]
#[path = "parked_tests.rs"]
mod tests;
