//! How a server process begins: on sockets of its own, or by taking over the sockets and the
//! state of the server it replaces (`--takeover`, see [`crate::runtime::handover`]).

use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Instant;

use log::info;

use crate::cli::Settings;
use crate::core::handover::{State, STATE_VERSION};
use crate::core::RelayMode;
use crate::metrics::Endpoint;
use crate::runtime::handover::take::{take, Wanted};
use crate::runtime::handover::unix::Listener;
use crate::runtime::handover::{continuing_clock, fleet_key, Latch};
use crate::runtime::{Inherited, Server};

/// A server that serves, with its HTTP endpoint (not yet serving) and its control socket.
pub struct Started {
    pub server: Server,
    pub metrics: Option<Endpoint>,
    pub control: Option<Listener>,
}

/// Binds everything anew.
pub fn fresh(settings: &Settings) -> Result<Started, String> {
    // The control socket and the HTTP listener are bound before the UDP socket, so that a bad
    // path or address stops the start before anything serves.
    let control = settings
        .control_socket
        .as_deref()
        .map(Listener::bind)
        .transpose()?;
    let metrics = settings.metrics.map(Endpoint::bind).transpose()?;
    let bind = settings.server.bind;
    let server = Server::start(settings.server.clone()).map_err(|e| match e.kind() {
        ErrorKind::AddrInUse => {
            format!("cannot listen on {bind}: the port is already in use (another rabid-punch?)")
        }
        _ => format!("cannot listen on {bind}: {e}"),
    })?;
    Ok(Started {
        server,
        metrics,
        control,
    })
}

/// Environment variables for the tests of failed hand-overs: the state version this build
/// says it reads, and a successor that fails on purpose: `crash-with-state` (aborts once it
/// holds the state), `hold-with-state:PATH` (holds it until PATH exists, 30 s at most), and
/// `exit-after-ready` (says `ready`, then exits without waiting for the word).
const TEST_STATE_VERSION: &str = "RABID_PUNCH_TEST_STATE_VERSION";
const TEST_FAULT: &str = "RABID_PUNCH_TEST_HANDOVER_FAULT";

/// The test fault asked for, if any.
fn test_fault() -> Option<String> {
    std::env::var(TEST_FAULT).ok()
}

/// Holds until `path` exists (30 s at most): the test says when.
fn hold_until(path: &str) {
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while !std::path::Path::new(path).exists() && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Takes over from the server at `--control-socket`: its sockets, its sessions and relays,
/// its clock. Serves only once that server confirmed; until then, any failure (a signal to this
/// process included: `interrupted`) leaves it serving, and is one line for the user here. When
/// no server answers there, there is nothing to lose: starts afresh (so a container or a unit
/// that always starts with `--takeover` also comes up after a crash).
pub fn taking_over(settings: &Settings, interrupted: &dyn Fn() -> bool) -> Result<Started, String> {
    let began = Instant::now();
    let path = settings
        .control_socket
        .as_deref()
        .ok_or("--takeover needs --control-socket")?;
    let config = &settings.server;
    let relay_on = config.core.relay.mode != RelayMode::Off;
    let wanted = Wanted {
        bind: config.bind,
        receivers: config.receivers.max(1),
        relay: relay_on.then(|| config.relay_ports.clone()),
        http: settings.metrics,
        fleet_key: config.fleet.as_ref().map(|f| fleet_key(&f.url, &f.prefix)),
        state_version: std::env::var(TEST_STATE_VERSION)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(STATE_VERSION),
    };
    let Some(taken) = take(path, &wanted)? else {
        info!(
            "no server answers at {}: nothing to take over, starting afresh",
            path.display()
        );
        return fresh(settings);
    };
    let successor = taken.successor;
    let from = successor.from.pid;
    let fail = |reason: String| {
        successor.abort(&reason);
        reason
    };
    let state = State::decode(&taken.shared, &taken.shards)
        .map_err(|e| fail(format!("cannot read the running server's state: {e}")))?;
    if !relay_on && state.relays() > 0 {
        return Err(fail(format!(
            "--relay off would cut the {} relayed games of the running server; hand over with \
             the relay on, and turn it off once they ended",
            state.relays()
        )));
    }
    match test_fault().as_deref() {
        Some("crash-with-state") => std::process::abort(),
        Some(fault) if fault.starts_with("hold-with-state:") => hold_until(&fault[16..]),
        _ => {}
    }
    let (sessions, players, relays) = (state.sessions(), state.players(), state.relays());
    let metrics = match (settings.metrics, taken.http) {
        (Some(_), Some(listener)) => Some(Endpoint::inherit(listener).map_err(fail)?),
        (Some(addr), None) => Some(Endpoint::bind(addr).map_err(fail)?),
        (None, _) => None,
    };
    let control = match taken.control {
        Some(fd) => Listener::inherit(fd, path)
            .map_err(|e| fail(format!("the control socket taken over: {e}")))?,
        None => return Err(fail("the running server sent no control socket".into())),
    };
    let adopted = taken.fleet_node.is_some();
    let latch = Arc::new(Latch::default());
    let inherited = Inherited {
        receivers: taken.receivers,
        relay: taken.relay,
        clock: continuing_clock(state.clock_millis(), taken.mono_ns),
        state,
        fleet_node: taken.fleet_node,
    };
    let server = Server::start_with(config.clone(), Some(inherited), latch.clone())
        .map_err(|e| fail(format!("cannot start on the sockets taken over: {e}")))?;
    if interrupted() {
        latch.release(false);
        server.shutdown();
        return Err(fail(format!(
            "a signal came while taking over: given up; the running server (pid {from}) serves on"
        )));
    }
    if test_fault().as_deref() == Some("exit-after-ready") {
        successor.say_ready_deaf(adopted);
        std::process::exit(3);
    }
    if let Err(e) = successor.confirm(adopted) {
        latch.release(false);
        server.shutdown();
        return Err(format!(
            "{e}: not taking over from the running server (pid {from})"
        ));
    }
    latch.release(true);
    info!(
        "took over from pid {from} in {} ms: {sessions} sessions, {players} players, {relays} \
         relays",
        began.elapsed().as_millis()
    );
    Ok(Started {
        server,
        metrics,
        control: Some(control),
    })
}
