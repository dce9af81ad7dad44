//! The server's one clock: milliseconds since an epoch taken once at start-up and handed to
//! every shard and to the send budgets, so that a millisecond count kept in shared state (the
//! relay limits, the budgets) means the same instant whichever thread wrote it. Storing `u64`
//! milliseconds rather than `Instant` (16 bytes) keeps players and timers small; millisecond
//! resolution is plenty for timeouts of 50 ms and more.

use std::time::{Duration, Instant};

/// Milliseconds since the clock's epoch.
pub(crate) type Millis = u64;

/// Converts between `Instant` and milliseconds since its epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    /// A clock whose millisecond 0 is `epoch`.
    pub fn new(epoch: Instant) -> Self {
        Self { epoch }
    }

    /// A clock that reads `millis` at `at`: a successor process's clock continuing the one its
    /// predecessor read `millis` on when it handed its state over
    /// ([`crate::core::handover`]), so that the times in that state keep their instants. (If
    /// `at` is too early for the platform to count back `millis` from it, the epoch is `at`.)
    pub fn continuing(millis: u64, at: Instant) -> Self {
        let epoch = at.checked_sub(Duration::from_millis(millis)).unwrap_or(at);
        Self { epoch }
    }

    /// The instant of millisecond 0.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// `now` as milliseconds since the epoch, rounded down (an instant before the epoch is 0).
    pub(crate) fn millis(&self, now: Instant) -> Millis {
        now.saturating_duration_since(self.epoch).as_millis() as Millis
    }

    /// The instant `ms` milliseconds after the epoch. `millis(instant(ms)) == ms`, so a caller
    /// that waits until this instant finds the deadline due.
    pub(crate) fn instant(&self, ms: Millis) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }
}

/// A duration in whole milliseconds, at least 1 so that a deadline always lies in the future.
pub(crate) fn ms(duration: Duration) -> Millis {
    (duration.as_millis() as Millis).max(1)
}
