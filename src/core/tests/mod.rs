//! Every rule of the protocol, on a made-up clock: no sockets, no sleeping.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::testing::Driver;
use super::{CoreConfig, Shard};
use crate::outbox::Outbox;

mod lobby;
mod relay;

/// A shard driven like the runtime drives it, with time moved by hand (see
/// [`Driver`](super::testing::Driver)); it checks the invariants after every step.
struct Harness {
    d: Driver,
}

impl std::ops::Deref for Harness {
    type Target = Driver;
    fn deref(&self) -> &Driver {
        &self.d
    }
}

/// What a step sent: (milliseconds since the harness started, destination, payload).
type Sent = Vec<(u64, SocketAddr, String)>;

/// Player `n`'s address; all different, on documentation networks.
fn addr(n: u16) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, n as u8], 40000 + n))
}

/// What the driver's shard sent since the last drain, with the time; checks the invariants.
fn drain(d: &mut Driver) -> Sent {
    if let Err(broken) = d.shard.check_invariants() {
        panic!("invariant broken: {broken}");
    }
    let t = d.elapsed_ms();
    let sent = d
        .out
        .iter()
        .map(|(to, p)| (t, to, String::from_utf8(p.to_vec()).unwrap()))
        .collect();
    d.out.clear();
    sent
}

impl Harness {
    fn new() -> Self {
        Self::with(CoreConfig::default())
    }

    fn with(config: CoreConfig) -> Self {
        let start = Instant::now();
        Self {
            d: Driver::new(Shard::new(&config, start), start),
        }
    }

    /// Player `n` sends `text`; returns what the shard sent in response.
    fn send(&mut self, n: u16, text: &str) -> Vec<(SocketAddr, String)> {
        self.send_from(addr(n), text)
    }

    fn send_from(&mut self, from: SocketAddr, text: &str) -> Vec<(SocketAddr, String)> {
        self.d.datagram(from, None, text.as_bytes());
        drain(&mut self.d)
            .into_iter()
            .map(|(_, to, p)| (to, p))
            .collect()
    }

    /// Only reply, to the sender.
    fn reply(&mut self, n: u16, text: &str) -> String {
        let sent = self.send(n, text);
        assert_eq!(
            sent.len(),
            1,
            "expected one reply to {text:?}, got {sent:?}"
        );
        assert_eq!(sent[0].0, addr(n), "reply to {text:?} went elsewhere");
        sent[0].1.clone()
    }

    /// Moves the clock `ms` forward, waking the shard at each deadline on the way, as the
    /// runtime does; returns everything sent, with the time it was sent.
    fn advance(&mut self, ms: u64) -> Sent {
        let mut sent = Vec::new();
        self.d
            .advance(Duration::from_millis(ms), |d| sent.extend(drain(d)));
        sent
    }

    /// Host `A` (player 1) creates `R` for `max` players and players 2.. join as B, C, ...
    fn lobby(&mut self, players: u16, max: u8) {
        assert_eq!(self.reply(1, &format!("h:R:A:{max}")), "i:A");
        for n in 2..=players {
            let sent = self.send(n, &format!("c:R:{}", name(n)));
            assert_eq!(sent.len(), usize::from(n), "join of {n}: {sent:?}");
        }
    }
}

/// Player `n`'s name: A, B, C, ...
fn name(n: u16) -> String {
    char::from(b'A' + (n - 1) as u8).to_string()
}

/// Drops the times of what was sent.
fn untimed(sent: Sent) -> Vec<(SocketAddr, String)> {
    sent.into_iter().map(|(_, a, p)| (a, p)).collect()
}

fn to(sent: &[(SocketAddr, String)], n: u16) -> Vec<String> {
    sent.iter()
        .filter(|(a, _)| *a == addr(n))
        .map(|(_, p)| p.clone())
        .collect()
}

// ---------------------------------------------------------------- h: host

