//! The command line of the server: every setting is a flag with the protocol's default.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use argh::FromArgs;

use crate::budget::BudgetConfig;
use crate::core::{CapsConfig, CoreConfig, RelayConfig, RelayLimitsConfig, RelayMode};
use crate::logging::{LogConfig, LogTarget};
use crate::runtime::{Scheduling, ServerConfig};

/// rabid-punch: a UDP rendezvous server for NAT hole punching, speaking the Rabid hole-punch
/// protocol. Durations take a unit: 50ms, 5s, 15m, 1h.
#[derive(FromArgs, Debug)]
pub struct Args {
    /// UDP port to listen on (default 7777; 0 picks a free one)
    #[argh(option, default = "7777")]
    pub port: u16,

    /// address to listen on (default 0.0.0.0; `::` listens on IPv6 and IPv4 both)
    #[argh(option, default = "IpAddr::V4(Ipv4Addr::UNSPECIFIED)")]
    pub bind: IpAddr,

    /// worker threads, each owning a share of the sessions (default: one per core)
    #[argh(option)]
    pub workers: Option<usize>,

    /// log every datagram received and sent, like the original's DEBUG mode
    #[argh(switch)]
    pub debug: bool,

    /// log file, rotated by size (default rabid-hole-punch.log; `-` logs to standard output only)
    #[argh(option, default = "String::from(\"rabid-hole-punch.log\")")]
    pub log_file: String,

    /// size in bytes at which the log file is rotated (default 10000000)
    #[argh(option, default = "10_000_000")]
    pub log_max_bytes: usize,

    /// rotated log files kept besides the current one (default 10)
    #[argh(option, default = "10")]
    pub log_keep: usize,

    /// a player not heard from for this long is removed (default 5s)
    #[argh(
        option,
        default = "Duration::from_secs(5)",
        from_str_fn(parse_duration)
    )]
    pub player_timeout: Duration,

    /// a session is deleted this long after its creation (default 15m)
    #[argh(
        option,
        default = "Duration::from_secs(900)",
        from_str_fn(parse_duration)
    )]
    pub session_lifetime: Duration,

    /// time between two sends of the start message (default 100ms)
    #[argh(
        option,
        default = "Duration::from_millis(100)",
        from_str_fn(parse_duration)
    )]
    pub start_interval: Duration,

    /// how many times the start message is sent to a player that does not confirm (default 8)
    #[argh(option, default = "8")]
    pub start_sends: u8,

    /// how many times player_timeout and session_timeout errors are sent (default 3)
    #[argh(option, default = "3")]
    pub error_repeats: u8,

    /// time between two sends of a repeated error (default 50ms)
    #[argh(
        option,
        default = "Duration::from_millis(50)",
        from_str_fn(parse_duration)
    )]
    pub error_repeat_interval: Duration,

    /// batches of datagrams a worker may have waiting before new ones for it are dropped
    /// (default 1024)
    #[argh(option, default = "1024")]
    pub queue_capacity: usize,

    /// how the threads that move datagrams are scheduled: batch (Linux SCHED_BATCH: a woken
    /// thread does not preempt a busy one, so datagrams are taken in larger batches) or normal
    /// (default batch)
    #[argh(option, default = "Scheduling::Batch", from_str_fn(parse_scheduling))]
    pub scheduling: Scheduling,

    /// open sessions at most, in total; further hosts are dropped (default 100000)
    #[argh(option, default = "CapsConfig::default().max_sessions")]
    pub max_sessions: usize,

    /// open sessions at most per host IPv4 address or IPv6 /64 (default 256)
    #[argh(option, default = "CapsConfig::default().max_sessions_per_ip")]
    pub max_sessions_per_ip: usize,

    /// players at most, in total; further joins get session_full (default 400000)
    #[argh(option, default = "CapsConfig::default().max_players")]
    pub max_players: usize,

    /// bytes the server may send to one IP at once: the send budget's burst (default 65536)
    #[argh(option, default = "BudgetConfig::default().burst")]
    pub budget_burst: u64,

    /// bytes per second an IP's send budget refills by (default 4096)
    #[argh(option, default = "BudgetConfig::default().refill_per_sec")]
    pub budget_refill: u64,

    /// budget bytes an IP earns per byte received from it (default 3)
    #[argh(option, default = "BudgetConfig::default().earn_factor")]
    pub budget_earn_factor: u64,

    /// IPs whose send budget is tracked at most; past it, new IPs get no reply (default 1000000)
    #[argh(option, default = "BudgetConfig::default().max_tracked")]
    pub budget_max_tracked: usize,

    /// relay started sessions through the server, for players whose NATs cannot be punched:
    /// off, auto (a host that starts again within --relay-auto-window, i.e. a retry after a
    /// failed punch) or always (default auto)
    #[argh(option, default = "RelayMode::Auto", from_str_fn(parse_relay_mode))]
    pub relay: RelayMode,

    /// UDP ports the relay may use, e.g. 7778-8777: open them in the firewall (default
    /// 7778-8777)
    #[argh(option, default = "7778..=8777", from_str_fn(parse_port_range))]
    pub relay_ports: RangeInclusive<u16>,

    /// the address relayed start messages list, e.g. the public IP of a cloud box behind 1:1
    /// NAT (default: the address each start request arrived on)
    #[argh(option)]
    pub relay_public_ip: Option<IpAddr>,

    /// a relay with no traffic for this long closes (default 30s)
    #[argh(
        option,
        default = "RelayConfig::default().idle_timeout",
        from_str_fn(parse_duration)
    )]
    pub relay_idle: Duration,

    /// a relay through which no member sent anything this long after its start closes, so that
    /// starts forged from other people's addresses cannot hold the pool (default 10s)
    #[argh(
        option,
        default = "RelayConfig::default().unused_timeout",
        from_str_fn(parse_duration)
    )]
    pub relay_unused: Duration,

    /// a relay closes this long after its session started, busy or not: a game played through
    /// the relay for longer loses its connection (default 1h)
    #[argh(
        option,
        default = "RelayConfig::default().lifetime",
        from_str_fn(parse_duration)
    )]
    pub relay_lifetime: Duration,

    /// with --relay auto, a start is relayed when its host IP started a session less than this
    /// ago (default 60s)
    #[argh(
        option,
        default = "RelayConfig::default().auto_window",
        from_str_fn(parse_duration)
    )]
    pub relay_auto_window: Duration,

    /// bytes per second one relayed session may forward, and its burst (default 524288)
    #[argh(option, default = "RelayLimitsConfig::default().session_bytes_per_sec")]
    pub relay_session_rate: u64,

    /// bytes per second one IP may send through relays, and its burst (default 1048576)
    #[argh(option, default = "RelayLimitsConfig::default().ip_bytes_per_sec")]
    pub relay_ip_rate: u64,

    /// relayed sessions one IPv4 address or IPv6 /64 may be part of at once (default 16)
    #[argh(option, default = "RelayLimitsConfig::default().max_sessions_per_ip")]
    pub relay_max_per_ip: u32,

    /// time between two stats lines in the log (default 60s)
    #[argh(
        option,
        default = "Duration::from_secs(60)",
        from_str_fn(parse_duration)
    )]
    pub stats_interval: Duration,

    /// serve Prometheus metrics over HTTP at http://ADDR/metrics, e.g. 127.0.0.1:9777
    /// (default: off; keep it off the internet)
    #[argh(option)]
    pub metrics: Option<String>,

    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
}

