//! The directory's side of a fleet (`--directory redis://...`): several servers sharing one
//! lobby directory through Redis, each listing the others' lobbies and refusing a session name
//! live on another.
//!
//! The shards never talk to Redis, and never wait for whoever does: the directory tells the
//! fleet thread (`runtime::fleet`) what changed here through an unbounded channel
//! ([`Change`]: a session created or deleted, a lobby listed or unlisted; a send never blocks),
//! and the fleet thread writes what it reads from Redis back here ([`Directory::set_node`]):
//! the other servers' lobbies, which the listings then show with the server to join them at,
//! and their session names, which a host request checks ([`Directory::taken_elsewhere`]).
//! A new session name is claimed in Redis before the session is created
//! ([`Directory::reserve`]): the first `h:` for it asks the fleet thread and goes unanswered,
//! and the client's next `h:` (the plugin re-sends every 0.5 s) finds the verdict waiting. While
//! Redis is away, names are checked against this server and the last view of the others only.
//!
//! Without a fleet none of this is used: the channel is `None` and every call here returns at
//! once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::{Mutex, RwLock};

use super::{Directory, Entry, Listing};
use crate::core::SessionName;

/// Another server of the fleet: its node id in Redis, and where players reach it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    pub node: String,
    /// Its public host (a DNS name or an IPv4 address, `rabid_wire::lobby::is_server_host`).
    pub host: String,
    pub port: u16,
    /// Its region label (`rabid_wire::lobby::is_region`).
    pub region: String,
}

/// A change of this server's sessions or lobbies, for the fleet thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A session was created here: its name is to be claimed fleet-wide.
    Claimed(SessionName),
    /// A session was deleted here: its name is free again.
    Released(SessionName),
    /// One of this server's lobbies was listed or changed.
    Listed(Box<Listing>),
    /// One of this server's lobbies left the list.
    Unlisted(SessionName),
    /// A host asks for this new name: claim it in Redis and say ([`Directory::settle`]).
    Reserve(SessionName),
}

/// What a host request for a new name may do now ([`Directory::reserve`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reserve {
    /// Create the session: the name is claimed for this server, or there is no fleet to ask.
    Go,
    /// Not yet known: drop the request unanswered; the client asks again.
    Wait,
    /// Another server holds it: `error:session_exists`.
    Taken,
}

/// Names asked for and not yet settled or forgotten, at most.
pub const MAX_RESERVATIONS: usize = 10_000;
/// New names asked of Redis per second, at most, whatever hosts send.
pub const RESERVATIONS_PER_SEC: u32 = 2_000;

/// A name asked for by a host: whether Redis said yes yet.
#[derive(Clone, Copy, Debug)]
struct Reservation {
    verdict: Option<bool>,
    asked: Instant,
}

/// The directory's link to the fleet thread.
#[derive(Debug)]
pub struct FleetLink {
    changes: Sender<Change>,
    names: RwLock<RemoteNames>,
    /// Whether the fleet thread is connected to Redis: only then do new names wait for it.
    up: AtomicBool,
    reservations: Mutex<Reservations>,
}

/// The names asked for, and how many were asked in the current second.
#[derive(Debug)]
struct Reservations {
    names: HashMap<SessionName, Reservation>,
    second: Option<Instant>,
    asked: u32,
}

/// The session names live on other servers.
#[derive(Debug, Default)]
struct RemoteNames {
    /// How many other servers hold each name (two only in a race, see `runtime::fleet`).
    count: HashMap<SessionName, u32>,
    /// The names each other server holds, by node id.
    by_node: HashMap<String, Vec<SessionName>>,
}

impl FleetLink {
    /// Hands `change` to the fleet thread; never blocks. When the thread is gone (the server is
    /// stopping) the change is dropped.
    pub(super) fn send(&self, change: Change) {
        let _ = self.changes.send(change);
    }
}

impl Directory {
    /// A directory that tells every change of this server's sessions and lobbies to `changes`.
    pub fn with_fleet(changes: Sender<Change>) -> Self {
        let now = Instant::now();
        Self {
            inner: Default::default(),
            // An hour back, so that other servers' lobbies created before this one started
            // still sort by their age (a session lives 15 minutes by default).
            epoch: now.checked_sub(Duration::from_secs(3600)).unwrap_or(now),
            fleet: Some(FleetLink {
                changes,
                names: Default::default(),
                up: AtomicBool::new(false),
                reservations: Mutex::new(Reservations {
                    names: HashMap::new(),
                    second: None,
                    asked: 0,
                }),
            }),
        }
    }

    /// Whether this directory is shared with a fleet.
    pub fn in_fleet(&self) -> bool {
        self.fleet.is_some()
    }

    /// A session named `name` was created on this server.
    pub fn claim(&self, name: SessionName) {
        if let Some(fleet) = &self.fleet {
            fleet.send(Change::Claimed(name));
        }
    }

    /// The session named `name` on this server was deleted.
    pub fn release(&self, name: SessionName) {
        if let Some(fleet) = &self.fleet {
            fleet.send(Change::Released(name));
        }
    }

