//! Encodings that are not a state this version wrote: another version, truncated, flipped,
//! mangled. Each must be refused or, when the damage happens to leave a state that follows
//! every rule (a flipped bit of a port, a time, a letter of a name), restore into shards whose
//! invariants hold. Never a panic.

use proptest::prelude::*;

use super::*;
use crate::core::handover::StateError;

/// The encodings of a server with a bit of everything: lobbies with a password, a ban list,
/// compatible and extension lobby data, a start under way, an `auto` retry relayed with
/// learned addresses, a player timed out with its repeats pending, recent starts.
fn rich_state() -> (Vec<u8>, Vec<Vec<u8>>) {
    static STATE: std::sync::OnceLock<(Vec<u8>, Vec<Vec<u8>>)> = std::sync::OnceLock::new();
    STATE.get_or_init(build_rich_state).clone()
}

fn build_rich_state() -> (Vec<u8>, Vec<Vec<u8>>) {
    let pool: Vec<u16> = (50000..50010).collect();
    let mut c = Cluster::new(config(RelayMode::Auto), Instant::now(), 2, &pool);
    for (n, text) in [
        (1, "h:Pub:Ana:4:pw"),
        (2, "c:Pub:Ben:pw"),
        (3, "c:Pub:Cy:pw"),
        (1, "k:Pub:Cy"),
        (1, "d:Pub:True:1.0:Duel"),
        (4, "h:Game:Dee:3"),
        (5, "c:Game:Eve"),
        (4, "a:1:Game:cards:1:2.0:Duel:fun"),
        (6, "h:R1:Fay:2"),
        (7, "c:R1:Gus"),
        (6, "s:R1:Fay"),
        (6, "h:R2:Fay:2"),
        (7, "c:R2:Gus"),
        (6, "s:R2:Fay"),
        (9, "h:Time:Ian:2"),
        (10, "c:Time:Jo"),
        (8, "h:Run:Hal:3"),
        (11, "c:Run:Kim"),
        (12, "c:Run:Lu"),
    ] {
        c.send(addr(n), text);
    }
    let ports = relay_ports(&c.take());
    assert_eq!(ports.len(), 2, "the retry is relayed");
    c.relay(
        ports["Fay"],
        mapped(7),
        &format!("g:Gus:40007:{}", ports["Fay"]),
    );
    c.relay(ports["Gus"], addr(6), "hello");
    c.advance_to(4000);
    for (n, text) in [(1, "p:Pub:Ana"), (2, "p:Pub:Ben"), (4, "p:Game:Dee")] {
        c.send(addr(n), text);
    }
    for (n, text) in [(5, "p:Game:Eve"), (9, "p:Time:Ian"), (8, "p:Run:Hal")] {
        c.send(addr(n), text);
    }
    c.send(addr(11), "p:Run:Kim");
    c.send(addr(12), "p:Run:Lu");
    c.advance_to(4950);
    c.send(addr(8), "s:Run:Hal");
    c.send(addr(11), "y:Run:Kim");
    c.advance_to(5010);
    let shards = c.shards.iter().map(|s| export_shard(s, c.now)).collect();
    (export_shared(&c.shared, c.now), shards)
}

/// Decodes, and when that succeeds restores into 3 fresh shards and checks them.
fn decode_and_restore(shared: &[u8], shards: &[Vec<u8>]) -> Result<(), StateError> {
    let state = State::decode(shared, shards)?;
    let config = config(RelayMode::Auto);
    let now = Instant::now();
    let new = Shared::on_clock(&config, Clock::continuing(state.clock_millis(), now));
    let held = state.relay_ports();
    let pool: Vec<u16> = (50000..50006).filter(|p| !held.contains(p)).collect();
    let mut fresh: Vec<Shard> = shares(&pool, 3)
        .into_iter()
        .map(|share| Shard::with_shared(&config, &new).with_relay_pool(share))
        .collect();
    let (sessions, players) = (state.sessions(), state.players());
    state.restore(&new, &FrontDoor::new(3), &mut fresh);
    for shard in &fresh {
        shard
            .check_invariants()
            .expect("a decoded state restores whole");
    }
    assert_eq!(fresh.iter().map(Shard::sessions).sum::<usize>(), sessions);
    assert_eq!(fresh.iter().map(Shard::players).sum::<usize>(), players);
    assert_eq!(
        (new.caps.sessions(), new.caps.players()),
        (sessions, players)
    );
    Ok(())
}

#[test]
fn the_rich_state_itself_decodes_and_restores() {
    let (shared, shards) = rich_state();
    decode_and_restore(&shared, &shards).unwrap();
    let state = State::decode(&shared, &shards).unwrap();
    assert_eq!(
        (state.sessions(), state.players(), state.relays()),
        (4, 8, 1)
    );
    assert_eq!(state.relay_ports().len(), 2);
    assert_eq!(state.clock_millis(), 5010);
}

#[test]
fn a_state_of_another_version_is_refused_as_such() {
    let (shared, shards) = rich_state();
    let refused = StateError::Version {
        found: 2,
        supported: 1,
    };
    let mut other = shared.clone();
    other[..4].copy_from_slice(&2u32.to_le_bytes());
    assert_eq!(State::decode(&other, &shards).unwrap_err(), refused);
    let mut others = shards.clone();
    others[1][..4].copy_from_slice(&2u32.to_le_bytes());
    assert_eq!(State::decode(&shared, &others).unwrap_err(), refused);
    assert_eq!(
        refused.to_string(),
        "the state is of version 2, this server reads version 1 only"
    );
    // A shard's section where the shared one belongs, and the other way round.
    assert!(matches!(
        State::decode(&shards[0], std::slice::from_ref(&shared)),
        Err(StateError::Malformed(_))
    ));
}

#[test]
fn truncated_or_lengthened_sections_are_refused() {
    let (shared, shards) = rich_state();
    for len in 0..shared.len() {
        assert!(State::decode(&shared[..len], &shards).is_err(), "{len}");
    }
    for i in 0..shards.len() {
        for len in 0..shards[i].len() {
            let mut cut = shards.clone();
            cut[i].truncate(len);
            assert!(State::decode(&shared, &cut).is_err(), "shard {i} at {len}");
        }
        let mut longer = shards.clone();
        longer[i].push(0);
        assert!(State::decode(&shared, &longer).is_err());
    }
    // A shard twice: its sessions and relay ports twice.
    let twice = [shards[0].clone(), shards[0].clone()];
    assert!(State::decode(&shared, &twice).is_err());
}

#[test]
fn every_flipped_bit_is_refused_or_restores_whole() {
    let (shared, shards) = rich_state();
    let mut refused = 0;
    let mut flips = 0;
    for section in 0..=shards.len() {
        let bytes = if section == 0 {
            &shared
        } else {
            &shards[section - 1]
        };
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let result = if section == 0 {
                decode_and_restore(&flipped, &shards)
            } else {
                let mut all = shards.clone();
                all[section - 1] = flipped;
                decode_and_restore(&shared, &all)
            };
            flips += 1;
            refused += usize::from(result.is_err());
        }
    }
    // Most bits are counts, lengths, tags, names and flags: their flips are caught.
    assert!(refused * 2 > flips, "{refused} of {flips} refused");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn mangled_states_never_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0..3usize), 1..6)
    ) {
        let (shared, mut shards) = rich_state();
        let mut shared = shared;
        for (at, value, section) in edits {
            let bytes = if section == 0 { &mut shared } else { &mut shards[section - 1] };
            if !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] = value;
            }
        }
        let _ = decode_and_restore(&shared, &shards);
    }
}
