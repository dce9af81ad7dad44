//! Peer-phase tests on a fake clock and a fake network: no sockets, no sleeps.

use super::*;
use std::net::{IpAddr, Ipv4Addr};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One simulated player: its state machine, its public IP, the local port it has bound, and
/// the shift its "NAT" adds to that port on the way out.
struct Node {
    phase: PeerPhase,
    ip: IpAddr,
    bound: Option<u16>,
    shift: u16,
    done_at: Option<Duration>,
    sent: Vec<(Duration, SocketAddr, String)>,
}

impl Node {
    fn public(&self) -> Option<SocketAddr> {
        self.bound.map(|p| SocketAddr::new(self.ip, p + self.shift))
    }
}

/// A network that delivers at once, unless `drop(from_node, to_node, text)` says otherwise.
struct Net<F: FnMut(usize, usize, &str) -> bool> {
    t0: Instant,
    nodes: Vec<Node>,
    drop: F,
}

const NAMES: [&str; 4] = ["host", "bob", "carol", "dave"];

fn ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10 + i as u8))
}

fn port(i: usize) -> u16 {
    40000 + 100 * i as u16
}

fn start_for(i: usize, n: usize) -> StartInfo {
    StartInfo {
        own_port: port(i),
        peers: (0..n)
            .filter(|&j| j != i)
            .map(|j| PeerAddr {
                name: NAMES[j].to_string(),
                addr: SocketAddr::new(ip(j), port(j)),
            })
            .collect(),
    }
}

impl<F: FnMut(usize, usize, &str) -> bool> Net<F> {
    fn new(n: usize, drop: F) -> Self {
        let t0 = Instant::now();
        let nodes = (0..n)
            .map(|i| Node {
                phase: PeerPhase::new(NAMES[i], i == 0, &start_for(i, n), t0),
                ip: ip(i),
                bound: None,
                shift: 0,
                done_at: None,
                sent: Vec::new(),
            })
            .collect();
        Net { t0, nodes, drop }
    }

    /// Runs until every node is done or 60 simulated seconds passed.
    fn run(&mut self) {
        loop {
            let next = self
                .nodes
                .iter()
                .filter_map(|n| n.phase.poll_timeout())
                .min();
            let Some(now) = next else { return };
            assert!(now - self.t0 < Duration::from_secs(60), "phase did not end");
            for i in 0..self.nodes.len() {
                self.nodes[i].phase.handle_timeout(now);
                self.flush(i, now);
            }
        }
    }

    fn flush(&mut self, i: usize, now: Instant) {
        while let Some(Action::Bind(p)) = self.nodes[i].phase.poll_action() {
            self.nodes[i].bound = Some(p);
        }
        let from = self.nodes[i].public().expect("sent before binding");
        while let Some((to, data)) = self.nodes[i].phase.poll_transmit() {
            let text = String::from_utf8(data).unwrap();
            self.nodes[i].sent.push((now - self.t0, to, text.clone()));
            let target = self.nodes.iter().position(|n| n.public() == Some(to));
            if let Some(j) = target {
                if !(self.drop)(i, j, &text) {
                    self.nodes[j]
                        .phase
                        .handle_datagram(now, from, text.as_bytes());
                    self.flush(j, now);
                }
            }
        }
        if self.nodes[i].phase.is_done() && self.nodes[i].done_at.is_none() {
            self.nodes[i].done_at = Some(now - self.t0);
        }
    }

    fn outcome(&mut self, i: usize) -> Result<Punched, Error> {
        self.nodes[i].phase.take_outcome().expect("no outcome")
    }
}

/// Entering confirmations: 2 s wait + 86 ticks of greetings (85 sends, then the end of the window) + 5.25 s.
const CONFIRMING_AT: Duration = Duration::from_millis(2000 + 86 * 50 + 5250);

