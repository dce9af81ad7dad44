//! The wire format of the Rabid hole-punch protocol: parse a request datagram into a borrowed
//! [`Request`], and write replies (`i:`, `s:`, `error:`) into a caller's buffer.
//!
//! This crate holds no state and does no I/O. It knows the field rules (lengths, characters,
//! the `M` range) and nothing about sessions: whether a request makes sense is the session core's
//! business (`rabid_punch::core`, in the server).

use std::net::{IpAddr, SocketAddr};

pub mod lobby;

/// Longest datagram that can hold a valid request:
/// `h:` + 10 + `:` + 12 + `:` + `12` + `:` + 12 + `\r\n`.
pub const MAX_REQUEST_LEN: usize = 43;

/// Longest session name, in ASCII letters or digits.
pub const MAX_SESSION_LEN: usize = 10;
/// Longest player name or password, in ASCII letters or digits.
pub const MAX_PLAYER_LEN: usize = 12;
/// Smallest and largest `M` a host may ask for.
pub const MAX_PLAYERS_RANGE: std::ops::RangeInclusive<u8> = 2..=12;

/// A well-formed request. Names and password are borrowed from the datagram and already checked
/// against the field rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// `S`: 1-10 ASCII letters or digits.
    pub session: &'a str,
    /// `P`: 1-12 ASCII letters or digits. For a kick, the player to kick, not the sender.
    pub player: &'a str,
    /// What is asked, with the fields only some commands have.
    pub kind: Kind<'a>,
}

/// The command of a [`Request`] and its command-specific fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind<'a> {
    /// `h:S:P:M[:W]`: create session `S` with host `P`, at most `M` players.
    Host {
        max_players: u8,
        password: Option<&'a str>,
    },
    /// `c:S:P[:W]`: join session `S` as `P`.
    Connect { password: Option<&'a str> },
    /// `p:S:P`: keep-alive; answered with the player list.
    Ping,
    /// `k:S:P`: the host removes `P` and bans it from `S`.
    Kick,
    /// `x:S:P`: `P` leaves `S`.
    Exit,
    /// `s:S:P`: the host starts `S`.
    Start,
    /// `y:S:P`: `P` confirms it received its start message.
    Confirm,
}

impl Kind<'_> {
    /// The command letter as sent on the wire, for logs.
    pub fn letter(&self) -> char {
        match self {
            Kind::Host { .. } => 'h',
            Kind::Connect { .. } => 'c',
            Kind::Ping => 'p',
            Kind::Kick => 'k',
            Kind::Exit => 'x',
            Kind::Start => 's',
            Kind::Confirm => 'y',
        }
    }
}

/// Why a datagram is not a [`Request`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Malformed: answered with `error:invalid_request`.
    Invalid,
    /// A command letter the protocol does not know: not answered, as the original does.
    UnknownCommand,
}

/// Parses one datagram.
///
/// A single trailing `\n` or `\r\n` is ignored, so that people can test with `echo | nc -u`.
pub fn parse<'a>(datagram: &'a [u8]) -> Result<Request<'a>, ParseError> {
    let body = strip_newline(datagram);
    let (command, rest) = match body {
        [c @ (b'h' | b'c' | b'p' | b'k' | b'x' | b's' | b'y'), b':', rest @ ..] => (*c, rest),
        _ => return Err(classify_non_request(body)),
    };
    // At most four fields follow the command; a fifth means the datagram is malformed. Fields
    // are checked as ASCII letters and digits, so a request is valid UTF-8 without a separate
    // pass over it.
    let mut fields: [&[u8]; 4] = [&[]; 4];
    let mut count = 0;
    for field in rest.split(|&b| b == b':') {
        if count == fields.len() {
            return Err(ParseError::Invalid);
        }
        fields[count] = field;
        count += 1;
    }
    let session = name(fields[0], MAX_SESSION_LEN)?;
    let player = name(fields[1], MAX_PLAYER_LEN)?;
    let optional = |field: &'a [u8]| name(field, MAX_PLAYER_LEN).map(Some);
    let kind = match (command, count) {
        (b'h', 3) => Kind::Host {
            max_players: parse_max_players(fields[2])?,
            password: None,
        },
        (b'h', 4) => Kind::Host {
            max_players: parse_max_players(fields[2])?,
            password: optional(fields[3])?,
        },
        (b'c', 2) => Kind::Connect { password: None },
        (b'c', 3) => Kind::Connect {
            password: optional(fields[2])?,
        },
        (b'p', 2) => Kind::Ping,
        (b'k', 2) => Kind::Kick,
        (b'x', 2) => Kind::Exit,
        (b's', 2) => Kind::Start,
        (b'y', 2) => Kind::Confirm,
        _ => return Err(ParseError::Invalid),
    };
    Ok(Request {
        session,
        player,
        kind,
    })
}

