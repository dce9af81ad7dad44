//! The lobby directory's messages (docs/lobbies.md): FusionV1's compatible `l:`, `d:` and `m:`,
//! and the version 1 extension `a:1:` (announce), `b:1:` (browse) and `q:1:` (quick join).
//!
//! Like the rest of this crate: parsing into borrowed values and writing replies, no state. The
//! field rules live here (what may appear in a listing without breaking its `:` and `|`
//! framing, and how long it may be); whether the sender may do it is the server's business.

use crate::{name, strip_newline, ErrorCode, MAX_PLAYER_LEN, MAX_SESSION_LEN};

/// No reply of the directory is longer: the payload that crosses the internet unfragmented.
pub const MAX_REPLY_LEN: usize = 1200;
/// An extension request earns a reply of at most this many times its own length.
pub const EARN_FACTOR: usize = 3;
/// Longest game id (`G`).
pub const MAX_GAME_LEN: usize = 32;
/// Longest version (`V`) or mode (`D`) text.
pub const MAX_TEXT_LEN: usize = 32;
/// Longest description (`T`).
pub const MAX_DESCRIPTION_LEN: usize = 64;
/// Longest chat text.
pub const MAX_CHAT_LEN: usize = 200;
/// Longest datagram that can hold a valid directory request without padding: an `a:1:` with
/// every field at its longest, and a newline.
pub const MAX_LOBBY_REQUEST_LEN: usize = 4
    + MAX_SESSION_LEN
    + 1
    + MAX_GAME_LEN
    + 3
    + MAX_TEXT_LEN
    + 1
    + MAX_TEXT_LEN
    + 1
    + MAX_DESCRIPTION_LEN
    + 2;
/// The extension's version, the `1` of `a:1:`.
pub const EXTENSION_VERSION: &str = "1";

/// A well-formed directory request, borrowed from its datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LobbyRequest<'a> {
    /// `l:`: the compatible listing.
    List,
    /// `d:S:<public>:V:D`: the host sets its session's compatible lobby data.
    Data {
        session: &'a str,
        public: bool,
        version: &'a str,
        mode: &'a str,
    },
    /// `m:S:P:<text>`: a member speaks in its lobby.
    Chat {
        session: &'a str,
        player: &'a str,
        text: &'a str,
    },
    /// `a:1:S:G:<public>:V:D:T`: the host puts its session in a game's directory.
    Announce(Announce<'a>),
    /// `b:1:...`: a page of a game's directory.
    Browse(Browse<'a>),
    /// `q:1:G[:V][:pad]`: one open lobby of a game with a free slot and no password.
    QuickJoin {
        game: &'a str,
        version: Option<&'a str>,
    },
}

/// What `a:1:` sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announce<'a> {
    pub session: &'a str,
    pub game: &'a str,
    pub public: bool,
    pub version: &'a str,
    pub mode: &'a str,
    pub description: &'a str,
}

/// What `b:1:` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Browse<'a> {
    pub game: &'a str,
    /// `f`: only lobbies with a free slot.
    pub free_only: bool,
    /// `o`: only lobbies without a password.
    pub open_only: bool,
    pub version: Option<&'a str>,
    pub mode: Option<&'a str>,
    pub order: Order,
    /// Where the previous page ended; `None` for the first page.
    pub cursor: Option<Cursor>,
    /// The request's length, padding included: the page earns [`EARN_FACTOR`] times it.
    pub request_len: usize,
}

impl Browse<'_> {
    /// The longest page this request earns.
    pub fn page_limit(&self) -> usize {
        (self.request_len * EARN_FACTOR).min(MAX_REPLY_LEN)
    }
}

/// The order of a listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Newest first.
    Newest,
    /// Most players first, then newest.
    Fullest,
}

/// A position in a listing: the entry a page ended with. Written `<players>.<seq>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub players: u8,
    pub seq: u64,
}

