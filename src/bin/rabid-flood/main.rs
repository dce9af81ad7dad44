//! rabid-flood: load generator for rabid-punch, and for rabid-echo, its yardstick.
//!
//! Every simulated player has its own UDP socket (so the server sees as many addresses as
//! players, spread over many loopback source IPs), and a few threads each own a slice of the
//! sockets and read them nonblocking (`recv`, or `recvmmsg` where several replies are due): no
//! epoll, no thread per player. Two modes:
//! - `ping`: join S sessions x P players, then ping them (closed or open loop); replies/s, loss,
//!   latency percentiles, and CPU per reply of the generator and (with `--server-pid`) the server.
//!   With `--lobbies N`, N public lobbies are listed first; with `--list-rate R`, a listing flood
//!   (`l:` and `b:1:`) runs from sockets of its own meanwhile (lobbies.rs).
//! - `lifecycle`: whole sessions (host, joins, start, confirmations) as fast as possible;
//!   lifecycles/s and server CPU per lifecycle.
//! - `relay`: two-player sessions started through a server with `--relay always`, then game
//!   datagrams between the peers through their relay ports (closed loop); forwarded
//!   datagrams/s, loss, latency, and CPU per forwarded datagram. `--echo` runs the same load
//!   against rabid-echo, the yardstick for one datagram in, one out.
//!
//! Every reply is checked byte for byte; a wrong or missing reply is a failure (exit status 1),
//! not a number. Runs are bounded in time and count and only aim at loopback addresses unless
//! `--allow-remote` is given.

mod cli;
mod lifecycle;
mod lobbies;
mod meter;
mod net;
mod ping;
mod proto;
mod relay;
mod report;
mod setup;
mod threads;

#[cfg(test)]
mod fake;

use cli::{LifecycleArgs, Mode, PingArgs, RelayArgs, TopLevel};
use report::{cpu_line, threads_line, us_per, Json};

fn main() {
    let top: TopLevel = argh::from_env();
    let result = match &top.mode {
        Mode::Ping(args) => ping::run(args).map(|o| print_ping(args, &o)),
        Mode::Lifecycle(args) => lifecycle::run(args).map(|o| print_lifecycle(args, &o)),
        Mode::Relay(args) => relay::run(args).map(|o| print_relay(args, &o)),
    };
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("rabid-flood: {e}");
            std::process::exit(2);
        }
    }
}

