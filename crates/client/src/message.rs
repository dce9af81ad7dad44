//! The client's side of the wire format: the requests it sends to the server, the replies it
//! reads back, and the peer-to-peer messages of the punch phase. No state and no I/O.
//!
//! The server-side parser lives in the server's own module; the client only needs to *write*
//! requests and *read* replies, so it keeps its own small, lenient reader: unknown or malformed
//! datagrams parse to `None` and are ignored by the state machines, as the Godot plugin does.

use std::net::{IpAddr, SocketAddr};

/// A reply from the rendezvous server, borrowed from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<'a> {
    /// `i:<names>`: the session's players in join order; the first is the host.
    Info(Vec<&'a str>),
    /// `s:<own_port>:<peers>`: the session started; see [`StartInfo`].
    Start(StartInfo),
    /// `error:<code>`: the code without the `error:` prefix.
    Error(&'a str),
}

/// What the start message tells one player: the port the server saw it on and every other
/// player, in join order (so for a non-host the first peer is the host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartInfo {
    /// Our own port as the server saw it (after NAT).
    pub own_port: u16,
    /// Every other player of the session, in join order.
    pub peers: Vec<PeerAddr>,
}

/// One other player of a started session, as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddr {
    /// The player's name.
    pub name: String,
    /// The player's public address (after NAT) as the server saw it.
    pub addr: SocketAddr,
}

/// Parses one datagram from the server. `None` for anything the client does not understand.
pub fn parse_reply(datagram: &[u8]) -> Option<Reply<'_>> {
    let text = std::str::from_utf8(datagram).ok()?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if let Some(code) = text.strip_prefix("error:") {
        return Some(Reply::Error(code));
    }
    if let Some(names) = text.strip_prefix("i:") {
        let names: Vec<&str> = names.split(':').collect();
        if names.iter().any(|n| n.is_empty()) {
            return None;
        }
        return Some(Reply::Info(names));
    }
    if let Some(rest) = text.strip_prefix("s:") {
        return parse_start(rest).map(Reply::Start);
    }
    None
}

/// Parses `<own_port>:<name>:<ip>:<port>;<name>:<ip>:<port>...` (the part after `s:`).
fn parse_start(rest: &str) -> Option<StartInfo> {
    let (own_port, list) = rest.split_once(':')?;
    let own_port = own_port.parse().ok()?;
    let mut peers = Vec::new();
    for entry in list.split(';') {
        // name:ip:port, where ip may be a bracketed IPv6 address containing ':'.
        let (name, addr) = entry.split_once(':')?;
        let (ip, port) = addr.rsplit_once(':')?;
        let ip = ip
            .strip_prefix('[')
            .and_then(|i| i.strip_suffix(']'))
            .unwrap_or(ip);
        let ip: IpAddr = ip.parse().ok()?;
        let port: u16 = port.parse().ok()?;
        if name.is_empty() {
            return None;
        }
        peers.push(PeerAddr {
            name: name.to_string(),
            addr: SocketAddr::new(ip, port),
        });
    }
    Some(StartInfo { own_port, peers })
}

