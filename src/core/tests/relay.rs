//! The relay on a made-up clock: allocation, learning, rewriting, budgets, closing, the pool,
//! the `auto` policy and the no-proxy rules.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::core::testing::Driver;
use crate::core::{CoreConfig, RelayConfig, RelayLimits, RelayLimitsConfig, RelayMode, Shard};
use crate::outbox::Outbox;

const RELAY_IP: &str = "203.0.113.7";
/// The pool every harness starts with, unless it says otherwise.
const POOL: std::ops::Range<u16> = 50000..50012;

/// Player `n`'s rendezvous address: its IP 198.51.100.n, port 40000 + n.
fn addr(n: u16) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, n as u8], 40000 + n))
}

/// Player `n`'s NAT mapping towards some relay port: same IP, another port (a symmetric NAT).
fn mapped(n: u16, port: u16) -> SocketAddr {
    SocketAddr::new(addr(n).ip(), port)
}

fn name(n: u16) -> String {
    char::from(b'A' + (n - 1) as u8).to_string()
}

/// A datagram the shard wants sent: (from relay port, or 0 for the server port; to; payload).
type Sent = Vec<(u16, SocketAddr, String)>;

/// What the driver's shard sent since the last drain; checks the invariants.
fn drain(d: &mut Driver) -> Sent {
    if let Err(broken) = d.shard.check_invariants() {
        panic!("invariant broken: {broken}");
    }
    let sent = d
        .out
        .iter_via()
        .map(|(via, to, p)| (via, to, String::from_utf8_lossy(p).into_owned()))
        .collect();
    d.out.clear();
    sent
}

struct Harness {
    d: Driver,
}

impl Harness {
    fn with(relay: RelayConfig, pool: impl IntoIterator<Item = u16>) -> Self {
        let config = CoreConfig {
            relay,
            ..CoreConfig::default()
        };
        let start = Instant::now();
        let shard = Shard::new(&config, start).with_relay_pool(pool.into_iter().collect());
        Self {
            d: Driver::new(shard, start),
        }
    }

    fn always() -> Self {
        Self::with(config(RelayMode::Always), POOL)
    }

    fn drain(&mut self) -> Sent {
        drain(&mut self.d)
    }

    /// Player `n` sends a request to the server.
    fn request(&mut self, n: u16, text: &str) -> Sent {
        let local = Some(RELAY_IP.parse().unwrap());
        self.d.datagram(addr(n), local, text.as_bytes());
        self.drain()
    }

    /// `from` sends `text` to relay port `port`.
    fn relay(&mut self, port: u16, from: SocketAddr, text: &str) -> Sent {
        self.d.relayed(port, from, text.as_bytes());
        self.drain()
    }

    fn advance(&mut self, ms: u64) -> Sent {
        let mut sent = Vec::new();
        self.d
            .advance(Duration::from_millis(ms), |d| sent.extend(drain(d)));
        sent
    }

    fn elapsed(&self) -> Duration {
        self.d.elapsed()
    }

    /// Session `session` hosted by player `first`, joined by the next `players - 1` players,
    /// then started; returns what the start sent.
    fn started(&mut self, session: &str, first: u16, players: u16) -> Sent {
        self.request(first, &format!("h:{session}:{}:{players}", name(first)));
        for n in first + 1..first + players {
            self.request(n, &format!("c:{session}:{}", name(n)));
        }
        self.request(first, &format!("s:{session}:{}", name(first)))
    }
}

impl Harness {
    /// Session R of players 1 (A, relay port 50000) and 2 (B, 50001), and session Q of player 3
    /// (C, 50002) and, from player 1's IP at another port, Z (50003); both started.
    fn two_sessions_sharing_player_1s_ip(&mut self) {
        self.started("R", 1, 2);
        self.request(3, "h:Q:C:2");
        let second = SocketAddr::new(addr(1).ip(), 41111);
        self.d.datagram(second, None, b"c:Q:Z");
        self.drain();
        self.request(3, "s:Q:C");
    }
}

fn config(mode: RelayMode) -> RelayConfig {
    RelayConfig {
        mode,
        ..RelayConfig::default()
    }
}

/// The start message that went to `to`.
fn start_to(sent: &Sent, to: SocketAddr) -> String {
    let found: Vec<_> = sent.iter().filter(|(_, a, _)| *a == to).collect();
    assert_eq!(found.len(), 1, "one start message to {to} in {sent:?}");
    assert_eq!(found[0].0, 0, "start messages leave from the server port");
    found[0].2.clone()
}

