//! The one token bucket of the server: bytes that refill at a rate up to a burst, on the shared
//! clock's milliseconds. The per-IP send budgets ([`crate::budget`]) keep one per address, the
//! relays one per relayed session and one per sender IP.
//!
//! Tokens are kept in milli-bytes, so that a refill of a few milliseconds at a slow rate is
//! exact: a bucket asked every millisecond still refills.

use super::clock::Millis;

/// How a bucket fills: `per_sec` bytes a second, up to `burst` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refill {
    pub(crate) per_sec: u64,
    pub(crate) burst: u64,
}

impl Refill {
    /// A second's worth of burst: what the relay limits use.
    pub(crate) fn per_sec(rate: u64) -> Self {
        Self {
            per_sec: rate,
            burst: rate,
        }
    }

    fn cap(&self) -> u64 {
        self.burst.saturating_mul(1000)
    }
}

/// A token bucket of bytes. Its [`Refill`] is the caller's, so the bucket stays two words.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucket {
    milli_bytes: u64,
    at: Millis,
}

impl Bucket {
    /// A bucket holding its full burst.
    pub(crate) fn full(refill: Refill, now: Millis) -> Self {
        Self {
            milli_bytes: refill.cap(),
            at: now,
        }
    }

    /// Adds what the time since the last call earned, up to the burst.
    fn refill(&mut self, refill: Refill, now: Millis) {
        let elapsed = now.saturating_sub(self.at);
        self.milli_bytes = self
            .milli_bytes
            .saturating_add(elapsed.saturating_mul(refill.per_sec))
            .min(refill.cap());
        self.at = self.at.max(now);
    }

    /// Whether [`try_take`](Self::try_take) of `bytes` would succeed now. Takes nothing.
    pub(crate) fn can_take(&self, bytes: u64, refill: Refill, now: Millis) -> bool {
        let mut probe = *self;
        probe.try_take(bytes, refill, now)
    }

    /// Refills, then takes `bytes` if there are that many.
    pub(crate) fn try_take(&mut self, bytes: u64, refill: Refill, now: Millis) -> bool {
        self.refill(refill, now);
        let cost = bytes.saturating_mul(1000);
        if self.milli_bytes < cost {
            return false;
        }
        self.milli_bytes -= cost;
        true
    }

    /// Refills, then adds `bytes` earned otherwise, up to the burst.
    pub(crate) fn credit(&mut self, bytes: u64, refill: Refill, now: Millis) {
        self.refill(refill, now);
        self.milli_bytes = self
            .milli_bytes
            .saturating_add(bytes.saturating_mul(1000))
            .min(refill.cap());
    }

    /// The bucket's state (milli-bytes, and the millisecond it was last refilled at), for the
    /// hand-over to a successor process.
    pub(crate) fn parts(&self) -> (u64, Millis) {
        (self.milli_bytes, self.at)
    }

    /// The bucket [`parts`](Self::parts) returned. Any values are safe: a refill caps what it
    /// holds at the burst.
    pub(crate) fn from_parts(milli_bytes: u64, at: Millis) -> Self {
        Self { milli_bytes, at }
    }

    /// Refills, then tells whether the bucket holds its whole burst (and so means the same as
    /// no bucket at all).
    pub(crate) fn refilled_to_full(&mut self, refill: Refill, now: Millis) -> bool {
        self.refill(refill, now);
        self.milli_bytes >= refill.cap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_one_second_then_refills_at_the_rate() {
        let rate = Refill::per_sec(1000);
        let mut b = Bucket::full(rate, 0);
        assert!(b.try_take(600, rate, 0));
        assert!(!b.try_take(600, rate, 0));
        assert!(b.try_take(400, rate, 0));
        // 100 ms earn 100 bytes.
        assert!(!b.try_take(101, rate, 100));
        assert!(b.try_take(100, rate, 100));
        // Never more than the burst, however long it rested.
        assert!(!b.try_take(1001, rate, 1_000_000));
        assert!(b.try_take(1000, rate, 1_000_000));
    }

    #[test]
    fn a_slow_rate_refills_even_when_asked_every_millisecond() {
        let rate = Refill::per_sec(500);
        let mut b = Bucket::full(rate, 0);
        assert!(b.try_take(500, rate, 0));
        let mut got = 0;
        for now in 1..=1000 {
            if b.try_take(1, rate, now) {
                got += 1;
            }
        }
        assert!((499..=500).contains(&got), "got {got} bytes in one second");
    }

    #[test]
    fn credit_and_refill_stop_at_the_burst_and_time_never_runs_back() {
        let refill = Refill {
            per_sec: 1000,
            burst: 100,
        };
        let mut b = Bucket::full(refill, 10);
        assert!(b.try_take(100, refill, 10));
        b.credit(30, refill, 10);
        assert!(!b.can_take(31, refill, 10));
        // An earlier instant earns nothing and does not move the bucket's time back.
        assert!(!b.try_take(31, refill, 5));
        assert!(b.try_take(30, refill, 10));
        b.credit(1000, refill, 10);
        assert!(b.refilled_to_full(refill, 10));
        assert!(b.try_take(100, refill, 10) && !b.refilled_to_full(refill, 10));
    }
}