#[test]
fn two_players_punch_with_godot_timings() {
    let mut net = Net::new(2, |_, _, _| false);
    net.run();
    let host = net.outcome(0).unwrap();
    let client = net.outcome(1).unwrap();
    assert_eq!(host.self_port, port(0));
    assert_eq!(host.host, None);
    assert!(host.peers[0].confirmed);
    assert_eq!(client.self_port, port(1));
    assert_eq!(client.host, Some(SocketAddr::new(ip(0), port(0))));
    // Host: switches to s:3 2 s into confirmations, on the same instant as its 40th tick,
    // which already sends s:3 (timers go before ticks); the client answers y: on its own tick
    // of that instant, which ends the host at once. The client succeeds 3 s after the s:3.
    let switch = CONFIRMING_AT + HOST_SECONDS_TO_START;
    assert_eq!(net.nodes[0].done_at, Some(switch));
    assert_eq!(net.nodes[1].done_at, Some(switch + Duration::from_secs(3)));
    // The host never sends c: after the switch, and its first s:3 goes out on the first tick.
    let host_sent = &net.nodes[0].sent;
    assert!(host_sent
        .iter()
        .all(|(t, _, m)| m != "c:host:40000" || *t < switch));
    let first_order = host_sent.iter().find(|(_, _, m)| m == "s:3").unwrap();
    assert_eq!(first_order.0, switch);
    // The client's y: carries its port.
    assert!(net.nodes[1].sent.iter().any(|(_, _, m)| m == "y:bob:40100"));
}

#[test]
fn greetings_sweep_the_window_five_times_per_port() {
    let mut net = Net::new(2, |_, _, _| false);
    net.run();
    let greetings: Vec<_> = net.nodes[1]
        .sent
        .iter()
        .filter(|(_, _, m)| m.starts_with("g:"))
        .collect();
    assert_eq!(greetings.len(), 17 * 5);
    let mut expected_ports = vec![port(0)];
    expected_ports.extend((port(0) - 8..=port(0) + 8).filter(|&p| p != port(0)));
    for (k, (t, to, text)) in greetings.iter().enumerate() {
        let slot = k / 5;
        assert_eq!(to.port(), expected_ports[slot], "greeting {k}");
        assert_eq!(text, &format!("g:bob:40100:{}", expected_ports[slot]));
        // Tick n (1-based) of the phase: one greeting per tick, 5 per port, no gap.
        let tick = (k + 1) as u32;
        assert_eq!(*t, SERVER_FINISH_WAIT + TICK * tick, "greeting {k}");
    }
}

#[test]
fn confirmations_rotate_until_confirmed_then_stick() {
    let mut net = Net::new(2, |_, _, _| false);
    net.run();
    let confirms: Vec<_> = net.nodes[1]
        .sent
        .iter()
        .filter(|(t, _, m)| *t > CONFIRMING_AT && (m.starts_with("c:") || m.starts_with("y:")))
        .map(|(_, to, _)| to.port())
        .collect();
    // The host's first c: reaches bob on the same tick, so bob's first send goes to the exact
    // port and every later one too.
    assert!(confirms.iter().all(|&p| p == port(0)), "{confirms:?}");
}

#[test]
fn unconfirmed_peer_gets_the_rotating_window() {
    // Bob hears nothing from the host during confirmations (but did get its greetings).
    let mut net = Net::new(2, |from, _, m| from == 0 && !m.starts_with("g:"));
    net.run();
    let confirms: Vec<u16> = net.nodes[1]
        .sent
        .iter()
        .filter(|(_, _, m)| m.starts_with("c:"))
        .map(|(_, to, _)| to.port())
        .collect();
    // 2 s of 50 ms ticks: the 40th tick coincides with the host timer, which goes first.
    assert_eq!(confirms.len(), 39);
    assert_eq!(confirms[0], port(0));
    assert_eq!(confirms[1], port(0) - 8);
    assert_eq!(confirms[17], port(0));
    assert!(matches!(net.outcome(1), Err(Error::HostNotConfirmed)));
    assert_eq!(
        net.nodes[1].done_at,
        Some(CONFIRMING_AT + CLIENT_MAX_HOST_WAIT)
    );
    // The host still succeeds on its 1.5 s start timer (it heard bob's c:).
    assert!(net.outcome(0).is_ok());
    assert_eq!(
        net.nodes[0].done_at,
        Some(CONFIRMING_AT + HOST_SECONDS_TO_START + HOST_START_TIMER)
    );
}

#[test]
fn no_greetings_means_unreachable_self_on_both_sides() {
    let mut net = Net::new(2, |_, _, _| true);
    net.run();
    assert!(matches!(net.outcome(0), Err(Error::UnreachableSelf)));
    assert!(matches!(net.outcome(1), Err(Error::UnreachableSelf)));
    assert_eq!(net.nodes[0].done_at, Some(CONFIRMING_AT));
}

