//! Why a punch attempt failed. Every failure has a stable short code (the Godot plugin's
//! error strings without the `error:` prefix), used by the CLI's `--json` output.

use std::fmt;

/// An error the server sent (`error:<code>`), one variant per code of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerError {
    /// `error:invalid_request`
    InvalidRequest,
    /// `error:session_exists`
    SessionExists,
    /// `error:session_non_existent`
    SessionNonExistent,
    /// `error:password_mismatch`
    PasswordMismatch,
    /// `error:only_one_player_in_session`
    OnlyOnePlayerInSession,
    /// `error:session_full`
    SessionFull,
    /// `error:player_name_in_use`
    PlayerNameInUse,
    /// `error:non_existent_player`
    NonExistentPlayer,
    /// `error:non_host_player`
    NonHostPlayer,
    /// `error:kicked_by_host`
    KickedByHost,
    /// `error:player_exited_session`: the answer to our own exit request.
    PlayerExitedSession,
    /// `error:session_not_started`
    SessionNotStarted,
    /// `error:session_timeout`
    SessionTimeout,
    /// `error:player_timeout`
    PlayerTimeout,
    /// A code this client does not know (a newer server); kept verbatim.
    Other(String),
}

impl ServerError {
    /// Maps the code after `error:` to its variant.
    pub fn from_code(code: &str) -> ServerError {
        use ServerError::*;
        match code {
            "invalid_request" => InvalidRequest,
            "session_exists" => SessionExists,
            "session_non_existent" => SessionNonExistent,
            "password_mismatch" => PasswordMismatch,
            "only_one_player_in_session" => OnlyOnePlayerInSession,
            "session_full" => SessionFull,
            "player_name_in_use" => PlayerNameInUse,
            "non_existent_player" => NonExistentPlayer,
            "non_host_player" => NonHostPlayer,
            "kicked_by_host" => KickedByHost,
            "player_exited_session" => PlayerExitedSession,
            "session_not_started" => SessionNotStarted,
            "session_timeout" => SessionTimeout,
            "player_timeout" => PlayerTimeout,
            other => Other(other.to_string()),
        }
    }

    /// The code as the server writes it after `error:`.
    pub fn code(&self) -> &str {
        use ServerError::*;
        match self {
            InvalidRequest => "invalid_request",
            SessionExists => "session_exists",
            SessionNonExistent => "session_non_existent",
            PasswordMismatch => "password_mismatch",
            OnlyOnePlayerInSession => "only_one_player_in_session",
            SessionFull => "session_full",
            PlayerNameInUse => "player_name_in_use",
            NonExistentPlayer => "non_existent_player",
            NonHostPlayer => "non_host_player",
            KickedByHost => "kicked_by_host",
            PlayerExitedSession => "player_exited_session",
            SessionNotStarted => "session_not_started",
            SessionTimeout => "session_timeout",
            PlayerTimeout => "player_timeout",
            Other(code) => code,
        }
    }
}

/// Why a session or a punch failed.
#[derive(Debug)]
pub enum Error {
    /// The server answered with an error.
    Server(ServerError),
    /// The server stayed silent for 15 s (`server_timeout`).
    ServerTimeout,
    /// No peer's greeting reached us during the greetings phase (`unreachable_self`).
    UnreachableSelf,
    /// A client got no `c:` from the host within 2 s of the confirmations phase, or no
    /// `s:<n>` start order from it within the phase's bound (`host_not_confirmed`).
    HostNotConfirmed,
    /// The caller's bound on the whole run passed first (`timeout`).
    Deadline,
    /// A request field breaks the protocol's rules; nothing was sent (`invalid_argument`).
    InvalidArgument(String),
    /// A socket operation failed (`io_error`).
    Io(std::io::Error),
}

impl Error {
    /// A stable short code: the server's code, or `server_timeout`, `unreachable_self`,
    /// `host_not_confirmed`, `timeout`, `invalid_argument`, `io_error`.
    pub fn code(&self) -> &str {
        match self {
            Error::Server(e) => e.code(),
            Error::ServerTimeout => "server_timeout",
            Error::UnreachableSelf => "unreachable_self",
            Error::HostNotConfirmed => "host_not_confirmed",
            Error::Deadline => "timeout",
            Error::InvalidArgument(_) => "invalid_argument",
            Error::Io(_) => "io_error",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Server(e) => write!(f, "server answered error:{}", e.code()),
            Error::ServerTimeout => f.write_str("the server did not answer for 15 s"),
            Error::UnreachableSelf => {
                f.write_str("no peer greeting reached us: our NAT blocks them (unreachable_self)")
            }
            Error::HostNotConfirmed => {
                f.write_str("the host never confirmed its port to us (host_not_confirmed)")
            }
            Error::Deadline => f.write_str("the run's time bound passed"),
            Error::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
            Error::Io(e) => write!(f, "socket error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_server_code_round_trips() {
        for code in [
            "invalid_request",
            "session_exists",
            "session_non_existent",
            "password_mismatch",
            "only_one_player_in_session",
            "session_full",
            "player_name_in_use",
            "non_existent_player",
            "non_host_player",
            "kicked_by_host",
            "player_exited_session",
            "session_not_started",
            "session_timeout",
            "player_timeout",
        ] {
            let e = ServerError::from_code(code);
            assert!(!matches!(e, ServerError::Other(_)), "{code}");
            assert_eq!(e.code(), code);
        }
        assert_eq!(ServerError::from_code("new_thing").code(), "new_thing");
    }
}
