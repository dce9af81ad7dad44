//! The byte level of the hand-over encoding: little-endian integers, length-prefixed lists and
//! strings, addresses and names. The [`Reader`] treats its input as untrusted: every read is
//! bounds-checked, every count is checked against the bytes left before anything is allocated
//! for it, and names go through the protocol's own parser, so a state can hold nothing a client
//! could not have sent.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::StateError;
use crate::core::name::{Password, PlayerName, SessionName};
use crate::ip_key::IpKey;
use crate::wire::{self, ErrorCode, Kind};

/// Milliseconds a decoded time may reach: 35 000 years, so that adding any configured duration
/// to one cannot overflow.
pub(crate) const MAX_MILLIS: u64 = 1 << 50;

pub(crate) type Result<T> = std::result::Result<T, StateError>;

/// `Err(Malformed(what))`.
pub(crate) fn malformed<T>(what: impl Into<String>) -> Result<T> {
    Err(StateError::Malformed(what.into()))
}

/// Appends values to a byte buffer.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    /// A count of what follows. Nothing the core holds comes near 2^32 items.
    pub(crate) fn count(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    pub(crate) fn str(&mut self, s: &str) {
        self.count(s.len());
        self.buf.extend_from_slice(s.as_bytes());
    }
    pub(crate) fn opt_u64(&mut self, v: Option<u64>) {
        self.bool(v.is_some());
        if let Some(v) = v {
            self.u64(v);
        }
    }
    pub(crate) fn ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) => {
                self.u8(4);
                self.buf.extend_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                self.u8(6);
                self.buf.extend_from_slice(&v6.octets());
            }
        }
    }
    pub(crate) fn addr(&mut self, addr: SocketAddr) {
        self.ip(addr.ip());
        self.u16(addr.port());
    }
    pub(crate) fn opt_addr(&mut self, addr: Option<SocketAddr>) {
        self.bool(addr.is_some());
        if let Some(addr) = addr {
            self.addr(addr);
        }
    }
    pub(crate) fn ip_key(&mut self, key: IpKey) {
        match key {
            IpKey::V4(v) => {
                self.u8(4);
                self.u32(v);
            }
            IpKey::V6(v) => {
                self.u8(6);
                self.u64(v);
            }
        }
    }
    pub(crate) fn error(&mut self, code: ErrorCode) {
        let index = ErrorCode::ALL.iter().position(|&c| c == code);
        self.u8(index.map_or(u8::MAX, |i| i as u8));
    }
}

