//! The real server over real UDP on 127.0.0.1: full sessions, many at once over every worker,
//! malformed datagrams mixed in.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{name, start_message, Player};
use rabid_punch::runtime::{Server, ServerConfig};

fn server(workers: usize) -> Server {
    Server::start(ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        workers,
        ..ServerConfig::default()
    })
    .expect("start the server")
}

/// Runs a whole session `session` of `count` players: host, joins, pings, start, confirm.
/// Garbage from `noise` is mixed in and must be answered with `error:invalid_request`.
fn full_session(server: SocketAddr, session: &str, count: usize, noise: &Player) {
    let players: Vec<Player> = (0..count).map(|_| Player::new(server)).collect();
    let list = |n: usize| {
        let names: Vec<String> = (0..n).map(name).collect();
        format!("i:{}", names.join(":"))
    };
    assert_eq!(
        players[0].request(&format!("h:{session}:P0:{count}")),
        list(1)
    );
    for joiner in 1..count {
        noise.send_bytes(b"\xff\xfe:not utf8");
        players[joiner].send(&format!("c:{session}:{}", name(joiner)));
        for player in &players[..=joiner] {
            assert_eq!(player.recv(), list(joiner + 1), "session {session}");
        }
        assert_eq!(noise.recv(), "error:invalid_request");
    }
    for (i, player) in players.iter().enumerate() {
        assert_eq!(
            player.request(&format!("p:{session}:{}", name(i))),
            list(count)
        );
    }
    players[0].send(&format!("s:{session}:P0"));
    let refs: Vec<&Player> = players.iter().collect();
    for (i, player) in players.iter().enumerate() {
        assert_eq!(player.recv(), start_message(&refs, i), "session {session}");
        player.send(&format!("y:{session}:{}", name(i)));
    }
}

#[test]
fn a_four_player_session_runs_from_host_to_start() {
    let server = server(4);
    let noise = Player::new(server.local_addr());
    full_session(server.local_addr(), "Room", 4, &noise);
    let totals = server.shutdown();
    assert_eq!(totals.shard.sessions_created, 1);
    assert_eq!(totals.shard.sessions_started, 1);
}

#[test]
fn many_concurrent_sessions_spread_over_every_worker_and_none_is_split() {
    const WORKERS: usize = 4;
    const THREADS: usize = 8;
    const PER_THREAD: usize = 12;
    let server = server(WORKERS);
    let addr = server.local_addr();
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            scope.spawn(move || {
                let noise = Player::new(addr);
                for s in 0..PER_THREAD {
                    // If a session's requests reached two workers, a join or the start would
                    // meet `error:session_non_existent` and the test would fail.
                    full_session(addr, &format!("S{t}x{s}"), 4, &noise);
                }
            });
        }
    });
    let per_worker = server.worker_totals();
    let created: Vec<u64> = per_worker
        .iter()
        .map(|t| t.shard.sessions_created)
        .collect();
    assert_eq!(created.len(), WORKERS);
    assert_eq!(created.iter().sum::<u64>(), (THREADS * PER_THREAD) as u64);
    assert!(
        created.iter().all(|&n| n > 0),
        "a worker got no session: {created:?}"
    );
    let started: u64 = per_worker.iter().map(|t| t.shard.sessions_started).sum();
    assert_eq!(started, (THREADS * PER_THREAD) as u64);
    server.shutdown();
}

#[test]
fn start_message_is_re_sent_until_confirmed_and_the_session_is_then_forgotten() {
    let server = server(2);
    let host = Player::new(server.local_addr());
    let guest = Player::new(server.local_addr());
    assert_eq!(host.request("h:Re:H:2"), "i:H");
    guest.send("c:Re:G");
    assert_eq!(guest.recv(), "i:H:G");
    assert_eq!(host.recv(), "i:H:G");
    let started = Instant::now();
    host.send("s:Re:H");
    let expected = start_message(&[&host, &guest], 1).replace("P0", "H");
    // The guest never confirms: 8 copies arrive, about 100 ms apart.
    for _ in 0..8 {
        assert_eq!(guest.recv(), expected);
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(650), "{elapsed:?}");
    host.send("y:Re:H");
    // After about 0.8 s the session is forgotten and the name is free again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = host.request("h:Re:H:2");
        if reply == "i:H" {
            break;
        }
        assert!(
            reply.starts_with("s:") || reply == "error:session_exists",
            "{reply}"
        );
        assert!(Instant::now() < deadline, "session never forgotten");
    }
    server.shutdown();
}

#[test]
fn malformed_and_unknown_datagrams_never_hurt_a_session() {
    let server = server(2);
    let host = Player::new(server.local_addr());
    let noise = Player::new(server.local_addr());
    assert_eq!(host.request("h:Safe:H:4"), "i:H");
    let garbage: [&[u8]; 7] = [
        b"h:Safe:H",
        b"h:Safe:H:99",
        &[0xff; 200],
        &[b'x'; 1500],
        b"p:Safe:H:extra",
        b"c:Safe:\x00",
        b"hello!\n",
    ];
    for datagram in garbage {
        noise.send_bytes(datagram);
        assert_eq!(noise.recv(), "error:invalid_request", "{datagram:?}");
    }
    // Unknown commands get no answer, and neither does garbage shorter than 7 bytes: 21 bytes
    // back for 1 would make garbage an amplifier. Replies come in order, so the next one
    // received must be the answer to the ping that follows.
    for silent in [&b""[..], b":", b"q", b"p:S", b"z:Safe:H"] {
        noise.send_bytes(silent);
    }
    assert_eq!(noise.request("p:Safe:N"), "error:non_existent_player");
    assert_eq!(host.request("p:Safe:H"), "i:H");
    server.shutdown();
}

#[test]
fn a_dual_stack_server_lists_ipv4_players_as_dotted_quads() {
    let Ok(server) = Server::start(ServerConfig {
        bind: "[::]:0".parse().unwrap(),
        workers: 1,
        ..ServerConfig::default()
    }) else {
        eprintln!("skipped: no IPv6 on this machine");
        return;
    };
    let addr: SocketAddr = ([127, 0, 0, 1], server.local_addr().port()).into();
    let host = Player::new(addr);
    let guest = Player::new(addr);
    assert_eq!(host.request("h:Dual:H:2"), "i:H");
    guest.send("c:Dual:G");
    guest.recv();
    host.recv();
    host.send("s:Dual:H");
    assert_eq!(
        guest.recv(),
        format!("s:{}:H:127.0.0.1:{}", guest.port(), host.port())
    );
    server.shutdown();
}
