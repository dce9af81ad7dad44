//! The lobby directory (docs/lobbies.md): the public, open sessions of every shard, listed.
//!
//! Sessions live on the worker that owns their name, but a listing spans them all, so the
//! directory is a service shared by the shards and handed to each explicitly. Shards write to
//! it only when what a listing shows changes (a session made public, a join, a leave, a new
//! host, a start, a deletion): never on a ping. Listings read it.
//!
//! It holds only the lobbies a listing can show, so the cost of a listing does not grow with
//! the sessions that are private or started; and its indexes ([`index`]) let a page walk only
//! what it shows, whatever its filters.
//!
//! In a fleet (`--directory redis://...`, [`fleet`]) it also holds the lobbies of the other
//! servers, which the fleet thread keeps in step with Redis, and it tells that thread, through a
//! channel that never blocks, every change of this server's sessions and lobbies.

pub mod fleet;
mod index;
mod json;
mod page;

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::RwLock;

use crate::core::{PlayerName, SessionName};

pub use fleet::{Change, FleetLink, Origin, Reserve};
use index::Slices;
pub use json::{HttpQuery, ParseQueryError};
pub use page::Filter;

/// Which listing a lobby belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Made public with FusionV1's `d:`: listed by `l:`.
    Compat,
    /// Announced with `a:1:` for this game: listed by `b:1:` and `q:1:` for the game.
    Game(String),
}

/// What a shard tells the directory about one listed lobby.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    pub session: SessionName,
    pub scope: Scope,
    pub host: PlayerName,
    pub players: u8,
    pub max_players: u8,
    pub password: bool,
    pub version: String,
    pub mode: String,
    pub description: String,
    /// When the session was created: its age in listings, and its place in newest-first.
    pub created: Instant,
    /// The fleet server that holds it; `None` for this server's own lobbies.
    pub origin: Option<std::sync::Arc<Origin>>,
}

impl Listing {
    fn free(&self) -> bool {
        self.players < self.max_players
    }

    /// Its class in the indexes: bit 0 a free slot, bit 1 no password.
    fn class(&self) -> usize {
        usize::from(self.free()) | usize::from(!self.password) << 1
    }
}

/// A listed lobby and its place in newest-first.
#[derive(Debug)]
struct Entry {
    listing: Listing,
    seq: u64,
}

/// The shared directory.
#[derive(Debug)]
pub struct Directory {
    inner: RwLock<Inner>,
    /// Creation times are counted from here, for newest-first.
    epoch: Instant,
    /// The way to the fleet thread, in a fleet.
    fleet: Option<FleetLink>,
}

impl Default for Directory {
    fn default() -> Self {
        Self {
            inner: RwLock::default(),
            epoch: Instant::now(),
            fleet: None,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Tells apart lobbies created in the same millisecond (see [`Directory::seq`]).
    next_seq: u64,
    /// Listed lobbies by `seq`, what the indexes hold.
    entries: HashMap<u64, Entry>,
    /// The `seq` of each listed session of this server.
    seqs: HashMap<SessionName, u64>,
    /// The `seq`s of the lobbies of each other fleet server, by node id.
    remote: HashMap<String, HashMap<SessionName, u64>>,
    scopes: HashMap<Scope, Slices>,
}

impl Directory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Lists `listing`'s lobby (one of this server's), or updates it when it is listed already.
    pub fn publish(&self, listing: Listing) {
        if let Some(fleet) = &self.fleet {
            fleet.send(Change::Listed(Box::new(listing.clone())));
        }
        let mut inner = self.inner.write();
        let old = inner.seqs.remove(&listing.session);
        let seq = inner.reuse_or_next(old, self.seq(listing.created, 0), listing.created);
        inner.seqs.insert(listing.session, seq);
        inner.insert(Entry { listing, seq });
    }

    /// A lobby's place in newest-first: its session's creation time in milliseconds since the
    /// directory's epoch (in the high 44 bits: 557 years), then `n` (the low 20 bits) to tell
    /// apart lobbies created in the same millisecond. So a lobby listed late, long after it was
    /// created, still sorts by its age.
    fn seq(&self, created: Instant, n: u64) -> u64 {
        let ms = created.saturating_duration_since(self.epoch).as_millis() as u64;
        (ms.min((1 << 44) - 1) << 20) | (n & ((1 << 20) - 1))
    }

    /// Takes `session` off the list (started, emptied, deleted, made private). Nothing when it
    /// is not listed.
    pub fn unlist(&self, session: &SessionName) {
        let removed = {
            let mut inner = self.inner.write();
            let seq = inner.seqs.remove(session);
            seq.and_then(|seq| inner.remove(seq)).is_some()
        };
        if let (true, Some(fleet)) = (removed, &self.fleet) {
            fleet.send(Change::Unlisted(*session));
        }
    }

    /// Lobbies listed now, in all scopes, other fleet servers' included.
    pub fn len(&self) -> usize {
        self.inner.read().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// This server's listed sessions, oldest first in newest-first order (by their place,
    /// `seq`): the order a successor process lists them in again ([`crate::core::handover`]).
    pub(crate) fn local_order(&self) -> Vec<SessionName> {
        let inner = self.inner.read();
        let mut listed: Vec<(u64, SessionName)> =
            inner.seqs.iter().map(|(name, seq)| (*seq, *name)).collect();
        listed.sort_unstable();
        listed.into_iter().map(|(_, name)| name).collect()
    }

    /// The listing of session `name`, if it is listed.
    pub fn get(&self, name: &SessionName) -> Option<Listing> {
        let inner = self.inner.read();
        let seq = inner.seqs.get(name)?;
        inner.entries.get(seq).map(|e| e.listing.clone())
    }
}

impl Inner {
    /// The place in newest-first of a lobby created at `created` that had place `old`: the same
    /// when it is the same lobby, else a new one from `base` (`Directory::seq` of its creation
    /// time with a count of 0). Removes the old entry.
    fn reuse_or_next(&mut self, old: Option<u64>, base: u64, created: Instant) -> u64 {
        match old.and_then(|seq| self.remove(seq)) {
            Some(old) if old.listing.created == created => old.seq,
            _ => {
                self.next_seq += 1;
                let mut seq = base | (self.next_seq & ((1 << 20) - 1));
                // The counter's low bits wrap: step past a place taken (by a lobby created in
                // the same millisecond, 2^20 listings ago), or it would shadow that one.
                while self.entries.contains_key(&seq) {
                    seq += 1;
                }
                seq
            }
        }
    }

    /// Puts `entry` in the indexes (its owner's map of `seq`s is the caller's).
    fn insert(&mut self, entry: Entry) {
        let l = &entry.listing;
        self.scopes.entry(l.scope.clone()).or_default().insert(
            &l.version,
            &l.mode,
            l.class(),
            l.players,
            entry.seq,
        );
        self.entries.insert(entry.seq, entry);
    }

    /// Takes entry `seq` out of the indexes.
    fn remove(&mut self, seq: u64) -> Option<Entry> {
        let entry = self.entries.remove(&seq)?;
        let l = &entry.listing;
        if let Some(slices) = self.scopes.get_mut(&l.scope) {
            slices.remove(&l.version, &l.mode, l.class(), l.players, seq);
            if slices.is_empty() {
                self.scopes.remove(&l.scope);
            }
        }
        Some(entry)
    }
}

#[cfg(test)]
mod tests;
