//! Counters of what the threads did, for the periodic stats line and the metrics endpoint.
//!
//! Each thread owns one [`Counters`] and is its only writer, on cache lines of its own, so
//! counting costs a plain load and store on the per-datagram path: no lock, no read-modify-write
//! instruction, no cache line another thread writes. Readers (the stats line, a metrics scrape)
//! add all threads' counters up into [`Totals`] when they need a figure, and never make a writer
//! wait.
//!
//! Every figure is declared once, as one row of a table in [`sets`]: the row names the field,
//! its Prometheus metric and its place in the stats line; the storage, the sums, the stats line
//! (`line.rs`) and the metrics (`crate::metrics`) all follow the tables.
//!
//! # Adding a counter
//!
//! - **To [`ShardStats`] or [`RelayStats`]** (counted in `core`): add the `u64` field and count
//!   it where it happens, then add one `figure!(field, metric, line)` row to [`sets::SHARD`] or
//!   [`sets::RELAY`]. The worker already publishes the whole struct after each batch.
//! - **To what the runtime counts itself**: add one row to the `runtime_stats!` table in
//!   [`sets`] (it declares the field of [`RuntimeStats`]), and a method on [`Counters`] that
//!   bumps `self.runtime.FIELD`, called where it happens.
//!
//! A metric is either a counter or gauge of its own (`counter("rabid_punch_...", help)`,
//! `gauge(...)`), or one series of a labelled family (`series(&DROPS, "reason", help)`); the
//! stats line shows it as ` key=value` in a section (`key(Main, "key")`), as `/value` after
//! the row before (`then("B")`), or not at all (`HIDDEN`). A test fails when a field of a set
//! has no row, or two rows share a metric series or a stats line key.

mod line;
pub mod sets;
pub mod table;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::budget::Refusal;
use crate::core::{RelayStats, ShardStats};
use crate::wire::{ErrorCode, Kind};
pub use sets::RuntimeStats;
use sets::{RELAY, SHARD};
use table::{Figure, Line, Metric};

/// The command letters, in the order of [`Totals::requests`].
pub const COMMANDS: [&str; 7] = ["h", "c", "p", "k", "x", "s", "y"];

/// The kinds of reply, in the order of [`Totals::replies`]: `i:`, `s:` and `error:` datagrams.
pub const REPLY_KINDS: [&str; 4] = ["info", "start", "error", "lobby"];

/// Upper bounds, in nanoseconds, of the buckets of the request handling time histogram; one more
/// bucket past the last holds everything slower. A request costs a worker about a microsecond
/// plus its share of a `sendmmsg`, so the buckets are finest there.
pub const HANDLING_BUCKETS_NS: [u64; 12] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 5_000_000,
    25_000_000,
];

const BUCKETS: usize = HANDLING_BUCKETS_NS.len() + 1;
const ERRORS: usize = ErrorCode::ALL.len();

/// One atomic per row of a table, for a set a worker publishes whole.
#[derive(Debug)]
struct Slots<const N: usize>([AtomicU64; N]);

impl<const N: usize> Default for Slots<N> {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl<const N: usize> Slots<N> {
    /// Stores `stats`, row by row.
    fn publish<S>(&self, table: &[Figure<S>], stats: &S) {
        for (slot, figure) in self.0.iter().zip(table) {
            slot.store((figure.get)(stats), Relaxed);
        }
    }

