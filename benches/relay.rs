//! The relay in the session core alone, without sockets: what the worker spends deciding where a
//! relayed datagram goes. A learned 100-byte game datagram in a shard relaying 1 and 1000
//! sessions (the lookup must not grow with the number of relays), and a greeting, which is
//! rewritten on the way (its target port replaced) and so costs a parse and a format more.
//!
//! The loopback figures (sockets, kernel, worker hand-off) come from `rabid-flood relay` and
//! `scripts/flood.sh`; this bench says how much of them is the core.

mod common;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use common::{addr, uncapped};
use criterion::{criterion_group, criterion_main, Criterion};
use rabid_punch::core::{CoreConfig, RelayConfig, RelayLimitsConfig, RelayMode, Shard};
use rabid_punch::outbox::Outbox;

/// First port of the pool handed to the shard (the core opens no socket, any numbers do).
const FIRST_PORT: u16 = 20_000;
/// Size of a game datagram: a typical small state update of a real-time game.
const GAME_BYTES: usize = 100;

/// Every session relayed, with budgets far above what a bench run forwards, so the figures are
/// the forwarding path and not budget drops.
fn relay_config() -> CoreConfig {
    CoreConfig {
        relay: RelayConfig {
            mode: RelayMode::Always,
            limits: RelayLimitsConfig {
                max_sessions_per_ip: u32::MAX,
                ip_bytes_per_sec: 1 << 50,
                session_bytes_per_sec: 1 << 50,
            },
            ..RelayConfig::default()
        },
        ..uncapped()
    }
}

/// One relayed two-player session: each player's rendezvous address and relay port.
struct Pair {
    addrs: [SocketAddr; 2],
    relay_ports: [u16; 2],
}

/// A shard relaying `sessions` started two-player sessions, every player already learned by
/// the relay (each sent its first greeting), as in the middle of a game.
fn relaying_shard(sessions: u32, now: Instant) -> (Shard, Vec<Pair>) {
    let config = relay_config();
    let ports: Vec<u16> = (0..sessions * 2).map(|i| FIRST_PORT + i as u16).collect();
    let mut shard = Shard::new(&config, now).with_relay_pool(ports);
    let local = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let mut out = Outbox::new();
    let mut pairs = Vec::with_capacity(sessions as usize);
    for s in 0..sessions {
        let addrs = [addr(2 * s), addr(2 * s + 1)];
        let requests = [
            (addrs[0], format!("h:S{s}:P0:2")),
            (addrs[1], format!("c:S{s}:P1")),
            (addrs[0], format!("s:S{s}:P0")),
        ];
        for (from, request) in &requests {
            out.clear();
            shard.handle_datagram_on(now, *from, local, request.as_bytes(), &mut out);
        }
        // The start message to each player lists its peer last: `...:<ip>:<peer's relay port>`.
        let peer_port = |to: SocketAddr| -> u16 {
            let (_, message) = out
                .iter()
                .find(|(a, _)| *a == to)
                .expect("a start message for every player");
            let text = std::str::from_utf8(message).expect("start messages are text");
            text.rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("a relayed start message ends with a relay port")
        };
        // `relay_ports[i]`: player i's relay port, named in the start message of the other.
        let relay_ports = [peer_port(addrs[1]), peer_port(addrs[0])];
        for (me, &from) in addrs.iter().enumerate() {
            let peer = 1 - me;
            let greeting = format!("g:P{me}:{}:{}", from.port(), relay_ports[peer]);
            out.clear();
            shard.handle_relayed(now, relay_ports[peer], from, greeting.as_bytes(), &mut out);
            assert_eq!(out.len(), 1, "the greeting of session {s} is forwarded");
        }
        pairs.push(Pair { addrs, relay_ports });
    }
    (shard, pairs)
}

/// Senders spread over all sessions in a fixed pseudo-random order, as real traffic is: (the
/// pair, which player sends).
fn senders(sessions: u32) -> Vec<(usize, usize)> {
    let mut seed = 0x9e37_79b9_u32;
    (0..4096)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            ((seed % sessions) as usize, (seed >> 16) as usize & 1)
        })
        .collect()
}

fn game_datagram(c: &mut Criterion) {
    let mut group = c.benchmark_group("relay_game_100B");
    let now = Instant::now();
    let payload: Vec<u8> = (0..GAME_BYTES as u8)
        .map(|b| b.wrapping_mul(37) | 0x80)
        .collect();
    for sessions in [1u32, 1000] {
        let (mut shard, pairs) = relaying_shard(sessions, now);
        let order = senders(sessions);
        let mut out = Outbox::new();
        // Once, outside the timing: the datagram goes to the peer, unchanged, from the
        // sender's relay port.
        let first = &pairs[order[0].0];
        let me = order[0].1;
        shard.handle_relayed(
            now,
            first.relay_ports[1 - me],
            first.addrs[me],
            &payload,
            &mut out,
        );
        let sent: Vec<_> = out.iter_via().collect();
        assert_eq!(
            sent,
            vec![(
                first.relay_ports[me],
                first.addrs[1 - me],
                payload.as_slice()
            )]
        );
        out.clear();
        let mut i = 0;
        group.bench_function(format!("{sessions}_sessions"), |b| {
            b.iter(|| {
                let (pair, me) = order[i % order.len()];
                i += 1;
                let pair = &pairs[pair];
                shard.handle_relayed(
                    now,
                    pair.relay_ports[1 - me],
                    pair.addrs[me],
                    black_box(&payload),
                    &mut out,
                );
                black_box(out.len());
                out.clear();
            })
        });
    }
    group.finish();
}

fn greeting(c: &mut Criterion) {
    let mut group = c.benchmark_group("relay_greeting");
    let now = Instant::now();
    for sessions in [1u32, 1000] {
        let (mut shard, pairs) = relaying_shard(sessions, now);
        let order = senders(sessions);
        // Each player's greeting to its peer, aimed at the peer's relay port.
        let greetings: Vec<[Vec<u8>; 2]> = pairs
            .iter()
            .map(|p| {
                [0, 1].map(|me| {
                    format!("g:P{me}:{}:{}", p.addrs[me].port(), p.relay_ports[1 - me]).into_bytes()
                })
            })
            .collect();
        let mut out = Outbox::new();
        let (pair, me) = order[0];
        let p = &pairs[pair];
        shard.handle_relayed(
            now,
            p.relay_ports[1 - me],
            p.addrs[me],
            &greetings[pair][me],
            &mut out,
        );
        // The target port becomes the receiver's own port.
        let rewritten = format!("g:P{me}:{}:{}", p.addrs[me].port(), p.addrs[1 - me].port());
        let sent: Vec<_> = out.iter_via().collect();
        assert_eq!(
            sent,
            vec![(p.relay_ports[me], p.addrs[1 - me], rewritten.as_bytes())]
        );
        out.clear();
        let mut i = 0;
        group.bench_function(format!("{sessions}_sessions"), |b| {
            b.iter(|| {
                let (pair, me) = order[i % order.len()];
                i += 1;
                let p = &pairs[pair];
                shard.handle_relayed(
                    now,
                    p.relay_ports[1 - me],
                    p.addrs[me],
                    black_box(&greetings[pair][me]),
                    &mut out,
                );
                black_box(out.len());
                out.clear();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, game_datagram, greeting);
criterion_main!(benches);