/// Why a datagram is not a valid directory request, and so what to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LobbyParseError {
    /// A compatible message broke the rules: `error:invalid_request`, as FusionV1.
    Invalid,
    /// An extension message broke the rules: `<letter>:1:error:invalid_request`.
    InvalidExtension(u8),
    /// An extension message of a version this server does not speak:
    /// `<letter>:1:error:unsupported_version` (the `1` tells the client what it does speak).
    UnsupportedVersion(u8),
}

/// Whether `datagram` starts like a directory request (`l:`, `d:`, `m:`, `a:`, `b:`, `q:`).
pub fn is_lobby_request(datagram: &[u8]) -> bool {
    matches!(
        datagram,
        [b'l' | b'd' | b'm' | b'a' | b'b' | b'q', b':', ..]
    )
}

/// Parses a directory request; `None` when `datagram` is not one ([`is_lobby_request`]).
pub fn parse_lobby(datagram: &[u8]) -> Option<Result<LobbyRequest<'_>, LobbyParseError>> {
    if !is_lobby_request(datagram) {
        return None;
    }
    let letter = datagram[0];
    let rest = &datagram[2..];
    Some(match letter {
        b'l' => Ok(LobbyRequest::List),
        b'd' => parse_data(strip_newline(rest)),
        b'm' => parse_chat(strip_newline(rest)),
        _ => parse_extension(letter, rest, datagram.len()),
    })
}

fn parse_data(rest: &[u8]) -> Result<LobbyRequest<'_>, LobbyParseError> {
    let invalid = LobbyParseError::Invalid;
    let fields = split::<4>(rest).ok_or(invalid)?;
    let session = name(fields[0], MAX_SESSION_LEN).map_err(|_| invalid)?;
    let public = text(fields[1], MAX_TEXT_LEN).ok_or(invalid)?;
    Ok(LobbyRequest::Data {
        session,
        public: public == "True",
        version: text(fields[2], MAX_TEXT_LEN).ok_or(invalid)?,
        mode: text(fields[3], MAX_TEXT_LEN).ok_or(invalid)?,
    })
}

fn parse_chat(rest: &[u8]) -> Result<LobbyRequest<'_>, LobbyParseError> {
    let invalid = LobbyParseError::Invalid;
    let mut parts = rest.splitn(3, |&b| b == b':');
    let (Some(session), Some(player), Some(said)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid);
    };
    let said = std::str::from_utf8(said).map_err(|_| invalid)?;
    if said.is_empty() || said.len() > MAX_CHAT_LEN || said.chars().any(char::is_control) {
        return Err(invalid);
    }
    Ok(LobbyRequest::Chat {
        session: name(session, MAX_SESSION_LEN).map_err(|_| invalid)?,
        player: name(player, MAX_PLAYER_LEN).map_err(|_| invalid)?,
        text: said,
    })
}

