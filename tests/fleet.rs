//! A fleet of servers sharing one lobby directory through a real `redis-server` (one per test,
//! on a free port; see `common/redis.rs`): listings on each show every server's lobbies with
//! the server to join them at; a stopped or killed server's lobbies vanish; Redis killed and
//! restarted; session names unique across the fleet.
//!
//! Every wait is for a condition, bounded: a listing re-asked every 0.5 s until it shows what
//! is expected (`Player::retry`, at most 30 s), or a figure read until it changes.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::binary;
use common::redis::Redis;
use common::Player;
use rabid_punch::core::directory::HttpQuery;
use rabid_punch::runtime::fleet::FleetConfig;
use rabid_punch::runtime::{Server, ServerConfig};

/// Short TTLs, so that a test waits seconds, not tens of seconds.
const TTL: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(200);

/// A free UDP port on 127.0.0.1: the server binds it and names it as its public address.
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

fn fleet_server(redis: &Redis, region: &str) -> Server {
    let port = free_port();
    let mut fleet = FleetConfig::new(&redis.url(), "127.0.0.1", port);
    if redis.url().starts_with("rediss://") {
        let ca = std::fs::read(format!("{}/ca.pem", common::redis::TLS_FIXTURES)).unwrap();
        fleet.ca = Some(ca);
    }
    fleet.region = region.into();
    fleet.ttl = TTL;
    fleet.poll = POLL;
    let mut config = ServerConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], port)),
        workers: 2,
        fleet: Some(fleet),
        ..ServerConfig::default()
    };
    // No pings in these tests: sessions must outlive them.
    config.core.player_timeout = Duration::from_secs(120);
    Server::start(config).expect("start a fleet server")
}

/// A `b:1:` request for game `cards`, padded to earn a full page.
fn browse() -> String {
    format!("b:1:cards::::n::{}", "x".repeat(400))
}

/// The sessions of a `b:1:` page, with their entries.
fn entries(page: &str) -> Vec<(String, Vec<String>)> {
    page.strip_prefix("b:1:")
        .expect("a page")
        .split(':')
        .skip(2)
        .map(|e| {
            let fields: Vec<String> = e.split('|').map(String::from).collect();
            (fields[0].clone(), fields)
        })
        .collect()
}

/// Re-asks `browser` for the page until it lists exactly `sessions` (in any order).
fn until_listed(browser: &Player, sessions: &[&str]) -> String {
    let mut want: Vec<&str> = sessions.to_vec();
    want.sort();
    browser.retry(&browse(), |page| {
        let mut got: Vec<String> = entries(page).into_iter().map(|(s, _)| s).collect();
        got.sort();
        got == want
    })
}

/// Hosts `session` as `host`: in a fleet, the first `h:` for a new name goes unanswered while
/// the name is claimed in Redis, so it is re-sent every 0.5 s, as the plugin does.
fn host(server: SocketAddr, session: &str, host: &str) -> Player {
    let player = Player::new(server);
    let got = player.retry(&format!("h:{session}:{host}:4"), |_| true);
    assert_eq!(got, format!("i:{host}"));
    player
}

/// Hosts `session` as `host` and lists it in game `cards`.
fn lobby(server: SocketAddr, session: &str, host_name: &str) -> Player {
    let player = host(server, session, host_name);
    assert_eq!(
        player.request(&format!("a:1:{session}:cards:1:1.0:Draft:hi")),
        "a:1:ok"
    );
    player
}

