//! Hot restart with real processes on real UDP: a successor started with `--takeover` takes
//! over a running server's sockets and state, and nobody notices; and when the successor fails
//! (it crashes, reads another state version, asks for other sockets, comes second, or the
//! control socket is not ours), the running server serves on and says what happened.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::ops::RangeInclusive;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::binary::{self, Running};
use common::{free_ports, Player};

/// How long a test waits for a process to do what it must.
const WAIT: Duration = Duration::from_secs(20);

/// Start messages sent per player, and their interval: long enough (3.75 s) for a hand-over to
/// happen in the middle of them.
const START_SENDS: usize = 16;
const START_INTERVAL: Duration = Duration::from_millis(250);

/// A server's flags; a successor gets the same, with `--takeover` (and may change others).
struct Flags {
    port: u16,
    relay: RangeInclusive<u16>,
    http: String,
    control: PathBuf,
    /// `--relay-io`.
    relay_io: &'static str,
}

impl Flags {
    fn args(&self, workers: &str) -> Vec<String> {
        [
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--workers",
            workers,
            "--relay",
            "always",
            "--relay-ports",
            &format!("{}-{}", self.relay.start(), self.relay.end()),
            "--relay-io",
            self.relay_io,
            "--start-sends",
            &START_SENDS.to_string(),
            "--start-interval",
            &format!("{}ms", START_INTERVAL.as_millis()),
            "--log-file",
            self.control.with_file_name("server.log").to_str().unwrap(),
            "--http",
            &self.http,
            "--control-socket",
            self.control.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    }
}

fn start(args: &[String], env: &[(&str, &str)]) -> Running {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    binary::start_with_env(&args, env)
}

/// A running server with a whole block of relay ports (a block free a moment ago can be taken
/// before the server binds it: then another is tried), serving hand-overs at `dir`.
fn first_server(dir: &Path, relay_io: &'static str) -> (Running, Flags) {
    for _ in 0..8 {
        let mut flags = Flags {
            port: 0,
            relay: free_ports(8),
            http: "127.0.0.1:0".into(),
            control: dir.join("control.sock"),
            relay_io,
        };
        let server = start(&flags.args("2"), &[]);
        flags.port = server.addr.port();
        flags.http = server.metrics.expect("an HTTP address").to_string();
        if metric(&flags.http, "rabid_punch_relay_ports") == 8.0 {
            return (server, flags);
        }
        server.stop();
    }
    panic!("no block of 8 relay ports stayed free until the server bound it, in 8 tries");
}

/// One value of the Prometheus text at `addr`.
fn metric(addr: &str, name: &str) -> f64 {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the metrics"))
}

/// A player that pings its session every 20 ms until stopped, each ping waiting for its
/// answer: the pings sent, and the longest wait for an answer.
fn pinger(
    player: Player,
    session: &str,
    name: &str,
    stop: Arc<AtomicBool>,
) -> JoinHandle<(usize, Duration)> {
    let ping = format!("p:{session}:{name}");
    thread::spawn(move || {
        let (mut pings, mut longest) = (0, Duration::ZERO);
        while !stop.load(Ordering::Relaxed) {
            let sent = Instant::now();
            let answer = player.request(&ping);
            assert!(answer.starts_with("i:"), "ping {pings} answered {answer}");
            longest = longest.max(sent.elapsed());
            pings += 1;
            thread::sleep(Duration::from_millis(20));
        }
        (pings, longest)
    })
}

/// Sends numbered datagrams from `from` to `to` every 5 ms until stopped; how many (also
/// counted in `sent` as they go).
fn game_sender(
    from: UdpSocket,
    to: SocketAddr,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
) -> JoinHandle<usize> {
    thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            from.send_to(format!("game {n}").as_bytes(), to).unwrap();
            n += 1;
            sent.store(n, Ordering::Relaxed);
            thread::sleep(Duration::from_millis(5));
        }
        n
    })
}

/// Receives game datagrams from `relay` on `socket` until `expected` says how many were sent
/// and that many arrived (or a second passes without one); the numbers received, in order.
fn game_receiver(socket: UdpSocket, relay: SocketAddr) -> JoinHandle<Vec<usize>> {
    thread::spawn(move || {
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..len]);
            if from == relay {
                if let Some(n) = text.strip_prefix("game ") {
                    got.push(n.parse().unwrap());
                }
            }
        }
        got
    })
}

