//! The counter tables: every figure the server publishes, one row each, with its metric and
//! its place in the stats line. Adding a figure is adding its row here (see the
//! [module docs](super) for the whole recipe).
//!
//! Three sets, by who produces them:
//! - [`RUNTIME`]: what the receivers and the workers count themselves
//!   ([`RuntimeStats`], declared by the rows below);
//! - [`SHARD`]: what a shard counts ([`ShardStats`], in `core`), published by its worker;
//! - [`RELAY`]: what a shard's relays count ([`RelayStats`], in `core`), published likewise.
//!
//! Within a set, rows are in the order the stats line and the metric families list them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::table::Section::{Drops, Main, Relay, RelayAuto, RelayDrops};
use super::table::{counter, figure, gauge, key, key_in, series, then, Family, Figure, Kind, Line};
use crate::core::{RelayStats, ShardStats};

/// `rabid_punch_drops_total{reason}`: incoming datagrams not handled, replies not sent.
pub const DROPS: Family = Family {
    name: "rabid_punch_drops",
    kind: Kind::Counter,
    label: "reason",
    help: "Datagrams not handled (incoming) or not sent (outgoing), by reason",
};

/// `rabid_punch_relay_closed_total{reason}`.
pub const RELAY_CLOSED: Family = Family {
    name: "rabid_punch_relay_closed",
    kind: Kind::Counter,
    label: "reason",
    help: "Relays closed, by reason",
};

/// `rabid_punch_relay_drops_total{reason}`.
pub const RELAY_DROPS: Family = Family {
    name: "rabid_punch_relay_drops",
    kind: Kind::Counter,
    label: "reason",
    help: "Datagrams on relay ports not relayed, by reason",
};

/// `rabid_punch_relay_auto_decisions_total{decision}`.
pub const RELAY_AUTO: Family = Family {
    name: "rabid_punch_relay_auto_decisions",
    kind: Kind::Counter,
    label: "decision",
    help: "Starts decided by --relay auto, by decision",
};

