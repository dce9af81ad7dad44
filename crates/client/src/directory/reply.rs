//! The directory's replies, read into owned values: a page of `b:1:`, the answer of `q:1:`,
//! FusionV1's `l:` list, `a:1:`'s verdict and a chat line `m:<player>:<text>`.

use std::time::Duration;

use super::DirectoryError;

/// A listed lobby. Never an address: join it by its session name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The session name, to join with `c:`.
    pub session: String,
    /// The host's player name.
    pub host: String,
    /// Players in the lobby now.
    pub players: u8,
    /// The lobby's capacity.
    pub max_players: u8,
    /// Whether joining needs a password; `None` in the compatible listing, which does not say.
    pub password: Option<bool>,
    /// Version text.
    pub version: String,
    /// Mode text.
    pub mode: String,
    /// Description (empty in the compatible listing).
    pub description: String,
    /// How long the lobby has existed (whole seconds); `None` in the compatible listing.
    pub age: Option<Duration>,
    /// The fleet server to join it at, when it is not the server that answered.
    pub server: Option<FleetServer>,
}

/// Another server of a fleet sharing one directory: where a lobby it lists is joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetServer {
    /// Its public host (a DNS name or an IPv4 address).
    pub host: String,
    pub port: u16,
    /// Its region label.
    pub region: String,
}

impl FleetServer {
    /// `host:port`, to resolve and send to.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn parse(host: &str, port: &str, region: &str) -> Option<Self> {
        let ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        };
        (ok(host) && ok(region)).then_some(())?;
        Some(Self {
            host: host.to_string(),
            port: number(port)?,
            region: region.to_string(),
        })
    }
}

impl Entry {
    /// Whether a slot is free.
    pub fn is_free(&self) -> bool {
        self.players < self.max_players
    }
}

/// A page of a game's directory (`b:1:`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// How many lobbies match the filters now, on every page together.
    pub total: usize,
    /// The cursor of the next page ([`super::Query::after`]); `None` on the last page.
    pub next: Option<String>,
    /// The page's lobbies, in the order asked for.
    pub entries: Vec<Entry>,
}

/// The answer of a quick join (`q:1:`): a lobby with a free slot and no password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The session to join.
    pub session: String,
    /// Its host.
    pub host: String,
    /// Players in it when the server answered.
    pub players: u8,
    /// Its capacity.
    pub max_players: u8,
    /// The fleet server to join it at, when it is not the server that answered.
    pub server: Option<FleetServer>,
}

/// A reply to a directory request, by what it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `b:1:...`
    Page(Page),
    /// `q:1:...`: `None` when no lobby fits.
    QuickJoin(Option<Found>),
    /// `l:...`
    Compat(Vec<Entry>),
    /// `a:1:ok`
    Announced,
}

/// Reads `datagram` as the reply to a request whose command letter is `letter` (`b`, `q`, `l`
/// or `a`). `None`: it is not such a reply (another reply, or garbage), to be ignored.
/// `Some(Err)`: the server refused the request, or its reply breaks the format.
pub fn parse_answer(letter: u8, datagram: &[u8]) -> Option<Result<Answer, DirectoryError>> {
    let text = std::str::from_utf8(datagram).ok()?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    let rest = match letter {
        b'l' => return Some(Ok(Answer::Compat(parse_compat(text.strip_prefix("l:")?)))),
        b'b' => text.strip_prefix("b:1:")?,
        b'q' => text.strip_prefix("q:1:")?,
        b'a' => text.strip_prefix("a:1:")?,
        _ => return None,
    };
    if let Some(code) = rest.strip_prefix("error:") {
        return Some(Err(DirectoryError::from_code(code)));
    }
    let bad = || DirectoryError::BadReply(text.to_string());
    Some(
        match letter {
            b'b' => parse_page(rest).map(Answer::Page),
            b'q' => parse_found(rest).map(Answer::QuickJoin),
            _ => (rest == "ok").then_some(Answer::Announced),
        }
        .ok_or_else(bad),
    )
}

/// `<total>:<next>:<entry>:<entry>...`
fn parse_page(rest: &str) -> Option<Page> {
    let mut fields = rest.split(':');
    let total = number(fields.next()?)?;
    let next = fields.next()?;
    let entries = fields.map(parse_entry).collect::<Option<Vec<_>>>()?;
    Some(Page {
        total,
        next: (!next.is_empty()).then(|| next.to_string()),
        entries,
    })
}

/// `<session>|<host>|<n>|<max>|<password>|<version>|<mode>|<description>|<age>`, then
/// `|<server host>|<port>|<region>` for a lobby of another fleet server.
fn parse_entry(entry: &str) -> Option<Entry> {
    let f: Vec<&str> = entry.split('|').collect();
    let (f, server) = match f.len() {
        9 => (&f[..], None),
        12 => (&f[..9], Some(FleetServer::parse(f[9], f[10], f[11])?)),
        _ => return None,
    };
    let [session, host, players, max, password, version, mode, description, age] = f[..] else {
        return None;
    };
    Some(Entry {
        session: name(session)?,
        host: name(host)?,
        players: number(players)?,
        max_players: number(max)?,
        password: Some(match password {
            "1" => true,
            "0" => false,
            _ => return None,
        }),
        version: version.to_string(),
        mode: mode.to_string(),
        description: description.to_string(),
        age: Some(Duration::from_secs(number(age)?)),
        server,
    })
}

