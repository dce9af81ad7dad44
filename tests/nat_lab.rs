//! Runs `scripts/nat-lab.sh`: real hole punching through real nftables NATs in network
//! namespaces, with the real server and the Rust client.
//!
//! Without the relay (`--relay off`): 2 and 4 players behind cone NATs all punch and then
//! exchange a payload peer to peer (the host heard every client from the client's NAT address,
//! not via the server), and groups with a symmetric NAT fail cleanly within their bound.
//! With `--relay always`: the same symmetric groups, and 3- and 4-player mixes, all succeed, and every
//! payload flows through the server's relay ports, which the server's stats confirm. With
//! `--relay auto` (the default): a symmetric pair's first attempt is direct and fails, its
//! retry (the clients' own `--retry`) is relayed and succeeds, a cone pair is never relayed, and
//! a cone pair's rematch after the window is direct.
//!
//! Needs root, `ip netns` and `nft`: without them each test prints why and passes, unless
//! `NAT_LAB_REQUIRED=1` (set it in CI), which turns the skip into a failure. The tests may run
//! at once: the script names its namespaces after its own pid, so runs never share one. A run
//! takes 20 s (`auto`, which retries or plays a rematch, 30 to 40 s); on 2 cores libtest runs
//! two tests at a time, in name order, so the longest come first (`relay_always`,
//! `relay_auto_*`): about 60 s in all.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// The script bounds every client (60 s) itself; this only guards against a hung script.
const SCRIPT_BOUND: Duration = Duration::from_secs(240);
/// A group with a symmetric NAT must have given up by then (greetings end at about 12.4 s).
const SYMMETRIC_BOUND_MS: u64 = 20_000;
/// The relay port range the script gives the server (`--relay-ports 40000-40199`).
const RELAY_PORTS: std::ops::RangeInclusive<u16> = 40000..=40199;
const SERVER_IP: &str = "203.0.113.7";

fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root".into());
    }
    let works = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !works("ip", &["netns", "list"]) {
        return Some("`ip netns` is unavailable".into());
    }
    if !works("nft", &["--version"]) {
        return Some("nft is missing (install nftables)".into());
    }
    None
}

