//! The relay over real UDP on 127.0.0.1: a relayed start lists relay ports, members' greetings
//! and game traffic cross it rewritten as the protocol needs, strangers get nothing through, and
//! an idle relay closes.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use common::{free_ports, Player};
use rabid_punch::core::{CoreConfig, RelayConfig, RelayMode};
use rabid_punch::runtime::{RelayIo, Server, ServerConfig, Totals};

/// How long a test waits for an event before it fails.
const WAIT: Duration = Duration::from_secs(5);

fn server(relay: RelayConfig, ports: RangeInclusive<u16>, io: RelayIo) -> Server {
    Server::start(ServerConfig {
        relay_io: io,
        // A wildcard bind: the relay address comes from the kernel, per datagram.
        bind: "0.0.0.0:0".parse().unwrap(),
        workers: 2,
        relay_ports: ports,
        core: CoreConfig {
            // One round of the start message: a re-send cannot arrive in the middle of the peer
            // phase, where the tests read a player's socket expecting relayed datagrams.
            start_sends: 1,
            relay,
            ..CoreConfig::default()
        },
        ..ServerConfig::default()
    })
    .expect("start the server")
}

/// `--relay always`, closing a relay after `idle` without traffic.
fn idle_after(idle: Duration) -> RelayConfig {
    RelayConfig {
        mode: RelayMode::Always,
        idle_timeout: idle,
        ..RelayConfig::default()
    }
}

/// A player's socket for the peer phase (the Godot plugin binds a new one after its start
/// message; here it is another port, as a NAT would map it).
struct PeerSocket(UdpSocket);

impl PeerSocket {
    fn on(ip: &str) -> Self {
        let socket = UdpSocket::bind((ip, 0)).unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        Self(socket)
    }

    fn send(&self, to: SocketAddr, text: &str) {
        self.0.send_to(text.as_bytes(), to).unwrap();
    }

    fn recv(&self) -> (SocketAddr, String) {
        let mut buf = [0u8; 2048];
        let (len, from) = self.0.recv_from(&mut buf).expect("a relayed datagram");
        (from, String::from_utf8_lossy(&buf[..len]).into_owned())
    }

    /// The next datagram, or `None` when none came within [`WAIT`].
    fn try_recv(&self) -> Option<(SocketAddr, String)> {
        let mut buf = [0u8; 2048];
        let (len, from) = self.0.recv_from(&mut buf).ok()?;
        Some((from, String::from_utf8_lossy(&buf[..len]).into_owned()))
    }

    fn quiet_for(&self, wait: Duration) -> bool {
        self.0.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 2048];
        let quiet = self.0.recv_from(&mut buf).is_err();
        self.0.set_read_timeout(Some(WAIT)).unwrap();
        quiet
    }
}

/// Each relay test, run once with each way of moving relayed datagrams (`--relay-io uring`
/// and `epoll`): both must keep every relay rule.
macro_rules! with_each_relay_io {
    ($($test:ident),* $(,)?) => {
        mod uring {
            $(#[test]
            fn $test() {
                if crate::common::io_uring_here(stringify!($test)) {
                    super::$test(super::RelayIo::Uring)
                }
            })*
        }
        mod epoll {
            $(#[test]
            fn $test() {
                super::$test(super::RelayIo::Epoll)
            })*
        }
    };
}

with_each_relay_io!(
    members_reach_each_other_through_their_relay_ports_and_strangers_do_not,
    an_idle_relay_closes_and_stops_forwarding,
    a_busy_relay_closes_at_the_end_of_its_lifetime,
    a_session_over_its_byte_rate_loses_the_excess,
    a_burst_longer_than_one_read_crosses_whole_and_in_order_beside_requests,
);

/// A relayed pair after its greetings, both known to the relay: the server, the host's and
/// the client's peer sockets, and the relay addresses each sends to (the host's, the client's).
struct Greeted {
    server: Server,
    host_peer: PeerSocket,
    client_peer: PeerSocket,
    to_host: SocketAddr,
    to_client: SocketAddr,
}

