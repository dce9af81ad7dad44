//! Hot restart, the core's side: every shard's state and what the shards share, written to
//! bytes by the running server and restored into the fresh shards of its successor
//! (`--takeover`, issue 17). The runtime moves the bytes and the sockets; nothing here does I/O.
//!
//! The old process pauses its threads, calls [`export_shard`] on each worker (the shard is only
//! read: if the hand-over fails, the old process serves on with it) and [`export_shared`] once.
//! The new one calls [`State::decode`], builds its clock with
//! [`Clock::continuing`](crate::core::Clock::continuing) from [`State::clock_millis`] (so every
//! stored millisecond keeps its instant, and every deadline falls when it would have), keeps
//! [`State::relay_ports`] out of its workers' pool shares, and
//! calls [`State::restore`] with its own shards, however many: each session goes to the shard
//! its new front door routes its name to, each relay with it.
//!
//! **What carries over**: every session (players with their addresses and when each was last
//! heard from, host order, password, ban list, maximum, lobby data, creation time, its start
//! with the rounds of start messages sent and who confirmed); every relay (members, ports, the
//! addresses learned towards each port, start and last forward, its byte budget); the errors
//! still to repeat (`player_timeout`, `session_timeout`: the players they go to are gone from
//! their sessions, so they all go to shard 0, which sends them when they were due); the
//! directory's listing order; the recent starts of `--relay auto`, so that a retry just after
//! an upgrade is still recognised. The caps' counts and the relay limits' per-IP session counts
//! are not written: they follow from the sessions and relays, and are counted again as those
//! are adopted, whatever the caps are now (a lowered cap holds back new sessions, never ends a
//! live one).
//!
//! **What restarts**: the counters ([`ShardStats`](crate::core::ShardStats),
//! [`RelayStats`](crate::core::RelayStats) but its two gauges of ports): they count what this
//! process did, the metrics endpoint shows them as counters, which a scraper already expects to
//! reset when a process starts, and shards of a different number could not share them out
//! anyway. The chat rate limits and the relay byte budgets of each IP restart full: carrying
//! them would put per-player and per-IP tables into the shared state for at most one burst (5
//! chat lines, one second of relay bytes) each, once per upgrade. A session's ids, a relay's,
//! and their timer entries are the shard's own and are made anew (stale entries are not
//! carried). In a fleet, the other servers' lobbies are not carried: the new fleet thread reads
//! them from Redis; the restored sessions are claimed and listed through it again.
//!
//! The format: two kinds of section (one shared, one per shard), each starting with the 32-bit
//! [`STATE_VERSION`], a tag and the clock's reading at export; little-endian integers,
//! length-prefixed lists and strings. A successor refuses any other version whole
//! ([`StateError::Version`]): a state is a few megabytes written a second before, never a file
//! to migrate. Decoding treats the bytes as untrusted: bounds and counts checked before
//! anything is allocated, names checked by the request parser itself, times no later than their
//! export, the invariants a shard relies on checked (players within the maximum, no name twice,
//! no relay port twice), so that no byte string can make it panic or build a shard that breaks
//! [`Shard::check_invariants`].

pub(crate) mod codec;
mod sessions;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Instant;

use codec::{malformed, Reader, Result, Writer, MAX_MILLIS};

use super::clock::Millis;
use super::front::FrontDoor;
use super::name::SessionName;
use super::relay::{RecentStarts, RecentStartsState, Relay};
use super::repeats::{Repeat, Repeats};
use super::session::Session;
use super::shard::Shard;
use super::shared::Shared;

/// The version of the encoded state. A successor that reads another version refuses.
pub const STATE_VERSION: u32 = 1;

/// The tag of the shared section.
const SHARED: u8 = b'H';
/// The tag of a shard's section.
const SHARD: u8 = b'S';

/// Why a state cannot be restored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateError {
    /// Written by a server of another state version.
    Version { found: u32, supported: u32 },
    /// Not a state this version writes: truncated, corrupted, or breaking a rule.
    Malformed(String),
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Version { found, supported } => write!(
                f,
                "the state is of version {found}, this server reads version {supported} only"
            ),
            StateError::Malformed(why) => write!(f, "the state is malformed: {why}"),
        }
    }
}

impl std::error::Error for StateError {}

/// One shard's state, encoded, from `shard`, which is not changed (the old process may resume
/// serving with it if the hand-over fails). Called on the worker thread.
pub fn export_shard(shard: &Shard, now: Instant) -> Vec<u8> {
    let mut w = Writer::default();
    header(&mut w, SHARD, shard.millis(now));
    w.count(shard.session_entries().count());
    for (name, session) in shard.session_entries() {
        sessions::encode(&mut w, name, session);
    }
    w.count(shard.relay_entries().count());
    for relay in shard.relay_entries() {
        relay.encode(&mut w);
    }
    shard.repeats().encode(&mut w);
    w.buf
}

/// What the shards share that is worth carrying: the directory's order of this server's listed
/// lobbies, and the relay auto policy's recent starts.
pub fn export_shared(shared: &Shared, now: Instant) -> Vec<u8> {
    let mut w = Writer::default();
    header(&mut w, SHARED, shared.clock.millis(now));
    let listed = shared.directory.local_order();
    w.count(listed.len());
    for name in &listed {
        w.str(name.as_str());
    }
    shared.relay_limits.recent_starts.encode(&mut w);
    w.buf
}

fn header(w: &mut Writer, tag: u8, millis: Millis) {
    w.u32(STATE_VERSION);
    w.u8(tag);
    w.u64(millis);
}