#[test]
fn host_creates_a_session_and_answers_with_its_player_list() {
    let mut h = Harness::new();
    assert_eq!(h.reply(1, "h:R:A:4"), "i:A");
    assert_eq!(h.shard.sessions(), 1);
    assert_eq!(h.shard.players(), 1);
}

#[test]
fn host_retry_from_the_host_address_resends_info() {
    let mut h = Harness::new();
    h.lobby(2, 4);
    assert_eq!(h.reply(1, "h:R:A:4"), "i:A:B");
    // Even with other fields: the address decides.
    assert_eq!(h.reply(1, "h:R:Other:9"), "i:A:B");
}

#[test]
fn host_of_an_existing_session_from_another_address_is_refused() {
    let mut h = Harness::new();
    h.lobby(2, 4);
    assert_eq!(h.reply(3, "h:R:C:4"), "error:session_exists");
    // A player of the session is not its host either.
    assert_eq!(h.reply(2, "h:R:B:4"), "error:session_exists");
}

#[test]
fn host_of_a_starting_session_is_refused_even_from_its_host() {
    let mut h = Harness::new();
    h.lobby(2, 4);
    h.send(1, "s:R:A");
    assert_eq!(h.reply(1, "h:R:A:4"), "error:session_exists");
}

// ---------------------------------------------------------------- c: connect

#[test]
fn connect_adds_the_player_and_tells_everyone() {
    let mut h = Harness::new();
    h.lobby(2, 4);
    let sent = h.send(3, "c:R:C");
    assert_eq!(
        sent,
        vec![
            (addr(1), "i:A:B:C".into()),
            (addr(2), "i:A:B:C".into()),
            (addr(3), "i:A:B:C".into())
        ]
    );
    assert_eq!(h.shard.players(), 3);
}

#[test]
fn connect_to_a_missing_or_starting_session_is_refused() {
    let mut h = Harness::new();
    assert_eq!(h.reply(2, "c:R:B"), "error:session_non_existent");
    h.lobby(2, 4);
    h.send(1, "s:R:A");
    assert_eq!(h.reply(3, "c:R:C"), "error:session_non_existent");
}

#[test]
fn connect_checks_the_password() {
    let mut h = Harness::new();
    assert_eq!(h.reply(1, "h:R:A:4:Pass"), "i:A");
    assert_eq!(h.reply(2, "c:R:B"), "error:password_mismatch");
    assert_eq!(h.reply(2, "c:R:B:pass"), "error:password_mismatch");
    assert_eq!(h.send(2, "c:R:B:Pass").len(), 2);
}

#[test]
fn a_password_given_to_a_session_without_one_is_ignored() {
    let mut h = Harness::new();
    h.lobby(1, 4);
    assert_eq!(to(&h.send(2, "c:R:B:Whatever"), 2), vec!["i:A:B"]);
}

#[test]
fn connect_retry_resends_info_to_the_sender_only_even_when_full() {
    let mut h = Harness::new();
    h.lobby(2, 2);
    assert_eq!(h.send(2, "c:R:B"), vec![(addr(2), "i:A:B".into())]);
}

#[test]
fn connect_to_a_full_session_is_refused() {
    let mut h = Harness::new();
    h.lobby(2, 2);
    assert_eq!(h.reply(3, "c:R:C"), "error:session_full");
    // Full is checked before the name: a taken name in a full session is `session_full`.
    assert_eq!(h.reply(3, "c:R:B"), "error:session_full");
}

#[test]
fn connect_with_a_name_in_use_from_another_address_is_refused() {
    let mut h = Harness::new();
    h.lobby(2, 4);
    assert_eq!(h.reply(3, "c:R:B"), "error:player_name_in_use");
    assert_eq!(h.reply(3, "c:R:A"), "error:player_name_in_use");
}

