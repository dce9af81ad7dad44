//! Counters of what the threads did, for the periodic stats line (and metrics).
//!
//! Each thread owns one [`Counters`] and is its only writer, on a cache line of its own, so
//! counting costs a plain store on the per-datagram path; readers add all threads' counters up
//! when they need a figure.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::budget::Refusal;
use crate::core::ShardStats;

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
}

/// Adds `n` to a counter only this thread writes.
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed) + n, Relaxed);
}

impl Counters {
    pub fn received(&self, bytes: usize) {
        bump(&self.datagrams_in, 1);
        bump(&self.bytes_in, bytes as u64);
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
}

impl Totals {
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a Counters>) -> Self {
        let mut t = Totals::default();
        for c in all {
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
        }
        t
    }
}

impl std::fmt::Display for Totals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sessions={} players={} in={}dg/{}B out={}dg/{}B created={} started={} \
             session_timeouts={} player_timeouts={} malformed={} unknown={} drops: \
             budget={} budget_table_full={} queue_full={} session_cap={} player_cap={} \
             send_error={}",
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
        )
    }
}
