//! The requests of the protocol, each with its checks in the protocol's order, its errors and its
//! replies (`docs/protocol.md`, "Requests and replies"). One method per row of the table.
//!
//! Two rules apply to every row:
//! - "heard from": a request (other than `y:`) that reaches an open session marks the players at
//!   the sender's address as alive ([`Shard::open_session`]);
//! - host migration: the host is the first player in join order, so removing it makes the next
//!   player host, with nothing else to do.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use log::{debug, info};

use super::Shard;
use crate::core::clock::Millis;
use crate::core::directory::Reserve;
use crate::core::front::{Command, ParsedRequest};
use crate::core::name::{Password, PlayerName, SessionName};
use crate::core::session::{Player, Session, Start};
use crate::ip_key::IpKey;
use crate::outbox::Outbox;
use crate::wire::ErrorCode;

impl Shard {
    /// Applies one well-formed request from `from` at `now`, queueing the replies in `out`.
    /// `local_ip` is the address it arrived on, if known (see [`Shard::handle_datagram_on`]).
    pub fn handle(
        &mut self,
        now: Instant,
        from: SocketAddr,
        local_ip: Option<IpAddr>,
        request: &ParsedRequest,
        out: &mut Outbox,
    ) {
        let now = self.clock.millis(now);
        let ParsedRequest {
            session,
            player,
            command,
        } = *request;
        let result = match command {
            Command::Host {
                max_players,
                password,
            } => self.host(now, from, session, player, max_players, password, out),
            Command::Connect { password } => {
                self.connect(now, from, session, player, password, out)
            }
            Command::Ping => self.ping(now, from, session, player, out),
            Command::Kick => self.kick(now, from, session, player, out),
            Command::Exit => self.exit(now, from, session, player, out),
            Command::Start => self.start(now, from, local_ip, session, out),
            Command::Confirm => self.confirm(session, player, from),
        };
        if let Err(code) = result {
            out.push_error(from, code);
        }
    }

    /// The session called `name` if it is open (exists and is not starting), with the players at
    /// `from` marked as heard from.
    fn open_session(
        &mut self,
        name: &SessionName,
        from: SocketAddr,
        now: Millis,
    ) -> Option<&mut Session> {
        let session = self.sessions.get_mut(name).filter(|s| s.is_open())?;
        session.touch(from, now);
        Some(session)
    }