#[test]
fn a_kicked_player_cannot_join_again_whatever_its_password() {
    let mut h = Harness::new();
    assert_eq!(h.reply(1, "h:R:A:4:Pass"), "i:A");
    h.send(2, "c:R:B:Pass");
    h.send(1, "k:R:B");
    // Banned comes before the password check, from any address.
    assert_eq!(h.reply(2, "c:R:B:Wrong"), "error:kicked_by_host");
    assert_eq!(h.reply(3, "c:R:B:Pass"), "error:kicked_by_host");
    // Other names are welcome.
    assert_eq!(to(&h.send(3, "c:R:C:Pass"), 3), vec!["i:A:C"]);
}

// ---------------------------------------------------------------- p: ping

#[test]
fn ping_answers_with_the_player_list() {
    let mut h = Harness::new();
    h.lobby(3, 4);
    assert_eq!(h.reply(2, "p:R:B"), "i:A:B:C");
}

#[test]
fn ping_errors() {
    let mut h = Harness::new();
    assert_eq!(h.reply(1, "p:R:A"), "error:session_non_existent");
    h.lobby(2, 4);
    assert_eq!(h.reply(2, "p:R:Z"), "error:non_existent_player");
    // Identity is bound to address: nobody pings for B from elsewhere.
    assert_eq!(h.reply(3, "p:R:B"), "error:non_existent_player");
    assert_eq!(h.reply(1, "p:R:B"), "error:non_existent_player");
}

#[test]
fn ping_of_a_starting_session_gets_the_start_message_until_confirmed() {
    let mut h = Harness::new();
    h.lobby(2, 4);
    h.send(1, "s:R:A");
    assert_eq!(h.reply(2, "p:R:B"), "s:40002:A:198.51.100.1:40001");
    // From another address: the session is not open, and no peer address leaks.
    assert_eq!(h.reply(3, "p:R:B"), "error:session_non_existent");
    assert!(h.send(2, "y:R:B").is_empty());
    assert_eq!(h.reply(2, "p:R:B"), "error:session_non_existent");
}

// ---------------------------------------------------------------- k: kick

#[test]
fn kick_removes_bans_and_tells_everyone() {
    let mut h = Harness::new();
    h.lobby(3, 4);
    let sent = h.send(1, "k:R:B");
    assert_eq!(
        sent,
        vec![
            (addr(2), "error:kicked_by_host".into()),
            (addr(1), "i:A:C".into()),
            (addr(3), "i:A:C".into())
        ]
    );
    assert_eq!(h.shard.players(), 2);
}

#[test]
fn kick_errors_in_order() {
    let mut h = Harness::new();
    assert_eq!(h.reply(1, "k:R:B"), "error:session_non_existent");
    h.lobby(2, 4);
    // An unknown player is reported before the sender's right to kick.
    assert_eq!(h.reply(2, "k:R:Z"), "error:non_existent_player");
    assert_eq!(h.reply(2, "k:R:A"), "error:non_host_player");
    h.send(1, "s:R:A");
    assert_eq!(h.reply(1, "k:R:B"), "error:session_non_existent");
}

#[test]
fn host_kicking_itself_hands_over_the_session() {
    let mut h = Harness::new();
    h.lobby(3, 4);
    let sent = h.send(1, "k:R:A");
    assert_eq!(to(&sent, 1), vec!["error:kicked_by_host"]);
    assert_eq!(to(&sent, 2), vec!["i:B:C"]);
    // B is host now: host-only commands are accepted from B's address.
    assert_eq!(h.reply(3, "k:R:B"), "error:non_host_player");
    assert_eq!(to(&h.send(2, "k:R:C"), 3), vec!["error:kicked_by_host"]);
}

#[test]
fn kicking_the_last_player_deletes_the_session() {
    let mut h = Harness::new();
    h.lobby(1, 4);
    assert_eq!(h.reply(1, "k:R:A"), "error:kicked_by_host");
    assert_eq!(h.shard.sessions(), 0);
    assert_eq!(h.shard.players(), 0);
    assert_eq!(h.reply(2, "h:R:B:4"), "i:B");
}

// ---------------------------------------------------------------- x: exit

