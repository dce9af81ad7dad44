//! The client's lobby directory flags: which go together, the `--list` query, `--quick-join`.

use std::net::SocketAddr;
use std::process::ExitCode;

use super::{list, push_json_str, Args};
use crate::directory::{chat_request, Directory, DirectoryError, Order, Query};

/// The directory's flags make sense only together with some others: say which, else nothing.
pub(super) fn check_directory_flags(args: &Args) -> Result<(), String> {
    let directory_text = args.version_text.is_some() || args.mode.is_some();
    let list_only = args.free || args.open || args.order.is_some();
    if args.list {
        if args.host || args.quick_join || args.public || args.probe || args.chat.is_some() {
            return Err(
                "--list lists only: not with --host, --quick-join, --public, --probe \
                        or --chat"
                    .to_string(),
            );
        }
        if args.game.is_none() && (directory_text || list_only) {
            return Err(
                "--free, --open, --order, --version-text and --mode filter a game's \
                        directory: give --game (the compatible list has no filters)"
                    .to_string(),
            );
        }
        if args.description.is_some() {
            return Err("--description is for a --public host".to_string());
        }
        return match args.order.as_deref() {
            None | Some("new" | "full") => Ok(()),
            Some(other) => Err(format!("--order is new or full, not {other:?}")),
        };
    }
    if list_only {
        return Err("--free, --open and --order are filters of --list".to_string());
    }
    if args.quick_join {
        if args.game.is_none() || args.name.is_none() {
            return Err("--quick-join needs --game and --name".to_string());
        }
        if args.host || args.session.is_some() || args.public || args.mode.is_some() {
            return Err(
                "--quick-join finds the session itself: not with --host, --session, \
                        --public or --mode"
                    .to_string(),
            );
        }
    } else if args.public {
        if !args.host {
            return Err("--public is for a host: add --host".to_string());
        }
        if args.game.is_none() && args.description.is_some() {
            return Err(
                "--description needs --game (the compatible list shows no description)".to_string(),
            );
        }
    } else if args.game.is_some() || directory_text || args.description.is_some() {
        return Err(
            "--game, --version-text, --mode and --description go with --list, \
                    --quick-join or --public"
                .to_string(),
        );
    }
    if let Some(text) = &args.chat {
        if let Err(e) = chat_request("check", "check", text) {
            return Err(format!("--chat: {e}"));
        }
    }
    Ok(())
}

/// The browse of `--list --game G`, from the filter flags (checked by the caller).
pub(super) fn browse_query(args: &Args, game: &str) -> Query {
    let mut query = Query::game(game);
    query.free_only = args.free;
    query.open_only = args.open;
    query.version = args.version_text.clone();
    query.mode = args.mode.clone();
    if args.order.as_deref() == Some("full") {
        query.order = Order::Fullest;
    }
    query
}

pub(super) fn text_or_empty(text: &Option<String>) -> &str {
    text.as_deref().unwrap_or("")
}

/// Asks the server for a lobby of `game` to join: its session and the server to join it at
/// (another of a fleet's, or `server`), or the exit code of a failure (none found, the
/// directory did not answer, the other server's address does not resolve), already reported.
pub(super) fn quick_join(
    server: SocketAddr,
    game: &str,
    version: Option<&str>,
    verbose: bool,
) -> Result<(String, SocketAddr), ExitCode> {
    match Directory::new(server).quick_join(game, version) {
        Ok(Some(found)) => {
            let at = match &found.server {
                None => server,
                Some(other) => match super::resolve(&other.address()) {
                    Ok(addr) => addr,
                    Err(why) => {
                        eprintln!(
                            "quick join: {} is at {}: {why}",
                            found.session,
                            other.address()
                        );
                        return Err(ExitCode::FAILURE);
                    }
                },
            };
            if verbose {
                eprintln!(
                    "quick join: {} (host {}, {}/{} players) at {at}",
                    found.session, found.host, found.players, found.max_players
                );
            }
            Ok((found.session, at))
        }
        Ok(None) => {
            let why = format!("no open lobby of game {game} with a free slot and no password");
            if verbose {
                println!("failed: no_lobby ({why})");
            } else {
                let mut out = String::from("{\"outcome\":\"no_lobby\",\"error\":");
                push_json_str(&mut out, &why);
                println!("{out}}}");
            }
            Err(ExitCode::FAILURE)
        }
        Err(e) => {
            list::print_failure(&e, !verbose);
            Err(if matches!(e, DirectoryError::InvalidArgument(_)) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::ExitCode;

    #[test]
    fn directory_flags_go_with_their_command() {
        let usage = |flags: &str| {
            let args = format!("--server 127.0.0.1:1 {flags}");
            let args: Vec<String> = args.split(' ').map(str::to_string).collect();
            super::super::run_cli(&args)
        };
        for bad in [
            "--list --host --session R --name a",
            "--list --free",
            "--list --version-text 1",
            "--list --game cards --order oldest",
            "--list --game cards --description hi",
            "--free --session R --name a",
            "--quick-join --name a",
            "--quick-join --game cards",
            "--quick-join --game cards --name a --session R",
            "--quick-join --game cards --name a --mode Draft",
            "--public --session R --name a",
            "--public --host --session R --name a --description hi",
            "--host --session R --name a --game cards",
            "--session R --name a --mode Draft",
            "--public --host --session R --name a --game ca|rds",
            "--public --host --session R --name a --game cards --mode a;b",
            "--public --host --session R --name a --version-text [1]",
            "--session R --name a --chat \u{7}",
        ] {
            assert_eq!(usage(bad), ExitCode::from(2), "{bad}");
        }
    }
}
