//! The requests rabid-flood sends and the exact replies it expects, written from
//! `protocol.md` independently of the server's own code, so a server bug cannot hide behind a
//! shared formatter.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Characters of a session name taken by the run prefix; the rest numbers sessions.
const RUN_CHARS: usize = 4;
/// Characters numbering sessions: 36^6 (about 2 billion) sessions per run.
const INDEX_CHARS: usize = 6;
/// Sessions one run can name.
pub const MAX_SESSIONS: u64 = 36u64.pow(INDEX_CHARS as u32);

/// Names for one run. Session names start with a per-run prefix so a run never collides with
/// sessions a previous run left on the server (they live until their players time out).
pub struct Names {
    prefix: String,
}

impl Names {
    /// A prefix from the clock and the process id: distinct for runs that follow each other.
    pub fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seed = nanos ^ (u64::from(std::process::id()) << 32);
        Self::with_seed(seed)
    }

    pub fn with_seed(seed: u64) -> Self {
        // Mix so that close seeds give unrelated prefixes (splitmix64 finaliser).
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self {
            prefix: base36(z % 36u64.pow(RUN_CHARS as u32), RUN_CHARS),
        }
    }

    /// Session `index` of this run: always 10 ASCII letters or digits, the protocol's maximum.
    pub fn session(&self, index: u64) -> String {
        format!(
            "{}{}",
            self.prefix,
            base36(index % MAX_SESSIONS, INDEX_CHARS)
        )
    }
}

/// Player `j` of a session (names only need to be unique within their session).
pub fn player(j: usize) -> String {
    format!("p{j}")
}

/// The names of a session's players, in join order (the host first).
pub fn players(count: usize) -> Vec<String> {
    (0..count).map(player).collect()
}

fn base36(mut n: u64, width: usize) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    out.into_iter().map(char::from).collect()
}

/// `h:S:P:M`: host session `S` as player `P`, with room for `max` players (at least 2).
pub fn host(session: &str, player: &str, max: usize) -> Vec<u8> {
    format!("h:{session}:{player}:{}", max.max(2)).into_bytes()
}

/// `c:S:P`: join.
pub fn join(session: &str, player: &str) -> Vec<u8> {
    format!("c:{session}:{player}").into_bytes()
}

/// `p:S:P`: ping.
pub fn ping(session: &str, player: &str) -> Vec<u8> {
    format!("p:{session}:{player}").into_bytes()
}

/// `s:S:P`: start (from the host).
pub fn start(session: &str, player: &str) -> Vec<u8> {
    format!("s:{session}:{player}").into_bytes()
}

/// `y:S:P`: confirm the start message.
pub fn confirm(session: &str, player: &str) -> Vec<u8> {
    format!("y:{session}:{player}").into_bytes()
}

/// The info reply: `i:` and the names in join order, joined by `:`.
pub fn info(names: &[String]) -> Vec<u8> {
    let mut s = String::from("i:");
    s.push_str(&names.join(":"));
    s.into_bytes()
}

/// Whether `data` is an info reply for the first `n` players, for some `n` in `1..upto`: an
/// older list that can still arrive after a newer one was asked for (a retry crossing a join).
pub fn is_older_info(data: &[u8], names: &[String], upto: usize) -> bool {
    (1..upto.min(names.len() + 1)).any(|n| data == info(&names[..n]).as_slice())
}

/// The start message player `me` must receive: `s:<its port>:` then every other player as
/// `name:ip:port`, in join order, joined by `;`. IPv4 as a dotted quad (also when mapped into
/// IPv6), IPv6 in brackets.
pub fn start_message(me: usize, names: &[String], addrs: &[SocketAddr]) -> Vec<u8> {
    let mut s = format!("s:{}:", addrs[me].port());
    let mut first = true;
    for (j, (name, addr)) in names.iter().zip(addrs).enumerate() {
        if j == me {
            continue;
        }
        if !first {
            s.push(';');
        }
        first = false;
        // Writing to a String cannot fail.
        let _ = match addr {
            SocketAddr::V4(a) => write!(s, "{name}:{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
                Some(v4) => write!(s, "{name}:{v4}:{}", a.port()),
                None => write!(s, "{name}:[{}]:{}", a.ip(), a.port()),
            },
        };
    }
    s.into_bytes()
}

/// `g:<me>:<own_port>:<target_port>`: a peer-phase greeting aimed at `target_port`.
pub fn greeting(me: &str, own_port: u16, target_port: u16) -> Vec<u8> {
    format!("g:{me}:{own_port}:{target_port}").into_bytes()
}