/// Declares [`RuntimeStats`] and [`RUNTIME`] from one row per field: a field is declared
/// once, and is both an atomic in [`Counters`](super::Counters) and a sum in
/// [`Totals`](super::Totals).
macro_rules! runtime_stats {
    ($( $(#[$doc:meta])* $field:ident: $metric:expr, $line:expr; )*) => {
        /// What the runtime's threads count themselves: atomics (`T = AtomicU64`) in each
        /// thread's [`Counters`](super::Counters), added up (`T = u64`) in
        /// [`Totals`](super::Totals). Its table is [`RUNTIME`].
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct RuntimeStats<T = u64> {
            $( $(#[$doc])* pub $field: T, )*
        }

        impl RuntimeStats<AtomicU64> {
            /// Adds this thread's figures to `sum`.
            pub(super) fn add_to(&self, sum: &mut RuntimeStats) {
                $( sum.$field += self.$field.load(Relaxed); )*
            }
        }

        /// The table of [`RuntimeStats`].
        pub const RUNTIME: &[Figure<RuntimeStats>] = &[ $( figure!($field, $metric, $line), )* ];
    };
}

runtime_stats! {
    /// Open sessions, as each worker last published them.
    sessions: gauge("rabid_punch_sessions_open",
        "Open sessions, started ones included until they are forgotten."),
        key(Main, "sessions");
    /// Players in open sessions, likewise.
    players: gauge("rabid_punch_players", "Players in open sessions."),
        key(Main, "players");
    datagrams_in: counter("rabid_punch_datagrams_in", "Datagrams received."),
        key_in(Main, "in", "dg");
    bytes_in: counter("rabid_punch_bytes_in", "Bytes received, in UDP payloads."),
        then("B");
    datagrams_out: counter("rabid_punch_datagrams_out", "Datagrams sent."),
        key_in(Main, "out", "dg");
    bytes_out: counter("rabid_punch_bytes_out", "Bytes sent, in UDP payloads."),
        then("B");
    /// Malformed datagrams: long ones answered `error:invalid_request`, short ones not at all.
    malformed: series(&DROPS, "malformed",
        "incoming garbage; answered invalid_request when long enough, else not"),
        key(Main, "malformed");
    unknown_command: series(&DROPS, "unknown_command", "incoming, silently ignored"),
        key(Main, "unknown");
    /// IPs with a send budget bucket, as of the receiver's last sweep (every 5 s).
    budget_tracked_ips: gauge("rabid_punch_budget_tracked_ips",
        "IPs with a send budget being tracked, as of the last sweep (every 5 s)."),
        key(Main, "budget_ips");
    dropped_budget: series(&DROPS, "budget",
        "outgoing reply withheld, the destination's anti-amplification budget is spent"),
        key(Drops, "budget");
    dropped_table_full: series(&DROPS, "budget_table_full",
        "outgoing reply withheld, too many IPs tracked"),
        key(Drops, "budget_table_full");
    dropped_queue_full: series(&DROPS, "queue_full", "incoming, a worker's queue was full"),
        key(Drops, "queue_full");
    send_errors: series(&DROPS, "send_error", "outgoing, the kernel refused the datagram"),
        key(Drops, "send_error");
    /// Datagrams and bytes that arrived on relay ports, strangers' included.
    relay_datagrams_in: counter("rabid_punch_relay_datagrams_in",
        "Datagrams that arrived on relay ports, strangers' included."),
        key_in(Relay, "in", "dg");
    relay_bytes_in: counter("rabid_punch_relay_bytes_in",
        "Bytes that arrived on relay ports (UDP payloads), strangers' included."),
        then("B");
    /// Lobby requests (`d:`, `m:`, `a:1:`) the receiver routed to their session's worker.
    lobby_requests: counter("rabid_punch_lobby_requests",
        "Lobby requests (d:, m:, a:1:) routed to the worker of their session."),
        key(Main, "lobby_requests");
    /// Directory queries (`l:`, `b:1:`, `q:1:`) the directory thread answered.
    directory_queries: counter("rabid_punch_directory_queries",
        "Directory queries (l:, b:1:, q:1:) answered."),
        key(Main, "listings");
    /// Public open lobbies in the directory, as of the last query answered.
    lobbies_listed: gauge("rabid_punch_lobbies_listed",
        "Public open lobbies in the directory, as of the last directory query."),
        key(Main, "lobbies");
    directory_dropped: series(&DROPS, "directory_queue_full",
        "incoming directory query, the directory thread's queue was full"),
        key(Drops, "directory_full");
    relay_dropped_too_big: series(&RELAY_DROPS, "too_big", "longer than a relay forwards"),
        key(RelayDrops, "too_big");
    relay_send_errors: series(&RELAY_DROPS, "send_error", "the kernel refused it"),
        key(RelayDrops, "send_error");
    /// The fleet thread (`--directory`): 1 while connected to Redis. Not in the stats line,
    /// which the fleet thread's own log lines complete.
    fleet_up: gauge("rabid_punch_fleet_up",
        "1 while connected to the fleet's Redis (--directory), else 0."),
        Line::Hidden;
    fleet_nodes: gauge("rabid_punch_fleet_nodes",
        "Other fleet servers seen in Redis at the last poll."),
        Line::Hidden;
    fleet_remote_lobbies: gauge("rabid_punch_fleet_remote_lobbies",
        "Lobbies of other fleet servers listed here, as of the last poll."),
        Line::Hidden;
    fleet_redis_commands: counter("rabid_punch_fleet_redis_commands",
        "Commands sent to the fleet's Redis."),
        Line::Hidden;
    fleet_redis_errors: counter("rabid_punch_fleet_redis_errors",
        "Failed connections to, or exchanges with, the fleet's Redis (each followed by a \
         reconnection with backoff)."),
        Line::Hidden;
    fleet_name_conflicts: counter("rabid_punch_fleet_name_conflicts",
        "Sessions created here under a name another fleet server had claimed an instant \
         before (not published to the fleet)."),
        Line::Hidden;
    fleet_over_cap: counter("rabid_punch_fleet_over_cap",
        "Sessions not published to the fleet: this server had --directory-max-sessions \
         published already."),
        Line::Hidden;
}

/// The table of [`ShardStats`].
pub const SHARD: &[Figure<ShardStats>] = &[
    figure!(
        sessions_created,
        counter("rabid_punch_sessions_created", "Sessions created."),
        key(Main, "created"),
    ),
    figure!(
        sessions_started,
        counter("rabid_punch_sessions_started", "Sessions started."),
        key(Main, "started"),
    ),
    figure!(
        players_joined,
        counter(
            "rabid_punch_players_joined",
            "Players who joined a session (c:), hosts not included."
        ),
        key(Main, "joined"),
    ),
    figure!(
        players_kicked,
        counter(
            "rabid_punch_players_kicked",
            "Players kicked by their host (k:)."
        ),
        key(Main, "kicked"),
    ),
    figure!(
        players_exited,
        counter(
            "rabid_punch_players_exited",
            "Players who left their session (x:)."
        ),
        key(Main, "exited"),
    ),
    figure!(
        sessions_timed_out,
        counter(
            "rabid_punch_sessions_timed_out",
            "Sessions deleted at the end of their lifetime."
        ),
        key(Main, "session_timeouts"),
    ),
    figure!(
        players_timed_out,
        counter(
            "rabid_punch_players_timed_out",
            "Players removed because they were not heard from in time."
        ),
        key(Main, "player_timeouts"),
    ),
    figure!(
        hosts_refused_by_cap,
        series(
            &DROPS,
            "session_cap",
            "incoming host request dropped at a session cap"
        ),
        key(Drops, "session_cap"),
    ),
    figure!(
        joins_refused_by_cap,
        series(
            &DROPS,
            "player_cap",
            "incoming join answered session_full at the total players cap"
        ),
        key(Drops, "player_cap"),
    ),
    figure!(
        chat_lines,
        counter(
            "rabid_punch_chat_lines",
            "Chat lines (m:) sent to a lobby's members."
        ),
        key(Main, "chat"),
    ),
    figure!(
        chat_rate_limited,
        series(
            &DROPS,
            "chat_rate",
            "incoming chat line over its player's rate (5 in a burst, then 1 a second)"
        ),
        key(Drops, "chat_rate"),
    ),
];

/// The table of [`RelayStats`].
pub const RELAY: &[Figure<RelayStats>] = &[
    figure!(
        sessions_relayed,
        counter(
            "rabid_punch_relay_sessions",
            "Sessions started through the relay."
        ),
        key(Relay, "sessions"),
    ),
    figure!(
        fallbacks,
        counter(
            "rabid_punch_relay_fallbacks",
            "Starts the relay policy picked that went direct instead: relay port pool empty, \
             an IP at --relay-max-per-ip, or no address to list."
        ),
        key(Relay, "fallbacks"),
    ),
    figure!(
        closed_idle,
        series(&RELAY_CLOSED, "idle", "--relay-idle"),
        key(Relay, "closed_idle"),
    ),
    figure!(
        closed_unused,
        series(
            &RELAY_CLOSED,
            "unused",
            "no member sent anything within --relay-unused of the start"
        ),
        key(Relay, "closed_unused"),
    ),
    figure!(
        closed_lifetime,
        series(&RELAY_CLOSED, "lifetime", "--relay-lifetime"),
        key(Relay, "closed_lifetime"),
    ),
    figure!(
        ports_in_use,
        gauge(
            "rabid_punch_relay_ports_in_use",
            "Relay ports held by open relays."
        ),
        key(Relay, "ports"),
    ),
    figure!(
        ports_total,
        gauge(
            "rabid_punch_relay_ports",
            "Relay ports bound (the pool); 0 with --relay off."
        ),
        then(""),
    ),
    figure!(
        datagrams,
        counter(
            "rabid_punch_relay_datagrams",
            "Datagrams relayed between members of relayed sessions."
        ),
        key_in(Relay, "forwarded", "dg"),
    ),
    figure!(
        bytes,
        counter(
            "rabid_punch_relay_bytes",
            "Bytes relayed (UDP payloads); the server sends what it receives, so its \
             bandwidth for relaying is about twice this."
        ),
        then("B"),
    ),
    figure!(
        dropped_strangers,
        series(
            &RELAY_DROPS,
            "stranger",
            "on a relay's port, not from a member"
        ),
        key(RelayDrops, "strangers"),
    ),
    figure!(
        dropped_unheld_port,
        series(
            &RELAY_DROPS,
            "unheld_port",
            "on a port of the pool no relay holds: mostly greetings aimed at a relay port's \
             neighbours"
        ),
        key(RelayDrops, "unheld_port"),
    ),
    figure!(
        dropped_budget,
        series(
            &RELAY_DROPS,
            "budget",
            "over --relay-session-rate or --relay-ip-rate"
        ),
        key(RelayDrops, "budget"),
    ),
    figure!(
        auto_retries,
        series(
            &RELAY_AUTO,
            "retry",
            "two of its players started together within --relay-auto-window: relayed"
        ),
        key(RelayAuto, "retries"),
    ),
    figure!(
        auto_direct_local,
        series(
            &RELAY_AUTO,
            "local",
            "every player on the server's own machine: direct"
        ),
        key(RelayAuto, "direct_local"),
    ),
    figure!(
        auto_direct_new,
        series(
            &RELAY_AUTO,
            "new_group",
            "no recent start of its players: direct"
        ),
        key(RelayAuto, "direct_new"),
    ),
];

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::fmt::Debug;

    use super::*;
    use crate::runtime::stats::table::{Line, Metric};

    /// The field names of a set, from its `Debug` text: `Name { a: 0, b: 0 }`.
    fn fields<S: Debug + Default>() -> Vec<String> {
        let text = format!("{:?}", S::default());
        let inner = text.split_once('{').unwrap().1.trim_end_matches('}');
        inner
            .split(',')
            .map(|f| f.split_once(':').unwrap().0.trim().to_string())
            .collect()
    }

    /// Every field has exactly one row, and each row reads and writes its own field.
    fn complete<S: Debug + Default>(table: &[Figure<S>]) {
        let mut rows: Vec<&str> = table.iter().map(|f| f.field).collect();
        let mut names = fields::<S>();
        rows.sort_unstable();
        names.sort_unstable();
        assert_eq!(
            rows, names,
            "each field needs one row in src/runtime/stats/sets.rs"
        );
        let mut stats = S::default();
        for (n, figure) in (1..).zip(table) {
            (figure.set)(&mut stats, n);
        }
        for (n, figure) in (1..).zip(table) {
            assert_eq!((figure.get)(&stats), n, "{}", figure.field);
        }
    }

    #[test]
    fn every_field_of_every_set_has_one_row() {
        complete(RUNTIME);
        complete(SHARD);
        complete(RELAY);
    }

    #[test]
    fn no_two_rows_share_a_series_or_a_stats_line_key() {
        let mut series = HashSet::new();
        let mut keys = HashSet::new();
        let tables = [
            RUNTIME
                .iter()
                .map(|f| (&f.metric, &f.line))
                .collect::<Vec<_>>(),
            SHARD.iter().map(|f| (&f.metric, &f.line)).collect(),
            RELAY.iter().map(|f| (&f.metric, &f.line)).collect(),
        ];
        for table in tables {
            for (i, (metric, line)) in table.iter().enumerate() {
                let name = match metric {
                    Metric::Single { name, .. } => name.to_string(),
                    Metric::Series { family, value, .. } => format!("{}{{{value}}}", family.name),
                };
                assert!(name.starts_with("rabid_punch_"), "{name}");
                assert!(series.insert(name.clone()), "{name} twice");
                match line {
                    Line::Key { section, key, .. } => {
                        assert!(keys.insert((*section, *key)), "{key} twice in {section:?}");
                    }
                    Line::Then { .. } => assert!(
                        i > 0 && !matches!(table[i - 1].1, Line::Hidden),
                        "{name}: `then` needs a shown row before it"
                    ),
                    Line::Hidden => {}
                }
            }
        }
    }
}
