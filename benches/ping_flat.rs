//! Is the cost of a ping flat from 1 to 1 000 000 sessions? Shards of 1, 10 000 and 1 000 000
//! four-player sessions are built once, then timed in turns (a short round on each, 25 rounds),
//! so that the load of a shared machine weighs on all three alike; it prints the median ns per
//! ping of each and its ratio to the 1-session shard. Three ways:
//! - pings spread over every session of the shard in a fixed pseudo-random order (as many
//!   distinct pings as sessions), from each player's own address, in batches of 32 through
//!   `Shard::handle_datagrams` (the batched path of a worker's `handle_requests`, parsing included);
//! - the same pings one at a time through `Shard::handle_datagram`;
//! - for the algorithm alone: batches of pings from the players of one session, which stay in
//!   the cache whatever the shard's size.
//!
//! Not a criterion bench: criterion times one case after the other. Run with
//! `cargo bench --bench ping_flat` (`-- batched` or `-- single` for one way only).

mod common;

use std::net::SocketAddr;
use std::time::Instant;

use common::{addr, filled_shard, incoming, spread_pings};
use rabid_punch::core::Shard;
use rabid_punch::outbox::Outbox;

const PLAYERS: u32 = 4;
const BATCH: usize = 32;

/// Pings from the players of session 0 only, whatever the shard's size.
fn hot_pings() -> Vec<(SocketAddr, Vec<u8>)> {
    (0..4096)
        .map(|i| {
            let p = i % PLAYERS;
            (addr(p), format!("p:S0:P{p}").into_bytes())
        })
        .collect()
}

struct Case {
    sessions: u32,
    shard: Shard,
    pings: Vec<(SocketAddr, Vec<u8>)>,
    next: usize,
    batched_ns: Vec<f64>,
    single_ns: Vec<f64>,
    hot_ns: Vec<f64>,
}

impl Case {
    /// Times `batches` batches of `pings` (those of the case when `None`); returns ns per ping.
    fn run_batched(
        &mut self,
        now: Instant,
        batches: usize,
        pings: Option<&[(SocketAddr, Vec<u8>)]>,
        out: &mut Outbox,
    ) -> f64 {
        let pings = pings.unwrap_or(&self.pings);
        let started = Instant::now();
        for _ in 0..batches {
            if self.next + BATCH > pings.len() {
                self.next = 0;
            }
            let start = self.next;
            self.next += BATCH;
            self.shard
                .handle_datagrams(now, incoming(&pings[start..start + BATCH]), out);
            assert_eq!(out.len(), BATCH, "every ping answered");
            out.clear();
        }
        started.elapsed().as_nanos() as f64 / (batches * BATCH) as f64
    }

    /// Times `count` pings handed over one at a time; returns ns per ping.
    fn run_single(&mut self, now: Instant, count: usize, out: &mut Outbox) -> f64 {
        let started = Instant::now();
        for _ in 0..count {
            let (from, bytes) = &self.pings[self.next % self.pings.len()];
            self.next += 1;
            self.shard.handle_datagram(now, *from, bytes, out);
            out.clear();
        }
        started.elapsed().as_nanos() as f64 / count as f64
    }
}

/// This machine's memory, as the yardstick for the spread columns: ns per read of a random
/// cache line of a `mib`-MiB array, reads independent of each other (the CPU overlaps as many as
/// it can: what a prefetched batch can hope for at best), and each depending on the one before
/// (what one lookup after another pays).
fn memory_yardstick(mib: usize) -> (f64, f64) {
    let len = (mib << 20) / 8;
    let array: Vec<u64> = (0..len as u64).collect();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed as usize % len
    };
    let picks: Vec<usize> = (0..2_000_000).map(|_| random()).collect();
    let started = Instant::now();
    let sum = picks
        .iter()
        .fold(0u64, |sum, &i| sum.wrapping_add(array[i]));
    let independent = started.elapsed().as_nanos() as f64 / picks.len() as f64;
    let started = Instant::now();
    let mut at = picks[0];
    for &pick in &picks[..500_000] {
        // The next index depends on the value just read.
        at = (array[at] as usize ^ pick) % len;
    }
    let dependent = started.elapsed().as_nanos() as f64 / 500_000.0;
    std::hint::black_box((sum, at));
    (independent, dependent)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    // `cargo test` runs benches in test mode with `--bench` absent: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    // `-- batched` or `-- single` times one way only (for a profiler).
    let only = std::env::args().find(|a| a == "batched" || a == "single");
    let (do_batched, do_single) = match only.as_deref() {
        Some("batched") => (true, false),
        Some(_) => (false, true),
        None => (true, true),
    };
    let (sizes, rounds, batches): (&[u32], usize, usize) = if quick {
        (&[1, 1000], 2, 10)
    } else {
        (&[1, 10_000, 1_000_000], 25, 2000)
    };
    let now = Instant::now();
    let mut cases: Vec<Case> = sizes
        .iter()
        .map(|&sessions| Case {
            sessions,
            shard: filled_shard(sessions, PLAYERS, now),
            pings: spread_pings(sessions, PLAYERS),
            next: 0,
            batched_ns: Vec::new(),
            single_ns: Vec::new(),
            hot_ns: Vec::new(),
        })
        .collect();
    let hot = hot_pings();
    let mut out = Outbox::new();
    for round in 0..=rounds {
        for case in &mut cases {
            let batched = if do_batched {
                case.run_batched(now, batches, None, &mut out)
            } else {
                f64::NAN
            };
            let single = if do_single {
                case.run_single(now, batches * BATCH, &mut out)
            } else {
                f64::NAN
            };
            let hot = if do_batched {
                case.run_batched(now, batches, Some(&hot), &mut out)
            } else {
                f64::NAN
            };
            // Round 0 warms up.
            if round > 0 {
                case.batched_ns.push(batched);
                case.single_ns.push(single);
                case.hot_ns.push(hot);
            }
        }
    }
    let bases: Vec<f64> = [&cases[0].batched_ns, &cases[0].single_ns, &cases[0].hot_ns]
        .iter()
        .map(|v| median(&mut (*v).clone()))
        .collect();
    println!(
        "ping cost, {PLAYERS}-player sessions, medians of {rounds} interleaved rounds of {} pings",
        batches * BATCH
    );
    println!("sessions | spread, batched (32) | spread, one at a time | session 0 only, batched");
    for case in &mut cases {
        let figures = [&mut case.batched_ns, &mut case.single_ns, &mut case.hot_ns]
            .into_iter()
            .zip(&bases)
            .map(|(v, base)| {
                let m = median(v);
                format!("{m:>8.0} ns {:>5.2}x", m / base)
            })
            .collect::<Vec<_>>();
        println!("{:>8} | {}", case.sessions, figures.join(" | "));
    }
    let mib = if quick { 16 } else { 512 };
    let (independent, dependent) = memory_yardstick(mib);
    println!(
        "memory yardstick, random cache lines of a {mib} MiB array: {independent:.0} ns each \
         when independent, {dependent:.0} ns each when each depends on the one before"
    );
}
