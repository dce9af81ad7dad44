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
/// says it reads, and a successor that crashes, or dawdles 3 s, once it holds the state.
const TEST_STATE_VERSION: &str = "RABID_PUNCH_TEST_STATE_VERSION";
const TEST_FAULT: &str = "RABID_PUNCH_TEST_HANDOVER_FAULT";

/// Takes over from the server at `--control-socket`: its sockets, its sessions and relays,
/// its clock. Serves only once that server confirmed; until then, any failure leaves it
/// serving, and is one line for the user here.
pub fn taking_over(settings: &Settings) -> Result<Started, String> {
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
    let taken = take(path, &wanted)?;
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
    match std::env::var(TEST_FAULT).as_deref() {
        Ok("crash-with-state") => std::process::abort(),
        Ok("slow-with-state") => std::thread::sleep(std::time::Duration::from_secs(3)),
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
    if let Err(e) = successor.confirm(adopted) {
        latch.release(false);
        server.shutdown();
        return Err(format!("{e}; the running server (pid {from}) serves on"));
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
