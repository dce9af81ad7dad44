//! The `rabid-punch` binary: start, serve, stop on SIGTERM with exit 0, and one clear line with a
//! non-zero exit for every bad start.

mod common;

use std::net::{SocketAddr, UdpSocket};

use common::binary::{assert_one_line_failure, run, start, temp_dir};
use common::Player;

#[test]
fn serves_then_stops_on_sigterm_with_exit_0_and_a_flushed_log() {
    let dir = temp_dir("sigterm");
    let log = dir.join("server.log");
    let server = start(&[
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--workers",
        "2",
        "--log-file",
        log.to_str().unwrap(),
    ]);
    let host = Player::new(server.addr);
    assert_eq!(host.request("h:Cli:Host:4"), "i:Host");
    assert_eq!(host.request("bogus request"), "error:invalid_request");

    let status = server.stop();
    assert_eq!(status.code(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("session Cli created by Host"), "{text}");
    assert!(text.contains("stopped; stats:"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_port_in_use_gives_one_clear_line() {
    let holder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let output = run(&["--port", &port, "--bind", "127.0.0.1", "--log-file", "-"]);
    let stderr = assert_one_line_failure(&output);
    assert!(stderr.contains("already in use"), "{stderr}");
}

#[test]
fn a_second_rabid_punch_cannot_share_the_port_of_a_running_one() {
    let dir = temp_dir("second");
    let log = dir.join("first.log");
    let first = start(&[
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--log-file",
        log.to_str().unwrap(),
    ]);
    let port = first.addr.port().to_string();
    let output = run(&["--port", &port, "--bind", "127.0.0.1", "--log-file", "-"]);
    let stderr = assert_one_line_failure(&output);
    assert!(stderr.contains("already in use"), "{stderr}");
    // The first one still answers.
    assert_eq!(
        Player::new(first.addr).request("not a request"),
        "error:invalid_request"
    );
    assert_eq!(first.stop().code(), Some(0));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_flags_give_one_clear_line() {
    for args in [
        &["--nope"][..],
        &["--port", "99999"],
        &["--port"],
        &["--workers", "0"],
        &["--player-timeout", "5"],
        &["--bind", "not-an-ip"],
        &["--relay", "sometimes"],
        &["--relay-ports", "9000-8000"],
        &["--relay-ports", "0-10"],
        &["--relay-public-ip", "example.org"],
        &["--relay-idle", "0s"],
    ] {
        let output = run(args);
        let stderr = assert_one_line_failure(&output);
        assert!(stderr.starts_with("rabid-punch: "), "{args:?}: {stderr}");
    }
}

#[test]
fn relay_ports_held_by_someone_else_leave_the_server_serving() {
    // A relay range of one port, held by someone else.
    let held = UdpSocket::bind("0.0.0.0:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let range = format!("{port}-{port}");
    let dir = temp_dir("relay-held");
    let log = dir.join("server.log");
    let server = start(&[
        "--port",
        "0",
        "--relay",
        "always",
        "--relay-ports",
        &range,
        "--log-file",
        log.to_str().unwrap(),
    ]);
    // It serves, and said why it has no relay port.
    let player = Player::new(SocketAddr::from(([127, 0, 0, 1], server.addr.port())));
    assert_eq!(player.request("h:Held:A:2"), "i:A");
    server.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("relay: 1 of 1 relay ports could not be bound"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_unwritable_log_file_gives_one_clear_line() {
    let dir = temp_dir("unwritable");
    let missing = dir.join("no-such-dir").join("x.log");
    let output = run(&["--port", "0", "--log-file", missing.to_str().unwrap()]);
    let stderr = assert_one_line_failure(&output);
    assert!(stderr.contains("cannot write log file"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn help_lists_every_flag_and_version_prints_the_version() {
    let help = run(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--port",
        "--bind",
        "--workers",
        "--debug",
        "--log-file",
        "--player-timeout",
        "--session-lifetime",
        "--start-interval",
        "--start-sends",
        "--error-repeats",
        "--error-repeat-interval",
        "--relay",
        "--relay-ports",
        "--relay-public-ip",
        "--relay-idle",
        "--relay-unused",
        "--relay-lifetime",
        "--relay-auto-window",
        "--relay-session-rate",
        "--relay-ip-rate",
        "--relay-max-per-ip",
        "--scheduling",
        "--receivers",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
    let version = run(&["--version"]);
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("rabid-punch {}", env!("CARGO_PKG_VERSION"))
    );
}

/// The scheduling policy of each thread of process `pid`, by thread name (field 41 of
/// `/proc/PID/task/TID/stat`, counted after the command name, which may hold spaces).
#[cfg(target_os = "linux")]
fn thread_policies(pid: u32) -> Vec<(String, i32)> {
    let mut policies = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap();
        let stat = std::fs::read_to_string(path.join("stat")).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        // Fields from the third (state) on; the policy is the 41st field.
        let policy = after_name.split(' ').nth(41 - 3).unwrap().parse().unwrap();
        policies.push((comm.trim().to_string(), policy));
    }
    policies
}

#[cfg(target_os = "linux")]
#[test]
fn datagram_threads_run_sched_batch_unless_told_normal() {
    const SCHED_OTHER: i32 = 0;
    const SCHED_BATCH: i32 = 3;
    let dir = temp_dir("scheduling");
    let log = dir.join("server.log");
    for (flag, want) in [("batch", SCHED_BATCH), ("normal", SCHED_OTHER)] {
        let server = start(&[
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--workers",
            "2",
            "--log-file",
            log.to_str().unwrap(),
            "--scheduling",
            flag,
        ]);
        let host = Player::new(server.addr);
        assert_eq!(host.request("h:Sched:Host:4"), "i:Host");
        // A thread takes its name, then sets its policy, when it first runs: wait (bounded)
        // until all three did.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let policies = thread_policies(server.pid());
            let datagram_threads: Vec<_> = policies
                .iter()
                .filter(|(name, _)| name == "receiver" || name.starts_with("worker-"))
                .collect();
            let settled =
                datagram_threads.len() == 3 && datagram_threads.iter().all(|(_, p)| *p == want);
            if settled {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{flag}: datagram threads not all at policy {want}: {policies:?}"
            );
            std::thread::yield_now();
        }
        assert_eq!(server.stop().code(), Some(0));
    }
    let _ = std::fs::remove_dir_all(dir);
}