/// The peer address listed in a two-player start message `s:<own port>:<peer>:<ip>:<port>`,
/// checked: the own port must be `own_port` and the only entry must be `peer`. IPv6 addresses
/// may be in brackets.
pub fn start_peer(data: &[u8], own_port: u16, peer: &str) -> Result<SocketAddr, String> {
    let bad = |why: &str| format!("bad start message {:?}: {why}", show(data));
    let text = std::str::from_utf8(data).map_err(|_| bad("not UTF-8"))?;
    let rest = text.strip_prefix("s:").ok_or_else(|| bad("no s: prefix"))?;
    let (own, entry) = rest.split_once(':').ok_or_else(|| bad("no peer"))?;
    if own != own_port.to_string() {
        return Err(bad(&format!("own port is not {own_port}")));
    }
    let (name, addr) = entry
        .split_once(':')
        .ok_or_else(|| bad("no peer address"))?;
    if name != peer {
        return Err(bad(&format!("the only peer must be {peer}")));
    }
    let (ip, port) = addr.rsplit_once(':').ok_or_else(|| bad("no peer port"))?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = ip.parse().map_err(|_| bad("peer IP"))?;
    let port: u16 = port.parse().map_err(|_| bad("peer port"))?;
    Ok(SocketAddr::new(ip, port))
}

/// A reply made printable for an error report (bounded, non-UTF-8 bytes escaped).
pub fn show(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(&data[..data.len().min(120)]);
    let mut out: String = text.escape_debug().collect();
    if data.len() > 120 {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn start_message_matches_the_protocol_example() {
        let n = names(&["A", "B", "C"]);
        let a: Vec<SocketAddr> = [
            "198.51.100.7:40001",
            "198.51.100.8:40002",
            "203.0.113.9:40003",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert_eq!(
            start_message(1, &n, &a),
            b"s:40002:A:198.51.100.7:40001;C:203.0.113.9:40003".to_vec()
        );
        assert_eq!(
            start_message(0, &n, &a),
            b"s:40001:B:198.51.100.8:40002;C:203.0.113.9:40003".to_vec()
        );
        assert_eq!(
            start_message(2, &n, &a),
            b"s:40003:A:198.51.100.7:40001;B:198.51.100.8:40002".to_vec()
        );
    }

    #[test]
    fn start_message_writes_ipv6_in_brackets_and_mapped_as_ipv4() {
        let n = names(&["h", "c"]);
        let a: Vec<SocketAddr> = ["[::1]:5000", "[::ffff:127.0.0.9]:6000"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(start_message(1, &n, &a), b"s:6000:h:[::1]:5000".to_vec());
        assert_eq!(
            start_message(0, &n, &a),
            b"s:5000:c:127.0.0.9:6000".to_vec()
        );
    }

    #[test]
    fn info_lists_players_in_join_order() {
        let n = players(4);
        assert_eq!(info(&n), b"i:p0:p1:p2:p3".to_vec());
        assert_eq!(info(&n[..1]), b"i:p0".to_vec());
        assert!(is_older_info(b"i:p0:p1", &n, 3));
        assert!(
            !is_older_info(b"i:p0:p1:p2", &n, 3),
            "the current list is not older"
        );
        assert!(!is_older_info(b"i:p1", &n, 3));
        assert!(!is_older_info(b"error:session_full", &n, 4));
    }

    #[test]
    fn requests_follow_the_grammar() {
        assert_eq!(host("s1", "p0", 4), b"h:s1:p0:4".to_vec());
        assert_eq!(
            host("s1", "p0", 1),
            b"h:s1:p0:2".to_vec(),
            "M is at least 2"
        );
        assert_eq!(join("s1", "p1"), b"c:s1:p1".to_vec());
        assert_eq!(ping("s1", "p1"), b"p:s1:p1".to_vec());
        assert_eq!(start("s1", "p0"), b"s:s1:p0".to_vec());
        assert_eq!(confirm("s1", "p2"), b"y:s1:p2".to_vec());
    }

    #[test]
    fn session_names_are_valid_and_distinct() {
        let a = Names::with_seed(1);
        let b = Names::with_seed(2);
        for i in [0, 1, 35, 36, MAX_SESSIONS - 1] {
            let s = a.session(i);
            assert_eq!(s.len(), 10);
            assert!(s.bytes().all(|c| c.is_ascii_alphanumeric()), "{s}");
        }
        assert_ne!(a.session(0), a.session(1));
        assert_ne!(a.session(0), b.session(0));
        assert_eq!(player(11), "p11");
    }

    #[test]
    fn start_peer_reads_the_one_peer() {
        let peer = start_peer(b"s:5000:p1:127.0.0.1:30001", 5000, "p1").unwrap();
        assert_eq!(peer, "127.0.0.1:30001".parse().unwrap());
        let v6 = start_peer(b"s:5000:p0:[::1]:30000", 5000, "p0").unwrap();
        assert_eq!(v6, "[::1]:30000".parse().unwrap());
        assert!(start_peer(b"s:5001:p1:127.0.0.1:30001", 5000, "p1").is_err());
        assert!(start_peer(b"s:5000:p2:127.0.0.1:30001", 5000, "p1").is_err());
        assert!(start_peer(b"s:5000:p1:127.0.0.1:30001;p2:127.0.0.1:3", 5000, "p1").is_err());
        assert!(start_peer(b"i:p0:p1", 5000, "p1").is_err());
        assert_eq!(greeting("p0", 5000, 30001), b"g:p0:5000:30001".to_vec());
    }

    #[test]
    fn show_escapes_and_bounds() {
        assert_eq!(show(b"i:a\n"), "i:a\\n");
        assert!(show(&[b'x'; 500]).ends_with("..."));
    }
}
