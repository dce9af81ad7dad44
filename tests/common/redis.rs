//! A `redis-server` of a test's own: on a free loopback port, without persistence, stopped by
//! its process id (never by name: other tests and other users may run one too).
//!
//! When `redis-server` is not installed, [`Redis::start`] says so and returns `None`, and the
//! test passes without running; with `REDIS_REQUIRED=1` (CI sets it) it fails instead.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`, killed when dropped.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    /// Serving TLS only (`rediss://`), with the certificate of `tests/fixtures/redis-tls`.
    tls: bool,
}

/// The test certificates: a CA (`ca.pem`) and the server's certificate for 127.0.0.1 it signed.
pub const TLS_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/redis-tls");

impl Redis {
    /// Starts one on a free port; `None` (with a message) when `redis-server` is missing and
    /// `REDIS_REQUIRED` is not `1`.
    pub fn start(test: &str) -> Option<Redis> {
        Self::start_with(test, false)
    }

    /// [`start`](Self::start) serving TLS only, with the test certificates.
    pub fn start_tls(test: &str) -> Option<Redis> {
        Self::start_with(test, true)
    }

    fn start_with(test: &str, tls: bool) -> Option<Redis> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            if std::env::var("REDIS_REQUIRED").as_deref() == Ok("1") {
                panic!("{test}: redis-server is not installed, and REDIS_REQUIRED=1");
            }
            eprintln!(
                "{test}: skipped, redis-server is not installed (apt-get install redis-server; \
                 REDIS_REQUIRED=1 makes this a failure)"
            );
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut redis = Redis {
            child: None,
            port,
            tls,
        };
        redis.restart();
        Some(redis)
    }

    /// `redis://127.0.0.1:<port>` (`rediss://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on its port, empty, and waits (at most 10 s) until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut command = Command::new("redis-server");
        if self.tls {
            let file = |name: &str| format!("{TLS_FIXTURES}/{name}");
            command
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .args(["--tls-cert-file", &file("server.pem")])
                .args(["--tls-key-file", &file("server.key")])
                .args(["--tls-ca-cert-file", &file("ca.pem")])
                .args(["--tls-auth-clients", "no"]);
        } else {
            command.args(["--port", &self.port.to_string()]);
        }
        let child = command
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.listening() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer in 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it (SIGKILL, by its process id) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether it is up: a TLS port takes a connection, a plain one answers `PING`.
    fn listening(&self) -> bool {
        if self.tls {
            return TcpStream::connect(("127.0.0.1", self.port)).is_ok();
        }
        self.answers()
    }

    /// Whether it answers `PING` now.
    fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut buf = [0u8; 16];
        s.write_all(b"PING\r\n").is_ok()
            && s.read(&mut buf)
                .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
