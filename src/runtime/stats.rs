//! Counters of what the threads did, for the periodic stats line and the metrics endpoint.
//!
//! Each thread owns one [`Counters`] and is its only writer, on cache lines of its own, so
//! counting costs a plain load and store on the per-datagram path: no lock, no read-modify-write
//! instruction, no cache line another thread writes. Readers (the stats line, a metrics scrape)
//! add all threads' counters up when they need a figure, and never make a writer wait.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::budget::Refusal;
use crate::core::{RelayStats, ShardStats};
use crate::wire::{ErrorCode, Kind};

/// The command letters, in the order of [`Totals::requests`].
pub const COMMANDS: [&str; 7] = ["h", "c", "p", "k", "x", "s", "y"];

/// The kinds of reply, in the order of [`Totals::replies`]: `i:`, `s:` and `error:` datagrams.
pub const REPLY_KINDS: [&str; 3] = ["info", "start", "error"];

/// Upper bounds, in nanoseconds, of the buckets of the request handling time histogram; one more
/// bucket past the last holds everything slower. A request costs a worker about a microsecond
/// plus its share of a `sendmmsg`, so the buckets are finest there.
pub const HANDLING_BUCKETS_NS: [u64; 12] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 5_000_000,
    25_000_000,
];

const BUCKETS: usize = HANDLING_BUCKETS_NS.len() + 1;
const ERRORS: usize = ErrorCode::ALL.len();

/// One thread's counters. Aligned so that two threads' counters never share a cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Counters {
    datagrams_in: AtomicU64,
    bytes_in: AtomicU64,
    datagrams_out: AtomicU64,
    bytes_out: AtomicU64,
    send_errors: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_budget: AtomicU64,
    dropped_table_full: AtomicU64,
    malformed: AtomicU64,
    unknown_command: AtomicU64,
    hosts_refused_by_cap: AtomicU64,
    joins_refused_by_cap: AtomicU64,
    sessions: AtomicU64,
    players: AtomicU64,
    sessions_created: AtomicU64,
    sessions_started: AtomicU64,
    sessions_timed_out: AtomicU64,
    players_timed_out: AtomicU64,
    budget_tracked_ips: AtomicU64,
    requests: [AtomicU64; COMMANDS.len()],
    replies: [AtomicU64; REPLY_KINDS.len()],
    errors: [AtomicU64; ERRORS],
    handling: [AtomicU64; BUCKETS],
    handling_sum_ns: AtomicU64,
    relay: [AtomicU64; RelayStats::LEN],
    relay_datagrams_in: AtomicU64,
    relay_bytes_in: AtomicU64,
    relay_dropped_too_big: AtomicU64,
    relay_send_errors: AtomicU64,
}

/// Adds `n` to a counter only this thread writes.
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed) + n, Relaxed);
}

/// Where a command letter counts in [`Totals::requests`].
fn command_index(kind: &Kind<'_>) -> usize {
    match kind {
        Kind::Host { .. } => 0,
        Kind::Connect { .. } => 1,
        Kind::Ping => 2,
        Kind::Kick => 3,
        Kind::Exit => 4,
        Kind::Start => 5,
        Kind::Confirm => 6,
    }
}

/// The handling time bucket of one request that took `ns` nanoseconds.
fn bucket_of(ns: u64) -> usize {
    HANDLING_BUCKETS_NS
        .iter()
        .position(|&bound| ns <= bound)
        .unwrap_or(HANDLING_BUCKETS_NS.len())
}

impl Counters {
    pub fn received(&self, bytes: usize) {
        bump(&self.datagrams_in, 1);
        bump(&self.bytes_in, bytes as u64);
    }

    /// A well-formed request, counted by its command.
    pub fn request(&self, kind: &Kind<'_>) {
        bump(&self.requests[command_index(kind)], 1);
    }

