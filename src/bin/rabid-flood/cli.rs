//! Command line of rabid-flood, and its checks: every run is bounded in time and in count, and
//! only loopback targets are accepted unless the user says otherwise.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use argh::FromArgs;

/// Longest run accepted, so a typo cannot leave a flood running for hours.
const MAX_SECONDS: f64 = 3600.0;
/// The protocol allows at most 12 players in a session.
pub const MAX_PLAYERS: usize = 12;

#[derive(FromArgs)]
/// Load generator for rabid-punch (and its echo yardstick): every simulated player has its own
/// UDP socket, every reply is checked exactly, and every run stops by itself.
pub struct TopLevel {
    #[argh(subcommand)]
    pub mode: Mode,
}

#[derive(FromArgs)]
#[argh(subcommand)]
pub enum Mode {
    Ping(PingArgs),
    Lifecycle(LifecycleArgs),
    Relay(RelayArgs),
}

#[derive(FromArgs)]
/// Join S sessions x P players, then ping them in a closed loop (a fixed number of pings
/// outstanding in total) or an open loop (--rate); every reply must be the exact i: list.
#[argh(subcommand, name = "ping")]
pub struct PingArgs {
    /// server address, e.g. 127.0.0.1:4000 (loopback only without --allow-remote)
    #[argh(option)]
    pub target: SocketAddr,
    /// number of sessions (default 1000)
    #[argh(option, default = "1000")]
    pub sessions: usize,
    /// players per session, 1..=12 (default 4)
    #[argh(option, default = "4")]
    pub players: usize,
    /// pings outstanding in total over all sockets (closed loop; default 64)
    #[argh(option, default = "64")]
    pub outstanding: usize,
    /// open loop: send this many pings per second in total instead of a closed loop
    #[argh(option)]
    pub rate: Option<u64>,
    /// seconds measured (default 20)
    #[argh(option, default = "20.0")]
    pub duration: f64,
    /// seconds of load before measuring starts (default 1)
    #[argh(option, default = "1.0")]
    pub warmup: f64,
    /// stop after this many pings even if the duration is not over (default 100000000)
    #[argh(option, default = "100_000_000")]
    pub max_pings: u64,
    /// milliseconds after which a ping without reply counts as lost (default 1000)
    #[argh(option, default = "1000")]
    pub timeout_ms: u64,
    /// the target is rabid-echo: expect each reply to equal its request, and skip joining
    #[argh(switch)]
    pub echo: bool,
    #[argh(option, default = "1")]
    /// generator threads, each owning a slice of the sessions (default 1)
    pub threads: usize,
    /// local source addresses to spread the sockets over: a range like 127.0.0.2-127.0.0.250
    /// or a comma list (default 127.0.0.2-127.0.0.250 for an IPv4 target, ::1 for IPv6)
    #[argh(option)]
    pub sources: Option<String>,
    /// accept a target that is not a loopback address (only for your own machines)
    #[argh(switch)]
    pub allow_remote: bool,
    /// pid of the server process: report its CPU time over the measured window (Linux /proc)
    #[argh(option)]
    pub server_pid: Option<u32>,
    /// print one JSON line instead of the human summary
    #[argh(switch)]
    pub json: bool,
    /// before the flood, host this many public lobbies, each from a socket of its own: half
    /// made public with d: (listed by l:), half announced with a:1: for game rabid.flood
    /// (listed by b:1:). Their sockets close once they are listed, so the server needs a
    /// --player-timeout longer than the run, and --max-sessions above them (default 0)
    #[argh(option, default = "0")]
    pub lobbies: usize,
    /// source addresses of the lobby hosts, as --sources (default 127.1.0.0-127.1.3.255,
    /// under the server's --max-sessions-per-ip of 256 for up to 262 144 lobbies)
    #[argh(option)]
    pub lobby_sources: Option<String>,
    /// while the flood runs, send this many listings per second from sockets of their own,
    /// alternately l: and a padded b:1: page; their replies are counted and checked
    #[argh(option)]
    pub list_rate: Option<u64>,
    /// sockets of the listing flood, each on its own address of --list-sources (default 2048)
    #[argh(option, default = "2048")]
    pub list_sockets: usize,
    /// source addresses of the listing flood, as --sources (default 127.2.0.0-127.2.15.255:
    /// one address per socket keeps each under the server's per-IP send budget)
    #[argh(option)]
    pub list_sources: Option<String>,
    /// stop the listing flood after this many listings even if the duration is not over
    /// (default 100000000)
    #[argh(option, default = "100_000_000")]
    pub max_listings: u64,
}

