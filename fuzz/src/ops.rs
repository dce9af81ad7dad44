//! The operations the `shard` target decodes from the fuzzer's bytes.
//!
//! They are biased towards well-formed requests over a tiny alphabet of session and player
//! names: random bytes almost never spell `c:R:B`, so without this bias the fuzzer would only
//! ever exercise the parser's error path and no session would ever be joined or started. The
//! same goes for the relay: datagrams on relay ports are mostly the peer-phase messages the relay
//! reads (`g:`, `c:`, `y:` naming the scenario's players), from the scenario's own sources or
//! their NAT mappings, so that relays learn addresses and rewrite, not only drop strangers.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use arbitrary::{Arbitrary, Result, Unstructured};
use rabid_punch::core::{CapsConfig, CoreConfig, RelayConfig, RelayLimitsConfig, RelayMode};
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

/// Addresses the shard never heard a request from, sending to relay ports: another IPv4
/// address next to the first source's, an IPv6 address in the same /64 as the second source (one
/// `IpKey` for the relay limits, yet another host), and an unrelated one.
pub const STRANGERS: [SocketAddr; 3] = [
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 8)), 40001),
    SocketAddr::new(
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
        40002,
    ),
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 40005),
];

/// The local addresses a start request may arrive on (what `IP_PKTINFO` reports): IPv4, IPv6,
/// and IPv4 written as IPv4-mapped IPv6 (a dual-stack socket).
pub const LOCAL_IPS: [IpAddr; 3] = [
    IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x7, 0, 0, 0, 0, 7)),
    IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0xcb00, 0x7107)),
];

/// `--relay-public-ip` when a scenario sets one.
pub const PUBLIC_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 200));

/// The first relay port; a shard gets `RELAY_BASE..RELAY_BASE + pool`.
pub const RELAY_BASE: u16 = 7800;
/// The largest pool: two 4-player sessions, so that the pool runs out and ports are reused.
pub const MAX_POOL: u16 = 8;

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

/// A whole run of the `shard` target: the server settings, the relay's, then the operations.
#[derive(Debug, Arbitrary)]
pub struct Scenario {
    pub config: FuzzConfig,
    pub relay: FuzzRelay,
    pub ops: Vec<Op>,
}

impl Scenario {
    /// The core settings, relay included.
    pub fn core(&self) -> CoreConfig {
        CoreConfig {
            relay: self.relay.config(),
            ..self.config.core()
        }
    }
}

/// Relay settings: a mode, a pool of 0 to [`MAX_POOL`] ports, and the default timings and limits
/// or small ones (ms timings, at most 128 bytes per second, 1 to 3 sessions per IP) so that
/// relays close, budgets run out and IPs reach their cap within a few operations.
#[derive(Debug)]
pub struct FuzzRelay {
    pub mode: RelayMode,
    pub pool: u16,
    pub public_ip: Option<IpAddr>,
    /// Idle timeout (a third of it the unused timeout), lifetime and auto window in ms; `None`:
    /// the defaults.
    pub timings_ms: Option<(u16, u16, u16)>,
    /// `None`: the default limits.
    pub limits: Option<RelayLimitsConfig>,
}

impl FuzzRelay {
    pub fn config(&self) -> RelayConfig {
        let mut config = RelayConfig {
            mode: self.mode,
            public_ip: self.public_ip,
            ..RelayConfig::default()
        };
        if let Some((idle, lifetime, window)) = self.timings_ms {
            // Zero is allowed although the flags refuse it: the core must not care.
            config.idle_timeout = Duration::from_millis(idle.into());
            // A third of it: unused relays close first, busy ones live on to their idle end.
            config.unused_timeout = Duration::from_millis((idle / 3).into());
            config.lifetime = Duration::from_millis(lifetime.into());
            config.auto_window = Duration::from_millis(window.into());
        }
        if let Some(limits) = self.limits {
            config.limits = limits;
        }
        config
    }

