//! A shard's side of the lobby directory (docs/lobbies.md): lobby data (`d:`, `a:1:`) from the
//! host's address only, chat (`m:`) from a member's own address only and rate-limited, and the
//! directory kept in step with every change a listing shows ([`Shard::relist`]).
//!
//! Only sessions that were ever given lobby data touch the directory; a ping never does.

use std::net::SocketAddr;
use std::time::Instant;

use log::debug;

use super::Shard;
use crate::core::bucket::{Bucket, Refill};
use crate::core::clock::Millis;
use crate::core::directory::{Listing, Scope};
use crate::core::lobby::{LobbyCommand, LobbyRouted};
use crate::core::name::{PlayerName, SessionName};
use crate::outbox::Outbox;
use crate::wire::lobby::{write_announce_result, write_chat};
use crate::wire::ErrorCode;

/// A player's chat: a burst of 5 lines, then one a second.
const CHAT: Refill = Refill {
    per_sec: 1,
    burst: 5,
};
/// The chat buckets are pruned of full ones (the same as none) when they grow past this.
const CHAT_PRUNE_FIRST_AT: usize = 1024;

/// What a session shows in the directory, once its host gave it lobby data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LobbyData {
    pub(crate) scope: Scope,
    pub(crate) public: bool,
    pub(crate) version: String,
    pub(crate) mode: String,
    pub(crate) description: String,
}

/// The shard's chat rate limits: one bucket per player who spoke lately.
#[derive(Debug, Default)]
pub(crate) struct ChatLimits {
    buckets: std::collections::HashMap<(SessionName, PlayerName), Bucket>,
    prune_at: usize,
}

impl ChatLimits {
    /// Takes one line from the bucket of `player` of `session`.
    fn try_say(&mut self, session: SessionName, player: PlayerName, now: Millis) -> bool {
        if self.buckets.len() >= self.prune_at.max(CHAT_PRUNE_FIRST_AT) {
            self.buckets.retain(|_, b| !b.refilled_to_full(CHAT, now));
            self.prune_at = self.buckets.len() * 2;
        }
        self.buckets
            .entry((session, player))
            .or_insert_with(|| Bucket::full(CHAT, now))
            .try_take(1, CHAT, now)
    }
}

impl Shard {
    /// Applies a lobby request the front door routed here, queueing the replies in `out`.
    pub fn handle_lobby(&mut self, now: Instant, routed: &LobbyRouted, out: &mut Outbox) {
        let now = self.clock.millis(now);
        let LobbyRouted {
            from,
            session,
            command,
        } = routed;
        match command {
            LobbyCommand::Data {
                public,
                version,
                mode,
            } => {
                let data = LobbyData {
                    scope: Scope::Compat,
                    public: *public,
                    version: version.clone(),
                    mode: mode.clone(),
                    description: String::new(),
                };
                // No reply on success, as FusionV1.
                if let Err(code) = self.set_lobby(*from, *session, data) {
                    out.push_error(*from, code);
                }
            }
            LobbyCommand::Announce {
                game,
                public,
                version,
                mode,
                description,
            } => {
                let data = LobbyData {
                    scope: Scope::Game(game.clone()),
                    public: *public,
                    version: version.clone(),
                    mode: mode.clone(),
                    description: description.clone(),
                };
                let result = self.set_lobby(*from, *session, data);
                out.push_with(*from, |buf| write_announce_result(buf, result));
            }
            LobbyCommand::Chat { player, text } => {
                if let Err(code) = self.chat(now, *from, *session, *player, text, out) {
                    out.push_error(*from, code);
                }
            }
        }
    }

    /// `d:` and `a:1:`: the host sets what its session shows in the directory.
    fn set_lobby(
        &mut self,
        from: SocketAddr,
        name: SessionName,
        data: LobbyData,
    ) -> Result<(), ErrorCode> {
        let session = self
            .sessions
            .get_mut(&name)
            .filter(|s| s.is_open())
            .ok_or(ErrorCode::SessionNonExistent)?;
        if !session.is_host(from) {
            return Err(ErrorCode::NonHostPlayer);
        }
        debug!(
            "session {name}: lobby data {:?}, {}",
            data.scope,
            if data.public { "public" } else { "private" }
        );
        session.lobby = Some(Box::new(data));
        self.relist(&name);
        Ok(())
    }

    /// `m:S:P:<text>`: `m:P:<text>` then `i:` to every player, as FusionV1; only from `P`'s own
    /// address, and at most [`CHAT`]'s rate (more is dropped and counted).
    fn chat(
        &mut self,
        now: Millis,
        from: SocketAddr,
        name: SessionName,
        player: PlayerName,
        text: &str,
        out: &mut Outbox,
    ) -> Result<(), ErrorCode> {
        let session = self
            .sessions
            .get(&name)
            .filter(|s| s.is_open())
            .ok_or(ErrorCode::SessionNonExistent)?;
        session
            .position_at(&player, from)
            .ok_or(ErrorCode::NonExistentPlayer)?;
        if !self.chat_limits.try_say(name, player, now) {
            self.stats.chat_rate_limited += 1;
            return Ok(());
        }
        for member in &session.players {
            out.push_with(member.addr, |buf| write_chat(buf, player.as_str(), text));
        }
        session.broadcast_info(out);
        self.stats.chat_lines += 1;
        Ok(())
    }

    /// Brings the directory in step with session `name`: listed while it is open, public and
    /// has players; unlisted otherwise. Nothing for a session without lobby data.
    pub(super) fn relist(&mut self, name: &SessionName) {
        let Some(session) = self.sessions.get(name) else {
            return;
        };
        let Some(lobby) = session.lobby.as_deref() else {
            return;
        };
        let host = session.host();
        match host.filter(|_| lobby.public && session.is_open()) {
            Some(host) => self.directory.publish(Listing {
                session: *name,
                scope: lobby.scope.clone(),
                host: host.name,
                players: session.players.len() as u8,
                max_players: session.max_players,
                password: session.password.is_some(),
                version: lobby.version.clone(),
                mode: lobby.mode.clone(),
                description: lobby.description.clone(),
                created: self.clock.instant(session.created),
                origin: None,
            }),
            None => self.directory.unlist(name),
        }
    }
}
