//! Replays a corpus of the `shard` target (plain build, no fuzzer) and says what it reaches:
//! how many replies of each kind, the largest session and the largest reply, and what the relay
//! did (the relay counters summed over the inputs). It shows whether the fuzzer really gets
//! sessions created, joined, started, kicked and timed out, and relayed.
//!
//! `cargo run --example corpus_stats -- corpus/shard` (in `fuzz/`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use arbitrary::{Arbitrary, Unstructured};
use rabid_punch::core::RelayStats;
use rabid_punch::runtime::stats::sets::RELAY;
use rabid_punch_fuzz::{drive, Scenario};

fn main() {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: corpus_stats <corpus dir>");
        std::process::exit(2);
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => {
            eprintln!("cannot read {}: {e}", dir.display());
            std::process::exit(1);
        }
    };
    let mut inputs = 0;
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut largest_reply = 0;
    let mut most_players = 0;
    let mut most_sessions = 0;
    let mut most_relay_ports = 0;
    let mut relay = RelayStats::default();
    for entry in entries.flatten() {
        let Ok(bytes) = std::fs::read(entry.path()) else {
            continue;
        };
        let Ok(scenario) = Scenario::arbitrary_take_rest(Unstructured::new(&bytes)) else {
            continue;
        };
        inputs += 1;
        let end = drive(&scenario, |shard, _, payload| {
            let kind = match payload.get(..2) {
                Some(b"i:") => {
                    let names = payload.iter().filter(|&&b| b == b':').count();
                    most_players = most_players.max(names);
                    "i:".to_string()
                }
                Some(b"s:") => "s:".to_string(),
                _ => String::from_utf8_lossy(payload).into_owned(),
            };
            *kinds.entry(kind).or_default() += 1;
            largest_reply = largest_reply.max(payload.len());
            most_sessions = most_sessions.max(shard.sessions());
            most_relay_ports = most_relay_ports.max(shard.relay_stats().ports_in_use);
        });
        // Every field, from the one table of relay figures.
        for figure in RELAY {
            let sum = (figure.get)(&relay) + (figure.get)(&end);
            (figure.set)(&mut relay, sum);
        }
    }
    println!("inputs replayed: {inputs}");
    println!("largest reply: {largest_reply} bytes");
    println!("most players in one i: list: {most_players}");
    println!("most sessions at once: {most_sessions}");
    println!("most relay ports held at once (seen at a reply): {most_relay_ports}");
    println!("relay counters, summed over the inputs (ports at the end of each):");
    println!("{relay:#?}");
    for (kind, count) in kinds {
        println!("{count:>10}  {kind}");
    }
}
