//! The parked set's deadlines (issue 17): when the set must look at each parked
//! connection again (idle timeout, max connection duration, drain). One min-heap of
//! `u64` keys in one array, so that an idle connection costs 8 bytes here, and none of
//! them is a small allocation made among active connections' short-lived ones (a
//! B-tree's nodes were: each kept a page of freed memory resident). A deadline that
//! changes or whose connection leaves is not searched for: its key stays behind,
//! stale, and is dropped when it comes first or when stale keys outnumber live ones.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// A slot's deadline when it has none.
pub(super) const NO_DEADLINE: u64 = u64::MAX;

/// Bits of a key that hold the slot.
const SLOT_BITS: u32 = 24;

/// Slots a set holds at most (their index fits a key; one short of the mask, so that
/// no key is [`NO_DEADLINE`]). Far more than a worker's descriptors.
pub(super) const MAX_SLOTS: usize = (1 << SLOT_BITS) - 1;

/// Milliseconds a key holds at most (about 34 years; later deadlines wait that long).
const MAX_MS: u64 = (1 << (64 - SLOT_BITS)) - 1;

/// Stale keys kept beyond the live ones before the heap is swept.
const STALE_SLACK: usize = 256;

/// The deadlines of one parked set. A key is the milliseconds from the set's start to
/// the deadline, rounded up so that a connection is never looked at before its
/// deadline, in the high bits, and the slot in the low [`SLOT_BITS`]: ordered by
/// deadline. A key is live while its slot's deadline is that key (the caller's
/// `current` says).
pub(super) struct Deadlines {
    epoch: Instant,
    heap: BinaryHeap<Reverse<u64>>,
    /// Keys in `heap` that are some slot's deadline.
    live: usize,
}

impl Deadlines {
    pub(super) fn new() -> Self {
        Self {
            epoch: Instant::now(),
            heap: BinaryHeap::new(),
            live: 0,
        }
    }

    /// The key for `slot` (< [`MAX_SLOTS`]) due at `at`.
    pub(super) fn key(&self, at: Instant, slot: usize) -> u64 {
        let after = at.saturating_duration_since(self.epoch);
        let ms = after.as_millis() + u128::from(!after.subsec_nanos().is_multiple_of(1_000_000));
        let ms = u64::try_from(ms).unwrap_or(u64::MAX).min(MAX_MS);
        (ms << SLOT_BITS) | (slot as u64 & MAX_SLOTS as u64)
    }

    /// When `key` is due.
    pub(super) fn at(&self, key: u64) -> Instant {
        self.epoch + Duration::from_millis(key >> SLOT_BITS)
    }

    /// The slot `key` is for.
    pub(super) fn slot(key: u64) -> usize {
        (key & MAX_SLOTS as u64) as usize
    }

    /// A slot's deadline became `new` (its slot already says so) instead of `old`
    /// (either [`NO_DEADLINE`]).
    pub(super) fn replace(&mut self, old: u64, new: u64, current: impl Fn(u64) -> bool) {
        if old != NO_DEADLINE {
            self.live -= 1;
        }
        if new != NO_DEADLINE {
            self.heap.push(Reverse(new));
            self.live += 1;
        }
        if self.heap.len() > 2 * self.live + STALE_SLACK {
            self.heap.retain(|&Reverse(key)| current(key));
            if self.heap.capacity() > 4 * self.heap.len() + STALE_SLACK {
                self.heap.shrink_to(2 * self.heap.len() + STALE_SLACK);
            }
        }
    }

    /// The earliest live key (stale ones before it are dropped).
    fn first(&mut self, current: impl Fn(u64) -> bool) -> Option<u64> {
        while let Some(&Reverse(key)) = self.heap.peek() {
            if current(key) {
                return Some(key);
            }
            self.heap.pop();
        }
        None
    }

    /// Takes the earliest live key if it is due at `now` (its slot must then be told
    /// it has no deadline).
    pub(super) fn pop_due(&mut self, now: Instant, current: impl Fn(u64) -> bool) -> Option<u64> {
        let key = self.first(current)?;
        if self.at(key) > now {
            return None;
        }
        self.heap.pop();
        self.live -= 1;
        Some(key)
    }

    /// When the earliest live deadline is due.
    pub(super) fn next_at(&mut self, current: impl Fn(u64) -> bool) -> Option<Instant> {
        self.first(current).map(|key| self.at(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_by_deadline_round_up_and_name_their_slot() {
        let deadlines = Deadlines::new();
        let soon = deadlines.epoch + Duration::from_micros(1_500);
        let later = deadlines.epoch + Duration::from_millis(3);
        let a = deadlines.key(soon, 7);
        let b = deadlines.key(later, 3);
        assert!(a < b, "ordered by deadline before slot");
        assert_eq!(
            deadlines.at(a),
            deadlines.epoch + Duration::from_millis(2),
            "1.5 ms rounds up to 2"
        );
        assert_eq!(Deadlines::slot(a), 7);
        assert_eq!(Deadlines::slot(b), 3);
        let far = deadlines.key(deadlines.epoch + Duration::from_secs(1 << 40), 1);
        assert_ne!(far, NO_DEADLINE);
        assert_eq!(Deadlines::slot(far), 1);
    }

    #[test]
    fn stale_keys_are_skipped_and_swept() {
        let mut deadlines = Deadlines::new();
        // Slot i's current deadline, as a set's slots would say.
        let mut slots = vec![NO_DEADLINE; 4];
        let epoch = deadlines.epoch;
        let t = |ms| epoch + Duration::from_millis(ms);
        let (k0, k1) = (deadlines.key(t(10), 0), deadlines.key(t(20), 1));
        slots[0] = k0;
        deadlines.replace(NO_DEADLINE, k0, |_| true);
        slots[1] = k1;
        deadlines.replace(NO_DEADLINE, k1, |_| true);
        // Slot 0 moves later: its first key goes stale.
        let k0_later = deadlines.key(t(30), 0);
        slots[0] = k0_later;
        let current = |slots: &[u64], key| slots[Deadlines::slot(key)] == key;
        deadlines.replace(k0, k0_later, |key| current(&slots, key));
        assert_eq!(deadlines.next_at(|key| current(&slots, key)), Some(t(20)));
        assert_eq!(
            deadlines.pop_due(t(25), |key| current(&slots, key)),
            Some(k1)
        );
        slots[1] = NO_DEADLINE;
        assert_eq!(deadlines.pop_due(t(25), |key| current(&slots, key)), None);
        // Churn: stale keys never outgrow the live ones by more than the slack.
        for i in 0..10_000u64 {
            let key = deadlines.key(t(40 + i), 2);
            let old = std::mem::replace(&mut slots[2], key);
            deadlines.replace(old, key, |key| current(&slots, key));
        }
        assert!(deadlines.heap.len() <= 2 * deadlines.live + STALE_SLACK + 1);
        assert_eq!(deadlines.live, 2);
        assert_eq!(
            deadlines.pop_due(t(35), |key| current(&slots, key)),
            Some(k0_later)
        );
    }
}
