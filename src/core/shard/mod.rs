//! A shard: the sessions one worker owns, its timers, and its counters.
//!
//! The type is here with its constructors and its entry points for batches and raw datagrams;
//! its other jobs have a file each:
//! - [`requests`]: `Shard::handle` (one request) and the table of requests (checks in order,
//!   errors, replies), host migration and the "heard from" rule;
//! - [`timeouts`]: `Shard::handle_timeout` and `next_timeout`: start re-sends, the player timeout
//!   and the session lifetime;
//! - [`relay`]: `Shard::handle_relayed`, and what a start asks of the shard's relays;
//! - [`lobby`]: `Shard::handle_lobby`: lobby data, chat, and the directory kept in step with the
//!   sessions;
//! - [`invariants`]: what must hold after any sequence of requests and timeouts;
//! - [`handover`]: what a hand-over to a successor process reads of a shard, and adopting what
//!   it restores.

mod handover;
mod invariants;
mod lobby;
mod relay;
mod requests;
mod timeouts;

use lobby::ChatLimits;
pub(crate) use lobby::LobbyData;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use super::caps::Caps;
use super::clock::Clock;
use super::config::{CoreConfig, Settings};
use super::directory::Directory;
use super::front::{ParsedRequest, Routed};
use super::name::SessionName;
use super::relay::Relays;
use super::repeats::Repeats;
use super::session::Session;
use super::session_map::SessionMap;
use super::shared::Shared;
use super::timers::Timers;
use crate::outbox::Outbox;
use crate::wire::{ErrorCode, ParseError};

/// The sessions of one shard and everything needed to run them. See the [module](super) docs.
#[derive(Debug)]
pub struct Shard {
    config: Settings,
    clock: Clock,
    sessions: SessionMap,
    /// One live entry per session, keyed by its id and name, at its `Session::timer_at`; stale
    /// ones are skipped when popped.
    timers: Timers<(u32, SessionName)>,
    repeats: Repeats,
    next_id: u32,
    players: usize,
    caps: Arc<Caps>,
    relays: Relays,
    /// The lobby directory, shared with the other shards.
    directory: Arc<Directory>,
    chat_limits: ChatLimits,
    stats: ShardStats,
    /// Scratch space of [`Shard::handle_requests`]: the tags of a batch's sessions, and where
    /// their entries were found; and of [`Shard::handle_datagrams`]: the batch, parsed.
    batch_tags: Vec<u32>,
    batch_found: Vec<u32>,
    batch_parsed: Vec<Result<Routed, (SocketAddr, ParseError)>>,
}

/// Requests [`Shard::handle_requests`] hashes (and prefetches) ahead of handling them: a
/// worker's batch.
pub const CHUNK: usize = 32;

/// Sessions a shard holds before [`Shard::handle_requests`] prefetches. A few hundred
/// sessions stay in a core's own cache, and there the prefetch instructions only cost (about
/// 20 ns a ping in `benches/ping_flat.rs`); from 10 000 sessions on it made a ping 1.7 times
/// faster, at 1 000 000 about 3 times. 1 024 sessions take about 600 KB, a core's L2 cache.
pub(crate) const PREFETCH_FROM_SESSIONS: usize = 1024;

/// A datagram for [`Shard::handle_datagrams`]: who sent it, the local address it arrived on if
/// known, and its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Incoming<'a> {
    pub from: SocketAddr,
    pub local: Option<IpAddr>,
    pub bytes: &'a [u8],
}

/// Counters of what a shard did, for the stats line and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardStats {
    pub sessions_created: u64,
    pub sessions_started: u64,
    pub sessions_timed_out: u64,
    pub players_joined: u64,
    pub players_timed_out: u64,
    pub players_kicked: u64,
    pub players_exited: u64,
    /// Host requests dropped, unanswered, at a session cap.
    pub hosts_refused_by_cap: u64,
    /// Joins answered `error:session_full` because of the total players cap.
    pub joins_refused_by_cap: u64,
    /// Chat lines (`m:`) sent to a lobby.
    pub chat_lines: u64,
    /// Chat lines dropped over a player's rate.
    pub chat_rate_limited: u64,
}

impl Shard {
    /// An empty shard alone: its clock starts at `now`, and it has caps and relay limits of its
    /// own.
    pub fn new(config: &CoreConfig, now: Instant) -> Self {
        Self::with_shared(config, &Shared::new(config, now))
    }

    /// An empty shard reading the clock of `shared` and counting its sessions, players and
    /// relays against the caps and relay limits there, shared with other shards.
    pub fn with_shared(config: &CoreConfig, shared: &Shared) -> Self {
        Self {
            config: Settings::new(config),
            clock: shared.clock,
            sessions: SessionMap::new(),
            timers: Timers::default(),
            repeats: Repeats::default(),
            next_id: 0,
            players: 0,
            caps: Arc::clone(&shared.caps),
            relays: Relays::new(&config.relay, Vec::new(), Arc::clone(&shared.relay_limits)),
            directory: Arc::clone(&shared.directory),
            chat_limits: ChatLimits::default(),
            stats: ShardStats::default(),
            batch_tags: Vec::new(),
            batch_found: Vec::new(),
            batch_parsed: Vec::new(),
        }
    }

    /// The shard with relay ports `ports` to give relayed sessions. Without it a shard has no
    /// relay port, and every start the relay policy picks falls back to direct.
    pub fn with_relay_pool(mut self, ports: Vec<u16>) -> Self {
        self.relays.set_pool(ports);
        self
    }

