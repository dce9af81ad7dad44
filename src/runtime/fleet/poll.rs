//! What this node reads of the others: their records, and their sessions' hashes when they
//! changed, into the shared directory; and what it drops when Redis has been away too long.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use log::{debug, info};
use redis::{RedisResult, Value};

use super::record::{decode, is_node_id, parse_record};
use super::{unix_ms, Fleet, Seen, MAX_NODES};
use crate::core::SessionName;

impl Fleet {
    /// Reads the other nodes: their records and change counts, then the hashes that changed.
    pub(super) fn poll(&mut self, now: Instant) -> RedisResult<()> {
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
            // A new record (a successor with another region or address) changes every
            // listing of the node even when its hash did not change.
            let record = record.unwrap_or_default();
            let changed = self
                .seen
                .get(id)
                .is_none_or(|s| s.version != version || s.record != record);
            if changed {
                read.push((id.clone(), origin, version, record));
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
            for ((id, origin, version, record), hash) in read.into_iter().zip(hashes) {
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
                self.seen.insert(id, Seen { version, record });
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
    pub(super) fn expire_remote(&mut self, now: Instant) {
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
}