// ---------------------------------------------------------------- allocation

#[test]
fn a_relayed_start_lists_every_peer_at_its_own_relay_port() {
    let mut h = Harness::always();
    let sent = h.started("R", 1, 3);
    // Own port as the server saw it; peers at the relay address, one port each, host first.
    assert_eq!(
        start_to(&sent, addr(1)),
        "s:40001:B:203.0.113.7:50001;C:203.0.113.7:50002"
    );
    assert_eq!(
        start_to(&sent, addr(2)),
        "s:40002:A:203.0.113.7:50000;C:203.0.113.7:50002"
    );
    assert_eq!(
        start_to(&sent, addr(3)),
        "s:40003:A:203.0.113.7:50000;B:203.0.113.7:50001"
    );
    let stats = h.d.shard.relay_stats();
    assert_eq!(stats.sessions_relayed, 1);
    assert_eq!(stats.ports_in_use, 3);
    assert_eq!(stats.ports_total, 12);
    // Every re-send lists the same ports.
    let resent = h.advance(100);
    assert_eq!(
        start_to(&resent, addr(2)),
        "s:40002:A:203.0.113.7:50000;C:203.0.113.7:50002"
    );
}

#[test]
fn without_a_public_ip_the_address_the_start_arrived_on_is_listed() {
    let mut h = Harness::always();
    h.request(1, "h:R:A:2");
    h.request(2, "c:R:B");
    let mut out = Outbox::new();
    let local: IpAddr = "192.0.2.44".parse().unwrap();
    h.d.shard
        .handle_datagram_on(h.d.now, addr(1), Some(local), b"s:R:A", &mut out);
    let sent: Vec<_> = out.iter().map(|(to, p)| (to, p.to_vec())).collect();
    assert!(sent.contains(&(addr(2), b"s:40002:A:192.0.2.44:50000".to_vec())));
}

#[test]
fn a_public_ip_wins_over_the_arrival_address() {
    let mut relay = config(RelayMode::Always);
    relay.public_ip = Some("198.18.0.9".parse().unwrap());
    let mut h = Harness::with(relay, POOL);
    let sent = h.started("R", 1, 2);
    assert_eq!(start_to(&sent, addr(2)), "s:40002:A:198.18.0.9:50000");
}

#[test]
fn no_address_to_list_means_a_direct_start() {
    let mut h = Harness::always();
    h.request(1, "h:R:A:2");
    h.request(2, "c:R:B");
    let mut out = Outbox::new();
    h.d.shard
        .handle_datagram(h.d.now, addr(1), b"s:R:A", &mut out);
    let sent: Vec<_> = out.iter().map(|(to, p)| (to, p.to_vec())).collect();
    assert!(sent.contains(&(addr(2), b"s:40002:A:198.51.100.1:40001".to_vec())));
    assert_eq!(h.d.shard.relay_stats().fallbacks, 1);
    assert_eq!(h.d.shard.relay_stats().ports_in_use, 0);
}

#[test]
fn relay_off_starts_direct_and_counts_no_fallback() {
    let mut h = Harness::with(config(RelayMode::Off), POOL);
    let sent = h.started("R", 1, 2);
    assert_eq!(start_to(&sent, addr(2)), "s:40002:A:198.51.100.1:40001");
    assert_eq!(
        h.d.shard.relay_stats(),
        crate::core::RelayStats {
            ports_total: 12,
            ..Default::default()
        }
    );
}

// ---------------------------------------------------------------- forwarding