/// Two players of a relayed game at `addr`, started, confirmed and greeted both ways; and the
/// relay addresses they send to (G0's, G1's).
fn relayed_game(addr: SocketAddr) -> (Player, Player, SocketAddr, SocketAddr) {
    let relay = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let (g0, g1) = (Player::new(addr), Player::new(addr));
    assert_eq!(g0.request("h:game:G0:2"), "i:G0");
    assert_eq!(g1.request("c:game:G1"), "i:G0:G1");
    g0.send("s:game:G0");
    let g0_start = g0.recv_skipping_info();
    let g1_start = g1.recv_skipping_info();
    g0.send("y:game:G0");
    g1.send("y:game:G1");
    let (to_g0, to_g1) = (relay(peer_port(&g1_start)), relay(peer_port(&g0_start)));
    g1.send_bytes_to(
        format!("g:G1:{}:{}", g1.port(), to_g0.port()).as_bytes(),
        to_g0,
    );
    g0.wait_from(to_g1);
    g0.send_bytes_to(
        format!("g:G0:{}:{}", g0.port(), to_g1.port()).as_bytes(),
        to_g1,
    );
    g1.wait_from(to_g0);
    (g0, g1, to_g0, to_g1)
}

/// The relay port a start message lists for its one peer.
fn peer_port(start: &str) -> u16 {
    start.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn a_successor_takes_over_sessions_start_resends_and_a_relayed_game_and_nobody_notices() {
    let io = uring_or_epoll("a_successor_takes_over_sessions_start_resends_and_a_relayed_game");
    hand_over_everything("handover", io, io);
}

/// The upgrade from a server that moved relayed datagrams with epoll: its relay sockets, never
/// in a ring, go on in the successor's rings without a datagram lost.
#[test]
fn an_epoll_server_hands_its_relayed_game_to_an_io_uring_successor() {
    if common::io_uring_here("an_epoll_server_hands_its_relayed_game_to_an_io_uring_successor") {
        hand_over_everything("handover-epoll", "epoll", "uring");
    }
}

/// `uring` where io_uring can be had, else `epoll` (said by [`common::io_uring_here`]): the
/// hand-over itself is tested either way.
fn uring_or_epoll(test: &str) -> &'static str {
    if common::io_uring_here(test) {
        "uring"
    } else {
        "epoll"
    }
}

