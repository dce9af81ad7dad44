//! What relaying may cost, across all shards: how many relayed sessions one IP may be part of,
//! and how many bytes per second one IP may send through relays. It also carries the recent
//! starts the `auto` policy matches retries against ([`RecentStarts`]), which span shards too.
//!
//! Shared by the shards like [`Caps`](crate::core::Caps): a `DashMap` touched when a relay
//! opens or closes, and once per relayed datagram for the sender's byte budget.

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use super::auto::RecentStarts;
use crate::core::bucket::{Bucket, Refill};
use crate::core::clock::Millis;
use crate::ip_key::IpKey;

/// Per-IP limits on relaying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayLimitsConfig {
    /// Relayed sessions one IPv4 address or IPv6 /64 may be a member of at once. Bounds how
    /// much of the port pool one address can hold.
    pub max_sessions_per_ip: u32,
    /// Bytes per second one IP may send through all its relays together (and the burst).
    pub ip_bytes_per_sec: u64,
    /// Bytes per second one relayed session may forward (and the burst).
    pub session_bytes_per_sec: u64,
}

impl Default for RelayLimitsConfig {
    fn default() -> Self {
        Self {
            max_sessions_per_ip: 16,
            ip_bytes_per_sec: 1024 * 1024,
            session_bytes_per_sec: 512 * 1024,
        }
    }
}

/// The shared relay counts.
#[derive(Debug)]
pub struct RelayLimits {
    config: RelayLimitsConfig,
    ips: DashMap<IpKey, IpUse>,
    /// The recent starts of every shard, for the `auto` policy.
    pub(crate) recent_starts: RecentStarts,
}

/// One IP's share of the relays.
#[derive(Debug)]
struct IpUse {
    sessions: u32,
    bytes: Bucket,
}

impl RelayLimits {
    pub fn new(config: RelayLimitsConfig) -> Self {
        Self {
            config,
            ips: DashMap::new(),
            recent_starts: RecentStarts::default(),
        }
    }

    pub fn config(&self) -> &RelayLimitsConfig {
        &self.config
    }

    /// Counts one more relayed session for each IP of `members` (an IP listed twice counts
    /// once), or none of them when one is at its cap. Returns whether they were counted.
    pub(crate) fn try_join(&self, members: &[IpKey], now: Millis) -> bool {
        let mut taken: Vec<IpKey> = Vec::with_capacity(members.len());
        for &ip in members {
            if taken.contains(&ip) {
                continue;
            }
            let mut entry = self.ips.entry(ip).or_insert_with(|| IpUse {
                sessions: 0,
                bytes: Bucket::full(Refill::per_sec(self.config.ip_bytes_per_sec), now),
            });
            if entry.sessions >= self.config.max_sessions_per_ip {
                drop(entry);
                self.leave(&taken);
                self.forget_if_unused(ip);
                return false;
            }
            entry.sessions += 1;
            taken.push(ip);
        }
        true
    }

    /// Counts one more relayed session for each IP of `members` whatever the cap: a relay taken
    /// over from a predecessor process ([`crate::core::handover`]), where it was counted
    /// already. An IP new here starts with a full byte budget.
    pub(crate) fn rejoin(&self, members: &[IpKey], now: Millis) {
        for (i, &ip) in members.iter().enumerate() {
            if members[..i].contains(&ip) {
                continue;
            }
            let rate = Refill::per_sec(self.config.ip_bytes_per_sec);
            let mut entry = self.ips.entry(ip).or_insert_with(|| IpUse {
                sessions: 0,
                bytes: Bucket::full(rate, now),
            });
            entry.sessions = entry.sessions.saturating_add(1);
        }
    }

    /// Relayed sessions `ip` is counted in now.
    #[cfg(test)]
    pub(crate) fn sessions_of(&self, ip: IpKey) -> u32 {
        self.ips.get(&ip).map_or(0, |used| used.sessions)
    }

    /// Undoes [`try_join`](Self::try_join) for the same `members`.
    pub(crate) fn leave(&self, members: &[IpKey]) {
        for (i, &ip) in members.iter().enumerate() {
            if members[..i].contains(&ip) {
                continue;
            }
            if let Entry::Occupied(mut used) = self.ips.entry(ip) {
                let sessions = &mut used.get_mut().sessions;
                *sessions = sessions.saturating_sub(1);
                if *sessions == 0 {
                    used.remove();
                }
            }
        }
    }

    fn forget_if_unused(&self, ip: IpKey) {
        self.ips.remove_if(&ip, |_, used| used.sessions == 0);
    }

    /// Takes `bytes` from the byte budget of sender `ip`. An IP with no relayed session has no
    /// budget at all.
    pub(crate) fn try_spend(&self, ip: IpKey, bytes: usize, now: Millis) -> bool {
        self.ips.get_mut(&ip).is_some_and(|mut used| {
            used.bytes.try_take(
                bytes as u64,
                Refill::per_sec(self.config.ip_bytes_per_sec),
                now,
            )
        })
    }

    /// IPs that are members of a relayed session now.
    pub fn ips_in_use(&self) -> usize {
        self.ips.len()
    }
}