#[test]
fn greetings_teach_the_relay_who_is_where_and_reach_the_peer_rewritten() {
    let mut h = Harness::always();
    h.started("R", 1, 2); // A at 50000, B at 50001
    h.advance(2000);
    // A greets B's relay port from its NAT's mapping for it; B has not talked to the relay
    // yet, so it goes to B's rendezvous address, from A's relay port, aimed at B's own port.
    let sent = h.relay(50001, mapped(1, 61000), "g:A:40001:50001");
    assert_eq!(sent, vec![(50000, addr(2), "g:A:40001:40002".into())]);
    // B greets A's relay port from its own mapping: it reaches A where A talks to B from.
    let sent = h.relay(50000, mapped(2, 62000), "g:B:40002:50000");
    assert_eq!(
        sent,
        vec![(50001, mapped(1, 61000), "g:B:40002:40001".into())]
    );
    // Now both ways use the learned mappings.
    let sent = h.relay(50001, mapped(1, 61000), "g:A:40001:50001");
    assert_eq!(
        sent,
        vec![(50000, mapped(2, 62000), "g:A:40001:40002".into())]
    );
    // Confirmations name the sender's relay port, the one its peer must use.
    let sent = h.relay(50000, mapped(2, 62000), "c:B:40002");
    assert_eq!(sent, vec![(50001, mapped(1, 61000), "c:B:50001".into())]);
    let sent = h.relay(50001, mapped(1, 61000), "c:A:40001");
    assert_eq!(sent, vec![(50000, mapped(2, 62000), "c:A:50000".into())]);
    let sent = h.relay(50000, mapped(2, 62000), "y:B:40002");
    assert_eq!(sent, vec![(50001, mapped(1, 61000), "y:B:50001".into())]);
    // The countdown and the game's traffic pass unchanged, both ways.
    let sent = h.relay(50001, mapped(1, 61000), "s:3");
    assert_eq!(sent, vec![(50000, mapped(2, 62000), "s:3".into())]);
    let sent = h.relay(50000, mapped(2, 62000), "\u{1}game\u{0}bytes");
    assert_eq!(
        sent,
        vec![(50001, mapped(1, 61000), "\u{1}game\u{0}bytes".into())]
    );
    let stats = h.d.shard.relay_stats();
    assert_eq!(stats.datagrams, 8);
    assert_eq!(stats.dropped_strangers, 0);
}

#[test]
fn each_relay_port_learns_the_mapping_used_towards_it() {
    let mut h = Harness::always();
    h.started("R", 1, 3); // A 50000, B 50001, C 50002
                          // A symmetric NAT gives A a different port towards B's and C's relay ports.
    h.relay(50001, mapped(1, 61001), "g:A:40001:50001");
    h.relay(50002, mapped(1, 61002), "g:A:40001:50002");
    let to_a_from_b = h.relay(50000, mapped(2, 62000), "game");
    let to_a_from_c = h.relay(50000, mapped(3, 63000), "g:C:40003:50000");
    assert_eq!(to_a_from_b, vec![(50001, mapped(1, 61001), "game".into())]);
    assert_eq!(
        to_a_from_c,
        vec![(50002, mapped(1, 61002), "g:C:40003:40001".into())]
    );
}

#[test]
fn game_traffic_after_a_new_nat_mapping_is_recognised_by_its_ip() {
    let mut h = Harness::always();
    h.started("R", 1, 2);
    h.relay(50001, mapped(1, 61000), "g:A:40001:50001");
    h.relay(50000, mapped(2, 62000), "g:B:40002:50000");
    // A's NAT maps it anew after a pause: no name in game traffic, but only A has that IP.
    let sent = h.relay(50001, mapped(1, 61999), "game");
    assert_eq!(sent, vec![(50000, mapped(2, 62000), "game".into())]);
    // And B's traffic now goes to A's new mapping.
    let sent = h.relay(50000, mapped(2, 62000), "game");
    assert_eq!(sent, vec![(50001, mapped(1, 61999), "game".into())]);
}

// ---------------------------------------------------------------- no open proxy

#[test]
fn strangers_cannot_send_through_a_relay() {
    let mut h = Harness::always();
    h.started("R", 1, 2);
    let stranger = SocketAddr::from(([192, 0, 2, 66], 5555));
    // Not a member, even naming one.
    assert!(h.relay(50001, stranger, "g:A:40001:50001").is_empty());
    assert!(h.relay(50001, stranger, "hello").is_empty());
    // A port no relay holds.
    assert!(h
        .relay(50005, mapped(1, 61000), "g:A:40001:50005")
        .is_empty());
    // A member to its own relay port: nobody to forward to.
    assert!(h
        .relay(50000, mapped(1, 61000), "g:A:40001:50000")
        .is_empty());
    assert_eq!(h.d.shard.relay_stats().dropped_strangers, 3);
    assert_eq!(h.d.shard.relay_stats().dropped_unheld_port, 1);
    assert_eq!(h.d.shard.relay_stats().datagrams, 0);
}

#[test]
fn a_forged_datagram_cannot_redirect_a_players_traffic_to_another_ip() {
    let mut h = Harness::always();
    h.started("R", 1, 2);
    h.relay(50001, mapped(1, 61000), "g:A:40001:50001");
    h.relay(50000, mapped(2, 62000), "g:B:40002:50000");
    // Someone elsewhere claims to be A.
    let victim = SocketAddr::from(([192, 0, 2, 99], 80));
    assert!(h.relay(50001, victim, "g:A:40001:50001").is_empty());
    assert!(h.relay(50001, victim, "c:A:1").is_empty());
    // B's traffic still goes to A.
    let sent = h.relay(50000, mapped(2, 62000), "game");
    assert_eq!(sent, vec![(50001, mapped(1, 61000), "game".into())]);
}