/// A hand-over from a server with `--relay-io old_io` to one with `new_io`, in the middle of a
/// start's re-sends and of a relayed game, with pings all along: nothing is lost or late.
fn hand_over_everything(name: &str, old_io: &'static str, new_io: &'static str) {
    let dir = binary::temp_dir(name);
    let (old, mut flags) = first_server(&dir, old_io);
    let addr = old.addr;

    // A lobby with a password, two players, and one kicked.
    let (a, b, c) = (Player::new(addr), Player::new(addr), Player::new(addr));
    assert_eq!(a.request("h:lobby:A:4:pw"), "i:A");
    assert_eq!(b.request("c:lobby:B:pw"), "i:A:B");
    assert_eq!(a.recv(), "i:A:B");
    assert_eq!(c.request("c:lobby:C:pw"), "i:A:B:C");
    a.send("k:lobby:C");
    assert_eq!(c.recv_skipping_info(), "error:kicked_by_host");

    // A relayed game: started, confirmed, greeted, then traffic both ways all along.
    let (g0, g1, to_g0, to_g1) = relayed_game(addr);

    // A session whose start is re-sent to S1, which never confirms.
    let (s0, s1) = (Player::new(addr), Player::new(addr));
    assert_eq!(s0.request("h:starting:S0:2"), "i:S0");
    assert_eq!(s1.request("c:starting:S1"), "i:S0:S1");
    s0.recv();
    let stop = Arc::new(AtomicBool::new(false));
    let count = || Arc::new(AtomicUsize::new(0));
    let (game_a, game_b) = (
        game_sender(g0.socket.try_clone().unwrap(), to_g1, stop.clone(), count()),
        game_sender(g1.socket.try_clone().unwrap(), to_g0, stop.clone(), count()),
    );
    let (got_a, got_b) = (
        game_receiver(g1.socket.try_clone().unwrap(), to_g0),
        game_receiver(g0.socket.try_clone().unwrap(), to_g1),
    );
    let pings = [
        pinger(a, "lobby", "A", stop.clone()),
        pinger(b, "lobby", "B", stop.clone()),
    ];
    s0.send("s:starting:S0");
    let started = Instant::now();
    let starts = thread::spawn(move || {
        // Every start message S1 gets, with when.
        let mut at = Vec::new();
        s1.socket
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let mut buf = [0u8; 256];
        while let Ok((len, _)) = s1.socket.recv_from(&mut buf) {
            if buf[..len].starts_with(b"s:") {
                at.push(started.elapsed());
            }
        }
        at
    });
    s0.recv_skipping_info();
    s0.send("y:starting:S0");

    // The hand-over, in the middle of the start's re-sends, to a successor with more workers.
    thread::sleep(START_INTERVAL * 5);
    flags.relay_io = new_io;
    let mut args = flags.args("3");
    args.push("--takeover".into());
    let new = start(&args, &[]);
    let handed = started.elapsed();
    assert_eq!(new.addr, addr);
    let status = old.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "the old process exits 0: {status}");
    thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);

    // Every ping answered, before, during and after.
    for pinger in pings {
        let (pings, longest) = pinger.join().expect("every ping answered");
        assert!(pings > 20, "{pings} pings");
        eprintln!("longest wait for a ping's answer: {longest:?}");
    }
    // The relayed game: every datagram delivered, in order, both ways.
    for (sender, receiver) in [(game_a, got_a), (game_b, got_b)] {
        let sent = sender.join().unwrap();
        let got = receiver.join().unwrap();
        assert_eq!(got, (0..sent).collect::<Vec<_>>(), "relayed game datagrams");
    }
    // The start re-sends: all of them, once each, on time.
    let at = starts.join().unwrap();
    assert_eq!(at.len(), START_SENDS, "start messages to S1 at {at:?}");
    assert!(
        at[0] < handed && at[START_SENDS - 1] > handed,
        "the hand-over at {handed:?} fell outside the start's re-sends at {at:?}"
    );
    let longest = at.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        longest < START_INTERVAL + Duration::from_millis(700),
        "a gap of {longest:?} in the start messages to S1 at {at:?}"
    );
    let span = at[START_SENDS - 1] - at[0];
    let planned = START_INTERVAL * (START_SENDS as u32 - 1);
    assert!(
        span + Duration::from_millis(50) >= planned && span <= planned + Duration::from_secs(1),
        "start messages to S1 at {at:?}"
    );

    // The lobby is whole: its players in order, its password, its ban list.
    let d = Player::new(addr);
    assert_eq!(d.request("c:lobby:D:pw"), "i:A:B:D");
    assert_eq!(
        Player::new(addr).request("c:lobby:E:nope"),
        "error:password_mismatch"
    );
    assert_eq!(c.request("c:lobby:C:pw"), "error:kicked_by_host");
    assert_eq!(metric(&flags.http, "rabid_punch_sessions_open"), 1.0);
    assert_eq!(metric(&flags.http, "rabid_punch_players"), 3.0);
    let status = new.stop();
    assert!(status.success(), "{status}");
    assert!(
        !flags.control.exists(),
        "a plain stop removes the control socket"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The flags of a server without relay on a free port (`args[3]`), logging and serving
/// hand-overs in `dir`.
fn plain_args(dir: &Path) -> Vec<String> {
    let control = dir.join("control.sock");
    let log = dir.join("server.log");
    [
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--log-file",
        log.to_str().unwrap(),
        "--control-socket",
        control.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

/// A server of [`plain_args`] with 2 workers, with one session whose host pings; its flags,
/// with its port.
fn plain_server(dir: &Path) -> (Running, Vec<String>, Player) {
    let mut args = plain_args(dir);
    args.extend(["--workers".into(), "2".into()]);
    let server = start(&args, &[]);
    args[3] = server.addr.port().to_string();
    let host = Player::new(server.addr);
    assert_eq!(host.request("h:kept:H:4"), "i:H");
    (server, args, host)
}

/// Runs a successor with `args` and `--takeover` that fails as `fault` says
/// (`RABID_PUNCH_TEST_HANDOVER_FAULT`), until it exits.
fn faulty_successor(args: &[String], fault: &str) -> std::process::ExitStatus {
    std::process::Command::new(binary::BIN)
        .args(args)
        .arg("--takeover")
        .env("RABID_PUNCH_TEST_HANDOVER_FAULT", fault)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
}

/// After a hand-over that failed: `old` still answers `host` in session `kept`, and a new
/// successor takes over from it, the session with it; then it stops, and `dir` goes.
fn still_serving_then_taken_over(old: Running, args: &[String], host: &Player, dir: &Path) {
    assert_eq!(host.request("p:kept:H"), "i:H");
    let new = start(&[args, &["--takeover".to_string()]].concat(), &[]);
    assert_eq!(old.wait_exit(WAIT).code(), Some(0));
    assert_eq!(host.request("p:kept:H"), "i:H");
    assert!(new.stop().success());
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs a successor to its end (it fails): its one line of error.
fn failing_successor(args: &[String], env: &[(&str, &str)]) -> String {
    let output = std::process::Command::new(binary::BIN)
        .args(args)
        .arg("--takeover")
        .envs(env.iter().copied())
        .output()
        .expect("run the successor");
    binary::assert_one_line_failure(&output)
}

#[test]
fn a_successor_that_crashes_holding_the_state_leaves_the_server_serving() {
    let dir = binary::temp_dir("handover-crash");
    let (old, args, host) = plain_server(&dir);
    let status = faulty_successor(&args, "crash-with-state");
    assert!(!status.success(), "{status}");
    let line = old.wait_line("failed", WAIT);
    assert!(
        line.contains("the successor closed the control socket") && line.contains("serving on"),
        "{line}"
    );
    // Serving on, with its session, and taking over still works.
    still_serving_then_taken_over(old, &args, &host, &dir);
}

#[test]
fn a_hand_over_that_fails_leaves_the_relayed_game_flowing_through_the_old_rings() {
    // The frozen workers cancelled their receives; thawed, they arm them again, and what
    // arrived meanwhile waited in the sockets.
    let test = "a_hand_over_that_fails_leaves_the_relayed_game_flowing_through_the_old_rings";
    let dir = binary::temp_dir("handover-relay-thaw");
    let (old, flags) = first_server(&dir, uring_or_epoll(test));
    let (g0, g1, to_g0, to_g1) = relayed_game(old.addr);
    let (stop, sent) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let sender = game_sender(
        g1.socket.try_clone().unwrap(),
        to_g0,
        stop.clone(),
        sent.clone(),
    );
    let receiver = game_receiver(g0.socket.try_clone().unwrap(), to_g1);
    let status = faulty_successor(&flags.args("2"), "crash-with-state");
    assert!(!status.success(), "{status}");
    let line = old.wait_line("failed", WAIT);
    assert!(line.contains("serving on"), "{line}");
    // The game goes on after the thaw: 20 more datagrams sent, then stop.
    let thawed = sent.load(Ordering::Relaxed);
    let deadline = Instant::now() + WAIT;
    while sent.load(Ordering::Relaxed) < thawed + 20 {
        assert!(Instant::now() < deadline, "the game sender stalled");
        thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    let got = receiver.join().unwrap();
    assert_eq!(got, (0..sent).collect::<Vec<_>>(), "relayed game datagrams");
    assert!(old.stop().success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_successor_that_cannot_read_the_state_or_take_the_sockets_is_refused_and_says_why() {
    let dir = binary::temp_dir("handover-refused");
    let (old, args, host) = plain_server(&dir);
    let line = failing_successor(&args, &[("RABID_PUNCH_TEST_STATE_VERSION", "2")]);
    assert!(
        line.contains("refused") && line.contains("state version 2"),
        "{line}"
    );
    let logged = old.wait_line("not done", WAIT);
    assert!(logged.contains("state version 2"), "{logged}");
    assert_eq!(host.request("p:kept:H"), "i:H");

    let mut other_port = args.clone();
    other_port[3] = "1".into();
    let line = failing_successor(&other_port, &[]);
    assert!(line.contains("--bind/--port"), "{line}");
    let mut receivers = args.clone();
    receivers.extend(["--receivers".into(), "2".into()]);
    let line = failing_successor(&receivers, &[]);
    assert!(line.contains("--receivers"), "{line}");
    assert_eq!(host.request("p:kept:H"), "i:H");
    // A bad flag stops the successor before it says a word to the server.
    let mut bad = args.clone();
    bad.extend(["--workers".into(), "0".into()]);
    let line = failing_successor(&bad, &[]);
    assert!(line.contains("--workers"), "{line}");
    assert_eq!(host.request("p:kept:H"), "i:H");
    assert!(old.stop().success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn of_two_successors_at_once_one_takes_over_and_the_other_is_told() {
    let dir = binary::temp_dir("handover-two");
    let (old, args, host) = plain_server(&dir);
    let takeover = [args.clone(), vec!["--takeover".into()]].concat();
    // The first holds the state until the second has been refused.
    let go = dir.join("go");
    let hold = format!("hold-with-state:{}", go.display());
    let first =
        thread::spawn(move || start(&takeover, &[("RABID_PUNCH_TEST_HANDOVER_FAULT", &hold)]));
    old.wait_line("pausing to write the state", WAIT);
    let line = failing_successor(&args, &[]);
    assert!(line.contains("under way"), "{line}");
    let logged = old.wait_line("refused pid", WAIT);
    assert!(logged.contains("under way"), "{logged}");
    std::fs::write(&go, b"").unwrap();
    let first = first.join().unwrap();
    assert_eq!(old.wait_exit(WAIT).code(), Some(0));
    assert_eq!(host.request("p:kept:H"), "i:H");
    assert!(first.stop().success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_control_socket_of_another_user_is_not_trusted_either_way() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root, to give the control socket to another user");
        return;
    }
    let dir = binary::temp_dir("handover-owner");
    let (old, args, host) = plain_server(&dir);
    let control = dir.join("control.sock");
    let nobody = 65534;
    // Someone else's socket at the path: no successor trusts what it would hand over.
    std::os::unix::fs::chown(&control, Some(nobody), Some(nobody)).unwrap();
    let line = failing_successor(&args, &[]);
    assert!(line.contains("belongs to uid 65534"), "{line}");
    assert_eq!(host.request("p:kept:H"), "i:H");
    // A process of another user that reaches the socket: the server refuses it.
    std::fs::set_permissions(
        &control,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let mut as_nobody = args.clone();
    let log = as_nobody.iter().position(|a| a == "--log-file").unwrap() + 1;
    as_nobody[log] = "-".into(); // it may not write our log file
    let output = std::process::Command::new(binary::BIN)
        .args(&as_nobody)
        .arg("--takeover")
        .uid(nobody)
        .gid(nobody)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let logged = old.wait_line("refused pid", WAIT);
    assert!(logged.contains("of uid 65534"), "{logged}");
    assert_eq!(host.request("p:kept:H"), "i:H");
    assert!(old.stop().success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn systemd_is_told_when_the_server_is_ready_and_which_process_serves_after_a_hand_over() {
    let dir = binary::temp_dir("handover-notify");
    let notify = std::os::unix::net::UnixDatagram::bind(dir.join("notify.sock")).unwrap();
    notify.set_read_timeout(Some(WAIT)).unwrap();
    let mut args = plain_args(&dir);
    let socket = dir.join("notify.sock");
    let env = [("NOTIFY_SOCKET", socket.to_str().unwrap())];
    let old = start(&args, &env);
    // Read as systemd does, at once (the server waits for it): each message comes with a
    // barrier, whose pipe closes as this reads it (its descriptor is not taken), as systemd
    // closes it once it read what came before.
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(len) = notify.recv(&mut buf) {
            let _ = tx.send(String::from_utf8_lossy(&buf[..len]).into_owned());
        }
    });
    let next = || rx.recv_timeout(WAIT).expect("a notification");
    assert_eq!(next(), "READY=1");
    assert_eq!(next(), "BARRIER=1");
    args[3] = old.addr.port().to_string();
    let host = Player::new(old.addr);
    assert_eq!(host.request("h:kept:H:4"), "i:H");
    // As systemd's ExecReload runs it: --detach ends once the successor serves. The successor,
    // in the background, is reparented to this test (a subreaper), which stops it by its pid.
    // SAFETY: prctl on this process.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
    let status = std::process::Command::new(binary::BIN)
        .args(&args)
        .args(["--takeover", "--detach"])
        .envs(env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{status}");
    let mainpid = next();
    let successor: i32 = mainpid
        .strip_prefix("MAINPID=")
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("{mainpid}"));
    assert_eq!(next(), "BARRIER=1");
    assert_eq!(old.wait_exit(WAIT).code(), Some(0));
    assert_eq!(host.request("p:kept:H"), "i:H");
    // SAFETY: a signal to the successor, which this test started (through --detach).
    unsafe { libc::kill(successor, libc::SIGTERM) };
    let deadline = Instant::now() + WAIT;
    let mut code = 0;
    // SAFETY: waits for that process only, without blocking.
    while unsafe { libc::waitpid(successor, &mut code, libc::WNOHANG) } == 0 {
        assert!(Instant::now() < deadline, "the successor did not stop");
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        libc::WIFEXITED(code) && libc::WEXITSTATUS(code) == 0,
        "{code}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A successor started in the background, holding the state until `go` exists.
fn holding_successor(args: &[String], go: &Path) -> std::process::Child {
    std::process::Command::new(binary::BIN)
        .args(args)
        .arg("--takeover")
        .env(
            "RABID_PUNCH_TEST_HANDOVER_FAULT",
            format!("hold-with-state:{}", go.display()),
        )
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// The exit status and standard error of `child`, waiting at most [`WAIT`].
fn finish(mut child: std::process::Child) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return (status, stderr);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("pid {} did not exit within {WAIT:?}", child.id());
        }
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_signal_during_a_hand_over_still_stops_the_server_and_the_successor_does_not_serve() {
    let dir = binary::temp_dir("handover-signal");
    let (old, args, _host) = plain_server(&dir);
    let go = dir.join("go");
    let successor = holding_successor(&args, &go);
    old.wait_line("waiting for it to be ready", WAIT);
    // Frozen, holding a successor: SIGTERM stops it, cleanly and soon.
    let status = old.stop();
    assert!(status.success(), "{status}");
    std::fs::write(&go, b"").unwrap();
    let (status, stderr) = finish(successor);
    assert!(!status.success(), "the successor must not serve: {stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");
    assert!(stderr.contains("not taking over"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_successor_that_dies_after_ready_leaves_the_server_serving_and_open_to_the_next() {
    let dir = binary::temp_dir("handover-ready");
    let (old, args, host) = plain_server(&dir);
    let status = faulty_successor(&args, "exit-after-ready");
    assert_eq!(status.code(), Some(3));
    let line = old.wait_line("cannot confirm it", WAIT);
    assert!(line.contains("serving on"), "{line}");
    // Not stuck "under way": the next successor takes over.
    still_serving_then_taken_over(old, &args, &host, &dir);
}

#[test]
fn a_successor_that_stalls_longer_than_the_player_timeout_costs_no_player() {
    let dir = binary::temp_dir("handover-stall");
    let (old, mut args, host) = plain_server(&dir);
    // The running server's own flags had the default timeout; a fresh one with 1 s.
    assert!(old.stop().success());
    args[3] = "0".into();
    args.extend(["--player-timeout".into(), "1s".into()]);
    let old = start(&args, &[]);
    args[3] = old.addr.port().to_string();
    let player = Player::new(old.addr);
    drop(host);
    assert_eq!(player.request("h:kept:H:4"), "i:H");
    let stop = Arc::new(AtomicBool::new(false));
    let pings = pinger(player, "kept", "H", stop.clone());
    // Holds the state past the server's patience (3 s): the server thaws after 3 s frozen,
    // with the pings of those 3 s waiting in the kernel, and must count none of it against H.
    // (Whether the thawed worker sees its timers or the receiver's pings first is a race; the
    // rule itself, `Shard::forgive_pause`, is tested on the fake clock in the core.)
    let go = dir.join("go");
    let successor = holding_successor(&args, &go);
    let line = old.wait_line("failed", WAIT);
    assert!(line.contains("did not answer after the state"), "{line}");
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (answered, longest) = pings.join().expect("every ping answered with i:H");
    assert!(longest >= Duration::from_secs(2), "the freeze: {longest:?}");
    assert!(answered > 5);
    std::fs::write(&go, b"").unwrap();
    let (status, _) = finish(successor);
    assert!(!status.success());
    assert!(old.stop().success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn takeover_with_nobody_to_take_over_from_starts_afresh() {
    let dir = binary::temp_dir("handover-nobody");
    let control = dir.join("control.sock");
    let mut args = plain_args(&dir);
    args.push("--takeover".into());
    // No socket at the path: the server starts on its own sockets, and serves hand-overs there.
    let first = start(&args, &[]);
    assert_eq!(Player::new(first.addr).request("h:fresh:H:2"), "i:H");
    assert!(control.exists());
    // Killed, it leaves its socket behind, which nobody listens on: the same again.
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(first.pid() as i32, libc::SIGKILL) };
    let _ = first.wait_exit(WAIT);
    assert!(control.exists(), "SIGKILL leaves the socket behind");
    let second = start(&args, &[]);
    assert_eq!(Player::new(second.addr).request("h:fresh:H:2"), "i:H");
    assert!(second.stop().success());
    assert!(!control.exists());
    let line = binary::assert_one_line_failure(&binary::run(&["--takeover"]));
    assert!(line.contains("--takeover needs --control-socket"), "{line}");
    let _ = std::fs::remove_dir_all(dir);
}
