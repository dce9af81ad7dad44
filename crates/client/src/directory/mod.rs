//! The lobby directory from the client's side (docs/lobbies.md): browse a game's public lobbies
//! (`b:1:`), quick join (`q:1:`), FusionV1's compatible list (`l:`), and the requests a host
//! or a member sends from its session socket (`a:1:`, `d:`, `m:`, see [`crate::Lobby`]).
//!
//! - [`Exchange`] ([`exchange`]) is one request and its reply as a sans-I/O state machine: the
//!   request is re-sent every 0.5 s, [`QUERY_TRIES`] times at most, until its reply comes.
//! - [`Directory`] ([`blocking`]) runs exchanges on a blocking UDP socket: [`Directory::list`],
//!   [`Directory::list_all`], [`Directory::quick_join`], [`Directory::list_compat`].
//! - [`reply`] parses the replies into [`Page`], [`Entry`] and [`Found`].
//!
//! Chat is not here: the server takes `m:` only from the member's own address, so it is sent
//! from the session's socket ([`crate::Session::chat`]).
//!
//! Every request is checked by the server's own parser (`rabid_wire::lobby`) before it is sent,
//! so a field the server would refuse fails here as [`DirectoryError::InvalidArgument`], with
//! the same rules, and never as a round trip.

pub mod blocking;
pub mod exchange;
pub mod reply;

use std::fmt;

use rabid_wire::lobby::{parse_lobby, Cursor, LobbyRequest, MAX_REPLY_LEN};
pub use rabid_wire::lobby::{Order, EARN_FACTOR};

use crate::error::ServerError;

pub use blocking::Directory;
pub use exchange::{Exchange, QUERY_TRIES};
pub use reply::{Answer, Entry, FleetServer, Found, Page};

/// A browse request pads itself to this length, so its page earns the full 1200 bytes.
pub const BROWSE_REQUEST_LEN: usize = MAX_REPLY_LEN.div_ceil(EARN_FACTOR);
const _: () = assert!(BROWSE_REQUEST_LEN * EARN_FACTOR >= MAX_REPLY_LEN);
/// A quick join request pads itself to this length: 3 times it holds the longest answer, a
/// lobby of another fleet server with its address and region (`q:1:S:H:n:max:host:port:region`),
/// since an answer is at most 3 times its request (docs/lobbies.md).
pub const QUICK_JOIN_REQUEST_LEN: usize = 64;
/// What a padding is made of: docs/lobbies.md asks for letters.
const PAD: u8 = b'x';

/// What to list of a game's directory (`b:1:`): filters, order, and where to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The game (`G`): 1-32 ASCII letters, digits, `.`, `_` or `-`.
    pub game: String,
    /// Only lobbies with a free slot (`f`).
    pub free_only: bool,
    /// Only lobbies without a password (`o`).
    pub open_only: bool,
    /// Only lobbies of exactly this version.
    pub version: Option<String>,
    /// Only lobbies of exactly this mode.
    pub mode: Option<String>,
    /// Newest first (default) or fullest first.
    pub order: Order,
    /// Where to start: `None` for the first page, else a [`Page::next`].
    pub cursor: Option<String>,
}

impl Query {
    /// Every open public lobby of `game`, newest first, from the first page.
    pub fn game(game: &str) -> Query {
        Query {
            game: game.to_string(),
            free_only: false,
            open_only: false,
            version: None,
            mode: None,
            order: Order::Newest,
            cursor: None,
        }
    }

    /// Only lobbies with a free slot.
    pub fn free(mut self) -> Query {
        self.free_only = true;
        self
    }

    /// Only lobbies without a password.
    pub fn open(mut self) -> Query {
        self.open_only = true;
        self
    }

    /// Only lobbies of this version.
    pub fn version(mut self, version: &str) -> Query {
        self.version = Some(version.to_string());
        self
    }

    /// Only lobbies of this mode.
    pub fn mode(mut self, mode: &str) -> Query {
        self.mode = Some(mode.to_string());
        self
    }

    /// In this order.
    pub fn order(mut self, order: Order) -> Query {
        self.order = order;
        self
    }

    /// From this cursor (a [`Page::next`]).
    pub fn after(mut self, cursor: Option<&str>) -> Query {
        self.cursor = cursor.map(str::to_string);
        self
    }

