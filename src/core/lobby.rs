//! The lobby directory's requests (docs/lobbies.md) as the front door routes them: owned, so
//! they travel in channels. Two kinds:
//! - [`LobbyRouted`]: `d:`, `m:` and `a:1:` name a session, so they go to the shard that owns
//!   it, like every session request;
//! - [`DirectoryQuery`]: `l:`, `b:1:` and `q:1:` read the directory, which spans the shards, so
//!   they go to whoever answers listings (the runtime's directory thread), never to a shard.
//!
//! They carry text (versions, modes, chat), so they are not squeezed into the inline
//! [`ParsedRequest`](super::ParsedRequest) that every ping travels in: the ping path stays as it
//! was, and these rarer requests pay an allocation each.

use std::net::SocketAddr;

use super::name::{PlayerName, SessionName};
use crate::wire::lobby::{Browse, Cursor, LobbyRequest, Order};

/// A directory request for the shard owning `session`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LobbyRouted {
    pub from: SocketAddr,
    pub session: SessionName,
    pub command: LobbyCommand,
}

/// What a [`LobbyRouted`] asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LobbyCommand {
    /// `d:`: list or unlist in the compatible listing, with version and mode.
    Data {
        public: bool,
        version: String,
        mode: String,
    },
    /// `m:`: `player` says `text` to its lobby.
    Chat { player: PlayerName, text: String },
    /// `a:1:`: put the session in game `game`'s directory.
    Announce {
        game: String,
        public: bool,
        version: String,
        mode: String,
        description: String,
    },
}

/// A request the directory answers by itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirectoryQuery {
    /// `l:`.
    Compat,
    /// `b:1:`.
    Browse {
        game: String,
        free_only: bool,
        open_only: bool,
        version: Option<String>,
        mode: Option<String>,
        order: Order,
        cursor: Option<Cursor>,
        /// The request's length: its page earns a multiple of it.
        request_len: usize,
    },
    /// `q:1:`.
    QuickJoin {
        game: String,
        version: Option<String>,
        /// The request's length: its answer must not be more than 3 times it.
        request_len: usize,
    },
}

impl DirectoryQuery {
    /// The borrowed `b:1:` this query was made from, for the directory's page writer.
    pub fn as_browse(&self) -> Option<Browse<'_>> {
        match self {
            DirectoryQuery::Browse {
                game,
                free_only,
                open_only,
                version,
                mode,
                order,
                cursor,
                request_len,
            } => Some(Browse {
                game,
                free_only: *free_only,
                open_only: *open_only,
                version: version.as_deref(),
                mode: mode.as_deref(),
                order: *order,
                cursor: *cursor,
                request_len: *request_len,
            }),
            _ => None,
        }
    }
}

/// Where a parsed directory request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LobbyTarget {
    Session(SessionName, LobbyCommand),
    Directory(DirectoryQuery),
}

/// The owned form of `request`, a datagram of `len` bytes. `None` only if a name breaks the
/// field rules, which the parser has checked already.
pub fn to_owned(request: &LobbyRequest<'_>, len: usize) -> Option<LobbyTarget> {
    let session = |name: &str| SessionName::new(name);
    Some(match *request {
        LobbyRequest::List => LobbyTarget::Directory(DirectoryQuery::Compat),
        LobbyRequest::Data {
            session: s,
            public,
            version,
            mode,
        } => LobbyTarget::Session(
            session(s)?,
            LobbyCommand::Data {
                public,
                version: version.to_string(),
                mode: mode.to_string(),
            },
        ),
        LobbyRequest::Chat {
            session: s,
            player,
            text,
        } => LobbyTarget::Session(
            session(s)?,
            LobbyCommand::Chat {
                player: PlayerName::new(player)?,
                text: text.to_string(),
            },
        ),
        LobbyRequest::Announce(a) => LobbyTarget::Session(
            session(a.session)?,
            LobbyCommand::Announce {
                game: a.game.to_string(),
                public: a.public,
                version: a.version.to_string(),
                mode: a.mode.to_string(),
                description: a.description.to_string(),
            },
        ),
        LobbyRequest::Browse(b) => LobbyTarget::Directory(DirectoryQuery::Browse {
            game: b.game.to_string(),
            free_only: b.free_only,
            open_only: b.open_only,
            version: b.version.map(str::to_string),
            mode: b.mode.map(str::to_string),
            order: b.order,
            cursor: b.cursor,
            request_len: b.request_len,
        }),
        LobbyRequest::QuickJoin { game, version } => {
            LobbyTarget::Directory(DirectoryQuery::QuickJoin {
                game: game.to_string(),
                version: version.map(str::to_string),
                request_len: len,
            })
        }
    })
}
