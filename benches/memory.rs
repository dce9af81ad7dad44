//! Resident memory per idle player and per session: 250 000 sessions of 4 players (1 000 000
//! players) in one shard, measured from /proc/self/statm before and after. Not a criterion bench:
//! it prints one figure. Run with `cargo bench --bench memory`.

mod common;

use std::time::Instant;

use common::filled_shard;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    // `cargo test` runs benches in test mode with `--bench` absent: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let sessions: u32 = if quick { 1000 } else { 250_000 };
    let players = 4;
    let before = resident_bytes();
    let shard = filled_shard(sessions, players, Instant::now());
    let after = resident_bytes();
    assert_eq!(shard.players(), (sessions * players) as usize);
    let grown = after.saturating_sub(before) as f64;
    println!(
        "memory: {} sessions x {players} players: {:.1} MiB resident, {:.0} bytes per session, \
         {:.0} bytes per player",
        sessions,
        grown / (1 << 20) as f64,
        grown / f64::from(sessions),
        grown / f64::from(sessions * players)
    );
}
