//! The directory on its own: what each listing shows, in which order, paged how, and the
//! counts and indexes kept right through updates.

use std::time::{Duration, Instant};

use rabid_wire::lobby::{parse_lobby, Browse, LobbyRequest, MAX_REPLY_LEN};

use super::*;

fn listing(session: &str, scope: Scope, players: u8, max: u8, created: Instant) -> Listing {
    Listing {
        session: SessionName::new(session).unwrap(),
        scope,
        host: PlayerName::new(&format!("H{session}")).unwrap(),
        players,
        max_players: max,
        password: false,
        version: "1.0".into(),
        mode: "Draft".into(),
        description: String::new(),
        created,
        origin: None,
    }
}

fn game(name: &str) -> Scope {
    Scope::Game(name.into())
}

fn browse(request: &str) -> Browse<'_> {
    match parse_lobby(request.as_bytes()) {
        Some(Ok(LobbyRequest::Browse(b))) => b,
        other => panic!("{request}: {other:?}"),
    }
}

fn page(dir: &Directory, request: &str, now: Instant) -> String {
    let mut out = Vec::new();
    dir.write_browse(&browse(request), now, &mut out);
    String::from_utf8(out).unwrap()
}

/// (total, next cursor, sessions) of a `b:1:` page.
fn parts(page: &str) -> (usize, String, Vec<String>) {
    let mut fields = page.strip_prefix("b:1:").unwrap().split(':');
    let total = fields.next().unwrap().parse().unwrap();
    let next = fields.next().unwrap().to_string();
    let sessions = fields
        .map(|e| e.split('|').next().unwrap().to_string())
        .collect();
    (total, next, sessions)
}

/// A request for `game` in `order`, from `cursor`, padded to `len` bytes.
fn request(game: &str, flags: &str, order: &str, cursor: &str, len: usize) -> String {
    let mut r = format!("b:1:{game}:{flags}:::{order}:{cursor}:");
    while r.len() < len {
        r.push('x');
    }
    r
}

#[test]
fn the_compatible_list_is_newest_first_and_only_compatible_lobbies() {
    let dir = Directory::new();
    let t0 = Instant::now();
    let mut out = Vec::new();
    dir.write_compat_list(t0, &mut out);
    assert_eq!(out, b"l:");
    dir.publish(listing("Old", Scope::Compat, 1, 4, t0));
    dir.publish(listing(
        "New",
        Scope::Compat,
        2,
        2,
        t0 + Duration::from_secs(1),
    ));
    dir.publish(listing("Cards", game("cards"), 1, 4, t0));
    out.clear();
    dir.write_compat_list(t0 + Duration::from_secs(5), &mut out);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "l:HNew|New|2 / 2|1.0|Draft:HOld|Old|1 / 4|1.0|Draft"
    );
    dir.unlist(&SessionName::new("New").unwrap());
    out.clear();
    dir.write_compat_list(t0, &mut out);
    assert_eq!(out, b"l:HOld|Old|1 / 4|1.0|Draft");
}

#[test]
fn a_compatible_list_after_other_replies_in_the_buffer_is_whole() {
    let dir = Directory::new();
    let t0 = Instant::now();
    for n in 0..100 {
        dir.publish(listing(&format!("S{n}"), Scope::Compat, 1, 4, t0));
    }
    let mut alone = Vec::new();
    dir.write_compat_list(t0, &mut alone);
    // The directory thread's outbox: earlier replies of the batch in the same buffer.
    let mut shared = b"i:A:Bl:earlier reply".to_vec();
    let before = shared.len();
    dir.write_compat_list(t0, &mut shared);
    assert_eq!(&shared[before..], &alone[..]);
}

#[test]
fn a_long_compatible_list_is_cut_to_whole_entries_within_1200_bytes() {
    let dir = Directory::new();
    let t0 = Instant::now();
    for n in 0..100 {
        dir.publish(listing(&format!("S{n}"), Scope::Compat, 1, 4, t0));
    }
    let mut out = Vec::new();
    dir.write_compat_list(t0, &mut out);
    assert!(out.len() <= MAX_REPLY_LEN && out.len() > MAX_REPLY_LEN - 40);
    let text = String::from_utf8(out).unwrap();
    let entries: Vec<&str> = text.strip_prefix("l:").unwrap().split(':').collect();
    assert!(entries.iter().all(|e| e.split('|').count() == 5), "{text}");
    // The newest (published last) first.
    assert!(entries[0].starts_with("HS99|S99|"), "{text}");
}

