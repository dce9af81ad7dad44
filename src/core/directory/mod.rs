//! The lobby directory (docs/lobbies.md): the public, open sessions of every shard, listed.
//!
//! Sessions live on the worker that owns their name, but a listing spans them all, so the
//! directory is a service shared by the shards and handed to each explicitly. Shards write to
//! it only when what a listing shows changes (a session made public, a join, a leave, a new
//! host, a start, a deletion): never on a ping. Listings read it.
//!
//! It holds only the lobbies a listing can show, so the cost of a listing does not grow with
//! the sessions that are private or started. Each scope (the compatible `d:` lobbies, or one
//! game of the extension) keeps its lobbies in two orders (newest first, fullest first) and
//! counts of what the flag filters select, so a page walks only what it shows, plus what its
//! version or mode condition skips.

mod json;
mod page;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use parking_lot::RwLock;

use crate::core::{PlayerName, SessionName};

pub use json::{HttpQuery, ParseQueryError};

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
}

impl Listing {
    fn free(&self) -> bool {
        self.players < self.max_players
    }

    /// Index into [`ScopeIndex::counts`]: bit 0 a free slot, bit 1 no password.
    fn class(&self) -> usize {
        usize::from(self.free()) | usize::from(!self.password) << 1
    }
}

/// A listed lobby and its place in the orders.
#[derive(Debug)]
struct Entry {
    listing: Listing,
    seq: u64,
}

/// The lobbies of one scope, in both orders.
#[derive(Debug, Default)]
struct ScopeIndex {
    /// By `seq`: creation order (newest last).
    newest: BTreeMap<u64, SessionName>,
    /// By (players, seq): fullest last.
    fullest: BTreeSet<(u8, u64)>,
    /// How many lobbies fall in each class of [`Listing::class`].
    counts: [usize; 4],
}

/// The shared directory.
#[derive(Debug, Default)]
pub struct Directory {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Gives each listed lobby its place in newest-first, from its creation time.
    next_seq: u64,
    entries: HashMap<SessionName, Entry>,
    scopes: HashMap<Scope, ScopeIndex>,
}

impl Directory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Lists `listing`'s lobby, or updates it when it is listed already.
    pub fn publish(&self, listing: Listing) {
        let mut inner = self.inner.write();
        let seq = match inner.remove(&listing.session) {
            Some(old) if old.listing.created == listing.created => old.seq,
            _ => {
                inner.next_seq += 1;
                inner.next_seq
            }
        };
        inner.insert(Entry { listing, seq });
    }

    /// Takes `session` off the list (started, emptied, deleted, made private). Nothing when it
    /// is not listed.
    pub fn unlist(&self, session: &SessionName) {
        self.inner.write().remove(session);
    }

    /// Lobbies listed now, in all scopes.
    pub fn len(&self) -> usize {
        self.inner.read().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The listing of session `name`, if it is listed.
    pub fn get(&self, name: &SessionName) -> Option<Listing> {
        self.inner
            .read()
            .entries
            .get(name)
            .map(|e| e.listing.clone())
    }
}

impl Inner {
    fn insert(&mut self, entry: Entry) {
        let listing = &entry.listing;
        let index = self.scopes.entry(listing.scope.clone()).or_default();
        index.newest.insert(entry.seq, listing.session);
        index.fullest.insert((listing.players, entry.seq));
        index.counts[listing.class()] += 1;
        self.entries.insert(listing.session, entry);
    }

    fn remove(&mut self, session: &SessionName) -> Option<Entry> {
        let entry = self.entries.remove(session)?;
        let listing = &entry.listing;
        if let Some(index) = self.scopes.get_mut(&listing.scope) {
            index.newest.remove(&entry.seq);
            index.fullest.remove(&(listing.players, entry.seq));
            index.counts[listing.class()] -= 1;
            if index.newest.is_empty() {
                self.scopes.remove(&listing.scope);
            }
        }
        Some(entry)
    }
}

#[cfg(test)]
mod tests;
