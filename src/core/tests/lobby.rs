//! The lobby directory through the front door, on a made-up clock: FusionV1's `l:`, `d:`, `m:`
//! byte for byte and made safe, the extension (`a:1:`, `b:1:`, `q:1:`), and the listing kept in
//! step with joins, leaves, timeouts, host migration and starts.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{addr, drain, name};
use crate::core::testing::Driver;
use crate::core::{CoreConfig, Shard};

/// A stranger's address: in no session.
fn stranger() -> SocketAddr {
    "203.0.113.99:5000".parse().unwrap()
}

struct Lobby {
    d: Driver,
}

impl Lobby {
    fn new() -> Self {
        let start = Instant::now();
        Self {
            d: Driver::new(Shard::new(&CoreConfig::default(), start), start),
        }
    }

    /// `from` sends `text` through the front door; what the server sent, in order.
    fn send_from(&mut self, from: SocketAddr, text: &str) -> Vec<(SocketAddr, String)> {
        self.d.receive(from, None, text.as_bytes());
        drain(&mut self.d)
            .into_iter()
            .map(|(_, to, p)| (to, p))
            .collect()
    }

    fn send(&mut self, n: u16, text: &str) -> Vec<(SocketAddr, String)> {
        self.send_from(addr(n), text)
    }

    /// The one reply to `from`'s `text`, or `None` when there is none.
    fn reply_from(&mut self, from: SocketAddr, text: &str) -> Option<String> {
        let sent = self.send_from(from, text);
        assert!(sent.len() <= 1, "{text}: {sent:?}");
        sent.into_iter().next().map(|(to, p)| {
            assert_eq!(to, from, "{text}");
            p
        })
    }

    fn reply(&mut self, n: u16, text: &str) -> Option<String> {
        self.reply_from(addr(n), text)
    }

    /// The compatible listing, as a stranger sees it.
    fn list(&mut self) -> String {
        self.reply_from(stranger(), "l:").unwrap()
    }

    /// Session `session` hosted by player `first` (max `max`), joined by the next players up
    /// to `players` in all.
    fn session(&mut self, session: &str, first: u16, players: u16, max: u8) {
        let host = name(first);
        assert_eq!(
            self.reply(first, &format!("h:{session}:{host}:{max}")),
            Some(format!("i:{host}"))
        );
        for n in first + 1..first + players {
            self.send(n, &format!("c:{session}:{}", name(n)));
        }
    }

    fn advance(&mut self, ms: u64) {
        self.d.advance(Duration::from_millis(ms), |d| {
            drain(d);
        });
    }
}

// ---------------------------------------------------------------- compatible: d: and l:

#[test]
fn a_session_is_private_until_its_host_makes_it_public_with_d() {
    let mut l = Lobby::new();
    assert_eq!(l.list(), "l:");
    l.session("Room1", 1, 2, 4);
    assert_eq!(l.list(), "l:");
    // No reply on success, as FusionV1.
    assert_eq!(l.reply(1, "d:Room1:True:0.9.3:Constructed - Free"), None);
    assert_eq!(l.list(), "l:A|Room1|2 / 4|0.9.3|Constructed - Free");
    // Anything but True unlists.
    assert_eq!(l.reply(1, "d:Room1:False:0.9.3:x"), None);
    assert_eq!(l.list(), "l:");
}

#[test]
fn d_is_refused_as_fusion_refuses_it() {
    let mut l = Lobby::new();
    l.session("Room1", 1, 2, 4);
    assert_eq!(
        l.reply(1, "d:Room2:True:1:x").as_deref(),
        Some("error:session_non_existent")
    );
    assert_eq!(
        l.reply(2, "d:Room1:True:1:x").as_deref(),
        Some("error:non_host_player")
    );
    // The host's IP from another port is not the host.
    let other_port = SocketAddr::new(addr(1).ip(), 1);
    assert_eq!(
        l.reply_from(other_port, "d:Room1:True:1:x").as_deref(),
        Some("error:non_host_player")
    );
    assert_eq!(
        l.reply(1, "d:Room1:True:1|2:x").as_deref(),
        Some("error:invalid_request")
    );
    assert_eq!(l.list(), "l:");
}

