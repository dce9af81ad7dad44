//! Legitimate traffic never touches the send budgets: simulated time through the session core
//! and the budgets with their default sizes, exactly as the runtime chains them.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rabid_punch::budget::{BudgetConfig, SendBudgets};
use rabid_punch::core::testing::Driver;
use rabid_punch::core::{Clock, CoreConfig, Shard};

/// The core and the budgets, driven with a made-up clock.
struct Sim {
    /// The shard on a fake clock, behind the server's front door.
    d: Driver,
    budgets: SendBudgets,
    delivered: Vec<(SocketAddr, String)>,
    refused: usize,
}

impl Sim {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            d: Driver::new(Shard::new(&CoreConfig::default(), now), now),
            budgets: SendBudgets::new(BudgetConfig::default(), Clock::new(now)),
            delivered: Vec::new(),
            refused: 0,
        }
    }

    /// Sends what the shard queued, as far as the budgets let it.
    fn flush(
        d: &mut Driver,
        budgets: &SendBudgets,
        delivered: &mut Vec<(SocketAddr, String)>,
        refused: &mut usize,
    ) {
        for (to, payload) in d.out.iter() {
            match budgets.try_spend(to.ip(), payload.len(), d.now) {
                Ok(()) => delivered.push((to, String::from_utf8_lossy(payload).into_owned())),
                Err(_) => *refused += 1,
            }
        }
        d.out.clear();
    }

    fn send(&mut self, from: SocketAddr, text: &str) {
        self.budgets.on_received(from.ip(), text.len(), self.d.now);
        self.d.receive(from, None, text.as_bytes());
        Self::flush(
            &mut self.d,
            &self.budgets,
            &mut self.delivered,
            &mut self.refused,
        );
    }

    fn advance(&mut self, ms: u64) {
        let (budgets, delivered, refused) = (&self.budgets, &mut self.delivered, &mut self.refused);
        self.d.advance(Duration::from_millis(ms), |d| {
            Self::flush(d, budgets, delivered, refused)
        });
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