/// Why a datagram that does not start with a known command letter and `:` is no request:
/// invalid when it is not UTF-8, has no `:`, or an empty command field; otherwise an unknown
/// command, which is not answered.
fn classify_non_request(body: &[u8]) -> ParseError {
    let Ok(text) = std::str::from_utf8(body) else {
        return ParseError::Invalid;
    };
    match text.split_once(':') {
        Some((command, _)) if !command.is_empty() => {
            // A known letter followed by more letters (`hh:`) is an unknown command too; a
            // known letter alone before `:` cannot get here.
            ParseError::UnknownCommand
        }
        _ => ParseError::Invalid,
    }
}

/// 1 to `max` ASCII letters or digits, as text.
fn name(field: &[u8], max: usize) -> Result<&str, ParseError> {
    if (1..=max).contains(&field.len()) && field.iter().all(u8::is_ascii_alphanumeric) {
        // SAFETY: every byte is an ASCII letter or digit, so `field` is valid UTF-8. (Checking
        // it again cost more than the rest of the parse, in `benches/wire.rs`.)
        Ok(unsafe { std::str::from_utf8_unchecked(field) })
    } else {
        Err(ParseError::Invalid)
    }
}

fn strip_newline(datagram: &[u8]) -> &[u8] {
    datagram
        .strip_suffix(b"\r\n")
        .or_else(|| datagram.strip_suffix(b"\n"))
        .unwrap_or(datagram)
}

/// `2`..`9`, `10`, `11`, `12`: no sign, no leading zero.
fn parse_max_players(field: &[u8]) -> Result<u8, ParseError> {
    let value = match field {
        [d @ b'2'..=b'9'] => d - b'0',
        [b'1', d @ b'0'..=b'2'] => 10 + (d - b'0'),
        _ => return Err(ParseError::Invalid),
    };
    Ok(value)
}

/// Every error the server sends, as a typed value with its exact wire string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidRequest,
    SessionExists,
    SessionNonExistent,
    PasswordMismatch,
    OnlyOnePlayerInSession,
    SessionFull,
    PlayerNameInUse,
    NonExistentPlayer,
    NonHostPlayer,
    KickedByHost,
    PlayerExitedSession,
    SessionNotStarted,
    SessionTimeout,
    PlayerTimeout,
}

impl ErrorCode {
    /// Every error, in the order of the protocol's list.
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::InvalidRequest,
        ErrorCode::SessionExists,
        ErrorCode::SessionNonExistent,
        ErrorCode::PasswordMismatch,
        ErrorCode::OnlyOnePlayerInSession,
        ErrorCode::SessionFull,
        ErrorCode::PlayerNameInUse,
        ErrorCode::NonExistentPlayer,
        ErrorCode::NonHostPlayer,
        ErrorCode::KickedByHost,
        ErrorCode::PlayerExitedSession,
        ErrorCode::SessionNotStarted,
        ErrorCode::SessionTimeout,
        ErrorCode::PlayerTimeout,
    ];

    /// The datagram sent for this error, e.g. `error:session_full`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "error:invalid_request",
            ErrorCode::SessionExists => "error:session_exists",
            ErrorCode::SessionNonExistent => "error:session_non_existent",
            ErrorCode::PasswordMismatch => "error:password_mismatch",
            ErrorCode::OnlyOnePlayerInSession => "error:only_one_player_in_session",
            ErrorCode::SessionFull => "error:session_full",
            ErrorCode::PlayerNameInUse => "error:player_name_in_use",
            ErrorCode::NonExistentPlayer => "error:non_existent_player",
            ErrorCode::NonHostPlayer => "error:non_host_player",
            ErrorCode::KickedByHost => "error:kicked_by_host",
            ErrorCode::PlayerExitedSession => "error:player_exited_session",
            ErrorCode::SessionNotStarted => "error:session_not_started",
            ErrorCode::SessionTimeout => "error:session_timeout",
            ErrorCode::PlayerTimeout => "error:player_timeout",
        }
    }

    /// The code alone, after `error:`, e.g. `session_full`.
    pub fn code(self) -> &'static str {
        let text = self.as_str();
        text.strip_prefix("error:").unwrap_or(text)
    }

    /// The error whose code (after `error:`) is `code`.
    pub fn from_code(code: &str) -> Option<ErrorCode> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The error a datagram names, if it is one of ours (for clients and tests).
    pub fn from_datagram(datagram: &[u8]) -> Option<ErrorCode> {
        Self::ALL
            .into_iter()
            .find(|code| code.as_str().as_bytes() == datagram)
    }
}

