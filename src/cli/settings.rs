//! From flags to configuration: the defaults of the command line ([`Settings::default`]), and
//! [`Args::settings`], which checks the flags together and builds the configuration structs
//! the server runs with.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use super::Args;
use crate::budget::BudgetConfig;
use crate::core::{CapsConfig, CoreConfig, RelayConfig, RelayLimitsConfig, RelayMode};
use crate::logging::{LogConfig, LogTarget};
use crate::runtime::fleet::FleetConfig;
use crate::runtime::ServerConfig;
use crate::wire::lobby::{is_region, is_server_host, MAX_REGION_LEN, MAX_SERVER_HOST_LEN};

/// What the server runs with, checked.
#[derive(Debug)]
pub struct Settings {
    pub server: ServerConfig,
    pub log: LogConfig,
    pub stats_interval: Duration,
    /// Where to serve metrics, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// Where to serve hand-overs (and, with `takeover`, where to take over from), if anywhere.
    pub control_socket: Option<PathBuf>,
    /// Take over from the server at `control_socket` rather than bind the ports.
    pub takeover: bool,
    /// With `takeover`: fork into the background first (systemd's `ExecReload`).
    pub detach: bool,
}

impl Default for Settings {
    /// What an empty command line runs with: the configuration structs' defaults, except that
    /// the relay is `auto` (`RelayConfig`'s default is off, as the original server).
    fn default() -> Self {
        let mut server = ServerConfig::default();
        server.core.relay.mode = RelayMode::Auto;
        Self {
            server,
            log: LogConfig::default(),
            stats_interval: Duration::from_secs(60),
            metrics: None,
            control_socket: None,
            takeover: false,
            detach: false,
        }
    }
}

/// [`Settings::default`], computed once: every flag's `default =` reads it, and `--help`
/// shows what it holds.
pub fn defaults() -> &'static Settings {
    static DEFAULTS: OnceLock<Settings> = OnceLock::new();
    DEFAULTS.get_or_init(Settings::default)
}