    /// A reply the send budget let through, counted by its kind and, for errors, by its string.
    pub fn reply(&self, payload: &[u8]) {
        match payload.first() {
            Some(b'i') => bump(&self.replies[0], 1),
            Some(b's') => bump(&self.replies[1], 1),
            Some(b'e') => {
                bump(&self.replies[2], 1);
                // Slice equality compares lengths first: at most a couple of short memcmps.
                if let Some(i) = ErrorCode::ALL
                    .iter()
                    .position(|code| code.as_str().as_bytes() == payload)
                {
                    bump(&self.errors[i], 1);
                }
            }
            _ => {}
        }
    }

    pub fn sent(&self, datagrams: usize, bytes: usize, errors: usize) {
        bump(&self.datagrams_out, datagrams as u64);
        bump(&self.bytes_out, bytes as u64);
        bump(&self.send_errors, errors as u64);
    }

    pub fn dropped_queue_full(&self, datagrams: usize) {
        bump(&self.dropped_queue_full, datagrams as u64);
    }

    pub fn dropped_by_budget(&self, refusal: Refusal) {
        match refusal {
            Refusal::Budget => bump(&self.dropped_budget, 1),
            Refusal::TableFull => bump(&self.dropped_table_full, 1),
        }
    }

    pub fn malformed(&self) {
        bump(&self.malformed, 1);
    }

    pub fn unknown_command(&self) {
        bump(&self.unknown_command, 1);
    }

    /// A worker spent `elapsed` on a batch of `requests`: each request is counted in the
    /// histogram with an equal share. Timing the batch rather than each request keeps the clock
    /// reads to two per batch, and the batch time includes the `sendmmsg` of its replies, which
    /// is most of what a request costs.
    pub fn handled(&self, requests: usize, elapsed: Duration) {
        if requests == 0 {
            return;
        }
        let total = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let each = total / requests as u64;
        bump(&self.handling[bucket_of(each)], requests as u64);
        bump(&self.handling_sum_ns, total);
    }

    /// A datagram arrived on a relay port (a relay reader).
    pub fn relay_received(&self, bytes: usize) {
        bump(&self.relay_datagrams_in, 1);
        bump(&self.relay_bytes_in, bytes as u64);
    }

    /// A datagram on a relay port longer than a relay forwards.
    pub fn relay_dropped_too_big(&self) {
        bump(&self.relay_dropped_too_big, 1);
    }

    /// Relayed datagrams the kernel refused to send.
    pub fn relay_send_errors(&self, n: usize) {
        bump(&self.relay_send_errors, n as u64);
    }

    /// Publishes a worker's relay figures.
    pub fn set_relay(&self, stats: RelayStats) {
        for (c, v) in self.relay.iter().zip(stats.to_array()) {
            c.store(v, Relaxed);
        }
    }

    /// Publishes how many IPs the send budgets track (the receiver, after each sweep).
    pub fn set_budget_tracked_ips(&self, ips: usize) {
        self.budget_tracked_ips.store(ips as u64, Relaxed);
    }

    /// Publishes a worker's shard figures.
    pub fn set_shard(&self, sessions: usize, players: usize, stats: ShardStats) {
        self.sessions.store(sessions as u64, Relaxed);
        self.players.store(players as u64, Relaxed);
        self.sessions_created.store(stats.sessions_created, Relaxed);
        self.sessions_started.store(stats.sessions_started, Relaxed);
        self.sessions_timed_out
            .store(stats.sessions_timed_out, Relaxed);
        self.players_timed_out
            .store(stats.players_timed_out, Relaxed);
        self.hosts_refused_by_cap
            .store(stats.hosts_refused_by_cap, Relaxed);
        self.joins_refused_by_cap
            .store(stats.joins_refused_by_cap, Relaxed);
    }
}

