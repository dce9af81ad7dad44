//! The fleet thread (`--directory redis://...`): the only thread that talks to Redis. It makes
//! this server a member of a fleet sharing one lobby directory, after OpenTTD's Game
//! Coordinator: a node id claimed with `SET NX` and a TTL and refreshed, records with TTLs.
//!
//! What it keeps in Redis, every key under the prefix `P` (`--directory-prefix`):
//!
//! | key | type | what | TTL |
//! |---|---|---|---|
//! | `P node:<id>` | string | `<host>\|<port>\|<region>`: where players reach node `<id>` | `ttl`, refreshed every `ttl / 3` |
//! | `P nodes` | sorted set | node ids, scored by when their record expires (unix ms) | pruned by score |
//! | `P sessions:<id>` | hash | one field per session of node `<id>`: empty when not listed, else its listing; field `#` counts changes (from the time in µs when the hash is written anew; never repeated) | `ttl`, refreshed |
//! | `P name:<session>` | string | the node id that claimed the name | `ttl`, refreshed |
//!
//! The shards tell it every change of this server's sessions and lobbies through the
//! directory's channel (`core::directory::fleet`), which never blocks them. It writes the
//! changes to Redis as they come, refreshes the TTLs, and polls the other nodes every `poll`
//! (a `GET` of each node record and of each hash's change count; `HGETALL` only of the hashes
//! that changed), writing what it reads into the shared directory: the other nodes' lobbies,
//! which the listings show with the node to join them at, and their session names, which a
//! host request checks. So a listing never waits for Redis, and neither does a worker.
//!
//! A new name is claimed with `SET P name:<session> <id> NX` when a host asks for it, before its
//! session exists (`Change::Reserve`; the shard answers the host's next `h:` from the verdict,
//! `Directory::reserve`), and again when the session is created: one node wins it. A session
//! created without a claim (Redis away, a flood of hosts past the rate) whose name another node
//! won is counted (`rabid_punch_fleet_name_conflicts`) and goes on, players already in it, but
//! is not published (docs/lobbies.md, "A fleet").
//!
//! Redis down: every error drops the connection, is counted and logged (a warning when the
//! connection is lost, then quiet), and the thread reconnects with a backoff from 250 ms to
//! 5 s. Meanwhile the server serves its own sessions and lists its own lobbies as before; the
//! other nodes' lobbies stay listed for `ttl` after the last good poll, then are dropped. Back
//! on Redis, the node registers again and republishes everything it holds.
//!
//! Bounds: a node publishes at most `max_sessions` sessions (more are counted, not published);
//! every field of a listing is bounded by the wire rules (docs/lobbies.md, "Fields"); key names
//! are made of the prefix, the node id and session names (at most 10 letters or digits). What
//! it reads from Redis it checks the same way, and it reads at most `MAX_NODES` nodes and skips
//! a node holding more than `max_sessions`.

mod poll;
mod publish;
mod record;

use record::encode;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use log::{debug, info, warn};
use redis::{Connection, RedisResult};

use super::Counters;
use crate::core::directory::Change;
use crate::core::{Directory, SessionName};

/// How a server joins a fleet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetConfig {
    /// `redis://[:PASSWORD@]HOST:PORT[/DB]`.
    pub url: String,
    /// Put before every key name, so that one Redis can hold several fleets or other data.
    pub prefix: String,
    /// The host players reach this server at (a DNS name or an IPv4 address).
    pub public_host: String,
    pub public_port: u16,
    /// A region label, shown with this server's lobbies on the others.
    pub region: String,
    /// How long this node's records live in Redis unless refreshed: how long a dead node's
    /// lobbies stay listed at most.
    pub ttl: Duration,
    /// How often the other nodes are read.
    pub poll: Duration,
    /// Sessions this node publishes at most (names and lobbies).
    pub max_sessions: usize,
    /// With a `rediss://` URL: PEM certificates of an authority trusted besides the system's
    /// (a private CA that signed the Redis server's certificate).
    pub ca: Option<Vec<u8>>,
}

impl FleetConfig {
    /// The defaults for everything but the Redis URL and where players reach this server.
    pub fn new(url: &str, public_host: &str, public_port: u16) -> Self {
        Self {
            url: url.to_string(),
            prefix: "rabid:".into(),
            public_host: public_host.to_string(),
            public_port,
            region: "default".into(),
            ttl: Duration::from_secs(6),
            poll: Duration::from_secs(1),
            max_sessions: 100_000,
            ca: None,
        }
    }

    /// The Redis client for this configuration: TLS with `rediss://`, trusting `ca` too.
    fn client(&self) -> redis::RedisResult<redis::Client> {
        // redis leaves rustls without a crypto provider: ring is ours. Installing it twice (a
        // second server in one process, in tests) is harmless. rustls deprecates ring for
        // lacking post-quantum key exchange; its alternative (aws-lc-rs) needs a far larger C
        // build, for a link inside a fleet's own network.
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
        match &self.ca {
            None => redis::Client::open(self.url.as_str()),
            Some(ca) => redis::Client::build_with_tls(
                self.url.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.clone()),
                },
            ),
        }
    }
}

