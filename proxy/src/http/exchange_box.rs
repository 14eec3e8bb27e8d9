//! The heap slot each exchange's future runs in, reused across exchanges on a worker
//! thread (issues 16 and 17).
//!
//! The connection manager boxes each exchange's future (several KB), so that what the
//! codecs move around per request is small. An allocation that size is past glibc's
//! per-thread cache and costs several hundred instructions to allocate and free; here
//! the memory of a finished exchange goes to a small per-thread list of spare slots
//! and the next exchange's future is built in one of them. Only slots of one layout are
//! kept, at most [`SPARE_SLOTS`] per thread, so what is kept is bounded and the same
//! however many connections there are.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};

/// Spare slots kept per thread: enough for a batch of exchanges that end together
/// (one event loop turn) before as many begin.
const SPARE_SLOTS: usize = 32;

/// The spare slots of one thread, all of `layout`.
struct Spares {
    layout: Option<Layout>,
    slots: Vec<NonNull<u8>>,
}

impl Drop for Spares {
    fn drop(&mut self) {
        if let Some(layout) = self.layout {
            for slot in self.slots.drain(..) {
                // SAFETY: each slot was allocated with `layout` and is owned by the list.
                #[allow(unsafe_code)]
                unsafe {
                    dealloc(slot.as_ptr(), layout)
                };
            }
        }
    }
}

thread_local! {
    static SPARES: RefCell<Spares> = const {
        RefCell::new(Spares { layout: None, slots: Vec::new() })
    };
}

/// A future in a reused heap slot (an owned, pinned box).
pub(crate) struct ExchangeBox<F> {
    slot: NonNull<F>,
}

// SAFETY: the box owns its `F` exclusively, as `Box<F>` does.
#[allow(unsafe_code)]
unsafe impl<F: Send> Send for ExchangeBox<F> {}

impl<F> ExchangeBox<F> {
    /// Builds `make()`'s future in a spare slot, or in a new one.
    pub(crate) fn new(make: impl FnOnce() -> F) -> Self {
        let layout = Layout::new::<F>();
        assert!(layout.size() > 0, "an exchange future has state");
        let spare = SPARES.with(|spares| {
            let mut spares = spares.try_borrow_mut().ok()?;
            if spares.layout == Some(layout) {
                spares.slots.pop()
            } else {
                None
            }
        });
        let slot = spare.unwrap_or_else(|| {
            // SAFETY: the layout's size is not zero (asserted above).
            #[allow(unsafe_code)]
            let raw = unsafe { alloc(layout) };
            NonNull::new(raw).unwrap_or_else(|| handle_alloc_error(layout))
        });
        let slot = slot.cast::<F>();
        // SAFETY: the slot is allocated for `F`'s layout, unused and owned here; the
        // future is written into it before anything reads it.
        #[allow(unsafe_code)]
        unsafe {
            slot.as_ptr().write(make())
        };
        Self { slot }
    }
}

impl<F> Drop for ExchangeBox<F> {
    fn drop(&mut self) {
        let layout = Layout::new::<F>();
        // SAFETY: the slot holds an `F` that is dropped only here, once.
        #[allow(unsafe_code)]
        unsafe {
            self.slot.as_ptr().drop_in_place()
        };
        let slot = self.slot.cast::<u8>();
        let kept = SPARES
            .try_with(|spares| {
                let Ok(mut spares) = spares.try_borrow_mut() else {
                    return false;
                };
                if spares.layout.is_none() {
                    spares.layout = Some(layout);
                }
                if spares.layout != Some(layout) || spares.slots.len() >= SPARE_SLOTS {
                    return false;
                }
                spares.slots.push(slot);
                true
            })
            .unwrap_or(false);
        if !kept {
            // SAFETY: the slot was allocated with `layout` and is no longer used.
            #[allow(unsafe_code)]
            unsafe {
                dealloc(slot.as_ptr(), layout)
            };
        }
    }
}

impl<F: Future> Future for ExchangeBox<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: the future never moves out of its slot (the slot moves with no box,
        // only the pointer to it does) and is dropped in place.
        #[allow(unsafe_code)]
        let future = unsafe { Pin::new_unchecked(&mut *self.slot.as_ptr()) };
        future.poll(cx)
    }
}

// The future is pinned in its slot whatever happens to the box.
impl<F> Unpin for ExchangeBox<F> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Counted(Arc<AtomicUsize>, [u8; 4096]);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[tokio::test]
    async fn runs_the_future_drops_it_once_and_reuses_its_slot() {
        let drops = Arc::new(AtomicUsize::new(0));
        let counted = Counted(drops.clone(), [7; 4096]);
        // The whole value moves into the future (not a copy of one field).
        let first = ExchangeBox::new(move || async move {
            let counted = counted;
            counted.1[4095] as usize
        });
        let at = first.slot.as_ptr() as usize;
        assert_eq!(drops.load(Ordering::Relaxed), 0);
        assert_eq!(first.await, 7);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        let counted = Counted(drops.clone(), [9; 4096]);
        let second = ExchangeBox::new(move || async move {
            let counted = counted;
            counted.1[0] as usize
        });
        assert_eq!(second.slot.as_ptr() as usize, at);
        // Dropped before it ran: what it holds is dropped with it.
        drop(second);
        assert_eq!(drops.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_future_of_another_layout_gets_its_own_allocation() {
        let small = ExchangeBox::new(|| async { 1u8 });
        let large = ExchangeBox::new(|| async {
            let buf = [3u8; 2048];
            std::future::ready(()).await;
            buf[1]
        });
        drop(small);
        drop(large);
    }
}