#[test]
fn exit_removes_the_player_without_telling_the_others() {
    let mut h = Harness::new();
    h.lobby(3, 4);
    assert_eq!(
        h.send(2, "x:R:B"),
        vec![(addr(2), "error:player_exited_session".into())]
    );
    assert_eq!(h.reply(3, "p:R:C"), "i:A:C");
}

#[test]
fn exit_errors() {
    let mut h = Harness::new();
    assert_eq!(h.reply(1, "x:R:A"), "error:session_non_existent");
    h.lobby(2, 4);
    assert_eq!(h.reply(2, "x:R:Z"), "error:non_existent_player");
    // Nobody can make B leave but B.
    assert_eq!(h.reply(1, "x:R:B"), "error:non_existent_player");
    assert_eq!(h.reply(2, "p:R:B"), "i:A:B");
}

#[test]
fn host_exit_migrates_the_host_and_last_exit_deletes() {
    let mut h = Harness::new();
    h.lobby(3, 4);
    h.send(1, "x:R:A");
    assert_eq!(h.reply(2, "p:R:B"), "i:B:C");
    assert_eq!(h.reply(3, "s:R:C"), "error:non_host_player");
    assert_eq!(h.reply(1, "s:R:A"), "error:non_host_player");
    h.send(2, "x:R:B");
    h.send(3, "x:R:C");
    assert_eq!(h.shard.sessions(), 0);
    assert_eq!(h.reply(3, "p:R:C"), "error:session_non_existent");
}

// ---------------------------------------------------------------- s: start

#[test]
fn start_errors_in_order() {
    let mut h = Harness::new();
    assert_eq!(h.reply(1, "s:R:A"), "error:session_non_existent");
    h.lobby(1, 4);
    assert_eq!(h.reply(2, "s:R:B"), "error:non_host_player");
    assert_eq!(h.reply(1, "s:R:A"), "error:only_one_player_in_session");
    h.send(2, "c:R:B");
    assert_eq!(h.reply(2, "s:R:B"), "error:non_host_player");
}

#[test]
fn start_is_silent_while_the_session_is_starting() {
    let mut h = Harness::new();
    h.lobby(2, 4);
    assert_eq!(h.send(1, "s:R:A").len(), 2);
    assert!(h.send(1, "s:R:A").is_empty());
    assert!(h.send(2, "s:R:B").is_empty());
    assert!(h.send(9, "s:R:Z").is_empty());
}

#[test]
fn start_message_for_two_players() {
    let mut h = Harness::new();
    h.lobby(2, 2);
    assert_eq!(
        h.send(1, "s:R:A"),
        vec![
            (addr(1), "s:40001:B:198.51.100.2:40002".into()),
            (addr(2), "s:40002:A:198.51.100.1:40001".into())
        ]
    );
}

#[test]
fn start_message_for_three_players_lists_the_others_in_join_order() {
    let mut h = Harness::new();
    h.lobby(3, 4);
    let sent = h.send(1, "s:R:A");
    assert_eq!(
        to(&sent, 1),
        vec!["s:40001:B:198.51.100.2:40002;C:198.51.100.3:40003"]
    );
    assert_eq!(
        to(&sent, 2),
        vec!["s:40002:A:198.51.100.1:40001;C:198.51.100.3:40003"]
    );
    assert_eq!(
        to(&sent, 3),
        vec!["s:40003:A:198.51.100.1:40001;B:198.51.100.2:40002"]
    );
}

#[test]
fn start_message_for_twelve_players() {
    let mut h = Harness::new();
    h.lobby(12, 12);
    let sent = h.send(1, "s:R:A");
    assert_eq!(sent.len(), 12);
    for n in 1..=12u16 {
        let others: Vec<String> = (1..=12u16)
            .filter(|&m| m != n)
            .map(|m| format!("{}:198.51.100.{m}:{}", name(m), 40000 + m))
            .collect();
        let expected = format!("s:{}:{}", 40000 + n, others.join(";"));
        assert_eq!(to(&sent, n), vec![expected]);
    }
}