/// Prints the ping summary; returns whether every reply was right and none was lost.
fn print_ping(args: &PingArgs, o: &ping::Outcome) -> bool {
    let window = o.window.unwrap_or_default();
    let secs = window.wall.as_secs_f64();
    let per_s = if secs > 0.0 {
        o.replies as f64 / secs
    } else {
        0.0
    };
    let (p50, p99, max, mean) = o.latency.summary();
    let loss = if o.sent > 0 {
        o.lost as f64 / o.sent as f64 * 100.0
    } else {
        0.0
    };
    let list_wrong = o.listing.as_ref().map_or(0, |l| l.wrong.count);
    let ok = o.wrong.count == 0 && o.lost == 0 && o.replies > 0 && list_wrong == 0;
    let rss = if args.echo { None } else { o.server_rss };
    let listing = o.listing.as_ref();
    let list_per_s = listing.map(|l| {
        if secs > 0.0 {
            l.replies as f64 / secs
        } else {
            0.0
        }
    });
    let players = (args.sessions * args.players) as f64;
    let per_player = rss.map(|(a, b)| (b as f64 - a as f64) / players);
    let target_kind = if args.echo {
        "rabid-echo"
    } else {
        "rabid-punch"
    };
    let load = match args.rate {
        Some(r) => format!("open loop at {r} pings/s"),
        None => format!(
            "closed loop, {} pings outstanding in total",
            args.outstanding
        ),
    };
    if args.json {
        let json = Json::new()
            .str("mode", "ping")
            .str("target", &args.target.to_string())
            .bool("echo", args.echo)
            .num("sessions", args.sessions as f64)
            .num("players", args.players as f64)
            .num("threads", args.threads as f64)
            .num("outstanding", args.outstanding as f64)
            .opt("rate", args.rate.map(|r| r as f64))
            .num("setup_s", o.setup.as_secs_f64())
            .num("window_s", secs)
            .num("sent", o.sent as f64)
            .num("replies", o.replies as f64)
            .num("replies_per_s", per_s)
            .num("lost", o.lost as f64)
            .num("loss_pct", loss)
            .num("late", o.late as f64)
            .num("blocked", o.blocked as f64)
            .num("polls_per_reply", ratio(o.polls, o.replies))
            .num("wrong", o.wrong.count as f64)
            .num("p50_us", p50 as f64)
            .num("p99_us", p99 as f64)
            .num("max_us", max as f64)
            .num("mean_us", mean)
            .num("gen_cpu_s", window.own_cpu.as_secs_f64())
            .opt(
                "gen_cpu_us_per_reply",
                us_per(Some(window.own_cpu), o.replies),
            )
            .opt("server_cpu_s", window.server_cpu.map(|c| c.as_secs_f64()))
            .opt(
                "server_cpu_us_per_reply",
                us_per(window.server_cpu, o.replies),
            )
            .threads(window.server_threads, o.replies, "reply")
            .opt("server_rss_before", rss.map(|r| r.0 as f64))
            .opt("server_rss_joined", rss.map(|r| r.1 as f64))
            .opt("server_bytes_per_player", per_player)
            .num("lobbies", o.lobbies.map_or(0, |l| l.total()) as f64)
            .opt("lobby_setup_s", o.lobbies.map(|l| l.setup.as_secs_f64()))
            .opt("list_rate", args.list_rate.map(|r| r as f64))
            .opt("list_sent", listing.map(|l| l.sent as f64))
            .opt("list_replies", listing.map(|l| l.replies as f64))
            .opt("list_replies_per_s", list_per_s)
            .opt("list_unanswered", listing.map(|l| l.unanswered as f64))
            .opt("list_blocked", listing.map(|l| l.blocked as f64))
            .opt("list_wrong", listing.map(|l| l.wrong.count as f64))
            .bool("ok", ok)
            .finish();
        println!("{json}");
    } else {
        println!(
            "rabid-flood ping -> {} ({target_kind}): {} sessions x {} players = {} sockets, {} \
             thread(s), {load}",
            args.target,
            args.sessions,
            args.players,
            args.sessions * args.players,
            args.threads
        );
        if !args.echo {
            println!(
                "  setup:    all players joined in {:.2} s",
                o.setup.as_secs_f64()
            );
        }
        println!(
            "  window:   {secs:.2} s, {} replies = {per_s:.0} replies/s",
            o.replies
        );
        println!(
            "  checked:  {} pings sent, {} lost ({loss:.3}%), {} late, {} wrong, {} not sent \
             (socket buffer full)",
            o.sent, o.lost, o.late, o.wrong.count, o.blocked
        );
        println!(
            "  generator: {:.2} receive calls per reply",
            ratio(o.polls, o.replies)
        );
        println!("  latency:  p50 {p50} us, p99 {p99} us, max {max} us, mean {mean:.0} us");
        println!(
            "  generator CPU: {}",
            cpu_line(Some(window.own_cpu), window.wall, o.replies, "reply")
        );
        println!(
            "  server CPU:    {}",
            cpu_line(window.server_cpu, window.wall, o.replies, "reply")
        );
        if let Some(line) = threads_line(window.server_threads, o.replies, "reply") {
            println!("  server threads: {line}");
        }
        if let Some(l) = o.lobbies {
            println!(
                "  lobbies:  {} public ({} with d:, listed by l:; {} with a:1:, listed by b:1:) \
                 listed in {:.2} s before the flood",
                l.total(),
                l.compat,
                l.game,
                l.setup.as_secs_f64()
            );
        }
        if let (Some(l), Some(per_s)) = (listing, list_per_s) {
            println!(
                "  listings: {} sent in the window at {} /s, {} replies = {per_s:.0}/s, {} \
                 unanswered, {} wrong, {} not sent (socket buffer full)",
                l.sent,
                args.list_rate.unwrap_or(0),
                l.replies,
                l.unanswered,
                l.wrong.count,
                l.blocked
            );
        }
        if let (Some((a, b)), Some(per)) = (rss, per_player) {
            println!(
                "  server memory: {:.1} MB resident before, {:.1} MB with every player joined: \
                 {per:.0} bytes per player (sockets' buffers and allocator slack included)",
                a as f64 / 1e6,
                b as f64 / 1e6
            );
        }
    }
    print_failures(&o.wrong);
    if let Some(l) = listing {
        print_failures(&l.wrong);
    }
    ok
}

