//! Why a punch attempt failed. Every failure has a stable short code (the Godot plugin's
//! error strings without the `error:` prefix), used by the CLI's `--json` output.

use std::fmt;

/// An error the server sent (`error:<code>`): the server's own [`ErrorCode`](rabid_wire::ErrorCode),
/// one variant per code of the protocol.
pub use rabid_wire::ErrorCode as ServerError;

/// Why a session or a punch failed.
#[derive(Debug)]
pub enum Error {
    /// The server answered with an error.
    Server(ServerError),
    /// The server answered with an error code this client does not know (a newer server);
    /// kept verbatim.
    UnknownServerError(String),
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
            Error::UnknownServerError(code) => code,
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
            Error::Server(e) => write!(f, "server answered {}", e.as_str()),
            Error::UnknownServerError(code) => write!(f, "server answered error:{code}"),
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
    fn codes_of_known_and_unknown_server_errors() {
        assert_eq!(
            Error::Server(ServerError::SessionFull).code(),
            "session_full"
        );
        assert_eq!(
            Error::UnknownServerError("new_thing".into()).code(),
            "new_thing"
        );
        assert_eq!(Error::ServerTimeout.code(), "server_timeout");
    }
}
