//! What one session holds, and the `i:` and `s:` messages built from it.

use std::net::{IpAddr, SocketAddr};

use super::clock::Millis;
use super::name::{Password, PlayerName};
use crate::ip_key::IpKey;
use crate::outbox::Outbox;
use crate::wire;

/// A session of the shard that owns it. Keyed by its name in the shard's map.
///
/// `repr(C)` with what a ping reads first (`players`, `start`), so that it sits in the first
/// cache line of the map's entry, the one a batch prefetches (`session_map.rs`).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Session {
    /// In join order; the first is the host (host migration is removing the first).
    pub(crate) players: Vec<Player>,
    /// `Some` once the host started the session: it no longer takes joins, and is forgotten
    /// when the start message has been sent its number of times.
    pub(crate) start: Option<Start>,
    /// Tells this session apart from an earlier one of the same name, for timers.
    pub(crate) id: u32,
    pub(crate) created: Millis,
    /// The address it was created from, which the per-IP session cap counts it against.
    pub(crate) owner: IpKey,
    /// When this session's one live timer entry fires; other entries for it are stale.
    pub(crate) timer_at: Millis,
    pub(crate) max_players: u8,
    pub(crate) password: Option<Password>,
    /// Players the host kicked; they cannot join again.
    pub(crate) banned: Vec<PlayerName>,
    /// What it shows in the lobby directory, once its host said (`d:`, `a:1:`); boxed, as most
    /// sessions have none.
    pub(crate) lobby: Option<Box<super::shard::LobbyData>>,
}

/// One player of a session.
#[derive(Debug)]
pub(crate) struct Player {
    pub(crate) name: PlayerName,
    /// The address the server sees (after NAT). It is the player's identity.
    pub(crate) addr: SocketAddr,
    pub(crate) last_seen: Millis,
    /// Confirmed (`y:`) its start message: no more re-sends to it.
    pub(crate) confirmed: bool,
    /// Its relay port when the session started relayed, else 0.
    pub(crate) relay_port: u16,
}

/// The start of a session.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Start {
    pub(crate) at: Millis,
    /// How many rounds of the start message have been sent.
    pub(crate) rounds_sent: u8,
    /// The relay address peers are listed at, when the session is relayed.
    pub(crate) relay_ip: Option<IpAddr>,
}

impl Session {
    /// Whether the session still takes requests other than pings and confirmations of a start.
    pub(crate) fn is_open(&self) -> bool {
        self.start.is_none()
    }

    /// The host: the first player in join order.
    pub(crate) fn host(&self) -> Option<&Player> {
        self.players.first()
    }

    pub(crate) fn is_host(&self, addr: SocketAddr) -> bool {
        self.host().is_some_and(|host| host.addr == addr)
    }

    pub(crate) fn is_full(&self) -> bool {
        self.players.len() >= usize::from(self.max_players)
    }

    pub(crate) fn position(&self, name: &PlayerName) -> Option<usize> {
        self.players.iter().position(|p| p.name == *name)
    }

    /// The player called `name` if it is at `addr`: identity is bound to address.
    pub(crate) fn position_at(&self, name: &PlayerName, addr: SocketAddr) -> Option<usize> {
        self.players
            .iter()
            .position(|p| p.name == *name && p.addr == addr)
    }

    /// Marks players at `addr` as heard from.
    pub(crate) fn touch(&mut self, addr: SocketAddr, now: Millis) {
        for player in self.players.iter_mut().filter(|p| p.addr == addr) {
            player.last_seen = now;
        }
    }

    /// Queues `i:` + the player names to `to`.
    pub(crate) fn send_info(&self, to: SocketAddr, out: &mut Outbox) {
        out.push_with(to, |buf| {
            wire::write_info(buf, self.players.iter().map(|p| p.name.as_str()))
        });
    }

    /// Queues `i:` to every player.
    pub(crate) fn broadcast_info(&self, out: &mut Outbox) {
        for player in &self.players {
            self.send_info(player.addr, out);
        }
    }

    /// Queues player `index`'s start message: its own port, then every other player in join
    /// order, at its own address or, relayed, at its relay port. Confirmed players stay in the
    /// list.
    pub(crate) fn send_start_message(&self, index: usize, out: &mut Outbox) {
        let Some(player) = self.players.get(index) else {
            return;
        };
        let relay_ip = self.start.and_then(|s| s.relay_ip);
        let peers = self
            .players
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != index)
            .map(|(_, p)| match relay_ip {
                Some(ip) => (p.name.as_str(), SocketAddr::new(ip, p.relay_port)),
                None => (p.name.as_str(), p.addr),
            });
        out.push_with(player.addr, |buf| {
            wire::write_start(buf, player.addr.port(), peers)
        });
    }

    /// Queues one round of the start message: to every player that has not confirmed, together.
    pub(crate) fn send_start_round(&self, out: &mut Outbox) {
        for (index, player) in self.players.iter().enumerate() {
            if !player.confirmed {
                self.send_start_message(index, out);
            }
        }
    }
}