/// Reads values back, refusing anything out of bounds or out of the rules.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return malformed(format!("truncated in {what}"));
        }
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N, what)?);
        Ok(array)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    pub(crate) fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn bool(&mut self, what: &str) -> Result<bool> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            other => malformed(format!("{what}: {other} is no boolean")),
        }
    }
    /// A time in milliseconds, at most `max` (a state holds no time far past its export).
    pub(crate) fn millis(&mut self, max: u64, what: &str) -> Result<u64> {
        let v = self.u64(what)?;
        if v > max {
            return malformed(format!("{what}: {v} ms is past {max}"));
        }
        Ok(v)
    }
    pub(crate) fn opt_millis(&mut self, max: u64, what: &str) -> Result<Option<u64>> {
        Ok(match self.bool(what)? {
            true => Some(self.millis(max, what)?),
            false => None,
        })
    }
    /// A count of items of at least `min_bytes` each: never more than the bytes left can hold,
    /// so a forged count cannot make the decoder allocate more than the input's size.
    pub(crate) fn count(&mut self, min_bytes: usize, what: &str) -> Result<usize> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min_bytes.max(1)) > self.bytes.len() {
            return malformed(format!("{what}: {n} items cannot fit in what is left"));
        }
        Ok(n)
    }
    /// A UTF-8 string of at most `max` bytes.
    pub(crate) fn str(&mut self, max: usize, what: &str) -> Result<&'a str> {
        let len = self.u32(what)? as usize;
        if len > max {
            return malformed(format!("{what}: {len} bytes, more than {max}"));
        }
        std::str::from_utf8(self.take(len, what)?)
            .or_else(|_| malformed(format!("{what}: not UTF-8")))
    }
    pub(crate) fn ip(&mut self, what: &str) -> Result<IpAddr> {
        match self.u8(what)? {
            4 => Ok(Ipv4Addr::from(self.array::<4>(what)?).into()),
            6 => Ok(Ipv6Addr::from(self.array::<16>(what)?).into()),
            other => malformed(format!("{what}: address family {other}")),
        }
    }
    pub(crate) fn addr(&mut self, what: &str) -> Result<SocketAddr> {
        Ok(SocketAddr::new(self.ip(what)?, self.u16(what)?))
    }
    pub(crate) fn opt_addr(&mut self, what: &str) -> Result<Option<SocketAddr>> {
        Ok(match self.bool(what)? {
            true => Some(self.addr(what)?),
            false => None,
        })
    }
    pub(crate) fn ip_key(&mut self, what: &str) -> Result<IpKey> {
        match self.u8(what)? {
            4 => Ok(IpKey::V4(self.u32(what)?)),
            6 => Ok(IpKey::V6(self.u64(what)?)),
            other => malformed(format!("{what}: address family {other}")),
        }
    }
    pub(crate) fn error(&mut self, what: &str) -> Result<ErrorCode> {
        let index = self.u8(what)?;
        match ErrorCode::ALL.get(usize::from(index)) {
            Some(&code) => Ok(code),
            None => malformed(format!("{what}: no error number {index}")),
        }
    }

    /// A session name, valid as the request parser sees it.
    pub(crate) fn session(&mut self, what: &str) -> Result<SessionName> {
        let text = self.str(wire::MAX_SESSION_LEN, what)?;
        match parses(&format!("p:{text}:A"), |r| r.session == text) {
            true => SessionName::new(text).map_or_else(|| malformed(what), Ok),
            false => malformed(format!("{what}: {text:?} is no session name")),
        }
    }
    /// A player name, valid as the request parser sees it.
    pub(crate) fn player(&mut self, what: &str) -> Result<PlayerName> {
        let text = self.str(wire::MAX_PLAYER_LEN, what)?;
        match parses(&format!("p:A:{text}"), |r| r.player == text) {
            true => PlayerName::new(text).map_or_else(|| malformed(what), Ok),
            false => malformed(format!("{what}: {text:?} is no player name")),
        }
    }
    /// A password, valid as the request parser sees it.
    pub(crate) fn password(&mut self, what: &str) -> Result<Password> {
        let text = self.str(wire::MAX_PLAYER_LEN, what)?;
        let valid = parses(&format!("c:A:A:{text}"), |r| {
            r.kind
                == Kind::Connect {
                    password: Some(text),
                }
        });
        match valid {
            true => Password::new(text).map_or_else(|| malformed(what), Ok),
            false => malformed(format!("{what}: {text:?} is no password")),
        }
    }

    /// Fails unless every byte was read: trailing bytes mean the writer meant something else.
    pub(crate) fn finish(&self, what: &str) -> Result<()> {
        match self.bytes.len() {
            0 => Ok(()),
            n => malformed(format!("{n} bytes left over after {what}")),
        }
    }
}

/// Whether `datagram` is a request the parser accepts and `check` holds of it. A name is
/// checked by parsing a request made of it, so the rules are the parser's own; `check` makes
/// sure the field came back whole (the parser forgives a trailing newline, a name must not).
fn parses(datagram: &str, check: impl FnOnce(&wire::Request<'_>) -> bool) -> bool {
    wire::parse(datagram.as_bytes()).is_ok_and(|r| check(&r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_back_as_written() {
        let mut w = Writer::default();
        w.u16(40001);
        w.opt_u64(Some(7));
        w.addr("[2001:db8::1]:9".parse().unwrap());
        w.ip_key(IpKey::V6(5));
        w.str("Room");
        w.str("Ana");
        w.error(ErrorCode::PlayerTimeout);
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.u16("a").unwrap(), 40001);
        assert_eq!(r.opt_millis(7, "b").unwrap(), Some(7));
        assert_eq!(r.addr("c").unwrap(), "[2001:db8::1]:9".parse().unwrap());
        assert_eq!(r.ip_key("d").unwrap(), IpKey::V6(5));
        assert_eq!(r.session("e").unwrap(), *"Room");
        assert_eq!(r.player("f").unwrap(), *"Ana");
        assert_eq!(r.error("g").unwrap(), ErrorCode::PlayerTimeout);
        assert!(r.finish("h").is_ok());
    }

    #[test]
    fn names_follow_the_parsers_rules() {
        for bad in ["", "A\n", "A:B", "A B", "é", "ABCDEFGHIJK"] {
            let mut w = Writer::default();
            w.str(bad);
            assert!(Reader::new(&w.buf).session("s").is_err(), "{bad:?}");
        }
        let mut w = Writer::default();
        w.str("ABCDEFGHIJKLM");
        assert!(Reader::new(&w.buf).player("p").is_err());
        let mut w = Writer::default();
        w.count(1_000_000);
        assert!(Reader::new(&w.buf).count(1, "n").is_err());
        assert!(Reader::new(&[9, 0]).millis(1, "t").is_err());
    }
}