/// The sum of every thread's counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub datagrams_in: u64,
    pub bytes_in: u64,
    pub datagrams_out: u64,
    pub bytes_out: u64,
    pub send_errors: u64,
    pub dropped_queue_full: u64,
    pub dropped_budget: u64,
    pub dropped_table_full: u64,
    /// Malformed datagrams: long ones answered `error:invalid_request`, short ones not at all.
    pub malformed: u64,
    pub unknown_command: u64,
    pub hosts_refused_by_cap: u64,
    pub joins_refused_by_cap: u64,
    pub sessions: u64,
    pub players: u64,
    pub sessions_created: u64,
    pub sessions_started: u64,
    pub sessions_timed_out: u64,
    pub players_timed_out: u64,
    /// IPs with a send budget bucket, as of the receiver's last sweep (every 5 s).
    pub budget_tracked_ips: u64,
    /// Well-formed requests by command, in the order of [`COMMANDS`].
    pub requests: [u64; COMMANDS.len()],
    /// Replies let through by the send budgets, in the order of [`REPLY_KINDS`].
    pub replies: [u64; REPLY_KINDS.len()],
    /// Error replies let through, in the order of [`ErrorCode::ALL`].
    pub errors: [u64; ERRORS],
    /// Requests per handling time bucket (not cumulative): [`HANDLING_BUCKETS_NS`], then the
    /// slower ones.
    pub handling: [u64; BUCKETS],
    pub handling_sum_ns: u64,
    /// What the relays did and hold (the workers' figures added up).
    pub relay: RelayStats,
    /// Datagrams and bytes that arrived on relay ports, strangers' included.
    pub relay_datagrams_in: u64,
    pub relay_bytes_in: u64,
    pub relay_dropped_too_big: u64,
    pub relay_send_errors: u64,
}

fn add_all<const N: usize>(sum: &mut [u64; N], counters: &[AtomicU64; N]) {
    for (s, c) in sum.iter_mut().zip(counters) {
        *s += c.load(Relaxed);
    }
}

impl Totals {
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a Counters>) -> Self {
        let mut t = Totals::default();
        let mut relay = [0; RelayStats::LEN];
        for c in all {
            add_all(&mut relay, &c.relay);
            t.relay_datagrams_in += c.relay_datagrams_in.load(Relaxed);
            t.relay_bytes_in += c.relay_bytes_in.load(Relaxed);
            t.relay_dropped_too_big += c.relay_dropped_too_big.load(Relaxed);
            t.relay_send_errors += c.relay_send_errors.load(Relaxed);
            t.datagrams_in += c.datagrams_in.load(Relaxed);
            t.bytes_in += c.bytes_in.load(Relaxed);
            t.datagrams_out += c.datagrams_out.load(Relaxed);
            t.bytes_out += c.bytes_out.load(Relaxed);
            t.send_errors += c.send_errors.load(Relaxed);
            t.dropped_queue_full += c.dropped_queue_full.load(Relaxed);
            t.dropped_budget += c.dropped_budget.load(Relaxed);
            t.dropped_table_full += c.dropped_table_full.load(Relaxed);
            t.malformed += c.malformed.load(Relaxed);
            t.unknown_command += c.unknown_command.load(Relaxed);
            t.hosts_refused_by_cap += c.hosts_refused_by_cap.load(Relaxed);
            t.joins_refused_by_cap += c.joins_refused_by_cap.load(Relaxed);
            t.sessions += c.sessions.load(Relaxed);
            t.players += c.players.load(Relaxed);
            t.sessions_created += c.sessions_created.load(Relaxed);
            t.sessions_started += c.sessions_started.load(Relaxed);
            t.sessions_timed_out += c.sessions_timed_out.load(Relaxed);
            t.players_timed_out += c.players_timed_out.load(Relaxed);
            t.budget_tracked_ips += c.budget_tracked_ips.load(Relaxed);
            add_all(&mut t.requests, &c.requests);
            add_all(&mut t.replies, &c.replies);
            add_all(&mut t.errors, &c.errors);
            add_all(&mut t.handling, &c.handling);
            t.handling_sum_ns += c.handling_sum_ns.load(Relaxed);
        }
        t.relay = RelayStats::from_array(relay);
        t
    }

    /// Requests timed by the handling time histogram.
    pub fn handled(&self) -> u64 {
        self.handling.iter().sum()
    }

    /// Mean handling time per request, in microseconds (0 before any request).
    pub fn mean_handling_us(&self) -> f64 {
        match self.handled() {
            0 => 0.0,
            n => self.handling_sum_ns as f64 / n as f64 / 1000.0,
        }
    }
}