/// Runs the lab with `--relay relay`, the `options` and `groups`, and returns its standard
/// output, after
/// checking that it succeeded, that the NAT kinds were verified and that it left no namespace
/// behind. None when the lab cannot run here and is not required.
fn run_lab(relay: &str, options: &[&str], groups: &[&str]) -> Option<String> {
    if let Some(why) = unavailable() {
        if std::env::var("NAT_LAB_REQUIRED").is_ok_and(|v| v == "1") {
            panic!("NAT lab required but {why}");
        }
        println!("SKIPPED nat lab: {why}");
        return None;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/nat-lab.sh");
    let child = Command::new("bash")
        .args([script, "--bin", env!("CARGO_BIN_EXE_rabid-punch")])
        .args(["--relay", relay])
        .args(options)
        .args(groups)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bash");
    let script_pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(SCRIPT_BOUND) {
        Ok(output) => output.expect("wait for the script"),
        Err(_) => {
            // SIGTERM lets the script's trap delete its namespaces.
            // SAFETY: plain kill(2) on the pid of our own child.
            unsafe { libc::kill(script_pid as libc::pid_t, libc::SIGTERM) };
            panic!("nat-lab.sh --relay {relay} did not finish within {SCRIPT_BOUND:?}");
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "nat-lab.sh --relay {relay} failed: {:?}",
        output.status
    );

    // Each NAT kind in use was checked to map as it claims before the runs.
    let joined = groups.join(",");
    if joined.contains("cone") {
        assert!(stdout.contains("NAT check: cone maps local port 45000 to public port 45000"));
    }
    if joined.contains("symmetric") {
        assert!(stdout.contains("NAT check: symmetric maps local port 45000 to public ports"));
    }

    // Nothing of the run is left behind.
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let prefix = format!("rpl{script_pid}-");
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(!left.contains(&prefix), "namespaces left behind: {left}");
    Some(stdout)
}

/// Parses `RESULT key=value ...` lines into one map per group.
fn results(stdout: &str) -> Vec<HashMap<String, String>> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .map(|l| {
            l.split(' ')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// Splits a comma-separated list of `ip:port` into its parts.
fn addrs(list: &str) -> Vec<(&str, u16)> {
    list.split(',')
        .map(|a| {
            let (ip, port) = a
                .rsplit_once(':')
                .unwrap_or_else(|| panic!("not ip:port: {a:?} in {list:?}"));
            (ip, port.parse().unwrap_or_else(|_| panic!("port of {a}")))
        })
        .collect()
}

/// Every player of `group` succeeded and heard every expected payload.
fn assert_all_punched(group: &HashMap<String, String>, players: usize) {
    assert_eq!(group["punched"], "yes", "{group:?}");
    let outcomes: Vec<&str> = group["outcomes"].split(',').collect();
    assert_eq!(outcomes, vec!["success"; players], "{group:?}");
    let payloads: Vec<&str> = group["payload"].split(',').collect();
    assert_eq!(payloads, vec!["ok"; players], "{group:?}");
}

/// A group with a symmetric NAT and no relay fails with a punch error, within its bound.
fn assert_failed_cleanly(group: &HashMap<String, String>) {
    assert_eq!(group["punched"], "no", "{group:?}");
    for outcome in group["outcomes"].split(',') {
        assert!(
            ["unreachable_self", "host_not_confirmed"].contains(&outcome),
            "a symmetric NAT must fail with a punch error, not {outcome}: {group:?}"
        );
    }
    let took: u64 = group["time_ms"].parse().unwrap();
    assert!(
        took < SYMMETRIC_BOUND_MS,
        "{} took {took} ms",
        group["kinds"]
    );
}

/// The relay figures of the server's final stats line (its part after `relay:`, whose keys
/// repeat some of the general part's), as numbers: `forwarded=120dg/4000B` gives
/// `forwarded` 120, `ports=7/200` gives `ports` 7.
fn relay_stats(stdout: &str) -> HashMap<String, u64> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SERVER stats: "))
        .unwrap_or_else(|| panic!("no SERVER stats line: {stdout}"));
    let (_, relay) = line
        .split_once(" relay: ")
        .unwrap_or_else(|| panic!("no relay figures in the server's stats: {line}"));
    relay
        .split(' ')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
            let n = digits
                .parse()
                .unwrap_or_else(|_| panic!("{k}={v} in the server's stats: {line}"));
            (k.to_string(), n)
        })
        .collect()
}

#[test]
fn relay_off_cone_groups_punch_and_symmetric_groups_fail_cleanly() {
    let Some(stdout) = run_lab(
        "off",
        &[],
        &[
            "cone,cone",
            "cone,cone,cone,cone",
            "symmetric,symmetric",
            "cone,symmetric",
        ],
    ) else {
        return;
    };
    let groups = results(&stdout);
    assert_eq!(groups.len(), 4, "{stdout}");
    for (group, players) in [(&groups[0], 2), (&groups[1], 4)] {
        assert_all_punched(group, players);
        assert_eq!(group["via"], "direct", "{group:?}");
        // The host heard every client's payload straight from that client's NAT (the routers'
        // WAN addresses are 203.0.113.101 and up), never from the server (203.0.113.7).
        let heard = addrs(&group["host_heard"]);
        assert_eq!(heard.len(), players - 1, "{group:?}");
        for (ip, _) in heard {
            let host_octet: u8 = ip
                .strip_prefix("203.0.113.")
                .and_then(|o| o.parse().ok())
                .unwrap_or_else(|| panic!("unexpected payload source {ip}"));
            assert!(
                host_octet > 100,
                "payload from {ip}, not from a client's NAT"
            );
        }
    }
    assert_failed_cleanly(&groups[2]);
    assert_failed_cleanly(&groups[3]);
    let relay = relay_stats(&stdout);
    assert_eq!(relay["sessions"], 0, "relayed with --relay off: {relay:?}");
}

#[test]
fn relay_always_connects_symmetric_nats_through_the_server() {
    let Some(stdout) = run_lab(
        "always",
        &[],
        &[
            "symmetric,symmetric",
            "cone,symmetric",
            "symmetric,cone,none",
            "symmetric,cone,symmetric,none",
        ],
    ) else {
        return;
    };
    let groups = results(&stdout);
    assert_eq!(groups.len(), 4, "{stdout}");
    let sizes = [2, 2, 3, 4];
    for (group, &players) in groups.iter().zip(&sizes) {
        assert_all_punched(group, players);
        assert_eq!(group["via"], "server", "{group:?}");
        // The host heard each client from the server, each from a relay port of its own (a
        // game server tells its clients apart by source address).
        let heard = addrs(&group["host_heard"]);
        assert_eq!(heard.len(), players - 1, "{group:?}");
        let mut ports = Vec::new();
        for (ip, port) in heard {
            assert_eq!(ip, SERVER_IP, "host heard a client directly: {group:?}");
            assert!(RELAY_PORTS.contains(&port), "port {port}: {group:?}");
            assert!(
                !ports.contains(&port),
                "two clients on port {port}: {group:?}"
            );
            ports.push(port);
        }
        // Each client heard the host's echo from a relay port too, not from its own.
        let clients = addrs(&group["clients_heard"]);
        assert_eq!(clients.len(), players - 1, "{group:?}");
        for (ip, port) in clients {
            assert_eq!(ip, SERVER_IP, "a client heard the host directly: {group:?}");
            assert!(RELAY_PORTS.contains(&port), "port {port}: {group:?}");
            assert!(
                !ports.contains(&port),
                "the host appears on a client's relay port {port}: {group:?}"
            );
        }
    }

    // The server counts what it relayed: one relayed session per group (the NAT check talks
    // to servers of its own), no fallback to a direct start, and at least the payloads both
    // ways. Legitimate flows stay within the relay budgets.
    let relay = relay_stats(&stdout);
    assert_eq!(relay["sessions"], 4, "{relay:?}");
    assert_eq!(relay["fallbacks"], 0, "{relay:?}");
    let payloads: usize = sizes.iter().map(|n| 2 * (n - 1)).sum();
    assert!(relay["forwarded"] >= payloads as u64, "{relay:?}");
    assert_eq!(relay["budget"], 0, "{relay:?}");
    assert_eq!(relay["send_error"], 0, "{relay:?}");
}

#[test]
fn relay_auto_relays_the_retry_of_a_failed_punch() {
    // The server's default relay mode; the clients retry by themselves (`client --retry`),
    // in the same session.
    let Some(stdout) = run_lab(
        "auto",
        &["--client-retry"],
        &["symmetric,symmetric", "cone,cone"],
    ) else {
        return;
    };
    let groups = results(&stdout);
    assert_eq!(groups.len(), 2, "{stdout}");
    // The symmetric pair's first start is direct and fails; the same two players starting
    // again moments later is what `auto` takes for a retry, and relays.
    let symmetric = &groups[0];
    assert_eq!(symmetric["attempts"], "2", "{symmetric:?}");
    assert_all_punched(symmetric, 2);
    assert_eq!(symmetric["via"], "server", "{symmetric:?}");
    // A punch that works is never relayed.
    let cone = &groups[1];
    assert_eq!(cone["attempts"], "1", "{cone:?}");
    assert_all_punched(cone, 2);
    assert_eq!(cone["via"], "direct", "{cone:?}");
    let relay = relay_stats(&stdout);
    assert_eq!(relay["sessions"], 1, "{relay:?}");
    assert_eq!(relay["fallbacks"], 0, "{relay:?}");
    // Three starts: two first tries (new groups), one retry.
    assert_eq!((relay["retries"], relay["direct_new"]), (1, 2), "{relay:?}");
}

#[test]
fn relay_auto_starts_a_rematch_after_the_window_direct() {
    // A cone pair punches, plays, and plays again: the second start comes after the window
    // (shortened to 5 s; a punch alone takes longer), so it is a new game, not a retry.
    let Some(stdout) = run_lab(
        "auto",
        &["--rematch", "--auto-window", "5s"],
        &["cone,cone"],
    ) else {
        return;
    };
    let groups = results(&stdout);
    assert_eq!(groups.len(), 1, "{stdout}");
    let cone = &groups[0];
    assert_eq!(cone["games"], "2", "{cone:?}");
    assert_all_punched(cone, 2);
    assert_eq!(cone["via"], "direct", "{cone:?}");
    let relay = relay_stats(&stdout);
    assert_eq!(relay["sessions"], 0, "{relay:?}");
    assert_eq!((relay["retries"], relay["direct_new"]), (0, 2), "{relay:?}");
}
