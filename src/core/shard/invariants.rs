//! What must hold of a shard after any sequence of requests and timeouts, checked on demand by
//! tests, property tests and fuzzers (never on the hot path).

use std::collections::HashSet;

use super::Shard;
use crate::core::clock::Millis;

impl Shard {
    /// Checks every invariant of the shard; the error says which one broke, and where.
    ///
    /// - a session has at least one player and at most its maximum;
    /// - player names are unique in a session;
    /// - the shard's player count is the sum of its sessions';
    /// - every session has its live timer entry in the heap, at its `timer_at`;
    /// - nobody banned from a session is in it;
    /// - a session is in the lobby directory exactly when it is open and public, listed with its
    ///   host and player count;
    /// - every relay port is either free or held by exactly one member of an open relay.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut players = 0;
        let live: HashSet<_> = self
            .timers
            .iter()
            .map(|(at, (id, name))| (name, id, at))
            .collect();
        for (name, session) in self.sessions.iter() {
            let count = session.players.len();
            if count == 0 {
                return Err(format!("session {name} has no player"));
            }
            if count > usize::from(session.max_players) {
                return Err(format!(
                    "session {name} holds {count} players, more than its {}",
                    session.max_players
                ));
            }
            for (i, player) in session.players.iter().enumerate() {
                if session.players[..i].iter().any(|p| p.name == player.name) {
                    return Err(format!("session {name} has {} twice", player.name));
                }
                if session.banned.contains(&player.name) {
                    return Err(format!("session {name} holds banned {}", player.name));
                }
            }
            if session.timer_at == Millis::MAX
                || !live.contains(&(*name, session.id, session.timer_at))
            {
                return Err(format!("session {name} has no live timer"));
            }
            let listed = self.directory.get(name);
            let public = session.lobby.as_ref().is_some_and(|l| l.public) && session.is_open();
            match (&listed, public) {
                (Some(l), true)
                    if usize::from(l.players) != count
                        || Some(l.host) != session.host().map(|h| h.name) =>
                {
                    return Err(format!("session {name} is listed as {l:?}"));
                }
                (Some(_), false) => return Err(format!("session {name} is listed, not public")),
                (None, true) => return Err(format!("public session {name} is not listed")),
                _ => {}
            }
            players += count;
        }
        if players != self.players {
            return Err(format!(
                "player count {} but sessions hold {players}",
                self.players
            ));
        }
        self.relays.check_invariants()
    }
}