/// Writes the info message: `i:` + the player names in join order, joined by `:`.
pub fn write_info<'a>(buf: &mut Vec<u8>, names: impl IntoIterator<Item = &'a str>) {
    buf.extend_from_slice(b"i");
    for name in names {
        buf.push(b':');
        buf.extend_from_slice(name.as_bytes());
    }
}

/// Writes the start message for one player: `s:<own port>:` + every other player as
/// `name:ip:port`, joined by `;`, in join order.
pub fn write_start<'a>(
    buf: &mut Vec<u8>,
    own_port: u16,
    peers: impl IntoIterator<Item = (&'a str, SocketAddr)>,
) {
    buf.extend_from_slice(b"s:");
    write_u16(buf, own_port);
    buf.push(b':');
    for (i, (name, addr)) in peers.into_iter().enumerate() {
        if i > 0 {
            buf.push(b';');
        }
        buf.extend_from_slice(name.as_bytes());
        buf.push(b':');
        write_ip(buf, addr.ip());
        buf.push(b':');
        write_u16(buf, addr.port());
    }
}

/// Writes an IP the way the start message lists it: IPv4 (also IPv4-mapped IPv6, as a
/// dual-stack socket reports IPv4 peers) as a dotted quad, other IPv6 in brackets.
pub fn write_ip(buf: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => write_dotted_quad(buf, v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => write_dotted_quad(buf, v4.octets()),
            None => {
                use std::io::Write as _;
                // Writing to a Vec cannot fail.
                let _ = write!(buf, "[{v6}]");
            }
        },
    }
}

fn write_dotted_quad(buf: &mut Vec<u8>, octets: [u8; 4]) {
    for (i, octet) in octets.into_iter().enumerate() {
        if i > 0 {
            buf.push(b'.');
        }
        write_u16(buf, u16::from(octet));
    }
}

