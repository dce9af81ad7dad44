//! The front door: what the server does with a datagram before any session is looked at. Bytes
//! and their source in; out comes a [`Verdict`]: "to shard `i`, with this request", "reply
//! this", or "drop". It is to the shards what quinn-proto's `Endpoint::handle` is to its
//! connections, and, like them, does no I/O: the receiver thread only moves bytes through it.
//!
//! The rules here:
//! - a datagram is parsed once, here, into a [`ParsedRequest`]: owned and inline (names in
//!   fixed arrays), so it travels to its worker in the channel without allocating and is never
//!   parsed again;
//! - the shard of a request is a hash of its session name under a key drawn at start-up
//!   (`RandomState`), so nobody can pick names that all land on one shard;
//! - a malformed datagram is answered with `error:invalid_request` (21 bytes) only when it is at
//!   least [`MIN_ANSWERED_GARBAGE`] bytes long, so that garbage never gets back more than three
//!   times its size; an unknown command is not answered at all (as the original);
//! - the lobby directory's requests (docs/lobbies.md) go where they belong: `d:`, `m:`, `a:1:`
//!   to the shard of their session, `l:`, `b:1:`, `q:1:` to the directory, which no shard owns;
//!   a malformed one gets its error only when that is at most three times its size too.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};

use super::lobby::{self, DirectoryQuery, LobbyRouted, LobbyTarget};
use super::name::{Password, PlayerName, SessionName};
use crate::wire::lobby::{
    parse_lobby, write_extension_error, LobbyParseError, LobbyRequest, EARN_FACTOR,
};
use crate::wire::{self, ErrorCode, Kind, ParseError, Request};

/// Malformed datagrams shorter than this get no `error:invalid_request` (21 bytes): a reply more
/// than three times the size of what caused it would make garbage an amplifier (see
/// [`earned`], the one rule behind it).
pub const MIN_ANSWERED_GARBAGE: usize = 7;

/// Whether an answer of `reply` bytes to a refused datagram of `request` bytes may be sent: at
/// most [`EARN_FACTOR`] (3) times its size, for every kind of garbage.
fn earned(reply: usize, request: usize) -> bool {
    reply <= EARN_FACTOR * request
}

/// A well-formed request, parsed once and owned: the names are stored inline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedRequest {
    pub session: SessionName,
    /// For a kick, the player to kick, not the sender.
    pub player: PlayerName,
    pub command: Command,
}

/// The command of a [`ParsedRequest`], with the fields only some commands have (see
/// [`wire::Kind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Host {
        max_players: u8,
        password: Option<Password>,
    },
    Connect {
        password: Option<Password>,
    },
    Ping,
    Kick,
    Exit,
    Start,
    Confirm,
}

impl ParsedRequest {
    /// Parses one datagram (see [`wire::parse`]).
    pub fn parse(datagram: &[u8]) -> Result<Self, ParseError> {
        Self::from_wire(&wire::parse(datagram)?).ok_or(ParseError::Invalid)
    }

    /// The owned form of `request`; `None` only if a field is longer than the field rules allow,
    /// which the parser has checked already.
    pub fn from_wire(request: &Request<'_>) -> Option<Self> {
        let password = |p: Option<&str>| match p {
            Some(p) => Password::new(p).map(Some),
            None => Some(None),
        };
        let command = match request.kind {
            Kind::Host {
                max_players,
                password: p,
            } => Command::Host {
                max_players,
                password: password(p)?,
            },
            Kind::Connect { password: p } => Command::Connect {
                password: password(p)?,
            },
            Kind::Ping => Command::Ping,
            Kind::Kick => Command::Kick,
            Kind::Exit => Command::Exit,
            Kind::Start => Command::Start,
            Kind::Confirm => Command::Confirm,
        };
        Some(Self {
            session: SessionName::new(request.session)?,
            player: PlayerName::new(request.player)?,
            command,
        })
    }

    /// The request in the wire module's borrowed form, for what counts or logs requests.
    pub fn as_wire(&self) -> Request<'_> {
        let kind = match &self.command {
            Command::Host {
                max_players,
                password,
            } => Kind::Host {
                max_players: *max_players,
                password: password.as_ref().map(Password::as_str),
            },
            Command::Connect { password } => Kind::Connect {
                password: password.as_ref().map(Password::as_str),
            },
            Command::Ping => Kind::Ping,
            Command::Kick => Kind::Kick,
            Command::Exit => Kind::Exit,
            Command::Start => Kind::Start,
            Command::Confirm => Kind::Confirm,
        };
        Request {
            session: self.session.as_str(),
            player: self.player.as_str(),
            kind,
        }
    }
}

/// A request on its way to its shard: who sent it, the local address it arrived on if known (a
/// relayed start lists it), and the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Routed {
    pub from: SocketAddr,
    pub local: Option<IpAddr>,
    pub request: ParsedRequest,
}