#[test]
fn a_game_sees_only_its_own_lobbies_filtered() {
    let dir = Directory::new();
    let t0 = Instant::now();
    dir.publish(listing("A", game("cards"), 1, 4, t0));
    dir.publish(listing("Full", game("cards"), 4, 4, t0));
    let mut locked = listing("Locked", game("cards"), 1, 4, t0);
    locked.password = true;
    dir.publish(locked);
    dir.publish(listing("Other", game("chess"), 1, 2, t0));
    dir.publish(listing("Compat", Scope::Compat, 1, 2, t0));
    let all = page(&dir, &request("cards", "", "n", "", 400), t0);
    assert_eq!(parts(&all).0, 3);
    assert_eq!(parts(&all).2, ["Locked", "Full", "A"]);
    assert_eq!(
        parts(&page(&dir, &request("cards", "f", "n", "", 400), t0)).2,
        ["Locked", "A"]
    );
    assert_eq!(
        parts(&page(&dir, &request("cards", "fo", "n", "", 400), t0)).2,
        ["A"]
    );
    assert_eq!(
        parts(&page(&dir, &request("cards", "fo", "n", "", 400), t0)).0,
        1
    );
    assert_eq!(
        parts(&page(&dir, &request("chess", "", "n", "", 400), t0)).2,
        ["Other"]
    );
    assert_eq!(page(&dir, &request("none", "", "n", "", 400), t0), "b:1:0:");
    let versioned = page(
        &dir,
        "b:1:cards::2.0::n::xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        t0,
    );
    assert_eq!(parts(&versioned), (0, String::new(), vec![]));
    // An entry shows everything documented, and no address.
    let one = page(
        &dir,
        &request("chess", "", "n", "", 400),
        t0 + Duration::from_secs(7),
    );
    assert_eq!(one, "b:1:1::Other|HOther|1|2|0|1.0|Draft||7");
}

#[test]
fn pages_walk_every_lobby_once_in_either_order() {
    let dir = Directory::new();
    let t0 = Instant::now();
    for n in 0..60u8 {
        dir.publish(listing(&format!("L{n}"), game("cards"), 1 + n % 4, 4, t0));
    }
    for order in ["n", "f"] {
        let mut seen = Vec::new();
        let mut cursor = String::new();
        let mut pages = 0;
        loop {
            let reply = page(&dir, &request("cards", "", order, &cursor, 120), t0);
            assert!(
                reply.len() <= 360,
                "a page earns 3 times its request: {}",
                reply.len()
            );
            let (total, next, sessions) = parts(&reply);
            assert_eq!(total, 60);
            assert!(!sessions.is_empty(), "{reply}");
            seen.extend(sessions);
            pages += 1;
            if next.is_empty() {
                break;
            }
            cursor = next;
            assert!(pages < 100);
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 60, "{order}: {seen:?}");
        assert!(pages > 3, "{pages} pages");
        if order == "f" {
            // Fullest first: the first page's lobbies all have 4 players.
            let first = page(&dir, &request("cards", "", "f", "", 120), t0);
            assert!(parts(&first)
                .2
                .iter()
                .all(|s| s[1..].parse::<u8>().unwrap() % 4 == 3));
        }
    }
}

#[test]
fn a_request_too_small_for_one_entry_gets_its_cursor_back() {
    let dir = Directory::new();
    let t0 = Instant::now();
    let mut long = listing("A", game("cards"), 1, 4, t0);
    long.description = "a description longer than the page, ".repeat(4);
    dir.publish(long);
    // A first page: lobbies there are, none shown, the cursor before everything.
    let reply = page(&dir, "b:1:cards::::n:", t0);
    assert_eq!(
        parts(&reply),
        (1, "255.18446744073709551615".into(), vec![]),
        "{reply}"
    );
    // A later page gets the cursor it asked with back.
    let reply = page(&dir, "b:1:cards::::n:9.18446744073709551614:", t0);
    assert_eq!(
        parts(&reply),
        (1, "9.18446744073709551614".into(), vec![]),
        "{reply}"
    );
    // The head is all there is room for; a short entry fits the same request.
    dir.publish(listing("B", game("cards"), 1, 4, t0));
    let reply = page(&dir, "b:1:cards::::n:", t0);
    assert_eq!(parts(&reply).2, ["B"], "{reply}");
}

