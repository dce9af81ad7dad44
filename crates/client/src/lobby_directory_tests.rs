//! The lobby's part in the directory: publishing a hosted session, chat, and the directory's
//! replies never taken for the session's own.

use super::*;
use crate::directory::QUERY_TRIES;

fn drain(lobby: &mut Lobby) -> Vec<String> {
    std::iter::from_fn(|| lobby.poll_transmit())
        .map(|d| String::from_utf8(d).unwrap())
        .collect()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const ANNOUNCE: &str = "a:1:Room:cards:1:0.9.3:Draft:all welcome";

fn public_host(t0: Instant) -> Lobby {
    let request =
        Request::host("Room", "alice", 4).public("cards", "0.9.3", "Draft", "all welcome");
    let mut lobby = Lobby::new(request, t0).unwrap();
    assert_eq!(
        drain(&mut lobby),
        ["h:Room:alice:4"],
        "nothing public before the i:"
    );
    lobby
}

#[test]
fn a_public_host_announces_after_its_info_until_ok() {
    let t0 = Instant::now();
    let mut lobby = public_host(t0);
    lobby.handle_timeout(t0 + ms(500));
    assert_eq!(drain(&mut lobby), ["h:Room:alice:4"]);
    lobby.handle_datagram(t0 + ms(600), b"i:alice");
    assert!(matches!(lobby.poll_event(), Some(LobbyEvent::Joined(_))));
    assert_eq!(drain(&mut lobby), [ANNOUNCE]);
    // Re-sent every 0.5 s from the i:, as the pings.
    assert_eq!(lobby.poll_timeout(), Some(t0 + ms(1100)));
    lobby.handle_timeout(t0 + ms(1100));
    assert_eq!(
        drain(&mut lobby),
        [ANNOUNCE, "p:Room:alice"],
        "re-sent: the first was lost"
    );
    lobby.handle_datagram(t0 + ms(1200), b"a:1:ok");
    assert!(matches!(lobby.poll_event(), Some(LobbyEvent::Listed)));
    lobby.handle_timeout(t0 + ms(1600));
    lobby.handle_timeout(t0 + ms(2100));
    assert_eq!(
        drain(&mut lobby),
        ["p:Room:alice", "p:Room:alice"],
        "no announce after ok"
    );
    // A late copy of the answer is nothing.
    lobby.handle_datagram(t0 + ms(2200), b"a:1:ok");
    assert!(lobby.poll_event().is_none());
    assert!(!lobby.is_done());
}

#[test]
fn a_refused_or_unanswered_announce_is_an_event_and_the_session_goes_on() {
    let t0 = Instant::now();
    let mut lobby = public_host(t0);
    lobby.handle_datagram(t0, b"i:alice");
    lobby.handle_datagram(t0 + ms(10), b"a:1:error:non_host_player");
    lobby.poll_event();
    assert!(matches!(
        lobby.poll_event(),
        Some(LobbyEvent::ListingFailed(DirectoryError::Server(
            ServerError::NonHostPlayer
        )))
    ));
    assert!(!lobby.is_done());

    // A server without the directory never answers: QUERY_TRIES sends, then the event, and
    // the pings go on.
    let mut lobby = public_host(t0);
    lobby.handle_datagram(t0, b"i:alice");
    let mut announces = 0;
    let mut now = t0;
    let failed = loop {
        announces += drain(&mut lobby)
            .iter()
            .filter(|d| d.starts_with("a:"))
            .count();
        if let Some(event) = lobby.poll_event() {
            if let LobbyEvent::ListingFailed(e) = event {
                break e;
            }
            continue;
        }
        now = lobby.poll_timeout().unwrap();
        lobby.handle_timeout(now);
        // Keep the session alive, as the server's ping answers would.
        lobby.handle_datagram(now, b"i:alice");
    };
    assert!(matches!(failed, DirectoryError::Timeout));
    assert_eq!(announces, QUERY_TRIES as usize);
    assert_eq!(now, t0 + RESEND_INTERVAL * QUERY_TRIES);
    assert!(!lobby.is_done());
}

#[test]
fn the_compatible_listing_sends_d_three_times() {
    let t0 = Instant::now();
    let request = Request::host("Room1", "ana", 4).public_compat("0.9.3", "Constructed - Free");
    let mut lobby = Lobby::new(request, t0).unwrap();
    drain(&mut lobby);
    lobby.handle_datagram(t0, b"i:ana");
    let d = "d:Room1:True:0.9.3:Constructed - Free";
    assert_eq!(drain(&mut lobby), [d]);
    lobby.handle_timeout(t0 + ms(500));
    assert_eq!(drain(&mut lobby), [d, "p:Room1:ana"]);
    lobby.handle_timeout(t0 + ms(1000));
    assert_eq!(drain(&mut lobby), [d, "p:Room1:ana"]);
    lobby.handle_timeout(t0 + ms(1500));
    assert_eq!(drain(&mut lobby), ["p:Room1:ana"]);
}

#[test]
fn a_joiner_never_publishes_and_bad_listing_fields_fail_before_sending() {
    let t0 = Instant::now();
    let mut join = Request::join("Room", "bob");
    join.publish = Request::host("Room", "bob", 2)
        .public("g", "", "", "")
        .publish;
    assert!(matches!(
        Lobby::new(join, t0),
        Err(Error::InvalidArgument(_))
    ));
    for bad in [
        Request::host("Room", "a", 2).public("ca rds", "", "", ""),
        Request::host("Room", "a", 2).public("cards", "0.9|1", "", ""),
        Request::host("Room", "a", 2).public("cards", "", &"m".repeat(33), ""),
        Request::host("Room", "a", 2).public("cards", "", "", "new\nline"),
        Request::host("Room", "a", 2).public_compat("", "a;b"),
    ] {
        assert!(
            matches!(Lobby::new(bad.clone(), t0), Err(Error::InvalidArgument(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn chat_goes_out_once_and_comes_back_as_an_event() {
    let t0 = Instant::now();
    let mut lobby = Lobby::new(Request::join("Room", "bob"), t0).unwrap();
    drain(&mut lobby);
    assert!(!lobby.chat("too early").unwrap());
    assert!(drain(&mut lobby).is_empty());
    lobby.handle_datagram(t0, b"i:alice:bob");
    lobby.poll_event();
    assert!(lobby.chat("gg: wp").unwrap());
    assert_eq!(drain(&mut lobby), ["m:Room:bob:gg: wp"]);
    lobby.handle_timeout(t0 + ms(500));
    assert_eq!(drain(&mut lobby), ["p:Room:bob"], "said once");
    assert!(matches!(lobby.chat(""), Err(Error::InvalidArgument(_))));
    assert!(matches!(
        lobby.chat("bell\u{7}"),
        Err(Error::InvalidArgument(_))
    ));
    lobby.handle_datagram(t0 + ms(600), b"m:alice:hi: bob");
    lobby.handle_datagram(t0 + ms(600), b"i:alice:bob");
    let Some(LobbyEvent::Chat { player, text }) = lobby.poll_event() else {
        panic!()
    };
    assert_eq!((player.as_str(), text.as_str()), ("alice", "hi: bob"));
    assert!(
        lobby.poll_event().is_none(),
        "the i: after a chat changes nothing"
    );
}

#[test]
fn directory_replies_are_not_the_sessions_info_start_or_errors() {
    let t0 = Instant::now();
    let mut lobby = Lobby::new(Request::join("Room", "bob"), t0).unwrap();
    drain(&mut lobby);
    lobby.handle_datagram(t0, b"i:alice:bob");
    lobby.poll_event();
    for reply in [
        &b"a:1:error:non_host_player"[..],
        b"a:1:ok",
        b"b:1:error:invalid_request",
        b"b:1:error:unsupported_version",
        b"b:1:1::Room|alice|2|4|0|v|m|d|3",
        b"q:1:error:invalid_request",
        b"q:1:",
        b"q:1:Room:alice:2:4",
        b"l:alice|Room|2 / 4|v|m",
        b"m:alice:error:session_full",
        b"m:alice:s:1:x",
    ] {
        lobby.handle_datagram(t0 + ms(10), reply);
        assert!(!lobby.is_done(), "{:?}", String::from_utf8_lossy(reply));
        assert!(!lobby.is_host());
    }
    let events: Vec<LobbyEvent> = std::iter::from_fn(|| lobby.poll_event()).collect();
    assert_eq!(events.len(), 2, "the two chat lines only: {events:?}");
    assert!(events.iter().all(|e| matches!(e, LobbyEvent::Chat { .. })));
    assert_eq!(lobby.players(), ["alice", "bob"]);
}
