//! Helpers shared by the benches: addresses and filled shards.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Instant;

use rabid_punch::core::{CapsConfig, CoreConfig, Incoming, Shard};
use rabid_punch::outbox::Outbox;

/// A distinct address for player `i`.
pub fn addr(i: u32) -> SocketAddr {
    let ip = 0x0a00_0000 | (i >> 8);
    SocketAddr::from((ip.to_be_bytes(), 1024 + (i & 0xff) as u16))
}

/// Caps out of the way: the benches measure the core, not its limits.
pub fn uncapped() -> CoreConfig {
    CoreConfig {
        caps: CapsConfig {
            max_sessions: usize::MAX,
            max_players: usize::MAX,
            max_sessions_per_ip: usize::MAX,
        },
        ..CoreConfig::default()
    }
}

/// A shard holding `sessions` sessions of `players` players each, named `S<n>` with players
/// `P0`.. at addresses `addr(n * players + i)`.
pub fn filled_shard(sessions: u32, players: u32, now: Instant) -> Shard {
    let mut shard = Shard::new(&uncapped(), now);
    let mut out = Outbox::new();
    for s in 0..sessions {
        let host = format!("h:S{s}:P0:12");
        shard.handle_datagram(now, addr(s * players), host.as_bytes(), &mut out);
        for p in 1..players {
            let join = format!("c:S{s}:P{p}");
            shard.handle_datagram(now, addr(s * players + p), join.as_bytes(), &mut out);
        }
        out.clear();
    }
    shard
}

/// Pings from players of sessions spread over the whole shard (as filled by [`filled_shard`]
/// with `players` players each), as real traffic is, in a fixed pseudo-random order: (sender,
/// datagram). As many as there are sessions (at least 4096), so that a large shard is not read
/// through a small sample of it that the caches would hold.
pub fn spread_pings(sessions: u32, players: u32) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut seed = 0x9e37_79b9_u32;
    (0..sessions.max(4096))
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let s = seed % sessions;
            let p = (seed >> 24) % players;
            (addr(s * players + p), format!("p:S{s}:P{p}").into_bytes())
        })
        .collect()
}

/// Recorded datagrams as a batch for `Shard::handle_datagrams`.
pub fn incoming(datagrams: &[(SocketAddr, Vec<u8>)]) -> impl Iterator<Item = Incoming<'_>> {
    datagrams.iter().map(|(from, bytes)| Incoming {
        from: *from,
        local: None,
        bytes,
    })
}
