//! Helpers shared by the integration tests: a player on its own UDP socket.
#![allow(dead_code)]

pub mod binary;
pub mod redis;

use std::net::{SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

/// How long a test waits for a datagram before it fails.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A player: one UDP socket on 127.0.0.1 talking to the server.
pub struct Player {
    pub socket: UdpSocket,
    pub server: SocketAddr,
}

impl Player {
    pub fn new(server: SocketAddr) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a test socket");
        socket.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        Self { socket, server }
    }

    pub fn port(&self) -> u16 {
        self.socket.local_addr().unwrap().port()
    }

    pub fn send(&self, text: &str) {
        self.socket.send_to(text.as_bytes(), self.server).unwrap();
    }

    pub fn send_bytes(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.server).unwrap();
    }

    /// Sends `bytes` to `to` (a relay port, say) rather than to the server port.
    pub fn send_bytes_to(&self, bytes: &[u8], to: SocketAddr) {
        self.socket.send_to(bytes, to).unwrap();
    }

    /// The next datagram from `from`, skipping others; fails the test after [`REPLY_TIMEOUT`].
    pub fn wait_from(&self, from: SocketAddr) -> String {
        let mut buf = [0u8; 2048];
        loop {
            let (len, sender) = self
                .socket
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("nothing from {from} for port {}: {e}", self.port()));
            if sender == from {
                return String::from_utf8_lossy(&buf[..len]).into_owned();
            }
        }
    }

    /// The next datagram from the server; fails the test after [`REPLY_TIMEOUT`].
    pub fn recv(&self) -> String {
        let mut buf = [0u8; 2048];
        loop {
            let (len, from) = self
                .socket
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("no datagram for port {}: {e}", self.port()));
            if from == self.server {
                return String::from_utf8_lossy(&buf[..len]).into_owned();
            }
        }
    }

    /// The next datagram that is not `skip` (re-sent start messages, say).
    pub fn recv_skipping(&self, skip: &str) -> String {
        loop {
            let got = self.recv();
            if got != skip {
                return got;
            }
        }
    }

    /// The next datagram that is not an `i:` list (broadcasts a test does not care about).
    pub fn recv_skipping_info(&self) -> String {
        loop {
            let got = self.recv();
            if !got.starts_with("i:") {
                return got;
            }
        }
    }

    /// Sends `text` every 0.5 s, as the Godot client does, until a reply passes `accept`
    /// (at most 60 tries, twice the Godot client's patience: CI boxes are busy); returns that
    /// reply.
    pub fn retry(&self, text: &str, accept: impl Fn(&str) -> bool) -> String {
        let mut buf = [0u8; 2048];
        self.socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        for _ in 0..60 {
            self.send(text);
            let deadline = std::time::Instant::now() + Duration::from_millis(500);
            while std::time::Instant::now() < deadline {
                if let Ok((len, from)) = self.socket.recv_from(&mut buf) {
                    let got = String::from_utf8_lossy(&buf[..len]).into_owned();
                    if from == self.server && accept(&got) {
                        self.socket.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
                        return got;
                    }
                }
            }
        }
        panic!("no acceptable reply to {text:?} after 60 tries");
    }

    /// Sends `text` and returns the first reply.
    pub fn request(&self, text: &str) -> String {
        self.send(text);
        self.recv()
    }

    /// Whether a datagram arrives within `wait` (used only to check that nothing comes).
    pub fn quiet_for(&self, wait: Duration) -> bool {
        self.socket.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 2048];
        let quiet = self.socket.recv_from(&mut buf).is_err();
        self.socket.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        quiet
    }
}

/// A range of `len` consecutive ports that were all free a moment ago.
///
/// Tests of one binary run in parallel and each starts a server binding its range, so every
/// call takes a block of its own (a process-wide counter; the process id spreads binaries
/// apart), and the blocks lie below the kernel's ephemeral range (32768 up on Linux), where
/// the other tests' `bind(0)` sockets land.
pub fn free_ports(len: u16) -> RangeInclusive<u16> {
    static CALLS: AtomicU16 = AtomicU16::new(0);
    const BLOCKS: u16 = (32_768 - 20_000) / 16;
    assert!(len <= 16, "a block holds 16 ports");
    let seed = (std::process::id() % u32::from(BLOCKS)) as u16;
    for _ in 0..BLOCKS {
        let call = CALLS.fetch_add(1, Ordering::Relaxed);
        let base = 20_000 + ((seed + call % BLOCKS) % BLOCKS) * 16;
        let held: Vec<_> = (base..base + len)
            .map_while(|port| UdpSocket::bind(("0.0.0.0", port)).ok())
            .collect();
        if held.len() == usize::from(len) {
            return base..=base + len - 1;
        }
    }
    panic!("no {len} free consecutive ports");
}

/// The start message player `me` of `players` must get: its own port, then the others.
pub fn start_message(players: &[&Player], me: usize) -> String {
    let others: Vec<String> = players
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != me)
        .map(|(i, p)| format!("{}:127.0.0.1:{}", name(i), p.port()))
        .collect();
    format!("s:{}:{}", players[me].port(), others.join(";"))
}

/// Player `i`'s name in a test session: P0, P1, ...
pub fn name(i: usize) -> String {
    format!("P{i}")
}

/// Whether `--relay-io uring` works on this machine. Where the kernel refuses `io_uring` (a
/// seccomp filter as Docker's, the `kernel.io_uring_disabled` sysctl, an old kernel) a test of
/// that path says so and passes without running, unless `IO_URING_REQUIRED=1`, which makes it
/// fail instead.
pub fn io_uring_here(test: &str) -> bool {
    let Some(why) = rabid_punch::runtime::RelayIo::uring_refused() else {
        return true;
    };
    if std::env::var("IO_URING_REQUIRED").as_deref() == Ok("1") {
        panic!("{test}: io_uring is refused here ({why}), and IO_URING_REQUIRED=1");
    }
    eprintln!("{test}: the io_uring path is not tested: io_uring is refused here ({why})");
    false
}
