//! Several receivers (`--receivers`), over real UDP on 127.0.0.1: the kernel spreads the
//! players' sockets over the receivers' sockets, and every session still lives on exactly one
//! worker: joins, pings and the start, whichever receiver reads them, find their session.

mod common;

use std::collections::HashSet;

use common::{name, start_message, Player};
use rabid_punch::core::CoreConfig;
use rabid_punch::runtime::{Server, ServerConfig};

#[test]
fn sessions_never_split_across_workers_with_several_receivers() {
    let server = Server::start(ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        workers: 3,
        receivers: 4,
        core: CoreConfig::default(),
        ..ServerConfig::default()
    })
    .expect("start the server");
    let addr = server.local_addr();
    // 24 sessions of 4 players, each player on a socket of its own.
    let sessions: Vec<Vec<Player>> = (0..24)
        .map(|_| (0..4).map(|_| Player::new(addr)).collect())
        .collect();
    for (s, players) in sessions.iter().enumerate() {
        let room = format!("R{s}");
        assert_eq!(
            players[0].retry(&format!("h:{room}:{}:4", name(0)), |_| true),
            "i:P0"
        );
        for (i, p) in players.iter().enumerate().skip(1) {
            let names: Vec<String> = (0..=i).map(name).collect();
            let want = format!("i:{}", names.join(":"));
            let got = p.retry(&format!("c:{room}:{}", name(i)), |r| r.starts_with("i:"));
            assert_eq!(got, want, "join of {} to {room}", name(i));
        }
    }
    for (s, players) in sessions.iter().enumerate() {
        let room = format!("R{s}");
        for (i, p) in players.iter().enumerate() {
            let got = p.retry(&format!("p:{room}:{}", name(i)), |r| {
                r.starts_with("i:P0:P1:P2:P3")
            });
            assert_eq!(got, "i:P0:P1:P2:P3");
        }
        let refs: Vec<&Player> = players.iter().collect();
        players[0].send(&format!("s:{room}:P0"));
        for (i, p) in players.iter().enumerate() {
            assert_eq!(p.recv_skipping_info(), start_message(&refs, i), "{room}");
        }
    }
    // The work was spread: more than one receiver read datagrams, and the sessions lie on more
    // than one worker, each counted once.
    let probe = server.probe();
    let busy = probe
        .receiver_totals()
        .iter()
        .filter(|t| t.runtime.datagrams_in > 0)
        .count();
    assert!(busy > 1, "only {busy} receiver(s) read anything");
    let created: Vec<u64> = probe
        .worker_totals()
        .iter()
        .map(|t| t.shard.sessions_created)
        .collect();
    assert_eq!(created.iter().sum::<u64>(), 24, "{created:?}");
    assert!(
        created.iter().filter(|&&n| n > 0).count() > 1,
        "{created:?}"
    );
    let ports: HashSet<u16> = sessions.iter().flatten().map(Player::port).collect();
    assert_eq!(ports.len(), 96);
    server.shutdown();
}