/// What the server runs with, checked.
#[derive(Debug)]
pub struct Settings {
    pub server: ServerConfig,
    pub log: LogConfig,
    pub stats_interval: Duration,
    /// Where to serve metrics, if anywhere.
    pub metrics: Option<SocketAddr>,
}

impl Args {
    /// Checks the flags together. The error is one line for the user.
    pub fn settings(&self) -> Result<Settings, String> {
        let workers = match self.workers {
            Some(0) => return Err("--workers must be at least 1".into()),
            Some(n) if n > 1024 => return Err("--workers must be at most 1024".into()),
            Some(n) => n,
            None => ServerConfig::default().workers,
        };
        if self.start_sends == 0 {
            return Err("--start-sends must be at least 1".into());
        }
        if self.queue_capacity == 0 {
            return Err("--queue-capacity must be at least 1".into());
        }
        if self.log_max_bytes == 0 {
            return Err("--log-max-bytes must be at least 1".into());
        }
        let limit = Duration::from_secs(30 * 24 * 3600);
        for (flag, value) in [
            ("--player-timeout", self.player_timeout),
            ("--session-lifetime", self.session_lifetime),
            ("--start-interval", self.start_interval),
            ("--error-repeat-interval", self.error_repeat_interval),
            ("--stats-interval", self.stats_interval),
            ("--relay-idle", self.relay_idle),
            ("--relay-unused", self.relay_unused),
            ("--relay-lifetime", self.relay_lifetime),
            ("--relay-auto-window", self.relay_auto_window),
        ] {
            if value.is_zero() || value > limit {
                return Err(format!("{flag} must be between 1ms and 30 days"));
            }
        }
        if self.relay_session_rate == 0 || self.relay_ip_rate == 0 {
            return Err("--relay-session-rate and --relay-ip-rate must be at least 1".into());
        }
        let metrics = match &self.metrics {
            None => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                format!(
                    "--metrics needs an IP address and port such as 127.0.0.1:9777, not `{text}`"
                )
            })?),
        };
        let target = match self.log_file.as_str() {
            "-" => LogTarget::Stdout,
            "" => return Err("--log-file must not be empty (use - for standard output)".into()),
            path => LogTarget::File(PathBuf::from(path)),
        };
        Ok(Settings {
            server: ServerConfig {
                bind: SocketAddr::new(self.bind, self.port),
                workers,
                queue_capacity: self.queue_capacity,
                core: CoreConfig {
                    player_timeout: self.player_timeout,
                    session_lifetime: self.session_lifetime,
                    start_interval: self.start_interval,
                    start_sends: self.start_sends,
                    error_repeats: self.error_repeats,
                    error_repeat_interval: self.error_repeat_interval,
                    caps: CapsConfig {
                        max_sessions: self.max_sessions,
                        max_players: self.max_players,
                        max_sessions_per_ip: self.max_sessions_per_ip,
                    },
                    relay: RelayConfig {
                        mode: self.relay,
                        public_ip: self.relay_public_ip,
                        idle_timeout: self.relay_idle,
                        unused_timeout: self.relay_unused,
                        lifetime: self.relay_lifetime,
                        auto_window: self.relay_auto_window,
                        limits: RelayLimitsConfig {
                            max_sessions_per_ip: self.relay_max_per_ip,
                            ip_bytes_per_sec: self.relay_ip_rate,
                            session_bytes_per_sec: self.relay_session_rate,
                        },
                    },
                },
                relay_ports: self.relay_ports.clone(),
                scheduling: self.scheduling,
                budget: BudgetConfig {
                    burst: self.budget_burst,
                    refill_per_sec: self.budget_refill,
                    earn_factor: self.budget_earn_factor,
                    max_tracked: self.budget_max_tracked,
                },
            },
            log: LogConfig {
                target,
                debug: self.debug,
                max_bytes: self.log_max_bytes,
                keep: self.log_keep,
            },
            stats_interval: self.stats_interval,
            metrics,
        })
    }
}

