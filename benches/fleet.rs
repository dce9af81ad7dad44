//! The fleet directory's cost (`cargo bench --bench fleet`): listing latency and ping rate on a
//! server with the directory off and on (in a fleet whose other server holds 1 000 public
//! lobbies), side by side, and the Redis commands each server sends per second.
//!
//! Needs `redis-server` (it starts its own on a free loopback port, stopped by its process id);
//! without it, it says so and exits. Closed loop, one client socket: a ping's rate is one over its
//! round trip, which is what a Redis call on the ping path would show first.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rabid_punch::runtime::fleet::FleetConfig;
use rabid_punch::runtime::{Server, ServerConfig};

const LOBBIES: usize = 1000;
const MEASURE: Duration = Duration::from_secs(1);
/// Turns of each measurement, interleaved off and on.
const ROUNDS: usize = 3;
const COMMANDS_WINDOW: Duration = Duration::from_secs(10);

struct Redis(Child, u16);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis() -> Option<Redis> {
    let port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let redis = Redis(child, port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let mut buf = [0u8; 8];
            if s.write_all(b"PING\r\n").is_ok() && s.read(&mut buf).is_ok_and(|n| n > 0) {
                return Some(redis);
            }
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn server(fleet: Option<(&Redis, &str)>) -> Server {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = ServerConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], port)),
        workers: 1,
        fleet: fleet.map(|(redis, region)| {
            let mut f =
                FleetConfig::new(&format!("redis://127.0.0.1:{}", redis.1), "127.0.0.1", port);
            f.region = region.into();
            f
        }),
        ..ServerConfig::default()
    };
    config.core.player_timeout = Duration::from_secs(600);
    config.core.caps.max_sessions_per_ip = 100_000;
    Server::start(config).expect("start a server")
}

fn socket(server: &Server) -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.connect(server.local_addr()).unwrap();
    s
}

fn ask(s: &UdpSocket, request: &str) -> String {
    let mut buf = [0u8; 2048];
    s.send(request.as_bytes()).unwrap();
    let n = s.recv(&mut buf).expect("a reply");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// `LOBBIES` public lobbies of game `cards` on `server`, one host socket for all.
fn fill(server: &Server) {
    let s = socket(server);
    for i in 0..LOBBIES {
        assert_eq!(ask(&s, &format!("h:L{i}:Host:4")), "i:Host");
        let reply = ask(&s, &format!("a:1:L{i}:cards:1:1.0:Draft:bench lobby"));
        assert_eq!(reply, "a:1:ok");
    }
}

/// Round trips of `request` for `MEASURE`: their round trip times in µs.
fn closed_loop(s: &UdpSocket, request: &str, check: impl Fn(&str) -> bool) -> Vec<f64> {
    let mut times = Vec::new();
    let start = Instant::now();
    while start.elapsed() < MEASURE {
        let t = Instant::now();
        let reply = ask(s, request);
        times.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(check(&reply), "{reply}");
    }
    times
}

/// What one server is measured with: a pinging session, and the page that lists `listed`.
struct Probe {
    socket: UdpSocket,
    page: String,
    want: String,
}

impl Probe {
    fn new(server: &Server, listed: usize) -> Self {
        let socket = socket(server);
        assert_eq!(ask(&socket, "h:Pinger:P:4"), "i:P");
        let page = format!("b:1:cards::::n::{}", "x".repeat(400));
        let want = format!("b:1:{listed}:");
        // Wait (bounded) until the listing shows what it should.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ask(&socket, &page).starts_with(&want) {
            assert!(Instant::now() < deadline, "never listed {listed}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { socket, page, want }
    }

    fn listing(&self) -> Vec<f64> {
        closed_loop(&self.socket, &self.page, |r| r.starts_with(&self.want))
    }

    fn ping(&self) -> Vec<f64> {
        closed_loop(&self.socket, "p:Pinger:P", |r| r == "i:P")
    }
}

fn report(label: &str, what: &str, mut times: Vec<f64>) {
    let total: f64 = times.iter().sum();
    times.sort_by(f64::total_cmp);
    println!(
        "{label:<14} {what:<8} {:>7.0}/s  median {:>6.1} us  p99 {:>6.1} us",
        times.len() as f64 / (total / 1e6),
        times[times.len() / 2],
        times[times.len() * 99 / 100]
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benches; this one has nothing to list
    }
    let Some(redis) = redis() else {
        println!("fleet bench: skipped, redis-server is not installed or did not start");
        return;
    };
    // Both setups run at once, so that each is measured on the same busy machine, in turns:
    // off, a server alone with its own 1 000 lobbies (and an idle neighbour, as "on" has);
    // on, a server whose listing holds another fleet server's 1 000 lobbies.
    let (alone, neighbour) = (server(None), server(None));
    fill(&alone);
    let a = server(Some((&redis, "eu")));
    let b = server(Some((&redis, "us")));
    fill(&b);
    let (off, on) = (Probe::new(&alone, LOBBIES), Probe::new(&a, LOBBIES));
    let (mut list_off, mut list_on, mut ping_off, mut ping_on) = (vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        list_off.extend(off.listing());
        list_on.extend(on.listing());
        ping_off.extend(off.ping());
        ping_on.extend(on.ping());
    }
    let page = "b:1: page";
    report("directory off", page, list_off);
    report("directory on", page, list_on);
    report("directory off", "ping", ping_off);
    report("directory on", "ping", ping_on);
    drop(neighbour);
    // Redis commands at rest, per server, over a window.
    let count = |s: &Server| s.totals().runtime.fleet_redis_commands;
    let (a0, b0, t0) = (count(&a), count(&b), Instant::now());
    std::thread::sleep(COMMANDS_WINDOW);
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "redis commands/s at rest: {:.0} by the server holding {LOBBIES} lobbies, {:.0} by the \
         one reading them",
        (count(&b) - b0) as f64 / secs,
        (count(&a) - a0) as f64 / secs
    );
    alone.shutdown();
    a.shutdown();
    b.shutdown();
}