/// `a:1:`, `b:1:`, `q:1:`. The padding of `b:` and `q:` may be long, so its length, not the
/// datagram's, is what bounds the fields.
fn parse_extension(
    letter: u8,
    rest: &[u8],
    request_len: usize,
) -> Result<LobbyRequest<'_>, LobbyParseError> {
    let invalid = LobbyParseError::InvalidExtension(letter);
    let rest = strip_newline(rest);
    let (version, rest) = match rest.iter().position(|&b| b == b':') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    if version != EXTENSION_VERSION.as_bytes() {
        return Err(
            if !version.is_empty() && version.iter().all(u8::is_ascii_digit) {
                LobbyParseError::UnsupportedVersion(letter)
            } else {
                invalid
            },
        );
    }
    match letter {
        b'a' => {
            let f = split::<6>(rest).ok_or(invalid)?;
            let public = match f[2] {
                b"1" => true,
                b"0" => false,
                _ => return Err(invalid),
            };
            Ok(LobbyRequest::Announce(Announce {
                session: name(f[0], MAX_SESSION_LEN).map_err(|_| invalid)?,
                game: game(f[1]).ok_or(invalid)?,
                public,
                version: text(f[3], MAX_TEXT_LEN).ok_or(invalid)?,
                mode: text(f[4], MAX_TEXT_LEN).ok_or(invalid)?,
                description: text(f[5], MAX_DESCRIPTION_LEN).ok_or(invalid)?,
            }))
        }
        b'b' => {
            // G, flags, V, D, order, cursor, and an optional pad.
            let mut f = rest.splitn(7, |&b| b == b':');
            let mut next = || f.next().ok_or(invalid);
            let (g, flags, v, d, order, cursor) =
                (next()?, next()?, next()?, next()?, next()?, next()?);
            let (mut free_only, mut open_only) = (false, false);
            for &flag in flags {
                match flag {
                    b'f' if !free_only => free_only = true,
                    b'o' if !open_only => open_only = true,
                    _ => return Err(invalid),
                }
            }
            Ok(LobbyRequest::Browse(Browse {
                game: game(g).ok_or(invalid)?,
                free_only,
                open_only,
                version: optional_text(v).ok_or(invalid)?,
                mode: optional_text(d).ok_or(invalid)?,
                order: match order {
                    b"n" => Order::Newest,
                    b"f" => Order::Fullest,
                    _ => return Err(invalid),
                },
                cursor: match cursor {
                    [] => None,
                    c => Some(parse_cursor(c).ok_or(invalid)?),
                },
                request_len,
            }))
        }
        b'q' => {
            // G, and an optional V, then an optional pad.
            let mut f = rest.splitn(3, |&b| b == b':');
            let g = game(f.next().ok_or(invalid)?).ok_or(invalid)?;
            let version = match f.next() {
                None => None,
                Some(v) => optional_text(v).ok_or(invalid)?,
            };
            Ok(LobbyRequest::QuickJoin { game: g, version })
        }
        _ => Err(invalid),
    }
}

/// Exactly `N` `:`-separated fields.
fn split<const N: usize>(rest: &[u8]) -> Option<[&[u8]; N]> {
    let mut fields: [&[u8]; N] = [&[]; N];
    let mut count = 0;
    for field in rest.split(|&b| b == b':') {
        *fields.get_mut(count)? = field;
        count += 1;
    }
    (count == N).then_some(fields)
}

/// Text that a listing can carry: at most `max` bytes of UTF-8, no control characters, none of
/// `: ; | [ ] \` (FusionV1's rule: they would break the `:` and `|` framing).
fn text(field: &[u8], max: usize) -> Option<&str> {
    let text = std::str::from_utf8(field).ok()?;
    let framing = |c: char| matches!(c, ':' | ';' | '|' | '[' | ']' | '\\');
    (text.len() <= max && !text.chars().any(|c| c.is_control() || framing(c))).then_some(text)
}

/// A version or mode condition: empty means any.
fn optional_text(field: &[u8]) -> Option<Option<&str>> {
    match field {
        [] => Some(None),
        f => text(f, MAX_TEXT_LEN).map(Some),
    }
}

/// A game id: 1 to [`MAX_GAME_LEN`] ASCII letters, digits, `.`, `_` or `-`.
fn game(field: &[u8]) -> Option<&str> {
    let ok = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if (1..=MAX_GAME_LEN).contains(&field.len()) && field.iter().all(ok) {
        std::str::from_utf8(field).ok()
    } else {
        None
    }
}

fn parse_cursor(field: &[u8]) -> Option<Cursor> {
    let text = std::str::from_utf8(field).ok()?;
    let (players, seq) = text.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(players) || !digits(seq) {
        return None;
    }
    Some(Cursor {
        players: players.parse().ok()?,
        seq: seq.parse().ok()?,
    })
}

/// Where a lobby listed by another server of a fleet is joined: that server's public host (a
/// DNS name or an IPv4 address, never a player's), its port and its region label. The extension
/// entries and the quick join answer carry it after their own fields; a lobby of the server
/// that answers has none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerView<'a> {
    pub host: &'a str,
    pub port: u16,
    pub region: &'a str,
}

/// Longest public host of a fleet server in a listing.
pub const MAX_SERVER_HOST_LEN: usize = 64;
/// Longest region label.
pub const MAX_REGION_LEN: usize = 16;

