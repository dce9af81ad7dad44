//! The lobby directory over real UDP on 127.0.0.1: FusionV1's messages byte for byte, the
//! extension, the HTTP view, and floods of listings: held to the send budget, and pings of
//! other sessions unaffected.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Player;
use rabid_punch::budget::BudgetConfig;
use rabid_punch::metrics::Endpoint;
use rabid_punch::runtime::{Server, ServerConfig};

fn server() -> Server {
    Server::start(ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        workers: 2,
        ..ServerConfig::default()
    })
    .expect("start the server")
}

/// Waits (bounded) until `player`'s `request` is answered with exactly `want`: the directory is
/// written by the workers and read by another thread, so a listing right after a `d:` may
/// still be the one before.
fn until(player: &Player, request: &str, want: &str) {
    let got = player.retry(request, |reply| reply == want);
    assert_eq!(got, want);
}

#[test]
fn fusion_messages_byte_for_byte() {
    let server = server();
    let addr = server.local_addr();
    let (ana, ben, browser) = (Player::new(addr), Player::new(addr), Player::new(addr));
    assert_eq!(ana.request("h:Room1:Ana:4"), "i:Ana");
    assert_eq!(ben.request("c:Room1:Ben"), "i:Ana:Ben");
    assert_eq!(ana.recv(), "i:Ana:Ben");
    assert_eq!(browser.request("l:"), "l:");
    ana.send("d:Room1:True:0.9.3:Constructed - Free");
    until(&browser, "l:", "l:Ana|Room1|2 / 4|0.9.3|Constructed - Free");
    // Chat: to every member, then the player list, as FusionV1.
    ben.send("m:Room1:Ben:gg: wp");
    for p in [&ana, &ben] {
        assert_eq!(p.recv(), "m:Ben:gg: wp");
        assert_eq!(p.recv(), "i:Ana:Ben");
    }
    // Ben cannot speak for Ana, nor set the lobby data.
    assert_eq!(ben.request("m:Room1:Ana:hi"), "error:non_existent_player");
    assert_eq!(ben.request("d:Room1:False:1:x"), "error:non_host_player");
    ana.send("s:Room1:Ana");
    until(&browser, "l:", "l:");
    server.shutdown();
}

#[test]
fn the_extension_lists_announces_and_quick_joins() {
    let server = server();
    let addr = server.local_addr();
    let (host, browser) = (Player::new(addr), Player::new(addr));
    assert_eq!(host.request("h:Cards1:Ana:4"), "i:Ana");
    assert_eq!(
        host.request("a:1:Cards1:com.example.cards:1:1.0:Draft:all welcome"),
        "a:1:ok"
    );
    let padded = format!("b:1:com.example.cards:fo:::n::{}", "x".repeat(100));
    let page = browser.retry(&padded, |r| r != "b:1:0:");
    assert_eq!(page, "b:1:1::Cards1|Ana|1|4|0|1.0|Draft|all welcome|0");
    assert_eq!(
        browser.request("q:1:com.example.cards"),
        "q:1:Cards1:Ana:1:4"
    );
    assert_eq!(browser.request("q:1:another.game"), "q:1:");
    assert_eq!(
        browser.request("b:9:com.example.cards"),
        "b:1:error:unsupported_version"
    );
    server.shutdown();
}

/// `GET path` on `addr`; the status line and the body.
fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

#[test]
fn the_http_view_serves_the_directory_as_json() {
    let server = server();
    let addr = server.local_addr();
    let http = Endpoint::bind("127.0.0.1:0".parse().unwrap())
        .unwrap()
        .serve(server.probe(), server.directory())
        .unwrap();
    let host = Player::new(addr);
    assert_eq!(host.request("h:Room1:Ana:4"), "i:Ana");
    assert_eq!(
        host.request("a:1:Room1:cards:1:1.0:Draft - Open:hi"),
        "a:1:ok"
    );
    let (status, body) = http_get(http.local_addr(), "/lobbies?game=cards&mode=Draft+-+Open");
    assert!(status.contains("200"), "{status}");
    assert!(
        body.starts_with(
            "{\"game\":\"cards\",\"total\":1,\"lobbies\":[{\"session\":\"Room1\",\"host\":\"Ana\",\
             \"players\":1,\"max\":4,\"password\":false,\"version\":\"1.0\",\"mode\":\"Draft - \
             Open\",\"description\":\"hi\",\"age_s\":"
        ),
        "{body}"
    );
    assert!(!body.contains("127.0.0.1"), "no address: {body}");
    let (status, _) = http_get(http.local_addr(), "/lobbies?game=cards&order=sideways");
    assert!(status.contains("400"), "{status}");
    let (status, body) = http_get(http.local_addr(), "/metrics");
    assert!(status.contains("200") && body.contains("rabid_punch_lobbies_listed"));
    http.stop();
    server.shutdown();
}