    /// Handles one datagram from `from` received at `now`: parses it, applies it, and queues the
    /// replies in `out`. A shard alone answers every malformed datagram with
    /// `error:invalid_request`, and an unknown command not at all; in the server, the
    /// [`FrontDoor`](crate::core::FrontDoor) has dropped short garbage before it gets here.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
        out: &mut Outbox,
    ) {
        self.handle_datagram_on(now, from, None, datagram, out);
    }

    /// [`handle_datagram`](Self::handle_datagram) for a datagram that arrived on local address
    /// `local_ip`: a relayed start lists that address when no public relay address is set.
    pub fn handle_datagram_on(
        &mut self,
        now: Instant,
        from: SocketAddr,
        local_ip: Option<IpAddr>,
        datagram: &[u8],
        out: &mut Outbox,
    ) {
        match ParsedRequest::parse(datagram) {
            Ok(request) => self.handle(now, from, local_ip, &request, out),
            Err(error) => garbage(from, error, out),
        }
    }

    /// Handles requests the front door routed here, in order, exactly as
    /// [`handle`](Self::handle) would one after the other, but faster: each session name is
    /// hashed once, in a first pass over up to [`CHUNK`] requests; in a large shard that pass
    /// also starts fetching the sessions they name into the CPU cache, all at once. There each
    /// lookup misses the caches, and the misses of a chunk then overlap instead of adding up
    /// (see `SessionMap::prefetch_sessions`).
    pub fn handle_requests(&mut self, now: Instant, requests: &[Routed], out: &mut Outbox) {
        self.handle_batch(now, requests, out);
    }

    /// [`handle_requests`](Self::handle_requests) for datagrams not parsed yet (garbage
    /// included), as [`handle_datagram_on`](Self::handle_datagram_on) would handle them one
    /// after the other.
    pub fn handle_datagrams<'a>(
        &mut self,
        now: Instant,
        datagrams: impl IntoIterator<Item = Incoming<'a>>,
        out: &mut Outbox,
    ) {
        let mut parsed = std::mem::take(&mut self.batch_parsed);
        parsed.clear();
        parsed.extend(datagrams.into_iter().map(|datagram| {
            match ParsedRequest::parse(datagram.bytes) {
                Ok(request) => Ok(Routed {
                    from: datagram.from,
                    local: datagram.local,
                    request,
                }),
                Err(error) => Err((datagram.from, error)),
            }
        }));
        self.handle_batch(now, &parsed, out);
        self.batch_parsed = parsed;
    }

    /// The chunked, prefetching loop of [`handle_requests`](Self::handle_requests).
    fn handle_batch<T: BatchItem>(&mut self, now: Instant, items: &[T], out: &mut Outbox) {
        let prefetch = self.sessions.len() >= PREFETCH_FROM_SESSIONS;
        for chunk in items.chunks(CHUNK) {
            self.batch_tags.clear();
            for routed in chunk.iter().filter_map(|item| item.view().ok()) {
                let tag = self.sessions.tag(&routed.request.session);
                if prefetch {
                    self.sessions.prefetch_slot(tag);
                }
                self.batch_tags.push(tag);
            }
            if prefetch {
                self.sessions
                    .prefetch_sessions(&self.batch_tags, &mut self.batch_found);
            }
            let mut tags = 0;
            for item in chunk {
                match item.view() {
                    Ok(routed) => {
                        let tag = self.batch_tags[tags];
                        tags += 1;
                        self.sessions.hint_tag(routed.request.session, tag);
                        self.handle(now, routed.from, routed.local, &routed.request, out);
                    }
                    Err(&(from, error)) => garbage(from, error, out),
                }
            }
            self.sessions.clear_hint();
        }
    }

    /// Open sessions (started ones included, until they are forgotten).
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Players in all sessions of this shard.
    pub fn players(&self) -> usize {
        self.players
    }

    /// What this shard did so far.
    pub fn stats(&self) -> ShardStats {
        self.stats
    }

    /// The lobby directory this shard lists its public lobbies in (shared with the others).
    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    /// Deletes a session, keeping the counts right.
    fn remove_session(&mut self, name: &SessionName) -> Option<Session> {
        let session = self.sessions.remove(name)?;
        if session.lobby.is_some() {
            self.directory.unlist(name);
        }
        self.directory.release(*name);
        self.players_left(session.players.len());
        self.caps.close_session(session.owner);
        Some(session)
    }

    /// Counts `n` players gone from their session.
    fn players_left(&mut self, n: usize) {
        self.players -= n;
        self.caps.remove_players(n);
    }

    /// Counts `n` players just removed from session `name` (kicked, exited, timed out), and
    /// deletes the session if nobody is left.
    fn players_removed(&mut self, name: &SessionName, n: usize) {
        self.players_left(n);
        if self
            .sessions
            .get(name)
            .is_some_and(|s| s.players.is_empty())
        {
            self.remove_session(name);
            log::info!("session {name} deleted: no players left");
        } else {
            // A new count, maybe a new host.
            self.relist(name);
        }
    }
}

/// What a shard answers to a datagram that is no request.
fn garbage(from: SocketAddr, error: ParseError, out: &mut Outbox) {
    match error {
        ParseError::Invalid => out.push_error(from, ErrorCode::InvalidRequest),
        ParseError::UnknownCommand => {}
    }
}

/// An entry of a batch: a routed request, or a datagram that may be garbage.
trait BatchItem {
    fn view(&self) -> Result<&Routed, &(SocketAddr, ParseError)>;
}

impl BatchItem for Routed {
    fn view(&self) -> Result<&Routed, &(SocketAddr, ParseError)> {
        Ok(self)
    }
}

impl BatchItem for Result<Routed, (SocketAddr, ParseError)> {
    fn view(&self) -> Result<&Routed, &(SocketAddr, ParseError)> {
        self.as_ref()
    }
}