/// A message between peers during the punch phase (the Godot plugin's formats).
#[derive(Debug, Clone, PartialEq)]
pub enum PeerMsg<'a> {
    /// `g:<sender>:<sender_port>:<target_port>`: a greeting; `target_port` is the port the
    /// sender aimed at, i.e. our public port as that sender sees it.
    Greeting { from: &'a str, target_port: u16 },
    /// `c:<sender>:<sender_port>`: the sender confirms its public port.
    Confirm { from: &'a str, port: u16 },
    /// `s:<n>`: the host tells clients to start in `n` seconds.
    StartIn { seconds: f64 },
    /// `y:<sender>:<sender_port>`: a client acknowledges the host's `s:<n>`.
    StartAck { from: &'a str },
}

/// Parses a peer message. Lenient in the same places as the plugin (which reads the fields it
/// needs with `int()`), strict enough that garbage is ignored rather than misread.
pub fn parse_peer(datagram: &[u8]) -> Option<PeerMsg<'_>> {
    let text = std::str::from_utf8(datagram).ok()?;
    let mut fields = text.split(':');
    let kind = fields.next()?;
    match kind {
        "g" => {
            let from = non_empty(fields.next()?)?;
            let _sender_port = fields.next()?;
            let target_port = fields.next()?.trim().parse().ok()?;
            Some(PeerMsg::Greeting { from, target_port })
        }
        "c" => {
            let from = non_empty(fields.next()?)?;
            let port = fields.next()?.trim().parse().ok()?;
            Some(PeerMsg::Confirm { from, port })
        }
        "s" => {
            // Godot writes a float as "3" (or "3.0" in other builds): accept both. Exactly one
            // field, so a late copy of the server's start message (`s:<port>:<peers>`) landing
            // on the peer socket is not misread as a countdown of <port> seconds.
            let seconds: f64 = fields.next()?.trim().parse().ok()?;
            if fields.next().is_some() {
                return None;
            }
            (seconds.is_finite() && seconds >= 0.0).then_some(PeerMsg::StartIn { seconds })
        }
        "y" => {
            let from = non_empty(fields.next()?)?;
            Some(PeerMsg::StartAck { from })
        }
        _ => None,
    }
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// `h:S:P:M[:W]`
pub fn host_request(
    session: &str,
    player: &str,
    max_players: u8,
    password: Option<&str>,
) -> String {
    with_password(format!("h:{session}:{player}:{max_players}"), password)
}

/// `c:S:P[:W]`
pub fn connect_request(session: &str, player: &str, password: Option<&str>) -> String {
    with_password(format!("c:{session}:{player}"), password)
}

fn with_password(mut request: String, password: Option<&str>) -> String {
    if let Some(w) = password.filter(|w| !w.is_empty()) {
        request.push(':');
        request.push_str(w);
    }
    request
}

/// A two-field session command: `p`, `s`, `k`, `x` or `y` followed by `:S:P`.
pub fn session_command(letter: char, session: &str, player: &str) -> String {
    format!("{letter}:{session}:{player}")
}

/// `g:<me>:<own_port>:<target_port>`
pub fn greeting(me: &str, own_port: u16, target_port: u16) -> String {
    format!("g:{me}:{own_port}:{target_port}")
}

/// `c:<me>:<my_port>`
pub fn confirm(me: &str, port: u16) -> String {
    format!("c:{me}:{port}")
}

/// `y:<me>:<my_port>`
pub fn start_ack(me: &str, port: u16) -> String {
    format!("y:{me}:{port}")
}

/// `s:<seconds>`, as the plugin writes the float `3.0` (`"3"`).
pub fn start_in(seconds: u32) -> String {
    format!("s:{seconds}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_info_error_and_start() {
        assert_eq!(parse_reply(b"i:A:B"), Some(Reply::Info(vec!["A", "B"])));
        assert_eq!(parse_reply(b"i:A\n"), Some(Reply::Info(vec!["A"])));
        assert_eq!(
            parse_reply(b"error:session_full"),
            Some(Reply::Error("session_full"))
        );
        let start = parse_reply(b"s:40002:A:198.51.100.7:40001;C:203.0.113.9:40003");
        let Some(Reply::Start(info)) = start else {
            panic!("not a start: {start:?}")
        };
        assert_eq!(info.own_port, 40002);
        assert_eq!(info.peers.len(), 2);
        assert_eq!(info.peers[0].name, "A");
        assert_eq!(info.peers[0].addr, "198.51.100.7:40001".parse().unwrap());
        assert_eq!(info.peers[1].addr, "203.0.113.9:40003".parse().unwrap());
    }

    #[test]
    fn parses_bracketed_ipv6_peer() {
        let Some(Reply::Start(info)) = parse_reply(b"s:1:A:[2001:db8::1]:5000") else {
            panic!()
        };
        assert_eq!(info.peers[0].addr, "[2001:db8::1]:5000".parse().unwrap());
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            &b"i:"[..],
            b"i:A::B",
            b"s:x:A:1.2.3.4:5",
            b"s:1:A:1.2.3.4",
            b"s:1:A:nothost:5",
            b"s:1:A:1.2.3.4:70000",
            b"zzz",
            b"\xff\xfe",
        ] {
            assert_eq!(parse_reply(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn peer_messages_round_trip() {
        assert_eq!(
            parse_peer(greeting("bob", 4000, 4001).as_bytes()),
            Some(PeerMsg::Greeting {
                from: "bob",
                target_port: 4001
            })
        );
        assert_eq!(
            parse_peer(confirm("bob", 4000).as_bytes()),
            Some(PeerMsg::Confirm {
                from: "bob",
                port: 4000
            })
        );
        assert_eq!(
            parse_peer(start_ack("bob", 4000).as_bytes()),
            Some(PeerMsg::StartAck { from: "bob" })
        );
        assert_eq!(parse_peer(b"s:3"), Some(PeerMsg::StartIn { seconds: 3.0 }));
        assert_eq!(
            parse_peer(b"s:3.0"),
            Some(PeerMsg::StartIn { seconds: 3.0 })
        );
        assert_eq!(parse_peer(b"s:-1"), None);
        assert_eq!(parse_peer(b"s:40002:A:198.51.100.7:40001"), None);
        assert_eq!(parse_peer(b"g:bob:1"), None);
        assert_eq!(parse_peer(b"d:x"), None);
    }

    #[test]
    fn requests_match_the_protocol() {
        assert_eq!(host_request("R", "A", 4, None), "h:R:A:4");
        assert_eq!(host_request("R", "A", 4, Some("pw")), "h:R:A:4:pw");
        assert_eq!(connect_request("R", "B", Some("")), "c:R:B");
        assert_eq!(connect_request("R", "B", Some("pw")), "c:R:B:pw");
        assert_eq!(session_command('p', "R", "B"), "p:R:B");
        assert_eq!(start_in(3), "s:3");
    }
}
