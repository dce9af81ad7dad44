//! A tiny in-process stand-in for rabid-punch (tests only): enough of the protocol for the
//! generator's happy paths (host, join, ping, start, confirm), plus faults to inject, so the
//! flood engines are tested without the real server, and a failure to notice a wrong reply
//! fails a test.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::proto;

#[derive(Clone, Copy, PartialEq)]
pub enum Fault {
    None,
    /// Every 50th ping gets a list with the players in the wrong order.
    BadPing,
    /// Start messages name the receiver's port plus one.
    BadStart,
    /// Pure echo: every datagram is sent back unchanged.
    Echo,
}

pub struct Fake {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Fake {
    pub fn start(fault: Fault) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || serve(&sock, fault, &flag));
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Session {
    players: Vec<(String, SocketAddr)>,
    starting: bool,
    confirmed: Vec<bool>,
}

fn serve(sock: &UdpSocket, fault: Fault, stop: &AtomicBool) {
    let mut sessions: HashMap<String, Session> = HashMap::new();
    let mut buf = [0u8; 1500];
    let mut pings = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if fault == Fault::Echo {
            let _ = sock.send_to(&buf[..n], from);
            continue;
        }
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        let f: Vec<&str> = text.split(':').collect();
        let reply = |data: &[u8], to: SocketAddr| {
            let _ = sock.send_to(data, to);
        };
        let info = |s: &Session| {
            let names: Vec<String> = s.players.iter().map(|p| p.0.clone()).collect();
            proto::info(&names)
        };
        let start_for = |s: &Session, k: usize| {
            let names: Vec<String> = s.players.iter().map(|p| p.0.clone()).collect();
            let mut addrs: Vec<SocketAddr> = s.players.iter().map(|p| p.1).collect();
            if fault == Fault::BadStart {
                let port = addrs[k].port().wrapping_add(1);
                addrs[k].set_port(port);
            }
            proto::start_message(k, &names, &addrs)
        };
        match (f.first().copied(), f.len()) {
            (Some("h"), 4) => {
                let s = sessions.entry(f[1].to_string()).or_insert_with(|| Session {
                    players: vec![(f[2].to_string(), from)],
                    starting: false,
                    confirmed: Vec::new(),
                });
                if s.players[0].1 == from {
                    reply(&info(s), from);
                } else {
                    reply(b"error:session_exists", from);
                }
            }
            (Some("c"), 3) => match sessions.get_mut(f[1]) {
                Some(s) if !s.starting => {
                    if !s.players.iter().any(|p| p.0 == f[2]) {
                        s.players.push((f[2].to_string(), from));
                    }
                    let list = info(s);
                    for p in &s.players {
                        reply(&list, p.1);
                    }
                }
                _ => reply(b"error:session_non_existent", from),
            },
            (Some("p"), 3) => match sessions.get(f[1]) {
                Some(s) => match s.players.iter().position(|p| p.0 == f[2] && p.1 == from) {
                    Some(k) if s.starting => reply(&start_for(s, k), from),
                    Some(_) => {
                        pings += 1;
                        if fault == Fault::BadPing && pings.is_multiple_of(50) {
                            let mut names: Vec<String> =
                                s.players.iter().map(|p| p.0.clone()).collect();
                            names.reverse();
                            reply(&proto::info(&names), from);
                        } else {
                            reply(&info(s), from);
                        }
                    }
                    None => reply(b"error:non_existent_player", from),
                },
                None => reply(b"error:session_non_existent", from),
            },
            (Some("s"), 3) => {
                if let Some(s) = sessions.get_mut(f[1]) {
                    if !s.starting {
                        s.starting = true;
                        s.confirmed = vec![false; s.players.len()];
                        // Twice, like the real server's re-sends crossing a confirmation.
                        // Both rounds leave before the next request is read, so each second
                        // copy reaches its player before any reply to the slot's next session:
                        // the generator reads it then at the latest, however fast it polls.
                        for _ in 0..2 {
                            for k in 0..s.players.len() {
                                reply(&start_for(s, k), s.players[k].1);
                            }
                        }
                    }
                }
            }
            (Some("y"), 3) => {
                let done = match sessions.get_mut(f[1]) {
                    Some(s) if s.starting => {
                        if let Some(k) = s.players.iter().position(|p| p.0 == f[2]) {
                            s.confirmed[k] = true;
                        }
                        s.confirmed.iter().all(|&c| c)
                    }
                    _ => {
                        reply(b"error:session_not_started", from);
                        false
                    }
                };
                if done {
                    sessions.remove(f[1]);
                }
            }
            _ => reply(b"error:invalid_request", from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{LifecycleArgs, PingArgs};
    use crate::{lifecycle, ping};

    fn ping_args(target: SocketAddr) -> PingArgs {
        PingArgs {
            target,
            sessions: 20,
            players: 4,
            outstanding: 8,
            rate: None,
            duration: 0.3,
            warmup: 0.1,
            max_pings: 1_000_000,
            timeout_ms: 1000,
            echo: false,
            threads: 1,
            sources: None,
            allow_remote: false,
            server_pid: Some(std::process::id()),
            json: false,
            lobbies: 0,
            lobby_sources: None,
            list_rate: None,
            list_sockets: 2048,
            list_sources: None,
            max_listings: 100_000_000,
        }
    }

    fn lifecycle_args(target: SocketAddr) -> LifecycleArgs {
        LifecycleArgs {
            target,
            players: 4,
            concurrency: 4,
            count: 40,
            duration: 10.0,
            timeout_ms: 2000,
            threads: 1,
            sources: None,
            allow_remote: false,
            server_pid: None,
            json: false,
        }
    }

    #[test]
    fn ping_flood_against_a_correct_server_has_no_failures() {
        let fake = Fake::start(Fault::None);
        let o = ping::run(&ping_args(fake.addr)).unwrap();
        assert_eq!(o.wrong.count, 0, "{:?}", o.wrong.samples);
        assert_eq!(o.lost, 0);
        assert!(o.replies > 100, "only {} replies", o.replies);
        assert!(o.latency.count() > 100);
        let w = o.window.expect("thread 0 measures the window");
        // The 0.3 s window, less what a preempted first snapshot after the warm-up may lose.
        assert!(w.wall >= Duration::from_millis(200), "{:?}", w.wall);
        assert!(w.server_cpu.is_some());
    }

    #[test]
    fn ping_flood_notices_wrong_lists() {
        let fake = Fake::start(Fault::BadPing);
        let o = ping::run(&ping_args(fake.addr)).unwrap();
        assert!(o.wrong.count > 0);
        assert!(
            o.wrong.samples[0].contains("i:p3:p2:p1:p0"),
            "{:?}",
            o.wrong.samples
        );
    }

    #[test]
    fn ping_flood_open_loop_with_two_threads() {
        let fake = Fake::start(Fault::None);
        let mut args = ping_args(fake.addr);
        args.rate = Some(2000);
        args.threads = 2;
        let o = ping::run(&args).unwrap();
        assert_eq!(o.wrong.count, 0, "{:?}", o.wrong.samples);
        // 2000/s for 0.3 s: about 600 pings. Allow for a slow test machine: a late start of
        // the window, and an open loop catching up on pings scheduled before it.
        assert!((200..=900).contains(&o.sent), "{}", o.sent);
    }

    #[test]
    fn echo_mode_expects_the_request_back_and_skips_joining() {
        let fake = Fake::start(Fault::Echo);
        let mut args = ping_args(fake.addr);
        args.echo = true;
        let o = ping::run(&args).unwrap();
        assert_eq!(o.wrong.count, 0, "{:?}", o.wrong.samples);
        assert!(o.replies > 100);
        // A real server answers a ping with a list, not an echo: echo mode must say so.
        let fake = Fake::start(Fault::None);
        let mut args = ping_args(fake.addr);
        args.echo = true;
        let o = ping::run(&args).unwrap();
        assert!(o.wrong.count > 0);
    }

    #[test]
    fn setup_fails_loudly_when_nothing_listens() {
        let addr = {
            let fake = Fake::start(Fault::None);
            fake.addr
        };
        let err = ping::run(&ping_args(addr)).err().expect("must fail");
        assert!(err.contains("refused") || err.contains("no"), "{err}");
    }

    #[test]
    fn echo_flood_stops_when_nothing_listens() {
        let addr = {
            let fake = Fake::start(Fault::Echo);
            fake.addr
        };
        let mut args = ping_args(addr);
        args.echo = true;
        args.duration = 30.0;
        let began = std::time::Instant::now();
        let err = ping::run(&args).err().expect("must fail");
        assert!(err.contains("refused"), "{err}");
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "stopped early, not at the end"
        );
    }

    #[test]
    fn lifecycles_complete_and_start_messages_are_checked() {
        let fake = Fake::start(Fault::None);
        let o = lifecycle::run(&lifecycle_args(fake.addr)).unwrap();
        assert_eq!(o.failed.count, 0, "{:?}", o.failed.samples);
        assert_eq!(o.started, 40);
        assert_eq!(o.completed, 40);
        assert!(o.duplicates > 0, "the fake sends each start message twice");
        assert_eq!(o.latency.count(), 40);
    }

    #[test]
    fn lifecycle_notices_a_wrong_start_message() {
        let fake = Fake::start(Fault::BadStart);
        let mut args = lifecycle_args(fake.addr);
        args.count = 5;
        let o = lifecycle::run(&args).unwrap();
        assert_eq!(o.completed, 0);
        assert_eq!(o.failed.count, 5);
        assert!(
            o.failed.samples[0].contains("step Start"),
            "{:?}",
            o.failed.samples
        );
    }

    #[test]
    fn remote_targets_are_refused() {
        let args = ping_args("192.0.2.1:4000".parse().unwrap());
        assert!(ping::run(&args).err().unwrap().contains("loopback"));
        let args = lifecycle_args("192.0.2.1:4000".parse().unwrap());
        assert!(lifecycle::run(&args).err().unwrap().contains("loopback"));
    }
}
