//! The words the two processes say on the control socket, one packet each.
//!
//! Control messages are one line of text (`verb key=value ...`, or `verb free text` for the
//! reasons), so a hand-over can be followed with `strace` and a wrong peer fails readably; the
//! state travels as binary packets after its `state` header.
//!
//! ```text
//! successor                              running server
//!   hello protocol=1 state=V  ------->
//!                             <-------   offer state=V bind=.. receivers=.. relay=..
//!                                        (or: refused <reason>)
//!   take                      ------->   stops reading, drains its queues, freezes its workers
//!                             <-------   state sections=.. bytes=.. mono_ns=.., its packets,
//!                                        fds <kind> ... (with the sockets), sent
//!   ready adopted=0|1         ------->   (or: abort <reason>, or closing: the server resumes)
//!                             <-------   committed; the server exits 0
//! ```

use std::net::SocketAddr;
use std::ops::RangeInclusive;

/// The version of these messages. The state's own version is the core's.
pub const PROTOCOL: u32 = 1;

/// What the running server offers: what the successor must match, and what it may adopt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// The version of the state it writes.
    pub state_version: u32,
    /// The address its server socket is bound to.
    pub bind: SocketAddr,
    pub receivers: usize,
    /// Its relay port range, when its relay is on.
    pub relay: Option<RangeInclusive<u16>>,
    /// Its HTTP listener's address, when it has one.
    pub http: Option<SocketAddr>,
    /// Its fleet node id and a digest of its `--directory` URL and prefix, when in a fleet.
    pub fleet: Option<(String, u64)>,
}

/// What kind of socket a `fds` packet carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdKind {
    /// The server socket(s), one per receiver, in order.
    Receivers,
    /// Relay sockets, one per port listed.
    Relay,
    /// The HTTP listener.
    Http,
    /// The control socket's listener itself.
    Control,
}

/// One control message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Hello {
        protocol: u32,
        state_version: u32,
    },
    Offer(Offer),
    Refused(String),
    Take,
    State {
        sections: usize,
        bytes: usize,
        mono_ns: u64,
    },
    Fds {
        kind: FdKind,
        ports: Vec<u16>,
    },
    Sent,
    /// The successor serves once confirmed; `adopted`: it goes on as this server's fleet node
    /// (else the running server takes its node out of the fleet as it stops).
    Ready {
        adopted: bool,
    },
    Abort(String),
    Committed,
}

impl Message {
    pub fn encode(&self) -> Vec<u8> {
        let text = match self {
            Message::Hello {
                protocol,
                state_version,
            } => format!("hello protocol={protocol} state={state_version}"),
            Message::Offer(offer) => {
                let mut text = format!(
                    "offer state={} bind={} receivers={}",
                    offer.state_version, offer.bind, offer.receivers
                );
                if let Some(range) = &offer.relay {
                    text += &format!(" relay={}-{}", range.start(), range.end());
                }
                if let Some(http) = offer.http {
                    text += &format!(" http={http}");
                }
                if let Some((node, key)) = &offer.fleet {
                    text += &format!(" fleet_node={node} fleet_key={key:016x}");
                }
                text
            }
            Message::Refused(reason) => format!("refused {reason}"),
            Message::Take => "take".into(),
            Message::State {
                sections,
                bytes,
                mono_ns,
            } => format!("state sections={sections} bytes={bytes} mono_ns={mono_ns}"),
            Message::Fds { kind, ports } => {
                let kind = match kind {
                    FdKind::Receivers => "receivers",
                    FdKind::Relay => "relay",
                    FdKind::Http => "http",
                    FdKind::Control => "control",
                };
                let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
                format!("fds {kind} ports={}", ports.join(","))
            }
            Message::Sent => "sent".into(),
            Message::Ready { adopted } => format!("ready adopted={}", u8::from(*adopted)),
            Message::Abort(reason) => format!("abort {reason}"),
            Message::Committed => "committed".into(),
        };
        text.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Message, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "a message that is not text")?;
        let (verb, rest) = text.split_once(' ').unwrap_or((text, ""));
        let fields = Fields(rest);
        Ok(match verb {
            "hello" => Message::Hello {
                protocol: fields.number("protocol")?,
                state_version: fields.number("state")?,
            },
            "offer" => Message::Offer(Offer {
                state_version: fields.number("state")?,
                bind: fields.parsed("bind")?,
                receivers: fields.number("receivers")?,
                relay: match fields.get("relay") {
                    None => None,
                    Some(text) => {
                        let (a, b) = text.split_once('-').ok_or("a bad relay range")?;
                        let a: u16 = a.parse().map_err(|_| "a bad relay range")?;
                        let b: u16 = b.parse().map_err(|_| "a bad relay range")?;
                        Some(a..=b)
                    }
                },
                http: fields
                    .get("http")
                    .map(str::parse)
                    .transpose()
                    .map_err(|_| "a bad http")?,
                fleet: match (fields.get("fleet_node"), fields.get("fleet_key")) {
                    (Some(node), Some(key)) => Some((
                        node.to_string(),
                        u64::from_str_radix(key, 16).map_err(|_| "a bad fleet key")?,
                    )),
                    _ => None,
                },
            }),
            "refused" => Message::Refused(rest.to_string()),
            "take" => Message::Take,
            "state" => Message::State {
                sections: fields.number("sections")?,
                bytes: fields.number("bytes")?,
                mono_ns: fields.number("mono_ns")?,
            },
            "fds" => {
                let (kind, _) = rest.split_once(' ').unwrap_or((rest, ""));
                let kind = match kind {
                    "receivers" => FdKind::Receivers,
                    "relay" => FdKind::Relay,
                    "http" => FdKind::Http,
                    "control" => FdKind::Control,
                    _ => return Err(format!("descriptors of an unknown kind `{kind}`")),
                };
                let ports = match fields.get("ports") {
                    None | Some("") => Vec::new(),
                    Some(list) => list
                        .split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()
                        .map_err(|_| "a bad port list")?,
                };
                Message::Fds { kind, ports }
            }
            "sent" => Message::Sent,
            "ready" => Message::Ready {
                adopted: fields.number::<u8>("adopted")? == 1,
            },
            "abort" => Message::Abort(rest.to_string()),
            "committed" => Message::Committed,
            _ => return Err(format!("an unknown message `{}`", verb.escape_debug())),
        })
    }
}

