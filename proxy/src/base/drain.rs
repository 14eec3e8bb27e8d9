//! Drain signal: flipped once when the process starts draining (SIGTERM, hot restart
//! hand-over, `/drain_listeners`). Connections watch it: HTTP/1.1 responses then carry
//! `Connection: close`, HTTP/2 connections send GOAWAY, TCP proxy connections stay until
//! the drain time ends and are then closed (`closed`).
//!
//! How fast connections are encouraged to go follows Envoy's `--drain-strategy`, through
//! [`DrainSignal::should_close`], which the connection manager asks once per response:
//! - `immediate`: true for every response once draining started;
//! - `gradual` (default): true with a probability rising linearly from 0 when the drain
//!   starts to 1 when the drain time is over, so clients reconnect spread over the drain
//!   time instead of all at once.
//!
//! Outside a drain `should_close` is one relaxed atomic load; no lock, no allocation.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// How fast connections are encouraged to go (`--drain-strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainStrategy {
    /// Encourage connections to close progressively over the drain time (default).
    Gradual,
    /// Tell every connection to close at once when draining starts.
    Immediate,
}

/// Phases of a drain, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DrainPhase {
    /// Serving normally.
    Serving,
    /// Draining: finish in-flight work, tell peers to go away, accept nothing new.
    Draining,
    /// Drain time is over: close whatever is still open.
    Closed,
}

/// When the drain started and how long it lasts, read per response by `should_close`.
#[derive(Debug)]
struct DrainClock {
    strategy: DrainStrategy,
    /// Reference point for the millisecond values below.
    origin: Instant,
    /// Milliseconds since `origin` at which draining started, plus one; 0 = not draining.
    started_ms: AtomicU64,
    /// Length of the drain in milliseconds (the gradual ramp).
    duration_ms: AtomicU64,
    /// No generation takes over (SIGTERM, /quitquitquit): idle keep-alive
    /// connections may close at once instead of waiting for their next request.
    no_successor: AtomicBool,
    /// Told to terminate: every response closes its connection, whatever the strategy.
    hurried: AtomicBool,
}

impl DrainClock {
    fn new(strategy: DrainStrategy, drain_time: Duration) -> Arc<Self> {
        Arc::new(Self {
            strategy,
            origin: Instant::now(),
            started_ms: AtomicU64::new(0),
            duration_ms: AtomicU64::new(millis(drain_time)),
            no_successor: AtomicBool::new(false),
            hurried: AtomicBool::new(false),
        })
    }