#[test]
fn lobbies_created_in_one_millisecond_2_pow_20_listings_apart_keep_their_own_places() {
    let dir = Directory::new();
    let t0 = Instant::now();
    dir.publish(listing("A", game("cards"), 1, 4, t0));
    // Listings of other lobbies push the counter a whole turn of its low bits.
    dir.inner.write().next_seq += 1 << 20;
    dir.publish(listing("B", game("cards"), 1, 4, t0));
    assert_eq!(dir.len(), 2);
    assert_eq!(
        dir.get(&SessionName::new("A").unwrap()).unwrap().session,
        *"A"
    );
    dir.unlist(&SessionName::new("B").unwrap());
    assert_eq!(
        dir.get(&SessionName::new("A").unwrap()).unwrap().session,
        *"A"
    );
    assert_eq!(
        parts(&page(&dir, &request("cards", "", "n", "", 400), t0)).2,
        ["A"]
    );
}

#[test]
fn extension_answers_never_exceed_three_times_their_request() {
    let dir = Directory::new();
    let t0 = Instant::now();
    for n in 0..10_000 {
        dir.publish(listing(&format!("L{n}"), game("g"), 1, 4, t0));
    }
    let answer = |text: &str| {
        let query = match crate::core::lobby::to_owned(
            &parse_lobby(text.as_bytes()).unwrap().unwrap(),
            text.len(),
        ) {
            Some(crate::core::lobby::LobbyTarget::Directory(q)) => q,
            other => panic!("{other:?}"),
        };
        let mut out = b"earlier".to_vec();
        dir.answer(&query, t0, &mut out);
        String::from_utf8(out[7..].to_vec()).unwrap()
    };
    // The shortest first page: no entry fits, and not even the head with a cursor: nothing.
    for text in ["b:1:g::::n:", "q:1:g"] {
        let reply = answer(text);
        assert!(reply.len() <= 3 * text.len(), "{text}: {reply}");
    }
    // A little longer: the head, no entry, the cursor asked with: pad more.
    let reply = answer("b:1:g::::n::xxxx");
    assert_eq!(reply, "b:1:10000:255.18446744073709551615");
    assert_eq!(answer("q:1:g::xxxxxxxxxx"), "q:1:L9999:HL9999:1:4");
}

#[test]
fn newest_first_is_by_creation_not_by_when_a_lobby_was_listed() {
    let dir = Directory::new();
    let t0 = Instant::now();
    dir.publish(listing(
        "New",
        game("cards"),
        1,
        4,
        t0 + Duration::from_secs(5),
    ));
    dir.publish(listing(
        "Old",
        game("cards"),
        1,
        4,
        t0 + Duration::from_secs(1),
    ));
    let now = t0 + Duration::from_secs(9);
    assert_eq!(
        parts(&page(&dir, &request("cards", "", "n", "", 400), now)).2,
        ["New", "Old"]
    );
}

#[test]
fn updates_keep_the_place_and_move_the_counts() {
    let dir = Directory::new();
    let t0 = Instant::now();
    dir.publish(listing("A", game("cards"), 1, 2, t0));
    dir.publish(listing(
        "B",
        game("cards"),
        1,
        2,
        t0 + Duration::from_secs(1),
    ));
    // A fills up: it keeps its place in newest-first, leaves the free-only count.
    dir.publish(listing("A", game("cards"), 2, 2, t0));
    assert_eq!(
        parts(&page(&dir, &request("cards", "", "n", "", 400), t0)).2,
        ["B", "A"]
    );
    assert_eq!(
        parts(&page(&dir, &request("cards", "f", "n", "", 400), t0)).0,
        1
    );
    assert_eq!(
        parts(&page(&dir, &request("cards", "", "f", "", 400), t0)).2,
        ["A", "B"]
    );
    let mut out = Vec::new();
    dir.write_quick_join("cards", None, t0, &mut out);
    assert_eq!(out, b"q:1:B:HB:1:2");
    dir.unlist(&SessionName::new("A").unwrap());
    dir.unlist(&SessionName::new("B").unwrap());
    assert!(dir.is_empty());
    assert!(dir.inner.read().scopes.is_empty());
}

