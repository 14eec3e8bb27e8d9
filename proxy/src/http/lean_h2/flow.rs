//! HTTP/2 flow-control windows (RFC 9113 §5.2, §6.9) for Baton's own server codec: what
//! the peer may still send us (receive windows, reopened in batches as the application
//! consumes data, as nghttp2 does for Envoy) and what we may still send it (send windows,
//! moved by the peer's WINDOW_UPDATE and SETTINGS_INITIAL_WINDOW_SIZE).

use super::frame::MAX_STREAM_ID;

/// The window every connection and stream starts with before SETTINGS (RFC 9113 §6.9.2).
pub const DEFAULT_WINDOW: u32 = 65_535;

/// A window that would pass 2^31 - 1 (RFC 9113 §6.9.1: FLOW_CONTROL_ERROR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowOverflow;

/// What we let the peer send on a stream or the connection, and what the application
/// has consumed but we have not yet announced back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvWindow {
    /// Bytes the peer may still send.
    available: u32,
    /// Bytes consumed (released by the application) and not yet given back.
    released: u32,
    /// The window we announced: a WINDOW_UPDATE goes out once half of it is released.
    target: u32,
}

impl RecvWindow {
    pub fn new(target: u32) -> Self {
        Self {
            available: target,
            released: 0,
            target,
        }
    }

    /// Bytes the peer may still send.
    pub fn available(&self) -> u32 {
        self.available
    }

    /// Our SETTINGS_INITIAL_WINDOW_SIZE took effect (the client acknowledged it): the
    /// window moves by the difference and half the new size becomes the update threshold.
    pub fn retarget(&mut self, target: u32) {
        if target >= self.target {
            self.available = self.available.saturating_add(target - self.target);
        } else {
            self.available = self.available.saturating_sub(self.target - target);
        }
        self.target = target;
    }

    /// Counts `len` received bytes against the window; false when they do not fit
    /// (FLOW_CONTROL_ERROR), the window unchanged.
    pub fn receive(&mut self, len: u32) -> bool {
        match self.available.checked_sub(len) {
            Some(left) => {
                self.available = left;
                true
            }
            None => false,
        }
    }

    /// The application consumed `len` bytes: the increment of the WINDOW_UPDATE to send
    /// now, if half the window has been consumed since the last one (Envoy 1.40,
    /// measured: 32,767 of a 65,535 window, 8 MiB of 16, 12 MiB of 24).
    pub fn release(&mut self, len: u32) -> Option<u32> {
        self.released = self.released.saturating_add(len);
        if self.released == 0 || self.released < self.target / 2 {
            return None;
        }
        let increment = self.released.min(MAX_STREAM_ID - self.available);
        self.released = 0;
        self.available += increment;
        (increment > 0).then_some(increment)
    }
}

/// What the peer lets us send on a stream or the connection. Signed: a smaller
/// SETTINGS_INITIAL_WINDOW_SIZE can take a stream's window below zero (RFC 9113 §6.9.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendWindow(i64);

impl SendWindow {
    pub fn new(initial: u32) -> Self {
        Self(i64::from(initial))
    }

    /// Bytes we may send now (0 when the window is at or below zero).
    pub fn capacity(&self) -> u32 {
        u32::try_from(self.0.max(0)).unwrap_or(MAX_STREAM_ID)
    }

    /// A WINDOW_UPDATE `increment` (or a SETTINGS_INITIAL_WINDOW_SIZE delta).
    pub fn grow(&mut self, delta: i64) -> Result<(), WindowOverflow> {
        let next = self.0 + delta;
        if next > i64::from(MAX_STREAM_ID) {
            return Err(WindowOverflow);
        }
        self.0 = next;
        Ok(())
    }

    /// `len` bytes sent.
    pub fn consume(&mut self, len: u32) {
        self.0 -= i64::from(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recv_window_reopens_in_batches_of_half() {
        let mut w = RecvWindow::new(100);
        assert!(w.receive(60));
        assert_eq!(w.available(), 40);
        assert_eq!(w.release(30), None);
        assert_eq!(w.release(20), Some(50));
        assert_eq!(w.available(), 90);
        assert!(!w.receive(91));
        assert!(w.receive(90));
    }

    #[test]
    fn send_window_overflow_and_negative() {
        let mut w = SendWindow::new(DEFAULT_WINDOW);
        assert_eq!(
            w.grow(i64::from(MAX_STREAM_ID)),
            Err(WindowOverflow),
            "65535 + 2^31-1 passes the limit"
        );
        w.consume(65_535);
        w.grow(-10).unwrap();
        assert_eq!(w.capacity(), 0);
        w.grow(20).unwrap();
        assert_eq!(w.capacity(), 10);
    }
}