impl std::fmt::Display for Totals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sessions={} players={} in={}dg/{}B out={}dg/{}B created={} started={} \
             session_timeouts={} player_timeouts={} malformed={} unknown={} drops: \
             budget={} budget_table_full={} queue_full={} session_cap={} player_cap={} \
             send_error={} budget_ips={} handling={:.1}us/request relay: sessions={} \
             fallbacks={} closed_idle={} closed_unused={} closed_lifetime={} ports={}/{} in={}dg forwarded={}dg/{}B dropped: strangers={} unheld_port={} \
             budget={} too_big={} send_error={} auto: retries={} direct_local={} direct_new={}",
            self.sessions,
            self.players,
            self.datagrams_in,
            self.bytes_in,
            self.datagrams_out,
            self.bytes_out,
            self.sessions_created,
            self.sessions_started,
            self.sessions_timed_out,
            self.players_timed_out,
            self.malformed,
            self.unknown_command,
            self.dropped_budget,
            self.dropped_table_full,
            self.dropped_queue_full,
            self.hosts_refused_by_cap,
            self.joins_refused_by_cap,
            self.send_errors,
            self.budget_tracked_ips,
            self.mean_handling_us(),
            self.relay.sessions_relayed,
            self.relay.fallbacks,
            self.relay.closed_idle,
            self.relay.closed_unused,
            self.relay.closed_lifetime,
            self.relay.ports_in_use,
            self.relay.ports_total,
            self.relay_datagrams_in,
            self.relay.datagrams,
            self.relay.bytes,
            self.relay.dropped_strangers,
            self.relay.dropped_unheld_port,
            self.relay.dropped_budget,
            self.relay_dropped_too_big,
            self.relay_send_errors,
            self.relay.auto_retries,
            self.relay.auto_direct_local,
            self.relay.auto_direct_new,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_counted_by_kind_and_error_string() {
        let c = Counters::default();
        c.reply(b"i:A:B");
        c.reply(b"s:4000:A:127.0.0.1:4001");
        c.reply(b"error:session_full");
        c.reply(b"error:session_full");
        c.reply(b"error:player_timeout");
        let t = Totals::sum([&c]);
        assert_eq!(t.replies, [1, 1, 3]);
        let full = ErrorCode::ALL
            .iter()
            .position(|&e| e == ErrorCode::SessionFull)
            .unwrap();
        let timeout = ErrorCode::ALL
            .iter()
            .position(|&e| e == ErrorCode::PlayerTimeout)
            .unwrap();
        assert_eq!(t.errors[full], 2);
        assert_eq!(t.errors[timeout], 1);
        assert_eq!(t.errors.iter().sum::<u64>(), 3);
    }

    #[test]
    fn a_batch_is_shared_evenly_among_its_requests() {
        let c = Counters::default();
        // 4 requests in 8 us: 2 us each, in the 2.5 us bucket.
        c.handled(4, Duration::from_micros(8));
        // One very slow request lands past the last bound.
        c.handled(1, Duration::from_secs(1));
        c.handled(0, Duration::from_secs(1));
        let t = Totals::sum([&c]);
        assert_eq!(t.handling[1], 4);
        assert_eq!(t.handling[HANDLING_BUCKETS_NS.len()], 1);
        assert_eq!(t.handled(), 5);
        assert_eq!(t.handling_sum_ns, 8_000 + 1_000_000_000);
    }

    #[test]
    fn requests_are_counted_by_command_across_threads() {
        let a = Counters::default();
        let b = Counters::default();
        a.request(&Kind::Ping);
        b.request(&Kind::Ping);
        b.request(&Kind::Host {
            max_players: 2,
            password: None,
        });
        let t = Totals::sum([&a, &b]);
        assert_eq!(t.requests, [1, 0, 2, 0, 0, 0, 0]);
    }
}