impl Args {
    /// The fleet flags (`--directory` and those that go with it), checked.
    fn fleet(&self) -> Result<Option<FleetConfig>, String> {
        let Some(url) = &self.directory else {
            let stray = [
                ("--directory-prefix", self.directory_prefix.is_some()),
                ("--directory-ca", self.directory_ca.is_some()),
                (
                    "--directory-max-sessions",
                    self.directory_max_sessions.is_some(),
                ),
                ("--public-address", self.public_address.is_some()),
                ("--region", self.region.is_some()),
            ];
            return match stray.iter().find(|(_, given)| *given) {
                Some((flag, _)) => Err(format!("{flag} goes with --directory")),
                None => Ok(None),
            };
        };
        let tls = url.starts_with("rediss://");
        if !(url.starts_with("redis://") || tls) || redis::Client::open(url.as_str()).is_err() {
            return Err(format!(
                "--directory needs a URL such as redis://127.0.0.1:6379/0, not `{url}`"
            ));
        }
        let ca = match &self.directory_ca {
            None => None,
            Some(_) if !tls => return Err("--directory-ca goes with a rediss:// URL".into()),
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| format!("--directory-ca {path}: cannot read it ({e})"))?,
            ),
        };
        let Some(address) = &self.public_address else {
            return Err("--directory needs --public-address HOST:PORT".into());
        };
        let bad_address = || {
            format!(
                "--public-address needs HOST:PORT, HOST a DNS name or IPv4 address of at most \
                 {MAX_SERVER_HOST_LEN} letters, digits, . and -, not `{address}`"
            )
        };
        let (host, port) = address.rsplit_once(':').ok_or_else(bad_address)?;
        let port: u16 = port.parse().map_err(|_| bad_address())?;
        if !is_server_host(host) || port == 0 {
            return Err(bad_address());
        }
        let mut config = FleetConfig::new(url, host, port);
        config.ca = ca;
        if let Some(region) = &self.region {
            if !is_region(region) {
                return Err(format!(
                    "--region needs 1 to {MAX_REGION_LEN} letters, digits, ., _ or -, not \
                     `{region}`"
                ));
            }
            config.region = region.clone();
        }
        if let Some(prefix) = &self.directory_prefix {
            let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'.' | b'-');
            if prefix.len() > 32 || !prefix.bytes().all(ok) {
                return Err(format!(
                    "--directory-prefix needs at most 32 letters, digits, :, _, . or -, not \
                     `{prefix}`"
                ));
            }
            config.prefix = prefix.clone();
        }
        if let Some(max) = self.directory_max_sessions {
            if max == 0 {
                return Err("--directory-max-sessions must be at least 1".into());
            }
            config.max_sessions = max;
        }
        Ok(Some(config))
    }

    /// Checks the flags together. The error is one line for the user.
    pub fn settings(&self) -> Result<Settings, String> {
        let workers = match self.workers {
            Some(0) => return Err("--workers must be at least 1".into()),
            Some(n) if n > 1024 => return Err("--workers must be at most 1024".into()),
            Some(n) => n,
            None => defaults().server.workers,
        };
        if self.start_sends == 0 {
            return Err("--start-sends must be at least 1".into());
        }
        if !(1..=64).contains(&self.receivers) {
            return Err("--receivers must be 1 to 64".into());
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
        let http = match (&self.http, &self.metrics) {
            (Some(_), Some(_)) => {
                return Err("--http and --metrics are the same flag: give one".into());
            }
            (Some(text), None) => Some(("--http", text)),
            (None, Some(text)) => Some(("--metrics", text)),
            (None, None) => None,
        };
        let metrics = match http {
            None => None,
            Some((flag, text)) => Some(text.parse::<SocketAddr>().map_err(|_| {
                format!("{flag} needs an IP address and port such as 127.0.0.1:9777, not `{text}`")
            })?),
        };
        let fleet = self.fleet()?;
        let control_socket = match &self.control_socket {
            Some(path) if path.is_empty() => {
                return Err("--control-socket must not be empty".into());
            }
            Some(path) => Some(PathBuf::from(path)),
            // systemd's RuntimeDirectory= (/run/rabid-punch), made for this service alone.
            None => std::env::var_os("RUNTIME_DIRECTORY")
                .filter(|dir| !dir.is_empty())
                .map(|dir| PathBuf::from(dir).join("control.sock")),
        };
        if self.takeover && control_socket.is_none() {
            return Err("--takeover needs --control-socket PATH: the running server's".into());
        }
        if self.detach && !self.takeover {
            return Err("--detach goes with --takeover".into());
        }
        let target = match self.log_file.as_str() {
            "-" => LogTarget::Stdout,
            "" => return Err("--log-file must not be empty (use - for standard output)".into()),
            path => LogTarget::File(PathBuf::from(path)),
        };
        Ok(Settings {
            server: ServerConfig {
                bind: SocketAddr::new(self.bind, self.port),
                workers,
                receivers: self.receivers,
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
                relay_io: self.relay_io,
                fleet,
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
            control_socket,
            takeover: self.takeover,
            detach: self.detach,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use argh::FromArgs;

    use super::*;
    use crate::cli::values::parse_port_range;
    use crate::core::{CoreConfig, RelayConfig, RelayLimitsConfig, RelayMode};
    use crate::logging::LogTarget;
    use crate::runtime::Scheduling;

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
    fn fleet_flags_are_checked_together() {
        let settings = |list: &[&str]| args(list).unwrap().settings();
        assert_eq!(settings(&[]).unwrap().server.fleet, None);
        let fleet = settings(&[
            "--directory",
            "redis://127.0.0.1:6379/2",
            "--public-address",
            "eu.example.com:7777",
            "--region",
            "eu",
            "--directory-prefix",
            "game1:",
        ])
        .unwrap()
        .server
        .fleet
        .unwrap();
        assert_eq!(
            (
                fleet.public_host.as_str(),
                fleet.public_port,
                fleet.region.as_str()
            ),
            ("eu.example.com", 7777, "eu")
        );
        assert_eq!(fleet.prefix, "game1:");
        for (bad, says) in [
            (&["--region", "eu"][..], "--region goes with --directory"),
            (&["--directory", "redis://h:1"][..], "--public-address"),
            (
                &["--directory", "http://h", "--public-address", "h:1"][..],
                "redis://",
            ),
            (
                &["--directory", "redis://h:1", "--public-address", "h:1"]
                    .into_iter()
                    .chain(["--directory-ca", "ca.pem"])
                    .collect::<Vec<_>>()[..],
                "rediss://",
            ),
            (
                &["--directory", "rediss://h:1", "--public-address", "h:1"]
                    .into_iter()
                    .chain(["--directory-ca", "/no/such/ca.pem"])
                    .collect::<Vec<_>>()[..],
                "cannot read",
            ),
            (
                &[
                    "--directory",
                    "redis://h:1",
                    "--public-address",
                    "[::1]:7777",
                ][..],
                "--public-address",
            ),
            (
                &[
                    "--directory",
                    "redis://h:1",
                    "--public-address",
                    "h:1",
                    "--region",
                    "e u",
                ][..],
                "--region",
            ),
        ] {
            let e = settings(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
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
}
