//! Caps on what the sessions may hold, across all shards: open sessions in total, sessions
//! hosted per source IP, players in total. They bound the server's memory whatever arrives.
//!
//! The counts are shared by the shards (atomics and a `DashMap`); they change only when a
//! session or a player comes or goes, never on a ping.

use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use crate::ip_key::IpKey;

/// The caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapsConfig {
    /// Open sessions in all shards.
    pub max_sessions: usize,
    /// Players in all sessions.
    pub max_players: usize,
    /// Open sessions created from one IPv4 address or IPv6 /64.
    pub max_sessions_per_ip: usize,
}

impl Default for CapsConfig {
    fn default() -> Self {
        Self {
            max_sessions: 100_000,
            max_players: 400_000,
            max_sessions_per_ip: 256,
        }
    }
}

/// Which cap a request met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapHit {
    Sessions,
    SessionsPerIp,
    Players,
}

/// The shared counts behind the caps.
#[derive(Debug)]
pub struct Caps {
    config: CapsConfig,
    sessions: AtomicUsize,
    players: AtomicUsize,
    per_ip: DashMap<IpKey, usize>,
}

/// Takes one from `count` if it stays under `max`.
fn try_take(count: &AtomicUsize, max: usize) -> bool {
    count
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

impl Caps {
    pub fn new(config: CapsConfig) -> Self {
        Self {
            config,
            sessions: AtomicUsize::new(0),
            players: AtomicUsize::new(0),
            per_ip: DashMap::new(),
        }
    }

    /// Reserves a session hosted from `owner`, with its first player.
    pub fn try_open_session(&self, owner: IpKey) -> Result<(), CapHit> {
        if !try_take(&self.sessions, self.config.max_sessions) {
            return Err(CapHit::Sessions);
        }
        if !try_take(&self.players, self.config.max_players) {
            self.sessions.fetch_sub(1, Ordering::Relaxed);
            return Err(CapHit::Players);
        }
        let mut hosted = self.per_ip.entry(owner).or_insert(0);
        if *hosted >= self.config.max_sessions_per_ip {
            drop(hosted);
            self.sessions.fetch_sub(1, Ordering::Relaxed);
            self.players.fetch_sub(1, Ordering::Relaxed);
            return Err(CapHit::SessionsPerIp);
        }
        *hosted += 1;
        Ok(())
    }

    /// Counts a session hosted from `owner` with `players` players whatever the caps: a session
    /// taken over from a predecessor process ([`crate::core::handover`]), which was counted
    /// there already. Refusing it would end a live game; a cap lowered by the upgrade then only
    /// holds back new sessions until enough of the old ones are gone.
    pub(crate) fn admit(&self, owner: IpKey, players: usize) {
        self.sessions.fetch_add(1, Ordering::Relaxed);
        self.players.fetch_add(players, Ordering::Relaxed);
        *self.per_ip.entry(owner).or_insert(0) += 1;
    }

    /// Sessions hosted from `owner` now.
    #[cfg(test)]
    pub(crate) fn sessions_of(&self, owner: IpKey) -> usize {
        self.per_ip.get(&owner).map_or(0, |hosted| *hosted)
    }

    /// Releases a session hosted from `owner`.
    pub fn close_session(&self, owner: IpKey) {
        self.sessions.fetch_sub(1, Ordering::Relaxed);
        if let Entry::Occupied(mut hosted) = self.per_ip.entry(owner) {
            *hosted.get_mut() -= 1;
            if *hosted.get() == 0 {
                hosted.remove();
            }
        }
    }

    /// Reserves a player joining a session.
    pub fn try_add_player(&self) -> Result<(), CapHit> {
        try_take(&self.players, self.config.max_players)
            .then_some(())
            .ok_or(CapHit::Players)
    }

    /// Releases `n` players.
    pub fn remove_players(&self, n: usize) {
        self.players.fetch_sub(n, Ordering::Relaxed);
    }

    /// Open sessions now, in all shards.
    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }

    /// Players now, in all shards.
    pub fn players(&self) -> usize {
        self.players.load(Ordering::Relaxed)
    }
}
