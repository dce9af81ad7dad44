//! The HTTP side of `--http` (or `--metrics`): `tiny_http` on a thread of its own, blocking, one
//! request at a time, which is all Prometheus and a game's lobby page need: `/metrics` and
//! `/lobbies`. Each scrape takes a fresh [`Snapshot`] of the probe.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use prometheus_client::encoding::prometheus_text;

use super::{Snapshot, LOBBIES_PATH, PATH};
use crate::core::directory::{HttpQuery, ParseQueryError};
use crate::core::Directory;
use crate::runtime::Probe;

/// The metrics endpoint, bound but not yet serving.
pub struct Endpoint {
    listener: TcpListener,
    addr: SocketAddr,
}

impl Endpoint {
    /// Binds `addr`. The error is one line for the user.
    pub fn bind(addr: SocketAddr) -> Result<Self, String> {
        let fail = |e: io::Error| match e.kind() {
            io::ErrorKind::AddrInUse => {
                format!("cannot serve metrics on {addr}: the port is already in use")
            }
            io::ErrorKind::AddrNotAvailable => format!(
                "cannot serve metrics on {addr}: no network interface of this machine has that \
                 address"
            ),
            io::ErrorKind::PermissionDenied => {
                format!("cannot serve metrics on {addr}: permission denied (a port below 1024?)")
            }
            _ => format!("cannot serve metrics on {addr}: {e}"),
        };
        let listener = TcpListener::bind(addr).map_err(fail)?;
        let addr = listener.local_addr().map_err(fail)?;
        Ok(Self { listener, addr })
    }

    /// The listener a server before this one served on (a hand-over).
    pub fn inherit(listener: TcpListener) -> Result<Self, String> {
        let addr = listener
            .local_addr()
            .map_err(|e| format!("the HTTP listener taken over: {e}"))?;
        Ok(Self { listener, addr })
    }

    /// The address bound (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listener's descriptor, to hand over (valid while this endpoint serves).
    pub fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.listener)
    }

    /// Serves scrapes of `probe` and the lobbies of `directory` on a thread of its own until
    /// [`Serving::stop`].
    pub fn serve(self, probe: Probe, directory: Arc<Directory>) -> io::Result<Serving> {
        let http = tiny_http::Server::from_listener(self.listener, None)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let http = Arc::new(http);
        let server = http.clone();
        let thread = thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for request in server.incoming_requests() {
                    answer(request, &probe, &directory);
                }
            })?;
        Ok(Serving {
            http,
            addr: self.addr,
            thread: Some(thread),
        })
    }
}

/// Answers one HTTP request: the metrics at [`PATH`], the lobby directory as JSON at
/// [`LOBBIES_PATH`], 404 anywhere else, 405 for a method other than GET or HEAD.
fn answer(request: tiny_http::Request, probe: &Probe, directory: &Directory) {
    let (path, query) = request.url().split_once('?').unwrap_or((request.url(), ""));
    let header = |name: &str, value: &str| tiny_http::Header::from_bytes(name, value).ok();
    let response = if path != PATH && path != LOBBIES_PATH {
        tiny_http::Response::from_string(
            "not found: metrics are at /metrics, lobbies at /lobbies?game=...\n",
        )
        .with_status_code(404)
    } else if !matches!(
        request.method(),
        tiny_http::Method::Get | tiny_http::Method::Head
    ) {
        tiny_http::Response::from_string("only GET\n").with_status_code(405)
    } else if path == LOBBIES_PATH {
        match HttpQuery::parse(query) {
            Ok(query) => {
                let json = directory.to_json(&query, Instant::now());
                let mut response = tiny_http::Response::from_string(json);
                // A game's web page may fetch it from another origin; it holds no address.
                for h in [
                    header("Content-Type", "application/json"),
                    header("Access-Control-Allow-Origin", "*"),
                ]
                .into_iter()
                .flatten()
                {
                    response = response.with_header(h);
                }
                response
            }
            Err(ParseQueryError(why)) => {
                tiny_http::Response::from_string(format!("bad query: {why}\n"))
                    .with_status_code(400)
            }
        }
    } else {
        let response = tiny_http::Response::from_string(Snapshot::take(probe).encode());
        match header("Content-Type", prometheus_text::CONTENT_TYPE) {
            Some(header) => response.with_header(header),
            None => response,
        }
    };
    // A scraper that hung up is its own problem.
    let _ = request.respond(response);
}

/// The metrics endpoint, serving. Dropping it leaves the thread serving until the process
/// ends, as the server binary wants; [`stop`](Self::stop) ends it.
pub struct Serving {
    http: Arc<tiny_http::Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl Serving {
    /// The address served.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits for the thread.
    pub fn stop(mut self) {
        self.http.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