/// Waits, at most `within`, until `done` holds.
fn wait_for(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The same over TLS (`rediss://`), the server's certificate signed by a CA given with
/// `--directory-ca`: two servers list each other's lobbies.
#[test]
fn a_fleet_over_tls_lists_across_servers() {
    let Some(redis) = Redis::start_tls("a_fleet_over_tls_lists_across_servers") else {
        return;
    };
    let (a, b) = (fleet_server(&redis, "eu"), fleet_server(&redis, "us"));
    let _ana = lobby(a.local_addr(), "TlsA", "Ana");
    let _bob = lobby(b.local_addr(), "TlsB", "Bob");
    for server in [&a, &b] {
        until_listed(&Player::new(server.local_addr()), &["TlsA", "TlsB"]);
    }
    a.shutdown();
    b.shutdown();
}

#[test]
fn three_servers_list_each_others_lobbies() {
    let Some(redis) = Redis::start("three_servers_list_each_others_lobbies") else {
        return;
    };
    let (a, b, c) = (
        fleet_server(&redis, "eu"),
        fleet_server(&redis, "us"),
        fleet_server(&redis, "asia"),
    );
    let ana = lobby(a.local_addr(), "RoomA", "Ana");
    let _bob = lobby(b.local_addr(), "RoomB", "Bob");
    let _cid = lobby(c.local_addr(), "RoomC", "Cid");
    let browsers: Vec<Player> = [&a, &b, &c]
        .iter()
        .map(|s| Player::new(s.local_addr()))
        .collect();
    for browser in &browsers {
        until_listed(browser, &["RoomA", "RoomB", "RoomC"]);
    }
    // On a: its own lobby as always (9 fields), the others with the server to join them at.
    let page = until_listed(&browsers[0], &["RoomA", "RoomB", "RoomC"]);
    let listed = entries(&page);
    let fields = |s: &str| listed.iter().find(|(n, _)| n == s).unwrap().1.clone();
    assert_eq!(fields("RoomA").len(), 9, "{page}");
    let b_port = b.local_addr().port().to_string();
    assert_eq!(fields("RoomB")[9..], ["127.0.0.1", b_port.as_str(), "us"]);
    assert_eq!(fields("RoomC")[11], "asia");
    // Quick join answers with a lobby somewhere, naming its server when it is not this one.
    // (Padded: an answer naming a server is longer than 3 times a bare `q:1:cards`.)
    let found = browsers[0].request(&format!("q:1:cards::{}", "x".repeat(40)));
    let parts = found.split(':').count();
    assert!(parts == 6 || parts == 9, "{found}");
    // FusionV1's l: is this server's only: its players can join no other.
    assert_eq!(browsers[0].request("l:"), "l:");
    // The JSON view names the server and region of remote lobbies.
    let json = a
        .directory()
        .to_json(&HttpQuery::parse("game=cards").unwrap(), Instant::now());
    assert!(
        json.contains(&format!(
            "\"server\":\"127.0.0.1:{b_port}\",\"region\":\"us\""
        )),
        "{json}"
    );
    // A player joins b's lobby at the address a listed; a's listing follows the count.
    let zed = Player::new(format!("127.0.0.1:{b_port}").parse().unwrap());
    assert_eq!(zed.request("c:RoomB:Zed"), "i:Bob:Zed");
    browsers[0].retry(&browse(), |page| page.contains("RoomB|Bob|2|4|"));
    // A lobby that starts leaves every listing.
    let amy = Player::new(a.local_addr());
    assert_eq!(amy.request("c:RoomA:Amy"), "i:Ana:Amy");
    ana.send("s:RoomA:Ana");
    until_listed(&browsers[1], &["RoomB", "RoomC"]);
    // A server that stops takes its lobbies with it.
    c.shutdown();
    until_listed(&browsers[0], &["RoomB"]);
    until_listed(&browsers[1], &["RoomB"]);
    a.shutdown();
    b.shutdown();
}

#[test]
fn a_killed_server_vanishes_within_the_ttl() {
    let Some(redis) = Redis::start("a_killed_server_vanishes_within_the_ttl") else {
        return;
    };
    let a = fleet_server(&redis, "eu");
    let port = free_port().to_string();
    let public = format!("127.0.0.1:{port}");
    let log = binary::temp_dir("fleet-killed").join("server.log");
    let killed = binary::start(&[
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--workers",
        "1",
        "--log-file",
        log.to_str().unwrap(),
        "--directory",
        &redis.url(),
        "--public-address",
        &public,
        "--region",
        "far",
    ]);
    let _kim = lobby(killed.addr, "RoomK", "Kim");
    let browser = Player::new(a.local_addr());
    let page = until_listed(&browser, &["RoomK"]);
    assert!(page.contains(&format!("|127.0.0.1|{port}|far")), "{page}");
    // SIGKILL: no goodbye. The binary's records live 6 s (the default TTL) unless refreshed.
    drop(killed);
    let killed_at = Instant::now();
    until_listed(&browser, &[]);
    let gone = killed_at.elapsed();
    assert!(
        gone < Duration::from_secs(6 + 3),
        "listed {gone:?} after the kill"
    );
    a.shutdown();
}

#[test]
fn redis_killed_and_restarted() {
    let Some(mut redis) = Redis::start("redis_killed_and_restarted") else {
        return;
    };
    let (a, b) = (fleet_server(&redis, "eu"), fleet_server(&redis, "us"));
    let _ana = lobby(a.local_addr(), "RoomA", "Ana");
    let _bob = lobby(b.local_addr(), "RoomB", "Bob");
    let (on_a, on_b) = (Player::new(a.local_addr()), Player::new(b.local_addr()));
    until_listed(&on_a, &["RoomA", "RoomB"]);
    until_listed(&on_b, &["RoomA", "RoomB"]);
    wait_for(Duration::from_secs(10), "a counts Redis as up", || {
        a.totals().runtime.fleet_up == 1
    });

    redis.kill();
    // Local service goes on: a new session, a join, a listing of a's own lobbies.
    let _cat = lobby(a.local_addr(), "RoomC", "Cat");
    let dan = Player::new(a.local_addr());
    assert_eq!(dan.request("c:RoomC:Dan"), "i:Cat:Dan");
    wait_for(Duration::from_secs(10), "a counts Redis as down", || {
        let t = a.totals().runtime;
        t.fleet_up == 0 && t.fleet_redis_errors > 0
    });
    // After the TTL without news, a lists its own lobbies only (b's may be gone).
    until_listed(&on_a, &["RoomA", "RoomC"]);

    // Back, empty: both register again and republish; the directory is whole again.
    redis.restart();
    until_listed(&on_b, &["RoomA", "RoomB", "RoomC"]);
    until_listed(&on_a, &["RoomA", "RoomB", "RoomC"]);
    wait_for(Duration::from_secs(10), "a counts Redis as up", || {
        a.totals().runtime.fleet_up == 1
    });
    a.shutdown();
    b.shutdown();
}

#[test]
fn session_names_are_unique_across_the_fleet() {
    let Some(redis) = Redis::start("session_names_are_unique_across_the_fleet") else {
        return;
    };
    let (a, b) = (fleet_server(&redis, "eu"), fleet_server(&redis, "us"));
    // A private session (never listed) and a lobby after it: once b lists the lobby, it has
    // read a's sessions, the private one included.
    let ann = host(a.local_addr(), "Priv1", "Ann");
    let _ana = lobby(a.local_addr(), "Pub1", "Ana");
    until_listed(&Player::new(b.local_addr()), &["Pub1"]);
    let bob = Player::new(b.local_addr());
    assert_eq!(bob.request("h:Priv1:Bob:4"), "error:session_exists");
    assert_eq!(bob.request("h:Pub1:Bob:4"), "error:session_exists");
    // The name is free again on b once a's session is gone.
    ann.send("x:Priv1:Ann");
    bob.retry("h:Priv1:Bob:4", |r| r == "i:Bob");

    // Hosts of the same names on both servers at the same instant: each name is claimed in
    // Redis before its session is created, so exactly one server accepts it.
    let names: Vec<String> = (0..20).map(|i| format!("Race{i}")).collect();
    let barrier = Arc::new(Barrier::new(2));
    let hosts: Vec<_> = [a.local_addr(), b.local_addr()]
        .into_iter()
        .map(|addr| {
            let (names, barrier) = (names.clone(), barrier.clone());
            std::thread::spawn(move || {
                let players: Vec<Player> = names.iter().map(|_| Player::new(addr)).collect();
                let mut replies: Vec<Option<String>> = vec![None; names.len()];
                barrier.wait();
                // Every unanswered host re-sends every 0.5 s, as the plugin does.
                let deadline = Instant::now() + Duration::from_secs(30);
                while replies.iter().any(Option::is_none) {
                    assert!(Instant::now() < deadline, "hosts unanswered: {replies:?}");
                    for (i, p) in players.iter().enumerate() {
                        if replies[i].is_none() {
                            p.send(&format!("h:{}:Host:4", names[i]));
                        }
                    }
                    let round_end = Instant::now() + Duration::from_millis(500);
                    for (i, p) in players.iter().enumerate() {
                        if replies[i].is_some() {
                            continue;
                        }
                        let left = round_end.saturating_duration_since(Instant::now());
                        let wait = left.max(Duration::from_millis(1));
                        p.socket.set_read_timeout(Some(wait)).unwrap();
                        let mut buf = [0u8; 512];
                        if let Ok(n) = p.socket.recv(&mut buf) {
                            replies[i] = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
                        }
                    }
                }
                replies
                    .into_iter()
                    .map(|r| {
                        let r = r.unwrap();
                        assert!(r == "i:Host" || r == "error:session_exists", "{r}");
                        r == "i:Host"
                    })
                    .collect::<Vec<bool>>()
            })
        })
        .collect();
    let accepted: Vec<Vec<bool>> = hosts.into_iter().map(|h| h.join().unwrap()).collect();
    let both = (0..names.len())
        .filter(|&i| accepted[0][i] && accepted[1][i])
        .count();
    for (i, name) in names.iter().enumerate() {
        assert!(accepted[0][i] || accepted[1][i], "{name} refused by both");
    }
    assert_eq!(both, 0, "names accepted on both servers");
    wait_for(Duration::from_secs(10), "every conflict counted", || {
        let conflicts =
            a.totals().runtime.fleet_name_conflicts + b.totals().runtime.fleet_name_conflicts;
        conflicts as usize == both
    });
    let client = redis::Client::open(redis.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let nodes: Vec<String> = redis::cmd("ZRANGE")
        .arg("rabid:nodes")
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    assert_eq!(nodes.len(), 2);
    // Each name in exactly one server's sessions, once the fleet threads wrote them.
    let mut want = names.clone();
    want.sort();
    let mut held = Vec::new();
    wait_for(Duration::from_secs(10), "every name in Redis once", || {
        held.clear();
        for node in &nodes {
            let fields: Vec<String> = redis::cmd("HKEYS")
                .arg(format!("rabid:sessions:{node}"))
                .query(&mut con)
                .unwrap();
            held.extend(fields.into_iter().filter(|f| f.starts_with("Race")));
        }
        held.sort();
        held == want
    });
    let on_a = accepted[0].iter().filter(|&&x| x).count();
    eprintln!("{on_a} of {} names went to a, the rest to b", names.len());
    a.shutdown();
    b.shutdown();
}

/// The Rust client's quick join asks one server and finds a lobby of another: it is told where
/// (`Found::server`), and a join there gets in.
#[test]
fn the_rust_clients_quick_join_finds_a_lobby_on_another_server() {
    let Some(redis) = Redis::start("the_rust_clients_quick_join_finds_a_lobby_on_another_server")
    else {
        return;
    };
    let (a, b) = (fleet_server(&redis, "eu"), fleet_server(&redis, "us"));
    let _host = lobby(b.local_addr(), "Far", "Hana");
    until_listed(&Player::new(a.local_addr()), &["Far"]);
    let found = rabid_punch::client::Directory::new(a.local_addr())
        .quick_join("cards", None)
        .expect("an answer")
        .expect("a lobby");
    assert_eq!(found.session, "Far");
    let server = found.server.expect("the server it is on");
    assert_eq!(
        (server.port, server.region.as_str()),
        (b.local_addr().port(), "us")
    );
    let joiner = Player::new(server.address().parse().unwrap());
    assert_eq!(joiner.request("c:Far:Joiner"), "i:Hana:Joiner");
    a.shutdown();
    b.shutdown();
}

/// A node's record (its address and region) is part of every listing of its lobbies: when it
/// changes and the node's sessions hash does not (a successor of a hot restart in another
/// region, which keeps the node's hash), the others list its lobbies under the new record at
/// their next poll. The node here is written by hand, so that nothing but its record changes.
#[test]
fn a_node_whose_record_changes_is_listed_under_the_new_record() {
    let Some(redis) = Redis::start("a_node_whose_record_changes_is_listed_under_the_new_record")
    else {
        return;
    };
    let a = fleet_server(&redis, "eu");
    let mut con = redis::Client::open(redis.url())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(20)))
        .expect("a connection to the test's Redis");
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let node = "0123456789abcdef";
    let record = |con: &mut redis::Connection, region: &str| {
        redis::cmd("SET")
            .arg(format!("rabid:node:{node}"))
            .arg(format!("127.0.0.1|9|{region}"))
            .arg("PX")
            .arg(120_000)
            .query::<()>(con)
            .unwrap();
    };
    record(&mut con, "north");
    let mut pipe = redis::pipe();
    pipe.cmd("ZADD")
        .arg("rabid:nodes")
        .arg(unix_ms + 120_000)
        .arg(node);
    pipe.cmd("HSET")
        .arg(format!("rabid:sessions:{node}"))
        .arg("RoomN")
        .arg(format!("cards|Nia|1|4|0|1.0|Draft|hi|{unix_ms}"))
        .arg("#")
        .arg(1);
    pipe.query::<()>(&mut con).unwrap();

    let browser = Player::new(a.local_addr());
    let page = until_listed(&browser, &["RoomN"]);
    assert!(page.contains("|127.0.0.1|9|north"), "{page}");
    record(&mut con, "south");
    let page = browser.retry(&browse(), |page| page.contains("|127.0.0.1|9|south"));
    assert_eq!(entries(&page).len(), 1, "{page}");
    a.shutdown();
}
