//! `rabid-punch`: runs the server (or, as `rabid-punch client ...`, the client).

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{select, tick};
use log::{error, info, warn};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use rabid_punch::cli::{self, Args};
use rabid_punch::logging;
use rabid_punch::metrics;
use rabid_punch::runtime::handover::{notify, serve};
use rabid_punch::{detach, start};

/// Exit code when a thread of the server died: the process must not serve on with a shard gone.
const EXIT_THREAD_DIED: u8 = 70;

/// The longest the server waits for systemd to read a notification.
const NOTIFY_WAIT: Duration = Duration::from_secs(5);

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
    // Before any thread: a fork copies only the thread that calls it.
    let report = if settings.detach {
        match detach::fork()? {
            detach::Side::Parent(code) => return Ok(code),
            detach::Side::Child(report) => Some(report),
        }
    } else {
        None
    };
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

    let workers = settings.server.workers;
    let started = if settings.takeover {
        start::taking_over(&settings)?
    } else {
        start::fresh(&settings)?
    };
    let start::Started {
        server,
        metrics,
        control,
    } = started;
    let _metrics = match metrics {
        Some(endpoint) => {
            let http_fd = endpoint.as_raw_fd();
            let serving = endpoint
                .serve(server.probe(), server.directory())
                .map_err(|e| format!("cannot start the metrics thread: {e}"))?;
            info!(
                "metrics at http://{}{}",
                serving.local_addr(),
                metrics::PATH
            );
            Some((serving, http_fd))
        }
        None => None,
    };
    let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
    let control_stop = Arc::new(AtomicBool::new(false));
    let control = match control {
        Some(listener) => {
            let path = listener.path().to_path_buf();
            let extras = serve::Extras {
                http: _metrics.as_ref().map(|(s, fd)| (s.local_addr(), *fd)),
            };
            let thread = serve::spawn(
                listener,
                server.handover(),
                extras,
                ready_tx,
                control_stop.clone(),
            )
            .map_err(|e| format!("cannot start the control thread: {e}"))?;
            info!("hand-overs at {}", path.display());
            Some((thread, path))
        }
        None => None,
    };
    info!(
        "rabid-punch {} listening on {} with {workers} workers",
        env!("CARGO_PKG_VERSION"),
        server.local_addr()
    );
    if let Some(mut report) = report {
        // The parent, waiting for this, exits 0.
        let _ = report.write_all(b"ok\n");
    } else if !settings.takeover {
        if let Err(e) = notify::notify("READY=1", NOTIFY_WAIT) {
            warn!("systemd: cannot say the service is ready ({e})");
        }
    }
    let stats = tick(settings.stats_interval);
    let mut handed_over = false;
    loop {
        select! {
            recv(signal_rx) -> signal => {
                info!("signal {}: stopping", signal.unwrap_or(0));
                break;
            }
            recv(ready_rx) -> ready => {
                let Ok(ready) = ready else { continue };
                let pid = ready.successor.pid;
                if ready.confirm(&server.handover()) {
                    info!("handed over to pid {pid}, which serves now; exiting");
                    // systemd follows the successor from here (with Type=notify).
                    if let Err(e) = notify::notify(&format!("MAINPID={pid}"), NOTIFY_WAIT) {
                        warn!("systemd: cannot tell it the successor's pid ({e})");
                    }
                    handed_over = true;
                    break;
                }
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
    if let Some((serving, _)) = _metrics {
        serving.stop();
    }
    control_stop.store(true, Ordering::Relaxed);
    if let Some((thread, path)) = control {
        let _ = thread.join();
        // After a hand-over the successor listens on that very socket.
        if !handed_over {
            let _ = std::fs::remove_file(path);
        }
    }
    let totals = server.shutdown();
    info!("stopped; stats: {totals}");
    log::logger().flush();
    Ok(ExitCode::SUCCESS)
}
