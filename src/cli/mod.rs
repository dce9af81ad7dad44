//! The command line of the server: every setting is a flag with the protocol's default.
//!
//! - this module: the flags ([`Args`]) and [`parse`];
//! - `settings.rs`: the defaults ([`Settings::default`]) and the checks and conversion of the
//!   flags into the configuration the server runs with ([`Args::settings`]);
//! - `values.rs`: durations, port ranges and the words of `--relay` and `--scheduling`, read
//!   and written;
//! - `help.rs`: the defaults that `--help` shows.
//!
//! Each default is written once, in the `Default` of its configuration struct (or in
//! [`Settings::default`] for the few the command line changes): a flag's `default =` reads it
//! through [`defaults`], and `--help` shows it from there, so the doc comments of the flags
//! below carry no values. Adding a flag: its field here, with `default = "defaults()...."`;
//! its field name in `help.rs`'s list when it has a value to show; its use in
//! [`Args::settings`].

mod help;
mod settings;
mod values;

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use argh::{EarlyExit, FromArgs};

use crate::core::RelayMode;
use crate::logging::LogTarget;
use crate::runtime::{RelayIo, Scheduling};
pub use settings::{defaults, Settings};
pub use values::{
    parse_duration, parse_port_range, parse_relay_io, parse_relay_mode, parse_scheduling,
};

/// Parses the server's flags (without the program name). `--help` is argh's, with each flag's
/// default added.
pub fn parse(args: &[&str]) -> Result<Args, EarlyExit> {
    Args::from_args(&["rabid-punch"], args).map_err(|mut exit| {
        if exit.status.is_ok() {
            exit.output = help::with_defaults(&exit.output);
        }
        exit
    })
}

/// What `--log-file` writes for a log target.
fn log_file_text(target: &LogTarget) -> String {
    match target {
        LogTarget::Stdout => "-".into(),
        LogTarget::File(path) => path.display().to_string(),
    }
}

/// rabid-punch: a UDP rendezvous server for NAT hole punching, speaking the Rabid hole-punch
/// protocol. Durations take a unit: 50ms, 5s, 15m, 1h.
#[derive(FromArgs, Debug)]
pub struct Args {
    /// UDP port to listen on (0 picks a free one)
    #[argh(option, default = "defaults().server.bind.port()")]
    pub port: u16,

    /// address to listen on (`::` listens on IPv6 and IPv4 both)
    #[argh(option, default = "defaults().server.bind.ip()")]
    pub bind: IpAddr,

    /// worker threads, each owning a share of the sessions (default: one per core)
    #[argh(option)]
    pub workers: Option<usize>,

    /// log every datagram received and sent, like the original's DEBUG mode
    #[argh(switch)]
    pub debug: bool,

    /// log file, rotated by size (`-` logs to standard output only)
    #[argh(option, default = "log_file_text(&defaults().log.target)")]
    pub log_file: String,

    /// size in bytes at which the log file is rotated
    #[argh(option, default = "defaults().log.max_bytes")]
    pub log_max_bytes: usize,

    /// rotated log files kept besides the current one
    #[argh(option, default = "defaults().log.keep")]
    pub log_keep: usize,