#[derive(FromArgs)]
/// Run whole session lifecycles as fast as possible: host, joins, start, confirmations, each
/// reply checked exactly (i: lists and every player's s: message).
#[argh(subcommand, name = "lifecycle")]
pub struct LifecycleArgs {
    /// server address, e.g. 127.0.0.1:4000 (loopback only without --allow-remote)
    #[argh(option)]
    pub target: SocketAddr,
    /// players per session, 2..=12 (default 4)
    #[argh(option, default = "4")]
    pub players: usize,
    /// sessions in flight at once, in total (default 64)
    #[argh(option, default = "64")]
    pub concurrency: usize,
    /// stop starting sessions after this many (default 1000000)
    #[argh(option, default = "1_000_000")]
    pub count: u64,
    /// stop starting sessions after this many seconds (default 10)
    #[argh(option, default = "10.0")]
    pub duration: f64,
    /// milliseconds one lifecycle may take before it counts as failed (default 5000)
    #[argh(option, default = "5000")]
    pub timeout_ms: u64,
    #[argh(option, default = "1")]
    /// generator threads, each owning a share of the sessions in flight (default 1)
    pub threads: usize,
    /// local source addresses to spread the sockets over: a range like 127.0.0.2-127.0.0.250
    /// or a comma list (default 127.0.0.2-127.0.0.250 for an IPv4 target, ::1 for IPv6)
    #[argh(option)]
    pub sources: Option<String>,
    /// accept a target that is not a loopback address (only for your own machines)
    #[argh(switch)]
    pub allow_remote: bool,
    /// pid of the server process: report its CPU time over the run (Linux /proc)
    #[argh(option)]
    pub server_pid: Option<u32>,
    /// print one JSON line instead of the human summary
    #[argh(switch)]
    pub json: bool,
}

#[derive(FromArgs)]
/// Start S two-player sessions through a server run with `--relay always`, have each player
/// greet its peer's relay port (checking the rewritten greeting), then keep W game-like
/// datagrams per player in flight towards the peer's relay port; every datagram must reach the
/// peer unchanged, from the sender's relay port. With --echo, the same load against rabid-echo:
/// each player's datagrams come back to itself.
#[argh(subcommand, name = "relay")]
pub struct RelayArgs {
    /// server address, e.g. 127.0.0.1:4000 (loopback only without --allow-remote)
    #[argh(option)]
    pub target: SocketAddr,
    /// number of two-player sessions; the server needs two relay ports per session
    /// (default 32)
    #[argh(option, default = "32")]
    pub sessions: usize,
    /// datagrams each player keeps in flight towards its peer (closed loop; default 1)
    #[argh(option, default = "1")]
    pub window: usize,
    /// datagrams in flight in total instead (closed loop): a datagram that arrives passes its
    /// slot to the next player in turn, so every socket and relay port carries traffic whatever
    /// their number, at the same load (e.g. 1000 sessions at the 64 in flight of 32 sessions;
    /// 1 to time a datagram through an idle server). At most --window per player still
    /// (default: --window x players)
    #[argh(option)]
    pub in_flight: Option<usize>,
    /// size of each game datagram in bytes, 16..=1400 (default 100)
    #[argh(option, default = "100")]
    pub bytes: usize,
    /// seconds measured (default 20)
    #[argh(option, default = "20.0")]
    pub duration: f64,
    /// seconds of load before measuring starts (default 1)
    #[argh(option, default = "1.0")]
    pub warmup: f64,
    /// stop after sending this many datagrams even if the duration is not over
    /// (default 100000000)
    #[argh(option, default = "100_000_000")]
    pub max_datagrams: u64,
    /// milliseconds after which a datagram that has not arrived counts as lost (default 1000)
    #[argh(option, default = "1000")]
    pub timeout_ms: u64,
    /// the target is rabid-echo: skip the sessions, and expect each datagram back at its sender
    #[argh(switch)]
    pub echo: bool,
    #[argh(option, default = "1")]
    /// generator threads, each owning a slice of the sessions (default 1)
    pub threads: usize,
    /// local source addresses to spread the sockets over: a range like 127.0.0.2-127.0.0.250
    /// or a comma list (default 127.0.0.2-127.0.0.250 for an IPv4 target, ::1 for IPv6)
    #[argh(option)]
    pub sources: Option<String>,
    /// accept a target (and relay addresses) that are not loopback addresses (only for your
    /// own machines)
    #[argh(switch)]
    pub allow_remote: bool,
    /// pid of the server process: report its CPU time over the measured window (Linux /proc)
    #[argh(option)]
    pub server_pid: Option<u32>,
    /// print one JSON line instead of the human summary
    #[argh(switch)]
    pub json: bool,
}