#[test]
fn start_message_goes_out_8_times_100ms_apart_then_the_session_is_forgotten() {
    let mut h = Harness::new();
    h.lobby(3, 4);
    let mut sent: Sent = h
        .send(1, "s:R:A")
        .into_iter()
        .map(|(a, p)| (0, a, p))
        .collect();
    sent.extend(h.advance(799));
    for n in 1..=3 {
        let times: Vec<u64> = sent
            .iter()
            .filter(|(_, a, _)| *a == addr(n))
            .map(|(t, _, _)| *t)
            .collect();
        assert_eq!(
            times,
            vec![0, 100, 200, 300, 400, 500, 600, 700],
            "player {n}"
        );
    }
    // Every round goes to all players together, with the same list each time.
    let first: Vec<_> = sent
        .iter()
        .filter(|(t, _, _)| *t == 0)
        .map(|(_, a, p)| (a, p))
        .collect();
    let last: Vec<_> = sent
        .iter()
        .filter(|(t, _, _)| *t == 700)
        .map(|(_, a, p)| (a, p))
        .collect();
    assert_eq!(first, last);
    assert_eq!(h.shard.sessions(), 1);
    assert_eq!(h.reply(1, "h:R:A:4"), "error:session_exists");
    assert!(h.advance(1).is_empty());
    assert_eq!(h.shard.sessions(), 0);
    assert_eq!(h.shard.players(), 0);
    assert_eq!(h.reply(1, "h:R:A:4"), "i:A");
}

#[test]
fn re_send_count_and_interval_are_settings() {
    let mut h = Harness::with(CoreConfig {
        start_sends: 3,
        start_interval: Duration::from_millis(250),
        ..CoreConfig::default()
    });
    h.lobby(2, 2);
    h.send(1, "s:R:A");
    let times: Vec<u64> = h.advance(2000).iter().map(|(t, _, _)| *t).collect();
    assert_eq!(times, vec![250, 250, 500, 500]);
    assert_eq!(h.shard.sessions(), 0);
}

// ---------------------------------------------------------------- y: confirm

#[test]
fn confirmation_stops_re_sends_to_that_player_only_and_keeps_it_listed() {
    let mut h = Harness::new();
    h.lobby(3, 4);
    h.send(1, "s:R:A");
    assert!(h.send(1, "y:R:A").is_empty());
    let sent = untimed(h.advance(100));
    assert!(to(&sent, 1).is_empty());
    assert_eq!(
        to(&sent, 2),
        vec!["s:40002:A:198.51.100.1:40001;C:198.51.100.3:40003"]
    );
    assert_eq!(sent.len(), 2);
}

#[test]
fn confirm_errors() {
    let mut h = Harness::new();
    assert_eq!(h.reply(1, "y:R:A"), "error:session_not_started");
    h.lobby(2, 4);
    assert_eq!(h.reply(1, "y:R:A"), "error:session_not_started");
    h.send(1, "s:R:A");
    assert_eq!(h.reply(2, "y:R:Z"), "error:non_existent_player");
    assert_eq!(h.reply(3, "y:R:B"), "error:non_existent_player");
    assert!(h.send(2, "y:R:B").is_empty());
    assert_eq!(h.reply(2, "y:R:B"), "error:non_existent_player");
}

// ---------------------------------------------------------------- timeouts

#[test]
fn silent_player_times_out_after_5s_with_3_errors_and_the_others_are_told() {
    let mut h = Harness::new();
    h.lobby(3, 4);
    let mut sent = Vec::new();
    for _ in 0..12 {
        sent.extend(h.advance(500));
        h.send(1, "p:R:A");
        h.send(3, "p:R:C");
    }
    let to_b: Vec<_> = sent
        .iter()
        .filter(|(_, a, _)| *a == addr(2))
        .map(|(t, _, p)| (*t, p.as_str()))
        .collect();
    assert_eq!(
        to_b,
        vec![
            (5000, "error:player_timeout"),
            (5050, "error:player_timeout"),
            (5100, "error:player_timeout")
        ]
    );
    let to_a: Vec<_> = sent
        .iter()
        .filter(|(_, a, _)| *a == addr(1))
        .map(|(t, _, p)| (*t, p.as_str()))
        .collect();
    assert_eq!(to_a, vec![(5000, "i:A:C")]);
    assert_eq!(h.shard.players(), 2);
    assert_eq!(h.reply(2, "p:R:B"), "error:non_existent_player");
}

