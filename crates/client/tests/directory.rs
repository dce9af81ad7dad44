//! The blocking directory driver and a public session's socket against a fake server on
//! 127.0.0.1: a UdpSocket in the test that answers as docs/lobbies.md says, with the server's
//! own reply writers (rabid-wire). The client runs in a thread; the test answers it step by
//! step, every wait bounded by the fake server's read timeout.

use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use rabid_client::directory::{DirectoryError, Order, QUERY_TRIES};
use rabid_client::{Directory, LobbyEvent, Query, Request, Session};
use rabid_wire::lobby::{
    parse_lobby, write_browse_entry, write_browse_head, write_compat_entry, write_quick_join,
    Cursor, EntryView, LobbyRequest, MAX_REPLY_LEN,
};

fn fake_server() -> UdpSocket {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    server
}

fn recv(server: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 2048];
    let (n, from) = server
        .recv_from(&mut buf)
        .expect("a request from the client");
    (buf[..n].to_vec(), from)
}

fn lobby(session: &'static str, players: u8) -> EntryView<'static> {
    EntryView {
        session,
        host: "Ana",
        players,
        max_players: 4,
        password: false,
        version: "0.9.3",
        mode: "Draft",
        description: "all welcome",
        age_secs: 3,
        server: None,
    }
}

fn page(total: usize, next: Option<Cursor>, entries: &[EntryView<'_>]) -> Vec<u8> {
    let mut reply = Vec::new();
    write_browse_head(&mut reply, total, next);
    for e in entries {
        reply.push(b':');
        write_browse_entry(&mut reply, e);
    }
    reply
}

#[test]
fn a_listing_sends_a_padded_browse_and_reads_its_page() {
    let server = fake_server();
    let addr = server.local_addr().unwrap();
    let query = Query::game("cards")
        .free()
        .version("0.9.3")
        .order(Order::Fullest);
    let client = thread::spawn(move || Directory::new(addr).list(&query));
    let (request, from) = recv(&server);
    // Padded so that its page may be the full 1200 bytes.
    let Some(Ok(LobbyRequest::Browse(b))) = parse_lobby(&request) else {
        panic!("not a browse: {:?}", String::from_utf8_lossy(&request))
    };
    assert_eq!(b.page_limit(), MAX_REPLY_LEN);
    assert_eq!(
        (
            b.game,
            b.free_only,
            b.open_only,
            b.version,
            b.mode,
            b.cursor
        ),
        ("cards", true, false, Some("0.9.3"), None, None)
    );
    let next = Cursor { players: 2, seq: 7 };
    server
        .send_to(
            &page(3, Some(next), &[lobby("Room1", 3), lobby("Room2", 2)]),
            from,
        )
        .unwrap();
    let page = client.join().unwrap().unwrap();
    assert_eq!((page.total, page.next.as_deref()), (3, Some("2.7")));
    let names: Vec<&str> = page.entries.iter().map(|e| e.session.as_str()).collect();
    assert_eq!(names, ["Room1", "Room2"]);
    assert_eq!(page.entries[0].players, 3);
}

#[test]
fn list_all_follows_cursors_each_query_on_its_own_socket() {
    let server = fake_server();
    let addr = server.local_addr().unwrap();
    let client = thread::spawn(move || Directory::new(addr).list_all(&Query::game("cards"), 10));
    let (first, from1) = recv(&server);
    let Some(Ok(LobbyRequest::Browse(b))) = parse_lobby(&first) else {
        panic!()
    };
    assert_eq!(b.cursor, None);
    let reply = page(3, Some(Cursor { players: 1, seq: 9 }), &[lobby("Room3", 1)]);
    // Answered twice, as when the request was re-sent and both copies arrived.
    server.send_to(&reply, from1).unwrap();
    server.send_to(&reply, from1).unwrap();
    let (second, from2) = recv(&server);
    assert_ne!(
        from1, from2,
        "a fresh socket: the duplicate cannot pass for page 2"
    );
    let Some(Ok(LobbyRequest::Browse(b))) = parse_lobby(&second) else {
        panic!()
    };
    assert_eq!(b.cursor, Some(Cursor { players: 1, seq: 9 }));
    // A lobby already shown (it moved in the order between pages) is listed once.
    server
        .send_to(
            &page(
                3,
                None,
                &[lobby("Room3", 1), lobby("Room2", 1), lobby("Room1", 1)],
            ),
            from2,
        )
        .unwrap();
    let all = client.join().unwrap().unwrap();
    let names: Vec<&str> = all.entries.iter().map(|e| e.session.as_str()).collect();
    assert_eq!(names, ["Room3", "Room2", "Room1"]);
    assert_eq!((all.total, all.next), (3, None));
}

#[test]
fn a_lost_request_is_sent_again_and_refusals_are_typed() {
    let server = fake_server();
    let addr = server.local_addr().unwrap();
    let client = thread::spawn(move || {
        let directory = Directory::new(addr);
        (
            directory.quick_join("cards", None),
            directory.quick_join("cards", Some("0.9.3")),
            directory.list(&Query::game("cards")),
            directory.list_compat(),
        )
    });
    // The first quick join is "lost": its re-send (0.5 s later) is answered.
    let (lost, _) = recv(&server);
    let (again, from) = recv(&server);
    assert_eq!(lost, again);
    assert_eq!(
        String::from_utf8_lossy(&again),
        format!("q:1:cards::{}", "x".repeat(53))
    );
    let mut reply = Vec::new();
    write_quick_join(&mut reply, Some(&lobby("Room1", 2)));
    server.send_to(&reply, from).unwrap();

    let (request, from) = recv(&server);
    assert_eq!(
        String::from_utf8_lossy(&request),
        format!("q:1:cards:0.9.3:{}", "x".repeat(48))
    );
    reply.clear();
    write_quick_join(&mut reply, None);
    server.send_to(&reply, from).unwrap();

    let (_, from) = recv(&server);
    server
        .send_to(b"b:1:error:unsupported_version", from)
        .unwrap();

    let (request, from) = recv(&server);
    assert_eq!(request, b"l:");
    let mut reply = b"l:".to_vec();
    write_compat_entry(&mut reply, &lobby("Room9", 1));
    server.send_to(&reply, from).unwrap();

    let (found, none, refused, compat) = client.join().unwrap();
    let found = found.unwrap().expect("a lobby");
    assert_eq!(
        (found.session.as_str(), found.players, found.max_players),
        ("Room1", 2, 4)
    );
    assert_eq!(none.unwrap(), None);
    assert!(matches!(refused, Err(DirectoryError::UnsupportedVersion)));
    let compat = compat.unwrap();
    assert_eq!(compat.len(), 1);
    assert_eq!(
        (compat[0].session.as_str(), compat[0].password),
        ("Room9", None)
    );
}

#[test]
fn a_server_without_the_directory_is_a_timeout_after_bounded_tries() {
    let server = fake_server();
    let addr = server.local_addr().unwrap();
    let started = Instant::now();
    let outcome = Directory::new(addr).list_compat();
    assert!(
        matches!(outcome, Err(DirectoryError::Timeout)),
        "{outcome:?}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(4500) && took < Duration::from_secs(15),
        "{took:?}"
    );
    server.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    let sent = std::iter::from_fn(|| server.recv_from(&mut buf).ok()).count();
    assert_eq!(sent, QUERY_TRIES as usize);
}

#[test]
fn a_public_host_announces_and_chats_from_its_session_socket() {
    let server = fake_server();
    let addr = server.local_addr().unwrap();
    let request = Request::host("Room1", "alice", 4).public("cards", "0.9.3", "Draft", "hi all");
    let mut host = Session::open(addr, request).unwrap();
    let (hello, from) = recv(&server);
    assert_eq!(hello, b"h:Room1:alice:4");
    server.send_to(b"i:alice", from).unwrap();
    expect_event(&mut host, |e| matches!(e, LobbyEvent::Joined(_)));
    // Drive the lobby in a thread while this one plays the server.
    let client = thread::spawn(move || {
        expect_event(&mut host, |e| matches!(e, LobbyEvent::Listed));
        assert!(host.chat("gg: wp").unwrap());
        let chat = expect_event(&mut host, |e| matches!(e, LobbyEvent::Chat { .. }));
        (host, chat)
    });
    let announce = loop {
        let (datagram, sender) = recv(&server);
        assert_eq!(sender, from, "from the host's own address");
        if datagram.starts_with(b"a:") {
            break datagram;
        }
    };
    assert_eq!(
        String::from_utf8_lossy(&announce),
        "a:1:Room1:cards:1:0.9.3:Draft:hi all"
    );
    server.send_to(b"a:1:ok", from).unwrap();
    let said = loop {
        let (datagram, sender) = recv(&server);
        assert_eq!(sender, from);
        if datagram.starts_with(b"m:") {
            break datagram;
        }
    };
    assert_eq!(said, b"m:Room1:alice:gg: wp");
    server.send_to(b"m:alice:gg: wp", from).unwrap();
    server.send_to(b"i:alice", from).unwrap();
    let (host, chat) = client.join().unwrap();
    let LobbyEvent::Chat { player, text } = chat else {
        panic!()
    };
    assert_eq!((player.as_str(), text.as_str()), ("alice", "gg: wp"));
    assert!(host.lobby().is_host());
}

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

fn cli(server: SocketAddr, flags: &str) -> thread::JoinHandle<std::process::ExitCode> {
    let mut args = vec!["--server".to_string(), server.to_string()];
    args.extend(flags.split(' ').map(str::to_string));
    thread::spawn(move || rabid_client::run_cli(&args))
}

#[test]
fn cli_list_prints_a_game_or_the_compatible_list() {
    let server = fake_server();
    let addr = server.local_addr().unwrap();
    let run = cli(
        addr,
        "--list --game cards --free --order full --version-text 0.9.3",
    );
    let (request, from) = recv(&server);
    let Some(Ok(LobbyRequest::Browse(b))) = parse_lobby(&request) else {
        panic!()
    };
    assert_eq!(
        (b.game, b.free_only, b.version, b.order),
        ("cards", true, Some("0.9.3"), Order::Fullest)
    );
    server
        .send_to(
            &page(2, None, &[lobby("Room1", 3), lobby("Room2", 1)]),
            from,
        )
        .unwrap();
    assert_eq!(run.join().unwrap(), std::process::ExitCode::SUCCESS);

    let run = cli(addr, "--list --json");
    let (request, from) = recv(&server);
    assert_eq!(request, b"l:");
    server
        .send_to(b"l:Ana|Room1|2 / 4|0.9.3|Draft", from)
        .unwrap();
    assert_eq!(run.join().unwrap(), std::process::ExitCode::SUCCESS);

    let run = cli(addr, "--list --game cards");
    let (_, from) = recv(&server);
    server.send_to(b"b:1:error:invalid_request", from).unwrap();
    assert_eq!(run.join().unwrap(), std::process::ExitCode::FAILURE);
}

#[test]
fn cli_quick_join_asks_again_when_the_lobby_filled_up() {
    let server = fake_server();
    let addr = server.local_addr().unwrap();
    let run = cli(addr, "--quick-join --game cards --name bob --timeout 20");
    let mut found = Vec::new();
    write_quick_join(&mut found, Some(&lobby("Room1", 3)));
    let (request, from) = recv(&server);
    assert!(request.starts_with(b"q:1:cards:"));
    server.send_to(&found, from).unwrap();
    let (join, from) = recv(&server);
    assert_eq!(join, b"c:Room1:bob");
    server.send_to(b"error:session_full", from).unwrap();
    // Full by then: the client asks again; this time there is none.
    let (request, from) = recv(&server);
    assert!(request.starts_with(b"q:1:cards:"), "{request:?}");
    server.send_to(b"q:1:", from).unwrap();
    assert_eq!(run.join().unwrap(), std::process::ExitCode::FAILURE);
}

#[test]
fn cli_public_host_announces_and_chats_from_its_session_socket() {
    let server = fake_server();
    let addr = server.local_addr().unwrap();
    let run = cli(
        addr,
        "--host --session Room1 --name alice --public --game cards --version-text 0.9.3 \
         --mode Draft --description hi --chat hello --timeout 2",
    );
    let (hello, host) = recv(&server);
    assert_eq!(hello, b"h:Room1:alice:4");
    server.send_to(b"i:alice", host).unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let (datagram, from) = recv(&server);
        assert_eq!(from, host, "from the session's own socket");
        let text = String::from_utf8(datagram).unwrap();
        if text == "a:1:Room1:cards:1:0.9.3:Draft:hi" {
            server.send_to(b"a:1:ok", host).unwrap();
        } else if !text.starts_with("p:") && !seen.contains(&text) {
            assert_eq!(text, "m:Room1:alice:hello");
        }
        if !text.starts_with("p:") && !seen.contains(&text) {
            seen.push(text);
        }
    }
    // Nobody joins: the run ends at its --timeout, a failure.
    assert_eq!(run.join().unwrap(), std::process::ExitCode::FAILURE);
}