/// A number of seconds from the command line, checked to be a usable bound.
pub fn seconds(name: &str, value: f64, allow_zero: bool) -> Result<Duration, String> {
    let ok =
        value.is_finite() && value <= MAX_SECONDS && (value > 0.0 || allow_zero && value == 0.0);
    if ok {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(format!(
            "--{name} must be a number of seconds in (0, {MAX_SECONDS}]"
        ))
    }
}

/// Refuses a target outside the loopback network unless `allow_remote`: a flood aimed at
/// someone else's machine by mistake is an attack.
pub fn check_target(target: SocketAddr, allow_remote: bool) -> Result<(), String> {
    if target.port() == 0 {
        return Err("the target port must not be 0".into());
    }
    if is_loopback(target.ip()) || allow_remote {
        Ok(())
    } else {
        Err(format!(
            "refusing to flood {target}: not a loopback address (use --allow-remote for a \
             machine of your own)"
        ))
    }
}

/// Loopback, IPv4-mapped IPv6 loopback (`::ffff:127.x.y.z`) included.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The local addresses the sockets bind to, in the order they are handed out.
///
/// rabid-punch budgets replies per source IP; spreading the players over many loopback
/// addresses keeps one budget from throttling the whole flood, as it would not in real life.
pub fn sources(spec: Option<&str>, target: SocketAddr) -> Result<Vec<IpAddr>, String> {
    let list = match spec {
        Some(spec) => parse_sources(spec)?,
        None => match target.ip() {
            IpAddr::V4(v4) if v4.is_loopback() => {
                parse_sources("127.0.0.2-127.0.0.250").map_err(|e| format!("built-in: {e}"))?
            }
            IpAddr::V4(_) => vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)],
            IpAddr::V6(v6) if v6.is_loopback() => vec![IpAddr::V6(Ipv6Addr::LOCALHOST)],
            // Remote, or IPv4-mapped: let the kernel pick the source.
            IpAddr::V6(_) => vec![IpAddr::V6(Ipv6Addr::UNSPECIFIED)],
        },
    };
    if let Some(bad) = list.iter().find(|ip| ip.is_ipv4() != target.is_ipv4()) {
        return Err(format!(
            "source {bad} is not of the same family as the target {target}"
        ));
    }
    Ok(list)
}

/// As [`sources`], with `default_v4` instead of the usual range for an IPv4 loopback target:
/// the lobby hosts and the listing flood get addresses of their own, apart from the players'.
pub fn sources_or(
    spec: Option<&str>,
    default_v4: &str,
    target: SocketAddr,
) -> Result<Vec<IpAddr>, String> {
    match (spec, target.ip()) {
        (None, IpAddr::V4(v4)) if v4.is_loopback() => {
            parse_sources(default_v4).map_err(|e| format!("built-in: {e}"))
        }
        _ => sources(spec, target),
    }
}