#[test]
fn any_request_from_a_player_address_counts_as_heard_from() {
    let mut h = Harness::new();
    h.lobby(2, 4);
    h.advance(4000);
    // The host only sends start attempts that fail, B only retries its join: both stay.
    assert_eq!(h.reply(1, "s:R:A:"), "error:invalid_request");
    h.send(1, "k:R:Z");
    h.send(2, "c:R:B");
    let sent = h.advance(4000);
    assert!(sent.is_empty(), "{sent:?}");
    assert_eq!(h.shard.players(), 2);
}

#[test]
fn host_timeout_migrates_the_host() {
    let mut h = Harness::new();
    h.lobby(3, 4);
    h.advance(3000);
    h.send(2, "p:R:B");
    h.send(3, "p:R:C");
    let sent = untimed(h.advance(2000));
    assert_eq!(to(&sent, 1), vec!["error:player_timeout"]);
    assert_eq!(to(&sent, 2), vec!["i:B:C"]);
    assert_eq!(h.send(2, "s:R:B").len(), 2);
}

#[test]
fn when_every_player_times_out_the_session_is_deleted() {
    let mut h = Harness::new();
    h.lobby(2, 4);
    let sent = h.advance(5200);
    assert_eq!(sent.len(), 6, "{sent:?}");
    assert_eq!(h.shard.sessions(), 0);
    assert_eq!(h.reply(3, "h:R:C:4"), "i:C");
}

#[test]
fn sessions_live_15_minutes_then_every_player_gets_3_session_timeouts() {
    let mut h = Harness::new();
    h.lobby(2, 4);
    let mut sent = Vec::new();
    // Both keep pinging every 0.5 s for 15 minutes.
    while h.elapsed_ms() < 15 * 60 * 1000 - 500 {
        sent.extend(h.advance(500));
        h.send(1, "p:R:A");
        h.send(2, "p:R:B");
    }
    assert!(sent.is_empty(), "{sent:?}");
    let sent = h.advance(1000);
    let end = 15 * 60 * 1000;
    for n in 1..=2 {
        let got: Vec<_> = sent
            .iter()
            .filter(|(_, a, _)| *a == addr(n))
            .map(|(t, _, p)| (*t, p.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (end, "error:session_timeout"),
                (end + 50, "error:session_timeout"),
                (end + 100, "error:session_timeout")
            ]
        );
    }
    assert_eq!(h.shard.sessions(), 0);
}

#[test]
fn durations_are_settings() {
    let mut h = Harness::with(CoreConfig {
        player_timeout: Duration::from_secs(2),
        session_lifetime: Duration::from_secs(60),
        error_repeats: 1,
        ..CoreConfig::default()
    });
    h.lobby(1, 4);
    let sent = h.advance(2000);
    assert_eq!(sent, vec![(2000, addr(1), "error:player_timeout".into())]);
}

#[test]
fn a_pause_of_the_process_does_not_count_against_the_players() {
    let mut h = Harness::with(CoreConfig {
        player_timeout: Duration::from_secs(2),
        error_repeats: 1,
        ..CoreConfig::default()
    });
    h.lobby(2, 4);
    h.advance(1000);
    assert_eq!(h.reply(2, "p:R:B"), "i:A:B");
    // Frozen from 1 000 to 4 000 ms: A's deadline (2 000) and B's (3 000) passed meanwhile,
    // and their pings wait in the kernel. Forgiven, they have their 3 s back.
    h.d.now += Duration::from_millis(3000);
    h.d.shard.forgive_pause(h.now, Duration::from_millis(3000));
    assert_eq!(h.advance(500), vec![]);
    assert_eq!(h.reply(1, "p:R:A"), "i:A:B");
    // B, not heard from since 1 000, times out at 3 000 + the 3 000 forgiven.
    let sent = h.advance(1600);
    assert_eq!(
        sent,
        vec![
            (6000, addr(2), "error:player_timeout".into()),
            (6000, addr(1), "i:A".into())
        ]
    );
}