/// Reads a section's header: its version, then its tag; returns its clock reading.
fn read_header(r: &mut Reader<'_>, tag: u8) -> Result<Millis> {
    let found = r.u32("version")?;
    if found != STATE_VERSION {
        return Err(StateError::Version {
            found,
            supported: STATE_VERSION,
        });
    }
    match r.u8("section tag")? {
        t if t == tag => r.millis(MAX_MILLIS, "clock reading"),
        other => malformed(format!("section tag {other}, expected {tag}")),
    }
}

/// A whole server's state, decoded and checked; [`restore`](Self::restore) puts it into the
/// shards of a new process.
#[derive(Debug)]
pub struct State {
    millis: Millis,
    sessions: Vec<(SessionName, Session)>,
    relays: Vec<Relay>,
    repeats: Vec<Repeat>,
    /// Listed sessions in the directory's order.
    listed: Vec<SessionName>,
    recent_starts: RecentStartsState,
}

impl State {
    /// Decodes the shared section and every shard's (in any order, of any number). Fails on
    /// anything but what [`export_shard`] and [`export_shared`] of this version write.
    pub fn decode(shared: &[u8], shards: &[Vec<u8>]) -> std::result::Result<State, StateError> {
        let mut r = Reader::new(shared);
        let mut millis = read_header(&mut r, SHARED)?;
        let count = r.count(5, "listed lobbies")?;
        let listed = (0..count)
            .map(|_| r.session("listed lobby"))
            .collect::<Result<Vec<_>>>()?;
        let recent_starts = RecentStarts::decode(&mut r, millis)?;
        r.finish("the shared section")?;
        let (mut sessions, mut relays, mut repeats) = (Vec::new(), Vec::new(), Vec::new());
        for bytes in shards {
            let mut r = Reader::new(bytes);
            let now = read_header(&mut r, SHARD)?;
            millis = millis.max(now);
            let count = r.count(40, "sessions")?;
            for _ in 0..count {
                sessions.push(sessions::decode(&mut r, now)?);
            }
            let count = r.count(40, "relays")?;
            for _ in 0..count {
                relays.push(Relay::decode(&mut r, now)?);
            }
            repeats.extend(Repeats::decode(&mut r, MAX_MILLIS)?);
            r.finish("a shard's section")?;
        }
        let mut names = HashSet::with_capacity(sessions.len());
        if let Some((name, _)) = sessions.iter().find(|(name, _)| !names.insert(*name)) {
            return malformed(format!("session {name} twice"));
        }
        let mut ports = HashSet::new();
        if let Some(port) = relays
            .iter()
            .flat_map(Relay::ports)
            .find(|&p| !ports.insert(p))
        {
            return malformed(format!("relay port {port} held twice"));
        }
        Ok(State {
            millis,
            sessions,
            relays,
            repeats,
            listed,
            recent_starts,
        })
    }

    /// The old clock's reading (milliseconds since its epoch) at export, the latest of the
    /// sections': the new process builds its clock so that these milliseconds continue
    /// ([`Clock::continuing`](crate::core::Clock::continuing)).
    pub fn clock_millis(&self) -> u64 {
        self.millis
    }

    /// Relay ports held by relays in the state: the new process keeps them out of the free pool
    /// shares, and hands each to the worker whose shard gets its relay (what
    /// [`restore`](Self::restore) returns).
    pub fn relay_ports(&self) -> Vec<u16> {
        self.relays.iter().flat_map(Relay::ports).collect()
    }

    /// Sessions in the state.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Players in all its sessions.
    pub fn players(&self) -> usize {
        self.sessions.iter().map(|(_, s)| s.players.len()).sum()
    }

    /// Open relays in the state.
    pub fn relays(&self) -> usize {
        self.relays.len()
    }

    /// Puts every session into `shards[front.shard_of(name)]` with its relays, the errors still
    /// to repeat into shard 0, and the shared parts into `shared` (the caps and relay limits
    /// count what is adopted; public lobbies are listed in their old order; the recent starts
    /// are replaced). `shards` are fresh, built with `Shard::with_shared(config, shared)
    /// .with_relay_pool(share)`, where no share should hold a port of
    /// [`relay_ports`](Self::relay_ports) (one that does is taken out of it). Returns, per
    /// shard, the relay ports it now holds besides its share.
    ///
    /// # Panics
    ///
    /// If `front` does not route to exactly `shards.len()` shards: that is the caller's bug,
    /// and restoring anyway would put sessions where no request finds them.
    pub fn restore(
        self,
        shared: &Shared,
        front: &FrontDoor,
        shards: &mut [Shard],
    ) -> Vec<Vec<u16>> {
        assert_eq!(
            front.shards(),
            shards.len(),
            "one front door for these shards"
        );
        let State {
            millis,
            mut sessions,
            relays,
            repeats,
            listed,
            recent_starts,
        } = self;
        shared.relay_limits.recent_starts.adopt(recent_starts);
        let held: HashSet<u16> = relays.iter().flat_map(Relay::ports).collect();
        for shard in shards.iter_mut() {
            shard.withhold_relay_ports(&held);
        }
        // Public lobbies first, in the order they were listed, so that they are listed again in
        // that order (the directory orders by creation time, then by when it was told).
        let place: HashMap<SessionName, usize> = listed
            .iter()
            .enumerate()
            .map(|(i, &name)| (name, i))
            .collect();
        sessions.sort_by_key(|(name, _)| place.get(name).copied().unwrap_or(usize::MAX));
        for (name, session) in sessions {
            shards[front.shard_of(&name)].adopt_session(name, session);
        }
        let mut ports = vec![Vec::new(); shards.len()];
        for relay in relays {
            let shard = front.shard_of(&relay.session());
            ports[shard].extend(shards[shard].adopt_relay(relay, millis));
        }
        shards[0].adopt_repeats(repeats);
        ports
    }
}
