//! Runs a [`Scenario`] against a `Shard` behind the server's front door (`FrontDoor`: the
//! datagrams for the server port go through it as the receiver passes them, so short garbage is
//! dropped there, as in the server), checking after every operation:
//! - the shard's own invariants hold (`check_invariants`, which also checks that every relay port
//!   is free or held by exactly one member), and the shared counts behind the caps equal what the
//!   shard holds (a leak there would shut the server out, or let memory grow); the caps
//!   themselves are never exceeded;
//! - every reply (from the server port) is at most [`MAX_REPLY`] bytes (a lobby listing at most
//!   [`MAX_LISTING`]), is an `i:`, an `s:`, one of the protocol's errors or a lobby directory
//!   reply (`l:`, `m:`, `a:1:`, `b:1:`, `q:1:`), and goes to an address that sent the shard something (the
//!   server is no cannon); a start message lists every peer at an address that sent the shard a
//!   request, or at a relay port of the pool;
//! - every relayed datagram comes from a relay operation, at most one per datagram received (no
//!   amplification), leaves from a pool port other than the one it arrived on, goes to an IP that
//!   sent the shard a request (no open proxy: never to an IP that only sent relay datagrams) and
//!   at an address that sent something, and is the datagram received, byte for byte, or a
//!   `g:`/`c:`/`y:` with only its last port field rewritten (so at most 4 bytes longer);
//! - the relay counters add up: a relay operation forwards or drops exactly one datagram, and
//!   nothing else moves them; ports in use plus free ports are the pool; with the relay off
//!   nothing is relayed and no port is ever held; when no port is held, no IP counts against the
//!   shared relay limits (a leak there would lock an IP out of the relay for good);
//! - after handling its timeouts, the shard's next deadline lies in the future (no busy loop).
//!
//! A broken check panics, which is what the fuzzer looks for.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rabid_punch::core::testing::Driver;
use rabid_punch::core::{RelayMode, RelayStats, Shard, Shared};
use rabid_punch::wire::ErrorCode;

use crate::ops::{sources, Op, Scenario, LOCAL_IPS, PUBLIC_IP};

/// The largest reply the server may send, but for the lobby listings.
pub const MAX_REPLY: usize = 512;

/// The largest lobby listing (`l:`, `b:1:`): what crosses the internet unfragmented.
pub const MAX_LISTING: usize = rabid_punch::wire::lobby::MAX_REPLY_LEN;

/// The lobby directory's replies.
const LOBBY_REPLIES: [&[u8]; 5] = [b"l:", b"m:", b"a:1:", b"b:1:", b"q:1:"];

/// Rewriting replaces a port field of 1 to 5 digits by a port of at most 5 digits.
pub const MAX_REWRITE_GROWTH: usize = 4;

/// Who sent the shard what, for the checks on where its datagrams go.
#[derive(Default)]
struct Heard {
    /// Addresses that sent to the server port.
    requests: HashSet<SocketAddr>,
    /// Their IPs, canonical (IPv4-mapped IPv6 as IPv4): a relay may learn a member's new port,
    /// never a new IP.
    request_ips: HashSet<IpAddr>,
    /// Addresses that sent to a relay port.
    relay: HashSet<SocketAddr>,
}

impl Heard {
    fn request(&mut self, from: SocketAddr) {
        self.requests.insert(from);
        self.request_ips.insert(from.ip().to_canonical());
    }

    /// Whether `to` sent a request, in either form of its IP (a start message writes
    /// IPv4-mapped addresses as IPv4).
    fn sent_request(&self, to: SocketAddr) -> bool {
        self.requests
            .iter()
            .any(|a| a.port() == to.port() && a.ip().to_canonical() == to.ip().to_canonical())
    }
}