#[test]
fn a_timer_of_a_deleted_session_does_not_touch_a_new_one_of_the_same_name() {
    let mut h = Harness::new();
    h.lobby(1, 4);
    h.advance(1000);
    h.send(1, "x:R:A");
    h.advance(2000);
    assert_eq!(h.reply(2, "h:R:B:4"), "i:B");
    // The old session's timer (due at 5 s) finds a different session and leaves it alone.
    assert!(h.advance(2500).is_empty());
    assert_eq!(h.shard.players(), 1);
    assert_eq!(to(&untimed(h.advance(2600)), 2).len(), 3);
}

// ---------------------------------------------------------------- malformed input

#[test]
fn malformed_requests_get_invalid_request_and_unknown_commands_nothing() {
    let mut h = Harness::new();
    assert_eq!(h.reply(1, "hello"), "error:invalid_request");
    assert_eq!(h.reply(1, "h:R:A:13"), "error:invalid_request");
    assert!(h.send(1, "z:foo").is_empty());
    assert_eq!(h.shard.sessions(), 0);
}

#[test]
fn every_error_string_is_produced_by_some_request() {
    use crate::wire::ErrorCode;
    let mut h = Harness::new();
    let mut seen = std::collections::HashSet::new();
    let mut record = |sent: Vec<(SocketAddr, String)>| {
        for (_, p) in sent {
            if let Some(code) = ErrorCode::from_datagram(p.as_bytes()) {
                seen.insert(code);
            }
        }
    };
    record(h.send(1, "bad"));
    record(h.send(1, "c:R:A"));
    record(h.send(1, "h:R:A:2:W"));
    record(h.send(2, "h:R:B:2"));
    record(h.send(1, "s:R:A"));
    record(h.send(2, "c:R:B"));
    record(h.send(2, "c:R:B:W"));
    record(h.send(3, "c:R:B:W"));
    record(h.send(3, "c:R:C:W"));
    record(h.send(2, "p:R:Z"));
    record(h.send(2, "k:R:A"));
    record(h.send(1, "k:R:B"));
    record(h.send(2, "y:R:B"));
    record(h.send(1, "x:R:A"));
    record(h.send(4, "h:T:D:4"));
    record(h.send(5, "c:T:D"));
    record(untimed(h.advance(6000)));
    let mut h2 = Harness::with(CoreConfig {
        session_lifetime: Duration::from_secs(1),
        ..CoreConfig::default()
    });
    h2.lobby(1, 2);
    record(untimed(h2.advance(1000)));
    let missing: Vec<_> = ErrorCode::ALL
        .iter()
        .filter(|c| !seen.contains(c))
        .collect();
    assert!(missing.is_empty(), "never produced: {missing:?}");
}

#[test]
fn ipv4_mapped_peers_are_listed_as_dotted_quads_and_ipv6_peers_in_brackets() {
    let mut h = Harness::new();
    let mapped: SocketAddr = "[::ffff:203.0.113.9]:5000".parse().unwrap();
    let v6: SocketAddr = "[2001:db8::2]:6000".parse().unwrap();
    h.send_from(mapped, "h:R:A:4");
    h.send_from(v6, "c:R:B");
    let sent = h.send_from(mapped, "s:R:A");
    assert_eq!(sent[0], (mapped, "s:5000:B:[2001:db8::2]:6000".into()));
    assert_eq!(sent[1], (v6, "s:6000:A:203.0.113.9:5000".into()));
}

// ---------------------------------------------------------------- caps