/// `a.b.c.d-a.b.c.e` (IPv4, inclusive, at most 65536 addresses) or `ip,ip,...`.
fn parse_sources(spec: &str) -> Result<Vec<IpAddr>, String> {
    let bad = || format!("bad --sources {spec:?}: want FIRST-LAST (IPv4) or IP,IP,...");
    if let Some((first, last)) = spec.split_once('-') {
        let first: Ipv4Addr = first.trim().parse().map_err(|_| bad())?;
        let last: Ipv4Addr = last.trim().parse().map_err(|_| bad())?;
        let (a, b) = (u32::from(first), u32::from(last));
        if a > b || b - a >= 65_536 {
            return Err(bad());
        }
        return Ok((a..=b).map(|n| IpAddr::V4(Ipv4Addr::from(n))).collect());
    }
    spec.split(',')
        .map(|s| s.trim().parse::<IpAddr>().map_err(|_| bad()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_loopback_targets_without_allow_remote() {
        assert!(check_target(addr("127.0.0.1:4000"), false).is_ok());
        assert!(check_target(addr("127.3.4.5:4000"), false).is_ok());
        assert!(check_target(addr("[::1]:4000"), false).is_ok());
        assert!(check_target(addr("[::ffff:127.0.0.1]:4000"), false).is_ok());
        assert!(check_target(addr("192.0.2.1:4000"), false).is_err());
        assert!(check_target(addr("[2001:db8::1]:4000"), false).is_err());
        assert!(check_target(addr("[::ffff:192.0.2.1]:4000"), false).is_err());
        assert!(check_target(addr("192.0.2.1:4000"), true).is_ok());
        assert!(check_target(addr("127.0.0.1:0"), true).is_err());
    }

    #[test]
    fn default_sources_spread_over_loopback() {
        let v = sources(None, addr("127.0.0.1:4000")).unwrap();
        assert_eq!(v.len(), 249);
        assert_eq!(v[0], "127.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(v[248], "127.0.0.250".parse::<IpAddr>().unwrap());
        assert_eq!(
            sources(None, addr("[::1]:4000")).unwrap(),
            vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]
        );
    }

    #[test]
    fn source_lists_and_ranges() {
        let t = addr("127.0.0.1:4000");
        assert_eq!(sources(Some("127.0.0.1"), t).unwrap().len(), 1);
        assert_eq!(sources(Some("127.0.0.5,127.0.0.9"), t).unwrap().len(), 2);
        assert_eq!(
            sources(Some("127.0.1.0-127.0.1.255"), t).unwrap().len(),
            256
        );
        assert!(sources(Some("127.0.0.9-127.0.0.5"), t).is_err());
        assert!(sources(Some("nonsense"), t).is_err());
        assert!(
            sources(Some("::1"), t).is_err(),
            "family mismatch must be refused"
        );
    }

    #[test]
    fn lobby_and_listing_sources_have_their_own_defaults() {
        let t = addr("127.0.0.1:4000");
        let v = sources_or(None, "127.1.0.0-127.1.3.255", t).unwrap();
        assert_eq!(v.len(), 1024);
        assert_eq!(v[0], "127.1.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(
            sources_or(Some("127.0.0.7"), "127.1.0.0-127.1.3.255", t)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            sources_or(None, "127.1.0.0-127.1.3.255", addr("[::1]:4000")).unwrap(),
            vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]
        );
    }

    #[test]
    fn seconds_are_bounded() {
        assert!(seconds("duration", 20.0, false).is_ok());
        assert!(seconds("duration", 0.0, false).is_err());
        assert!(seconds("warmup", 0.0, true).is_ok());
        assert!(seconds("duration", f64::NAN, false).is_err());
        assert!(seconds("duration", 1e9, false).is_err());
        assert!(seconds("duration", -1.0, true).is_err());
    }
}
