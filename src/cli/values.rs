//! The flag values that are not plain numbers or addresses: durations with a unit, port
//! ranges, and the words of `--relay`, `--relay-io` and `--scheduling`. Each has its parser (for argh's
//! `from_str_fn`) and its writer (for the defaults `--help` shows), so that what `--help`
//! shows is always something the flag accepts.

use std::ops::RangeInclusive;
use std::time::Duration;

use crate::core::RelayMode;
use crate::runtime::{RelayIo, Scheduling};

/// The words of `--relay`, with their modes.
const RELAY_MODES: [(&str, RelayMode); 3] = [
    ("off", RelayMode::Off),
    ("auto", RelayMode::Auto),
    ("always", RelayMode::Always),
];

/// The words of `--relay-io`, with their ways.
const RELAY_IOS: [(&str, RelayIo); 3] = [
    ("auto", RelayIo::Auto),
    ("uring", RelayIo::Uring),
    ("epoll", RelayIo::Epoll),
];

/// The words of `--scheduling`, with their policies.
const SCHEDULINGS: [(&str, Scheduling); 2] =
    [("batch", Scheduling::Batch), ("normal", Scheduling::Normal)];

/// The value of `text` in a table of words, or an error listing the words as `what` does.
fn parse_word<T: Copy>(words: &[(&str, T)], text: &str, what: &str) -> Result<T, String> {
    words
        .iter()
        .find(|(word, _)| *word == text)
        .map(|&(_, value)| value)
        .ok_or_else(|| format!("`{text}` is not {what}"))
}

/// The word of `value` in a table of words.
fn word_of<T: PartialEq>(words: &[(&'static str, T)], value: &T) -> &'static str {
    words
        .iter()
        .find(|(_, v)| v == value)
        .map_or("?", |(word, _)| word)
}

/// `off`, `auto` or `always`.
pub fn parse_relay_mode(text: &str) -> Result<RelayMode, String> {
    parse_word(&RELAY_MODES, text, "a relay mode: use off, auto or always")
}

/// The word of a relay mode.
pub fn relay_mode_word(mode: RelayMode) -> &'static str {
    word_of(&RELAY_MODES, &mode)
}

/// `auto`, `uring` or `epoll`.
pub fn parse_relay_io(text: &str) -> Result<RelayIo, String> {
    parse_word(&RELAY_IOS, text, "a relay I/O: use auto, uring or epoll")
}

/// The word of a relay I/O.
pub fn relay_io_word(io: RelayIo) -> &'static str {
    word_of(&RELAY_IOS, &io)
}

/// `batch` or `normal`.
pub fn parse_scheduling(text: &str) -> Result<Scheduling, String> {
    parse_word(
        &SCHEDULINGS,
        text,
        "a scheduling policy: use batch or normal",
    )
}

/// The word of a scheduling policy.
pub fn scheduling_word(policy: Scheduling) -> &'static str {
    word_of(&SCHEDULINGS, &policy)
}

/// `A-B`, both ports inclusive, `A <= B`, or a single port `A`.
pub fn parse_port_range(text: &str) -> Result<RangeInclusive<u16>, String> {
    let port = |s: &str| {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("`{text}` is not a port range such as 7778-8777"))
    };
    let (first, last) = match text.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => (port(text)?, port(text)?),
    };
    if first > last {
        return Err(format!("`{text}`: the first port must not exceed the last"));
    }
    Ok(first..=last)
}

/// `A-B`, as [`parse_port_range`] reads it.
pub fn port_range_text(range: &RangeInclusive<u16>) -> String {
    format!("{}-{}", range.start(), range.end())
}

/// `50ms`, `5s`, `15m`, `1h`, or `1.5s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("`{text}` needs a unit: ms, s, m or h"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 500ms or 5s"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("`{text}` has an unknown unit: use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is out of range"))
}

/// A duration in the largest unit that writes it whole (`15m`, not `900s`; but `60s`), as
/// [`parse_duration`] reads it; below a millisecond, in seconds with a fraction.
pub fn duration_text(duration: Duration) -> String {
    let ms = duration.as_millis();
    if duration != Duration::from_millis(ms as u64) {
        return format!("{}s", duration.as_secs_f64());
    }
    match ms {
        0 => "0s".into(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 && ms > 60_000 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1e99h").is_err());
    }

    #[test]
    fn written_values_parse_back() {
        for ms in [
            1, 50, 100, 1500, 5000, 60_000, 900_000, 3_600_000, 5_400_000,
        ] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_duration(&duration_text(d)), Ok(d), "{ms} ms");
        }
        assert_eq!(duration_text(Duration::from_secs(900)), "15m");
        assert_eq!(duration_text(Duration::from_millis(100)), "100ms");
        assert_eq!(duration_text(Duration::from_secs(60)), "60s");
        let range = 7778..=8777;
        assert_eq!(parse_port_range(&port_range_text(&range)), Ok(range));
        for (word, mode) in RELAY_MODES {
            assert_eq!(parse_relay_mode(relay_mode_word(mode)), Ok(mode), "{word}");
        }
        for (word, policy) in SCHEDULINGS {
            assert_eq!(
                parse_scheduling(scheduling_word(policy)),
                Ok(policy),
                "{word}"
            );
        }
    }
}
