//! Arbitrary bytes into `wire::parse` and into the server's front door (`core::FrontDoor`,
//! what the receiver passes every datagram through): neither may panic, and
//! - a request it accepts is exactly the text its fields spell (the trailing newline aside), so
//!   writing the request back and parsing it again gives the same request;
//! - a datagram it refuses is classified as `docs/protocol.md` says: an unknown command (no reply)
//!   is valid UTF-8 with a non-empty first field that is not a command letter; anything else is
//!   invalid (`error:invalid_request`);
//! - the front door routes exactly the requests the parser accepts, carrying the same request;
//!   answers invalid datagrams with `error:invalid_request` only when that is at most three
//!   times their size; and answers nothing else;
//! - the lobby directory's requests (`rabid_punch::wire::lobby`) go to a shard (`d:`, `m:`,
//!   `a:1:`) or to the directory (`l:`, `b:1:`, `q:1:`) exactly when they parse, and a refused
//!   one is answered only when the answer is at most three times its size.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rabid_punch::core::{Dropped, FrontDoor, Verdict};
use rabid_punch::wire::lobby::{parse_lobby, write_extension_error, LobbyRequest};
use rabid_punch::wire::{parse, ErrorCode, Kind, ParseError, MAX_REQUEST_LEN};
use rabid_punch_fuzz::format_request;

/// The command letters of the protocol.
const COMMANDS: [&str; 7] = ["h", "c", "p", "k", "x", "s", "y"];

fuzz_target!(|data: &[u8]| {
    check_front_door(data);
    let body = data
        .strip_suffix(b"\r\n")
        .or_else(|| data.strip_suffix(b"\n"))
        .unwrap_or(data);
    let request = match parse(data) {
        Ok(request) => request,
        Err(error) => {
            // The protocol's rule, stated on its own: an unknown command letter is silent.
            let unknown_command = std::str::from_utf8(body)
                .ok()
                .and_then(|text| text.split_once(':'))
                .is_some_and(|(command, _)| !command.is_empty() && !COMMANDS.contains(&command));
            let expected = if unknown_command {
                ParseError::UnknownCommand
            } else {
                ParseError::Invalid
            };
            assert_eq!(error, expected, "classification of {data:?}");
            return;
        }
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

/// The front door's verdict on `data` agrees with the parser, and its answers never amplify.
fn check_front_door(data: &[u8]) {
    let from = "198.51.100.1:40000".parse().unwrap();
    let verdict = FrontDoor::new(3).handle(from, None, data, false);
    if let Some(parsed) = parse_lobby(data) {
        match (parsed, verdict) {
            (
                Ok(LobbyRequest::List | LobbyRequest::Browse(_) | LobbyRequest::QuickJoin { .. }),
                Verdict::Directory { from: f, .. },
            ) => assert_eq!(f, from),
            (Ok(_), Verdict::Lobby { shard, routed }) => {
                assert!(shard < 3, "shard {shard} of 3");
                assert_eq!(routed.from, from);
            }
            (Err(error), Verdict::Reply { .. } | Verdict::ReplyLobby { .. }) => {
                let mut answer = Vec::new();
                write_extension_error(&mut answer, error);
                assert!(
                    answer.len() <= 3 * data.len(),
                    "{} bytes of answer to {} bytes",
                    answer.len(),
                    data.len()
                );
            }
            (Err(_), Verdict::Drop(Dropped::ShortGarbage)) => {}
            (parsed, verdict) => {
                panic!("{data:?} parses as {parsed:?} but the front door says {verdict:?}")
            }
        }
        return;
    }
    match (parse(data), verdict) {
        (Ok(request), Verdict::Route { shard, routed }) => {
            assert!(shard < 3, "shard {shard} of 3");
            assert_eq!(routed.from, from);
            assert_eq!(
                routed.request.as_wire(),
                request,
                "routed request of {data:?}"
            );
        }
        (Err(ParseError::Invalid), Verdict::Reply { to, error }) => {
            assert_eq!((to, error), (from, ErrorCode::InvalidRequest));
            assert!(
                error.as_str().len() <= 3 * data.len(),
                "{} bytes of answer to {} bytes",
                error.as_str().len(),
                data.len()
            );
        }
        (Err(ParseError::Invalid), Verdict::Drop(Dropped::ShortGarbage)) => {}
        (Err(ParseError::UnknownCommand), Verdict::Drop(Dropped::UnknownCommand)) => {}
        (parsed, verdict) => {
            panic!("{data:?} parses as {parsed:?} but the front door says {verdict:?}")
        }
    }
}