#[test]
fn caps_limit_sessions_per_ip_in_total_and_players() {
    use super::CapsConfig;
    let mut h = Harness::with(CoreConfig {
        caps: CapsConfig {
            max_sessions: 5,
            max_players: 7,
            max_sessions_per_ip: 3,
        },
        ..CoreConfig::default()
    });
    let ip_a = |port: u16| SocketAddr::from(([198, 51, 100, 1], port));
    let ip_b = |port: u16| SocketAddr::from(([198, 51, 100, 2], port));
    for s in 0..3 {
        assert_eq!(h.send_from(ip_a(s), &format!("h:A{s}:H:4")).len(), 1);
    }
    // A fourth session from the same address is dropped, unanswered.
    assert!(h.send_from(ip_a(9), "h:A3:H:4").is_empty());
    assert_eq!(h.shard.stats().hosts_refused_by_cap, 1);
    // Another address may host, up to the total of 5.
    assert_eq!(h.send_from(ip_b(1), "h:B1:H:4").len(), 1);
    assert_eq!(h.send_from(ip_b(2), "h:B2:H:4").len(), 1);
    assert!(h.send_from(ip_b(3), "h:B3:H:4").is_empty());
    // 5 players so far; 2 more may join, then joins get session_full.
    assert_eq!(h.send_from(ip_b(4), "c:B1:J1").len(), 2);
    assert_eq!(h.send_from(ip_b(5), "c:B1:J2").len(), 3);
    assert_eq!(
        h.send_from(ip_b(6), "c:B1:J3"),
        vec![(ip_b(6), "error:session_full".to_string())]
    );
    // Closing a session frees its places.
    h.send_from(ip_a(0), "x:A0:H");
    assert_eq!(h.send_from(ip_a(9), "h:A3:H:4").len(), 1);
}

#[test]
fn a_batch_in_a_shard_large_enough_to_prefetch_is_answered_as_one_at_a_time() {
    let start = Instant::now();
    let config = CoreConfig::default();
    let mut single = Shard::new(&config, start);
    let mut batched = Shard::new(&config, start);
    let mut out = Outbox::new();
    let host_addr =
        |i: usize| SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 7000));
    let sessions = super::shard::PREFETCH_FROM_SESSIONS;
    for shard in [&mut single, &mut batched] {
        for i in 0..sessions {
            let host = format!("h:S{i}:P:4");
            shard.handle_datagram(start, host_addr(i), host.as_bytes(), &mut out);
        }
        out.clear();
    }
    // Pings of hosts, of strangers, of sessions that do not exist, joins, and garbage, with the
    // same session named twice in one batch.
    let mut datagrams: Vec<(SocketAddr, String)> = Vec::new();
    for k in 0..100 {
        let i = (k * 7919) % sessions;
        datagrams.push(match k % 5 {
            0 => (host_addr(i), format!("p:S{i}:P")),
            1 => (addr(1), format!("p:S{i}:P")),
            2 => (host_addr(i), format!("p:Nope{k}:P")),
            3 => (addr(2), format!("c:S{i}:Q")),
            _ => (addr(3), "not a request".to_string()),
        });
    }
    datagrams.push((addr(2), format!("p:S{}:Q", (3 * 7919) % sessions)));
    let now = start + Duration::from_millis(10);
    let mut single_out = Outbox::new();
    for (from, text) in &datagrams {
        single.handle_datagram(now, *from, text.as_bytes(), &mut single_out);
    }
    let mut batched_out = Outbox::new();
    let batch = datagrams.iter().map(|(from, text)| super::Incoming {
        from: *from,
        local: None,
        bytes: text.as_bytes(),
    });
    batched.handle_datagrams(now, batch, &mut batched_out);
    let collect = |out: &Outbox| -> Vec<(SocketAddr, Vec<u8>)> {
        out.iter().map(|(to, p)| (to, p.to_vec())).collect()
    };
    assert!(single_out.len() > 100, "joins are broadcast");
    assert_eq!(collect(&batched_out), collect(&single_out));
    assert_eq!(batched.players(), single.players());
    batched.check_invariants().unwrap();
}