#[test]
fn two_members_behind_one_ip_are_told_apart_by_name_only() {
    let mut h = Harness::always();
    h.request(1, "h:R:A:3");
    let same_home = SocketAddr::new(addr(1).ip(), 40101);
    h.d.datagram(same_home, None, b"c:R:B");
    h.drain();
    h.request(3, "c:R:C");
    h.request(1, "s:R:A"); // A 50000, B 50001, C 50002
                           // Game traffic from that IP to C's port: A or B? Nobody guesses.
    assert!(h.relay(50002, mapped(1, 61000), "game").is_empty());
    // Named, it is learned.
    let sent = h.relay(50002, mapped(1, 61000), "g:B:40101:50002");
    assert_eq!(sent, vec![(50001, addr(3), "g:B:40101:40003".into())]);
}

#[test]
fn a_greeting_for_a_neighbouring_relay_is_not_taken_for_a_member_at_the_same_ip() {
    let mut h = Harness::always();
    h.started("R", 1, 2); // A 50000, B 50001
                          // Session Q: C, and D from player 1's IP (the same household as A).
    h.request(3, "h:Q:C:2");
    let household = SocketAddr::new(addr(1).ip(), 41111);
    h.d.datagram(household, None, b"c:Q:D");
    h.drain();
    h.request(3, "s:Q:C"); // C 50002, D 50003
                           // A greets B's neighbourhood, and one greeting lands on C's port: A is no member of Q, and
                           // D, at A's IP, is not taken for A.
    assert!(h
        .relay(50002, mapped(1, 61000), "g:A:40001:50002")
        .is_empty());
    assert_eq!(h.d.shard.relay_stats().dropped_strangers, 1);
    // D's own traffic to C still goes out from D's port, and C's reaches D where D sends from.
    assert_eq!(
        h.relay(50002, mapped(1, 61003), "g:D:41111:50002"),
        vec![(50003, addr(3), "g:D:41111:40003".into())]
    );
    assert_eq!(
        h.relay(50003, mapped(3, 63000), "game"),
        vec![(50002, mapped(1, 61003), "game".into())]
    );
}

#[test]
fn a_namesake_behind_the_same_nat_in_another_session_is_told_apart_by_its_port() {
    let mut h = Harness::always();
    h.started("R", 1, 2); // A 50000, B 50001
                          // Session Q: C, and a second "A" from player 1's IP (the same carrier-grade NAT).
    h.request(3, "h:Q:C:2");
    let namesake = SocketAddr::new(addr(1).ip(), 41111);
    h.d.datagram(namesake, None, b"c:Q:A");
    h.drain();
    h.request(3, "s:Q:C"); // C 50002, A' 50003
                           // R's A greets B's neighbourhood and hits C's port: same name, same IP, but its own port
                           // is not the namesake's.
    assert!(h
        .relay(50002, mapped(1, 61000), "g:A:40001:50002")
        .is_empty());
    assert_eq!(h.d.shard.relay_stats().dropped_strangers, 1);
    // The namesake's own greeting gets through, and C's traffic reaches the namesake.
    assert_eq!(
        h.relay(50002, mapped(1, 61003), "g:A:41111:50002"),
        vec![(50003, addr(3), "g:A:41111:40003".into())]
    );
    assert_eq!(
        h.relay(50003, mapped(3, 63000), "game"),
        vec![(50002, mapped(1, 61003), "game".into())]
    );
}

#[test]
fn relayed_bytes_obey_the_session_budget() {
    let mut relay = config(RelayMode::Always);
    relay.limits.session_bytes_per_sec = 1000;
    let mut h = Harness::with(relay, POOL);
    h.started("R", 1, 2);
    let big = "x".repeat(600);
    assert_eq!(h.relay(50001, mapped(1, 61000), &big).len(), 1);
    assert!(h.relay(50001, mapped(1, 61000), &big).is_empty());
    assert_eq!(h.d.shard.relay_stats().dropped_budget, 1);
    // A second refills 1000 bytes.
    h.advance(1000);
    assert_eq!(h.relay(50001, mapped(1, 61000), &big).len(), 1);
}

