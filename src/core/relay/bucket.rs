//! A token bucket of bytes on the shard clock: the burst is one second's worth.

use crate::core::clock::Millis;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucket {
    tokens: u64,
    at: Millis,
}

impl Bucket {
    /// A bucket holding its full burst of `rate` bytes.
    pub(crate) fn full(rate: u64, now: Millis) -> Self {
        Self {
            tokens: rate,
            at: now,
        }
    }

    /// Whether [`try_take`](Self::try_take) of `bytes` would succeed now. Takes nothing.
    pub(crate) fn can_take(&self, bytes: u64, rate: u64, now: Millis) -> bool {
        let mut probe = *self;
        probe.try_take(bytes, rate, now)
    }

    /// Refills at `rate` bytes per second up to `rate`, then takes `bytes` if there are that
    /// many.
    pub(crate) fn try_take(&mut self, bytes: u64, rate: u64, now: Millis) -> bool {
        let elapsed = now.saturating_sub(self.at);
        let earned = rate.saturating_mul(elapsed) / 1000;
        // Time that earned less than a byte is kept for the next call, so a slow rate still
        // refills when called every millisecond.
        if earned > 0 {
            self.tokens = self.tokens.saturating_add(earned).min(rate);
            self.at = now;
        }
        if self.tokens < bytes {
            return false;
        }
        self.tokens -= bytes;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_one_second_then_refills_at_the_rate() {
        let mut b = Bucket::full(1000, 0);
        assert!(b.try_take(600, 1000, 0));
        assert!(!b.try_take(600, 1000, 0));
        assert!(b.try_take(400, 1000, 0));
        // 100 ms earn 100 bytes.
        assert!(!b.try_take(101, 1000, 100));
        assert!(b.try_take(100, 1000, 100));
        // Never more than the burst, however long it rested.
        assert!(!b.try_take(1001, 1000, 1_000_000));
        assert!(b.try_take(1000, 1000, 1_000_000));
    }

    #[test]
    fn a_slow_rate_refills_even_when_asked_every_millisecond() {
        let mut b = Bucket::full(500, 0);
        assert!(b.try_take(500, 500, 0));
        let mut got = 0;
        for now in 1..=1000 {
            if b.try_take(1, 500, now) {
                got += 1;
            }
        }
        assert!((499..=500).contains(&got), "got {got} bytes in one second");
    }
}