    fn start(&self) {
        let now = millis(self.origin.elapsed()).saturating_add(1);
        let _ = self
            .started_ms
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Owner side: flips the phase for every connection at once.
#[derive(Debug)]
pub struct DrainTrigger {
    tx: watch::Sender<DrainPhase>,
    clock: Arc<DrainClock>,
}

/// Connection side: cheap to clone, one per connection.
#[derive(Debug, Clone)]
pub struct DrainSignal {
    rx: watch::Receiver<DrainPhase>,
    clock: Arc<DrainClock>,
}

/// A new trigger/signal pair in the Serving phase, with Envoy's default strategy
/// (gradual over 600 s).
pub fn channel() -> (DrainTrigger, DrainSignal) {
    channel_with(DrainStrategy::Gradual, Duration::from_secs(600))
}

/// A new trigger/signal pair whose `should_close` follows `strategy` over `drain_time`
/// (`--drain-strategy`, `--drain-time-s`).
pub fn channel_with(strategy: DrainStrategy, drain_time: Duration) -> (DrainTrigger, DrainSignal) {
    let (tx, rx) = watch::channel(DrainPhase::Serving);
    let clock = DrainClock::new(strategy, drain_time);
    (
        DrainTrigger {
            tx,
            clock: Arc::clone(&clock),
        },
        DrainSignal { rx, clock },
    )
}

impl DrainTrigger {
    /// Moves every connection to `phase` (never backwards). Reaching Draining starts the
    /// drain clock.
    pub fn set(&self, phase: DrainPhase) {
        if phase >= DrainPhase::Draining {
            self.clock.start();
        }
        self.tx.send_if_modified(|p| {
            if phase > *p {
                *p = phase;
                true
            } else {
                false
            }
        });
    }

    /// Starts draining with a gradual ramp of `over` (e.g. shortened by
    /// `--parent-shutdown-time-s` on a hot restart).
    pub fn begin_drain(&self, over: Duration) {
        self.clock
            .duration_ms
            .store(millis(over), Ordering::Relaxed);
        self.set(DrainPhase::Draining);
    }

    /// Another signal for a new connection.
    /// Marks this drain as a shutdown with no successor generation: connections may
    /// close idle keep-alive connections now. During a hot-restart hand-over they must
    /// not (a client sending on one would lose its request), so this is not set then.
    pub fn close_idle_now(&self) {
        self.clock.no_successor.store(true, Ordering::Relaxed);
        self.tx.send_modify(|_| {});
    }

    /// Ends the drain quickly but without cutting requests: from now on every response
    /// closes its connection and idle connections close (a newer generation told us
    /// to terminate while we were still draining gradually).
    pub fn hurry(&self) {
        self.clock.hurried.store(true, Ordering::Relaxed);
        self.close_idle_now();
    }

    pub fn signal(&self) -> DrainSignal {
        DrainSignal {
            rx: self.tx.subscribe(),
            clock: Arc::clone(&self.clock),
        }
    }

    /// The current phase.
    pub fn phase(&self) -> DrainPhase {
        *self.tx.borrow()
    }
}

impl DrainSignal {
    /// A signal that never drains (tests, admin).
    pub fn never() -> Self {
        let (tx, rx) = watch::channel(DrainPhase::Serving);
        // Keep the sender alive forever so `wait_*` simply pends.
        std::mem::forget(tx);
        Self {
            rx,
            clock: DrainClock::new(DrainStrategy::Gradual, Duration::from_secs(600)),
        }
    }

    /// Whether `other` comes from the same trigger (the connections of one listener).
    pub fn same_source(&self, other: &DrainSignal) -> bool {
        Arc::ptr_eq(&self.clock, &other.clock)
    }

    /// True once draining (or closed).
    pub fn is_draining(&self) -> bool {
        *self.rx.borrow() >= DrainPhase::Draining
    }

    /// Per response: should this connection be told to go away now (HTTP/1.1
    /// `Connection: close`, HTTP/2 GOAWAY)? False while serving. Once draining:
    /// `immediate` says true; `gradual` says true with probability elapsed / drain time
    /// (always true once the drain time is over).
    /// True when idle keep-alive connections should close now (shutdown with no
    /// successor generation).
    pub fn close_idle(&self) -> bool {
        self.clock.no_successor.load(Ordering::Relaxed)
    }

    pub fn should_close(&self) -> bool {
        let started = self.clock.started_ms.load(Ordering::Relaxed);
        if started == 0 {
            return false;
        }
        if self.clock.hurried.load(Ordering::Relaxed) {
            return true;
        }
        match self.clock.strategy {
            DrainStrategy::Immediate => true,
            DrainStrategy::Gradual => {
                let duration = self.clock.duration_ms.load(Ordering::Relaxed);
                let now = millis(self.clock.origin.elapsed()).saturating_add(1);
                let elapsed = now.saturating_sub(started);
                elapsed >= duration || rand::random_range(0..duration) < elapsed
            }
        }
    }

    /// Resolves when the phase reaches Draining (at once if already there).
    pub async fn draining(&mut self) {
        let _ = self.rx.wait_for(|p| *p >= DrainPhase::Draining).await;
    }

    /// Resolves when the phase reaches Closed (drain time over).
    pub async fn closed(&mut self) {
        let _ = self.rx.wait_for(|p| *p >= DrainPhase::Closed).await;
    }

    /// Resolves with the phase once it is past `seen` (at once if it already is);
    /// Closed when the trigger is gone. One wait for both of a connection's phase
    /// changes: a connection keeps this future for its whole life, so it is kept small.
    pub async fn past(&mut self, seen: DrainPhase) -> DrainPhase {
        loop {
            let phase = *self.rx.borrow_and_update();
            if phase > seen {
                return phase;
            }
            if self.rx.changed().await.is_err() {
                return DrainPhase::Closed;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn phases_only_move_forward() {
        let (trigger, mut signal) = channel();
        assert!(!signal.is_draining());
        trigger.set(DrainPhase::Draining);
        signal.draining().await;
        assert!(signal.is_draining());
        trigger.set(DrainPhase::Serving);
        assert_eq!(trigger.phase(), DrainPhase::Draining);
        trigger.set(DrainPhase::Closed);
        signal.closed().await;
    }

    #[test]
    fn nothing_closes_while_serving() {
        for strategy in [DrainStrategy::Immediate, DrainStrategy::Gradual] {
            let (_trigger, signal) = channel_with(strategy, Duration::ZERO);
            assert!(!signal.should_close());
        }
        assert!(!DrainSignal::never().should_close());
    }

    #[test]
    fn immediate_closes_every_response_once_draining() {
        let (trigger, signal) = channel_with(DrainStrategy::Immediate, Duration::from_secs(600));
        trigger.set(DrainPhase::Draining);
        assert!((0..100).all(|_| signal.should_close()));
        assert!(trigger.signal().should_close(), "signals made later agree");
    }

    #[test]
    fn gradual_starts_near_zero_and_ends_at_one() {
        let (trigger, signal) = channel_with(DrainStrategy::Gradual, Duration::from_secs(3600));
        trigger.set(DrainPhase::Draining);
        // A few milliseconds into an hour-long ramp: the probability is below 1e-5.
        let closed = (0..1000).filter(|_| signal.should_close()).count();
        assert!(
            closed <= 1,
            "{closed} of 1000 closed at the start of the ramp"
        );
        // A ramp that is already over closes everything.
        trigger.begin_drain(Duration::ZERO);
        assert!((0..100).all(|_| signal.should_close()));
    }

    #[test]
    fn hurry_closes_every_response_and_idle_connections() {
        let (trigger, signal) = channel_with(DrainStrategy::Gradual, Duration::from_secs(3600));
        trigger.set(DrainPhase::Draining);
        assert!(!signal.close_idle());
        trigger.hurry();
        assert!(signal.close_idle());
        assert!((0..100).all(|_| signal.should_close()));
    }

    #[test]
    fn begin_drain_sets_the_ramp_and_the_phase() {
        let (trigger, signal) = channel_with(DrainStrategy::Gradual, Duration::from_secs(3600));
        trigger.begin_drain(Duration::ZERO);
        assert_eq!(trigger.phase(), DrainPhase::Draining);
        assert!(signal.is_draining() && signal.should_close());
    }
}