fn greeted(relay: RelayConfig, io: RelayIo, session: &str) -> Greeted {
    let (server, _) = relay_server(4, relay, io);
    let addr = SocketAddr::from(([127, 0, 0, 1], server.local_addr().port()));
    let (host, client) = (Player::new(addr), Player::new(addr));
    let (host_start, client_start) = start_pair(&host, &client, session);
    let (r_host, r_client) = (peer_port(&client_start), peer_port(&host_start));
    let relay = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let (host_peer, client_peer) = (PeerSocket::on("127.0.0.1"), PeerSocket::on("127.0.0.1"));
    client_peer.send(relay(r_host), &format!("g:P1:{}:{r_host}", client.port()));
    let mut buf = [0u8; 256];
    host.socket.recv_from(&mut buf).unwrap();
    host_peer.send(relay(r_client), &format!("g:P0:{}:{r_client}", host.port()));
    client_peer.recv();
    Greeted {
        server,
        host_peer,
        client_peer,
        to_host: relay(r_host),
        to_client: relay(r_client),
    }
}

/// Host `P0` and client `P1` start session `session`; returns their start messages.
fn start_pair(host: &Player, client: &Player, session: &str) -> (String, String) {
    assert_eq!(host.request(&format!("h:{session}:P0:2")), "i:P0");
    client.send(&format!("c:{session}:P1"));
    assert_eq!(host.recv(), "i:P0:P1");
    assert_eq!(client.recv(), "i:P0:P1");
    host.send(&format!("s:{session}:P0"));
    let host_start = host.recv_skipping_info();
    let client_start = client.recv_skipping_info();
    // No `y:`, as the Godot plugin: the one round of the start message (`start_sends: 1`) is
    // not re-sent, and the session is forgotten 100 ms later without a word to the players.
    (host_start, client_start)
}

/// The relay port a start message lists for its one peer.
fn peer_port(start: &str) -> u16 {
    start.rsplit(':').next().unwrap().parse().unwrap()
}

/// A relaying server whose pool is a whole block of `len` ports, and that block.
///
/// A block free when [`free_ports`] probed it can be taken before the server binds it (by a
/// test of another binary, or another checkout's test run on the same machine); the server
/// then relays with the ports left, and the test would fail on a port it never got. So a
/// server that did not bind the whole block is stopped, and the next block tried.
fn relay_server(len: u16, relay: RelayConfig, io: RelayIo) -> (Server, RangeInclusive<u16>) {
    for _ in 0..8 {
        let ports = free_ports(len);
        let server = server(relay.clone(), ports.clone(), io);
        if settles(&server, |t| t.relay.ports_total == u64::from(len)).is_some() {
            return (server, ports);
        }
        server.shutdown();
    }
    panic!("no block of {len} ports stayed free until the server bound it, in 8 tries");
}