#[test]
fn the_listing_follows_joins_leaves_host_migration_timeouts_and_the_start() {
    let mut l = Lobby::new();
    l.session("Room1", 1, 1, 3);
    l.reply(1, "d:Room1:True:1:Duel");
    assert_eq!(l.list(), "l:A|Room1|1 / 3|1|Duel");
    l.send(2, "c:Room1:B");
    l.send(3, "c:Room1:C");
    assert_eq!(l.list(), "l:A|Room1|3 / 3|1|Duel");
    // The host leaves: B hosts the listed lobby now.
    l.send(1, "x:Room1:A");
    assert_eq!(l.list(), "l:B|Room1|2 / 3|1|Duel");
    // C stops pinging and times out; B keeps pinging.
    for _ in 0..12 {
        l.send(2, "p:Room1:B");
        l.advance(500);
    }
    assert_eq!(l.list(), "l:B|Room1|1 / 3|1|Duel");
    l.send(4, "c:Room1:D");
    l.send(2, "s:Room1:B");
    assert_eq!(l.list(), "l:", "a started session is no lobby");
}

#[test]
fn an_emptied_or_expired_lobby_leaves_the_list() {
    let mut l = Lobby::new();
    l.session("Gone", 1, 1, 2);
    l.reply(1, "d:Gone:True:1:x");
    l.session("Old", 2, 1, 2);
    l.reply(2, "d:Old:True:1:x");
    l.send(1, "x:Gone:A");
    assert_eq!(l.list(), "l:B|Old|1 / 2|1|x");
    // Nobody pings Old: its host times out and it is deleted.
    l.advance(6_000);
    assert_eq!(l.list(), "l:");
    assert!(l.d.shard.directory().is_empty());
}

// ---------------------------------------------------------------- compatible: m:

#[test]
fn chat_goes_to_every_member_then_the_player_list_as_fusion_sends_it() {
    let mut l = Lobby::new();
    l.session("Room1", 1, 3, 4);
    let sent = l.send(2, "m:Room1:B:gg: well played");
    let expected: Vec<(SocketAddr, String)> = (1..=3)
        .map(|n| (addr(n), "m:B:gg: well played".to_string()))
        .chain((1..=3).map(|n| (addr(n), "i:A:B:C".to_string())))
        .collect();
    assert_eq!(sent, expected);
}

#[test]
fn chat_only_from_the_members_own_address_speaking_as_itself() {
    let mut l = Lobby::new();
    l.session("Room1", 1, 2, 4);
    // B speaking as A, and a stranger speaking as B: refused, nobody hears it.
    assert_eq!(
        l.reply(2, "m:Room1:A:I am the host").as_deref(),
        Some("error:non_existent_player")
    );
    assert_eq!(
        l.reply_from(stranger(), "m:Room1:B:hi").as_deref(),
        Some("error:non_existent_player")
    );
    assert_eq!(
        l.reply(1, "m:Nowhere:A:hi").as_deref(),
        Some("error:session_non_existent")
    );
    assert_eq!(
        l.reply(1, "m:Room1:A:").as_deref(),
        Some("error:invalid_request")
    );
}

#[test]
fn chat_is_rate_limited_per_player() {
    let mut l = Lobby::new();
    l.session("Room1", 1, 2, 4);
    let heard = |l: &mut Lobby, n: u16| l.send(n, "m:Room1:A:spam").len();
    // A burst of 5 lines goes out (each to 2 members, then their `i:`), the 6th is dropped.
    for _ in 0..5 {
        assert_eq!(heard(&mut l, 1), 4);
    }
    assert_eq!(heard(&mut l, 1), 0);
    // B has a bucket of its own.
    assert_eq!(l.send(2, "m:Room1:B:me too").len(), 4);
    // One line a second after that.
    l.advance(1_000);
    assert_eq!(heard(&mut l, 1), 4);
    assert_eq!(heard(&mut l, 1), 0);
    assert_eq!(l.d.shard.stats().chat_rate_limited, 2);
    assert_eq!(l.d.shard.stats().chat_lines, 7);
}

// ---------------------------------------------------------------- extension

