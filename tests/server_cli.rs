//! The `rabid-punch` binary: start, serve, stop on SIGTERM with exit 0, and one clear line with a
//! non-zero exit for every bad start.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::Player;

const BIN: &str = env!("CARGO_BIN_EXE_rabid-punch");

/// A running server binary, killed if the test fails before stopping it.
struct Running {
    child: Option<Child>,
    addr: SocketAddr,
    /// Kept so that the reader thread goes on draining the server's stderr pipe.
    _stderr: mpsc::Receiver<String>,
}

impl Running {
    /// Sends SIGTERM and waits, at most 10 s, for the exit status.
    fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let pid = child.id() as i32;
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || tx.send(child.wait()));
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(status) => status.unwrap(),
            Err(_) => {
                // SAFETY: as above; the child has not been reaped, so the pid is still its.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("server did not stop within 10 s of SIGTERM");
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rabid-punch-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts the binary with `args` and waits (bounded) for its "listening on" line.
fn start(args: &[&str]) -> Running {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rabid-punch");
    let (tx, stderr) = mpsc::channel();
    let pipe = child.stderr.take();
    // From here on, dropping `running` kills and reaps the child, panics included.
    let mut running = Running {
        child: Some(child),
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        _stderr: stderr,
    };
    std::thread::spawn(move || {
        let Some(pipe) = pipe else { return };
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        let line = running
            ._stderr
            .recv_timeout(Duration::from_secs(10))
            .expect("server printed no `listening on` line");
        if let Some(rest) = line.split("listening on ").nth(1) {
            running.addr = rest.split_whitespace().next().unwrap().parse().unwrap();
            return running;
        }
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run rabid-punch")
}

/// Exactly one line on stderr, and a failure exit code.
fn assert_one_line_failure(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "should fail: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line expected: {stderr:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

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
    ] {
        let output = run(args);
        let stderr = assert_one_line_failure(&output);
        assert!(stderr.starts_with("rabid-punch: "), "{args:?}: {stderr}");
    }
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