/// Lists `n` public lobbies, each hosted from a socket of its own (kept open: a socket closed
/// would make the host's pings stop, and its lobby time out).
fn public_lobbies(addr: SocketAddr, n: usize) -> Vec<Player> {
    (0..n)
        .map(|i| {
            let host = Player::new(addr);
            assert_eq!(
                host.request(&format!("h:L{i}:Host{i}:12")),
                format!("i:Host{i}")
            );
            host.send(&format!("d:L{i}:True:1.0.0:Some long mode text"));
            host
        })
        .collect()
}

#[test]
fn a_forged_listing_flood_is_held_to_the_send_budget() {
    let server = server();
    let addr = server.local_addr();
    let _hosts = public_lobbies(addr, 30);
    let browser = Player::new(addr);
    // The listing is cut at 1200 bytes: every `l:` below asks for about that much.
    browser.retry("l:", |r| r.len() > 1100);
    // The attacker forges the victim's address (here: sends from it) with the smallest request
    // there is, for a full listing each.
    let victim = UdpSocket::bind("127.0.0.2:0").unwrap();
    victim
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (socket, received, stop) =
            (victim.try_clone().unwrap(), received.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(len) = socket.recv(&mut buf) {
                    received.fetch_add(len as u64, Ordering::Relaxed);
                }
            }
        })
    };
    let started = Instant::now();
    let mut sent = 0u64;
    let mut count = 0u32;
    while started.elapsed() < Duration::from_secs(2) && count < 200_000 {
        if victim.send_to(b"l:", addr).is_ok() {
            sent += 2;
        }
        count += 1;
        if count.is_multiple_of(64) {
            std::thread::yield_now();
        }
    }
    // What the directory thread had queued goes out after the last request: count it too.
    let quiet_since = Instant::now();
    let mut last = received.load(Ordering::Relaxed);
    while quiet_since.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(200));
        let now = received.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let window = started.elapsed();
    let got = received.load(Ordering::Relaxed);
    let budget = BudgetConfig::default();
    let bound = budget.earn_factor * sent
        + budget.burst
        + budget.refill_per_sec * window.as_secs()
        + budget.refill_per_sec;
    eprintln!(
        "listing flood: {count} requests ({sent} B) from the victim's address; it got {got} B \
         in {window:?}; bound {bound} B"
    );
    assert!(got > 0, "some listings were answered");
    assert!(got <= bound, "victim got {got} B > bound {bound} B");
    server.shutdown();
}

#[test]
fn a_listing_flood_from_many_addresses_leaves_other_sessions_served() {
    let server = server();
    let addr = server.local_addr();
    let _hosts = public_lobbies(addr, 20);
    let stop = Arc::new(AtomicBool::new(false));
    let flooders: Vec<_> = (3..9u8)
        .map(|last| {
            let socket = UdpSocket::bind((std::net::Ipv4Addr::new(127, 0, 0, last), 0)).unwrap();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u32;
                let padded = format!("b:1:cards::::n::{}", "x".repeat(300));
                while n < 300_000 && !stop.load(Ordering::Relaxed) {
                    let _ = socket.send_to(
                        if n.is_multiple_of(2) {
                            b"l:"
                        } else {
                            padded.as_bytes()
                        },
                        addr,
                    );
                    n += 1;
                    if n.is_multiple_of(64) {
                        std::thread::yield_now();
                    }
                }
                n
            })
        })
        .collect();
    // Meanwhile a real session is played: joins, 10 rounds of pings, the start.
    let (a, b) = (Player::new(addr), Player::new(addr));
    a.retry("h:Real:A:2", |r| r == "i:A");
    b.retry("c:Real:B", |r| r == "i:A:B");
    for _ in 0..10 {
        a.retry("p:Real:A", |r| r.starts_with("i:A:B"));
        b.retry("p:Real:B", |r| r.starts_with("i:A:B"));
    }
    a.retry("s:Real:A", |r| r.starts_with("s:"));
    stop.store(true, Ordering::Relaxed);
    let sent: u32 = flooders.into_iter().map(|t| t.join().unwrap()).sum();
    let totals = server.totals();
    eprintln!(
        "listing flood from 6 addresses: {sent} requests, {} answered, {} dropped at the \
         directory's queue, {} replies withheld by budgets; the real session completed",
        totals.runtime.directory_queries,
        totals.runtime.directory_dropped,
        totals.runtime.dropped_budget
    );
    assert!(totals.runtime.directory_queries > 0);
    server.shutdown();
}

