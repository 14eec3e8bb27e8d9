//! Drain signal: flipped once when the process starts draining (SIGTERM, hot restart
//! hand-over, `/drain_listeners`). Connections watch it: HTTP/1.1 responses then carry
//! `Connection: close`, idle HTTP/1.1 connections close, HTTP/2 connections send GOAWAY,
//! TCP proxy connections stay until the drain time ends and are then closed (`closed`).

use tokio::sync::watch;

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

/// Owner side: flips the phase for every connection at once.
#[derive(Debug)]
pub struct DrainTrigger {
    tx: watch::Sender<DrainPhase>,
}

/// Connection side: cheap to clone, one per connection.
#[derive(Debug, Clone)]
pub struct DrainSignal {
    rx: watch::Receiver<DrainPhase>,
}

/// A new trigger/signal pair in the Serving phase.
pub fn channel() -> (DrainTrigger, DrainSignal) {
    let (tx, rx) = watch::channel(DrainPhase::Serving);
    (DrainTrigger { tx }, DrainSignal { rx })
}

impl DrainTrigger {
    /// Moves every connection to `phase` (never backwards).
    pub fn set(&self, phase: DrainPhase) {
        self.tx.send_if_modified(|p| {
            if phase > *p {
                *p = phase;
                true
            } else {
                false
            }
        });
    }

    /// Another signal for a new connection.
    pub fn signal(&self) -> DrainSignal {
        DrainSignal {
            rx: self.tx.subscribe(),
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
        Self { rx }
    }

    /// True once draining (or closed).
    pub fn is_draining(&self) -> bool {
        *self.rx.borrow() >= DrainPhase::Draining
    }

    /// Resolves when the phase reaches Draining (at once if already there).
    pub async fn draining(&mut self) {
        let _ = self.rx.wait_for(|p| *p >= DrainPhase::Draining).await;
    }

    /// Resolves when the phase reaches Closed (drain time over).
    pub async fn closed(&mut self) {
        let _ = self.rx.wait_for(|p| *p >= DrainPhase::Closed).await;
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
}