/// Runs `scenario`, panicking at the first broken check; `seen` is shown every reply (for the
/// corpus statistics), after it passed the checks. Returns the relay counters at the end.
pub fn drive(scenario: &Scenario, mut seen: impl FnMut(&Shard, SocketAddr, &[u8])) -> RelayStats {
    let sources = sources();
    let now = Instant::now();
    let config = scenario.core();
    let shared = Shared::new(&config, now);
    let (caps, limits) = (&shared.caps, &shared.relay_limits);
    let pool = scenario.relay.ports();
    let shard = Shard::with_shared(&config, &shared).with_relay_pool(pool.clone());
    // The shard behind the server's front door, on a fake clock.
    let mut d = Driver::new(shard, now);
    let mut heard = Heard::default();
    for (step, op) in scenario.ops.iter().enumerate() {
        let before = d.shard.relay_stats();
        let mut timed_out = false;
        match op {
            Op::Send { from, local, text } => {
                heard.request(sources[*from]);
                d.receive(sources[*from], *local, text.as_bytes());
            }
            Op::Garbage { from, bytes } => {
                heard.request(sources[*from]);
                d.receive(sources[*from], None, bytes);
            }
            Op::Advance { ms } => {
                d.jump(Duration::from_millis(*ms));
                timed_out = true;
            }
            Op::Crowd { sends } => {
                for (from, text) in sends {
                    heard.request(sources[*from]);
                    d.receive(sources[*from], Some(LOCAL_IPS[0]), text.as_bytes());
                }
            }
            Op::Game { local, sends } => {
                for (from, text) in sends {
                    heard.request(sources[*from]);
                    d.receive(sources[*from], *local, text.as_bytes());
                }
            }
            Op::Wake => {
                d.wake();
                timed_out = true;
            }
            Op::Relay {
                port,
                from,
                payload,
            } => {
                heard.relay.insert(*from);
                d.relayed(*port, *from, &payload.0);
            }
        }
        if let Err(broken) = d.shard.check_invariants() {
            panic!("step {step} ({op:?}): invariant broken: {broken}");
        }
        assert_eq!(
            (caps.sessions(), caps.players()),
            (d.shard.sessions(), d.shard.players()),
            "step {step} ({op:?}): cap counts (sessions, players) differ from the shard's"
        );
        assert!(
            d.shard.sessions() <= config.caps.max_sessions
                && d.shard.players() <= config.caps.max_players,
            "step {step} ({op:?}): over a cap"
        );
        let mut relayed = 0;
        for (via, to, payload) in d.out.iter_via() {
            if via == 0 {
                check_reply(step, op, &heard, &pool, to, payload);
                seen(&d.shard, to, payload);
            } else {
                check_relayed(step, op, &heard, &pool, via, to, payload);
                relayed += 1;
            }
        }
        d.out.clear();
        check_relay_stats(
            step,
            op,
            before,
            d.shard.relay_stats(),
            relayed,
            &pool,
            scenario.relay.mode,
            limits.ips_in_use(),
        );
        if timed_out {
            if let Some(deadline) = d.shard.next_timeout() {
                assert!(
                    deadline > d.now,
                    "step {step} ({op:?}): next deadline not in the future after timeouts"
                );
            }
        }
    }
    d.shard.relay_stats()
}

/// A datagram from the server port.
fn check_reply(step: usize, op: &Op, heard: &Heard, pool: &[u16], to: SocketAddr, payload: &[u8]) {
    assert!(
        !matches!(op, Op::Relay { .. }),
        "step {step} ({op:?}): a relay datagram got a reply from the server port"
    );
    let listing = payload.starts_with(b"l:") || payload.starts_with(b"b:1:");
    assert!(
        payload.len() <= if listing { MAX_LISTING } else { MAX_REPLY },
        "step {step} ({op:?}): {} bytes to {to}",
        payload.len()
    );
    assert!(
        heard.requests.contains(&to),
        "step {step} ({op:?}): reply to {to}, which never sent anything"
    );
    assert!(
        payload.starts_with(b"i:")
            || payload.starts_with(b"s:")
            || ErrorCode::from_datagram(payload).is_some()
            || LOBBY_REPLIES.iter().any(|p| payload.starts_with(p)),
        "step {step} ({op:?}): unknown reply {:?}",
        String::from_utf8_lossy(payload)
    );
    if payload.starts_with(b"s:") {
        for peer in start_peers(payload) {
            let relay_ip =
                peer.ip() == PUBLIC_IP || LOCAL_IPS.iter().any(|ip| ip.to_canonical() == peer.ip());
            assert!(
                heard.sent_request(peer) || (relay_ip && pool.contains(&peer.port())),
                "step {step} ({op:?}): start message {:?} lists {peer}, neither a player nor a \
                 relay port",
                String::from_utf8_lossy(payload)
            );
        }
    }
}

