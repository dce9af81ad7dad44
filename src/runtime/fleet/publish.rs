//! What this node writes to Redis: its record (the node id claimed and refreshed), its sessions
//! and lobbies as they change, the names it claims, and the TTLs it keeps alive.

use std::time::Instant;

use log::{debug, info, warn};
use redis::{RedisResult, Value};

use super::{new_node_id, unix_ms, unix_us, Claim, Fleet, RELEASE};
use crate::core::SessionName;

impl Fleet {
    /// Claims the node id (a fresh one if another node holds it) and republishes everything.
    /// A node taken over from the server before is ours whatever its record says (this server
    /// may have another `--region` or `--public-address`): its record is overwritten, once.
    pub(super) fn register(&mut self) -> RedisResult<()> {
        loop {
            let key = self.key(&format!("node:{}", self.node));
            let mut set = redis::cmd("SET");
            set.arg(&key).arg(&self.record);
            if !std::mem::take(&mut self.adopted) {
                set.arg("NX");
            }
            let won: Option<String> = self.query(set.arg("PX").arg(self.ttl_ms()))?;
            let ours = won.is_some()
                || self.query::<Option<String>>(redis::cmd("GET").arg(&key))?
                    == Some(self.record.clone());
            if ours {
                break;
            }
            self.node = new_node_id();
            *self.node_cell.lock() = self.node.clone();
        }
        self.republish()
    }

    /// Writes this node's hash anew and claims all its names again. The hash is replaced in
    /// one transaction (the next [`flush`](Self::flush)), never deleted first: a node taken
    /// over from the server before (same id, same hash) must not look empty to the others for
    /// the instant between a `DEL` and the writes, or a poll then drops its lobbies and names.
    pub(super) fn republish(&mut self) -> RedisResult<()> {
        self.rewrite = true;
        for local in self.local.values_mut() {
            local.claim = Claim::Pending;
        }
        self.dirty.extend(self.local.keys().copied());
        self.refresh_node()?;
        self.flush()
    }

    /// What is due now: the changes, the refresh, the poll.
    pub(super) fn work(&mut self, now: Instant) -> RedisResult<()> {
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
    pub(super) fn claim_asked(&mut self) -> RedisResult<()> {
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
    pub(super) fn flush(&mut self) -> RedisResult<()> {
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
        // This node's hash: the sessions we own, their listings; after a republish, only them
        // (`dirty` then holds every session), written at once.
        let hash = self.key(&format!("sessions:{}", self.node));
        let mut pipe = redis::pipe();
        if self.rewrite {
            // The change count never repeats a value another node may have read, or that node
            // would never read the new hash: it goes on from where it was (a node taken over
            // keeps its hash; this node is its only writer, so reading it first is safe), and a
            // hash written anew (a new node, Redis flushed) starts from the time in
            // microseconds, beyond any count of an earlier hash (a publish is a round trip).
            let count: Option<i64> = self.query(redis::cmd("HGET").arg(&hash).arg("#"))?;
            let count = count.unwrap_or_else(|| unix_us().try_into().unwrap_or(0));
            pipe.atomic().cmd("DEL").arg(&hash).ignore();
            pipe.cmd("HSET").arg(&hash).arg("#").arg(count).ignore();
        }
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
        self.rewrite = false;
        Ok(())
    }

    /// Refreshes this node's record and hash; finds out whether Redis lost them (restarted,
    /// flushed), and then republishes.
    pub(super) fn refresh(&mut self, now: Instant) -> RedisResult<()> {
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
    pub(super) fn refresh_node(&mut self) -> RedisResult<bool> {
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
}