/// `<session>:<host>:<n>:<max>[:<server host>:<port>:<region>]`, or nothing.
fn parse_found(rest: &str) -> Option<Option<Found>> {
    if rest.is_empty() {
        return Some(None);
    }
    let mut f = rest.split(':');
    let found = Found {
        session: name(f.next()?)?,
        host: name(f.next()?)?,
        players: number(f.next()?)?,
        max_players: number(f.next()?)?,
        server: None,
    };
    match (f.next(), f.next(), f.next(), f.next()) {
        (None, ..) => Some(Some(found)),
        (Some(host), Some(port), Some(region), None) => Some(Some(Found {
            server: Some(FleetServer::parse(host, port, region)?),
            ..found
        })),
        _ => None,
    }
}

/// FusionV1's entries `<host>|<session>|<n> / <max>|<version>|<mode>`, joined by `:`. Read as
/// leniently as FusionV1's own client does: empty fields and entries it cannot read are
/// skipped, so one odd lobby of a foreign server does not hide the others.
fn parse_compat(rest: &str) -> Vec<Entry> {
    rest.split(':')
        .filter_map(|entry| {
            let f: Vec<&str> = entry.split('|').collect();
            let [host, session, count, version, mode] = f[..] else {
                return None;
            };
            let (players, max) = count.split_once(" / ")?;
            Some(Entry {
                session: name(session)?,
                host: name(host)?,
                players: number(players)?,
                max_players: number(max)?,
                password: None,
                version: version.to_string(),
                mode: mode.to_string(),
                description: String::new(),
                age: None,
                server: None,
            })
        })
        .collect()
}

/// `m:<player>:<text>`: a chat line in our lobby (the text may hold `:`).
pub fn parse_chat(datagram: &[u8]) -> Option<(&str, &str)> {
    let text = std::str::from_utf8(datagram).ok()?;
    let (player, said) = text.strip_prefix("m:")?.split_once(':')?;
    Some((name(player).map(|_| player)?, said))
}

fn name(field: &str) -> Option<String> {
    (!field.is_empty() && field.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| field.to_string())
}