/// The server's figures once they pass `check`, or `None` after [`WAIT`].
fn settles(server: &Server, check: impl Fn(&Totals) -> bool) -> Option<Totals> {
    let deadline = Instant::now() + WAIT;
    loop {
        let totals = server.totals();
        if check(&totals) {
            return Some(totals);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::yield_now();
    }
}

/// Waits until the server's figures pass `check`.
fn wait_for(server: &Server, what: &str, check: impl Fn(&Totals) -> bool) -> Totals {
    settles(server, &check)
        .unwrap_or_else(|| panic!("timed out waiting for {what}: {}", server.totals()))
}

fn members_reach_each_other_through_their_relay_ports_and_strangers_do_not(io: RelayIo) {
    let (server, ports) = relay_server(8, idle_after(Duration::from_secs(30)), io);
    let addr = SocketAddr::from(([127, 0, 0, 1], server.local_addr().port()));
    let (host, client) = (Player::new(addr), Player::new(addr));
    let (host_start, client_start) = start_pair(&host, &client, "relay");

    // Each lists the other at the address the request arrived on, on a relay port of its own.
    let (r_host, r_client) = (peer_port(&client_start), peer_port(&host_start));
    assert_eq!(
        host_start,
        format!("s:{}:P1:127.0.0.1:{r_client}", host.port())
    );
    assert_eq!(
        client_start,
        format!("s:{}:P0:127.0.0.1:{r_host}", client.port())
    );
    assert!(
        ports.contains(&r_host) && ports.contains(&r_client) && r_host != r_client,
        "the start lists {r_host} and {r_client}, not two relay ports of {ports:?}: {}",
        server.totals()
    );
    let relay = |port| SocketAddr::from(([127, 0, 0, 1], port));

    // The peer phase, each player from a new port as a symmetric NAT would map it.
    let (host_peer, client_peer) = (PeerSocket::on("127.0.0.1"), PeerSocket::on("127.0.0.1"));
    // The client greets the host's relay port; the host has not talked to the relay yet, so it
    // arrives at its rendezvous address, from the client's relay port, aimed at its own port.
    client_peer.send(relay(r_host), &format!("g:P1:{}:{r_host}", client.port()));
    let mut buf = [0u8; 256];
    let (len, from) = host.socket.recv_from(&mut buf).unwrap();
    assert_eq!(from, relay(r_client));
    assert_eq!(
        std::str::from_utf8(&buf[..len]).unwrap(),
        format!("g:P1:{}:{}", client.port(), host.port())
    );
    // The host greets back from its peer socket; the client is now known by where it greeted
    // from, and gets it there.
    host_peer.send(relay(r_client), &format!("g:P0:{}:{r_client}", host.port()));
    assert_eq!(
        client_peer.recv(),
        (
            relay(r_host),
            format!("g:P0:{}:{}", host.port(), client.port())
        )
    );
    // Confirmations name the sender's relay port; game traffic passes unchanged, both ways.
    host_peer.send(relay(r_client), &format!("c:P0:{}", host.port()));
    assert_eq!(
        client_peer.recv(),
        (relay(r_host), format!("c:P0:{r_host}"))
    );
    client_peer.send(relay(r_host), "game bytes \u{1}");
    assert_eq!(
        host_peer.recv(),
        (relay(r_client), "game bytes \u{1}".into())
    );
    host_peer.send(relay(r_client), "more game");
    assert_eq!(client_peer.recv(), (relay(r_host), "more game".into()));

    // A stranger on another IP, even naming a member, gets nothing through, and cannot turn
    // the host's traffic towards itself.
    let stranger = PeerSocket::on("127.0.0.2");
    stranger.send(relay(r_host), &format!("g:P1:1:{r_host}"));
    stranger.send(relay(r_client), "c:P0:1");
    let totals = wait_for(&server, "two strangers dropped", |t| {
        t.relay.dropped_strangers >= 2
    });
    assert!(host_peer.quiet_for(Duration::from_millis(200)));
    host_peer.send(relay(r_client), "still yours");
    assert_eq!(client_peer.recv(), (relay(r_host), "still yours".into()));
    assert!(stranger.quiet_for(Duration::from_millis(200)));

    assert_eq!(totals.relay.sessions_relayed, 1);
    assert_eq!(totals.relay.fallbacks, 0);
    assert_eq!(totals.relay.ports_total, 8);
    let totals = wait_for(&server, "5 forwarded", |t| t.relay.datagrams >= 6);
    assert_eq!(totals.relay.ports_in_use, 2);
    server.shutdown();
}

fn an_idle_relay_closes_and_stops_forwarding(io: RelayIo) {
    let (server, _) = relay_server(4, idle_after(Duration::from_millis(300)), io);
    let addr = SocketAddr::from(([127, 0, 0, 1], server.local_addr().port()));
    let (host, client) = (Player::new(addr), Player::new(addr));
    let (host_start, client_start) = start_pair(&host, &client, "idle");
    let (r_host, r_client) = (peer_port(&client_start), peer_port(&host_start));
    let relay = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let client_peer = PeerSocket::on("127.0.0.1");
    client_peer.send(relay(r_host), &format!("g:P1:{}:{r_host}", client.port()));
    let mut buf = [0u8; 256];
    let (_, from) = host.socket.recv_from(&mut buf).unwrap();
    assert_eq!(from, relay(r_client));

    wait_for(&server, "the relay to close", |t| {
        t.relay.closed_idle == 1 && t.relay.ports_in_use == 0
    });
    client_peer.send(relay(r_host), "too late");
    wait_for(&server, "the late datagram dropped", |t| {
        t.relay.dropped_unheld_port >= 1
    });
    assert!(host.quiet_for(Duration::from_millis(200)));
    server.shutdown();
}

#[test]
fn relay_off_starts_direct_and_binds_no_relay_port() {
    let ports = free_ports(4);
    let server = server(RelayConfig::default(), ports.clone(), RelayIo::Auto);
    // Every port of the range is still free.
    for port in ports {
        UdpSocket::bind(("0.0.0.0", port)).expect("relay off binds no relay port");
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], server.local_addr().port()));
    let (host, client) = (Player::new(addr), Player::new(addr));
    let (host_start, _) = start_pair(&host, &client, "direct");
    assert_eq!(
        host_start,
        format!("s:{}:P1:127.0.0.1:{}", host.port(), client.port())
    );
    assert_eq!(server.totals().relay.ports_total, 0);
    server.shutdown();
}

