//! Arbitrary bytes into `wire::parse`: it must never panic, and a request it accepts must be
//! exactly the text its fields spell (the trailing newline aside), so writing the request back
//! and parsing it again gives the same request.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rabid_punch::wire::{parse, Kind, MAX_REQUEST_LEN};
use rabid_punch_fuzz::format_request;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = parse(data) else {
        return;
    };
    assert!(
        data.len() <= MAX_REQUEST_LEN,
        "accepted {} bytes, more than MAX_REQUEST_LEN",
        data.len()
    );
    if let Kind::Host { max_players, .. } = request.kind {
        assert!((2..=12).contains(&max_players), "max players {max_players}");
    }
    let text = format_request(&request);
    let body = data
        .strip_suffix(b"\r\n")
        .or_else(|| data.strip_suffix(b"\n"))
        .unwrap_or(data);
    assert_eq!(
        text.as_bytes(),
        body,
        "the request's fields do not spell the datagram"
    );
    assert_eq!(
        parse(text.as_bytes()),
        Ok(request),
        "round trip of {text:?}"
    );
});