/// The `key=value` fields after a verb.
struct Fields<'a>(&'a str);

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Option<&'a str> {
        self.0
            .split(' ')
            .filter_map(|field| field.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    fn parsed<T: std::str::FromStr>(&self, key: &str) -> Result<T, String> {
        let text = self.get(key).ok_or_else(|| format!("no {key}"))?;
        text.parse().map_err(|_| format!("a bad {key} `{text}`"))
    }

    fn number<T: std::str::FromStr>(&self, key: &str) -> Result<T, String> {
        self.parsed(key)
    }
}

/// A digest of a fleet's `--directory` URL and key prefix (FNV-1a, stable across builds): the
/// successor adopts the running server's node id only in the same fleet, without the URL (and
/// its password) crossing the control socket.
pub fn fleet_key(url: &str, prefix: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in url.bytes().chain([0]).chain(prefix.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_reads_back_as_written() {
        let messages = [
            Message::Hello {
                protocol: 1,
                state_version: 7,
            },
            Message::Offer(Offer {
                state_version: 7,
                bind: "0.0.0.0:7777".parse().unwrap(),
                receivers: 2,
                relay: Some(7778..=8777),
                http: Some("127.0.0.1:9777".parse().unwrap()),
                fleet: Some(("00ff00ff00ff00ff".into(), 0xdead_beef)),
            }),
            Message::Offer(Offer {
                state_version: 1,
                bind: "[::]:7777".parse().unwrap(),
                receivers: 1,
                relay: None,
                http: None,
                fleet: None,
            }),
            Message::Refused("another successor (pid 12) is taking over".into()),
            Message::Take,
            Message::State {
                sections: 9,
                bytes: 123_456,
                mono_ns: 987_654_321,
            },
            Message::Fds {
                kind: FdKind::Relay,
                ports: vec![7778, 7779, 9000],
            },
            Message::Fds {
                kind: FdKind::Receivers,
                ports: vec![],
            },
            Message::Sent,
            Message::Ready { adopted: true },
            Message::Ready { adopted: false },
            Message::Abort("cannot read the state".into()),
            Message::Committed,
        ];
        for message in messages {
            assert_eq!(Message::decode(&message.encode()), Ok(message));
        }
    }

    #[test]
    fn nonsense_is_an_error_not_a_panic() {
        for bytes in [
            &b""[..],
            b"\xff\xfe",
            b"hello",
            b"hello protocol=x state=1",
            b"offer state=1 bind=nowhere receivers=1",
            b"fds sockets",
            b"fds relay ports=1,x",
            b"GET / HTTP/1.1",
        ] {
            assert!(Message::decode(bytes).is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn the_fleet_key_tells_urls_and_prefixes_apart() {
        let a = fleet_key("redis://10.0.0.1:6379", "rabid:");
        assert_eq!(a, fleet_key("redis://10.0.0.1:6379", "rabid:"));
        assert_ne!(a, fleet_key("redis://10.0.0.2:6379", "rabid:"));
        assert_ne!(a, fleet_key("redis://10.0.0.1:6379", "other:"));
        assert_ne!(fleet_key("ab", "c"), fleet_key("a", "bc"));
    }
}
