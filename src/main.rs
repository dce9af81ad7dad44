//! `rabid-punch`: runs the server (or, as `rabid-punch client ...`, the client).

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{select, tick};
use log::{error, info, warn};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use rabid_punch::cli::{self, Args};
use rabid_punch::core::RelayMode;
use rabid_punch::logging;
use rabid_punch::metrics;
use rabid_punch::runtime::handover::unix::Listener;
use rabid_punch::runtime::handover::{notify, serve};
use rabid_punch::runtime::{RelayIo, ServerConfig};
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

/// Hands over to a successor that is ready: systemd is told the successor's pid first (if
/// systemd cannot be told, the hand-over is called off: systemd would end the service with this
/// process), then the successor is told to serve. `true`: it serves; this process stops.
fn confirm(ready: serve::Ready, server: &rabid_punch::runtime::Server) -> bool {
    let pid = ready.successor.pid;
    if let Err(e) = notify::notify(&format!("MAINPID={pid}"), NOTIFY_WAIT) {
        warn!("hand-over to pid {pid} called off: systemd cannot be told its pid ({e})");
        let _ = notify::notify(&format!("MAINPID={}", std::process::id()), NOTIFY_WAIT);
        return false;
    }
    if ready.confirm(&server.handover()) {
        info!("handed over to pid {pid}, which serves now; exiting");
        return true;
    }
    // Tell systemd this process is the service again.
    let _ = notify::notify(&format!("MAINPID={}", std::process::id()), NOTIFY_WAIT);
    false
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
    uring_if_asked(&settings.server)?;
    let started = if settings.takeover {
        // A signal while taking over: give up before the running server stops, not after.
        let interrupted = || !signal_rx.is_empty();
        start::taking_over(&settings, &interrupted)?
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
    let extras = serve::Extras {
        http: _metrics.as_ref().map(|(s, fd)| (s.local_addr(), *fd)),
    };
    let control = control.map(Arc::new);
    let spawn_control = |listener: &Arc<Listener>| {
        serve::Control::spawn(
            listener.clone(),
            server.handover(),
            extras.clone(),
            ready_tx.clone(),
        )
        .map_err(|e| format!("cannot start the control thread: {e}"))
    };
    let mut control_thread = control.as_ref().map(spawn_control).transpose()?;
    if let Some(listener) = &control {
        info!("hand-overs at {}", listener.path().display());
    }
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
                // From here the successor may accept on the control socket: this process no
                // longer does.
                if let Some(thread) = control_thread.take() {
                    thread.stop();
                }
                if confirm(ready, &server) {
                    handed_over = true;
                    break;
                }
                // It failed (and said why); serving on, hand-overs again.
                control_thread = control.as_ref().map(spawn_control).transpose()?;
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
    if let Some(thread) = control_thread.take() {
        thread.stop();
    }
    // A successor ready but not confirmed (a signal came first): dropped, it thaws the server
    // so that its threads can stop.
    drop(ready_rx);
    // After a hand-over the successor listens on that very socket.
    if let (Some(listener), false) = (&control, handed_over) {
        listener.remove();
    }
    let totals = server.shutdown();
    info!("stopped; stats: {totals}");
    log::logger().flush();
    Ok(ExitCode::SUCCESS)
}

/// `--relay-io uring` where the kernel refuses `io_uring`: said before anything is bound (or a
/// running server asked to hand over), with what to use instead.
fn uring_if_asked(server: &ServerConfig) -> Result<(), String> {
    if server.relay_io != RelayIo::Uring || server.core.relay.mode == RelayMode::Off {
        return Ok(());
    }
    match RelayIo::uring_refused() {
        None => Ok(()),
        Some(why) => Err(format!(
            "--relay-io uring: io_uring is refused here ({why}); use --relay-io auto or epoll"
        )),
    }
}
