//! `--metrics`: the real binary serves Prometheus text whose counters match, exactly, what a test
//! did to it over UDP; and a bad metrics address stops the start with one clear line.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::binary::{assert_one_line_failure, run, start, temp_dir};
use common::Player;

/// How long a test waits for the server's figures to reach what it expects.
const SETTLE: Duration = Duration::from_secs(10);

/// One HTTP GET over a plain TCP stream: the status code, the headers and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_string(), body.to_string())
}

/// The series of a scrape: `name{labels}` to value. Comments are checked to be well-formed.
fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let (status, head, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// Scrapes until `ready` holds, for at most [`SETTLE`]: counters of a reply are published just
/// after it leaves, so the test's last reply can beat them.
fn scrape_until(
    addr: SocketAddr,
    ready: impl Fn(&HashMap<String, f64>) -> bool,
) -> HashMap<String, f64> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let metrics = scrape(addr);
        if ready(&metrics) {
            return metrics;
        }
        assert!(
            Instant::now() < deadline,
            "metrics did not settle within {SETTLE:?}: {metrics:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Records what a player sent and received, to check the byte counters against.
struct Traffic {
    datagrams_in: u64,
    bytes_in: u64,
    datagrams_out: u64,
    bytes_out: u64,
}

impl Traffic {
    fn send(&mut self, player: &Player, text: &str) {
        player.send(text);
        self.datagrams_in += 1;
        self.bytes_in += text.len() as u64;
    }

    fn recv(&mut self, player: &Player) -> String {
        let got = player.recv();
        self.datagrams_out += 1;
        self.bytes_out += got.len() as u64;
        got
    }

    fn request(&mut self, player: &Player, text: &str) -> String {
        self.send(player, text);
        self.recv(player)
    }
}

#[test]
fn counters_match_a_lifecycle_an_error_and_garbage_exactly() {
    let dir = temp_dir("metrics");
    let log = dir.join("server.log");
    // One round of the start message: no re-send can race the scrape.
    let server = start(&[
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--workers",
        "2",
        "--metrics",
        "127.0.0.1:0",
        "--start-sends",
        "1",
        "--log-file",
        log.to_str().unwrap(),
    ]);
    let metrics_addr = server.metrics.expect("no `metrics at` line");
    let before = scrape(metrics_addr);
    assert_eq!(before["rabid_punch_datagrams_in_total"], 0.0);
    assert_eq!(before["rabid_punch_sessions_open"], 0.0);

    let mut t = Traffic {
        datagrams_in: 0,
        bytes_in: 0,
        datagrams_out: 0,
        bytes_out: 0,
    };
    let host = Player::new(server.addr);
    let guest = Player::new(server.addr);
    let stranger = Player::new(server.addr);
    assert_eq!(t.request(&host, "h:Met:Host:2"), "i:Host");
    t.send(&guest, "c:Met:Guest");
    assert_eq!(t.recv(&guest), "i:Host:Guest");
    assert_eq!(t.recv(&host), "i:Host:Guest");
    assert_eq!(t.request(&host, "p:Met:Host"), "i:Host:Guest");
    assert_eq!(t.request(&guest, "p:Met:Guest"), "i:Host:Guest");
    assert_eq!(
        t.request(&stranger, "c:Nope:Someone"),
        "error:session_non_existent"
    );
    assert_eq!(
        t.request(&stranger, "this is garbage"),
        "error:invalid_request"
    );
    t.send(&host, "s:Met:Host");
    let to_host = t.recv(&host);
    let to_guest = t.recv(&guest);
    assert_eq!(
        to_host,
        format!("s:{}:Guest:127.0.0.1:{}", host.port(), guest.port())
    );
    assert_eq!(
        to_guest,
        format!("s:{}:Host:127.0.0.1:{}", guest.port(), host.port())
    );
    assert_eq!((t.datagrams_in, t.datagrams_out), (7, 9));

    let m = scrape_until(metrics_addr, |m| {
        m["rabid_punch_datagrams_out_total"] >= 9.0
            && m["rabid_punch_request_duration_seconds_count"] >= 6.0
    });
    let expect = |series: &str, value: u64| {
        let got = m
            .get(series)
            .unwrap_or_else(|| panic!("no series {series}: {m:#?}"));
        assert_eq!(*got, value as f64, "{series}");
    };
    expect("rabid_punch_datagrams_in_total", t.datagrams_in);
    expect("rabid_punch_bytes_in_total", t.bytes_in);
    expect("rabid_punch_datagrams_out_total", t.datagrams_out);
    expect("rabid_punch_bytes_out_total", t.bytes_out);
    for (command, n) in [
        ("h", 1),
        ("c", 2),
        ("p", 2),
        ("k", 0),
        ("x", 0),
        ("s", 1),
        ("y", 0),
    ] {
        expect(
            &format!("rabid_punch_requests_total{{command=\"{command}\"}}"),
            n,
        );
    }
    expect("rabid_punch_replies_total{kind=\"info\"}", 5);
    expect("rabid_punch_replies_total{kind=\"start\"}", 2);
    expect("rabid_punch_replies_total{kind=\"error\"}", 2);
    expect(
        "rabid_punch_error_replies_total{error=\"session_non_existent\"}",
        1,
    );
    expect(
        "rabid_punch_error_replies_total{error=\"invalid_request\"}",
        1,
    );
    expect("rabid_punch_error_replies_total{error=\"session_full\"}", 0);
    let errors: f64 = m
        .iter()
        .filter(|(series, _)| series.starts_with("rabid_punch_error_replies_total"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(errors, 2.0);
    expect("rabid_punch_drops_total{reason=\"malformed\"}", 1);
    for reason in [
        "queue_full",
        "unknown_command",
        "session_cap",
        "player_cap",
        "budget",
        "budget_table_full",
        "send_error",
    ] {
        expect(
            &format!("rabid_punch_drops_total{{reason=\"{reason}\"}}"),
            0,
        );
    }
    expect("rabid_punch_sessions_created_total", 1);
    expect("rabid_punch_sessions_started_total", 1);
    expect("rabid_punch_sessions_timed_out_total", 0);
    expect("rabid_punch_players_timed_out_total", 0);
    // The six well-formed requests were timed by the workers; garbage never reaches one.
    expect("rabid_punch_request_duration_seconds_count", 6);
    expect(
        "rabid_punch_request_duration_seconds_bucket{le=\"+Inf\"}",
        6,
    );
    expect("rabid_punch_queue_depth{worker=\"0\"}", 0);
    expect("rabid_punch_queue_depth{worker=\"1\"}", 0);
    assert!(!m.contains_key("rabid_punch_queue_depth{worker=\"2\"}"));

    // The started session is forgotten after its one round: the gauges go back to zero.
    let settled = scrape_until(metrics_addr, |m| {
        m["rabid_punch_sessions_open"] == 0.0 && m["rabid_punch_players"] == 0.0
    });
    assert_eq!(
        settled["rabid_punch_datagrams_in_total"],
        t.datagrams_in as f64
    );
    assert_eq!(settled["rabid_punch_sessions_created_total"], 1.0);

    // Anything but /metrics is not found.
    let (status, _, _) = get(metrics_addr, "/");
    assert_eq!(status, 404);
    let (status, _, _) = get(metrics_addr, "/metrics?x=1");
    assert_eq!(status, 200);
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_bad_metrics_address_gives_one_clear_line() {
    let server = ["--port", "0", "--bind", "127.0.0.1", "--log-file", "-"];
    let with = |metrics: &str| {
        let mut args = server.to_vec();
        args.extend(["--metrics", metrics]);
        run(&args)
    };

    for unparsable in [
        "nope",
        "9777",
        "127.0.0.1",
        "localhost:9777",
        "127.0.0.1:70000",
    ] {
        let stderr = assert_one_line_failure(&with(unparsable));
        assert!(stderr.contains("--metrics needs"), "{unparsable}: {stderr}");
    }

    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().to_string();
    let stderr = assert_one_line_failure(&with(&taken));
    assert!(
        stderr.contains("cannot serve metrics") && stderr.contains("already in use"),
        "{stderr}"
    );

    // An address of no interface here (TEST-NET-1): binding fails, nothing is sent.
    let stderr = assert_one_line_failure(&with("192.0.2.1:9777"));
    assert!(
        stderr.contains("cannot serve metrics on 192.0.2.1:9777"),
        "{stderr}"
    );
}