#[test]
fn relayed_bytes_obey_the_senders_ip_budget_across_sessions() {
    let mut relay = config(RelayMode::Always);
    relay.limits.ip_bytes_per_sec = 1000;
    let mut h = Harness::with(relay, POOL);
    h.two_sessions_sharing_player_1s_ip();
    let big = "x".repeat(600);
    assert_eq!(h.relay(50001, mapped(1, 61000), &big).len(), 1);
    // The same IP, in the other session: its budget is spent.
    assert!(h.relay(50002, mapped(1, 61001), &big).is_empty());
    // C's IP has a budget of its own.
    assert_eq!(h.relay(50003, mapped(3, 63000), &big).len(), 1);
    assert_eq!(h.d.shard.relay_stats().dropped_budget, 1);
}

#[test]
fn a_sender_out_of_ip_budget_does_not_drain_its_sessions_budget() {
    let mut relay = config(RelayMode::Always);
    relay.limits.ip_bytes_per_sec = 1000;
    relay.limits.session_bytes_per_sec = 1000;
    let mut h = Harness::with(relay, POOL);
    h.two_sessions_sharing_player_1s_ip();
    // Player 1's IP spends its whole budget in session Q.
    let big = "x".repeat(1000);
    assert_eq!(h.relay(50002, mapped(1, 61001), &big).len(), 1);
    // In session R it is refused, again and again, and R's budget stays whole...
    for _ in 0..5 {
        assert!(h.relay(50001, mapped(1, 61000), "x").is_empty());
    }
    // ... for B, whose IP has budget of its own.
    assert_eq!(h.relay(50000, mapped(2, 62000), &big).len(), 1);
    assert_eq!(h.d.shard.relay_stats().dropped_budget, 5);
}

#[test]
fn a_relayed_start_goes_to_all_players_together_eight_times_within_a_second() {
    let mut h = Harness::always();
    let mut rounds: Vec<(Duration, Sent)> = vec![(h.elapsed(), h.started("R", 1, 3))];
    for _ in 0..12 {
        let sent = h.advance(100);
        if !sent.is_empty() {
            rounds.push((h.elapsed(), sent));
        }
    }
    assert_eq!(rounds.len(), 8, "{rounds:?}");
    for (i, (at, sent)) in rounds.iter().enumerate() {
        // Every round, at its 100 ms step, to all three players at once, listing relay ports.
        assert_eq!(*at, Duration::from_millis(100 * i as u64));
        let mut to: Vec<_> = sent.iter().map(|(via, a, _)| (*via, *a)).collect();
        to.sort();
        assert_eq!(to, vec![(0, addr(1)), (0, addr(2)), (0, addr(3))]);
        assert!(sent.iter().all(|(_, _, p)| p.contains(":203.0.113.7:5000")));
    }
    // Done by 0.7 s: well before the client binds its peer socket, 2 s after the first.
    assert!(rounds[7].0 < Duration::from_secs(1));
}

// ---------------------------------------------------------------- closing and the pool

#[test]
fn an_idle_relay_closes_and_its_ports_go_back_to_the_pool() {
    let mut h = Harness::always();
    h.started("R", 1, 2);
    h.advance(5_000);
    // Traffic keeps it open.
    assert_eq!(h.relay(50001, mapped(1, 61000), "g:A:40001:50001").len(), 1);
    h.advance(29_000);
    assert_eq!(h.d.shard.relay_stats().ports_in_use, 2);
    assert_eq!(h.relay(50000, mapped(2, 62000), "game").len(), 1);
    h.advance(30_001);
    let stats = h.d.shard.relay_stats();
    assert_eq!(stats.closed_idle, 1);
    assert_eq!(stats.closed_unused, 0);
    assert_eq!(stats.ports_in_use, 0);
    assert!(h.elapsed() >= Duration::from_secs(64));
    // Its ports now belong to nobody.
    assert!(h.relay(50000, mapped(2, 62000), "game").is_empty());
    assert_eq!(h.d.shard.relay_stats().dropped_unheld_port, 1);
}