#[test]
fn four_players_all_punch() {
    let mut net = Net::new(4, |_, _, _| false);
    net.run();
    for i in 0..4 {
        let punched = net.outcome(i).unwrap();
        assert_eq!(punched.self_port, port(i));
        assert_eq!(punched.peers.len(), 3);
        assert!(punched.peers.iter().all(|p| p.confirmed));
        if i > 0 {
            assert_eq!(punched.host, Some(SocketAddr::new(ip(0), port(0))));
        }
    }
}

#[test]
fn host_succeeds_on_its_timer_when_a_client_never_acks() {
    let mut net = Net::new(3, |from, _, m| from == 2 && m.starts_with("y:"));
    net.run();
    assert!(net.outcome(0).is_ok());
    assert_eq!(
        net.nodes[0].done_at,
        Some(CONFIRMING_AT + HOST_SECONDS_TO_START + HOST_START_TIMER)
    );
    assert!(net.outcome(2).is_ok());
}

#[test]
fn client_without_start_order_gives_up() {
    let mut net = Net::new(2, |from, _, m| from == 0 && m.starts_with("s:"));
    net.run();
    assert!(net.outcome(0).is_ok());
    assert!(matches!(net.outcome(1), Err(Error::HostNotConfirmed)));
    assert_eq!(
        net.nodes[1].done_at,
        Some(CONFIRMING_AT + CLIENT_START_ORDER_BOUND)
    );
}

#[test]
fn public_port_from_greetings_causes_a_rebind() {
    let t0 = Instant::now();
    let mut phase = PeerPhase::new("bob", false, &start_for(1, 2), t0);
    phase.handle_timeout(t0 + SERVER_FINISH_WAIT);
    assert_eq!(phase.poll_action(), Some(Action::Bind(port(1))));
    let from = SocketAddr::new(ip(0), port(0));
    for _ in 0..3 {
        phase.handle_datagram(t0 + ms(2100), from, b"g:host:40000:40105");
    }
    phase.handle_datagram(t0 + ms(2100), from, b"g:host:40000:40100");
    phase.handle_datagram(t0 + ms(2100), from, b"g:stranger:1:40109");
    phase.handle_timeout(t0 + CONFIRMING_AT);
    assert_eq!(phase.poll_action(), Some(Action::Bind(40105)));
    assert_eq!(phase.self_port(), 40105);
    phase.handle_timeout(t0 + CONFIRMING_AT + TICK);
    let sent: Vec<_> = std::iter::from_fn(|| phase.poll_transmit()).collect();
    assert_eq!(sent.last().unwrap().1, b"c:bob:40105");
}

#[test]
fn start_order_is_capped_and_armed_once() {
    let t0 = Instant::now();
    let mut phase = PeerPhase::new("bob", false, &start_for(1, 2), t0);
    let host = SocketAddr::new(ip(0), port(0));
    phase.handle_timeout(t0 + SERVER_FINISH_WAIT);
    phase.handle_datagram(t0 + ms(2100), host, b"g:host:40000:40100");
    let entered = t0 + CONFIRMING_AT;
    phase.handle_timeout(entered);
    phase.handle_datagram(entered, host, b"c:host:40000");
    phase.handle_datagram(entered, host, b"s:1e300");
    phase.handle_datagram(entered + ms(10), host, b"s:1");
    phase.handle_timeout(entered + MAX_START_DELAY - ms(1));
    assert!(!phase.is_done());
    phase.handle_timeout(entered + MAX_START_DELAY);
    assert_eq!(phase.take_outcome().unwrap().unwrap().host, Some(host));
}

#[test]
fn window_skips_ports_outside_the_valid_range() {
    let start = StartInfo {
        own_port: 5,
        peers: vec![PeerAddr {
            name: "host".into(),
            addr: SocketAddr::new(ip(0), 3),
        }],
    };
    let t0 = Instant::now();
    let mut phase = PeerPhase::new("bob", false, &start, t0);
    phase.handle_timeout(t0 + CONFIRMING_AT - ms(1));
    let ports: Vec<u16> = std::iter::from_fn(|| phase.poll_transmit())
        .map(|(a, _)| a.port())
        .collect();
    // 3 first, then 1, 2, 4..=11 (-5..=0 skipped): 11 ports x 5 greetings.
    assert_eq!(ports.len(), 11 * 5);
    assert!(ports.iter().all(|&p| p != 0));
    assert!(phase.poll_timeout().is_some());
}
