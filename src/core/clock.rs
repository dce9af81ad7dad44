//! Shard-local time: milliseconds since the shard was made. Storing `u64` milliseconds rather
//! than `Instant` (16 bytes) keeps players and timers small; millisecond resolution is plenty for
//! timeouts of 50 ms and more.

use std::time::{Duration, Instant};

/// Milliseconds since a shard's epoch.
pub(crate) type Millis = u64;

/// Converts between `Instant` and [`Millis`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    epoch: Instant,
}

impl Clock {
    pub(crate) fn new(epoch: Instant) -> Self {
        Self { epoch }
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