    /// The request, padded to [`BROWSE_REQUEST_LEN`]:
    /// `b:1:G:<flags>:V:D:<order>:<cursor>:<pad>`.
    pub fn to_datagram(&self) -> Result<Vec<u8>, DirectoryError> {
        let flags = match (self.free_only, self.open_only) {
            (false, false) => "",
            (true, false) => "f",
            (false, true) => "o",
            (true, true) => "fo",
        };
        let order = match self.order {
            Order::Newest => "n",
            Order::Fullest => "f",
        };
        let mut datagram = format!(
            "b:1:{}:{flags}:{}:{}:{order}:{}:",
            self.game,
            self.version.as_deref().unwrap_or(""),
            self.mode.as_deref().unwrap_or(""),
            self.cursor.as_deref().unwrap_or(""),
        )
        .into_bytes();
        pad(&mut datagram, BROWSE_REQUEST_LEN);
        let cursor = |c: &Cursor| format!("{}.{}", c.players, c.seq);
        checked(datagram, "browse query", |r| {
            matches!(r, LobbyRequest::Browse(b)
                if b.game == self.game
                    && b.version == self.version.as_deref().filter(|v| !v.is_empty())
                    && b.mode == self.mode.as_deref().filter(|d| !d.is_empty())
                    && b.cursor.as_ref().map(cursor).as_deref()
                        == self.cursor.as_deref().filter(|c| !c.is_empty()))
        })
    }
}

/// `q:1:G:V:<pad>`, padded to [`QUICK_JOIN_REQUEST_LEN`]; an empty `V` is any version.
pub fn quick_join_request(game: &str, version: Option<&str>) -> Result<Vec<u8>, DirectoryError> {
    let mut datagram = format!("q:1:{game}:{}:", version.unwrap_or("")).into_bytes();
    pad(&mut datagram, QUICK_JOIN_REQUEST_LEN);
    checked(datagram, "quick join", |r| {
        matches!(r, LobbyRequest::QuickJoin { game: g, version: v }
            if *g == game && *v == version.filter(|v| !v.is_empty()))
    })
}

/// `l:`, FusionV1's listing.
pub fn compat_list_request() -> Vec<u8> {
    b"l:".to_vec()
}

/// How a hosted session shows in the directory: in a game's directory (`a:1:`), or in
/// FusionV1's compatible listing (`d:`, listed by `l:`) when `game` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// The game's directory; `None`: the compatible listing.
    pub game: Option<String>,
    /// Version text (0-32 bytes, no `: ; | [ ] \`).
    pub version: String,
    /// Mode text (0-32 bytes, same characters as the version).
    pub mode: String,
    /// Description (0-64 bytes, same characters); only in a game's directory.
    pub description: String,
}

impl Publish {
    /// The request the host sends from its session socket: `a:1:S:G:1:V:D:T`, or
    /// `d:S:True:V:D` for the compatible listing.
    pub fn to_datagram(&self, session: &str) -> Result<Vec<u8>, DirectoryError> {
        let (version, mode, description) = (&self.version, &self.mode, &self.description);
        match &self.game {
            Some(game) => checked(
                format!("a:1:{session}:{game}:1:{version}:{mode}:{description}").into_bytes(),
                "public lobby",
                |r| {
                    matches!(r, LobbyRequest::Announce(a)
                        if a.session == session && a.game == game && a.version == version
                            && a.mode == mode && a.description == description)
                },
            ),
            None if !description.is_empty() => Err(DirectoryError::InvalidArgument(
                "a description needs a game: the compatible listing (d:) has none".to_string(),
            )),
            None => checked(
                format!("d:{session}:True:{version}:{mode}").into_bytes(),
                "public lobby",
                |r| {
                    matches!(r, LobbyRequest::Data { session: s, version: v, mode: d, .. }
                        if *s == session && v == version && d == mode)
                },
            ),
        }
    }
}

/// `m:S:P:<text>`, checked: a chat line the server would refuse gets `error:invalid_request`,
/// which the lobby (like the plugin) would take for the end of its session.
pub fn chat_request(session: &str, player: &str, text: &str) -> Result<Vec<u8>, DirectoryError> {
    checked(
        format!("m:{session}:{player}:{text}").into_bytes(),
        "chat text (1-200 bytes, no control characters)",
        |r| {
            matches!(r, LobbyRequest::Chat { session: s, player: p, text: t }
                if *s == session && *p == player && *t == text)
        },
    )
}