fn number<T: std::str::FromStr>(field: &str) -> Option<T> {
    field
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| field.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ServerError;
    use rabid_wire::lobby::{
        write_announce_result, write_browse_entry, write_browse_head, write_compat_entry,
        write_extension_error, write_quick_join, Cursor, EntryView, LobbyParseError,
    };

    fn view(session: &'static str, password: bool) -> EntryView<'static> {
        EntryView {
            session,
            host: "Ana",
            players: 2,
            max_players: 4,
            password,
            version: "0.9.3",
            mode: "Constructed - Free",
            description: "all welcome, gg",
            age_secs: 12,
            server: None,
        }
    }

    fn answer(letter: u8, datagram: &[u8]) -> Result<Answer, DirectoryError> {
        parse_answer(letter, datagram).expect("a reply to this request")
    }

    #[test]
    fn pages_as_the_server_writes_them() {
        let mut reply = Vec::new();
        write_browse_head(&mut reply, 7, Some(Cursor { players: 2, seq: 9 }));
        for v in [view("Room1", true), view("Room2", false)] {
            reply.push(b':');
            write_browse_entry(&mut reply, &v);
        }
        let Ok(Answer::Page(page)) = answer(b'b', &reply) else {
            panic!()
        };
        assert_eq!((page.total, page.next.as_deref()), (7, Some("2.9")));
        assert_eq!(page.entries.len(), 2);
        let e = &page.entries[0];
        assert_eq!(
            (
                e.session.as_str(),
                e.host.as_str(),
                e.players,
                e.max_players
            ),
            ("Room1", "Ana", 2, 4)
        );
        assert_eq!(e.password, Some(true));
        assert_eq!(page.entries[1].password, Some(false));
        assert_eq!(
            (e.version.as_str(), e.mode.as_str(), e.description.as_str()),
            ("0.9.3", "Constructed - Free", "all welcome, gg")
        );
        assert_eq!(e.age, Some(Duration::from_secs(12)));

        let mut last = Vec::new();
        write_browse_head(&mut last, 0, None);
        assert_eq!(answer(b'b', &last).unwrap(), Answer::Page(Page::default()));
        // A page too small for one entry: no entries, a cursor (the one asked for).
        assert!(matches!(
            answer(b'b', b"b:1:5:2.9"),
            Ok(Answer::Page(Page { total: 5, next: Some(_), entries })) if entries.is_empty()
        ));
    }

    #[test]
    fn quick_join_announce_and_compat_list() {
        let mut reply = Vec::new();
        write_quick_join(&mut reply, Some(&view("Room1", false)));
        assert_eq!(
            answer(b'q', &reply).unwrap(),
            Answer::QuickJoin(Some(Found {
                session: "Room1".into(),
                host: "Ana".into(),
                players: 2,
                max_players: 4,
                server: None,
            }))
        );
        reply.clear();
        write_quick_join(&mut reply, None);
        assert_eq!(answer(b'q', &reply).unwrap(), Answer::QuickJoin(None));
        reply.clear();
        write_announce_result(&mut reply, Ok(()));
        assert_eq!(answer(b'a', &reply).unwrap(), Answer::Announced);

        let mut list = b"l:".to_vec();
        write_compat_entry(&mut list, &view("Room1", false));
        list.extend_from_slice(b":Ben|Room7|1 / 2||:x:Bad|Entry");
        let Ok(Answer::Compat(entries)) = answer(b'l', &list) else {
            panic!()
        };
        assert_eq!(entries.len(), 2, "{entries:?}");
        assert_eq!(
            (entries[0].host.as_str(), entries[0].session.as_str()),
            ("Ana", "Room1")
        );
        assert_eq!((entries[1].players, entries[1].max_players), (1, 2));
        assert_eq!((entries[1].password, entries[1].age), (None, None));
        assert_eq!(answer(b'l', b"l:").unwrap(), Answer::Compat(vec![]));
    }

    #[test]
    fn refusals_are_typed() {
        for (error, letter) in [
            (LobbyParseError::UnsupportedVersion(b'b'), b'b'),
            (LobbyParseError::InvalidExtension(b'q'), b'q'),
        ] {
            let mut reply = Vec::new();
            write_extension_error(&mut reply, error);
            let got = answer(letter, &reply);
            match error {
                LobbyParseError::UnsupportedVersion(_) => {
                    assert!(matches!(got, Err(DirectoryError::UnsupportedVersion)))
                }
                _ => assert!(matches!(
                    got,
                    Err(DirectoryError::Server(ServerError::InvalidRequest))
                )),
            }
        }
        let mut reply = Vec::new();
        write_announce_result(&mut reply, Err(ServerError::NonHostPlayer));
        assert!(matches!(
            answer(b'a', &reply),
            Err(DirectoryError::Server(ServerError::NonHostPlayer))
        ));
        assert!(matches!(
            answer(b'a', b"a:1:error:new_code"),
            Err(DirectoryError::UnknownServerError(c)) if c == "new_code"
        ));
    }

    #[test]
    fn other_replies_are_not_answers_and_broken_ones_are_bad() {
        for (letter, other) in [
            (b'b', &b"q:1:"[..]),
            (b'q', b"b:1:0:"),
            (b'a', b"i:Ana"),
            (b'b', b"error:invalid_request"),
            (b'l', b"m:Ana:l: hi"),
            (b'b', b"b:2:0:"),
            (b'b', b"\xff"),
        ] {
            assert!(parse_answer(letter, other).is_none(), "{other:?}");
        }
        for (letter, broken) in [
            (b'b', &b"b:1:x:"[..]),
            (b'b', b"b:1:1::Room1|Ana|2|4|1|v|m|d"),
            (b'b', b"b:1:1::Room1|Ana|2|4|yes|v|m|d|3"),
            (b'b', b"b:1:1"),
            (b'q', b"q:1:Room1:Ana:2"),
            (b'q', b"q:1:Room1:Ana:2:4:5"),
            (b'a', b"a:1:fine"),
        ] {
            assert!(
                matches!(
                    parse_answer(letter, broken),
                    Some(Err(DirectoryError::BadReply(_)))
                ),
                "{broken:?}"
            );
        }
    }

    #[test]
    fn chat_lines() {
        assert_eq!(parse_chat(b"m:Ana:gg: wp"), Some(("Ana", "gg: wp")));
        assert_eq!(parse_chat(b"m:Ana:"), Some(("Ana", "")));
        assert_eq!(parse_chat(b"m::hi"), None);
        assert_eq!(parse_chat(b"m:Ana"), None);
        assert_eq!(parse_chat(b"i:Ana"), None);
    }

    #[test]
    fn a_lobby_of_another_fleet_server_says_where_to_join_it() {
        let mut reply = Vec::new();
        write_browse_head(&mut reply, 1, None);
        reply.push(b':');
        let mut e = view("Room1", false);
        e.server = Some(rabid_wire::lobby::ServerView {
            host: "us.example.com",
            port: 7777,
            region: "us",
        });
        write_browse_entry(&mut reply, &e);
        let Ok(Answer::Page(page)) = answer(b'b', &reply) else {
            panic!("a page")
        };
        let server = page.entries[0].server.clone().expect("its server");
        assert_eq!(server.address(), "us.example.com:7777");
        assert_eq!(server.region, "us");
        reply.clear();
        write_quick_join(&mut reply, Some(&e));
        let Ok(Answer::QuickJoin(Some(found))) = answer(b'q', &reply) else {
            panic!("a lobby")
        };
        assert_eq!(found.server, Some(server));
        assert!(answer(b'q', b"q:1:Room1:Ana:2:4:us.example.com:7777").is_err());
    }
}
