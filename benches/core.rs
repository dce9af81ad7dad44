//! The session core: a ping in shards of 1, 10 000 and 1 000 000 sessions, one at a time and in
//! batches of 32 (the cost must not grow with the number of sessions), a 12-player start, and a whole 4-player lifecycle;
//! and the front door's verdict on a ping, which the receiver asks for every datagram.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{addr, filled_shard, incoming, spread_pings, uncapped};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rabid_punch::core::{FrontDoor, Routed, Shard, Verdict};
use rabid_punch::outbox::Outbox;

/// Players per session in the ping benches: a typical lobby.
const PLAYERS: u32 = 4;

/// One ping at a time, as `Shard::handle_datagram` is called.
fn ping(c: &mut Criterion) {
    let mut group = c.benchmark_group("ping");
    let now = Instant::now();
    for sessions in [1u32, 10_000, 1_000_000] {
        let mut shard = filled_shard(sessions, PLAYERS, now);
        let pings = spread_pings(sessions, PLAYERS);
        let mut out = Outbox::new();
        let mut i = 0;
        group.bench_function(format!("{sessions}_sessions"), |b| {
            b.iter(|| {
                let (from, datagram) = &pings[i % pings.len()];
                i += 1;
                shard.handle_datagram(now, *from, datagram, &mut out);
                out.clear();
            })
        });
    }
    group.finish();
}

/// Pings in batches of 32, as datagrams parsed by the shard (`Shard::handle_datagrams`);
/// criterion's time is per batch, its throughput per ping.
fn ping_batch(c: &mut Criterion) {
    batches(c, "ping_batch", spread_pings, |shard, now, pings, out| {
        shard.handle_datagrams(now, incoming(pings), out)
    });
}

/// Pings in batches of 32 as a worker hands them to `Shard::handle_requests`: parsed and routed
/// by the front door already. Criterion's time is per batch, its throughput per ping.
fn ping_routed_batch(c: &mut Criterion) {
    let door = FrontDoor::new(1);
    let routed = |sessions, players| -> Vec<Routed> {
        spread_pings(sessions, players)
            .iter()
            .map(
                |(from, datagram)| match door.handle(*from, None, datagram, false) {
                    Verdict::Route { routed, .. } => routed,
                    other => panic!("a ping not routed: {other:?}"),
                },
            )
            .collect()
    };
    batches(c, "ping_routed_batch", routed, |shard, now, pings, out| {
        shard.handle_requests(now, pings, out)
    });
}

/// Group `name`: in shards of 1, 10 000 and 1 000 000 sessions, the pings `make` gives
/// (sessions, players per session) handed to `handle` 32 at a time.
fn batches<T>(
    c: &mut Criterion,
    name: &str,
    make: impl Fn(u32, u32) -> Vec<T>,
    handle: impl Fn(&mut Shard, Instant, &[T], &mut Outbox),
) {
    const BATCH: usize = 32;
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(BATCH as u64));
    let now = Instant::now();
    for sessions in [1u32, 10_000, 1_000_000] {
        let mut shard = filled_shard(sessions, PLAYERS, now);
        let pings = make(sessions, PLAYERS);
        let mut out = Outbox::new();
        let mut i = 0;
        group.bench_function(format!("{sessions}_sessions"), |b| {
            b.iter(|| {
                let start = (i * BATCH) % (pings.len() - BATCH);
                i += 1;
                handle(&mut shard, now, &pings[start..start + BATCH], &mut out);
                out.clear();
            })
        });
    }
    group.finish();
}

/// The front door's verdict on one ping (parse, and the hash that picks its shard).
fn front_door(c: &mut Criterion) {
    let door = FrontDoor::new(2);
    let pings = spread_pings(10_000, PLAYERS);
    let mut i = 0;
    c.bench_function("front_door_ping", |b| {
        b.iter(|| {
            let (from, datagram) = &pings[i % pings.len()];
            i += 1;
            black_box(door.handle(*from, None, datagram, false));
        })
    });
}

fn start_12_players(c: &mut Criterion) {
    let now = Instant::now();
    c.bench_function("start_12_players", |b| {
        b.iter_batched(
            || (filled_shard(1, 12, now), Outbox::new()),
            |(mut shard, mut out)| {
                shard.handle_datagram(now, addr(0), b"s:S0:P0", &mut out);
                black_box(out.len());
                (shard, out)
            },
            BatchSize::SmallInput,
        )
    });
}

fn lifecycle_4_players(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut shard = Shard::new(&uncapped(), t0);
    let mut out = Outbox::new();
    let mut n = 0u32;
    c.bench_function("lifecycle_4_players", |b| {
        b.iter(|| {
            // Host, 3 joins, a ping each, start, 3 confirmations, then time runs until the
            // start re-sends are over and the session is forgotten.
            let now = t0 + Duration::from_secs(u64::from(n));
            let s = format!("L{n}");
            let base = n * 4;
            n += 1;
            shard.handle_datagram(now, addr(base), format!("h:{s}:P0:4").as_bytes(), &mut out);
            for p in 1..4 {
                let join = format!("c:{s}:P{p}");
                shard.handle_datagram(now, addr(base + p), join.as_bytes(), &mut out);
            }
            for p in 0..4 {
                let ping = format!("p:{s}:P{p}");
                shard.handle_datagram(now, addr(base + p), ping.as_bytes(), &mut out);
            }
            shard.handle_datagram(now, addr(base), format!("s:{s}:P0").as_bytes(), &mut out);
            for p in 1..4 {
                let confirm = format!("y:{s}:P{p}");
                shard.handle_datagram(now, addr(base + p), confirm.as_bytes(), &mut out);
            }
            shard.handle_timeout(now + Duration::from_millis(900), &mut out);
            black_box(out.len());
            out.clear();
        })
    });
}

criterion_group!(
    benches,
    ping,
    ping_batch,
    ping_routed_batch,
    front_door,
    start_12_players,
    lifecycle_4_players
);
criterion_main!(benches);
