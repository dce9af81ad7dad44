//! Writing a parsed request back as the text a client sends.

use rabid_punch::wire::{Kind, Request};

/// Writes `request` as the text a client sends, without a trailing newline.
///
/// Written from the field rules of the protocol, not with `wire`'s helpers, so that the round trip
/// checks the parser against an independent statement of the format.
pub fn format_request(request: &Request<'_>) -> String {
    let letter = match request.kind {
        Kind::Host { .. } => 'h',
        Kind::Connect { .. } => 'c',
        Kind::Ping => 'p',
        Kind::Kick => 'k',
        Kind::Exit => 'x',
        Kind::Start => 's',
        Kind::Confirm => 'y',
    };
    let mut text = format!("{letter}:{}:{}", request.session, request.player);
    let password = match request.kind {
        Kind::Host {
            max_players,
            password,
        } => {
            text.push(':');
            text.push_str(&max_players.to_string());
            password
        }
        Kind::Connect { password } => password,
        _ => None,
    };
    if let Some(password) = password {
        text.push(':');
        text.push_str(password);
    }
    text
}
