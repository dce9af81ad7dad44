//! Names stored inline: session names, player names and passwords are short ASCII strings, so a
//! fixed array beats a heap `String` in memory (no pointer, no allocation) and in speed.

use std::fmt;

/// An ASCII string of at most `N` bytes, stored inline. Unused bytes are zero, so the derived
/// equality is that of the text.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ShortName<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

/// A session name (`S`).
pub type SessionName = ShortName<{ crate::wire::MAX_SESSION_LEN }>;
/// A player name (`P`).
pub type PlayerName = ShortName<{ crate::wire::MAX_PLAYER_LEN }>;
/// A session password (`W`).
pub type Password = ShortName<{ crate::wire::MAX_PLAYER_LEN }>;

impl<const N: usize> ShortName<N> {
    /// `None` when `text` is longer than `N` bytes. The wire parser has already checked the
    /// characters; this type only stores them.
    pub fn new(text: &str) -> Option<Self> {
        let len = text.len();
        if len > N {
            return None;
        }
        let mut bytes = [0u8; N];
        bytes[..len].copy_from_slice(text.as_bytes());
        Some(Self {
            len: len as u8,
            bytes,
        })
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        let text = &self.bytes[..self.len as usize];
        debug_assert!(std::str::from_utf8(text).is_ok());
        // SAFETY: the only constructor, `new`, copies a whole `&str`, so `text` is valid UTF-8.
        // (Checking it again here cost a tenth of a ping's handling, in `benches/core.rs`.)
        unsafe { std::str::from_utf8_unchecked(text) }
    }
}

impl<const N: usize> std::hash::Hash for ShortName<N> {
    /// One write of the whole array. Equal names have equal arrays, so this agrees with `Eq`;
    /// only names that differ in trailing zero bytes would share a hash, and the protocol's are
    /// letters and digits. Hashing `len` and the array apart tripled the hasher's calls on
    /// every lookup.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(&self.bytes);
    }
}

impl<const N: usize> fmt::Debug for ShortName<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> fmt::Display for ShortName<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> PartialEq<str> for ShortName<N> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_up_to_n_bytes() {
        let name = SessionName::new("abcdefghij").unwrap();
        assert_eq!(name.as_str(), "abcdefghij");
        assert!(SessionName::new("abcdefghijk").is_none());
        assert_eq!(PlayerName::new("A").unwrap(), *"A");
        assert_ne!(PlayerName::new("A"), PlayerName::new("AB"));
    }
}
