//! After the punch: prove that traffic really flows peer to peer, without the server.
//!
//! Not part of the Godot protocol: a test aid for the CLI and the NAT lab. Each client sends
//! `d:<me>:<text>` to the host's punched address every 100 ms until the host echoes
//! `e:<me>:<text>` back *from that address*; the host echoes every `d:` it gets and returns
//! once every peer was heard (plus a short linger for echoes lost on the way), or at the bound.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::driver::{recv_until, Connected};
use super::error::Error;

/// How often a client re-sends its payload.
pub const RESEND: Duration = Duration::from_millis(100);
/// How long the host keeps echoing after the last peer was first heard.
pub const HOST_LINGER: Duration = Duration::from_secs(1);

/// What the exchange proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// Host: each peer heard, with the address its payload came from and the text.
    /// Client: the host, with the address its echo came from and the echoed text.
    pub heard: BTreeMap<String, (SocketAddr, String)>,
    /// Whether everyone expected was heard (every client for the host; the host's echo for a
    /// client).
    pub complete: bool,
}

/// Runs the exchange on a punched socket as `me`, for at most `bound`.
pub fn exchange(
    connected: &Connected,
    me: &str,
    text: &str,
    bound: Duration,
) -> Result<Exchange, Error> {
    let deadline = Instant::now() + bound;
    match connected.punched.host {
        Some(host) => client(&connected.socket, host, me, text, deadline),
        None => {
            let expected: Vec<&str> = connected
                .punched
                .peers
                .iter()
                .map(|p| p.name.as_str())
                .collect();
            host(&connected.socket, &expected, deadline)
        }
    }
}

fn client(
    socket: &UdpSocket,
    host: SocketAddr,
    me: &str,
    text: &str,
    deadline: Instant,
) -> Result<Exchange, Error> {
    let request = format!("d:{me}:{text}");
    let expected_echo = format!("e:{me}:{text}");
    let mut buf = [0u8; 2048];
    let mut heard = BTreeMap::new();
    let mut next_send = Instant::now();
    while Instant::now() < deadline {
        if Instant::now() >= next_send {
            // Errors (an ICMP error from a closed port) are retried on the next round.
            let _ = socket.send_to(request.as_bytes(), host);
            next_send = Instant::now() + RESEND;
        }
        if let Some((n, from)) = recv_until(socket, &mut buf, next_send.min(deadline))? {
            if from == host && buf[..n] == *expected_echo.as_bytes() {
                heard.insert("host".to_string(), (from, text.to_string()));
                return Ok(Exchange {
                    heard,
                    complete: true,
                });
            }
        }
    }
    Ok(Exchange {
        heard,
        complete: false,
    })
}

fn host(socket: &UdpSocket, expected: &[&str], deadline: Instant) -> Result<Exchange, Error> {
    let mut buf = [0u8; 2048];
    let mut heard: BTreeMap<String, (SocketAddr, String)> = BTreeMap::new();
    let mut end = deadline;
    while let Some((n, from)) = recv_until(socket, &mut buf, end)? {
        let Ok(datagram) = std::str::from_utf8(&buf[..n]) else {
            continue;
        };
        let Some((name, text)) = datagram.strip_prefix("d:").and_then(|r| r.split_once(':')) else {
            continue; // late confirmations and the like
        };
        if !expected.contains(&name) {
            continue;
        }
        let _ = socket.send_to(format!("e:{name}:{text}").as_bytes(), from);
        if heard
            .insert(name.to_string(), (from, text.to_string()))
            .is_none()
            && heard.len() == expected.len()
        {
            end = (Instant::now() + HOST_LINGER).min(deadline);
        }
    }
    let complete = heard.len() == expected.len();
    Ok(Exchange { heard, complete })
}