/// Whether `host` may name a fleet server in a listing: 1 to [`MAX_SERVER_HOST_LEN`] ASCII
/// letters, digits, `.` or `-` (a DNS name or an IPv4 address; no `:`, which frames fields).
pub fn is_server_host(host: &str) -> bool {
    (1..=MAX_SERVER_HOST_LEN).contains(&host.len())
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
}

/// Whether `region` may be a region label: 1 to [`MAX_REGION_LEN`] ASCII letters, digits, `.`,
/// `_` or `-`.
pub fn is_region(region: &str) -> bool {
    (1..=MAX_REGION_LEN).contains(&region.len())
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A listed lobby as the replies show it. Never a player's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryView<'a> {
    pub session: &'a str,
    pub host: &'a str,
    pub players: u8,
    pub max_players: u8,
    pub password: bool,
    pub version: &'a str,
    pub mode: &'a str,
    pub description: &'a str,
    pub age_secs: u64,
    /// The fleet server that holds it, when it is not the one answering.
    pub server: Option<ServerView<'a>>,
}

/// Appends the compatible entry `<host>|<session>|<n> / <max>|<version>|<mode>`.
pub fn write_compat_entry(buf: &mut Vec<u8>, e: &EntryView<'_>) {
    use std::io::Write;
    let _ = write!(
        buf,
        "{}|{}|{} / {}|{}|{}",
        e.host, e.session, e.players, e.max_players, e.version, e.mode
    );
}

/// Appends the extension entry
/// `<session>|<host>|<n>|<max>|<password>|<version>|<mode>|<description>|<age>`, followed by
/// `|<server host>|<port>|<region>` for a lobby of another fleet server.
pub fn write_browse_entry(buf: &mut Vec<u8>, e: &EntryView<'_>) {
    use std::io::Write;
    let _ = write!(
        buf,
        "{}|{}|{}|{}|{}|{}|{}|{}|{}",
        e.session,
        e.host,
        e.players,
        e.max_players,
        u8::from(e.password),
        e.version,
        e.mode,
        e.description,
        e.age_secs
    );
    if let Some(at) = &e.server {
        let _ = write!(buf, "|{}|{}|{}", at.host, at.port, at.region);
    }
}

/// Writes the head of a browse page, `b:1:<total>:<next>`; the entries follow, each after `:`.
pub fn write_browse_head(buf: &mut Vec<u8>, total: usize, next: Option<Cursor>) {
    use std::io::Write;
    let _ = write!(buf, "b:1:{total}:");
    if let Some(c) = next {
        let _ = write!(buf, "{}.{}", c.players, c.seq);
    }
}

/// Writes the quick join answer: `q:1:<session>:<host>:<n>:<max>`, followed by
/// `:<server host>:<port>:<region>` for a lobby of another fleet server, or `q:1:` for none.
pub fn write_quick_join(buf: &mut Vec<u8>, found: Option<&EntryView<'_>>) {
    use std::io::Write;
    buf.extend_from_slice(b"q:1:");
    if let Some(e) = found {
        let _ = write!(
            buf,
            "{}:{}:{}:{}",
            e.session, e.host, e.players, e.max_players
        );
        if let Some(at) = &e.server {
            let _ = write!(buf, ":{}:{}:{}", at.host, at.port, at.region);
        }
    }
}

/// Writes the announce answer: `a:1:ok`, or `a:1:error:<code>`.
pub fn write_announce_result(buf: &mut Vec<u8>, result: Result<(), ErrorCode>) {
    buf.extend_from_slice(b"a:1:");
    match result {
        Ok(()) => buf.extend_from_slice(b"ok"),
        Err(code) => buf.extend_from_slice(code.as_str().as_bytes()),
    }
}

/// Writes the answer to an extension request that broke the rules (`letter` its command).
pub fn write_extension_error(buf: &mut Vec<u8>, error: LobbyParseError) {
    let (letter, code) = match error {
        LobbyParseError::Invalid => {
            buf.extend_from_slice(ErrorCode::InvalidRequest.as_str().as_bytes());
            return;
        }
        LobbyParseError::InvalidExtension(l) => (l, "invalid_request"),
        LobbyParseError::UnsupportedVersion(l) => (l, "unsupported_version"),
    };
    buf.push(letter);
    buf.extend_from_slice(b":1:error:");
    buf.extend_from_slice(code.as_bytes());
}

/// Writes what every member gets for a chat line: `m:<player>:<text>`.
pub fn write_chat(buf: &mut Vec<u8>, player: &str, said: &str) {
    buf.extend_from_slice(b"m:");
    buf.extend_from_slice(player.as_bytes());
    buf.push(b':');
    buf.extend_from_slice(said.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LobbyRequest<'_>, LobbyParseError> {
        parse_lobby(text.as_bytes()).expect("a directory request")
    }

    #[test]
    fn fusion_messages_parse_as_the_game_sends_them() {
        assert_eq!(parse("l:"), Ok(LobbyRequest::List));
        assert_eq!(parse("l:anything at all"), Ok(LobbyRequest::List));
        assert_eq!(
            parse("d:Room1:True:0.9.3:Constructed - Free"),
            Ok(LobbyRequest::Data {
                session: "Room1",
                public: true,
                version: "0.9.3",
                mode: "Constructed - Free"
            })
        );
        // Anything but `True` unlists.
        assert!(matches!(
            parse("d:Room1:true:1:x\n"),
            Ok(LobbyRequest::Data { public: false, .. })
        ));
        assert_eq!(
            parse("m:Room1:Ana:hello: all of you"),
            Ok(LobbyRequest::Chat {
                session: "Room1",
                player: "Ana",
                text: "hello: all of you"
            })
        );
        assert_eq!(parse_lobby(b"p:Room1:Ana"), None);
        assert_eq!(parse_lobby(b"lx:"), None);
    }

    #[test]
    fn fields_that_would_break_the_framing_are_refused() {
        for bad in [
            "d:Room1:True:0.9|3:mode",
            "d:Room1:True:0.9:mo;de",
            "d:Room1:True:0.9:[mode]",
            "d:Room1:True:0.9:mo\\de",
            "d:Room1:True:0.9",
            "d:Room1:True:0.9:mode:extra",
            "d:Room-1:True:0.9:mode",
            "d:Room1:True:0.9:\u{7}",
            "m:Room1:Ana:",
            "m:Room1:Ana",
            "m:Room1:Ana:bell\u{7}",
        ] {
            assert_eq!(parse(bad), Err(LobbyParseError::Invalid), "{bad:?}");
        }
        let long = format!("d:Room1:True:{}:mode", "v".repeat(MAX_TEXT_LEN + 1));
        assert_eq!(parse(&long), Err(LobbyParseError::Invalid));
        let chat = format!("m:Room1:Ana:{}", "x".repeat(MAX_CHAT_LEN + 1));
        assert_eq!(parse(&chat), Err(LobbyParseError::Invalid));
        assert_eq!(
            parse_lobby(b"d:Room1:True:\xff:x"),
            Some(Err(LobbyParseError::Invalid))
        );
    }

    #[test]
    fn extension_messages_parse_with_their_version() {
        assert_eq!(
            parse("a:1:Room1:com.example.cards:1:0.9.3:Draft:Friendly, all welcome"),
            Ok(LobbyRequest::Announce(Announce {
                session: "Room1",
                game: "com.example.cards",
                public: true,
                version: "0.9.3",
                mode: "Draft",
                description: "Friendly, all welcome",
            }))
        );
        let padded = format!("b:1:cards:fo:0.9.3::f:3.17:{}", "x".repeat(400));
        let Ok(LobbyRequest::Browse(b)) = parse(&padded) else {
            panic!("not a browse")
        };
        assert_eq!(
            (b.game, b.free_only, b.open_only, b.version, b.mode, b.order),
            ("cards", true, true, Some("0.9.3"), None, Order::Fullest)
        );
        assert_eq!(
            b.cursor,
            Some(Cursor {
                players: 3,
                seq: 17
            })
        );
        assert_eq!(b.page_limit(), MAX_REPLY_LEN);
        let Ok(LobbyRequest::Browse(small)) = parse("b:1:cards::::n:") else {
            panic!("not a browse")
        };
        assert_eq!(small.page_limit(), 15 * EARN_FACTOR);
        assert_eq!(
            parse("q:1:cards"),
            Ok(LobbyRequest::QuickJoin {
                game: "cards",
                version: None
            })
        );
        assert_eq!(
            parse("q:1:cards:0.9:xxxxxxxx"),
            Ok(LobbyRequest::QuickJoin {
                game: "cards",
                version: Some("0.9")
            })
        );
    }

    #[test]
    fn extension_errors_name_their_command() {
        assert_eq!(
            parse("b:2:cards"),
            Err(LobbyParseError::UnsupportedVersion(b'b'))
        );
        for bad in [
            "b:1:cards:x:::n:",
            "b:1:cards:ff:::n:",
            "b:1:cards::::z:",
            "b:1:cards::::n:7",
            "b:1:ca rds::::n:",
            "b:1:cards::::n",
            "a:1:Room1:cards:yes:v:m:d",
            "a:1:Room1:cards:1:v:m",
            "q:1:",
            "a:x:Room1",
        ] {
            let letter = bad.as_bytes()[0];
            assert_eq!(
                parse(bad),
                Err(LobbyParseError::InvalidExtension(letter)),
                "{bad:?}"
            );
        }
        let mut buf = Vec::new();
        write_extension_error(&mut buf, LobbyParseError::UnsupportedVersion(b'b'));
        assert_eq!(buf, b"b:1:error:unsupported_version");
    }

    #[test]
    fn replies_are_written_as_documented() {
        let e = EntryView {
            session: "Room1",
            host: "Ana",
            players: 2,
            max_players: 4,
            password: true,
            version: "0.9.3",
            mode: "Constructed - Free",
            description: "hi",
            age_secs: 12,
            server: None,
        };
        let mut buf = Vec::new();
        write_compat_entry(&mut buf, &e);
        assert_eq!(buf, b"Ana|Room1|2 / 4|0.9.3|Constructed - Free");
        buf.clear();
        write_browse_head(&mut buf, 7, Some(Cursor { players: 2, seq: 9 }));
        buf.push(b':');
        write_browse_entry(&mut buf, &e);
        assert_eq!(
            buf,
            b"b:1:7:2.9:Room1|Ana|2|4|1|0.9.3|Constructed - Free|hi|12"
        );
        buf.clear();
        write_quick_join(&mut buf, Some(&e));
        assert_eq!(buf, b"q:1:Room1:Ana:2:4");
        buf.clear();
        write_quick_join(&mut buf, None);
        assert_eq!(buf, b"q:1:");
        buf.clear();
        write_announce_result(&mut buf, Err(ErrorCode::NonHostPlayer));
        assert_eq!(buf, b"a:1:error:non_host_player");
        buf.clear();
        write_chat(&mut buf, "Ana", "gg: wp");
        assert_eq!(buf, b"m:Ana:gg: wp");
    }

    #[test]
    fn a_lobby_of_another_server_names_it_after_its_own_fields() {
        let e = EntryView {
            session: "Room1",
            host: "Ana",
            players: 2,
            max_players: 4,
            password: false,
            version: "1",
            mode: "",
            description: "",
            age_secs: 3,
            server: Some(ServerView {
                host: "eu.example.com",
                port: 7777,
                region: "eu",
            }),
        };
        let mut buf = Vec::new();
        write_compat_entry(&mut buf, &e);
        assert_eq!(buf, b"Ana|Room1|2 / 4|1|", "FusionV1's entry is unchanged");
        buf.clear();
        write_browse_entry(&mut buf, &e);
        assert_eq!(buf, b"Room1|Ana|2|4|0|1|||3|eu.example.com|7777|eu");
        buf.clear();
        write_quick_join(&mut buf, Some(&e));
        assert_eq!(buf, b"q:1:Room1:Ana:2:4:eu.example.com:7777:eu");
        assert!(is_server_host("203.0.113.7") && !is_server_host("::1"));
        assert!(!is_server_host("") && !is_server_host(&"a".repeat(65)));
        assert!(is_region("eu-west_1") && !is_region("eu:1") && !is_region(""));
    }
}
