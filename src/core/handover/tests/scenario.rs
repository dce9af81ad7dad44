//! The differential test: a server of 2 shards runs a rich scenario, hands over at 6 020 ms to
//! a server of 3 shards (another front door, other pool shares), and from then on both get the
//! same inputs and must send the same datagrams at the same times, and agree on their counts,
//! caps, relay limits and listings, until every session and relay is gone.

use super::*;

/// The old server and, once it handed over, the new one: every input goes to both, and what
/// they send must be the same.
struct Pair {
    old: Cluster,
    new: Option<Cluster>,
}

impl Pair {
    fn both(&mut self, step: impl Fn(&mut Cluster)) -> Sent {
        step(&mut self.old);
        let old = self.old.take();
        if let Some(new) = &mut self.new {
            step(new);
            let t = self.old.ms();
            assert_eq!(new.take(), old, "what was sent at {t} ms");
            assert_eq!(new.summary(), self.old.summary(), "the state at {t} ms");
        }
        old
    }

    fn send(&mut self, n: u16, text: &str) -> Sent {
        self.both(|c| c.send(addr(n), text))
    }

    fn relay(&mut self, port: u16, from: SocketAddr, text: &str) -> Sent {
        self.both(|c| c.relay(port, from, text))
    }

    fn at(&mut self, t: u64) -> Sent {
        self.both(|c| c.advance_to(t))
    }

    fn pings(&mut self, players: &[(u16, &str, &str)]) {
        for (n, session, name) in players {
            self.send(*n, &format!("p:{session}:{name}"));
        }
    }
}

const POOL: std::ops::Range<u16> = 50000..50024;

