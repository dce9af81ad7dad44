//! Abuse resistance over real UDP: a forged-source reflection attack is held to the documented
//! bound, floods leave memory bounded, and legitimate sessions complete through it all.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{name, Player};
use rabid_punch::budget::BudgetConfig;
use rabid_punch::core::CoreConfig;
use rabid_punch::runtime::{Server, ServerConfig};

fn server(core: CoreConfig) -> Server {
    Server::start(ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        workers: 2,
        core,
        ..ServerConfig::default()
    })
    .expect("start the server")
}

/// Counts every byte arriving on `sockets` until `stop`, from its own thread.
fn count_received(
    sockets: &[UdpSocket],
    stop: &Arc<AtomicBool>,
) -> (Arc<AtomicU64>, Vec<std::thread::JoinHandle<()>>) {
    let total = Arc::new(AtomicU64::new(0));
    let threads = sockets
        .iter()
        .map(|s| {
            let socket = s.try_clone().unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let (total, stop) = (total.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(len) = socket.recv(&mut buf) {
                        total.fetch_add(len as u64, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    (total, threads)
}

/// Everything an attacker forging the victim's address could send, round after round: hosting
/// and filling 12-player sessions, starting them, pinging starting sessions, joining full ones,
/// and garbage. Returns the bytes sent.
fn attack(server: SocketAddr, victims: &[UdpSocket], duration: Duration, rate: Option<u32>) -> u64 {
    let started = Instant::now();
    let gap = rate.map(|r| Duration::from_secs(1) / r);
    let mut sent = 0u64;
    let mut round = 0u32;
    let mut next = Instant::now();
    let mut send = |socket: &UdpSocket, text: &str| {
        if let Some(gap) = gap {
            while Instant::now() < next {
                std::hint::spin_loop();
            }
            next += gap;
        }
        if socket.send_to(text.as_bytes(), server).is_ok() {
            sent += text.len() as u64;
        }
    };
    while started.elapsed() < duration {
        let session = format!("V{round}");
        send(&victims[0], &format!("h:{session}:{}:12", name(0)));
        for (i, v) in victims.iter().enumerate().skip(1).take(11) {
            send(v, &format!("c:{session}:{}", name(i)));
        }
        send(&victims[12], &format!("c:{session}:Late"));
        send(&victims[0], &format!("s:{session}:{}", name(0)));
        for (i, v) in victims.iter().enumerate().take(12) {
            send(v, &format!("p:{session}:{}", name(i)));
        }
        send(&victims[13], "garbage garbage garbage");
        round += 1;
    }
    sent
}

fn reflection_run(rate: Option<u32>) -> (u64, u64, Duration) {
    let server = server(CoreConfig {
        // Short, so that the timeouts of the forged sessions land inside the measured window.
        player_timeout: Duration::from_secs(1),
        ..CoreConfig::default()
    });
    let victims: Vec<UdpSocket> = (0..14)
        .map(|_| UdpSocket::bind("127.0.0.2:0").expect("bind on 127.0.0.2"))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let (received, readers) = count_received(&victims, &stop);
    let started = Instant::now();
    let sent = attack(server.local_addr(), &victims, Duration::from_secs(3), rate);
    // Re-sends and timeouts go on after the last forged request: measure them too.
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    // Taken once the readers stopped counting, so that every counted byte lies inside it.
    let window = started.elapsed();
    server.shutdown();
    (sent, received.load(Ordering::Relaxed), window)
}

#[test]
fn a_forged_source_attack_gets_at_most_3x_plus_the_documented_allowance() {
    let budget = BudgetConfig::default();
    for rate in [Some(300), Some(3000), None] {
        let (sent, received, window) = reflection_run(rate);
        let allowance = budget.burst + budget.refill_per_sec * window.as_millis() as u64 / 1000;
        let bound = budget.earn_factor * sent + allowance;
        eprintln!(
            "reflection at {}: attacker sent {sent} B, victim got {received} B \
             (ratio {:.2}, {:.0} B/s over {:.1} s); bound {bound} B",
            rate.map_or("full speed".to_string(), |r| format!("{r} dg/s")),
            received as f64 / sent as f64,
            received as f64 / window.as_secs_f64(),
            window.as_secs_f64()
        );
        assert!(sent > 0);
        assert!(
            received <= bound,
            "victim got {received} B > bound {bound} B"
        );
    }
}

#[test]
fn a_session_flood_leaves_memory_bounded_and_a_real_session_completes() {
    let server = server(CoreConfig::default());
    let addr = server.local_addr();
    let rss_before = resident_bytes();
    let stop = Arc::new(AtomicBool::new(false));
    let flooders: Vec<_> = (3..7u8)
        .map(|last| {
            let socket = UdpSocket::bind((std::net::Ipv4Addr::new(127, 0, 0, last), 0)).unwrap();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u32;
                let mut pace = Pace::per_second(15_000);
                while n < 250_000 && !stop.load(Ordering::Relaxed) {
                    pace.wait();
                    let _ = socket.send_to(format!("h:F{n}:Flooder:12").as_bytes(), addr);
                    n += 1;
                }
                n
            })
        })
        .collect();
    // Meanwhile, a real 4-player session runs from start to finish, re-sending as the real
    // client does: under a flood, datagrams are lost for everybody.
    real_session(addr, "Real");
    let attempts: u32 = flooders.into_iter().map(|t| t.join().unwrap()).sum();
    stop.store(true, Ordering::Relaxed);
    let totals = server.totals();
    let growth = resident_bytes().saturating_sub(rss_before);
    eprintln!(
        "session flood: {attempts} attempts, {} received, {} sessions created, {} dropped at a cap, \
         {} dropped at full queues; resident memory grew {} KiB",
        totals.runtime.datagrams_in,
        totals.shard.sessions_created,
        totals.shard.hosts_refused_by_cap,
        totals.runtime.dropped_queue_full,
        growth / 1024
    );
    assert_eq!(attempts, 1_000_000);
    // 4 flooding addresses x 256 sessions each, at most; memory bounded accordingly.
    assert!(
        totals.runtime.sessions <= 4 * 256 + 1,
        "{} sessions open",
        totals.runtime.sessions
    );
    assert!(
        totals.shard.hosts_refused_by_cap > 0,
        "the per-IP cap never applied"
    );
    assert!(growth < 64 << 20, "resident memory grew by {growth} bytes");
    server.shutdown();
}

#[test]
fn a_garbage_flood_does_not_stop_a_real_session() {
    let server = server(CoreConfig::default());
    let addr = server.local_addr();
    let flood = std::thread::spawn(move || {
        let socket = UdpSocket::bind("127.0.0.9:0").unwrap();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut pace = Pace::per_second(60_000);
        for i in 0..200_000u32 {
            pace.wait();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|j| (seed >> (j % 8 * 8)) as u8 ^ i as u8)
                .collect();
            let _ = socket.send_to(&bytes, addr);
        }
    });
    real_session(addr, "Calm");
    flood.join().unwrap();
    // Still up and answering.
    Player::new(addr).retry("p:Calm:P0", |r| r == "error:session_non_existent");
    server.shutdown();
}

#[test]
fn a_12_player_lobby_from_one_address_pings_and_starts_without_a_drop() {
    let server = server(CoreConfig::default());
    let addr = server.local_addr();
    let players: Vec<Player> = (0..12).map(|_| Player::new(addr)).collect();
    assert_eq!(players[0].request("h:Big:P0:12"), "i:P0");
    for i in 1..12 {
        players[i].send(&format!("c:Big:{}", name(i)));
        for p in &players[..=i] {
            assert!(p.recv().starts_with("i:P0"));
        }
    }
    // Everybody pings twice a second for 6 s, then the host starts 1 s after the last join.
    let all: Vec<String> = (0..12).map(name).collect();
    let list = format!("i:{}", all.join(":"));
    for _ in 0..12 {
        let tick = Instant::now();
        for (i, p) in players.iter().enumerate() {
            assert_eq!(p.request(&format!("p:Big:{}", name(i))), list);
        }
        std::thread::sleep(Duration::from_millis(500).saturating_sub(tick.elapsed()));
    }
    players[0].send("s:Big:P0");
    // Nobody confirms, as the Godot client: all 8 copies reach every player.
    for p in &players {
        for _ in 0..8 {
            assert!(p.recv().starts_with("s:"));
        }
    }
    let totals = server.shutdown();
    assert_eq!(totals.runtime.dropped_budget, 0);
}

/// A 4-player session from host to start, each request re-sent every 0.5 s until answered, as
/// the Godot client does.
fn real_session(addr: SocketAddr, session: &str) {
    let players: Vec<Player> = (0..4).map(|_| Player::new(addr)).collect();
    players[0].retry(&format!("h:{session}:P0:4"), |r| r.starts_with("i:P0"));
    for (i, p) in players.iter().enumerate().skip(1) {
        let me = format!(":{}", name(i));
        p.retry(&format!("c:{session}:{}", name(i)), |r| {
            r.starts_with("i:") && r.contains(&me)
        });
    }
    players[0].retry(&format!("s:{session}:P0"), |r| r.starts_with("s:"));
    for (i, p) in players.iter().enumerate().skip(1) {
        // A player that lost every copy of its start message gets it by pinging.
        p.retry(&format!("p:{session}:{}", name(i)), |r| r.starts_with("s:"));
    }
}

/// Paces a flood: 60 000 datagrams/s in all is far more than real clients send, yet a debug
/// build on a loaded 2-core CI box keeps up, so the test measures the limits and not the
/// kernel dropping everybody's datagrams.
struct Pace {
    gap: Duration,
    next: Instant,
}

impl Pace {
    fn per_second(rate: u32) -> Self {
        Self {
            gap: Duration::from_secs(1) / rate,
            next: Instant::now(),
        }
    }

    fn wait(&mut self) {
        let now = Instant::now();
        if self.next > now {
            std::thread::sleep(self.next - now);
        }
        self.next += self.gap;
    }
}

/// Resident memory of this process, from /proc (0 where there is none).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}