    /// The relay ports the shard is given.
    pub fn ports(&self) -> Vec<u16> {
        (RELAY_BASE..RELAY_BASE + self.pool).collect()
    }
}

impl<'a> Arbitrary<'a> for FuzzRelay {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        // `always` half of the time: relays need a started session, and that already takes the
        // fuzzer a few operations.
        let mode = match u.int_in_range(0..=3u8)? {
            0 => RelayMode::Off,
            1 => RelayMode::Auto,
            _ => RelayMode::Always,
        };
        let pool = u.int_in_range(0..=MAX_POOL)?;
        let public_ip = if u.ratio(1, 4)? {
            Some(PUBLIC_IP)
        } else {
            None
        };
        let timings_ms = if u.arbitrary()? {
            Some((u.arbitrary()?, u.arbitrary()?, u.arbitrary()?))
        } else {
            None
        };
        let limits = if u.arbitrary()? {
            // The flags refuse zero rates, and so does this; a cap of 0 is allowed (every
            // relayed start falls back), but rare.
            let cap = u.int_in_range(0..=15u8)?;
            Some(RelayLimitsConfig {
                max_sessions_per_ip: if cap == 0 { 0 } else { u32::from(cap % 3 + 1) },
                // A handful of peer-phase messages' worth (they are 8 to 30 bytes), so that
                // either budget runs out within a few relay operations.
                ip_bytes_per_sec: u.int_in_range(1..=128)?,
                session_bytes_per_sec: u.int_in_range(1..=96)?,
            })
        } else {
            None
        };
        Ok(Self {
            mode,
            pool,
            public_ip,
            timings_ms,
            limits,
        })
    }
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
    /// The core settings this stands for, relay aside. Zero durations and counts are allowed on
    /// purpose: the core must survive any setting a flag can give it.
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
                // The relay's settings come from the scenario's `FuzzRelay`.
                relay: RelayConfig::default(),
            },
        }
    }
}

/// A datagram's bytes, shown as escaped text (readable in `cargo fuzz fmt`).
pub struct Payload(pub Vec<u8>);

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// One step of the `shard` target.
#[derive(Debug)]
pub enum Op {
    /// Source `from` (an index into [`sources`]) sends a well-formed request, received on local
    /// address `local` (`None`: unknown, so a relayed start has no address to list unless a
    /// public one is set).
    Send {
        from: usize,
        local: Option<IpAddr>,
        text: String,
    },
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
    /// A whole game in a burst: a host, 1 to 3 players joining from the next sources, the
    /// host's start, all received on `local`. Relays only open at a start, and only relay
    /// operations after one do more than drop strangers.
    Game {
        local: Option<IpAddr>,
        sends: Vec<(usize, String)>,
    },
    /// `from` sends `payload` to relay port `port` (a port of the pool or just past it, rarely
    /// any port).
    Relay {
        port: u16,
        from: SocketAddr,
        payload: Payload,
    },
}

impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let from = usize::from(u.int_in_range(0..=3u8)?);
        // Requests about half of the time, then relay datagrams, time, and garbage.
        Ok(match u.arbitrary::<u8>()? {
            0..=119 => Op::Send {
                from,
                local: local_ip(u)?,
                text: request_text(u)?,
            },
            120..=149 => Op::Advance { ms: delay_ms(u)? },
            150..=169 => Op::Wake,
            170..=177 => Op::Crowd {
                sends: crowd(u, from)?,
            },
            178..=189 => Op::Game {
                local: local_ip(u)?,
                sends: game(u, from)?,
            },
            190..=199 => Op::Garbage {
                from,
                bytes: u.arbitrary()?,
            },
            _ => Op::Relay {
                port: relay_port(u)?,
                from: relay_source(u, from)?,
                payload: Payload(relay_payload(u)?),
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

/// The local address a request arrived on: mostly the IPv4 one, sometimes unknown.
fn local_ip(u: &mut Unstructured<'_>) -> Result<Option<IpAddr>> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 => None,
        1 => Some(LOCAL_IPS[1]),
        2 => Some(LOCAL_IPS[2]),
        _ => Some(LOCAL_IPS[0]),
    })
}

/// `h:`, `c:` for 1 to 3 more short names, `s:` by the host, each player from the source after
/// the previous one's.
fn game(u: &mut Unstructured<'_>, from: usize) -> Result<Vec<(usize, String)>> {
    let session = *u.choose(&SESSIONS)?;
    let short = &PLAYERS[..4];
    let first = u.choose_index(short.len())?;
    let players = u.int_in_range(2..=4usize)?;
    let max_players = u.int_in_range(players..=12)?;
    let host = short[first];
    let mut sends = vec![(from, format!("h:{session}:{host}:{max_players}"))];
    for i in 1..players {
        let player = short[(first + i) % short.len()];
        sends.push(((from + i) % 4, format!("c:{session}:{player}")));
    }
    sends.push((from, format!("s:{session}:{host}")));
    Ok(sends)
}

/// A relay port: mostly one of the largest pool (so also ports a small pool does not have),
/// rarely any.
fn relay_port(u: &mut Unstructured<'_>) -> Result<u16> {
    if u.ratio(1, 16)? {
        u.arbitrary()
    } else {
        Ok(RELAY_BASE + u.int_in_range(0..=MAX_POOL)?)
    }
}

/// Who sends to a relay port: mostly a source as it is, often the same IP at another port (a
/// NAT mapping per destination), sometimes the same IP written the other way (IPv4 as
/// IPv4-mapped IPv6 or back), sometimes a stranger.
fn relay_source(u: &mut Unstructured<'_>, from: usize) -> Result<SocketAddr> {
    let source = sources()[from];
    Ok(match u.int_in_range(0..=9u8)? {
        0..=4 => source,
        5..=7 => SocketAddr::new(source.ip(), 50000 + u.int_in_range(0..=3u16)?),
        8 => {
            let other_form = match source.ip() {
                IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
                v6 => v6.to_canonical(),
            };
            SocketAddr::new(other_form, source.port())
        }
        _ => *u.choose(&STRANGERS)?,
    })
}

/// What arrives on a relay port: mostly peer-phase messages naming the scenario's players (or
/// nobody), sometimes the host's countdown, game traffic or arbitrary bytes.
fn relay_payload(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    Ok(match u.int_in_range(0..=9u8)? {
        0..=2 => format!("g:{}:{}:{}", peer_name(u)?, port_text(u)?, port_text(u)?).into_bytes(),
        3 | 4 => format!("c:{}:{}", peer_name(u)?, port_text(u)?).into_bytes(),
        5 => format!("y:{}:{}", peer_name(u)?, port_text(u)?).into_bytes(),
        6 => format!("s:{}", u.int_in_range(0..=3u8)?).into_bytes(),
        _ => u.arbitrary()?,
    })
}

/// The name in a peer-phase message: mostly a short player name, sometimes a long one, a name
/// nobody has, or none.
fn peer_name(u: &mut Unstructured<'_>) -> Result<&'static str> {
    Ok(match u.int_in_range(0..=9u8)? {
        0..=6 => *u.choose(&PLAYERS[..4])?,
        7 => *u.choose(&PLAYERS)?,
        8 => "Z",
        _ => "",
    })
}

/// A port field: mostly a number that means something here (a source's port, a relay port), or
/// any port; sometimes the edge cases of the port check (leading zeros, too large, not a number).
fn port_text(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(match u.int_in_range(0..=7u8)? {
        0..=2 => sources()[u.choose_index(4)?].port().to_string(),
        3 | 4 => (RELAY_BASE + u.int_in_range(0..=MAX_POOL)?).to_string(),
        5 => u.arbitrary::<u16>()?.to_string(),
        _ => (*u.choose(&[
            "0", "00001", "65535", "65536", "99999", "123456", "", "1x", "+1",
        ])?)
        .to_string(),
    })
}