    /// May a host create a session under the new name `name` now? Asks the fleet thread to claim
    /// it the first time (never waits for it), and answers from its verdict the next.
    ///
    /// Past [`RESERVATIONS_PER_SEC`] or [`MAX_RESERVATIONS`] (a flood of hosts), and while Redis
    /// is away, the answer is [`Reserve::Go`]: the name is then checked against the view of the
    /// other servers only, as the caller did, so a flood can neither make Redis work harder nor
    /// keep real hosts waiting.
    pub fn reserve(&self, name: SessionName, now: Instant) -> Reserve {
        let Some(fleet) = &self.fleet else {
            return Reserve::Go;
        };
        if !fleet.up.load(Ordering::Relaxed) {
            return Reserve::Go;
        }
        let mut reservations = fleet.reservations.lock();
        match reservations.names.get(&name).map(|r| r.verdict) {
            Some(Some(true)) => {
                reservations.names.remove(&name);
                Reserve::Go
            }
            // Kept until forgotten: a host re-sending is answered without asking again.
            Some(Some(false)) => Reserve::Taken,
            Some(None) => Reserve::Wait,
            None => {
                if reservations
                    .second
                    .is_none_or(|s| now.saturating_duration_since(s) >= Duration::from_secs(1))
                {
                    reservations.second = Some(now);
                    reservations.asked = 0;
                }
                if reservations.names.len() >= MAX_RESERVATIONS
                    || reservations.asked >= RESERVATIONS_PER_SEC
                {
                    return Reserve::Go;
                }
                reservations.asked += 1;
                reservations.names.insert(
                    name,
                    Reservation {
                        verdict: None,
                        asked: now,
                    },
                );
                drop(reservations);
                fleet.send(Change::Reserve(name));
                Reserve::Wait
            }
        }
    }

    /// Redis's verdict on a name asked for: `ours` when it is claimed for this server. For the
    /// fleet thread.
    pub fn settle(&self, name: SessionName, ours: bool) {
        if let Some(fleet) = &self.fleet {
            if let Some(r) = fleet.reservations.lock().names.get_mut(&name) {
                r.verdict = Some(ours);
            }
        }
    }

    /// Whether the fleet thread is connected to Redis; forgets the names asked for longer than
    /// `keep` ago (less than the claims' TTL, so that a verdict never outlives its claim). For
    /// the fleet thread.
    pub fn set_fleet_up(&self, up: bool, now: Instant, keep: Duration) {
        if let Some(fleet) = &self.fleet {
            fleet.up.store(up, Ordering::Relaxed);
            fleet
                .reservations
                .lock()
                .names
                .retain(|_, r| now.saturating_duration_since(r.asked) < keep);
        }
    }

    /// Whether a session named `name` is live on another server of the fleet, as far as the
    /// fleet thread last read (about a second ago).
    pub fn taken_elsewhere(&self, name: &SessionName) -> bool {
        self.fleet
            .as_ref()
            .is_some_and(|f| f.names.read().count.contains_key(name))
    }

    /// Sets what server `node` holds: the names of its sessions and its listed lobbies (each
    /// with its `origin`), replacing what it held; `None` when it is gone. For the fleet thread.
    pub fn set_node(&self, node: &str, held: Option<(Vec<SessionName>, Vec<Listing>)>) {
        let (names, mut lobbies) = held.unwrap_or_default();
        if let Some(fleet) = &self.fleet {
            let mut remote = fleet.names.write();
            let old = remote.by_node.remove(node).unwrap_or_default();
            for name in old {
                if let Some(n) = remote.count.get_mut(&name) {
                    *n -= 1;
                    if *n == 0 {
                        remote.count.remove(&name);
                    }
                }
            }
            for name in &names {
                *remote.count.entry(*name).or_default() += 1;
            }
            if !names.is_empty() {
                remote.by_node.insert(node.to_string(), names);
            }
        }
        // Oldest first, so that each new entry is the newest so far.
        lobbies.sort_by_key(|l| l.created);
        let mut inner = self.inner.write();
        let mut old = inner.remote.remove(node).unwrap_or_default();
        let mut seqs = HashMap::with_capacity(lobbies.len());
        for listing in lobbies {
            let base = self.seq(listing.created, 0);
            let seq = inner.reuse_or_next(old.remove(&listing.session), base, listing.created);
            seqs.insert(listing.session, seq);
            inner.insert(Entry { listing, seq });
        }
        for (_, seq) in old {
            inner.remove(seq);
        }
        if !seqs.is_empty() {
            inner.remote.insert(node.to_string(), seqs);
        }
    }

    /// The other servers this directory holds lobbies or names of, by node id.
    pub fn remote_nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self.inner.read().remote.keys().cloned().collect();
        if let Some(fleet) = &self.fleet {
            nodes.extend(fleet.names.read().by_node.keys().cloned());
        }
        nodes.sort();
        nodes.dedup();
        nodes
    }

    /// The lobbies of other servers listed now.
    pub fn remote_len(&self) -> usize {
        self.inner.read().remote.values().map(HashMap::len).sum()
    }
}

impl Listing {
    /// The origin of this listing as the wire shows it.
    pub(super) fn server_view(&self) -> Option<rabid_wire::lobby::ServerView<'_>> {
        self.origin
            .as_deref()
            .map(|o| rabid_wire::lobby::ServerView {
                host: &o.host,
                port: o.port,
                region: &o.region,
            })
    }
}