/// Prints the lifecycle summary; returns whether every lifecycle completed.
fn print_lifecycle(args: &LifecycleArgs, o: &lifecycle::Outcome) -> bool {
    let w = o.window;
    let secs = w.wall.as_secs_f64();
    let per_s = if secs > 0.0 {
        o.completed as f64 / secs
    } else {
        0.0
    };
    let (p50, p99, max, mean) = o.latency.summary();
    let ok = o.failed.count == 0 && o.completed > 0;
    if args.json {
        let json = Json::new()
            .str("mode", "lifecycle")
            .str("target", &args.target.to_string())
            .num("players", args.players as f64)
            .num("concurrency", args.concurrency as f64)
            .num("threads", args.threads as f64)
            .num("window_s", secs)
            .num("started", o.started as f64)
            .num("completed", o.completed as f64)
            .num("failed", o.failed.count as f64)
            .num("duplicates", o.duplicates as f64)
            .num("lifecycles_per_s", per_s)
            .num("p50_us", p50 as f64)
            .num("p99_us", p99 as f64)
            .num("max_us", max as f64)
            .num("mean_us", mean)
            .num("gen_cpu_s", w.own_cpu.as_secs_f64())
            .opt(
                "gen_cpu_us_per_lifecycle",
                us_per(Some(w.own_cpu), o.completed),
            )
            .opt("server_cpu_s", w.server_cpu.map(|c| c.as_secs_f64()))
            .opt(
                "server_cpu_us_per_lifecycle",
                us_per(w.server_cpu, o.completed),
            )
            .bool("ok", ok)
            .finish();
        println!("{json}");
    } else {
        println!(
            "rabid-flood lifecycle -> {}: {} players per session, {} sessions in flight, {} \
             thread(s)",
            args.target, args.players, args.concurrency, args.threads
        );
        println!(
            "  window:   {secs:.2} s, {} started, {} completed = {per_s:.0} lifecycles/s, {} \
             failed",
            o.started, o.completed, o.failed.count
        );
        println!(
            "  lifecycle duration: p50 {p50} us, p99 {p99} us, max {max} us, mean {mean:.0} us \
             ({} duplicate start messages)",
            o.duplicates
        );
        println!(
            "  generator CPU: {}",
            cpu_line(Some(w.own_cpu), w.wall, o.completed, "lifecycle")
        );
        println!(
            "  server CPU:    {}",
            cpu_line(w.server_cpu, w.wall, o.completed, "lifecycle")
        );
    }
    print_failures(&o.failed);
    ok
}

