//! The relay over real UDP on 127.0.0.1: a relayed start lists relay ports, members' greetings
//! and game traffic cross it rewritten as the protocol needs, strangers get nothing through, and
//! an idle relay closes.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use common::{free_ports, Player};
use rabid_punch::core::{CoreConfig, RelayConfig, RelayMode};
use rabid_punch::runtime::{Server, ServerConfig, Totals};

/// How long a test waits for an event before it fails.
const WAIT: Duration = Duration::from_secs(5);

fn server(mode: RelayMode, ports: RangeInclusive<u16>, idle: Duration) -> Server {
    Server::start(ServerConfig {
        // A wildcard bind: the relay address comes from the kernel, per datagram.
        bind: "0.0.0.0:0".parse().unwrap(),
        workers: 2,
        relay_ports: ports,
        core: CoreConfig {
            // One round of the start message: a re-send cannot arrive in the middle of the peer
            // phase, where the tests read a player's socket expecting relayed datagrams.
            start_sends: 1,
            relay: RelayConfig {
                mode,
                idle_timeout: idle,
                ..RelayConfig::default()
            },
            ..CoreConfig::default()
        },
        ..ServerConfig::default()
    })
    .expect("start the server")
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

    fn quiet_for(&self, wait: Duration) -> bool {
        self.0.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 2048];
        let quiet = self.0.recv_from(&mut buf).is_err();
        self.0.set_read_timeout(Some(WAIT)).unwrap();
        quiet
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
fn relay_server(len: u16, idle: Duration) -> (Server, RangeInclusive<u16>) {
    for _ in 0..8 {
        let ports = free_ports(len);
        let server = server(RelayMode::Always, ports.clone(), idle);
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

#[test]
fn members_reach_each_other_through_their_relay_ports_and_strangers_do_not() {
    let (server, ports) = relay_server(8, Duration::from_secs(30));
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

#[test]
fn an_idle_relay_closes_and_stops_forwarding() {
    let (server, _) = relay_server(4, Duration::from_millis(300));
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
    let server = server(RelayMode::Off, ports.clone(), Duration::from_secs(30));
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

#[test]
fn a_burst_longer_than_one_read_crosses_whole_and_in_order_beside_requests() {
    // The worker reads its relay ports itself, edge-triggered: a port that received a burst is
    // reported once, and must be read until empty, over several reads, with no datagram left
    // behind for want of a next one to report the port again.
    let (server, _) = relay_server(4, Duration::from_secs(30));
    let addr = SocketAddr::from(([127, 0, 0, 1], server.local_addr().port()));
    let (host, client) = (Player::new(addr), Player::new(addr));
    let (host_start, client_start) = start_pair(&host, &client, "burst");
    let (r_host, r_client) = (peer_port(&client_start), peer_port(&host_start));
    let relay = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let (host_peer, client_peer) = (PeerSocket::on("127.0.0.1"), PeerSocket::on("127.0.0.1"));
    client_peer.send(relay(r_host), &format!("g:P1:{}:{r_host}", client.port()));
    let mut buf = [0u8; 256];
    host.socket.recv_from(&mut buf).unwrap();
    host_peer.send(relay(r_client), &format!("g:P0:{}:{r_client}", host.port()));
    client_peer.recv();

    const BURST: usize = 100;
    for i in 0..BURST {
        client_peer.send(relay(r_host), &format!("burst {i}"));
    }
    // Requests of another session are answered meanwhile, by the same or the other worker.
    let other = Player::new(addr);
    assert_eq!(other.request("h:beside:X:2"), "i:X");
    for i in 0..BURST {
        assert_eq!(host_peer.recv(), (relay(r_client), format!("burst {i}")));
    }
    wait_for(&server, "the burst counted", |t| {
        t.relay.datagrams >= 2 + BURST as u64
    });
    server.shutdown();
}