fn a_busy_relay_closes_at_the_end_of_its_lifetime(io: RelayIo) {
    let lifetime = Duration::from_millis(300);
    let relay = RelayConfig {
        lifetime,
        ..idle_after(Duration::from_secs(30))
    };
    let started = Instant::now();
    let g = greeted(relay, io, "life");
    // Traffic all along, each datagram waited for: the relay is never idle.
    let mut crossed = 0;
    while g.server.totals().relay.closed_lifetime == 0 {
        assert!(started.elapsed() < WAIT, "the relay outlived its lifetime");
        g.client_peer.send(g.to_host, "busy");
        match g.host_peer.try_recv() {
            Some(got) => assert_eq!(got, (g.to_client, "busy".into())),
            // Sent as the relay closed.
            None => break,
        }
        crossed += 1;
    }
    let totals = wait_for(&g.server, "the relay to close", |t| {
        t.relay.closed_lifetime == 1 && t.relay.ports_in_use == 0
    });
    assert!(started.elapsed() >= lifetime && crossed > 0);
    assert_eq!(totals.relay.closed_idle, 0);
    g.client_peer.send(g.to_host, "too late");
    wait_for(&g.server, "the late datagram dropped", |t| {
        t.relay.dropped_unheld_port >= 1
    });
    assert!(g.host_peer.quiet_for(Duration::from_millis(200)));
    g.server.shutdown();
}

fn a_session_over_its_byte_rate_loses_the_excess(io: RelayIo) {
    // 1 000 bytes/s for the session: a burst of 40 datagrams of 100 bytes goes over it.
    let mut relay = idle_after(Duration::from_secs(30));
    relay.limits.session_bytes_per_sec = 1000;
    let g = greeted(relay, io, "rate");
    let payload = "x".repeat(100);
    const BURST: u64 = 40;
    for _ in 0..BURST {
        g.client_peer.send(g.to_host, &payload);
    }
    // The two greetings and the burst, each forwarded or dropped.
    let totals = wait_for(&g.server, "the burst counted", |t| {
        t.relay.datagrams + t.relay.dropped_budget >= 2 + BURST
    });
    let forwarded = totals.relay.datagrams - 2;
    assert!(
        totals.relay.dropped_budget > 0 && forwarded > 0,
        "forwarded {forwarded}, dropped {}",
        totals.relay.dropped_budget
    );
    for _ in 0..forwarded {
        assert_eq!(g.host_peer.recv(), (g.to_client, payload.clone()));
    }
    assert!(g.host_peer.quiet_for(Duration::from_millis(200)));
    g.server.shutdown();
}

fn a_burst_longer_than_one_read_crosses_whole_and_in_order_beside_requests(io: RelayIo) {
    // The worker reads its relay ports itself: a port that received a burst must be read until
    // empty, over several reads (epoll: edge-triggered, reported once; io_uring: its receive
    // runs out of buffers and is armed again), with no datagram left behind.
    let g = greeted(idle_after(Duration::from_secs(30)), io, "burst");
    const BURST: usize = 100;
    for i in 0..BURST {
        g.client_peer.send(g.to_host, &format!("burst {i}"));
    }
    // Requests of another session are answered meanwhile, by the same or the other worker.
    let addr = SocketAddr::from(([127, 0, 0, 1], g.server.local_addr().port()));
    let other = Player::new(addr);
    assert_eq!(other.request("h:beside:X:2"), "i:X");
    for i in 0..BURST {
        assert_eq!(g.host_peer.recv(), (g.to_client, format!("burst {i}")));
    }
    wait_for(&g.server, "the burst counted", |t| {
        t.relay.datagrams >= 2 + BURST as u64
    });
    g.server.shutdown();
}
