//! A timer heap with lazy deletion: what the shard keeps its sessions' deadlines in, and the
//! relays theirs.
//!
//! Each owner (a session, a relay) has at most one live entry, at the instant it records itself
//! (its `timer_at`). Moving a deadline later leaves the entry where it is: it fires early, the
//! owner finds nothing due and schedules itself again. Moving it earlier pushes a new entry; the
//! old one is then stale, and so is every entry of an owner that is gone. Stale entries are
//! skipped by the owner when they pop ([`Timers::pop_due`] hands them out like the others, and
//! only the owner knows its live entry). So a timer costs what expires, never a scan of every
//! owner.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::clock::Millis;

/// Deadlines keyed by `K` (who to wake), the earliest first; ties go to the smaller key.
#[derive(Debug)]
pub(crate) struct Timers<K> {
    heap: BinaryHeap<Reverse<(Millis, K)>>,
}

impl<K: Ord + Copy> Default for Timers<K> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
        }
    }
}

impl<K: Ord + Copy> Timers<K> {
    /// Wakes `key` at `at`.
    pub(crate) fn push(&mut self, at: Millis, key: K) {
        self.heap.push(Reverse((at, key)));
    }

    /// The earliest entry, live or stale.
    pub(crate) fn next_due(&self) -> Option<Millis> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Millis) -> Option<(Millis, K)> {
        let &Reverse((at, _)) = self.heap.peek()?;
        if at > now {
            return None;
        }
        self.heap.pop().map(|Reverse(entry)| entry)
    }

    /// Every entry, in no order (for invariant checks).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Millis, K)> + '_ {
        self.heap.iter().map(|Reverse(entry)| *entry)
    }

    /// Whether `key` has an entry at `at`.
    pub(crate) fn contains(&self, at: Millis, key: K) -> bool {
        self.iter().any(|entry| entry == (at, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_what_is_due_earliest_first() {
        let mut timers = Timers::default();
        timers.push(30, 'c');
        timers.push(10, 'a');
        timers.push(20, 'b');
        assert_eq!(timers.next_due(), Some(10));
        assert_eq!(timers.pop_due(5), None);
        assert_eq!(timers.pop_due(25), Some((10, 'a')));
        assert_eq!(timers.pop_due(25), Some((20, 'b')));
        assert_eq!(timers.pop_due(25), None);
        assert_eq!(timers.next_due(), Some(30));
    }

    #[test]
    fn ties_go_to_the_smaller_key_and_the_instant_itself_is_due() {
        let mut timers = Timers::default();
        timers.push(10, 2u32);
        timers.push(10, 1u32);
        assert_eq!(timers.pop_due(10), Some((10, 1)));
        assert_eq!(timers.pop_due(10), Some((10, 2)));
        assert_eq!(timers.next_due(), None);
    }

    #[test]
    fn stale_entries_stay_until_popped_and_can_be_found() {
        let mut timers = Timers::default();
        timers.push(50, 7u32);
        // Rescheduled earlier: the old entry stays, stale, for its owner to skip.
        timers.push(20, 7u32);
        assert!(timers.contains(20, 7) && timers.contains(50, 7));
        assert!(!timers.contains(30, 7));
        assert_eq!(timers.iter().count(), 2);
        assert_eq!(timers.pop_due(100), Some((20, 7)));
        assert_eq!(timers.pop_due(100), Some((50, 7)));
    }
}