/// What to do with a datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A request, for shard `shard`.
    Route { shard: usize, routed: Routed },
    /// A lobby request (`d:`, `m:`, `a:1:`), for shard `shard`.
    Lobby {
        shard: usize,
        routed: Box<LobbyRouted>,
    },
    /// A directory query (`l:`, `b:1:`, `q:1:`) from `from`, for the directory.
    Directory {
        from: SocketAddr,
        query: Box<DirectoryQuery>,
    },
    /// Send `error` to `to` (the sender); nothing else happens.
    Reply { to: SocketAddr, error: ErrorCode },
    /// Send the answer to a malformed extension request (`b:1:error:...`) to `to`.
    ReplyLobby {
        to: SocketAddr,
        error: LobbyParseError,
    },
    /// Nothing to do.
    Drop(Dropped),
}

/// Why a datagram is dropped unanswered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Malformed, and shorter than [`MIN_ANSWERED_GARBAGE`].
    ShortGarbage,
    /// A command letter the protocol does not know.
    UnknownCommand,
}

/// The front door of a server of `shards` shards. See the [module](self) docs.
#[derive(Clone, Debug)]
pub struct FrontDoor {
    key: RandomState,
    shards: usize,
}

impl FrontDoor {
    /// A front door to `shards` shards (at least one), with a hash key of its own.
    pub fn new(shards: usize) -> Self {
        Self {
            key: RandomState::new(),
            shards: shards.max(1),
        }
    }

    /// How many shards it routes to.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// The shard that owns session `name`.
    pub fn shard_of(&self, name: &SessionName) -> usize {
        (self.key.hash_one(name) % self.shards as u64) as usize
    }

    /// Decides what to do with `datagram`, which `from` sent to local address `local` (if
    /// known). `truncated`: the datagram was longer than the bytes kept of it, which no request
    /// is.
    pub fn handle(
        &self,
        from: SocketAddr,
        local: Option<IpAddr>,
        datagram: &[u8],
        truncated: bool,
    ) -> Verdict {
        if let Some(parsed) = parse_lobby(datagram) {
            // A listing request longer than what was kept of it is one all the same: `l:`
            // ignores what follows, and `b:1:` and `q:1:` end with their padding. The others
            // are never that long.
            let listing = matches!(
                parsed,
                Ok(LobbyRequest::List | LobbyRequest::Browse(_) | LobbyRequest::QuickJoin { .. })
            );
            if !truncated || listing {
                return self.lobby(from, datagram.len(), parsed);
            }
        }
        let parsed = if truncated {
            Err(ParseError::Invalid)
        } else {
            ParsedRequest::parse(datagram)
        };
        match parsed {
            Ok(request) => Verdict::Route {
                shard: self.shard_of(&request.session),
                routed: Routed {
                    from,
                    local,
                    request,
                },
            },
            Err(ParseError::Invalid)
                if earned(ErrorCode::InvalidRequest.as_str().len(), datagram.len()) =>
            {
                Verdict::Reply {
                    to: from,
                    error: ErrorCode::InvalidRequest,
                }
            }
            Err(ParseError::Invalid) => Verdict::Drop(Dropped::ShortGarbage),
            Err(ParseError::UnknownCommand) => Verdict::Drop(Dropped::UnknownCommand),
        }
    }
}