    /// a player not heard from for this long is removed
    #[argh(
        option,
        default = "defaults().server.core.player_timeout",
        from_str_fn(parse_duration)
    )]
    pub player_timeout: Duration,

    /// a session is deleted this long after its creation
    #[argh(
        option,
        default = "defaults().server.core.session_lifetime",
        from_str_fn(parse_duration)
    )]
    pub session_lifetime: Duration,

    /// time between two sends of the start message
    #[argh(
        option,
        default = "defaults().server.core.start_interval",
        from_str_fn(parse_duration)
    )]
    pub start_interval: Duration,

    /// how many times the start message is sent to a player that does not confirm
    #[argh(option, default = "defaults().server.core.start_sends")]
    pub start_sends: u8,

    /// how many times player_timeout and session_timeout errors are sent
    #[argh(option, default = "defaults().server.core.error_repeats")]
    pub error_repeats: u8,

    /// time between two sends of a repeated error
    #[argh(
        option,
        default = "defaults().server.core.error_repeat_interval",
        from_str_fn(parse_duration)
    )]
    pub error_repeat_interval: Duration,

    /// batches of datagrams a worker may have waiting before new ones for it are dropped
    #[argh(option, default = "defaults().server.queue_capacity")]
    pub queue_capacity: usize,

    /// receiver threads, each reading its own socket of the port (SO_REUSEPORT); one receiver
    /// keeps about two workers busy, so give one per two workers on a big box
    #[argh(option, default = "defaults().server.receivers")]
    pub receivers: usize,

    /// how the threads that move datagrams are scheduled: batch (Linux SCHED_BATCH: a woken
    /// thread does not preempt a busy one, so datagrams are taken in larger batches) or normal
    #[argh(
        option,
        default = "defaults().server.scheduling",
        from_str_fn(parse_scheduling)
    )]
    pub scheduling: Scheduling,

    /// open sessions at most, in total; further hosts are dropped
    #[argh(option, default = "defaults().server.core.caps.max_sessions")]
    pub max_sessions: usize,

    /// open sessions at most per host IPv4 address or IPv6 /64
    #[argh(option, default = "defaults().server.core.caps.max_sessions_per_ip")]
    pub max_sessions_per_ip: usize,

    /// players at most, in total; further joins get session_full
    #[argh(option, default = "defaults().server.core.caps.max_players")]
    pub max_players: usize,

    /// bytes the server may send to one IP at once: the send budget's burst
    #[argh(option, default = "defaults().server.budget.burst")]
    pub budget_burst: u64,

    /// bytes per second an IP's send budget refills by
    #[argh(option, default = "defaults().server.budget.refill_per_sec")]
    pub budget_refill: u64,

    /// budget bytes an IP earns per byte received from it
    #[argh(option, default = "defaults().server.budget.earn_factor")]
    pub budget_earn_factor: u64,

    /// IPs whose send budget is tracked at most; past it, new IPs get no reply
    #[argh(option, default = "defaults().server.budget.max_tracked")]
    pub budget_max_tracked: usize,

    /// relay started sessions through the server, for players whose NATs cannot be punched:
    /// off, auto (a host that starts again within --relay-auto-window, i.e. a retry after a
    /// failed punch) or always
    #[argh(
        option,
        default = "defaults().server.core.relay.mode",
        from_str_fn(parse_relay_mode)
    )]
    pub relay: RelayMode,

    /// UDP ports the relay may use, e.g. 7778-8777: open them in the firewall
    #[argh(
        option,
        default = "defaults().server.relay_ports.clone()",
        from_str_fn(parse_port_range)
    )]
    pub relay_ports: RangeInclusive<u16>,

    /// how workers move relayed datagrams: uring (io_uring: one system call per turn for all
    /// of a worker's relay ports), epoll (a receive and a send call per port), or auto (uring
    /// where the kernel allows it, else epoll)
    #[argh(
        option,
        default = "defaults().server.relay_io",
        from_str_fn(parse_relay_io)
    )]
    pub relay_io: RelayIo,

    /// the address relayed start messages list, e.g. the public IP of a cloud box behind 1:1
    /// NAT (default: the address each start request arrived on)
    #[argh(option)]
    pub relay_public_ip: Option<IpAddr>,

    /// a relay with no traffic for this long closes
    #[argh(
        option,
        default = "defaults().server.core.relay.idle_timeout",
        from_str_fn(parse_duration)
    )]
    pub relay_idle: Duration,

    /// a relay through which no member sent anything this long after its start closes, so that
    /// starts forged from other people's addresses cannot hold the pool
    #[argh(
        option,
        default = "defaults().server.core.relay.unused_timeout",
        from_str_fn(parse_duration)
    )]
    pub relay_unused: Duration,

    /// a relay closes this long after its session started, busy or not: a game played through
    /// the relay for longer loses its connection
    #[argh(
        option,
        default = "defaults().server.core.relay.lifetime",
        from_str_fn(parse_duration)
    )]
    pub relay_lifetime: Duration,

    /// with --relay auto, a start is relayed when its host IP started a session less than this
    /// ago
    #[argh(
        option,
        default = "defaults().server.core.relay.auto_window",
        from_str_fn(parse_duration)
    )]
    pub relay_auto_window: Duration,

    /// bytes per second one relayed session may forward, and its burst
    #[argh(
        option,
        default = "defaults().server.core.relay.limits.session_bytes_per_sec"
    )]
    pub relay_session_rate: u64,

    /// bytes per second one IP may send through relays, and its burst
    #[argh(
        option,
        default = "defaults().server.core.relay.limits.ip_bytes_per_sec"
    )]
    pub relay_ip_rate: u64,

    /// relayed sessions one IPv4 address or IPv6 /64 may be part of at once
    #[argh(
        option,
        default = "defaults().server.core.relay.limits.max_sessions_per_ip"
    )]
    pub relay_max_per_ip: u32,

    /// time between two stats lines in the log
    #[argh(
        option,
        default = "defaults().stats_interval",
        from_str_fn(parse_duration)
    )]
    pub stats_interval: Duration,

    /// serve HTTP at ADDR, e.g. 127.0.0.1:9777: Prometheus metrics at /metrics and the lobby
    /// directory as JSON at /lobbies?game=G (default: off; keep /metrics off the internet)
    #[argh(option)]
    pub http: Option<String>,

    /// the same as --http (its older name)
    #[argh(option)]
    pub metrics: Option<String>,

    /// share the lobby directory with a fleet of servers through Redis at
    /// redis://[:PASSWORD@]HOST:PORT[/DB], or rediss://... for TLS (default: off, this server's
    /// directory alone); needs --public-address
    #[argh(option)]
    pub directory: Option<String>,

    /// with --directory rediss://...: a PEM file of the certificate authority that signed the
    /// Redis server's certificate, trusted besides the system's (default: the system's only)
    #[argh(option)]
    pub directory_ca: Option<String>,

    /// with --directory: put before every Redis key name (default: rabid:)
    #[argh(option)]
    pub directory_prefix: Option<String>,

    /// with --directory: sessions this server publishes to the fleet at most (default: 100000)
    #[argh(option)]
    pub directory_max_sessions: Option<usize>,

    /// with --directory: HOST:PORT players reach this server at, shown with its lobbies on the
    /// other servers (HOST a DNS name or IPv4 address)
    #[argh(option)]
    pub public_address: Option<String>,

    /// with --directory: this server's region label, shown with its lobbies (default: default)
    #[argh(option)]
    pub region: Option<String>,

    /// serve hand-overs to a successor (--takeover) on this Unix socket, owner-only (default:
    /// $RUNTIME_DIRECTORY/control.sock when systemd gives a runtime directory, else off)
    #[argh(option)]
    pub control_socket: Option<String>,

    /// take over the sockets, sessions and relays of the server running with the same
    /// --control-socket, which exits once this one serves: an upgrade or a change of flags
    /// that loses no player
    #[argh(switch)]
    pub takeover: bool,

    /// with --takeover: serve in the background, and exit (0, or 1 with the reason) once the
    /// hand-over is done, as systemd's ExecReload wants
    #[argh(switch)]
    pub detach: bool,

    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
}