/// Runs the scenario under `mode`; returns what the old server sent after the hand-over.
fn scenario(mode: RelayMode) {
    let pool: Vec<u16> = POOL.collect();
    let old = Cluster::new(config(mode), Instant::now(), 2, &pool);
    let mut s = Pair { old, new: None };

    // Before the hand-over, the old server alone.
    s.send(11, "h:Old:Kim:4");
    s.send(12, "c:Old:Lu");
    s.send(11, "d:Old:True:1.0:Draft");
    s.send(9, "h:Time:Ian:2");
    s.send(6, "h:Run:Fay:3");
    s.send(7, "c:Run:Gus");
    s.send(8, "c:Run:Hal");
    s.send(13, "h:Two:Mo:2");
    s.send(14, "c:Two:Nia");
    s.send(17, "h:Tri:Pia:2");
    s.send(18, "c:Tri:Quy");
    s.at(10);
    s.send(1, "h:Pub:Ana:4:pw");
    s.send(2, "c:Pub:Ben:pw");
    s.send(3, "c:Pub:Cy:pw");
    assert!(s
        .send(1, "k:Pub:Cy")
        .iter()
        .any(|m| m.3 == "error:kicked_by_host"));
    s.send(1, "d:Pub:True:1.0:Duel");
    s.at(20);
    s.send(4, "h:Game:Dee:3");
    s.send(5, "c:Game:Eve");
    assert_eq!(s.send(4, "a:1:Game:cards:1:2.0:Duel:fun")[0].3, "a:1:ok");
    s.send(5, "m:Game:Eve:hello");
    // Two lobbies created in one millisecond, listed in the other order: their order in the
    // directory is the order they were listed in.
    s.send(15, "h:Xa:Mia:2");
    s.send(16, "h:Yb:Noa:2");
    s.send(16, "d:Yb:True:1.0:Duel");
    s.send(15, "d:Xa:True:1.0:Duel");
    s.at(100);
    let two = relay_ports(&s.send(13, "s:Two:Mo"));
    // Tri's relay never carries anything: it closes 10 s after its start, at 10 100 ms.
    let tri = relay_ports(&s.send(17, "s:Tri:Pia"));
    assert_eq!(tri.len(), two.len());
    s.at(200);
    if let (Some(&nia), Some(_)) = (two.get("Nia"), two.get("Mo")) {
        // Two's only relayed datagram: the relay closes 30 s after it.
        assert_eq!(s.relay(nia, addr(13), "hi").len(), 1);
    }
    s.at(1000);
    s.send(10, "c:Time:Jo");
    let everyone = [
        (11, "Old", "Kim"),
        (12, "Old", "Lu"),
        (1, "Pub", "Ana"),
        (2, "Pub", "Ben"),
        (4, "Game", "Dee"),
        (5, "Game", "Eve"),
        (9, "Time", "Ian"),
        (6, "Run", "Fay"),
        (7, "Run", "Gus"),
        (8, "Run", "Hal"),
        (15, "Xa", "Mia"),
        (16, "Yb", "Noa"),
    ];
    for t in [2000, 4000] {
        s.at(t);
        s.pings(&everyone);
    }
    s.at(5500);
    // Ben falls silent from 4 000 ms: he times out at 9 000, after the hand-over.
    s.pings(&everyone[..3]);
    s.pings(&everyone[4..]);
    s.at(5800);
    let started = s.send(6, "s:Run:Fay");
    let ports = relay_ports(&started);
    let relayed = mode == RelayMode::Always;
    assert_eq!(ports.len(), if relayed { 3 } else { 0 }, "{started:?}");
    s.at(5850);
    s.send(7, "y:Run:Gus");
    if relayed {
        // Gus greets Fay's relay port from another NAT mapping: learned, and forwarded.
        let greeting = format!("g:Gus:40007:{}", ports["Fay"]);
        assert_eq!(s.relay(ports["Fay"], mapped(7), &greeting).len(), 1);
        // Fay answers Gus's relay port: it reaches Gus at the mapping he uses towards Fay.
        let sent = s.relay(ports["Gus"], addr(6), "hello");
        assert_eq!(sent[0].2, mapped(7));
    }
    s.at(6000);
    s.pings(&everyone[..3]);
    s.pings(&everyone[4..7]);
    s.pings(&everyone[10..]);
    s.at(6010);
    if relayed {
        // Most of Run's byte budget, spent before the hand-over.
        assert_eq!(s.relay(ports["Gus"], addr(6), &"x".repeat(60)).len(), 1);
    }
    // Jo, silent since 1 000 ms, timed out at 6 000: repeats of player_timeout are pending.
    s.at(6020);

    // The hand-over: from now on both servers get every input.
    s.new = Some(s.old.handover(3, &pool));
    s.both(|_| {});
    let new = s.new.as_ref().unwrap();
    assert_eq!(
        new.shards[0].repeats().len(),
        1,
        "Jo's repeats went to shard 0"
    );

    let sent = s.at(6050);
    assert_eq!(sent, [(6050, 0, addr(10), "error:player_timeout".into())]);
    if relayed {
        // To Gus at the mapping he used towards Fay before the hand-over.
        assert_eq!(s.relay(ports["Gus"], addr(6), "data")[0].2, mapped(7));
        // What is left of the budget: 3 of these (a full one would take 9).
        let burst: usize = (0..10)
            .map(|_| s.relay(ports["Gus"], addr(6), "0123456789").len())
            .sum();
        assert_eq!(burst, 3);
        s.relay(ports["Fay"], mapped(7), "y:Gus:40007");
        let greeting = format!("g:Hal:40008:{}", ports["Fay"]);
        s.relay(ports["Fay"], addr(8), &greeting);
    }
    s.send(8, "y:Run:Hal");
    // The fourth round of the start, to Fay alone: Gus and Hal confirmed.
    let round: Vec<_> = s.at(6150).into_iter().map(|m| (m.0, m.2)).collect();
    assert_eq!(round, [(6100, addr(6)), (6100, addr(10))]);
    assert_eq!(s.send(3, "c:Pub:Cy:pw")[0].3, "error:kicked_by_host");
    assert_eq!(s.send(20, "c:Pub:Zed")[0].3, "error:password_mismatch");
    s.send(20, "c:Pub:Zed:pw");
    s.send(30, "l:");
    s.send(30, &format!("b:1:cards::::n::{}", "x".repeat(200)));
    s.send(30, "q:1:cards:2.0:xxxxxxxxxxxxxxxxxxxx");
    s.send(21, "h:New:Ned:2");
    s.send(22, "c:New:Ola");
    s.send(4, "a:1:Game:cards:1:2.1:Duel:more fun");
    if !relayed {
        // A start after the hand-over; relayed, its ports would come from other pools.
        s.send(21, "s:New:Ned");
    }
    let lobbies = [
        (11, "Old", "Kim"),
        (12, "Old", "Lu"),
        (1, "Pub", "Ana"),
        (20, "Pub", "Zed"),
        (4, "Game", "Dee"),
        (5, "Game", "Eve"),
        (21, "New", "Ned"),
        (22, "New", "Ola"),
        (15, "Xa", "Mia"),
        (16, "Yb", "Noa"),
    ];
    let mut timeouts = Vec::new();
    for t in (7000..=72_000).step_by(1000) {
        let sent = s.at(t);
        for (t, _, to, payload) in sent {
            let timeout = ["error:player_timeout", "error:session_timeout"].contains(&&*payload);
            if timeout && !timeouts.iter().any(|&(_, seen)| seen == to) {
                timeouts.push((t, to)); // the first of its repeats
            }
        }
        s.pings(&lobbies);
        if relayed && t == 8000 {
            s.relay(ports["Gus"], addr(6), "later");
        }
        if relayed && t == 40_000 {
            // Idle since 8 000 ms: closed at 38 000, on both.
            assert!(s.relay(ports["Gus"], addr(6), "too late").is_empty());
        }
    }
    // Ben, silent since 4 000 ms; Ian, since 6 000; then the lobbies' players at the ends of
    // their lifetimes (the first of the repeats to each).
    let expected: Vec<_> = [
        (9000, 2),
        (11_000, 9),
        (60_000, 11),
        (60_000, 12),
        (60_010, 1),
    ]
    .into_iter()
    .chain([
        (60_010, 20),
        (60_020, 4),
        (60_020, 5),
        (60_020, 15),
        (60_020, 16),
        (66_150, 21),
        (66_150, 22),
    ])
    // Started when direct: forgotten after its start, not timed out.
    .filter(|&(_, n)| relayed || n < 21)
    .map(|(t, n)| (t, addr(n)))
    .collect();
    assert_eq!(timeouts, expected);
    let new = s.new.as_ref().unwrap();
    let left: usize = new.shards.iter().map(Shard::sessions).sum();
    assert_eq!(left, 0, "every session ended");
    assert_eq!(
        new.shared.relay_limits.ips_in_use(),
        0,
        "every relay closed"
    );
}

#[test]
fn a_relayed_server_hands_over_to_more_shards_and_runs_on_the_same() {
    scenario(RelayMode::Always);
}

#[test]
fn a_direct_server_hands_over_to_more_shards_and_runs_on_the_same() {
    scenario(RelayMode::Off);
}

#[test]
fn a_retry_just_after_the_hand_over_is_still_recognised() {
    let pool: Vec<u16> = POOL.collect();
    let mut old = Cluster::new(config(RelayMode::Auto), Instant::now(), 2, &pool);
    for (n, text) in [(1, "h:A1:Ana:2"), (2, "c:A1:Ben"), (1, "s:A1:Ana")] {
        old.send(addr(n), text);
    }
    assert!(
        relay_ports(&old.take()).is_empty(),
        "a new group starts direct"
    );
    old.advance_to(20_000);
    let mut new = old.handover(3, &pool);
    for c in [&mut old, &mut new] {
        for (n, text) in [(1, "h:A2:Ana:2"), (2, "c:A2:Ben"), (1, "s:A2:Ana")] {
            c.send(addr(n), text);
        }
        assert_eq!(relay_ports(&c.take()).len(), 2, "the retry is relayed");
    }
}