/// Other nodes read at most.
const MAX_NODES: usize = 1000;
/// The longest a read or write of Redis may take before the connection counts as lost.
const IO_TIMEOUT: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// The longest the thread sleeps between looks at its channel and its stop flag.
const TICK: Duration = Duration::from_millis(50);
/// Deletes a key only while it holds our node id.
const RELEASE: &str =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0";

/// One of this server's sessions, as the fleet knows it.
#[derive(Debug)]
struct Local {
    /// Its listing as stored in its node's hash; empty when not listed.
    value: String,
    claim: Claim,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Claim {
    /// Not yet claimed in Redis (new, or Redis was away).
    Pending,
    /// Ours: published in this node's hash.
    Ours,
    /// Another node had it first; tried again at each refresh.
    Theirs,
}

/// What was last read of another node.
#[derive(Debug)]
struct Seen {
    /// Its hash's change count.
    version: Option<i64>,
    /// Its record (address and region), which every listing of it carries.
    record: String,
}

/// The fleet thread's state.
pub struct Fleet {
    config: FleetConfig,
    directory: Arc<Directory>,
    changes: Receiver<Change>,
    counters: Arc<Counters>,
    client: Option<redis::Client>,
    con: Option<Connection>,
    node: String,
    /// The node id as others may read it (a hand-over offers it to the successor).
    node_cell: Arc<parking_lot::Mutex<String>>,
    /// The node was taken over from the server before: the first registration overwrites its
    /// record rather than find it held.
    adopted: bool,
    /// `<host>|<port>|<region>`, this node's record.
    record: String,
    local: HashMap<SessionName, Local>,
    dirty: HashSet<SessionName>,
    /// Set by a republish: the next flush replaces this node's hash rather than updating it.
    rewrite: bool,
    /// New names hosts asked for, to claim before their sessions exist.
    asked: HashSet<SessionName>,
    seen: HashMap<String, Seen>,
    next_connect: Instant,
    backoff: Duration,
    next_refresh: Instant,
    next_poll: Instant,
    last_poll: Option<Instant>,
    /// Whether the connection was lost since it was last up (to warn once per outage).
    warned: bool,
}

/// A fresh node id: 16 hexadecimal digits from the process's random hasher keys and the time.
fn new_node_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(unix_ms() as u128 ^ u128::from(std::process::id()) << 64);
    format!("{:016x}", h.finish())
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl Fleet {
    /// The thread's state; nothing is sent to Redis before [`run`](Self::run).
    pub fn new(
        config: FleetConfig,
        directory: Arc<Directory>,
        changes: Receiver<Change>,
        counters: Arc<Counters>,
    ) -> Self {
        let client = match config.client() {
            Ok(c) => Some(c),
            Err(e) => {
                log::error!("fleet: bad Redis URL ({e}); serving alone");
                None
            }
        };
        let record = format!(
            "{}|{}|{}",
            config.public_host, config.public_port, config.region
        );
        let now = Instant::now();
        let node = new_node_id();
        Self {
            config,
            directory,
            changes,
            counters,
            client,
            con: None,
            node: node.clone(),
            node_cell: Arc::new(parking_lot::Mutex::new(node)),
            adopted: false,
            record,
            local: HashMap::new(),
            dirty: HashSet::new(),
            rewrite: false,
            asked: HashSet::new(),
            seen: HashMap::new(),
            next_connect: now,
            backoff: BACKOFF_MIN,
            next_refresh: now,
            next_poll: now,
            last_poll: None,
            warned: false,
        }
    }

    /// Goes on as node `node` (taken over from the server this one replaces, in the same
    /// fleet), or as a fresh node.
    pub fn adopting(mut self, node: Option<String>) -> Self {
        if let Some(node) = node {
            self.adopted = true;
            self.node = node;
            *self.node_cell.lock() = self.node.clone();
        }
        self
    }

    /// Where the node id is kept as it changes.
    pub fn node_cell(&self) -> Arc<parking_lot::Mutex<String>> {
        self.node_cell.clone()
    }

    fn key(&self, what: &str) -> String {
        format!("{}{what}", self.config.prefix)
    }

    /// Runs until `stop`, then takes this node out of Redis (best effort), unless
    /// `handed_over`: then the successor goes on as this node, with its records.
    pub fn run(mut self, stop: Arc<AtomicBool>, handed_over: Arc<AtomicBool>) {
        info!(
            "fleet: node {} ({}), directory at {}",
            self.node,
            self.record,
            redacted(&self.config.url)
        );
        while !stop.load(Ordering::Relaxed) {
            match self.changes.recv_timeout(TICK) {
                Ok(change) => {
                    self.apply(change);
                    while let Ok(change) = self.changes.try_recv() {
                        self.apply(change);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            if self.con.is_none() && now >= self.next_connect {
                self.connect(now);
            }
            if self.con.is_some() {
                if let Err(e) = self.work(now) {
                    self.lost(e, now);
                }
            }
            self.expire_remote(now);
            // A verdict lives half the claim's TTL (at most 5 s): a host re-sends in 0.5 s.
            let keep = (self.config.ttl / 2).min(Duration::from_secs(5));
            self.directory.set_fleet_up(self.con.is_some(), now, keep);
            self.counters.set_fleet(
                self.con.is_some(),
                self.seen.len(),
                self.directory.remote_len(),
            );
        }
        if handed_over.load(Ordering::SeqCst) {
            info!("fleet: node {} handed over to the successor", self.node);
        } else {
            self.leave();
        }
    }

    /// Takes one change from the shards into the local state.
    fn apply(&mut self, change: Change) {
        let name = match change {
            Change::Reserve(name) => {
                self.asked.insert(name);
                return;
            }
            Change::Claimed(name) => {
                if self.local.len() >= self.config.max_sessions {
                    self.counters.fleet_over_cap();
                    return;
                }
                self.local.insert(
                    name,
                    Local {
                        value: String::new(),
                        claim: Claim::Pending,
                    },
                );
                name
            }
            Change::Released(name) => {
                self.local.remove(&name);
                name
            }
            Change::Listed(listing) => {
                let Some(local) = self.local.get_mut(&listing.session) else {
                    return; // over the cap
                };
                local.value = encode(&listing);
                listing.session
            }
            Change::Unlisted(name) => {
                let Some(local) = self.local.get_mut(&name) else {
                    return;
                };
                local.value.clear();
                name
            }
        };
        self.dirty.insert(name);
    }

    fn connect(&mut self, now: Instant) {
        let Some(client) = &self.client else {
            self.next_connect = now + Duration::from_secs(3600);
            return;
        };
        let result = client
            .get_connection_with_timeout(IO_TIMEOUT)
            .and_then(|con| {
                con.set_read_timeout(Some(IO_TIMEOUT))?;
                con.set_write_timeout(Some(IO_TIMEOUT))?;
                Ok(con)
            });
        match result {
            Ok(con) => {
                self.con = Some(con);
                if let Err(e) = self.register() {
                    self.lost(e, now);
                    return;
                }
                info!("fleet: connected to Redis, node {} registered", self.node);
                self.warned = false;
                self.backoff = BACKOFF_MIN;
                self.next_poll = now;
                self.next_refresh = now + self.config.ttl / 3;
            }
            Err(e) => self.lost(e, now),
        }
    }

    /// The connection failed: count, log, and try again later.
    fn lost(&mut self, e: redis::RedisError, now: Instant) {
        self.counters.fleet_error();
        if self.warned {
            debug!("fleet: Redis still unreachable: {e}");
        } else {
            warn!(
                "fleet: Redis unreachable ({e}); serving this server's sessions alone, \
                 retrying with backoff"
            );
            self.warned = true;
        }
        self.con = None;
        self.next_connect = now + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        // What was not written is written again on return (republish marks everything).
    }

    /// At shutdown: takes this node's records out of Redis, so that its lobbies vanish at once.
    fn leave(&mut self) {
        if self.con.is_none() {
            return;
        }
        let mut pipe = redis::pipe();
        pipe.cmd("DEL")
            .arg(self.key(&format!("node:{}", self.node)))
            .ignore();
        pipe.cmd("DEL")
            .arg(self.key(&format!("sessions:{}", self.node)))
            .ignore();
        pipe.cmd("ZREM")
            .arg(self.key("nodes"))
            .arg(&self.node)
            .ignore();
        for (name, local) in &self.local {
            if local.claim == Claim::Ours {
                pipe.cmd("EVAL")
                    .arg(RELEASE)
                    .arg(1)
                    .arg(self.key(&format!("name:{name}")))
                    .arg(&self.node)
                    .ignore();
            }
        }
        match self.run_pipe::<()>(&pipe) {
            Ok(()) => info!("fleet: node {} left the fleet", self.node),
            Err(e) => warn!("fleet: could not leave the fleet cleanly ({e}); its records expire"),
        }
    }

    fn ttl_ms(&self) -> u64 {
        self.config.ttl.as_millis().max(1) as u64
    }

    fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> RedisResult<T> {
        let con = self.con.as_mut().ok_or_else(not_connected)?;
        self.counters.fleet_commands(1);
        cmd.query(con)
    }

    fn run_pipe<T: redis::FromRedisValue>(&mut self, pipe: &redis::Pipeline) -> RedisResult<T> {
        let con = self.con.as_mut().ok_or_else(not_connected)?;
        self.counters.fleet_commands(pipe.len());
        pipe.query(con)
    }
}

fn not_connected() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "not connected",
    ))
}

/// The URL without its password, for the log.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}