#[test]
fn quick_join_picks_the_fullest_free_open_lobby_of_the_game_and_version() {
    let dir = Directory::new();
    let t0 = Instant::now();
    dir.publish(listing("Two", game("cards"), 2, 4, t0));
    dir.publish(listing("Three", game("cards"), 3, 4, t0));
    dir.publish(listing("Full", game("cards"), 4, 4, t0));
    let mut locked = listing("Locked", game("cards"), 3, 8, t0);
    locked.password = true;
    dir.publish(locked);
    let mut newer = listing("Newer", game("cards"), 2, 4, t0);
    newer.version = "2.0".into();
    dir.publish(newer);
    let pick = |version: Option<&str>| {
        let mut out = Vec::new();
        dir.write_quick_join("cards", version, t0, &mut out);
        String::from_utf8(out).unwrap()
    };
    assert_eq!(pick(None), "q:1:Three:HThree:3:4");
    assert_eq!(pick(Some("2.0")), "q:1:Newer:HNewer:2:4");
    assert_eq!(pick(Some("3.0")), "q:1:");
}

#[test]
fn the_http_view_lists_as_json_without_addresses() {
    let dir = Directory::new();
    let t0 = Instant::now();
    let mut l = listing("Room1", game("cards"), 2, 4, t0);
    l.mode = "Constructed - Free".into();
    l.description = "say \"hi\"".into();
    dir.publish(l);
    dir.publish(listing("Room2", game("cards"), 4, 4, t0));
    let q = HttpQuery::parse("game=cards&free=1&mode=Constructed+-%20Free").unwrap();
    assert_eq!(
        dir.to_json(&q, t0 + Duration::from_secs(3)),
        "{\"game\":\"cards\",\"total\":1,\"lobbies\":[{\"session\":\"Room1\",\"host\":\"HRoom1\",\
         \"players\":2,\"max\":4,\"password\":false,\"version\":\"1.0\",\"mode\":\"Constructed - \
         Free\",\"description\":\"say \\\"hi\\\"\",\"age_s\":3}]}"
    );
    let all = HttpQuery::parse("game=cards&order=full&limit=1").unwrap();
    assert!(dir
        .to_json(&all, t0)
        .contains("\"total\":2,\"lobbies\":[{\"session\":\"Room2\""));
    assert_eq!(
        dir.to_json(&HttpQuery::parse("").unwrap(), t0),
        "{\"game\":null,\"total\":0,\"lobbies\":[]}"
    );
    for bad in [
        "limit=0",
        "limit=501",
        "order=old",
        "free=maybe",
        "mode=%zz",
    ] {
        assert!(HttpQuery::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn in_a_fleet_other_servers_lobbies_are_listed_with_their_server() {
    let (tx, changes) = crossbeam_channel::unbounded();
    let dir = Directory::with_fleet(tx);
    let t0 = Instant::now();
    let mine = listing("Mine", game("g"), 1, 4, t0);
    dir.publish(mine.clone());
    let name = |s: &str| SessionName::new(s).unwrap();
    dir.claim(name("Mine"));
    dir.unlist(&name("Nope")); // not listed: nothing to tell
    dir.release(name("Gone"));
    let told: Vec<Change> = changes.try_iter().collect();
    assert_eq!(
        told,
        [
            Change::Listed(Box::new(mine)),
            Change::Claimed(name("Mine")),
            Change::Released(name("Gone")),
        ]
    );
    let origin = std::sync::Arc::new(Origin {
        node: "ab".into(),
        host: "us.example.com".into(),
        port: 7777,
        region: "us".into(),
    });
    let mut theirs = listing("Theirs", game("g"), 2, 4, t0 + Duration::from_secs(1));
    theirs.origin = Some(origin.clone());
    dir.set_node(
        "ab",
        Some((vec![name("Theirs"), name("Hidden")], vec![theirs.clone()])),
    );
    assert!(dir.taken_elsewhere(&name("Hidden")) && !dir.taken_elsewhere(&name("Mine")));
    let now = t0 + Duration::from_secs(5);
    let p = page(&dir, &request("g", "", "n", "", 400), now);
    assert_eq!(
        p,
        "b:1:2::Theirs|HTheirs|2|4|0|1.0|Draft||4|us.example.com|7777|us:\
         Mine|HMine|1|4|0|1.0|Draft||5"
    );
    assert_eq!(dir.remote_len(), 1);
    assert_eq!(dir.remote_nodes(), ["ab"]);
    // Quick join: the fullest (theirs) for a request padded enough to earn its longer answer,
    // else this server's own.
    let quick = |request: &str| {
        let Some(Ok(LobbyRequest::QuickJoin { game, version })) = parse_lobby(request.as_bytes())
        else {
            panic!("{request}")
        };
        let query = crate::core::DirectoryQuery::QuickJoin {
            game: game.into(),
            version: version.map(String::from),
            request_len: request.len(),
        };
        let mut out = Vec::new();
        dir.answer(&query, now, &mut out);
        String::from_utf8(out).unwrap()
    };
    assert_eq!(quick("q:1:g::xxxxxx"), "q:1:Mine:HMine:1:4");
    assert_eq!(
        quick(&format!("q:1:g::{}", "x".repeat(20))),
        "q:1:Theirs:HTheirs:2:4:us.example.com:7777:us"
    );
    // Its lobby changes: same place; the server goes: its lobbies and names with it.
    theirs.players = 3;
    dir.set_node("ab", Some((vec![name("Theirs")], vec![theirs])));
    assert!(!dir.taken_elsewhere(&name("Hidden")));
    assert!(page(&dir, &request("g", "", "n", "", 400), now).contains("Theirs|HTheirs|3|"));
    dir.set_node("ab", None);
    assert_eq!(dir.len(), 1);
    assert!(dir.remote_nodes().is_empty() && !dir.taken_elsewhere(&name("Theirs")));
}

#[test]
fn a_new_name_waits_for_its_claim_only_while_the_fleet_is_up() {
    let (tx, changes) = crossbeam_channel::unbounded();
    let dir = Directory::with_fleet(tx);
    let (t0, keep) = (Instant::now(), Duration::from_secs(3));
    let name = |s: &str| SessionName::new(s).unwrap();
    // Redis away: names go at once (checked against the last view only).
    assert_eq!(dir.reserve(name("A"), t0), Reserve::Go);
    dir.set_fleet_up(true, t0, keep);
    // Up: the first ask waits and asks the fleet thread once; the verdict answers the next.
    assert_eq!(dir.reserve(name("A"), t0), Reserve::Wait);
    assert_eq!(dir.reserve(name("A"), t0), Reserve::Wait);
    assert_eq!(dir.reserve(name("B"), t0), Reserve::Wait);
    let asked: Vec<Change> = changes.try_iter().collect();
    assert_eq!(
        asked,
        [Change::Reserve(name("A")), Change::Reserve(name("B"))]
    );
    dir.settle(name("A"), true);
    dir.settle(name("B"), false);
    assert_eq!(dir.reserve(name("A"), t0), Reserve::Go);
    assert_eq!(dir.reserve(name("B"), t0), Reserve::Taken);
    assert_eq!(
        dir.reserve(name("B"), t0),
        Reserve::Taken,
        "kept for re-sends"
    );
    // Forgotten after `keep`: asked again.
    dir.set_fleet_up(true, t0 + keep, keep);
    assert_eq!(dir.reserve(name("B"), t0 + keep), Reserve::Wait);
    // A flood of new names: past the rate, names go unasked instead of waiting.
    let t1 = t0 + Duration::from_secs(10);
    let mut waited = 0;
    for i in 0..(fleet::RESERVATIONS_PER_SEC + 10) {
        if dir.reserve(name(&format!("F{i}")), t1) == Reserve::Wait {
            waited += 1;
        }
    }
    assert_eq!(waited, fleet::RESERVATIONS_PER_SEC);
}
