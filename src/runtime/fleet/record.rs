//! The format of what Redis holds: node records and listings written as text, and read back
//! under the same rules as a request (nothing Redis holds is trusted more than a datagram).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::unix_ms;
use crate::core::directory::{Listing, Origin, Scope};
use crate::core::{PlayerName, SessionName};
use crate::wire::lobby::{MAX_DESCRIPTION_LEN, MAX_GAME_LEN, MAX_TEXT_LEN};

pub(super) fn is_node_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `<host>|<port>|<region>`, checked as the wire rules want it.
pub(super) fn parse_record(node: &str, record: &str) -> Option<Origin> {
    let mut f = record.split('|');
    let (host, port, region) = (f.next()?, f.next()?, f.next()?);
    if f.next().is_some()
        || !crate::wire::lobby::is_server_host(host)
        || !crate::wire::lobby::is_region(region)
    {
        return None;
    }
    Some(Origin {
        node: node.to_string(),
        host: host.to_string(),
        port: port.parse().ok()?,
        region: region.to_string(),
    })
}

/// A listing as stored in its node's hash:
/// `<game>|<host>|<n>|<max>|<password>|<version>|<mode>|<description>|<created, unix ms>`; empty
/// when it is not published (a compatible lobby: FusionV1's `l:` lists only the server asked, as
/// its players can join no other).
pub(super) fn encode(l: &Listing) -> String {
    let Scope::Game(game) = &l.scope else {
        return String::new();
    };
    let age = Instant::now().saturating_duration_since(l.created);
    let created = unix_ms().saturating_sub(age.as_millis() as u64);
    format!(
        "{game}|{}|{}|{}|{}|{}|{}|{}|{created}",
        l.host,
        l.players,
        l.max_players,
        u8::from(l.password),
        l.version,
        l.mode,
        l.description
    )
}

/// Reads back what [`encode`] wrote, checking every field as the wire rules want it.
pub(super) fn decode(
    session: SessionName,
    value: &str,
    origin: &Arc<Origin>,
    now: Instant,
    unix_now: u64,
) -> Option<Listing> {
    let f: Vec<&str> = value.split('|').collect();
    let [game, host, players, max, password, version, mode, description, created] = f[..] else {
        return None;
    };
    let text = |s: &str, max: usize| {
        s.len() <= max
            && !s
                .chars()
                .any(|c| c.is_control() || matches!(c, ':' | ';' | '|' | '[' | ']' | '\\'))
    };
    let game_ok = (1..=MAX_GAME_LEN).contains(&game.len())
        && game
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !game_ok
        || !text(version, MAX_TEXT_LEN)
        || !text(mode, MAX_TEXT_LEN)
        || !text(description, MAX_DESCRIPTION_LEN)
    {
        return None;
    }
    let players: u8 = players.parse().ok()?;
    let max_players: u8 = max.parse().ok()?;
    let created: u64 = created.parse().ok()?;
    let age = Duration::from_millis(unix_now.saturating_sub(created));
    Some(Listing {
        session,
        scope: Scope::Game(game.to_string()),
        host: PlayerName::new(host)?,
        players: players.min(max_players),
        max_players,
        password: match password {
            "1" => true,
            "0" => false,
            _ => return None,
        },
        version: version.to_string(),
        mode: mode.to_string(),
        description: description.to_string(),
        created: now.checked_sub(age).unwrap_or(now),
        origin: Some(origin.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::super::redacted;
    use super::*;

    #[test]
    fn a_listing_reads_back_as_it_was_written() {
        let now = Instant::now();
        let listing = Listing {
            session: SessionName::new("Room1").unwrap(),
            scope: Scope::Game("cards".into()),
            host: PlayerName::new("Ana").unwrap(),
            players: 2,
            max_players: 4,
            password: true,
            version: "1.0".into(),
            mode: "Constructed - Free".into(),
            description: "all welcome".into(),
            created: now.checked_sub(Duration::from_secs(5)).unwrap_or(now),
            origin: None,
        };
        let value = encode(&listing);
        let origin = Arc::new(parse_record("ab12", "eu.example.com|7777|eu").unwrap());
        let back = decode(listing.session, &value, &origin, Instant::now(), unix_ms()).unwrap();
        assert_eq!(back.host, listing.host);
        assert_eq!(back.description, listing.description);
        assert!(back.password && back.players == 2 && back.max_players == 4);
        let age = Instant::now().saturating_duration_since(back.created);
        assert!(
            age >= Duration::from_secs(4) && age < Duration::from_secs(7),
            "{age:?}"
        );
        assert_eq!(back.origin.unwrap().region, "eu");
    }

    #[test]
    fn what_redis_holds_is_checked_like_a_request() {
        let origin = Arc::new(parse_record("ab12", "h|1|r").unwrap());
        let name = SessionName::new("Room1").unwrap();
        let now = Instant::now();
        for bad in [
            "",
            "cards|Ana|2|4|0|1.0|Draft|x",
            "cards|Ana|2|4|0|1.0|Dr:aft|x|0",
            "ca rds|Ana|2|4|0|1.0|Draft|x|0",
            "cards|Ana|2|4|2|1.0|Draft|x|0",
            "cards|Ana|x|4|0|1.0|Draft|x|0",
        ] {
            assert!(decode(name, bad, &origin, now, 0).is_none(), "{bad:?}");
        }
        let long = format!("cards|Ana|2|4|0|1.0|Draft|{}|0", "x".repeat(65));
        assert!(decode(name, &long, &origin, now, 0).is_none());
        assert!(parse_record("ab", "h:1|1|r").is_none());
        assert!(parse_record("ab", "h|99999|r").is_none());
        assert!(parse_record("ab", "h|1|r|x").is_none());
        assert!(!is_node_id("../x") && is_node_id("00ff"));
        assert_eq!(redacted("redis://:pw@h:1/0"), "redis://***@h:1/0");
        assert_eq!(redacted("redis://h:1"), "redis://h:1");
    }

    #[test]
    fn a_compatible_lobby_is_not_published() {
        let listing = Listing {
            session: SessionName::new("Room1").unwrap(),
            scope: Scope::Compat,
            host: PlayerName::new("Ana").unwrap(),
            players: 1,
            max_players: 4,
            password: false,
            version: String::new(),
            mode: String::new(),
            description: String::new(),
            created: Instant::now(),
            origin: None,
        };
        assert_eq!(encode(&listing), "");
    }
}