/// Decimal without going through `fmt`: the start message is written on a hot path.
fn write_u16(buf: &mut Vec<u8>, value: u16) {
    let mut digits = [0u8; 5];
    let mut n = value;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Result<Request<'_>, ParseError> {
        parse(s.as_bytes())
    }

    #[test]
    fn parses_every_command() {
        assert_eq!(
            req("h:NiceRoom:SuperPlayer:4:Pass"),
            Ok(Request {
                session: "NiceRoom",
                player: "SuperPlayer",
                kind: Kind::Host {
                    max_players: 4,
                    password: Some("Pass")
                }
            })
        );
        assert_eq!(
            req("h:NiceRoom:SuperPlayer:12").map(|r| r.kind),
            Ok(Kind::Host {
                max_players: 12,
                password: None
            })
        );
        assert_eq!(
            req("c:NiceRoom:CoolPlayer:Pass").map(|r| r.kind),
            Ok(Kind::Connect {
                password: Some("Pass")
            })
        );
        assert_eq!(
            req("c:NiceRoom:CoolPlayer").map(|r| r.kind),
            Ok(Kind::Connect { password: None })
        );
        for (text, kind) in [
            ("p:R:A", Kind::Ping),
            ("k:R:A", Kind::Kick),
            ("x:R:A", Kind::Exit),
            ("s:R:A", Kind::Start),
            ("y:R:A", Kind::Confirm),
        ] {
            let r = req(text).unwrap();
            assert_eq!((r.session, r.player, r.kind), ("R", "A", kind), "{text}");
        }
    }

    #[test]
    fn ignores_one_trailing_newline_only() {
        assert_eq!(req("p:R:A\n").map(|r| r.player), Ok("A"));
        assert_eq!(req("p:R:A\r\n").map(|r| r.player), Ok("A"));
        assert_eq!(req("p:R:A\n\n"), Err(ParseError::Invalid));
        assert_eq!(req("p:R:A\r"), Err(ParseError::Invalid));
    }

    #[test]
    fn field_lengths_are_enforced() {
        assert!(req("p:abcdefghij:A").is_ok());
        assert_eq!(req("p:abcdefghijk:A"), Err(ParseError::Invalid));
        assert!(req("p:R:abcdefghijkl").is_ok());
        assert_eq!(req("p:R:abcdefghijklm"), Err(ParseError::Invalid));
        assert!(req("c:R:A:abcdefghijkl").is_ok());
        assert_eq!(req("c:R:A:abcdefghijklm"), Err(ParseError::Invalid));
    }

    #[test]
    fn max_players_is_2_to_12_without_leading_zero_or_sign() {
        for m in 2..=12u8 {
            let text = format!("h:R:A:{m}");
            assert_eq!(
                req(&text).map(|r| r.kind),
                Ok(Kind::Host {
                    max_players: m,
                    password: None
                })
            );
        }
        for bad in ["0", "1", "13", "02", "+4", "-4", "4 ", "", "1x", "100"] {
            let text = format!("h:R:A:{bad}");
            assert_eq!(req(&text), Err(ParseError::Invalid), "{text:?}");
        }
    }

    #[test]
    fn malformed_datagrams_are_invalid() {
        for bad in [
            "",
            "p",
            "hello",
            "p:",
            "p:R",
            "p:R:",
            "p::A",
            "p:R:A:",
            "p:R:A:extra",
            "h:R:A",
            "h:R:A:4:W:extra",
            "h:R:A:4:",
            "c:R:A:W:extra",
            "p:R-1:A",
            "p:R:A b",
            "p:Rö:A",
            "\n",
        ] {
            assert_eq!(req(bad), Err(ParseError::Invalid), "{bad:?}");
        }
        assert_eq!(parse(b"p:R:\xff"), Err(ParseError::Invalid));
        assert_eq!(parse(b"z:\xff"), Err(ParseError::Invalid));
    }

    #[test]
    fn unknown_commands_are_silent() {
        assert_eq!(req("z:foo"), Err(ParseError::UnknownCommand));
        assert_eq!(req("hh:R:A:4"), Err(ParseError::UnknownCommand));
        assert_eq!(req(":R:A"), Err(ParseError::Invalid));
        assert_eq!(req(":"), Err(ParseError::Invalid));
    }

    #[test]
    fn longest_valid_request_fits_the_limit() {
        let longest = "h:abcdefghij:abcdefghijkl:12:abcdefghijkl\r\n";
        assert_eq!(longest.len(), MAX_REQUEST_LEN);
        assert!(req(longest).is_ok());
    }

    #[test]
    fn writes_info_and_start_messages() {
        let mut buf = Vec::new();
        write_info(&mut buf, ["A", "B", "C"]);
        assert_eq!(buf, b"i:A:B:C");

        buf.clear();
        let host: SocketAddr = "198.51.100.7:40001".parse().unwrap();
        let c: SocketAddr = "203.0.113.9:40003".parse().unwrap();
        write_start(&mut buf, 40002, [("A", host), ("C", c)]);
        assert_eq!(
            std::str::from_utf8(&buf).unwrap(),
            "s:40002:A:198.51.100.7:40001;C:203.0.113.9:40003"
        );
    }

    #[test]
    fn start_message_writes_mapped_ipv4_as_dotted_quad_and_ipv6_in_brackets() {
        let mut buf = Vec::new();
        let mapped: SocketAddr = "[::ffff:198.51.100.7]:1".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:65535".parse().unwrap();
        write_start(&mut buf, 0, [("A", mapped), ("B", v6)]);
        assert_eq!(
            std::str::from_utf8(&buf).unwrap(),
            "s:0:A:198.51.100.7:1;B:[2001:db8::1]:65535"
        );
    }

    #[test]
    fn error_strings_round_trip() {
        for code in ErrorCode::ALL {
            assert!(code.as_str().starts_with("error:"));
            assert_eq!(
                ErrorCode::from_datagram(code.as_str().as_bytes()),
                Some(code)
            );
        }
        assert_eq!(ErrorCode::from_datagram(b"error:nope"), None);
    }
}