#[test]
fn announce_lists_a_lobby_in_its_game_only() {
    let mut l = Lobby::new();
    l.session("Cards1", 1, 2, 4);
    l.session("Chess1", 3, 1, 2);
    assert_eq!(
        l.reply(1, "a:1:Cards1:cards:1:1.0:Draft:all welcome")
            .as_deref(),
        Some("a:1:ok")
    );
    assert_eq!(
        l.reply(3, "a:1:Chess1:chess:1:2.0:Blitz:").as_deref(),
        Some("a:1:ok")
    );
    assert_eq!(
        l.reply(2, "a:1:Cards1:cards:1:1.0:Draft:mine now")
            .as_deref(),
        Some("a:1:error:non_host_player")
    );
    // Not in the compatible listing; each game sees its own.
    assert_eq!(l.list(), "l:");
    let page = l
        .reply_from(
            stranger(),
            "b:1:cards::::n::xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        )
        .unwrap();
    assert_eq!(page, "b:1:1::Cards1|A|2|4|0|1.0|Draft|all welcome|0");
    assert_eq!(
        l.reply_from(stranger(), "q:1:chess").as_deref(),
        Some("q:1:Chess1:C:1:2")
    );
    assert_eq!(l.reply_from(stranger(), "q:1:go").as_deref(), Some("q:1:"));
    // Unlisted with 0: a private lobby, joinable by name only.
    l.reply(3, "a:1:Chess1:chess:0:2.0:Blitz:");
    assert_eq!(
        l.reply_from(stranger(), "q:1:chess").as_deref(),
        Some("q:1:")
    );
}

#[test]
fn quick_join_skips_full_and_password_lobbies() {
    let mut l = Lobby::new();
    l.session("Full", 1, 2, 2);
    l.reply(1, "a:1:Full:cards:1:1:x:");
    assert_eq!(l.reply(3, "h:Locked:C:4:secret").as_deref(), Some("i:C"));
    l.reply(3, "a:1:Locked:cards:1:1:x:");
    l.session("Open", 4, 1, 4);
    l.reply(4, "a:1:Open:cards:1:1:x:");
    assert_eq!(
        l.reply_from(stranger(), "q:1:cards").as_deref(),
        Some("q:1:Open:D:1:4")
    );
}

#[test]
fn extension_errors_start_with_their_command_never_with_error() {
    let mut l = Lobby::new();
    assert_eq!(
        l.reply_from(stranger(), "b:2:cards::::n:").as_deref(),
        Some("b:1:error:unsupported_version")
    );
    assert_eq!(
        l.reply_from(stranger(), "b:1:cards:z:::n:").as_deref(),
        Some("b:1:error:invalid_request")
    );
    assert_eq!(
        l.reply(1, "a:1:Nowhere:cards:1:1:x:").as_deref(),
        Some("a:1:error:session_non_existent")
    );
}

// ---------------------------------------------------------------- the plugin

/// What each player's socket receives from the plugin's flow (host, join, pings, start) is
/// the same whether the session is listed or not: a listed session only adds nothing.
#[test]
fn the_plugins_flow_is_the_same_in_a_listed_session() {
    let transcript = |listed: bool| {
        let mut l = Lobby::new();
        let mut seen = Vec::new();
        seen.extend(l.send(1, "h:Room1:A:3"));
        if listed {
            // The game's script sends these through the plugin's socket: no reply.
            assert!(l.send(1, "d:Room1:True:1:x").is_empty());
        }
        seen.extend(l.send(2, "c:Room1:B"));
        for _ in 0..4 {
            seen.extend(l.send(1, "p:Room1:A"));
            seen.extend(l.send(2, "p:Room1:B"));
            l.advance(500);
        }
        seen.extend(l.send(1, "s:Room1:A"));
        l.d.advance(Duration::from_millis(1_000), |d| {
            seen.extend(drain(d).into_iter().map(|(_, to, p)| (to, p)))
        });
        seen
    };
    let plain = transcript(false);
    assert_eq!(transcript(true), plain);
    assert!(plain
        .iter()
        .all(|(_, p)| p.starts_with("i:") || p.starts_with("s:")));
}
