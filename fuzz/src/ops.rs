//! The operations the `shard` target decodes from the fuzzer's bytes.
//!
//! They are biased towards well-formed requests over a tiny alphabet of session and player
//! names: random bytes almost never spell `c:R:B`, so without this bias the fuzzer would only
//! ever exercise the parser's error path and no session would ever be joined or started.

use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use arbitrary::{Arbitrary, Result, Unstructured};
use rabid_punch::core::{CapsConfig, CoreConfig};
use rabid_punch::wire::{Kind, Request};

use crate::format::format_request;

/// The source addresses of the `shard` target: IPv4, IPv6, IPv4-mapped IPv6, and a second port
/// behind the first IPv4 address (two players behind one NAT).
pub fn sources() -> [SocketAddr; 4] {
    [
        SocketAddr::from(([198, 51, 100, 7], 40001)),
        SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 40002)),
        SocketAddr::from((Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0xcb00, 0x7109), 40003)),
        SocketAddr::from(([198, 51, 100, 7], 40004)),
    ]
}

/// Session names: short, and the longest allowed (10).
const SESSIONS: [&str; 3] = ["R", "S", "Session789"];
/// Player names: a few short ones that collide often, then enough of the longest allowed (12)
/// to fill a 12-player session, whose start messages are the largest replies.
const PLAYERS: [&str; 16] = [
    "A",
    "B",
    "C",
    "D",
    "Player000001",
    "Player000002",
    "Player000003",
    "Player000004",
    "Player000005",
    "Player000006",
    "Player000007",
    "Player000008",
    "Player000009",
    "Player000010",
    "Player000011",
    "Player000012",
];
/// Passwords.
const PASSWORDS: [&str; 2] = ["W", "Pass"];

/// A whole run of the `shard` target: the server settings, then the operations.
#[derive(Debug, Arbitrary)]
pub struct Scenario {
    pub config: FuzzConfig,
    pub ops: Vec<Op>,
}

/// Server settings: the defaults, or small made-up ones so that player timeouts, session
/// lifetimes, the end of start re-sends and the caps on sessions and players are reached within a
/// few operations.
#[derive(Debug, Arbitrary)]
pub enum FuzzConfig {
    Default,
    Custom {
        player_timeout_ms: u16,
        session_lifetime_ms: u16,
        start_interval_ms: u8,
        start_sends: u8,
        error_repeats: u8,
        error_repeat_interval_ms: u8,
        max_sessions: u8,
        max_players: u8,
        max_sessions_per_ip: u8,
    },
}

impl FuzzConfig {
    /// The core settings this stands for. Zero durations and counts are allowed on purpose: the
    /// core must survive any setting a flag can give it.
    pub fn core(&self) -> CoreConfig {
        match *self {
            FuzzConfig::Default => CoreConfig::default(),
            FuzzConfig::Custom {
                player_timeout_ms,
                session_lifetime_ms,
                start_interval_ms,
                start_sends,
                error_repeats,
                error_repeat_interval_ms,
                max_sessions,
                max_players,
                max_sessions_per_ip,
            } => CoreConfig {
                player_timeout: Duration::from_millis(player_timeout_ms.into()),
                session_lifetime: Duration::from_millis(session_lifetime_ms.into()),
                start_interval: Duration::from_millis(start_interval_ms.into()),
                start_sends: start_sends % 16,
                error_repeats: error_repeats % 8,
                error_repeat_interval: Duration::from_millis(error_repeat_interval_ms.into()),
                caps: CapsConfig {
                    max_sessions: usize::from(max_sessions % 8),
                    max_players: usize::from(max_players % 32),
                    max_sessions_per_ip: usize::from(max_sessions_per_ip % 4),
                },
            },
        }
    }
}

/// One step of the `shard` target.
#[derive(Debug)]
pub enum Op {
    /// Source `from` (an index into [`sources`]) sends a well-formed request.
    Send { from: usize, text: String },
    /// Source `from` sends arbitrary bytes.
    Garbage { from: usize, bytes: Vec<u8> },
    /// The clock moves `ms` forward, then the shard handles its timeouts.
    Advance { ms: u64 },
    /// The clock moves to the shard's next deadline (if later than now), then the shard handles
    /// its timeouts: what the runtime does when nothing arrives.
    Wake,
    /// Players join one session in a burst, each from the source after the previous one's:
    /// reaching a full 12-player lobby one request at a time is too rare for the fuzzer, and the
    /// largest replies (start messages) need one.
    Crowd { sends: Vec<(usize, String)> },
}

impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let from = usize::from(u.int_in_range(0..=3u8)?);
        // Requests about 60% of the time, then time, then garbage.
        Ok(match u.arbitrary::<u8>()? {
            0..=153 => Op::Send {
                from,
                text: request_text(u)?,
            },
            154..=199 => Op::Advance { ms: delay_ms(u)? },
            200..=229 => Op::Wake,
            230..=239 => Op::Crowd {
                sends: crowd(u, from)?,
            },
            _ => Op::Garbage {
                from,
                bytes: u.arbitrary()?,
            },
        })
    }
}

/// A well-formed request over the tiny alphabet, sometimes with the trailing newline people type.
fn request_text(u: &mut Unstructured<'_>) -> Result<String> {
    let session = *u.choose(&SESSIONS)?;
    // Mostly the four short names, so that requests meet the players they are about.
    let player = if u.ratio(3, 4)? {
        *u.choose(&PLAYERS[..4])?
    } else {
        *u.choose(&PLAYERS)?
    };
    let password = if u.arbitrary()? {
        Some(*u.choose(&PASSWORDS)?)
    } else {
        None
    };
    let kind = match u.int_in_range(0..=6u8)? {
        0 => Kind::Host {
            max_players: u.int_in_range(2..=12)?,
            password,
        },
        1 => Kind::Connect { password },
        2 => Kind::Ping,
        3 => Kind::Kick,
        4 => Kind::Exit,
        5 => Kind::Start,
        _ => Kind::Confirm,
    };
    let mut text = format_request(&Request {
        session,
        player,
        kind,
    });
    text.push_str(u.choose(&["", "", "", "\n", "\r\n"])?);
    Ok(text)
}

/// `c:` requests from the long player names, starting at a random one, into one session.
fn crowd(u: &mut Unstructured<'_>, from: usize) -> Result<Vec<(usize, String)>> {
    let session = *u.choose(&SESSIONS)?;
    let long_names = &PLAYERS[4..];
    let first = u.choose_index(long_names.len())?;
    let count = u.int_in_range(1..=long_names.len())?;
    Ok((0..count)
        .map(|i| {
            let player = long_names[(first + i) % long_names.len()];
            ((from + i) % 4, format!("c:{session}:{player}"))
        })
        .collect())
}

/// How far the clock moves: mostly a few ms (start re-sends, error repeats), sometimes seconds
/// (player timeouts), rarely minutes (the default session lifetime).
fn delay_ms(u: &mut Unstructured<'_>) -> Result<u64> {
    let raw = u64::from(u.arbitrary::<u16>()?);
    Ok(match raw % 4 {
        0 | 1 => (raw >> 2) % 128,
        2 => (raw >> 2) % 8192,
        _ => (raw >> 2) * 64,
    })
}
