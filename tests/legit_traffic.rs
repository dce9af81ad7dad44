//! Legitimate traffic never touches the send budgets: simulated time through the session core
//! and the budgets with their default sizes, exactly as the runtime chains them.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rabid_punch::budget::{BudgetConfig, SendBudgets};
use rabid_punch::core::{Clock, CoreConfig, Shard};
use rabid_punch::outbox::Outbox;

/// The core and the budgets, driven with a made-up clock.
struct Sim {
    shard: Shard,
    budgets: SendBudgets,
    out: Outbox,
    now: Instant,
    delivered: Vec<(SocketAddr, String)>,
    refused: usize,
}

impl Sim {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            shard: Shard::new(&CoreConfig::default(), now),
            budgets: SendBudgets::new(BudgetConfig::default(), Clock::new(now)),
            out: Outbox::new(),
            now,
            delivered: Vec::new(),
            refused: 0,
        }
    }

    fn flush(&mut self) {
        for (to, payload) in self.out.iter() {
            match self.budgets.try_spend(to.ip(), payload.len(), self.now) {
                Ok(()) => self
                    .delivered
                    .push((to, String::from_utf8_lossy(payload).into_owned())),
                Err(_) => self.refused += 1,
            }
        }
        self.out.clear();
    }

    fn send(&mut self, from: SocketAddr, text: &str) {
        self.budgets.on_received(from.ip(), text.len(), self.now);
        self.shard
            .handle_datagram(self.now, from, text.as_bytes(), &mut self.out);
        self.flush();
    }

    fn advance(&mut self, ms: u64) {
        let target = self.now + Duration::from_millis(ms);
        while let Some(deadline) = self.shard.next_timeout().filter(|d| *d <= target) {
            self.now = self.now.max(deadline);
            self.shard.handle_timeout(self.now, &mut self.out);
            self.flush();
        }
        self.now = target;
    }
}

fn at(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::from(ip), port)
}

/// Player names as long as the protocol allows, so that every reply is as big as it gets.
fn name(i: usize) -> String {
    format!("Player{i:06}")
}

#[test]
fn a_12_player_lobby_behind_one_address_pings_30s_and_starts_without_a_drop() {
    let mut sim = Sim::new();
    let players: Vec<SocketAddr> = (0..12).map(|i| at([203, 0, 113, 5], 40000 + i)).collect();
    sim.send(players[0], &format!("h:Lobby12345:{}:12", name(0)));
    for (i, &p) in players.iter().enumerate().skip(1) {
        sim.advance(100);
        sim.send(p, &format!("c:Lobby12345:{}", name(i)));
    }
    // Everybody pings twice a second for 30 s; the host starts one second after the last join.
    for tick in 0..60 {
        sim.advance(500);
        for (i, &p) in players.iter().enumerate() {
            sim.send(p, &format!("p:Lobby12345:{}", name(i)));
        }
        if tick == 1 {
            assert_eq!(sim.refused, 0);
        }
    }
    sim.send(players[0], &format!("s:Lobby12345:{}", name(0)));
    // The Godot client never confirms: every player gets all 8 copies.
    sim.advance(1000);
    assert_eq!(sim.refused, 0, "legitimate replies were dropped");
    for &p in &players {
        let starts = sim
            .delivered
            .iter()
            .filter(|(to, m)| *to == p && m.starts_with("s:"))
            .count();
        assert_eq!(starts, 8, "player {p}");
    }
}

#[test]
fn eight_players_of_different_sessions_behind_one_carrier_nat_see_no_drop() {
    let mut sim = Sim::new();
    let shared = [100, 64, 0, 1];
    for s in 0..8u16 {
        // Each session: a host elsewhere, 10 other players elsewhere, and one player behind the
        // shared address; all 12 ping twice a second, for 30 s, then the host starts.
        let session = format!("Cgnat{s}");
        let host = at([198, 51, 100, s as u8 + 1], 40000);
        sim.send(host, &format!("h:{session}:{}:12", name(0)));
        for i in 1..11 {
            sim.send(
                at([192, 0, 2, (s * 11 + i) as u8], 40000),
                &format!("c:{session}:{}", name(i as usize)),
            );
        }
        sim.send(at(shared, 50000 + s), &format!("c:{session}:{}", name(11)));
    }
    for _ in 0..60 {
        sim.advance(500);
        for s in 0..8u16 {
            sim.send(at(shared, 50000 + s), &format!("p:Cgnat{s}:{}", name(11)));
            sim.send(
                at([198, 51, 100, s as u8 + 1], 40000),
                &format!("p:Cgnat{s}:{}", name(0)),
            );
            for i in 1..11 {
                sim.send(
                    at([192, 0, 2, (s * 11 + i) as u8], 40000),
                    &format!("p:Cgnat{s}:{}", name(i as usize)),
                );
            }
        }
    }
    for s in 0..8u16 {
        sim.send(
            at([198, 51, 100, s as u8 + 1], 40000),
            &format!("s:Cgnat{s}:{}", name(0)),
        );
    }
    sim.advance(1000);
    assert_eq!(sim.refused, 0, "legitimate replies were dropped");
    let starts_behind_nat = sim
        .delivered
        .iter()
        .filter(|(to, m)| to.ip() == IpAddr::from(shared) && m.starts_with("s:"))
        .count();
    assert_eq!(starts_behind_nat, 8 * 8);
}
