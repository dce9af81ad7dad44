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
//! | `P sessions:<id>` | hash | one field per session of node `<id>`: empty when not listed, else its listing; field `#` counts changes | `ttl`, refreshed |
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

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use log::{debug, info, warn};
use redis::{Connection, RedisResult, Value};

use super::Counters;
use crate::core::directory::{Change, Listing, Origin, Scope};
use crate::core::{Directory, PlayerName, SessionName};
use crate::wire::lobby::{MAX_DESCRIPTION_LEN, MAX_GAME_LEN, MAX_TEXT_LEN};

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
    /// `<host>|<port>|<region>`, this node's record.
    record: String,
    local: HashMap<SessionName, Local>,
    dirty: HashSet<SessionName>,
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
        Self {
            config,
            directory,
            changes,
            counters,
            client,
            con: None,
            node: new_node_id(),
            record,
            local: HashMap::new(),
            dirty: HashSet::new(),
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

    fn key(&self, what: &str) -> String {
        format!("{}{what}", self.config.prefix)
    }

    /// Runs until `stop`, then takes this node out of Redis (best effort).
    pub fn run(mut self, stop: Arc<AtomicBool>) {
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
        self.leave();
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

    /// Claims the node id (a fresh one if another node holds it) and republishes everything.
    fn register(&mut self) -> RedisResult<()> {
        loop {
            let key = self.key(&format!("node:{}", self.node));
            let won: Option<String> = self.query(
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&self.record)
                    .arg("NX")
                    .arg("PX")
                    .arg(self.ttl_ms()),
            )?;
            let ours = won.is_some()
                || self.query::<Option<String>>(redis::cmd("GET").arg(&key))?
                    == Some(self.record.clone());
            if ours {
                break;
            }
            self.node = new_node_id();
        }
        self.republish()
    }

    /// Writes this node's hash anew and claims all its names again.
    fn republish(&mut self) -> RedisResult<()> {
        let hash = self.key(&format!("sessions:{}", self.node));
        self.query::<()>(redis::cmd("DEL").arg(&hash))?;
        for local in self.local.values_mut() {
            local.claim = Claim::Pending;
        }
        self.dirty.extend(self.local.keys().copied());
        self.refresh_node()?;
        self.flush()
    }

    /// What is due now: the changes, the refresh, the poll.
    fn work(&mut self, now: Instant) -> RedisResult<()> {
        if !self.asked.is_empty() {
            self.claim_asked()?;
        }
        if !self.dirty.is_empty() {
            self.flush()?;
        }
        if now >= self.next_refresh {
            self.next_refresh = now + self.config.ttl / 3;
            self.refresh(now)?;
        }
        if now >= self.next_poll {
            self.next_poll = now + self.config.poll;
            self.poll(now)?;
        }
        Ok(())
    }

    /// Claims the names hosts asked for, and tells the directory which are ours.
    fn claim_asked(&mut self) -> RedisResult<()> {
        let asked: Vec<SessionName> = self.asked.drain().collect();
        let ttl = self.ttl_ms();
        let mut pipe = redis::pipe();
        for name in &asked {
            let key = self.key(&format!("name:{name}"));
            pipe.cmd("SET")
                .arg(&key)
                .arg(&self.node)
                .arg("NX")
                .arg("PX")
                .arg(ttl)
                .ignore();
            pipe.cmd("GET").arg(&key);
        }
        let owners: Vec<Option<String>> = match self.run_pipe(&pipe) {
            Ok(owners) => owners,
            Err(e) => {
                self.asked.extend(asked);
                return Err(e);
            }
        };
        for (name, owner) in asked.into_iter().zip(owners) {
            let ours = owner.as_deref() == Some(self.node.as_str());
            debug!(
                "fleet: name {name} asked for: {}",
                if ours { "ours" } else { "taken" }
            );
            self.directory.settle(name, ours);
        }
        Ok(())
    }

    /// Writes the sessions changed since the last flush: claims first, then this node's hash.
    fn flush(&mut self) -> RedisResult<()> {
        let dirty: Vec<SessionName> = self.dirty.drain().collect();
        let ttl = self.ttl_ms();
        // Names to claim, and names released.
        let mut claims = Vec::new();
        let mut pipe = redis::pipe();
        for name in &dirty {
            let key = self.key(&format!("name:{name}"));
            match self.local.get(name) {
                Some(local) if local.claim != Claim::Ours => {
                    pipe.cmd("SET")
                        .arg(&key)
                        .arg(&self.node)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl);
                    pipe.cmd("GET").arg(&key);
                    claims.push(*name);
                }
                Some(_) => {}
                None => {
                    pipe.cmd("EVAL")
                        .arg(RELEASE)
                        .arg(1)
                        .arg(&key)
                        .arg(&self.node)
                        .ignore();
                }
            }
        }
        let answers: Vec<Value> = if pipe.is_empty() {
            Vec::new()
        } else {
            self.run_pipe(&pipe)?
        };
        for (name, pair) in claims.iter().zip(answers.chunks(2)) {
            let owner: Option<String> = redis::from_redis_value(pair[1].clone()).unwrap_or(None);
            let ours = owner.as_deref() == Some(self.node.as_str());
            if let Some(local) = self.local.get_mut(name) {
                let was = local.claim;
                local.claim = if ours { Claim::Ours } else { Claim::Theirs };
                if !ours && was == Claim::Pending {
                    self.counters.fleet_name_conflict();
                    warn!(
                        "fleet: session {name} created here, but node {} claimed the name \
                         first; it is not published to the fleet",
                        owner.as_deref().unwrap_or("?")
                    );
                }
            }
        }
        // This node's hash: the sessions we own, their listings.
        let hash = self.key(&format!("sessions:{}", self.node));
        let mut pipe = redis::pipe();
        for name in &dirty {
            match self.local.get(name) {
                Some(local) if local.claim == Claim::Ours => {
                    pipe.cmd("HSET")
                        .arg(&hash)
                        .arg(name.as_str())
                        .arg(&local.value)
                        .ignore();
                }
                _ => {
                    pipe.cmd("HDEL").arg(&hash).arg(name.as_str()).ignore();
                }
            }
        }
        pipe.cmd("HINCRBY").arg(&hash).arg("#").arg(1).ignore();
        pipe.cmd("PEXPIRE").arg(&hash).arg(ttl).ignore();
        self.run_pipe::<()>(&pipe)?;
        Ok(())
    }

    /// Refreshes this node's record and hash; finds out whether Redis lost them (restarted,
    /// flushed), and then republishes.
    fn refresh(&mut self, now: Instant) -> RedisResult<()> {
        let _ = now;
        let lost = self.refresh_node()?;
        if lost {
            info!(
                "fleet: Redis lost node {}'s records; republishing",
                self.node
            );
            return self.register();
        }
        // Names: ours refreshed, theirs tried again.
        let ttl = self.ttl_ms();
        let mut pipe = redis::pipe();
        let mut ours = Vec::new();
        for (name, local) in &self.local {
            match local.claim {
                Claim::Ours => {
                    pipe.cmd("PEXPIRE")
                        .arg(self.key(&format!("name:{name}")))
                        .arg(ttl);
                    ours.push(*name);
                }
                Claim::Theirs => {
                    self.dirty.insert(*name);
                }
                Claim::Pending => {}
            }
        }
        if ours.is_empty() {
            return Ok(());
        }
        let kept: Vec<i64> = self.run_pipe(&pipe)?;
        for (name, kept) in ours.iter().zip(kept) {
            if kept == 0 {
                if let Some(local) = self.local.get_mut(name) {
                    local.claim = Claim::Pending;
                    self.dirty.insert(*name);
                }
            }
        }
        Ok(())
    }

    /// Refreshes the node record, its entry in the node set and its hash's TTL. True when the
    /// record was gone.
    fn refresh_node(&mut self) -> RedisResult<bool> {
        let ttl = self.ttl_ms();
        let now = unix_ms();
        let node_key = self.key(&format!("node:{}", self.node));
        let hash = self.key(&format!("sessions:{}", self.node));
        let nodes = self.key("nodes");
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&node_key)
            .arg(&self.record)
            .arg("XX")
            .arg("PX")
            .arg(ttl);
        pipe.cmd("ZADD")
            .arg(&nodes)
            .arg(now + ttl)
            .arg(&self.node)
            .ignore();
        // Scores are expiry times: long past ones are nodes that died.
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(&nodes)
            .arg("-inf")
            .arg(now.saturating_sub(60_000))
            .ignore();
        pipe.cmd("PEXPIRE").arg(&hash).arg(ttl).ignore();
        let (kept,): (Option<String>,) = self.run_pipe(&pipe)?;
        Ok(kept.is_none())
    }

    /// Reads the other nodes: their records and change counts, then the hashes that changed.
    fn poll(&mut self, now: Instant) -> RedisResult<()> {
        let since = unix_ms().saturating_sub(self.ttl_ms());
        let ids: Vec<String> = self.query(
            redis::cmd("ZRANGEBYSCORE")
                .arg(self.key("nodes"))
                .arg(since)
                .arg("+inf")
                .arg("LIMIT")
                .arg(0)
                .arg(MAX_NODES + 1),
        )?;
        let ids: Vec<String> = ids
            .into_iter()
            .filter(|id| *id != self.node && is_node_id(id))
            .take(MAX_NODES)
            .collect();
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("GET").arg(self.key(&format!("node:{id}")));
            let hash = self.key(&format!("sessions:{id}"));
            pipe.cmd("HGET").arg(&hash).arg("#");
            pipe.cmd("HLEN").arg(&hash);
        }
        let heads: Vec<(Option<String>, Option<i64>, usize)> = if ids.is_empty() {
            Vec::new()
        } else {
            let flat: Vec<Value> = self.run_pipe(&pipe)?;
            flat.chunks(3)
                .map(|c| {
                    (
                        redis::from_redis_value(c[0].clone()).unwrap_or(None),
                        redis::from_redis_value(c[1].clone()).unwrap_or(None),
                        redis::from_redis_value(c[2].clone()).unwrap_or(0),
                    )
                })
                .collect()
        };
        let mut live = HashSet::new();
        let mut read = Vec::new();
        for (id, (record, version, len)) in ids.iter().zip(heads) {
            let Some(origin) = record.as_deref().and_then(|r| parse_record(id, r)) else {
                continue; // its record expired: gone
            };
            live.insert(id.clone());
            if len > self.config.max_sessions + 1 {
                debug!("fleet: node {id} holds {len} sessions, more than allowed; skipped");
                continue;
            }
            let changed = self.seen.get(id).is_none_or(|s| s.version != version);
            if changed {
                read.push((id.clone(), origin, version));
            }
        }
        // The hashes that changed, in one round trip.
        if !read.is_empty() {
            let mut pipe = redis::pipe();
            for (id, ..) in &read {
                pipe.cmd("HGETALL").arg(self.key(&format!("sessions:{id}")));
            }
            let hashes: Vec<HashMap<String, String>> = self.run_pipe(&pipe)?;
            let (instant, unix) = (Instant::now(), unix_ms());
            for ((id, origin, version), hash) in read.into_iter().zip(hashes) {
                let origin = Arc::new(origin);
                let mut names = Vec::with_capacity(hash.len());
                let mut lobbies = Vec::new();
                for (field, value) in &hash {
                    let Some(name) = SessionName::new(field) else {
                        continue; // `#`, or garbage
                    };
                    names.push(name);
                    if !value.is_empty() {
                        if let Some(l) = decode(name, value, &origin, instant, unix) {
                            lobbies.push(l);
                        }
                    }
                }
                self.directory.set_node(&id, Some((names, lobbies)));
                self.seen.insert(id, Seen { version });
            }
        }
        // Nodes no longer in Redis.
        let gone: Vec<String> = self
            .seen
            .keys()
            .filter(|id| !live.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            debug!("fleet: node {id} gone");
            self.directory.set_node(&id, None);
            self.seen.remove(&id);
        }
        self.last_poll = Some(now);
        Ok(())
    }

    /// Without Redis for longer than the TTL, the other nodes' lobbies may be gone: drop them.
    fn expire_remote(&mut self, now: Instant) {
        if self.con.is_some() || self.seen.is_empty() {
            return;
        }
        if self
            .last_poll
            .is_some_and(|at| now.duration_since(at) < self.config.ttl)
        {
            return;
        }
        for id in std::mem::take(&mut self.seen).into_keys() {
            self.directory.set_node(&id, None);
        }
        info!("fleet: no news from Redis for the TTL; listing this server's lobbies only");
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

fn is_node_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `<host>|<port>|<region>`, checked as the wire rules want it.
fn parse_record(node: &str, record: &str) -> Option<Origin> {
    let mut f = record.split('|');
    let (host, port, region) = (f.next()?, f.next()?, f.next()?);
    if f.next().is_some()
        || !crate::wire::lobby::is_server_host(host)
        || !crate::wire::lobby::is_region(region)
    {
        return None;
    }
    Some(Origin {
        node: node.to_string(),
        host: host.to_string(),
        port: port.parse().ok()?,
        region: region.to_string(),
    })
}

/// A listing as stored in its node's hash:
/// `<game>|<host>|<n>|<max>|<password>|<version>|<mode>|<description>|<created, unix ms>`; empty
/// when it is not published (a compatible lobby: FusionV1's `l:` lists only the server asked, as
/// its players can join no other).
fn encode(l: &Listing) -> String {
    let Scope::Game(game) = &l.scope else {
        return String::new();
    };
    let age = Instant::now().saturating_duration_since(l.created);
    let created = unix_ms().saturating_sub(age.as_millis() as u64);
    format!(
        "{game}|{}|{}|{}|{}|{}|{}|{}|{created}",
        l.host,
        l.players,
        l.max_players,
        u8::from(l.password),
        l.version,
        l.mode,
        l.description
    )
}

/// Reads back what [`encode`] wrote, checking every field as the wire rules want it.
fn decode(
    session: SessionName,
    value: &str,
    origin: &Arc<Origin>,
    now: Instant,
    unix_now: u64,
) -> Option<Listing> {
    let f: Vec<&str> = value.split('|').collect();
    let [game, host, players, max, password, version, mode, description, created] = f[..] else {
        return None;
    };
    let text = |s: &str, max: usize| {
        s.len() <= max
            && !s
                .chars()
                .any(|c| c.is_control() || matches!(c, ':' | ';' | '|' | '[' | ']' | '\\'))
    };
    let game_ok = (1..=MAX_GAME_LEN).contains(&game.len())
        && game
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !game_ok
        || !text(version, MAX_TEXT_LEN)
        || !text(mode, MAX_TEXT_LEN)
        || !text(description, MAX_DESCRIPTION_LEN)
    {
        return None;
    }
    let players: u8 = players.parse().ok()?;
    let max_players: u8 = max.parse().ok()?;
    let created: u64 = created.parse().ok()?;
    let age = Duration::from_millis(unix_now.saturating_sub(created));
    Some(Listing {
        session,
        scope: Scope::Game(game.to_string()),
        host: PlayerName::new(host)?,
        players: players.min(max_players),
        max_players,
        password: match password {
            "1" => true,
            "0" => false,
            _ => return None,
        },
        version: version.to_string(),
        mode: mode.to_string(),
        description: description.to_string(),
        created: now.checked_sub(age).unwrap_or(now),
        origin: Some(origin.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_reads_back_as_it_was_written() {
        let now = Instant::now();
        let listing = Listing {
            session: SessionName::new("Room1").unwrap(),
            scope: Scope::Game("cards".into()),
            host: PlayerName::new("Ana").unwrap(),
            players: 2,
            max_players: 4,
            password: true,
            version: "1.0".into(),
            mode: "Constructed - Free".into(),
            description: "all welcome".into(),
            created: now.checked_sub(Duration::from_secs(5)).unwrap_or(now),
            origin: None,
        };
        let value = encode(&listing);
        let origin = Arc::new(parse_record("ab12", "eu.example.com|7777|eu").unwrap());
        let back = decode(listing.session, &value, &origin, Instant::now(), unix_ms()).unwrap();
        assert_eq!(back.host, listing.host);
        assert_eq!(back.description, listing.description);
        assert!(back.password && back.players == 2 && back.max_players == 4);
        let age = Instant::now().saturating_duration_since(back.created);
        assert!(
            age >= Duration::from_secs(4) && age < Duration::from_secs(7),
            "{age:?}"
        );
        assert_eq!(back.origin.unwrap().region, "eu");
    }

    #[test]
    fn what_redis_holds_is_checked_like_a_request() {
        let origin = Arc::new(parse_record("ab12", "h|1|r").unwrap());
        let name = SessionName::new("Room1").unwrap();
        let now = Instant::now();
        for bad in [
            "",
            "cards|Ana|2|4|0|1.0|Draft|x",
            "cards|Ana|2|4|0|1.0|Dr:aft|x|0",
            "ca rds|Ana|2|4|0|1.0|Draft|x|0",
            "cards|Ana|2|4|2|1.0|Draft|x|0",
            "cards|Ana|x|4|0|1.0|Draft|x|0",
        ] {
            assert!(decode(name, bad, &origin, now, 0).is_none(), "{bad:?}");
        }
        let long = format!("cards|Ana|2|4|0|1.0|Draft|{}|0", "x".repeat(65));
        assert!(decode(name, &long, &origin, now, 0).is_none());
        assert!(parse_record("ab", "h:1|1|r").is_none());
        assert!(parse_record("ab", "h|99999|r").is_none());
        assert!(parse_record("ab", "h|1|r|x").is_none());
        assert!(!is_node_id("../x") && is_node_id("00ff"));
        assert_eq!(redacted("redis://:pw@h:1/0"), "redis://***@h:1/0");
        assert_eq!(redacted("redis://h:1"), "redis://h:1");
    }

    #[test]
    fn a_compatible_lobby_is_not_published() {
        let listing = Listing {
            session: SessionName::new("Room1").unwrap(),
            scope: Scope::Compat,
            host: PlayerName::new("Ana").unwrap(),
            players: 1,
            max_players: 4,
            password: false,
            version: String::new(),
            mode: String::new(),
            description: String::new(),
            created: Instant::now(),
            origin: None,
        };
        assert_eq!(encode(&listing), "");
    }
}
