//! A shard on a fake clock, driven as the runtime drives it: for the unit tests of the core,
//! the integration tests, the fuzz targets and anyone embedding the core. Nothing here sleeps or
//! reads the clock after [`Driver::new`]; time moves only when the caller says so.
//!
//! The one rule worth having in one place is [`Driver::advance`]'s: to move the clock, wake the
//! shard at each of its deadlines on the way (as the worker does, blocking until the next one),
//! not only at the end, so that what a timer sends carries the time it was due.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::front::{FrontDoor, Verdict};
use super::shard::Shard;
use crate::outbox::Outbox;
use crate::wire::lobby::write_extension_error;

/// A shard, its outbox and a fake clock.
#[derive(Debug)]
pub struct Driver {
    pub shard: Shard,
    /// What the shard queued since the caller last cleared it.
    pub out: Outbox,
    /// The instant the driver started at.
    pub start: Instant,
    /// The fake clock's time now.
    pub now: Instant,
    /// The front door of a one-shard server, for [`Driver::receive`].
    door: FrontDoor,
}

impl Driver {
    /// Drives `shard` from `start`.
    pub fn new(shard: Shard, start: Instant) -> Self {
        Self {
            shard,
            out: Outbox::new(),
            start,
            now: start,
            door: FrontDoor::new(1),
        }
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// [`elapsed`](Self::elapsed) in whole milliseconds.
    pub fn elapsed_ms(&self) -> u64 {
        self.elapsed().as_millis() as u64
    }

    /// `from` sends `datagram` to the server port, arriving on local address `local`: it goes
    /// through the server's front door, then to the shard, exactly as in the server.
    pub fn receive(&mut self, from: SocketAddr, local: Option<IpAddr>, datagram: &[u8]) {
        match self.door.handle(from, local, datagram, false) {
            Verdict::Route { routed, .. } => self.shard.handle(
                self.now,
                routed.from,
                routed.local,
                &routed.request,
                &mut self.out,
            ),
            Verdict::Lobby { routed, .. } => {
                self.shard.handle_lobby(self.now, &routed, &mut self.out)
            }
            Verdict::Directory { from, query } => {
                let directory = self.shard.directory();
                let now = self.now;
                self.out
                    .push_unless_empty(from, |buf| directory.answer(&query, now, buf));
            }
            Verdict::Reply { to, error } => self.out.push_error(to, error),
            Verdict::ReplyLobby { to, error } => self
                .out
                .push_with(to, |buf| write_extension_error(buf, error)),
            Verdict::Drop(_) => {}
        }
    }

    /// `from` sends `datagram` straight to the shard, without the front door: what a shard
    /// alone answers (it answers all garbage, however short).
    pub fn datagram(&mut self, from: SocketAddr, local: Option<IpAddr>, datagram: &[u8]) {
        self.shard
            .handle_datagram_on(self.now, from, local, datagram, &mut self.out);
    }

    /// `from` sends `payload` to relay port `port`.
    pub fn relayed(&mut self, port: u16, from: SocketAddr, payload: &[u8]) {
        self.shard
            .handle_relayed(self.now, port, from, payload, &mut self.out);
    }

    /// Moves the clock `by` forward, waking the shard at each deadline on the way and once at
    /// the end, as the runtime does. After each wake-up `woke` gets the driver, its outbox
    /// holding what the shard queued so far (the caller drains it), its clock at the time.
    pub fn advance(&mut self, by: Duration, mut woke: impl FnMut(&mut Self)) {
        let target = self.now + by;
        while let Some(deadline) = self.shard.next_timeout() {
            if deadline > target {
                break;
            }
            self.now = self.now.max(deadline);
            self.shard.handle_timeout(self.now, &mut self.out);
            woke(self);
        }
        self.now = target;
        self.shard.handle_timeout(self.now, &mut self.out);
        woke(self);
    }

    /// Moves the clock `by` forward and wakes the shard once, at the end: a worker that was
    /// busy (or a fuzzer that skips ahead).
    pub fn jump(&mut self, by: Duration) {
        self.now += by;
        self.shard.handle_timeout(self.now, &mut self.out);
    }

    /// Moves the clock to the shard's next deadline, if it has one and it is ahead, and wakes
    /// the shard.
    pub fn wake(&mut self) {
        if let Some(deadline) = self.shard.next_timeout() {
            self.now = self.now.max(deadline);
        }
        self.shard.handle_timeout(self.now, &mut self.out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::CoreConfig;

    #[test]
    fn advance_wakes_the_shard_at_each_deadline_on_the_way() {
        let start = Instant::now();
        let mut d = Driver::new(Shard::new(&CoreConfig::default(), start), start);
        let a: SocketAddr = "198.51.100.1:40001".parse().unwrap();
        let b: SocketAddr = "198.51.100.2:40002".parse().unwrap();
        d.receive(a, None, b"h:R:A:2");
        d.receive(b, None, b"c:R:B");
        d.receive(a, None, b"s:R:A");
        d.out.clear();
        let mut rounds = Vec::new();
        d.advance(Duration::from_secs(1), |d| {
            if !d.out.is_empty() {
                rounds.push(d.elapsed_ms());
            }
            d.out.clear();
        });
        assert_eq!(rounds, [100, 200, 300, 400, 500, 600, 700]);
        assert_eq!((d.elapsed_ms(), d.shard.sessions()), (1000, 0));
    }

    #[test]
    fn receive_goes_through_the_front_door_and_datagram_does_not() {
        let start = Instant::now();
        let mut d = Driver::new(Shard::new(&CoreConfig::default(), start), start);
        let a: SocketAddr = "198.51.100.1:40001".parse().unwrap();
        d.receive(a, None, b"hello");
        assert!(d.out.is_empty());
        d.datagram(a, None, b"hello");
        assert_eq!(d.out.len(), 1);
    }
}