fn pad(datagram: &mut Vec<u8>, len: usize) {
    let missing = len.saturating_sub(datagram.len());
    datagram.resize(datagram.len() + missing, PAD);
}

/// `datagram` if the server's parser reads it as the request meant (`is_meant`); else why not.
fn checked(
    datagram: Vec<u8>,
    what: &str,
    is_meant: impl Fn(&LobbyRequest<'_>) -> bool,
) -> Result<Vec<u8>, DirectoryError> {
    match parse_lobby(&datagram) {
        Some(Ok(request)) if is_meant(&request) => Ok(datagram),
        _ => Err(DirectoryError::InvalidArgument(format!(
            "invalid {what}: {:?} breaks the field rules of docs/lobbies.md (game: 1-32 ASCII \
             letters, digits, '.', '_', '-'; version, mode: 0-32 bytes, description: 0-64, \
             without : ; | [ ] \\ or control characters)",
            String::from_utf8_lossy(&datagram).trim_end_matches(PAD as char)
        ))),
    }
}

/// Why a directory request failed.
#[derive(Debug)]
pub enum DirectoryError {
    /// The server refused it (`<letter>:1:error:<code>`) with a code of the protocol:
    /// `invalid_request`, or for a public lobby `session_non_existent` or `non_host_player`.
    Server(ServerError),
    /// `<letter>:1:error:unsupported_version`: the server speaks another extension version.
    UnsupportedVersion,
    /// An error code this client does not know (a newer server); kept verbatim.
    UnknownServerError(String),
    /// No reply after [`QUERY_TRIES`] sends, 0.5 s apart (`server_timeout`): the server is
    /// down, or does not speak the lobby directory (the original server ignores it).
    Timeout,
    /// A reply that starts like the answer but breaks its format (`bad_reply`).
    BadReply(String),
    /// A field breaks the rules of docs/lobbies.md; nothing was sent (`invalid_argument`).
    InvalidArgument(String),
    /// A socket operation failed (`io_error`).
    Io(std::io::Error),
}

impl DirectoryError {
    /// A stable short code, as [`crate::Error::code`]: the server's code, `unsupported_version`,
    /// `server_timeout`, `bad_reply`, `invalid_argument` or `io_error`.
    pub fn code(&self) -> &str {
        match self {
            DirectoryError::Server(e) => e.code(),
            DirectoryError::UnsupportedVersion => "unsupported_version",
            DirectoryError::UnknownServerError(code) => code,
            DirectoryError::Timeout => "server_timeout",
            DirectoryError::BadReply(_) => "bad_reply",
            DirectoryError::InvalidArgument(_) => "invalid_argument",
            DirectoryError::Io(_) => "io_error",
        }
    }

    /// The error an `error:<code>` names.
    fn from_code(code: &str) -> DirectoryError {
        if code == "unsupported_version" {
            return DirectoryError::UnsupportedVersion;
        }
        match ServerError::from_code(code) {
            Some(e) => DirectoryError::Server(e),
            None => DirectoryError::UnknownServerError(code.to_string()),
        }
    }
}

impl fmt::Display for DirectoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirectoryError::Server(e) => write!(f, "server answered {}", e.as_str()),
            DirectoryError::UnsupportedVersion => f.write_str(
                "the server speaks another version of the lobby directory (unsupported_version)",
            ),
            DirectoryError::UnknownServerError(code) => write!(f, "server answered error:{code}"),
            DirectoryError::Timeout => write!(
                f,
                "no answer after {QUERY_TRIES} tries: the server is down or does not speak the \
                 lobby directory"
            ),
            DirectoryError::BadReply(reply) => write!(f, "unreadable reply {reply:?}"),
            DirectoryError::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
            DirectoryError::Io(e) => write!(f, "socket error: {e}"),
        }
    }
}

impl std::error::Error for DirectoryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DirectoryError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for DirectoryError {
    fn from(e: std::io::Error) -> DirectoryError {
        DirectoryError::Io(e)
    }
}