/// The addresses a start message `s:<own port>:<name>:<ip>:<port>;...` lists; panics if it is
/// not one.
fn start_peers(payload: &[u8]) -> Vec<SocketAddr> {
    let text = std::str::from_utf8(payload).expect("start message not UTF-8");
    let (_own_port, peers) = text[2..]
        .split_once(':')
        .unwrap_or_else(|| panic!("start message {text:?} has no own port"));
    if peers.is_empty() {
        return Vec::new();
    }
    peers
        .split(';')
        .map(|peer| {
            let (_name, addr) = peer
                .split_once(':')
                .unwrap_or_else(|| panic!("start message {text:?}: peer {peer:?} has no name"));
            addr.parse()
                .unwrap_or_else(|_| panic!("start message {text:?}: bad address {addr:?}"))
        })
        .collect()
}

/// A datagram from relay port `via`.
fn check_relayed(
    step: usize,
    op: &Op,
    heard: &Heard,
    pool: &[u16],
    via: u16,
    to: SocketAddr,
    sent: &[u8],
) {
    let Op::Relay {
        port,
        payload: received,
        ..
    } = op
    else {
        panic!("step {step} ({op:?}): relayed datagram to {to} without a relay datagram");
    };
    let received = &received.0[..];
    assert!(
        pool.contains(&via) && via != *port,
        "step {step} ({op:?}): relayed from port {via}, not another port of the pool"
    );
    assert!(
        heard.request_ips.contains(&to.ip().to_canonical()),
        "step {step} ({op:?}): relayed to {to}, whose IP never sent a request (open proxy)"
    );
    assert!(
        heard.requests.contains(&to) || heard.relay.contains(&to),
        "step {step} ({op:?}): relayed to {to}, which never sent anything"
    );
    if sent == received {
        return;
    }
    // Only the last field of a greeting or a confirmation is rewritten, into a port number.
    let rewritable = [&b"g:"[..], b"c:", b"y:"]
        .iter()
        .any(|p| received.starts_with(p));
    let keep = received.iter().rposition(|&b| b == b':').map(|i| i + 1);
    let port_field = keep.and_then(|k| sent.get(k..)).and_then(|f| {
        std::str::from_utf8(f)
            .ok()
            .filter(|f| !f.starts_with('0') || *f == "0")
            .and_then(|f| f.parse::<u16>().ok())
    });
    assert!(
        rewritable
            && keep.is_some_and(|k| sent.get(..k) == received.get(..k))
            && port_field.is_some()
            && sent.len() <= received.len() + MAX_REWRITE_GROWTH,
        "step {step} ({op:?}): relayed {:?} for {:?}, not a port rewrite",
        String::from_utf8_lossy(sent),
        String::from_utf8_lossy(received)
    );
}

#[allow(clippy::too_many_arguments)]
fn check_relay_stats(
    step: usize,
    op: &Op,
    before: RelayStats,
    after: RelayStats,
    relayed: u64,
    pool: &[u16],
    mode: RelayMode,
    ips_in_use: usize,
) {
    let handled = |s: RelayStats| {
        s.datagrams + s.dropped_strangers + s.dropped_unheld_port + s.dropped_budget
    };
    if let Op::Relay { payload, .. } = op {
        assert!(
            relayed <= 1,
            "step {step} ({op:?}): one datagram relayed {relayed} times"
        );
        assert_eq!(
            (
                after.datagrams - before.datagrams,
                after.bytes - before.bytes,
                handled(after) - handled(before)
            ),
            (relayed, relayed * payload.0.len() as u64, 1),
            "step {step} ({op:?}): relay counters (datagrams, bytes, handled) moved wrong"
        );
    } else {
        assert_eq!(
            (after.datagrams, after.bytes, handled(after)),
            (before.datagrams, before.bytes, handled(before)),
            "step {step} ({op:?}): relay counters moved without a relay datagram"
        );
    }
    assert_eq!(
        after.ports_total,
        pool.len() as u64,
        "step {step} ({op:?}): ports_total is not the pool"
    );
    if mode == RelayMode::Off {
        assert!(
            relayed == 0 && after.ports_in_use == 0 && after.sessions_relayed == 0,
            "step {step} ({op:?}): relay off, yet {after:?}"
        );
    }
    assert!(
        ips_in_use as u64 <= after.ports_in_use,
        "step {step} ({op:?}): {ips_in_use} IPs count against the relay limits, with {} \
         ports held",
        after.ports_in_use
    );
}
