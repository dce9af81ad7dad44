//! The `rabid-punch` binary as a child process: started on ephemeral ports, stopped with
//! SIGTERM, always killed and reaped if a test fails.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_rabid-punch");

/// A running server binary, killed if the test fails before stopping it.
pub struct Running {
    child: Option<Child>,
    /// The UDP address from its `listening on` line.
    pub addr: SocketAddr,
    /// The metrics address from its `metrics at` line, when `--metrics` was given.
    pub metrics: Option<SocketAddr>,
    /// Kept so that the reader thread goes on draining the server's stderr pipe.
    stderr: mpsc::Receiver<String>,
    /// The log lines before its `listening on` line.
    pub early: Vec<String>,
}

impl Running {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends SIGTERM and waits, at most 10 s, for the exit status.
    pub fn stop(mut self) -> ExitStatus {
        let Some(mut child) = self.child.take() else {
            panic!("already stopped");
        };
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

impl Running {
    /// Waits, at most `timeout`, for the process to end by itself; its exit status.
    pub fn wait_exit(mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("already stopped");
        let pid = child.id() as i32;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || tx.send(child.wait()));
        match rx.recv_timeout(timeout) {
            Ok(status) => status.unwrap(),
            Err(_) => {
                // SAFETY: our own child, not reaped yet.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("pid {pid} did not exit within {timeout:?}");
            }
        }
    }

    /// Waits, at most `timeout`, for a line of its log containing `text`; that line. Lines
    /// before it are gone.
    pub fn wait_line(&self, text: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line with {text:?} within {timeout:?}"),
            }
        }
    }

    /// The log lines printed so far (and not yet read by [`wait_line`](Self::wait_line)).
    pub fn lines_so_far(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
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

/// A fresh directory for one test's files.
pub fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rabid-punch-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The address after `marker` in `line`, if `line` has it.
fn address_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = line.split(marker).nth(1)?;
    rest.split(|c: char| c.is_whitespace() || c == '/')
        .next()?
        .parse()
        .ok()
}

/// Starts the binary with `args` and waits (bounded) for its `listening on` line (and the
/// `metrics at` line before it, which it prints when given `--metrics`).
///
/// With `--relay off` unless `args` set `--relay`: the default (`auto`) binds the default relay
/// pool, which servers of tests running at once would race for, and relays a second start from
/// 127.0.0.1 within a minute, so what a test sees would depend on which test came first.
pub fn start(args: &[&str]) -> Running {
    start_with_env(args, &[])
}

/// [`start`], with environment variables set.
pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Running {
    start_prepared(args, env, |_| {})
}

/// [`start_with_env`], with the command prepared by `prepare` before it runs.
pub fn start_prepared(
    args: &[&str],
    env: &[(&str, &str)],
    prepare: impl FnOnce(&mut Command),
) -> Running {
    let relay_off: &[&str] = if args.contains(&"--relay") {
        &[]
    } else {
        &["--relay", "off"]
    };
    let mut command = Command::new(BIN);
    prepare(&mut command);
    let mut child = command
        .args(args)
        .args(relay_off)
        .envs(env.iter().copied())
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
        metrics: None,
        stderr,
        early: Vec::new(),
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
            .stderr
            .recv_timeout(Duration::from_secs(10))
            .expect("server printed no `listening on` line");
        if let Some(addr) = address_after(&line, "metrics at http://") {
            running.metrics = Some(addr);
        }
        if let Some(addr) = address_after(&line, "listening on ") {
            running.addr = addr;
            return running;
        }
        running.early.push(line);
    }
}

/// Runs the binary to its end.
pub fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run rabid-punch")
}

/// Exactly one line on stderr, starting `rabid-punch: `, a failure exit code, no panic and no
/// server started. Returns the line.
pub fn assert_one_line_failure(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "should fail: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line expected: {stderr:?}"
    );
    assert!(stderr.starts_with("rabid-punch: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stdout.contains("listening on"), "{stdout}");
    stderr
}
