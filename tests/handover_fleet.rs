//! Hot restart in a fleet, with real processes and a real `redis-server` (one per test, on a
//! free port; skipped, as in `tests/fleet.rs`, when it is not installed and `REDIS_REQUIRED` is
//! not `1`).
//!
//! Server A (in a fleet, serving hand-overs on its control socket) hosts a public lobby and a
//! plain session; server B, in the same fleet, lists A's lobby. What these tests prove:
//!
//! - **Same fleet**: a successor A' started with A's flags and `--takeover` goes on as A's node.
//!   A exits 0; A's node id, its record, its name claims and its sessions' hash are in Redis
//!   before, all through and after the hand-over, under the same id; B lists the lobby all
//!   through (watched every 50 ms on B's `/lobbies`: once seen, never gone); a host of either
//!   name on B gets `error:session_exists`; the lobby's players are still in it on A'. A' then
//!   stops with SIGTERM: its node leaves Redis at once, and B stops listing the lobby.
//! - **Another fleet** (`--directory-prefix` changed): A' does not adopt A's node; it registers
//!   a node of its own under its prefix and claims and publishes the sessions there. A, told so
//!   by A''s `ready adopted=0`, takes its records out of its fleet before it exits (as at any
//!   stop, rather than leave them for the TTL, 6 s): B stops listing the lobby within a poll,
//!   and the names are free in A's fleet.
//!
//! Every wait is for a condition and bounded; the watch across the hand-over ends a fixed time
//! after A' registered (enough for B to poll it twice).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::binary::{self, Running};
use common::redis::Redis;
use common::Player;

/// How long a test waits for a process, Redis or a listing to do what it must.
const WAIT: Duration = Duration::from_secs(20);
/// The binary's TTL of every fleet record (not a flag: `FleetConfig::new`).
const TTL: Duration = Duration::from_secs(6);
/// How long the watch goes on once the successor registered: two of B's polls (1 s each), and
/// one of the successor's refreshes (every TTL / 3).
const WATCH_AFTER: Duration = Duration::from_secs(3);

/// A free UDP port on 127.0.0.1: the server binds it and names it as its public address.
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

