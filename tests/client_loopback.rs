//! The Rust client against the real server over 127.0.0.1: lobby commands, every typed error
//! the lobby can meet, and full punches of 2 and 3 players (loopback has no NAT, so they must
//! succeed) with a payload exchanged peer to peer afterwards.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rabid_punch::client::{self, payload, Error, LobbyEvent, Request, ServerError, Session};

/// A server on an ephemeral loopback port, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Server {
    fn start() -> Server {
        Server::start_on("127.0.0.1")
    }

    fn start_on(bind: &str) -> Server {
        // `--relay off`, as common::binary::start says why: the default binds the default
        // relay pool, which servers of tests running at once would race for.
        Server::start_with(&["--bind", bind, "--relay", "off"])
    }

    /// A server with the default relay mode (`auto`) and one worker, whose relay pool is 4
    /// ports that were free a moment ago, in the ephemeral range (the relay tests take theirs
    /// below it); a port taken since only leaves the pool smaller. Enough for a relay to open,
    /// so a wrongly relayed start would show.
    fn start_default_relay() -> Server {
        let ports = free_block(4);
        let range = format!("{}-{}", ports.start(), ports.end());
        Server::start_with(&[
            "--bind",
            "127.0.0.1",
            "--workers",
            "1",
            "--relay-ports",
            &range,
        ])
    }

    fn start_with(args: &[&str]) -> Server {
        let dir = std::env::temp_dir().join(format!(
            "rabid-client-test-{}-{:?}",
            std::process::id(),
            thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let dir = TempDir(dir);
        let mut child = Command::new(env!("CARGO_BIN_EXE_rabid-punch"))
            .args(["--port", "0"])
            .args(args)
            .arg("--log-file")
            .arg(dir.0.join("server.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Keep draining stderr for the server's whole life so its logging never blocks.
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the server printed no 'listening on' line");
        Server {
            child,
            addr: addr.parse().expect("a socket address after 'listening on'"),
            _dir: dir,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `len` consecutive loopback UDP ports that were all free a moment ago, from 40000 up.
fn free_block(len: u16) -> std::ops::RangeInclusive<u16> {
    let first = 40_000 + (std::process::id() % 1000) as u16 * 16;
    for base in (first..60_000).step_by(usize::from(len)) {
        let held: Vec<_> = (base..base + len)
            .map_while(|p| UdpSocket::bind(("127.0.0.1", p)).ok())
            .collect();
        if held.len() == usize::from(len) {
            return base..=base + len - 1;
        }
    }
    panic!("no {len} free consecutive ports");
}

const BOUND: Duration = Duration::from_secs(40);

/// Drives `session` until an event matching `wanted`; panics on error or after 10 s.
fn expect_event(session: &mut Session, wanted: impl Fn(&LobbyEvent) -> bool) -> LobbyEvent {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match session.next_event(Some(deadline)) {
            Ok(Some(e)) if wanted(&e) => return e,
            Ok(Some(_)) => {}
            Ok(None) => panic!("no matching event within 10 s"),
            Err(e) => panic!("lobby failed: {e}"),
        }
    }
}

fn expect_error(session: &mut Session) -> Error {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match session.next_event(Some(deadline)) {
            Ok(Some(_)) => {}
            Ok(None) => panic!("no error within 10 s"),
            Err(e) => return e,
        }
    }
}

/// Runs a whole session of `n` players (the first hosts and starts at `n`), each punching and
/// then exchanging a payload; returns each player's punch and exchange.
fn punch_group(
    server: SocketAddr,
    session: &str,
    n: usize,
) -> Vec<(client::Punched, payload::Exchange)> {
    punch_group_named(server, session, session, n)
}

/// [`punch_group`] with players named after `group` rather than the session.
fn punch_group_named(
    server: SocketAddr,
    session: &str,
    group: &str,
    n: usize,
) -> Vec<(client::Punched, payload::Exchange)> {
    let names: Vec<String> = (0..n).map(|i| player_name(group, i)).collect();
    let host_name = names[0].clone();
    let session = session.to_string();
    let host = {
        let session = session.clone();
        thread::spawn(move || {
            let request = Request::host(&session, &host_name, 4).start_when(n);
            run_player(server, request, &host_name)
        })
    };
    // Join only once the session exists (a join before it gets session_non_existent).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut clients = Vec::new();
    for name in &names[1..] {
        let (session, name) = (session.clone(), name.clone());
        clients.push(thread::spawn(move || loop {
            match client::punch(server, Request::join(&session, &name), Some(BOUND)) {
                Err(Error::Server(ServerError::SessionNonExistent))
                    if Instant::now() < deadline =>
                {
                    thread::sleep(Duration::from_millis(100))
                }
                outcome => {
                    let connected = outcome.unwrap_or_else(|e| panic!("{name}: {e}"));
                    let text = format!("hello from {name}");
                    let exchange =
                        payload::exchange(&connected, &name, &text, Duration::from_secs(10))
                            .unwrap();
                    return (connected.punched, exchange);
                }
            }
        }));
    }
    let mut results = vec![host.join().unwrap()];
    results.extend(clients.into_iter().map(|c| c.join().unwrap()));
    results
}

fn run_player(
    server: SocketAddr,
    request: Request,
    name: &str,
) -> (client::Punched, payload::Exchange) {
    let connected =
        client::punch(server, request, Some(BOUND)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let exchange = payload::exchange(&connected, name, "host", Duration::from_secs(10)).unwrap();
    (connected.punched, exchange)
}

/// Player `i` of `session`. Names differ between sessions: tests punch at the same time on
/// 127.0.0.1, and a peer tells peers apart by name, so a stray greeting or confirmation from
/// another test's player of the same name could be taken for one of its own.
fn player_name(session: &str, i: usize) -> String {
    format!("{session}p{i}")
}

fn check_group(
    server: SocketAddr,
    session: &str,
    results: &[(client::Punched, payload::Exchange)],
) {
    check_group_named(server, session, results)
}

/// [`check_group`] for players named after `group`. A client's host address is the host's
/// own port on the server's IP: a relayed start would list a relay port instead.
fn check_group_named(
    server: SocketAddr,
    group: &str,
    results: &[(client::Punched, payload::Exchange)],
) {
    let (host, host_exchange) = &results[0];
    assert_eq!(host.host, None);
    assert!(
        host_exchange.complete,
        "host heard {:?}",
        host_exchange.heard
    );
    assert_eq!(host_exchange.heard.len(), results.len() - 1);
    for (i, (punched, exchange)) in results.iter().enumerate().skip(1) {
        let host_addr = punched.host.expect("a client knows the host");
        assert_eq!(host_addr, SocketAddr::new(server.ip(), host.self_port));
        assert!(exchange.complete, "client {i} got no echo");
        // The echo came from the host's punched address, not from the server.
        assert_eq!(exchange.heard["host"].0, host_addr);
        // The host heard this client from its punched port.
        let name = player_name(group, i);
        let (from, text) = &host_exchange.heard[&name];
        assert_eq!(from.port(), punched.self_port);
        assert_eq!(text, &format!("hello from {name}"));
        assert!(punched.peers.iter().all(|p| p.confirmed));
    }
}

#[test]
fn two_players_punch_on_loopback() {
    let server = Server::start();
    let results = punch_group(server.addr, "Two", 2);
    check_group(server.addr, "Two", &results);
}

/// A developer testing a game against a local server plays game after game with the same
/// players: with the default `--relay auto`, none is relayed (nothing to traverse on loopback),
/// although the second start is, by its players, a retry.
#[test]
fn the_default_relay_mode_connects_loopback_players_directly_game_after_game() {
    let server = Server::start_default_relay();
    for session in ["Again", "Again"] {
        let results = punch_group_named(server.addr, session, "Dev", 2);
        check_group_named(server.addr, "Dev", &results);
    }
}

#[test]
fn three_players_punch_on_loopback() {
    let server = Server::start();
    let results = punch_group(server.addr, "Three", 3);
    check_group(server.addr, "Three", &results);
}

#[test]
fn two_players_punch_over_ipv6_loopback() {
    // The Godot plugin needs IPv4, but the Rust client reads bracketed IPv6 peers too.
    if UdpSocket::bind("[::1]:0").is_err() {
        println!("SKIPPED: no IPv6 loopback here");
        return;
    }
    let server = Server::start_on("::1");
    let results = punch_group(server.addr, "Six", 2);
    check_group(server.addr, "Six", &results);
}

#[test]
fn lobby_errors_are_typed() {
    let server = Server::start();
    let s = server.addr;
    let mut host = Session::open(s, Request::host("Errs", "alice", 2).password("pw")).unwrap();
    expect_event(
        &mut host,
        |e| matches!(e, LobbyEvent::Joined(p) if p == &["alice"]),
    );

    let cases = [
        (Request::host("Errs", "bob", 2), ServerError::SessionExists),
        (
            Request::join("Nope", "bob"),
            ServerError::SessionNonExistent,
        ),
        (Request::join("Errs", "bob"), ServerError::PasswordMismatch),
        (
            Request::join("Errs", "alice").password("pw"),
            ServerError::PlayerNameInUse,
        ),
    ];
    for (request, expected) in cases {
        let mut session = Session::open(s, request.clone()).unwrap();
        match expect_error(&mut session) {
            Error::Server(e) => assert_eq!(e, expected, "{request:?}"),
            other => panic!("{request:?}: {other}"),
        }
    }

    // Start alone: only_one_player_in_session is not fatal, the lobby goes back to pings.
    assert!(host.start());
    let mut bob = Session::open(s, Request::join("Errs", "bob").password("pw")).unwrap();
    expect_event(
        &mut bob,
        |e| matches!(e, LobbyEvent::Joined(p) if p.len() == 2),
    );
    expect_event(
        &mut host,
        |e| matches!(e, LobbyEvent::Players(p) if p.len() == 2),
    );

    let mut carol = Session::open(s, Request::join("Errs", "carol").password("pw")).unwrap();
    assert!(matches!(
        expect_error(&mut carol),
        Error::Server(ServerError::SessionFull)
    ));

    // A non-host cannot kick; the host can, and the kicked player learns it.
    assert!(!bob.kick("alice"));
    assert!(host.kick("bob"));
    assert!(matches!(
        expect_error(&mut bob),
        Error::Server(ServerError::KickedByHost)
    ));
    expect_event(
        &mut host,
        |e| matches!(e, LobbyEvent::Players(p) if p == &["alice"]),
    );
    let mut again = Session::open(s, Request::join("Errs", "bob").password("pw")).unwrap();
    assert!(matches!(
        expect_error(&mut again),
        Error::Server(ServerError::KickedByHost)
    ));

    // Exit ends our own lobby with player_exited_session.
    assert!(host.exit());
    assert!(matches!(
        expect_error(&mut host),
        Error::Server(ServerError::PlayerExitedSession)
    ));
}

#[test]
fn host_migration_makes_the_next_player_host() {
    let server = Server::start();
    let mut alice = Session::open(server.addr, Request::host("Migr", "alice", 3)).unwrap();
    expect_event(&mut alice, |e| matches!(e, LobbyEvent::Joined(_)));
    let mut bob = Session::open(server.addr, Request::join("Migr", "bob")).unwrap();
    expect_event(&mut bob, |e| matches!(e, LobbyEvent::Joined(_)));
    assert!(!bob.lobby().is_host());
    alice.exit();
    expect_event(
        &mut bob,
        |e| matches!(e, LobbyEvent::Players(p) if p == &["bob"]),
    );
    assert!(bob.lobby().is_host());
}

/// A socket standing in for the server, so that a test decides what it answers and when;
/// its reads wait 5 s at most.
fn fake_server() -> UdpSocket {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    server
}

#[test]
fn a_reply_that_arrived_while_the_lobby_was_not_driven_is_read_before_its_timer_fires() {
    let server = fake_server();
    let mut buf = [0u8; 256];
    let mut recv = || {
        let (n, from) = server
            .recv_from(&mut buf)
            .expect("a request from the client");
        (String::from_utf8_lossy(&buf[..n]).into_owned(), from)
    };
    let mut host = Session::open(
        server.local_addr().unwrap(),
        Request::host("Late", "alice", 4),
    )
    .unwrap();
    let (request, client) = recv();
    assert_eq!(request, "h:Late:alice:4");
    server.send_to(b"i:alice", client).unwrap();
    expect_event(&mut host, |e| matches!(e, LobbyEvent::Joined(_)));

    // Starting alone is refused; the refusal is queued while the caller is busy elsewhere
    // for longer than the lobby's 0.5 s re-send timer.
    assert!(host.start());
    assert_eq!(recv().0, "s:Late:alice");
    server
        .send_to(b"error:only_one_player_in_session", client)
        .unwrap();
    thread::sleep(Duration::from_millis(700));

    // Driven again, the lobby takes the refusal first: it goes back to pings instead of
    // re-sending the refused start.
    let outcome = host.next_event(Some(Instant::now() + Duration::from_millis(100)));
    assert!(matches!(outcome, Ok(None)), "{outcome:?}");
    assert_eq!(recv().0, "p:Late:alice");
}

#[test]
fn the_port_stays_the_clients_through_the_2_s_wait_after_the_start() {
    let server = fake_server();
    let mut buf = [0u8; 256];
    let mut bob =
        Session::open(server.local_addr().unwrap(), Request::join("Hold", "bob")).unwrap();
    let (_, client) = server.recv_from(&mut buf).expect("the join");
    server.send_to(b"i:alice:bob", client).unwrap();
    let start = format!("s:{}:alice:127.0.0.1:9", client.port());
    server.send_to(start.as_bytes(), client).unwrap();
    expect_event(&mut bob, |e| matches!(e, LobbyEvent::Started(_)));

    // The plugin's socket would be closed for 2 s now; this one is held, so a bind of the port
    // by anyone else fails all along, and the phase takes the port up again without binding.
    let deadline = Instant::now() + Duration::from_millis(2500);
    let punching = thread::spawn(move || bob.punch(Some(deadline)));
    // A re-sent start message lands in the wait and is dropped unread, as the plugin's would.
    server.send_to(start.as_bytes(), client).unwrap();
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        let bound = UdpSocket::bind(("0.0.0.0", client.port()));
        // The phase lets the port go only when it ends, at its deadline: a bind that returns
        // after that (this thread preempted for a second) says nothing about the wait.
        assert!(
            bound.is_err() || Instant::now() >= deadline,
            "the client's port was free during the wait"
        );
        thread::sleep(Duration::from_millis(10));
    }
    let outcome = punching.join().unwrap();
    assert!(matches!(outcome, Err(Error::Deadline)), "{outcome:?}");
}

#[test]
fn a_silent_server_is_a_server_timeout_after_15_s() {
    // A bound UDP socket that never answers stands in for a dead server.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let started = Instant::now();
    let outcome = client::punch(
        silent.local_addr().unwrap(),
        Request::join("Gone", "bob"),
        Some(BOUND),
    );
    let took = started.elapsed();
    assert!(matches!(outcome, Err(Error::ServerTimeout)), "{outcome:?}");
    assert!(
        took >= Duration::from_secs(15) && took < Duration::from_secs(17),
        "{took:?}"
    );
    // It kept re-sending every 0.5 s meanwhile.
    silent.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    let mut requests = 0;
    while let Ok((n, _)) = silent.recv_from(&mut buf) {
        assert_eq!(&buf[..n], b"c:Gone:bob");
        requests += 1;
    }
    assert!((29..=31).contains(&requests), "{requests} requests");
}

#[test]
fn the_whole_run_bound_is_honoured() {
    let server = Server::start();
    let started = Instant::now();
    // Hosting and waiting for players that never come: only the caller's bound ends it.
    let outcome = client::punch(
        server.addr,
        Request::host("Alone", "alice", 2).start_when(2),
        Some(Duration::from_secs(2)),
    );
    assert!(matches!(outcome, Err(Error::Deadline)), "{outcome:?}");
    // Well before the 15 s a server-silence timeout would take, with room for a loaded box.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(7),
        "{took:?}"
    );
}

#[test]
fn cli_probe_reports_the_address_the_server_saw() {
    let server = Server::start();
    let out = Command::new(env!("CARGO_BIN_EXE_rabid-punch"))
        .args([
            "client",
            "--server",
            &server.addr.to_string(),
            "--probe",
            "--json",
            "--timeout",
            "10",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let line = String::from_utf8(out.stdout).unwrap();
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.starts_with(r#"{"outcome":"success","server_answered":true,"rtt_ms":"#),
        "{line}"
    );
    let local_port = field(&line, "local_port");
    assert!(
        line.contains(&format!(r#""public_addr":"127.0.0.1:{local_port}""#)),
        "{line}"
    );
}

#[test]
fn cli_reports_server_errors_in_json_and_exit_status() {
    let server = Server::start();
    let out = Command::new(env!("CARGO_BIN_EXE_rabid-punch"))
        .args([
            "client",
            "--server",
            &server.addr.to_string(),
            "--session",
            "Nope",
            "--name",
            "bob",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(
        line.starts_with(
            r#"{"outcome":"session_non_existent","self_port":null,"host_ip":null,"host_port":null,"#
        ),
        "{line}"
    );
}

/// The raw text of a numeric JSON field (the tests avoid a JSON dependency).
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    let start = line.find(&format!("\"{name}\":")).unwrap() + name.len() + 3;
    let rest = &line[start..];
    &rest[..rest.find([',', '}']).unwrap()]
}