/// Prints the relay summary; returns whether every datagram that arrived was right. Loss is
/// reported, not a failure: UDP under a closed-loop flood may drop, and the figure says how much.
fn print_relay(args: &RelayArgs, o: &relay::Outcome) -> bool {
    let window = o.window.unwrap_or_default();
    let secs = window.wall.as_secs_f64();
    let per_s = if secs > 0.0 {
        o.forwarded as f64 / secs
    } else {
        0.0
    };
    let (p50, p99, max, mean) = o.latency.summary();
    let loss = if o.sent > 0 {
        o.lost as f64 / o.sent as f64 * 100.0
    } else {
        0.0
    };
    let ok = o.wrong.count == 0 && o.forwarded > 0;
    let target_kind = if args.echo {
        "rabid-echo"
    } else {
        "rabid-punch relay"
    };
    if args.json {
        let json = Json::new()
            .str("mode", "relay")
            .str("target", &args.target.to_string())
            .bool("echo", args.echo)
            .num("sessions", args.sessions as f64)
            .num("players", relay::PLAYERS as f64)
            .num("threads", args.threads as f64)
            .num("window", args.window as f64)
            .num(
                "in_flight",
                args.in_flight
                    .unwrap_or(args.window * args.sessions * relay::PLAYERS) as f64,
            )
            .num("bytes", args.bytes as f64)
            .num("setup_s", o.setup.as_secs_f64())
            .num("window_s", secs)
            .num("sent", o.sent as f64)
            .num("forwarded", o.forwarded as f64)
            .num("datagrams_per_s", per_s)
            .num("bytes_per_s", per_s * args.bytes as f64)
            .num("lost", o.lost as f64)
            .num("loss_pct", loss)
            .num("late", o.late as f64)
            .num("blocked", o.blocked as f64)
            .num("polls_per_datagram", ratio(o.polls, o.forwarded))
            .num("wrong", o.wrong.count as f64)
            .num("p50_us", p50 as f64)
            .num("p99_us", p99 as f64)
            .num("max_us", max as f64)
            .num("mean_us", mean)
            .num("gen_cpu_s", window.own_cpu.as_secs_f64())
            .opt(
                "gen_cpu_us_per_datagram",
                us_per(Some(window.own_cpu), o.forwarded),
            )
            .opt("server_cpu_s", window.server_cpu.map(|c| c.as_secs_f64()))
            .opt(
                "server_cpu_us_per_datagram",
                us_per(window.server_cpu, o.forwarded),
            )
            .threads(window.server_threads, o.forwarded, "datagram")
            .bool("ok", ok)
            .finish();
        println!("{json}");
    } else {
        println!(
            "rabid-flood relay -> {} ({target_kind}): {} sessions x {} players, {} datagram(s) \
             of {} bytes in flight per player, {} thread(s)",
            args.target,
            args.sessions,
            relay::PLAYERS,
            args.window,
            args.bytes,
            args.threads
        );
        if !args.echo {
            println!(
                "  setup:    sessions started and relays learned in {:.2} s",
                o.setup.as_secs_f64()
            );
        }
        if let Some(n) = args.in_flight {
            println!("  load:     {n} datagram(s) in flight in all, passed from player to player");
        }
        println!(
            "  window:   {secs:.2} s, {} datagrams arrived = {per_s:.0} datagrams/s = {:.1} MB/s \
             of payload",
            o.forwarded,
            per_s * args.bytes as f64 / 1e6
        );
        println!(
            "  checked:  {} sent, {} lost ({loss:.3}%), {} late, {} wrong, {} not sent (socket \
             buffer full)",
            o.sent, o.lost, o.late, o.wrong.count, o.blocked
        );
        println!(
            "  generator: {:.2} receive calls per datagram",
            ratio(o.polls, o.forwarded)
        );
        println!(
            "  latency (send to arrival, one pass through the {}): p50 {p50} us, p99 {p99} us, max {max} us, \
             mean {mean:.0} us",
            if args.echo { "echo" } else { "relay" }
        );
        println!(
            "  generator CPU: {}",
            cpu_line(Some(window.own_cpu), window.wall, o.forwarded, "datagram")
        );
        println!(
            "  server CPU:    {}",
            cpu_line(window.server_cpu, window.wall, o.forwarded, "datagram")
        );
        if let Some(line) = threads_line(window.server_threads, o.forwarded, "datagram") {
            println!("  server threads: {line}");
        }
    }
    print_failures(&o.wrong);
    ok
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The first few failures go to stderr, so `--json` output stays one line on stdout.
fn print_failures(f: &report::Failures) {
    if f.count == 0 {
        return;
    }
    eprintln!("rabid-flood: {} failure(s); the first ones:", f.count);
    for s in &f.samples {
        eprintln!("  {s}");
    }
}