    /// `h:S:P:M[:W]`.
    #[allow(clippy::too_many_arguments)]
    fn host(
        &mut self,
        now: Millis,
        from: SocketAddr,
        name: SessionName,
        player: PlayerName,
        max_players: u8,
        password: Option<Password>,
        out: &mut Outbox,
    ) -> Result<(), ErrorCode> {
        if self.sessions.contains_key(&name) {
            // Only the host re-sending `h:` because our `i:` was lost gets an answer.
            let session = self
                .open_session(&name, from, now)
                .filter(|s| s.is_host(from))
                .ok_or(ErrorCode::SessionExists)?;
            session.send_info(from, out);
            return Ok(());
        }
        if self.directory.taken_elsewhere(&name) {
            // Live on another server of the fleet (docs/lobbies.md, "A fleet").
            return Err(ErrorCode::SessionExists);
        }
        match self.directory.reserve(name, self.clock.instant(now)) {
            Reserve::Go => {}
            // Claimed in Redis by the fleet thread meanwhile; the client's next `h:` finds
            // the verdict.
            Reserve::Wait => return Ok(()),
            Reserve::Taken => return Err(ErrorCode::SessionExists),
        }
        let owner = IpKey::from(from.ip());
        if let Err(cap) = self.caps.try_open_session(owner) {
            // Dropped unanswered: the client retries, then reports the server silent. No reply
            // also means nothing to reflect at a forged address.
            self.stats.hosts_refused_by_cap += 1;
            debug!("host of session {name} from {from} dropped: {cap:?} cap reached");
            return Ok(());
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let session = Session {
            id,
            created: now,
            owner,
            timer_at: Millis::MAX,
            max_players,
            password,
            players: vec![Player {
                name: player,
                addr: from,
                last_seen: now,
                confirmed: false,
                relay_port: 0,
            }],
            banned: Vec::new(),
            lobby: None,
            start: None,
        };
        info!(
            "session {name} created by {player} at {from} (max {max_players} players{})",
            if session.password.is_some() {
                ", password"
            } else {
                ""
            }
        );
        session.send_info(from, out);
        self.sessions.insert(name, session);
        self.directory.claim(name);
        self.players += 1;
        self.stats.sessions_created += 1;
        self.schedule(name);
        Ok(())
    }

    /// `c:S:P[:W]`.
    fn connect(
        &mut self,
        now: Millis,
        from: SocketAddr,
        name: SessionName,
        player: PlayerName,
        password: Option<Password>,
        out: &mut Outbox,
    ) -> Result<(), ErrorCode> {
        let session = self
            .open_session(&name, from, now)
            .ok_or(ErrorCode::SessionNonExistent)?;
        if session.banned.contains(&player) {
            return Err(ErrorCode::KickedByHost);
        }
        if let Some(expected) = session.password {
            if password != Some(expected) {
                return Err(ErrorCode::PasswordMismatch);
            }
        }
        match session.position(&player) {
            Some(index) if session.players[index].addr == from => {
                // A retry after a lost `i:`: answered even when the session is now full.
                session.send_info(from, out);
                return Ok(());
            }
            _ if session.is_full() => return Err(ErrorCode::SessionFull),
            Some(_) => return Err(ErrorCode::PlayerNameInUse),
            None => {}
        }
        if self.caps.try_add_player().is_err() {
            self.stats.joins_refused_by_cap += 1;
            return Err(ErrorCode::SessionFull);
        }
        let Some(session) = self.sessions.get_mut(&name) else {
            return Err(ErrorCode::SessionNonExistent);
        };
        session.players.push(Player {
            name: player,
            addr: from,
            last_seen: now,
            confirmed: false,
            relay_port: 0,
        });
        info!(
            "player {player} at {from} joined session {name} ({}/{})",
            session.players.len(),
            session.max_players
        );
        session.broadcast_info(out);
        self.players += 1;
        self.stats.players_joined += 1;
        self.relist(&name);
        Ok(())
    }

    /// `p:S:P`.
    fn ping(
        &mut self,
        now: Millis,
        from: SocketAddr,
        name: SessionName,
        player: PlayerName,
        out: &mut Outbox,
    ) -> Result<(), ErrorCode> {
        // One lookup: a ping is most of the traffic.
        let session = self
            .sessions
            .get_mut(&name)
            .ok_or(ErrorCode::SessionNonExistent)?;
        if !session.is_open() {
            // A player still pinging a starting session missed its start message.
            if let Some(index) = session.position_at(&player, from) {
                if !session.players[index].confirmed {
                    session.send_start_message(index, out);
                    return Ok(());
                }
            }
            return Err(ErrorCode::SessionNonExistent);
        }
        session.touch(from, now);
        session
            .position_at(&player, from)
            .ok_or(ErrorCode::NonExistentPlayer)?;
        session.send_info(from, out);
        Ok(())
    }

    /// `k:S:P`: the host kicks `P`.
    fn kick(
        &mut self,
        now: Millis,
        from: SocketAddr,
        name: SessionName,
        player: PlayerName,
        out: &mut Outbox,
    ) -> Result<(), ErrorCode> {
        let session = self
            .open_session(&name, from, now)
            .ok_or(ErrorCode::SessionNonExistent)?;
        let index = session
            .position(&player)
            .ok_or(ErrorCode::NonExistentPlayer)?;
        if !session.is_host(from) {
            return Err(ErrorCode::NonHostPlayer);
        }
        let kicked = session.players.remove(index);
        out.push_error(kicked.addr, ErrorCode::KickedByHost);
        session.banned.push(player);
        session.broadcast_info(out);
        info!(
            "player {player} at {} kicked from session {name}",
            kicked.addr
        );
        self.stats.players_kicked += 1;
        self.players_removed(&name, 1);
        Ok(())
    }

    /// `x:S:P`: `P` leaves.
    fn exit(
        &mut self,
        now: Millis,
        from: SocketAddr,
        name: SessionName,
        player: PlayerName,
        out: &mut Outbox,
    ) -> Result<(), ErrorCode> {
        let session = self
            .open_session(&name, from, now)
            .ok_or(ErrorCode::SessionNonExistent)?;
        let index = session
            .position_at(&player, from)
            .ok_or(ErrorCode::NonExistentPlayer)?;
        session.players.remove(index);
        // As the original: no `i:` to the others; they see the change on their next ping.
        out.push_error(from, ErrorCode::PlayerExitedSession);
        info!("player {player} at {from} exited session {name}");
        self.stats.players_exited += 1;
        self.players_removed(&name, 1);
        Ok(())
    }

    /// `s:S:P`: the host starts the session.
    fn start(
        &mut self,
        now: Millis,
        from: SocketAddr,
        local_ip: Option<IpAddr>,
        name: SessionName,
        out: &mut Outbox,
    ) -> Result<(), ErrorCode> {
        if self.sessions.get(&name).is_some_and(|s| !s.is_open()) {
            // Players re-send `s:` until their start message arrives: not an error.
            return Ok(());
        }
        let session = self
            .open_session(&name, from, now)
            .ok_or(ErrorCode::SessionNonExistent)?;
        if !session.is_host(from) {
            return Err(ErrorCode::NonHostPlayer);
        }
        if session.players.len() < 2 {
            return Err(ErrorCode::OnlyOnePlayerInSession);
        }
        let relay_ip = self.open_relay(now, name, local_ip);
        let Some(session) = self.sessions.get_mut(&name) else {
            return Err(ErrorCode::SessionNonExistent);
        };
        session.start = Some(Start {
            at: now,
            rounds_sent: 1,
            relay_ip,
        });
        session.send_start_round(out);
        info!(
            "session {name} started with {} players",
            session.players.len()
        );
        self.stats.sessions_started += 1;
        self.schedule(name);
        self.relist(&name); // a started session leaves the directory
        Ok(())
    }

    /// `y:S:P`: `P` got its start message.
    fn confirm(
        &mut self,
        name: SessionName,
        player: PlayerName,
        from: SocketAddr,
    ) -> Result<(), ErrorCode> {
        let session = self
            .sessions
            .get_mut(&name)
            .filter(|s| !s.is_open())
            .ok_or(ErrorCode::SessionNotStarted)?;
        let confirmed = session
            .players
            .iter_mut()
            .find(|p| p.name == player && p.addr == from && !p.confirmed)
            .ok_or(ErrorCode::NonExistentPlayer)?;
        confirmed.confirmed = true;
        Ok(())
    }
}