#[test]
fn a_relay_nobody_sends_through_closes_after_relay_unused() {
    // A start forged from other people's addresses: nobody is there to use the relay.
    let mut h = Harness::always();
    h.started("R", 1, 2);
    h.advance(9_999);
    assert_eq!(h.d.shard.relay_stats().ports_in_use, 2);
    h.advance(2);
    let stats = h.d.shard.relay_stats();
    assert_eq!((stats.closed_unused, stats.closed_idle), (1, 0));
    assert_eq!(stats.ports_in_use, 0);
    // A relay used within the window lives on to its idle timeout instead.
    h.started("Q", 3, 2);
    h.advance(9_000);
    assert_eq!(h.relay(50003, mapped(3, 63000), "g:C:40003:50003").len(), 1);
    h.advance(20_000);
    assert_eq!(h.d.shard.relay_stats().ports_in_use, 2);
    assert_eq!(h.d.shard.relay_stats().closed_unused, 1);
}

#[test]
fn an_idle_timeout_shorter_than_the_unused_one_counts_from_the_first_datagram() {
    let mut relay = config(RelayMode::Always);
    relay.idle_timeout = Duration::from_secs(2);
    let mut h = Harness::with(relay, POOL);
    h.started("R", 1, 2);
    h.advance(1_000);
    assert_eq!(h.relay(50001, mapped(1, 61000), "g:A:40001:50001").len(), 1);
    h.advance(1_999);
    assert_eq!(h.d.shard.relay_stats().ports_in_use, 2);
    h.advance(2);
    let stats = h.d.shard.relay_stats();
    assert_eq!((stats.closed_idle, stats.ports_in_use), (1, 0));
}

#[test]
fn a_busy_relay_closes_at_the_end_of_its_lifetime() {
    let mut relay = config(RelayMode::Always);
    relay.lifetime = Duration::from_secs(60);
    let mut h = Harness::with(relay, POOL);
    h.started("R", 1, 2);
    for _ in 0..59 {
        h.advance(1000);
        assert_eq!(h.relay(50001, mapped(1, 61000), "game").len(), 1);
    }
    h.advance(1000);
    assert_eq!(h.d.shard.relay_stats().closed_lifetime, 1);
    assert!(h.relay(50001, mapped(1, 61000), "game").is_empty());
}

#[test]
fn an_empty_pool_falls_back_to_a_direct_start_and_refills_when_a_relay_closes() {
    let mut h = Harness::with(config(RelayMode::Always), 50000..50003);
    h.started("R", 1, 2); // takes 2 of 3 ports
    let sent = h.started("Q", 3, 2); // needs 2, 1 left: direct
    assert_eq!(start_to(&sent, addr(4)), "s:40004:C:198.51.100.3:40003");
    assert_eq!(h.d.shard.relay_stats().fallbacks, 1);
    h.advance(31_000); // R's relay idles out
    let sent = h.started("P", 5, 2);
    // The port never used comes first, then the longest free.
    assert_eq!(start_to(&sent, addr(6)), "s:40006:E:203.0.113.7:50002");
    assert_eq!(start_to(&sent, addr(5)), "s:40005:F:203.0.113.7:50000");
    assert_eq!(h.d.shard.relay_stats().sessions_relayed, 2);
}

#[test]
fn one_ip_holds_at_most_its_share_of_relays() {
    let mut relay = config(RelayMode::Always);
    relay.limits.max_sessions_per_ip = 1;
    let mut h = Harness::with(relay, POOL);
    h.started("R", 1, 2);
    // Player 1's IP again, in another session: over its cap.
    h.request(3, "h:Q:C:2");
    let again = SocketAddr::new(addr(1).ip(), 41111);
    h.d.datagram(again, None, b"c:Q:A");
    h.drain();
    let sent = h.request(3, "s:Q:C");
    assert_eq!(start_to(&sent, addr(3)), "s:40003:A:198.51.100.1:41111");
    assert_eq!(h.d.shard.relay_stats().fallbacks, 1);
}

// ---------------------------------------------------------------- the auto policy

/// Plays `group` (name, address; host first) into session `session` and starts it; returns
/// what the start sent. The start arrives on the relay's address, as on a public server.
fn start_group(h: &mut Harness, session: &str, group: &[(&str, SocketAddr)]) -> Sent {
    let local = Some(RELAY_IP.parse().unwrap());
    let (host, host_addr) = group[0];
    let max = group.len().max(2);
    let mut requests = vec![(host_addr, format!("h:{session}:{host}:{max}"))];
    for &(name, at) in &group[1..] {
        requests.push((at, format!("c:{session}:{name}")));
    }
    requests.push((host_addr, format!("s:{session}:{host}")));
    for (from, text) in requests {
        h.d.datagram(from, local, text.as_bytes());
    }
    h.drain()
}