    /// Adds the stored figures to `sum`, row by row.
    fn add_to<S>(&self, table: &[Figure<S>], sum: &mut S) {
        for (slot, figure) in self.0.iter().zip(table) {
            let total = (figure.get)(sum) + slot.load(Relaxed);
            (figure.set)(sum, total);
        }
    }
}

/// One thread's counters. Aligned so that two threads' counters never share a cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Counters {
    runtime: RuntimeStats<AtomicU64>,
    shard: Slots<{ SHARD.len() }>,
    relay: Slots<{ RELAY.len() }>,
    requests: [AtomicU64; COMMANDS.len()],
    replies: [AtomicU64; REPLY_KINDS.len()],
    errors: [AtomicU64; ERRORS],
    handling: [AtomicU64; BUCKETS],
    handling_sum_ns: AtomicU64,
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
        bump(&self.runtime.datagrams_in, 1);
        bump(&self.runtime.bytes_in, bytes as u64);
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
            Some(b'l' | b'b' | b'q' | b'a' | b'm') => bump(&self.replies[3], 1),
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
        bump(&self.runtime.datagrams_out, datagrams as u64);
        bump(&self.runtime.bytes_out, bytes as u64);
        bump(&self.runtime.send_errors, errors as u64);
    }

    pub fn dropped_queue_full(&self, datagrams: usize) {
        bump(&self.runtime.dropped_queue_full, datagrams as u64);
    }

    pub fn dropped_by_budget(&self, refusal: Refusal) {
        match refusal {
            Refusal::Budget => bump(&self.runtime.dropped_budget, 1),
            Refusal::TableFull => bump(&self.runtime.dropped_table_full, 1),
        }
    }

    pub fn malformed(&self) {
        bump(&self.runtime.malformed, 1);
    }

    pub fn unknown_command(&self) {
        bump(&self.runtime.unknown_command, 1);
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

    /// A datagram arrived on a relay port (read by its worker).
    pub fn relay_received(&self, bytes: usize) {
        bump(&self.runtime.relay_datagrams_in, 1);
        bump(&self.runtime.relay_bytes_in, bytes as u64);
    }

    /// A datagram on a relay port longer than a relay forwards.
    pub fn relay_dropped_too_big(&self) {
        bump(&self.runtime.relay_dropped_too_big, 1);
    }

    /// Relayed datagrams the kernel refused to send.
    pub fn relay_send_errors(&self, n: usize) {
        bump(&self.runtime.relay_send_errors, n as u64);
    }

    /// Publishes a worker's relay figures.
    pub fn set_relay(&self, stats: RelayStats) {
        self.relay.publish(RELAY, &stats);
    }

    /// Publishes how many IPs the send budgets track (the receiver, after each sweep).
    pub fn set_budget_tracked_ips(&self, ips: usize) {
        self.runtime.budget_tracked_ips.store(ips as u64, Relaxed);
    }

    /// A lobby request (`d:`, `m:`, `a:1:`) routed to its session's worker.
    pub fn lobby_request(&self) {
        bump(&self.runtime.lobby_requests, 1);
    }

    /// Directory queries answered, and the lobbies listed as of the last one.
    pub fn directory_answered(&self, queries: usize, listed: usize) {
        bump(&self.runtime.directory_queries, queries as u64);
        self.runtime.lobbies_listed.store(listed as u64, Relaxed);
    }

    /// Directory queries dropped: the directory thread's queue was full.
    pub fn directory_dropped(&self, queries: usize) {
        bump(&self.runtime.directory_dropped, queries as u64);
    }

    /// The fleet thread's figures: connected or not, the other servers and their lobbies seen.
    pub fn set_fleet(&self, up: bool, nodes: usize, remote_lobbies: usize) {
        self.runtime.fleet_up.store(u64::from(up), Relaxed);
        self.runtime.fleet_nodes.store(nodes as u64, Relaxed);
        self.runtime
            .fleet_remote_lobbies
            .store(remote_lobbies as u64, Relaxed);
    }

    /// Commands sent to Redis.
    pub fn fleet_commands(&self, n: usize) {
        bump(&self.runtime.fleet_redis_commands, n as u64);
    }

    /// A failed connection to, or exchange with, Redis.
    pub fn fleet_error(&self) {
        bump(&self.runtime.fleet_redis_errors, 1);
    }

    /// A name claimed by another server first.
    pub fn fleet_name_conflict(&self) {
        bump(&self.runtime.fleet_name_conflicts, 1);
    }

    /// A session not published, over the cap.
    pub fn fleet_over_cap(&self) {
        bump(&self.runtime.fleet_over_cap, 1);
    }

    /// Publishes a worker's shard figures.
    pub fn set_shard(&self, sessions: usize, players: usize, stats: ShardStats) {
        self.runtime.sessions.store(sessions as u64, Relaxed);
        self.runtime.players.store(players as u64, Relaxed);
        self.shard.publish(SHARD, &stats);
    }
}

/// The sum of every thread's counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// What the receivers and workers counted.
    pub runtime: RuntimeStats,
    /// What the shards did (the workers' figures added up).
    pub shard: ShardStats,
    /// What the relays did and hold (the workers' figures added up).
    pub relay: RelayStats,
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
}

fn add_all<const N: usize>(sum: &mut [u64; N], counters: &[AtomicU64; N]) {
    for (s, c) in sum.iter_mut().zip(counters) {
        *s += c.load(Relaxed);
    }
}

/// One figure of [`Totals::figures`]: how it is published, and its value.
#[derive(Clone, Copy, Debug)]
pub struct Value {
    pub metric: &'static Metric,
    pub line: &'static Line,
    pub value: u64,
}

fn values<'a, S>(table: &'static [Figure<S>], stats: &'a S) -> impl Iterator<Item = Value> + 'a {
    table.iter().map(move |f| Value {
        metric: &f.metric,
        line: &f.line,
        value: (f.get)(stats),
    })
}

impl Totals {
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a Counters>) -> Self {
        let mut t = Totals::default();
        for c in all {
            c.runtime.add_to(&mut t.runtime);
            c.shard.add_to(SHARD, &mut t.shard);
            c.relay.add_to(RELAY, &mut t.relay);
            add_all(&mut t.requests, &c.requests);
            add_all(&mut t.replies, &c.replies);
            add_all(&mut t.errors, &c.errors);
            add_all(&mut t.handling, &c.handling);
            t.handling_sum_ns += c.handling_sum_ns.load(Relaxed);
        }
        t
    }

    /// Every row of the tables (runtime, shard, relay, each in table order) with its value.
    pub fn figures(&self) -> impl Iterator<Item = Value> + '_ {
        values(sets::RUNTIME, &self.runtime)
            .chain(values(SHARD, &self.shard))
            .chain(values(RELAY, &self.relay))
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
        c.reply(b"l:Ana|Room1|1 / 4|1.0|Draft");
        c.reply(b"m:Ana:hi");
        let t = Totals::sum([&c]);
        assert_eq!(t.replies, [1, 1, 3, 2]);
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

    #[test]
    fn published_sets_add_up_across_workers() {
        let mut shard = ShardStats::default();
        for (n, figure) in (1..).zip(SHARD) {
            (figure.set)(&mut shard, n);
        }
        let mut relay = RelayStats::default();
        for (n, figure) in (1..).zip(RELAY) {
            (figure.set)(&mut relay, n);
        }
        let workers = [Counters::default(), Counters::default()];
        for c in &workers {
            c.set_shard(3, 7, shard);
            c.set_relay(relay);
        }
        let t = Totals::sum(&workers);
        assert_eq!((t.runtime.sessions, t.runtime.players), (6, 14));
        for (n, figure) in (1..).zip(SHARD) {
            assert_eq!((figure.get)(&t.shard), 2 * n, "{}", figure.field);
        }
        for (n, figure) in (1..).zip(RELAY) {
            assert_eq!((figure.get)(&t.relay), 2 * n, "{}", figure.field);
        }
    }
}