impl FrontDoor {
    /// The verdict on a directory request, parsed or not.
    fn lobby(
        &self,
        from: SocketAddr,
        len: usize,
        parsed: Result<LobbyRequest<'_>, LobbyParseError>,
    ) -> Verdict {
        let target = parsed
            .and_then(|request| lobby::to_owned(&request, len).ok_or(LobbyParseError::Invalid));
        match target {
            Ok(LobbyTarget::Session(session, command)) => Verdict::Lobby {
                shard: self.shard_of(&session),
                routed: Box::new(LobbyRouted {
                    from,
                    session,
                    command,
                }),
            },
            Ok(LobbyTarget::Directory(query)) => Verdict::Directory {
                from,
                query: Box::new(query),
            },
            Err(error) => {
                let mut reply = Vec::new();
                write_extension_error(&mut reply, error);
                if !earned(reply.len(), len) {
                    Verdict::Drop(Dropped::ShortGarbage)
                } else if error == LobbyParseError::Invalid {
                    Verdict::Reply {
                        to: from,
                        error: ErrorCode::InvalidRequest,
                    }
                } else {
                    Verdict::ReplyLobby { to: from, error }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from() -> SocketAddr {
        "198.51.100.1:40000".parse().unwrap()
    }

    #[test]
    fn requests_go_to_the_shard_of_their_session_parsed() {
        let door = FrontDoor::new(4);
        let Verdict::Route { shard, routed } = door.handle(from(), None, b"c:Room:Bob:pw\n", false)
        else {
            panic!("not routed");
        };
        assert_eq!(shard, door.shard_of(&SessionName::new("Room").unwrap()));
        assert!(shard < 4);
        assert_eq!(routed.from, from());
        assert_eq!(routed.request.player, *"Bob");
        assert_eq!(
            routed.request.command,
            Command::Connect {
                password: Password::new("pw")
            }
        );
        assert_eq!(
            routed.request.as_wire(),
            wire::parse(b"c:Room:Bob:pw").unwrap()
        );
        // Every session of one name, whoever sends it, lands on one shard.
        for text in ["p:Room:A", "h:Room:Zed:4", "s:Room:Zed"] {
            let verdict = door.handle(from(), None, text.as_bytes(), false);
            assert!(matches!(verdict, Verdict::Route { shard: s, .. } if s == shard));
        }
    }

    #[test]
    fn garbage_is_answered_only_from_7_bytes_and_unknown_commands_never() {
        // The 7 bytes are the 3x rule for a 21-byte `error:invalid_request`.
        let answer = ErrorCode::InvalidRequest.as_str().len();
        assert!(earned(answer, MIN_ANSWERED_GARBAGE) && !earned(answer, MIN_ANSWERED_GARBAGE - 1));
        let door = FrontDoor::new(2);
        let reply = Verdict::Reply {
            to: from(),
            error: ErrorCode::InvalidRequest,
        };
        assert_eq!(
            door.handle(from(), None, b"hello!", false),
            Verdict::Drop(Dropped::ShortGarbage)
        );
        assert_eq!(door.handle(from(), None, b"hello!!", false), reply);
        assert_eq!(door.handle(from(), None, b"h:R:A:13", false), reply);
        assert_eq!(
            door.handle(from(), None, b"z:foo:bar", false),
            Verdict::Drop(Dropped::UnknownCommand)
        );
        // A truncated datagram is no request, whatever its kept bytes say.
        assert_eq!(door.handle(from(), None, b"z:foo:bar", true), reply);
        assert_eq!(
            door.handle(from(), None, b"p:R:A", true),
            Verdict::Drop(Dropped::ShortGarbage)
        );
    }

    #[test]
    fn lobby_requests_go_to_their_session_or_the_directory() {
        let door = FrontDoor::new(4);
        let room = door.shard_of(&SessionName::new("Room").unwrap());
        for text in [
            "d:Room:True:1.0:Draft",
            "m:Room:Ana:hi: all",
            "a:1:Room:cards:1:1::",
        ] {
            let verdict = door.handle(from(), None, text.as_bytes(), false);
            assert!(
                matches!(&verdict, Verdict::Lobby { shard, routed } if *shard == room && routed.from == from()),
                "{text}: {verdict:?}"
            );
        }
        for text in ["l:", "b:1:cards::::n:", "q:1:cards"] {
            let verdict = door.handle(from(), None, text.as_bytes(), false);
            assert!(
                matches!(verdict, Verdict::Directory { .. }),
                "{text}: {verdict:?}"
            );
        }
        assert_eq!(
            door.handle(from(), None, b"l:", false),
            Verdict::Directory {
                from: from(),
                query: Box::new(DirectoryQuery::Compat)
            }
        );
    }

    #[test]
    fn a_listing_longer_than_what_was_kept_of_it_is_a_listing_all_the_same() {
        let door = FrontDoor::new(2);
        // What a receive buffer kept of a longer datagram: the padding is cut.
        for kept in [
            "l:and more",
            "b:1:cards::::n::xxxxxxxx",
            "q:1:cards::xxxxxxxx",
        ] {
            let verdict = door.handle(from(), None, kept.as_bytes(), true);
            assert!(
                matches!(verdict, Verdict::Directory { .. }),
                "{kept}: {verdict:?}"
            );
        }
        // No other request is ever that long: cut, it is garbage.
        assert_eq!(
            door.handle(from(), None, b"d:Room:True:1.0:Draft", true),
            Verdict::Reply {
                to: from(),
                error: ErrorCode::InvalidRequest
            }
        );
    }

    #[test]
    fn malformed_lobby_requests_get_their_error_within_three_times_their_size() {
        let door = FrontDoor::new(2);
        assert_eq!(
            door.handle(from(), None, b"d:Room:True:1|0:x", false),
            Verdict::Reply {
                to: from(),
                error: ErrorCode::InvalidRequest
            }
        );
        assert_eq!(
            door.handle(from(), None, b"d:R:T", false),
            Verdict::Drop(Dropped::ShortGarbage)
        );
        assert_eq!(
            door.handle(from(), None, b"b:1:c:x:::n:", false),
            Verdict::ReplyLobby {
                to: from(),
                error: LobbyParseError::InvalidExtension(b'b')
            }
        );
        // `b:1:error:unsupported_version` is 29 bytes: a 9-byte request does not earn it.
        assert_eq!(
            door.handle(from(), None, b"b:2:cards", false),
            Verdict::Drop(Dropped::ShortGarbage)
        );
        assert!(matches!(
            door.handle(from(), None, b"b:2:cardgame", false),
            Verdict::ReplyLobby { .. }
        ));
    }
}