/// The start message in `sent` to `to` (other replies to it skipped).
fn start_message(sent: &Sent, to: SocketAddr) -> String {
    let starts: Vec<_> = sent
        .iter()
        .filter(|(_, a, p)| *a == to && p.starts_with("s:"))
        .collect();
    assert_eq!(starts.len(), 1, "one start message to {to} in {sent:?}");
    starts[0].2.clone()
}

/// Whether the start message `sent` to `to` lists relay ports (at the relay's address).
fn relayed_to(sent: &Sent, to: SocketAddr) -> bool {
    start_message(sent, to).contains(RELAY_IP)
}

/// A start message to `to` that lists its peers at their own addresses, as the original does.
fn direct_to(sent: &Sent, to: SocketAddr) -> bool {
    !relayed_to(sent, to)
}

/// Player addresses behind one public IP (a carrier-grade NAT): 198.51.100.200, port `port`.
fn cgnat(port: u16) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, 200], port))
}

#[test]
fn auto_relays_a_host_that_starts_again_soon_after() {
    let mut h = Harness::with(config(RelayMode::Auto), POOL);
    let first = h.started("R", 1, 2);
    assert_eq!(start_to(&first, addr(2)), "s:40002:A:198.51.100.1:40001");
    // The punch failed; 20 s later the same host (another port, another name) tries again.
    h.advance(20_000);
    h.d.datagram(mapped(1, 45000), None, b"h:R2:A:2");
    h.request(2, "c:R2:B");
    let mut out = Outbox::new();
    let local = Some(RELAY_IP.parse().unwrap());
    h.d.shard
        .handle_datagram_on(h.d.now, mapped(1, 45000), local, b"s:R2:A", &mut out);
    let sent: Vec<_> = out.iter().map(|(to, p)| (to, p.to_vec())).collect();
    assert!(sent.contains(&(addr(2), b"s:40002:A:203.0.113.7:50000".to_vec())));
    assert_eq!(h.d.shard.relay_stats().sessions_relayed, 1);
}

#[test]
fn auto_relays_the_same_group_retrying_under_the_same_or_a_new_name() {
    for retry_name in ["R", "Fresh"] {
        let mut h = Harness::with(config(RelayMode::Auto), POOL);
        let group = [("Ana", addr(1)), ("Ben", addr(2))];
        let first = start_group(&mut h, "R", &group);
        assert_eq!(
            start_message(&first, addr(2)),
            "s:40002:Ana:198.51.100.1:40001"
        );
        // The plugin gives up 12 to 20 s after the start; the game hosts again.
        h.advance(15_000);
        // A symmetric NAT maps the retry to new ports: the IPs and names are what match.
        let again = [("Ana", mapped(1, 41001)), ("Ben", mapped(2, 42002))];
        let sent = start_group(&mut h, retry_name, &again);
        assert!(
            relayed_to(&sent, again[0].1) && relayed_to(&sent, again[1].1),
            "{sent:?}"
        );
        let stats = h.d.shard.relay_stats();
        assert_eq!(
            (stats.auto_direct_new, stats.auto_retries),
            (1, 1),
            "{stats:?}"
        );
        assert_eq!(stats.sessions_relayed, 1);
    }
}

#[test]
fn auto_keeps_groups_behind_one_ip_apart() {
    let mut h = Harness::with(config(RelayMode::Auto), POOL);
    // Two groups behind one carrier-grade NAT, starting seconds apart, then two more.
    let groups = [
        [("Ana", cgnat(1001)), ("Ben", cgnat(1002))],
        [("Cy", cgnat(1003)), ("Dee", cgnat(1004))],
        [("Eve", cgnat(1005)), ("Ben", addr(2))],
        [("Ana", addr(1)), ("Finn", cgnat(1006))],
    ];
    for (n, group) in groups.iter().enumerate() {
        let sent = start_group(&mut h, &format!("G{n}"), group);
        assert!(
            direct_to(&sent, group[0].1) && direct_to(&sent, group[1].1),
            "{sent:?}"
        );
        h.advance(2_000);
    }
    let stats = h.d.shard.relay_stats();
    assert_eq!(
        (stats.auto_direct_new, stats.auto_retries),
        (4, 0),
        "{stats:?}"
    );
}