impl From<crate::Error> for DirectoryError {
    /// The socket helpers shared with the session driver report [`crate::Error::Io`].
    fn from(e: crate::Error) -> DirectoryError {
        match e {
            crate::Error::Io(e) => DirectoryError::Io(e),
            other => DirectoryError::InvalidArgument(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(datagram: &[u8]) -> &str {
        std::str::from_utf8(datagram).unwrap()
    }

    #[test]
    fn browse_requests_are_padded_to_earn_a_full_page() {
        let d = Query::game("cards").to_datagram().unwrap();
        assert_eq!(d.len(), BROWSE_REQUEST_LEN);
        assert!(text(&d).starts_with("b:1:cards::::n::xxx"), "{}", text(&d));
        let d = Query::game("com.example.cards")
            .free()
            .open()
            .version("0.9.3")
            .mode("Constructed - Free")
            .order(Order::Fullest)
            .after(Some("3.17"))
            .to_datagram()
            .unwrap();
        assert!(text(&d).starts_with("b:1:com.example.cards:fo:0.9.3:Constructed - Free:f:3.17:x"));
        let Some(Ok(LobbyRequest::Browse(b))) = parse_lobby(&d) else {
            panic!()
        };
        assert_eq!(b.page_limit(), MAX_REPLY_LEN);
    }

    #[test]
    fn quick_join_pads_after_an_empty_version() {
        let pad = |n: usize| "x".repeat(n);
        assert_eq!(
            text(&quick_join_request("cards", None).unwrap()),
            format!("q:1:cards::{}", pad(53))
        );
        assert_eq!(
            text(&quick_join_request("c", None).unwrap()),
            format!("q:1:c::{}", pad(57))
        );
        assert_eq!(
            text(&quick_join_request("cards", Some("0.9")).unwrap()),
            format!("q:1:cards:0.9:{}", pad(50))
        );
        let request = quick_join_request("c", None).unwrap();
        let Some(Ok(LobbyRequest::QuickJoin { version, .. })) = parse_lobby(&request) else {
            panic!()
        };
        assert_eq!(version, None);
    }

    #[test]
    fn fields_the_server_would_refuse_fail_before_sending() {
        for q in [
            Query::game(""),
            Query::game("ca rds"),
            Query::game(&"g".repeat(33)),
            Query::game("cards").version("0.9|1"),
            Query::game("cards").mode("a:b"),
            Query::game("cards").after(Some("3.17:x")),
            Query::game("cards").after(Some("junk")),
        ] {
            assert!(
                matches!(q.to_datagram(), Err(DirectoryError::InvalidArgument(_))),
                "{q:?}"
            );
        }
        assert!(quick_join_request("cards", Some("[1]")).is_err());
        let publish = |game: Option<&str>, description: &str| Publish {
            game: game.map(str::to_string),
            version: "0.9.3".into(),
            mode: "Constructed - Free".into(),
            description: description.into(),
        };
        assert_eq!(
            text(
                &publish(Some("cards"), "all welcome")
                    .to_datagram("Room1")
                    .unwrap()
            ),
            "a:1:Room1:cards:1:0.9.3:Constructed - Free:all welcome"
        );
        assert_eq!(
            text(&publish(None, "").to_datagram("Room1").unwrap()),
            "d:Room1:True:0.9.3:Constructed - Free"
        );
        assert!(publish(None, "x").to_datagram("Room1").is_err());
        assert!(publish(Some("cards"), &"d".repeat(65))
            .to_datagram("Room1")
            .is_err());
        assert!(publish(Some("cards"), "a;b").to_datagram("Room1").is_err());
        assert_eq!(
            text(&chat_request("Room1", "ana", "gg: wp").unwrap()),
            "m:Room1:ana:gg: wp"
        );
        for bad in ["", "bell\u{7}", "new\nline", &"x".repeat(201)] {
            assert!(chat_request("Room1", "ana", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn error_codes() {
        assert!(matches!(
            DirectoryError::from_code("non_host_player"),
            DirectoryError::Server(ServerError::NonHostPlayer)
        ));
        assert_eq!(
            DirectoryError::from_code("unsupported_version").code(),
            "unsupported_version"
        );
        assert_eq!(DirectoryError::from_code("brand_new").code(), "brand_new");
        assert_eq!(DirectoryError::Timeout.code(), "server_timeout");
    }
}
