//! `rabid-punch`: runs the server (or, as `rabid-punch client ...`, the client).

use std::io::ErrorKind;
use std::process::ExitCode;

use crossbeam_channel::{select, tick};
use log::{error, info};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use rabid_punch::cli::{self, Args};
use rabid_punch::logging;
use rabid_punch::metrics;
use rabid_punch::runtime::Server;

/// Exit code when a thread of the server died: the process must not serve on with a shard gone.
const EXIT_THREAD_DIED: u8 = 70;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("client") {
        return rabid_punch::client::run_cli(&argv[2..]);
    }
    let rest: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
    let args = match cli::parse(&rest) {
        Ok(args) => args,
        Err(exit) if exit.status.is_ok() => {
            println!("{}", exit.output.trim_end());
            return ExitCode::SUCCESS;
        }
        Err(exit) => {
            let first = exit.output.lines().next().unwrap_or("bad arguments");
            eprintln!("rabid-punch: {first} (see rabid-punch --help)");
            return ExitCode::from(2);
        }
    };
    if args.version {
        println!("rabid-punch {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    match run(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("rabid-punch: {message}");
            log::logger().flush();
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args) -> Result<ExitCode, String> {
    let settings = args.settings()?;
    logging::init(&settings.log)?;
    // A panic is logged as one line (to the file too) before the thread dies.
    std::panic::set_hook(Box::new(|panic| {
        let thread = std::thread::current();
        error!("thread {} panicked: {panic}", thread.name().unwrap_or("?"));
    }));
    let mut signals =
        Signals::new([SIGINT, SIGTERM]).map_err(|e| format!("cannot handle signals: {e}"))?;
    let (signal_tx, signal_rx) = crossbeam_channel::bounded(4);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let _ = signal_tx.send(signal);
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;

    // Bound before the UDP socket, so that a bad address stops the start before anything serves.
    let metrics = settings.metrics.map(metrics::Endpoint::bind).transpose()?;
    let bind = settings.server.bind;
    let workers = settings.server.workers;
    let server = Server::start(settings.server).map_err(|e| match e.kind() {
        ErrorKind::AddrInUse => {
            format!("cannot listen on {bind}: the port is already in use (another rabid-punch?)")
        }
        _ => format!("cannot listen on {bind}: {e}"),
    })?;
    let _metrics = match metrics {
        Some(endpoint) => {
            let serving = endpoint
                .serve(server.probe(), server.directory())
                .map_err(|e| format!("cannot start the metrics thread: {e}"))?;
            info!(
                "metrics at http://{}{}",
                serving.local_addr(),
                metrics::PATH
            );
            Some(serving)
        }
        None => None,
    };
    info!(
        "rabid-punch {} listening on {} with {workers} workers",
        env!("CARGO_PKG_VERSION"),
        server.local_addr()
    );
    let stats = tick(settings.stats_interval);
    loop {
        select! {
            recv(signal_rx) -> signal => {
                info!("signal {}: stopping", signal.unwrap_or(0));
                break;
            }
            recv(server.exits()) -> exit => {
                let what = exit.map_or_else(
                    |_| "a thread".to_string(),
                    |e| format!("thread {} {}", e.thread, if e.panicked { "panicked" } else { "stopped" }),
                );
                error!("{what}: the server stops rather than run on without it");
                log::logger().flush();
                return Ok(ExitCode::from(EXIT_THREAD_DIED));
            }
            recv(stats) -> _ => info!("stats: {}", server.totals()),
        }
    }
    let totals = server.shutdown();
    info!("stopped; stats: {totals}");
    log::logger().flush();
    Ok(ExitCode::SUCCESS)
}