#[test]
fn auto_relays_a_retry_with_one_player_more_or_fewer() {
    // The pair whose punch failed is still there: one player who gave up, or one who joined,
    // does not make the next attempt punch.
    let mut h = Harness::with(config(RelayMode::Auto), POOL);
    let trio = [("Ana", addr(1)), ("Ben", addr(2)), ("Cy", addr(3))];
    assert!(direct_to(&start_group(&mut h, "R", &trio), addr(2)));
    h.advance(18_000);
    let fewer = start_group(&mut h, "R", &trio[..2]);
    assert!(relayed_to(&fewer, addr(2)), "{fewer:?}");
    // Its relay stays open (the players are there); a fourth joins for the next attempt.
    h.advance(18_000);
    let more = [trio[0], trio[1], trio[2], ("Dee", addr(4))];
    let sent = start_group(&mut h, "Q", &more);
    assert!(relayed_to(&sent, addr(4)), "{sent:?}");
    assert_eq!(h.d.shard.relay_stats().auto_retries, 2);
}

#[test]
fn auto_starts_a_rematch_after_the_window_direct() {
    let mut h = Harness::with(config(RelayMode::Auto), POOL);
    let group = [("Ana", addr(1)), ("Ben", addr(2))];
    start_group(&mut h, "R", &group);
    // A real game: the next start of the same group comes after the window.
    h.advance(60_000);
    let rematch = start_group(&mut h, "R", &group);
    assert!(direct_to(&rematch, addr(2)), "{rematch:?}");
    assert_eq!(h.d.shard.relay_stats().auto_direct_new, 2);
}

#[test]
fn auto_starts_direct_when_the_previous_start_is_old() {
    let mut h = Harness::with(config(RelayMode::Auto), POOL);
    h.started("R", 1, 2);
    h.advance(61_000);
    let again = h.started("Q", 1, 2);
    assert_eq!(start_to(&again, addr(2)), "s:40002:A:198.51.100.1:40001");
    // Other hosts are not affected by player 1's starts.
    let other = h.started("P", 3, 2);
    assert_eq!(start_to(&other, addr(4)), "s:40004:C:198.51.100.3:40003");
    assert_eq!(h.d.shard.relay_stats().sessions_relayed, 0);
}

#[test]
fn players_on_the_servers_machine_are_never_relayed_by_auto_but_are_by_always() {
    let loopback = [
        ("Ana", SocketAddr::from(([127, 0, 0, 1], 5001))),
        ("Ben", SocketAddr::from(([127, 0, 0, 1], 5002))),
    ];
    // A player on the server's own public address (a game run on the server box) is local too.
    let own = [
        ("Ana", SocketAddr::from(([127, 0, 0, 1], 5003))),
        ("Ben", SocketAddr::new(RELAY_IP.parse().unwrap(), 5004)),
    ];
    let mut h = Harness::with(config(RelayMode::Auto), POOL);
    for round in 0..3 {
        for (n, group) in [loopback, own].iter().enumerate() {
            let sent = start_group(&mut h, &format!("L{round}x{n}"), group);
            assert_eq!(
                start_message(&sent, group[1].1),
                format!(
                    "s:{}:Ana:127.0.0.1:{}",
                    group[1].1.port(),
                    group[0].1.port()
                )
            );
            h.advance(1_000);
        }
    }
    let stats = h.d.shard.relay_stats();
    assert_eq!((stats.auto_direct_local, stats.sessions_relayed), (6, 0));
    let mut h = Harness::always();
    let sent = start_group(&mut h, "L", &loopback);
    assert!(relayed_to(&sent, loopback[1].1), "{sent:?}");
}

// ---------------------------------------------------------------- shared limits

#[test]
fn the_ip_cap_counts_an_ip_once_per_session_and_frees_on_leave() {
    let limits = RelayLimits::new(RelayLimitsConfig {
        max_sessions_per_ip: 1,
        ..RelayLimitsConfig::default()
    });
    let a = crate::ip_key::IpKey::from(addr(1).ip());
    let b = crate::ip_key::IpKey::from(addr(2).ip());
    assert!(limits.try_join(&[a, a, b], 0));
    // b is at its cap: nothing is taken, a included.
    assert!(!limits.try_join(&[b], 0));
    assert!(!limits.try_join(&[a], 0));
    assert_eq!(limits.ips_in_use(), 2);
    limits.leave(&[a, a, b]);
    assert_eq!(limits.ips_in_use(), 0);
    assert!(limits.try_join(&[b, a], 0));
    // A failed join leaves no trace of the IPs it took before failing.
    let c = crate::ip_key::IpKey::from(addr(3).ip());
    assert!(!limits.try_join(&[c, a], 0));
    assert_eq!(limits.ips_in_use(), 2);
}