/// A fleet server's flags, as a list; a successor gets the same (with `--http` at the address
/// the first one bound) plus `--takeover`.
fn fleet_args(redis: &Redis, port: u16, region: &str, http: &str, control: &Path) -> Vec<String> {
    let port = port.to_string();
    [
        "--bind",
        "127.0.0.1",
        "--port",
        &port,
        "--workers",
        "2",
        "--http",
        http,
        "--directory",
        &redis.url(),
        "--public-address",
        &format!("127.0.0.1:{port}"),
        "--region",
        region,
        "--control-socket",
        control.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

fn start(args: &[String]) -> Running {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    binary::start(&args)
}

/// Server A: a fleet server serving hand-overs at `dir`, and its flags (`--http` as bound).
fn server_a(redis: &Redis, dir: &Path) -> (Running, Vec<String>) {
    let port = free_port();
    let control = dir.join("control.sock");
    let a = start(&fleet_args(redis, port, "eu", "127.0.0.1:0", &control));
    let http = a.metrics.expect("an HTTP address").to_string();
    (a, fleet_args(redis, port, "eu", &http, &control))
}

/// Server B: a fleet server watched through its `/lobbies`; the address of its HTTP listener.
fn server_b(redis: &Redis, dir: &Path) -> (Running, SocketAddr) {
    let control = dir.join("b-control.sock");
    let b = start(&fleet_args(
        redis,
        free_port(),
        "us",
        "127.0.0.1:0",
        &control,
    ));
    let http = b.metrics.expect("an HTTP address");
    (b, http)
}

/// Public lobby `Room1` of game `cards` on the server at `addr`: host Ana, then Bea joined.
fn public_lobby(addr: SocketAddr) -> (Player, Player) {
    let ana = host(addr, "Room1", "Ana");
    assert_eq!(ana.request("a:1:Room1:cards:1:1.0:Draft:hi"), "a:1:ok");
    let bea = Player::new(addr);
    assert_eq!(bea.request("c:Room1:Bea"), "i:Ana:Bea");
    assert_eq!(ana.recv(), "i:Ana:Bea");
    (ana, bea)
}

/// The body of `GET /lobbies?game=cards` at `http`.
fn lobbies(http: SocketAddr) -> String {
    let mut stream = TcpStream::connect(http).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "GET /lobbies?game=cards HTTP/1.0\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").expect("an HTTP reply");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_string()
}

fn lists(body: &str, session: &str) -> bool {
    body.contains(&format!("\"session\":\"{session}\""))
}

/// Waits, at most `within`, until `done` holds.
fn wait_for(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Hosts `session` as `host`: in a fleet, the first `h:` for a new name goes unanswered while
/// the name is claimed in Redis, so it is re-sent every 0.5 s, as the plugin does.
fn host(server: SocketAddr, session: &str, host: &str) -> Player {
    let player = Player::new(server);
    let got = player.retry(&format!("h:{session}:{host}:4"), |_| true);
    assert_eq!(got, format!("i:{host}"));
    player
}

/// Redis, read directly.
struct Keys {
    con: redis::Connection,
    prefix: &'static str,
}

impl Keys {
    fn new(redis: &Redis, prefix: &'static str) -> Self {
        let con = redis::Client::open(redis.url())
            .and_then(|c| c.get_connection_with_timeout(WAIT))
            .expect("a connection to the test's Redis");
        Self { con, prefix }
    }

    fn get(&mut self, key: &str) -> Option<String> {
        redis::cmd("GET")
            .arg(format!("{}{key}", self.prefix))
            .query(&mut self.con)
            .unwrap()
    }

    fn exists(&mut self, key: &str) -> bool {
        redis::cmd("EXISTS")
            .arg(format!("{}{key}", self.prefix))
            .query::<i64>(&mut self.con)
            .unwrap()
            == 1
    }

    /// The node ids in the node set.
    fn nodes(&mut self) -> Vec<String> {
        redis::cmd("ZRANGE")
            .arg(format!("{}nodes", self.prefix))
            .arg(0)
            .arg(-1)
            .query(&mut self.con)
            .unwrap()
    }

    /// The sessions in node `node`'s hash (without its change count `#`).
    fn sessions(&mut self, node: &str) -> Vec<String> {
        let mut names: Vec<String> = redis::cmd("HKEYS")
            .arg(format!("{}sessions:{node}", self.prefix))
            .query(&mut self.con)
            .unwrap();
        names.retain(|n| n != "#");
        names.sort();
        names
    }

    /// Node `node`'s change count (field `#` of its sessions hash), which the others compare
    /// to decide whether to read the hash again.
    fn change_count(&mut self, node: &str) -> i64 {
        redis::cmd("HGET")
            .arg(format!("{}sessions:{node}", self.prefix))
            .arg("#")
            .query::<Option<i64>>(&mut self.con)
            .unwrap()
            .unwrap_or(0)
    }

    /// The node whose record names `record`, once there is one (bounded).
    fn node_with_record(&mut self, record: &str) -> String {
        let mut found = None;
        wait_for(WAIT, &format!("a node with record {record}"), || {
            found = self
                .nodes()
                .into_iter()
                .find(|id| self.get(&format!("node:{id}")).as_deref() == Some(record));
            found.is_some()
        });
        found.unwrap()
    }
}

/// What a watch across the hand-over saw.
#[derive(Debug, Default)]
struct Watched {
    /// B's listings read, and those without the lobby (when, after the watch began).
    listings: usize,
    unlisted: Vec<Duration>,
    /// Reads of Redis, how many found A's node record, a claim or a session not A's, and
    /// the first few of those.
    reads: usize,
    lapses: usize,
    first_lapses: Vec<(Duration, String)>,
}

/// Watches, until `stop`: B's listing of `session` every 50 ms, and in Redis, as often as it
/// answers (a gap of a millisecond counts), node `node`'s record, the claims of `names` and
/// their fields in the node's sessions hash (what B reads). The lobby must be listed at the
/// first look.
fn watch(
    redis: &Redis,
    node: &str,
    names: &[&str],
    b_http: SocketAddr,
    session: &str,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Watched> {
    let mut keys = Keys::new(redis, "rabid:");
    let (node, session) = (node.to_string(), session.to_string());
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    // One round trip: EXISTS node:<node>, then GET name:<name> and HEXISTS of it per name.
    let mut read = redis::pipe();
    read.cmd("EXISTS").arg(format!("rabid:node:{node}"));
    for name in &names {
        read.cmd("GET").arg(format!("rabid:name:{name}"));
        read.cmd("HEXISTS")
            .arg(format!("rabid:sessions:{node}"))
            .arg(name);
    }
    thread::spawn(move || {
        let began = Instant::now();
        let mut seen = Watched::default();
        let mut next_listing = began;
        while !stop.load(Ordering::Relaxed) {
            if Instant::now() >= next_listing {
                next_listing += Duration::from_millis(50);
                seen.listings += 1;
                if !lists(&lobbies(b_http), &session) {
                    assert!(seen.listings > 1, "the watch began with {session} unlisted");
                    seen.unlisted.push(began.elapsed());
                }
            }
            seen.reads += 1;
            let values: Vec<redis::Value> = read.query(&mut keys.con).unwrap();
            let (exists, per_name) = values.split_first().unwrap();
            let mut lapse = Vec::new();
            if redis::from_redis_value::<i64>(exists.clone()).unwrap() != 1 {
                lapse.push(format!("node:{node} gone"));
            }
            for (name, pair) in names.iter().zip(per_name.chunks(2)) {
                let owner: Option<String> = redis::from_redis_value(pair[0].clone()).unwrap();
                if owner.as_deref() != Some(node.as_str()) {
                    lapse.push(format!("name:{name} held by {owner:?}"));
                }
                if redis::from_redis_value::<i64>(pair[1].clone()).unwrap() != 1 {
                    lapse.push(format!("{name} not in sessions:{node}"));
                }
            }
            if !lapse.is_empty() {
                seen.lapses += 1;
                if seen.first_lapses.len() < 10 {
                    seen.first_lapses.push((began.elapsed(), lapse.join(", ")));
                }
            }
        }
        seen
    })
}

#[test]
fn a_successor_in_the_same_fleet_goes_on_as_the_same_node_and_b_never_stops_listing() {
    let test = "a_successor_in_the_same_fleet_goes_on_as_the_same_node_and_b_never_stops_listing";
    let Some(redis) = Redis::start(test) else {
        return;
    };
    let dir = binary::temp_dir("handover-fleet-same");
    let (b, b_http) = server_b(&redis, &dir);
    let (a, args) = server_a(&redis, &dir);
    let addr = a.addr;

    // A public lobby with two players, and a plain session.
    let (ana, _bea) = public_lobby(addr);
    let _pat = host(addr, "Priv1", "Pat");

    // In Redis: A's node, its record, its claims, its hash; B lists the lobby, at A.
    let mut keys = Keys::new(&redis, "rabid:");
    let node = keys.node_with_record(&format!("127.0.0.1|{}|eu", addr.port()));
    wait_for(WAIT, "A's sessions in its hash", || {
        keys.sessions(&node) == ["Priv1", "Room1"]
    });
    assert_eq!(keys.get("name:Room1").as_deref(), Some(node.as_str()));
    assert_eq!(keys.get("name:Priv1").as_deref(), Some(node.as_str()));
    wait_for(WAIT, "B lists A's lobby", || {
        lists(&lobbies(b_http), "Room1")
    });
    let listing = lobbies(b_http);
    assert!(
        listing.contains(&format!(
            "\"server\":\"127.0.0.1:{}\",\"region\":\"eu\"",
            addr.port()
        )),
        "{listing}"
    );

    // The hand-over, watched from B and in Redis.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch(
        &redis,
        &node,
        &["Room1", "Priv1"],
        b_http,
        "Room1",
        stop.clone(),
    );
    let began = Instant::now();
    let successor = start(&[args.clone(), vec!["--takeover".into()]].concat());
    assert_eq!(successor.addr, addr);
    let handed = a.wait_line("handed over to the successor", WAIT);
    assert!(handed.contains(&format!("node {node} ")), "{handed}");
    let status = a.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "A exits 0: {status}");
    let registered = successor.wait_line("fleet: connected to Redis", WAIT);
    assert!(
        registered.contains(&format!("node {node} registered")),
        "A' goes on as A's node: {registered}"
    );
    let registered_after = began.elapsed();
    let watch_end = Instant::now() + WATCH_AFTER;
    while Instant::now() < watch_end {
        thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.join().expect("the watch");
    eprintln!(
        "A' registered {registered_after:?} after it started; watched {} listings on B, {} \
         reads of Redis",
        seen.listings, seen.reads
    );
    assert!(seen.listings > 20 && seen.reads > 1000, "{seen:?}");
    assert!(
        seen.unlisted.is_empty(),
        "B stopped listing Room1: {seen:?}"
    );
    assert_eq!(
        seen.lapses, 0,
        "A's node, claims or sessions lapsed: {seen:?}"
    );

    // After: the same node, its record, its claims and its sessions, and no other node.
    assert_eq!(
        keys.get(&format!("node:{node}")),
        Some(format!("127.0.0.1|{}|eu", addr.port()))
    );
    let mut nodes = keys.nodes();
    nodes.retain(|n| *n != node);
    assert_eq!(
        nodes.len(),
        1,
        "A' registered no node of its own: {nodes:?}"
    );
    assert_eq!(keys.sessions(&node), ["Priv1", "Room1"]);
    // The names are still taken fleet-wide, by A's node.
    let bob = Player::new(b.addr);
    for name in ["Room1", "Priv1"] {
        let got = bob.retry(&format!("h:{name}:Bob:4"), |_| true);
        assert_eq!(got, "error:session_exists", "{name} on B");
        assert_eq!(
            keys.get(&format!("name:{name}")).as_deref(),
            Some(node.as_str())
        );
    }
    // The lobby's players are still in it, on A'.
    assert_eq!(ana.request("p:Room1:Ana"), "i:Ana:Bea");
    assert!(lists(&lobbies(b_http), "Room1"));

    // A' stops as any server does: its node leaves Redis at once; B stops listing the lobby.
    let status = successor.stop();
    assert!(status.success(), "{status}");
    assert!(!keys.exists(&format!("node:{node}")), "A's node record");
    assert!(!keys.exists(&format!("sessions:{node}")), "A's sessions");
    assert!(!keys.nodes().contains(&node), "A's node in the node set");
    assert_eq!(keys.get("name:Room1"), None);
    assert_eq!(keys.get("name:Priv1"), None);
    wait_for(WAIT, "B stops listing Room1", || {
        !lists(&lobbies(b_http), "Room1")
    });
    assert!(b.stop().success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_successor_in_another_fleet_registers_a_node_of_its_own_and_the_old_one_leaves() {
    let test = "a_successor_in_another_fleet_registers_a_node_of_its_own_and_the_old_one_leaves";
    let Some(redis) = Redis::start(test) else {
        return;
    };
    let dir = binary::temp_dir("handover-fleet-other");
    let (b, b_http) = server_b(&redis, &dir);
    let (a, args) = server_a(&redis, &dir);
    let addr = a.addr;
    let (ana, _bea) = public_lobby(addr);
    let mut keys = Keys::new(&redis, "rabid:");
    let record = format!("127.0.0.1|{}|eu", addr.port());
    let node = keys.node_with_record(&record);
    wait_for(WAIT, "A's lobby in its hash", || {
        keys.sessions(&node) == ["Room1"]
    });
    wait_for(WAIT, "B lists A's lobby", || {
        lists(&lobbies(b_http), "Room1")
    });

    // The successor joins another fleet in the same Redis.
    let mut other_args = args.clone();
    other_args.extend(["--directory-prefix", "other:", "--takeover"].map(String::from));
    let successor = start(&other_args);
    let status = a.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "A exits 0: {status}");
    let exited = Instant::now();
    let registered = successor.wait_line("fleet: connected to Redis", WAIT);
    assert!(
        !registered.contains(&node),
        "A' must not go on as A's node in another fleet: {registered}"
    );

    // A' is a new node of the other fleet, holding the session taken over.
    let mut other = Keys::new(&redis, "other:");
    let new_node = other.node_with_record(&record);
    assert_ne!(new_node, node);
    wait_for(WAIT, "A's lobby in A''s hash", || {
        other.sessions(&new_node) == ["Room1"]
    });
    assert_eq!(other.get("name:Room1").as_deref(), Some(new_node.as_str()));
    assert_eq!(ana.request("p:Room1:Ana"), "i:Ana:Bea");

    // A left its fleet as it stopped, as at any stop (A' said it did not adopt the node): its
    // records are gone, B stops listing the lobby at once, and the name is free there.
    // (A took them out before it exited: no waiting for a TTL.)
    assert!(!keys.exists(&format!("node:{node}")));
    assert!(!keys.exists(&format!("sessions:{node}")));
    assert_ne!(keys.get("name:Room1").as_deref(), Some(node.as_str()));
    wait_for(WAIT, "B stops listing Room1", || {
        !lists(&lobbies(b_http), "Room1")
    });
    let unlisted = exited.elapsed();
    eprintln!("after A exited, B unlisted its lobby in {unlisted:?}");
    assert!(
        unlisted < TTL / 2,
        "B listed A's lobby {unlisted:?} after A exited"
    );
    let _bob = host(b.addr, "Room1", "Bob");
    let b_node = keys.node_with_record(&format!("127.0.0.1|{}|us", b.addr.port()));
    assert_eq!(keys.get("name:Room1"), Some(b_node));

    let status = successor.stop();
    assert!(status.success(), "{status}");
    assert!(!other.exists(&format!("node:{new_node}")));
    assert!(b.stop().success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_successor_with_another_region_goes_on_as_the_same_node_under_its_new_record() {
    let test = "a_successor_with_another_region_goes_on_as_the_same_node_under_its_new_record";
    let Some(redis) = Redis::start(test) else {
        return;
    };
    let dir = binary::temp_dir("handover-fleet-region");
    let (b, b_http) = server_b(&redis, &dir);
    let (a, args) = server_a(&redis, &dir);
    let addr = a.addr;
    let ana = host(addr, "Room1", "Ana");
    assert_eq!(ana.request("a:1:Room1:cards:1:1.0:Draft:hi"), "a:1:ok");
    let mut keys = Keys::new(&redis, "rabid:");
    let node = keys.node_with_record(&format!("127.0.0.1|{}|eu", addr.port()));
    wait_for(WAIT, "B lists A's lobby", || {
        lists(&lobbies(b_http), "Room1")
    });
    let count = keys.change_count(&node);
    assert!(count >= 1, "A published its hash: {count}");

    // The same fleet, another --region: the node is the successor's, its record rewritten.
    let mut moved = args.clone();
    let region = moved.iter().position(|a| a == "--region").unwrap() + 1;
    moved[region] = "eu-west".into();
    moved.push("--takeover".into());
    let successor = start(&moved);
    assert_eq!(a.wait_exit(WAIT).code(), Some(0));
    let record = format!("127.0.0.1|{}|eu-west", addr.port());
    wait_for(WAIT, "the node's record in its new region", || {
        keys.get(&format!("node:{node}")).as_deref() == Some(record.as_str())
    });
    assert_eq!(
        keys.node_with_record(&record),
        node,
        "one node, the same id"
    );
    assert_eq!(keys.get("name:Room1").as_deref(), Some(node.as_str()));
    // The successor's rewrite of the hash goes on counting: a count back at one could be the
    // very count B last read, and B would never read the hash again.
    assert!(
        keys.change_count(&node) > count,
        "the change count went back: {} after {count}",
        keys.change_count(&node)
    );
    wait_for(WAIT, "B lists the lobby in its new region", || {
        lobbies(b_http).contains("\"region\":\"eu-west\"")
    });
    assert_eq!(ana.request("p:Room1:Ana"), "i:Ana");
    assert!(successor.stop().success());
    assert!(b.stop().success());
    let _ = std::fs::remove_dir_all(dir);
}
