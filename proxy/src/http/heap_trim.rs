//! Gives the heap pages that connections freed on parking back to the kernel (issue 17).
//! A connection's active period (its task, hyper's buffers, the exchange) is freed when
//! it parks, but glibc keeps those pages resident, mixed with the long-lived state of
//! the connections parked meanwhile: after a burst of connections that went idle, about
//! 600 bytes per connection were free yet resident (measured with `malloc_trim` on a
//! process holding 8,000 idle connections). The worker's parked set trims once, a
//! moment after enough connections parked: one wake-up per burst, none while idle.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use tokio::time::Sleep;

/// Parks since the last trim that make another worth its walk of the heap.
const TRIM_AFTER_PARKS: usize = 64;

/// How long after the parks that make a trim due it runs: a burst's later parks free
/// their pages meanwhile, and a steady stream of parks trims at most this often.
const TRIM_DELAY: Duration = Duration::from_secs(1);

/// A trim due after parks.
#[derive(Default)]
pub(super) struct HeapTrim {
    parks: usize,
    timer: Option<Pin<Box<Sleep>>>,
}

impl HeapTrim {
    /// A connection parked: arms the trim once enough did.
    pub(super) fn on_park(&mut self) {
        self.parks += 1;
        if self.parks >= TRIM_AFTER_PARKS && self.timer.is_none() {
            self.timer = Some(Box::pin(tokio::time::sleep(TRIM_DELAY)));
        }
    }

    /// Trims when the armed timer fires (registers its wake-up otherwise).
    pub(super) fn poll(&mut self, cx: &mut Context<'_>) {
        let Some(timer) = self.timer.as_mut() else {
            return;
        };
        if timer.as_mut().poll(cx).is_pending() {
            return;
        }
        self.timer = None;
        self.parks = 0;
        trim();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: `malloc_trim` takes the allocator's own locks and only releases pages of
    // free chunks; it touches no memory the program holds.
    #[allow(unsafe_code)]
    let released = unsafe { libc::malloc_trim(0) };
    tracing::trace!(released, "heap trimmed after parking");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