/// `off`, `auto` or `always`.
pub fn parse_relay_mode(text: &str) -> Result<RelayMode, String> {
    match text {
        "off" => Ok(RelayMode::Off),
        "auto" => Ok(RelayMode::Auto),
        "always" => Ok(RelayMode::Always),
        _ => Err(format!(
            "`{text}` is not a relay mode: use off, auto or always"
        )),
    }
}

/// `batch` or `normal`.
pub fn parse_scheduling(text: &str) -> Result<Scheduling, String> {
    match text {
        "batch" => Ok(Scheduling::Batch),
        "normal" => Ok(Scheduling::Normal),
        _ => Err(format!(
            "`{text}` is not a scheduling policy: use batch or normal"
        )),
    }
}

/// `A-B`, both ports inclusive, `A <= B`, or a single port `A`.
pub fn parse_port_range(text: &str) -> Result<RangeInclusive<u16>, String> {
    let port = |s: &str| {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("`{text}` is not a port range such as 7778-8777"))
    };
    let (first, last) = match text.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => (port(text)?, port(text)?),
    };
    if first > last {
        return Err(format!("`{text}`: the first port must not exceed the last"));
    }
    Ok(first..=last)
}

/// `50ms`, `5s`, `15m`, `1h`, or `1.5s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("`{text}` needs a unit: ms, s, m or h"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 500ms or 5s"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("`{text}` has an unknown unit: use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        Args::from_args(&["rabid-punch"], list).map_err(|e| e.output)
    }

    #[test]
    fn defaults_are_the_protocols() {
        let settings = args(&[]).unwrap().settings().unwrap();
        assert_eq!(settings.server.bind, "0.0.0.0:7777".parse().unwrap());
        let relay = RelayConfig {
            mode: RelayMode::Auto,
            ..RelayConfig::default()
        };
        assert_eq!(
            settings.server.core,
            CoreConfig {
                relay,
                ..CoreConfig::default()
            }
        );
        assert_eq!(settings.server.relay_ports, 7778..=8777);
        assert_eq!(settings.server.scheduling, Scheduling::Batch);
        assert!(settings.server.workers >= 1);
        assert_eq!(
            settings.log.target,
            LogTarget::File(PathBuf::from("rabid-hole-punch.log"))
        );
    }

    #[test]
    fn flags_set_every_setting() {
        let settings = args(&[
            "--port",
            "9000",
            "--bind",
            "::",
            "--workers",
            "3",
            "--player-timeout",
            "2500ms",
            "--session-lifetime",
            "1h",
            "--start-sends",
            "4",
            "--log-file",
            "-",
        ])
        .unwrap()
        .settings()
        .unwrap();
        assert_eq!(settings.server.bind, "[::]:9000".parse().unwrap());
        assert_eq!(settings.server.workers, 3);
        assert_eq!(
            settings.server.core.player_timeout,
            Duration::from_millis(2500)
        );
        assert_eq!(
            settings.server.core.session_lifetime,
            Duration::from_secs(3600)
        );
        assert_eq!(settings.server.core.start_sends, 4);
        assert_eq!(settings.log.target, LogTarget::Stdout);
        assert_eq!(settings.metrics, None);
    }

    #[test]
    fn scheduling_is_batch_or_normal() {
        let normal = args(&["--scheduling", "normal"])
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(normal.server.scheduling, Scheduling::Normal);
        let batch = args(&["--scheduling", "batch"])
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(batch.server.scheduling, Scheduling::Batch);
        assert!(args(&["--scheduling", "fifo"])
            .unwrap_err()
            .contains("batch or normal"));
    }

    #[test]
    fn metrics_take_an_ip_and_port() {
        let on = args(&["--metrics", "127.0.0.1:9777"])
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(on.metrics, Some("127.0.0.1:9777".parse().unwrap()));
        let v6 = args(&["--metrics", "[::1]:9777"])
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(v6.metrics, Some("[::1]:9777".parse().unwrap()));
        for bad in ["9777", "localhost:9777", "127.0.0.1", "127.0.0.1:99999", ""] {
            let error = args(&["--metrics", bad]).unwrap().settings().unwrap_err();
            assert!(error.starts_with("--metrics needs"), "{bad}: {error}");
        }
    }

    #[test]
    fn bad_values_are_refused_with_a_message() {
        assert!(args(&["--port", "70000"]).is_err());
        assert!(args(&["--bind", "nowhere"]).is_err());
        assert!(args(&["--player-timeout", "5"])
            .unwrap_err()
            .contains("unit"));
        assert!(args(&["--player-timeout", "5 days"]).is_err());
        assert!(args(&["--nope"]).is_err());
        let zero = args(&["--workers", "0"]).unwrap().settings().unwrap_err();
        assert!(zero.contains("--workers"), "{zero}");
        let zero = args(&["--player-timeout", "0s"])
            .unwrap()
            .settings()
            .unwrap_err();
        assert!(zero.contains("--player-timeout"), "{zero}");
    }

    #[test]
    fn relay_flags_are_checked() {
        let settings = args(&[
            "--relay",
            "always",
            "--relay-ports",
            "40000-40099",
            "--relay-public-ip",
            "203.0.113.7",
            "--relay-idle",
            "10s",
            "--relay-unused",
            "7s",
            "--relay-lifetime",
            "2h",
            "--relay-auto-window",
            "90s",
            "--relay-session-rate",
            "1000",
            "--relay-ip-rate",
            "2000",
            "--relay-max-per-ip",
            "3",
        ])
        .unwrap()
        .settings()
        .unwrap();
        let relay = &settings.server.core.relay;
        assert_eq!(relay.mode, RelayMode::Always);
        assert_eq!(relay.public_ip, Some("203.0.113.7".parse().unwrap()));
        assert_eq!(relay.idle_timeout, Duration::from_secs(10));
        assert_eq!(relay.unused_timeout, Duration::from_secs(7));
        assert_eq!(relay.lifetime, Duration::from_secs(7200));
        assert_eq!(relay.auto_window, Duration::from_secs(90));
        assert_eq!(
            relay.limits,
            RelayLimitsConfig {
                session_bytes_per_sec: 1000,
                ip_bytes_per_sec: 2000,
                max_sessions_per_ip: 3,
            }
        );
        assert_eq!(settings.server.relay_ports, 40000..=40099);
        assert!(args(&["--relay", "sometimes"])
            .unwrap_err()
            .contains("off, auto or always"));
        for bad in ["9-1", "0-10", "1-70000", "a-b", ""] {
            assert!(args(&["--relay-ports", bad]).is_err(), "{bad}");
        }
        assert_eq!(parse_port_range("7000"), Ok(7000..=7000));
        let zero = args(&["--relay-ip-rate", "0"])
            .unwrap()
            .settings()
            .unwrap_err();
        assert!(zero.contains("--relay-ip-rate"), "{zero}");
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1e99h").is_err());
    }
}