/// The Rust client end to end: a host publishes its lobby and chats, a browser finds it by
/// listing and by quick join, then joins it; the CLI lists it as JSON.
#[test]
fn the_rust_client_publishes_lists_and_quick_joins() {
    use rabid_punch::client::{Directory, LobbyEvent, Query, Request, Session};

    let server = server();
    let addr = server.local_addr();
    let request = Request::host("Public1", "ana", 4).public(
        "com.example.cards",
        "0.9.3",
        "Draft",
        "all welcome",
    );
    let mut host = Session::open(addr, request).unwrap();
    let deadline = Some(Instant::now() + Duration::from_secs(20));
    loop {
        match host.next_event(deadline).unwrap() {
            Some(LobbyEvent::Listed) => break,
            Some(LobbyEvent::ListingFailed(e)) => panic!("listing failed: {e}"),
            Some(_) => {}
            None => panic!("not listed within 20 s"),
        }
    }
    let directory = Directory::new(addr);
    let page = directory
        .list(&Query::game("com.example.cards").free().open())
        .unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.entries[0].session, "Public1");
    assert_eq!(page.entries[0].host, "ana");
    assert_eq!(page.entries[0].description, "all welcome");
    let found = directory
        .quick_join("com.example.cards", None)
        .unwrap()
        .expect("a lobby with a free slot");
    assert_eq!((found.session.as_str(), found.players), ("Public1", 1));
    // Another game sees nothing.
    assert_eq!(directory.list(&Query::game("other")).unwrap().total, 0);

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rabid-punch"))
        .args(["client", "--server", &addr.to_string(), "--list", "--game"])
        .args(["com.example.cards", "--json", "--timeout", "20"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("\"session\":\"Public1\""), "{stdout}");
    assert!(
        !stdout.contains("127.0.0.1"),
        "no address in a listing: {stdout}"
    );

    // The browser joins what it found, and the two chat.
    let mut ben = Session::open(addr, Request::join(&found.session, "ben")).unwrap();
    loop {
        match ben.next_event(deadline).unwrap() {
            Some(LobbyEvent::Joined(players)) => {
                assert_eq!(players, ["ana", "ben"]);
                break;
            }
            Some(_) => {}
            None => panic!("no join within 20 s"),
        }
    }
    assert!(ben.chat("hello ana").unwrap());
    loop {
        match host.next_event(deadline).unwrap() {
            Some(LobbyEvent::Chat { player, text }) => {
                assert_eq!((player.as_str(), text.as_str()), ("ben", "hello ana"));
                break;
            }
            Some(_) => {}
            None => panic!("no chat within 20 s"),
        }
    }
    server.shutdown();
}

/// A game sends `d:` right after its `h:` (through the plugin's socket): when both arrive in one
/// batch, the worker still gets them in order, so the `d:` finds its session.
#[test]
fn lobby_data_right_after_its_host_request_finds_the_session() {
    let server = server();
    let addr = server.local_addr();
    let host = Player::new(addr);
    for i in 0..20 {
        host.send(&format!("h:Quick{i}:Host:4"));
        host.send(&format!("d:Quick{i}:True:1.0:x"));
    }
    // Twenty `i:Host` replies, and no error among them.
    for _ in 0..20 {
        let reply = host.recv();
        assert_eq!(reply, "i:Host", "d: overtook its h:");
    }
    assert!(host.quiet_for(Duration::from_millis(300)), "an extra reply");
    let browser = Player::new(addr);
    browser.retry("l:", |r| r.matches("|Quick").count() == 20);
    server.shutdown();
}
