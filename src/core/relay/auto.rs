//! `--relay auto`: relay a start only when it is the same group of players trying again after
//! a failed punch.
//!
//! A relay is the answer to one situation: these players tried to punch, failed, and try again.
//! The deployed plugin cannot say so, but what it does is recognisable: it gives up about 12 to
//! 20 s after the start, and the game hosts again, often under a fresh session name. So a start
//! is a **retry** when at least two of its players (each the same name from the same IP as the
//! server saw it) were players of one start less than the window ago (`--relay-auto-window`,
//! 60 s). Two, because a punch fails between two players: the pair that failed is still there
//! when one player more joins or one gave up (both relayed), and a group of one is no group.
//! Keying on names and IPs together keeps apart the groups that share one public IP
//! (carrier-grade NAT, offices, LAN parties): they only trigger each other when two players of
//! one group have the names and IPs of two players of the other.
//!
//! Never relayed under `auto`: a session whose players all reach the server from loopback or
//! from the server's own address. Nothing lies between them and the server to traverse, so a
//! developer testing against a local server sees exactly the original's start messages.
//!
//! Its limit: a rematch of the same group inside the window (a game shorter than the window
//! minus the time its punch took) cannot be told from a retry, and is relayed. It still works; it
//! costs relay bandwidth. docs/relay.md says the same for operators.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;

use crate::core::clock::Millis;
use crate::core::name::PlayerName;
use crate::ip_key::IpKey;

/// What `auto` decided for one start, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoDecision {
    /// Two of its players started together less than the window ago: relay.
    Retry,
    /// Every player is on the server's own machine: direct, nothing to traverse.
    Local,
    /// No recent start of this group: direct.
    NewGroup,
}

/// A player as `auto` recognises it across attempts: its name and the IP the server saw.
pub(super) type PlayerKey = (PlayerName, IpKey);

/// The recent starts of every shard (a retry may carry a new session name, so it may land on
/// another shard): for each player, the groups it started in within the window.
#[derive(Debug)]
pub struct RecentStarts {
    pub(super) by_player: DashMap<PlayerKey, Vec<(u64, Millis)>>,
    pub(super) next_group: AtomicU64,
    /// Old entries are dropped from `by_player` when it grows past this.
    pub(super) prune_at: AtomicUsize,
}

/// `by_player` is first pruned at this size.
pub(super) const PRUNE_FIRST_AT: usize = 4096;
/// Starts remembered per player: a name started in more sessions than this within the window
/// (only a flood does that) forgets the oldest, which bounds the memory per player.
pub(super) const STARTS_PER_PLAYER: usize = 4;

impl Default for RecentStarts {
    fn default() -> Self {
        Self {
            by_player: DashMap::new(),
            next_group: AtomicU64::new(0),
            prune_at: AtomicUsize::new(PRUNE_FIRST_AT),
        }
    }
}

impl RecentStarts {
    /// Decides a start of `players` (name and IP) at `now`, and remembers it unless it is
    /// local. `own` are the server's own addresses as the start saw them (the address it
    /// arrived on, the configured relay address).
    pub(crate) fn decide(
        &self,
        players: &[(PlayerName, IpAddr)],
        own: &[IpAddr],
        now: Millis,
        window: Millis,
    ) -> AutoDecision {
        let is_own = |ip: &IpAddr| {
            let ip = ip.to_canonical();
            ip.is_loopback() || own.iter().any(|o| o.to_canonical() == ip)
        };
        if players.iter().all(|(_, ip)| is_own(ip)) {
            return AutoDecision::Local;
        }
        let group = self.next_group.fetch_add(1, Ordering::Relaxed);
        // Groups seen with each player in the window; a group seen with two players is this one.
        let mut seen: Vec<u64> = Vec::new();
        let mut retry = false;
        let mut counted: Vec<PlayerKey> = Vec::with_capacity(players.len());
        for &(name, ip) in players {
            let key = (name, IpKey::from(ip));
            if counted.contains(&key) {
                continue; // one player listed twice is still one player
            }
            counted.push(key);
            let mut starts = self.by_player.entry(key).or_default();
            starts.retain(|&(_, at)| now.saturating_sub(at) < window);
            for &(earlier, _) in starts.iter() {
                if seen.contains(&earlier) {
                    retry = true;
                } else {
                    seen.push(earlier);
                }
            }
            if starts.len() >= STARTS_PER_PLAYER {
                starts.remove(0);
            }
            starts.push((group, now));
        }
        self.prune(now, window);
        if retry {
            AutoDecision::Retry
        } else {
            AutoDecision::NewGroup
        }
    }

