//! Per-IP send budgets: what keeps rabid-punch from being a flood cannon.
//!
//! UDP source addresses can be forged, and this protocol's replies are bigger than its requests
//! (a 16-byte `s:` makes the start message go to up to 12 players 8 times). So every datagram the
//! server sends is charged to the destination's [`IpKey`]: a token bucket of bytes that
//!
//! - starts full at `burst` bytes, and refills at `refill_per_sec` bytes per second up to `burst`;
//! - also earns `earn_factor` (3) times the bytes received from that IP (QUIC's rule before an
//!   address is validated), again up to `burst`.
//!
//! When the bucket cannot pay for a datagram, the datagram is dropped and counted. Whatever a
//! forger sends, a victim then receives at most `earn_factor x` what was sent in its name, plus
//! `burst`, plus `refill_per_sec` per second.
//!
//! Buckets live in a `DashMap` shared by the receiver (which credits) and the workers (which
//! spend). A bucket back at `burst` is the same as no bucket, so [`SendBudgets::sweep`] drops
//! those; the table has a size cap, past which new addresses get no reply.

use std::net::IpAddr;
use std::time::Instant;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use crate::core::{Bucket, Clock, Refill};
use crate::ip_key::IpKey;

/// The limits of the send budgets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetConfig {
    /// Bytes an address may receive at once; also the bucket's cap.
    pub burst: u64,
    /// Bytes per second the bucket refills by.
    pub refill_per_sec: u64,
    /// Bytes of credit earned per byte received from the address.
    pub earn_factor: u64,
    /// Addresses tracked at most; past it, new addresses get no reply until a sweep frees room.
    pub max_tracked: usize,
}

impl Default for BudgetConfig {
    /// Sized so that real use never touches them (see the README's Security section): a
    /// 12-player lobby behind one address, pinging twice a second and then started without
    /// confirmations, needs about 37 KB at the start and 2.4 KB/s beyond what it earns
    /// (`tests/legit_traffic.rs` runs exactly that).
    fn default() -> Self {
        Self {
            burst: 64 * 1024,
            refill_per_sec: 4 * 1024,
            earn_factor: 3,
            max_tracked: 1_000_000,
        }
    }
}

/// Why [`SendBudgets::try_spend`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The address's bucket is empty.
    Budget,
    /// The table is full and the address has no bucket.
    TableFull,
}

/// The send budgets of every address. See the [module](self) docs.
#[derive(Debug)]
pub struct SendBudgets {
    config: BudgetConfig,
    clock: Clock,
    table: DashMap<IpKey, Bucket>,
}

impl SendBudgets {
    /// The budgets, on the server's one `clock`.
    pub fn new(config: BudgetConfig, clock: Clock) -> Self {
        Self {
            config,
            clock,
            table: DashMap::new(),
        }
    }

    pub fn config(&self) -> &BudgetConfig {
        &self.config
    }

    fn refill(&self) -> Refill {
        Refill {
            per_sec: self.config.refill_per_sec,
            burst: self.config.burst,
        }
    }

    /// Credits `bytes` received from `ip`. An address without a bucket has a full one already,
    /// so nothing is stored for it.
    pub fn on_received(&self, ip: IpAddr, bytes: usize, now: Instant) {
        if let Some(mut bucket) = self.table.get_mut(&IpKey::from(ip)) {
            let earned = bytes as u64 * self.config.earn_factor;
            bucket.credit(earned, self.refill(), self.clock.millis(now));
        }
    }

    /// Charges a datagram of `bytes` to `ip`, or says why it must not be sent.
    pub fn try_spend(&self, ip: IpAddr, bytes: usize, now: Instant) -> Result<(), Refusal> {
        let now = self.clock.millis(now);
        let (bytes, refill) = (bytes as u64, self.refill());
        let key = IpKey::from(ip);
        if let Some(mut bucket) = self.table.get_mut(&key) {
            return bucket
                .try_take(bytes, refill, now)
                .then_some(())
                .ok_or(Refusal::Budget);
        }
        if self.table.len() >= self.config.max_tracked {
            return Err(Refusal::TableFull);
        }
        match self.table.entry(key) {
            Entry::Occupied(mut entry) => {
                if !entry.get_mut().try_take(bytes, refill, now) {
                    return Err(Refusal::Budget);
                }
            }
            Entry::Vacant(entry) => {
                let mut bucket = Bucket::full(refill, now);
                if !bucket.try_take(bytes, refill, now) {
                    return Err(Refusal::Budget);
                }
                entry.insert(bucket);
            }
        }
        Ok(())
    }

    /// Forgets buckets that have refilled to full: they mean the same as no bucket.
    pub fn sweep(&self, now: Instant) {
        let (now, refill) = (self.clock.millis(now), self.refill());
        self.table
            .retain(|_, bucket| !bucket.refilled_to_full(refill, now));
    }

    /// Addresses with a bucket now.
    pub fn tracked(&self) -> usize {
        self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 2));

    fn budgets(burst: u64, refill: u64) -> (SendBudgets, Instant) {
        let t0 = Instant::now();
        let config = BudgetConfig {
            burst,
            refill_per_sec: refill,
            earn_factor: 3,
            max_tracked: 2,
        };
        (SendBudgets::new(config, Clock::new(t0)), t0)
    }

    #[test]
    fn burst_then_refusal_per_address() {
        let (b, t0) = budgets(100, 0);
        assert_eq!(b.try_spend(A, 60, t0), Ok(()));
        assert_eq!(b.try_spend(A, 40, t0), Ok(()));
        assert_eq!(b.try_spend(A, 1, t0), Err(Refusal::Budget));
        // Another address has its own budget.
        assert_eq!(b.try_spend(B, 100, t0), Ok(()));
    }

    #[test]
    fn refills_over_time_up_to_the_burst() {
        let (b, t0) = budgets(100, 1000);
        b.try_spend(A, 100, t0).unwrap();
        assert_eq!(
            b.try_spend(A, 10, t0 + Duration::from_millis(5)),
            Err(Refusal::Budget)
        );
        assert_eq!(b.try_spend(A, 10, t0 + Duration::from_millis(10)), Ok(()));
        let later = t0 + Duration::from_secs(60);
        assert_eq!(b.try_spend(A, 100, later), Ok(()));
        assert_eq!(b.try_spend(A, 1, later), Err(Refusal::Budget));
    }

    #[test]
    fn received_bytes_earn_three_times_their_size() {
        let (b, t0) = budgets(1000, 0);
        b.try_spend(A, 1000, t0).unwrap();
        b.on_received(A, 20, t0);
        assert_eq!(b.try_spend(A, 60, t0), Ok(()));
        assert_eq!(b.try_spend(A, 1, t0), Err(Refusal::Budget));
    }

    #[test]
    fn full_buckets_are_swept_and_the_table_is_capped() {
        let (b, t0) = budgets(100, 1000);
        b.try_spend(A, 50, t0).unwrap();
        b.try_spend(B, 50, t0).unwrap();
        let c: IpAddr = "198.51.100.3".parse().unwrap();
        assert_eq!(b.try_spend(c, 1, t0), Err(Refusal::TableFull));
        b.sweep(t0 + Duration::from_millis(10));
        assert_eq!(b.tracked(), 2);
        b.sweep(t0 + Duration::from_millis(50));
        assert_eq!(b.tracked(), 0);
        assert_eq!(b.try_spend(c, 1, t0 + Duration::from_millis(50)), Ok(()));
    }
}
