//! A session in the hand-over encoding: everything [`Session`] holds but its shard-local id and
//! timer entry, which the shard that adopts it gives it anew.

use super::codec::{malformed, Reader, Result, Writer};
use crate::core::directory::Scope;
use crate::core::name::SessionName;
use crate::core::session::{Player, Session, Start};
use crate::core::shard::LobbyData;
use crate::wire::lobby::{parse_lobby, LobbyRequest, MAX_DESCRIPTION_LEN, MAX_GAME_LEN};
use crate::wire::lobby::{Announce, MAX_TEXT_LEN};
use crate::wire::MAX_PLAYERS_RANGE;

/// Kicks remembered per session: far more than a host kicks in a session's lifetime, and a
/// bound on what a forged state can make a session hold.
const MAX_BANNED: usize = 4096;

pub(crate) fn encode(w: &mut Writer, name: &SessionName, s: &Session) {
    w.str(name.as_str());
    w.u64(s.created);
    w.ip_key(s.owner);
    w.u8(s.max_players);
    w.bool(s.password.is_some());
    if let Some(password) = &s.password {
        w.str(password.as_str());
    }
    w.count(s.banned.len());
    for banned in &s.banned {
        w.str(banned.as_str());
    }
    w.bool(s.lobby.is_some());
    if let Some(lobby) = s.lobby.as_deref() {
        match &lobby.scope {
            Scope::Compat => w.u8(0),
            Scope::Game(game) => {
                w.u8(1);
                w.str(game);
            }
        }
        w.bool(lobby.public);
        w.str(&lobby.version);
        w.str(&lobby.mode);
        w.str(&lobby.description);
    }
    w.count(s.players.len());
    for p in &s.players {
        w.str(p.name.as_str());
        w.addr(p.addr);
        w.u64(p.last_seen);
        w.bool(p.confirmed);
        w.u16(p.relay_port);
    }
    w.bool(s.start.is_some());
    if let Some(start) = s.start {
        w.u64(start.at);
        w.u8(start.rounds_sent);
        w.bool(start.relay_ip.is_some());
        if let Some(ip) = start.relay_ip {
            w.ip(ip);
        }
    }
}

/// A session written by [`encode`], checked: no time after `now` (the export's clock reading),
/// 1 to `max_players` players of distinct names, none of them banned, lobby data a host could
/// have sent, relay ports only in a relayed start. Its id is 0 and it has no timer yet.
pub(crate) fn decode(r: &mut Reader<'_>, now: u64) -> Result<(SessionName, Session)> {
    let name = r.session("session name")?;
    let created = r.millis(now, "session created")?;
    let owner = r.ip_key("session owner")?;
    let max_players = r.u8("max players")?;
    if !MAX_PLAYERS_RANGE.contains(&max_players) {
        return malformed(format!("session {name}: max players {max_players}"));
    }
    let password = match r.bool("password")? {
        true => Some(r.password("password")?),
        false => None,
    };
    let banned_count = r.count(2, "banned")?;
    if banned_count > MAX_BANNED {
        return malformed(format!("session {name}: {banned_count} banned"));
    }
    let banned = (0..banned_count)
        .map(|_| r.player("banned player"))
        .collect::<Result<Vec<_>>>()?;
    let lobby = match r.bool("lobby")? {
        true => Some(Box::new(lobby(r, &name)?)),
        false => None,
    };
    let count = r.count(2, "players")?;
    if count == 0 || count > usize::from(max_players) {
        return malformed(format!("session {name}: {count} players of {max_players}"));
    }
    let mut players: Vec<Player> = Vec::with_capacity(count);
    for _ in 0..count {
        let player = Player {
            name: r.player("player name")?,
            addr: r.addr("player address")?,
            last_seen: r.millis(now, "player last seen")?,
            confirmed: r.bool("player confirmed")?,
            relay_port: r.u16("player relay port")?,
        };
        if players.iter().any(|p| p.name == player.name) || banned.contains(&player.name) {
            return malformed(format!("session {name}: player {} again", player.name));
        }
        players.push(player);
    }
    let start = match r.bool("start")? {
        true => Some(Start {
            at: r.millis(now, "start")?,
            rounds_sent: r.u8("start rounds")?,
            relay_ip: match r.bool("relay address")? {
                true => Some(r.ip("relay address")?),
                false => None,
            },
        }),
        false => None,
    };
    let relayed = start.is_some_and(|s| s.relay_ip.is_some());
    if start.is_some_and(|s| s.rounds_sent == 0)
        || players.iter().any(|p| (p.relay_port != 0) != relayed)
    {
        return malformed(format!("session {name}: start or relay ports out of step"));
    }
    let session = Session {
        players,
        start,
        id: 0,
        created,
        owner,
        timer_at: u64::MAX,
        max_players,
        password,
        banned,
        lobby,
    };
    Ok((name, session))
}

/// Lobby data, checked by parsing the request that would have set it.
fn lobby(r: &mut Reader<'_>, name: &SessionName) -> Result<LobbyData> {
    let scope = match r.u8("lobby scope")? {
        0 => Scope::Compat,
        1 => Scope::Game(r.str(MAX_GAME_LEN, "lobby game")?.to_string()),
        other => return malformed(format!("lobby scope {other}")),
    };
    let data = LobbyData {
        scope,
        public: r.bool("lobby public")?,
        version: r.str(MAX_TEXT_LEN, "lobby version")?.to_string(),
        mode: r.str(MAX_TEXT_LEN, "lobby mode")?.to_string(),
        description: r.str(MAX_DESCRIPTION_LEN, "lobby description")?.to_string(),
    };
    let (version, mode, description) = (&*data.version, &*data.mode, &*data.description);
    let valid = match &data.scope {
        Scope::Compat => {
            let request = format!("d:{name}:True:{version}:{mode}");
            description.is_empty()
                && parse_lobby(request.as_bytes()).is_some_and(|parsed| {
                    parsed
                        == Ok(LobbyRequest::Data {
                            session: name.as_str(),
                            public: true,
                            version,
                            mode,
                        })
                })
        }
        Scope::Game(game) => {
            let request = format!("a:1:{name}:{game}:1:{version}:{mode}:{description}");
            parse_lobby(request.as_bytes()).is_some_and(|parsed| {
                parsed
                    == Ok(LobbyRequest::Announce(Announce {
                        session: name.as_str(),
                        game,
                        public: true,
                        version,
                        mode,
                        description,
                    }))
            })
        }
    };
    if !valid {
        return malformed(format!("session {name}: lobby data {data:?}"));
    }
    Ok(data)
}