    /// Drops players with no start in the window once the table doubled since the last time:
    /// amortised O(1) per start, and bounded by the starts of one window.
    fn prune(&self, now: Millis, window: Millis) {
        if self.by_player.len() < self.prune_at.load(Ordering::Relaxed) {
            return;
        }
        self.by_player.retain(|_, starts| {
            starts.retain(|&(_, at)| now.saturating_sub(at) < window);
            !starts.is_empty()
        });
        let next = (self.by_player.len() * 2).max(PRUNE_FIRST_AT);
        self.prune_at.store(next, Ordering::Relaxed);
    }

    /// Players remembered now (for tests and the memory bound).
    #[cfg(test)]
    pub(crate) fn players(&self) -> usize {
        self.by_player.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Millis = 60_000;

    fn player(name: &str, ip: &str) -> (PlayerName, IpAddr) {
        (PlayerName::new(name).unwrap(), ip.parse().unwrap())
    }

    fn decide(
        starts: &RecentStarts,
        players: &[(PlayerName, IpAddr)],
        now: Millis,
    ) -> AutoDecision {
        starts.decide(players, &["203.0.113.7".parse().unwrap()], now, WINDOW)
    }

    #[test]
    fn a_pair_seen_together_is_a_retry_a_single_player_is_not() {
        let starts = RecentStarts::default();
        let (a, b, c) = (
            player("Ana", "198.51.100.1"),
            player("Ben", "198.51.100.2"),
            player("Cy", "198.51.100.3"),
        );
        assert_eq!(decide(&starts, &[a, b], 0), AutoDecision::NewGroup);
        // Ana hosts another group: one player in common is not the same group.
        assert_eq!(decide(&starts, &[a, c], 1_000), AutoDecision::NewGroup);
        // Ana and Ben again (and Cy, who played with Ana just now): a retry.
        assert_eq!(decide(&starts, &[b, a, c], 2_000), AutoDecision::Retry);
    }

    #[test]
    fn a_player_listed_twice_does_not_make_a_pair() {
        let starts = RecentStarts::default();
        let a = player("Ana", "198.51.100.1");
        let b = player("Ben", "198.51.100.2");
        assert_eq!(decide(&starts, &[a, b], 0), AutoDecision::NewGroup);
        assert_eq!(
            decide(&starts, &[a, a, player("Dee", "198.51.100.4")], 10),
            AutoDecision::NewGroup
        );
    }

    #[test]
    fn the_window_ends_a_retry_and_old_players_are_pruned() {
        let starts = RecentStarts::default();
        let pair = [player("Ana", "198.51.100.1"), player("Ben", "198.51.100.2")];
        assert_eq!(decide(&starts, &pair, 0), AutoDecision::NewGroup);
        assert_eq!(decide(&starts, &pair, WINDOW), AutoDecision::NewGroup);
        assert_eq!(decide(&starts, &pair, WINDOW + 10), AutoDecision::Retry);
        // Rounds of players who each start once, a window apart: the table keeps about one
        // round (it is pruned when it doubles), not all of them.
        let round = PRUNE_FIRST_AT as u32;
        for r in 0..4u32 {
            for n in 0..round {
                let ip = std::net::Ipv4Addr::from(0x0a00_0000 + r * round + n).into();
                let name = PlayerName::new("P").unwrap();
                decide(&starts, &[(name, ip), pair[0]], (2 + u64::from(r)) * WINDOW);
            }
            assert!(
                starts.players() <= 2 * PRUNE_FIRST_AT + 2,
                "{}",
                starts.players()
            );
        }
    }

    #[test]
    fn players_on_the_servers_own_addresses_are_local() {
        let starts = RecentStarts::default();
        let local = [player("Ana", "127.0.0.1"), player("Ben", "203.0.113.7")];
        assert_eq!(decide(&starts, &local, 0), AutoDecision::Local);
        assert_eq!(decide(&starts, &local, 10), AutoDecision::Local);
        let mapped = [player("Ana", "::ffff:127.0.0.1"), player("Ben", "::1")];
        assert_eq!(decide(&starts, &mapped, 20), AutoDecision::Local);
        // One player from elsewhere: not local, and remembered from then on.
        let mixed = [player("Ana", "127.0.0.1"), player("Ben", "198.51.100.2")];
        assert_eq!(decide(&starts, &mixed, 30), AutoDecision::NewGroup);
        assert_eq!(decide(&starts, &mixed, 40), AutoDecision::Retry);
    }

    #[test]
    fn memory_per_player_is_bounded() {
        let starts = RecentStarts::default();
        let a = player("Ana", "198.51.100.1");
        for n in 0..100u32 {
            let other = (
                PlayerName::new("B").unwrap(),
                std::net::Ipv4Addr::from(0x0a00_0000 + n).into(),
            );
            decide(&starts, &[a, other], u64::from(n));
        }
        let key = (a.0, IpKey::from(a.1));
        assert_eq!(starts.by_player.get(&key).unwrap().len(), STARTS_PER_PLAYER);
    }
}
