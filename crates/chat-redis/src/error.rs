//! Translating fred's errors into the domain's `StoreError` at the seam.
//!
//! The line that matters is between "Redis cannot be reached right now"
//! (`Unavailable`: the send is answered `unavailable`, `/readyz` turns 503,
//! and trying again later may work) and everything else (`Unexpected`).

use chat_domain::StoreError;
use fred::error::{Error as FredError, ErrorKind};

/// Server replies that mean "not now" rather than "wrong": a server still
/// loading its AOF after a restart, a busy script, a failover in progress.
const TRANSIENT_REPLIES: [&str; 6] = [
    "LOADING",
    "BUSY",
    "MASTERDOWN",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "READONLY",
];

/// Maps a fred error: connection, timeout, I/O, a full command buffer and
/// transient server states are `Unavailable`; the rest `Unexpected`.
pub(crate) fn from_fred(e: FredError) -> StoreError {
    if is_unavailable(&e) {
        StoreError::unavailable(e)
    } else {
        StoreError::unexpected(e)
    }
}

fn is_unavailable(e: &FredError) -> bool {
    match e.kind() {
        ErrorKind::IO
        | ErrorKind::Timeout
        | ErrorKind::Canceled
        | ErrorKind::Backpressure
        | ErrorKind::Routing => true,
        _ => {
            let details = e.details();
            TRANSIENT_REPLIES.iter().any(|r| details.starts_with(r))
                // fred's words when a command could not be written before the
                // connection dropped (we allow a single write attempt).
                || details.contains("Too many failed write attempts")
                || details.contains("Connection closed")
                // fred's words (kind Unknown) for a command it takes from its
                // queue after dropping a dead connection but before the
                // reconnect it queued behind it: there is no connection to
                // write it to.
                || details.contains("Failed to route command")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_trouble_is_unavailable_and_bugs_are_not() {
        for kind in [ErrorKind::IO, ErrorKind::Timeout, ErrorKind::Backpressure] {
            assert!(matches!(
                from_fred(FredError::new(kind, "x")),
                StoreError::Unavailable(_)
            ));
        }
        assert!(matches!(
            from_fred(FredError::new(
                ErrorKind::Unknown,
                "LOADING Redis is loading"
            )),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            from_fred(FredError::new(ErrorKind::Unknown, "WRONGTYPE Operation")),
            StoreError::Unexpected(_)
        ));
    }

    #[test]
    fn a_command_sent_between_losing_the_connection_and_reconnecting_is_unavailable() {
        // The error exactly as fred 10 makes it (router/commands.rs).
        assert!(matches!(
            from_fred(FredError::new(
                ErrorKind::Unknown,
                "Failed to route command."
            )),
            StoreError::Unavailable(_)
        ));
    }

    #[test]
    fn a_broken_reply_from_a_healthy_connection_is_not_unavailable() {
        for (kind, details) in [
            (ErrorKind::Protocol, "Invalid response frame type."),
            (ErrorKind::Parse, "Invalid integer string."),
            (ErrorKind::Unknown, "Unknown frame error."),
            (
                ErrorKind::InvalidArgument,
                "Cannot convert NaN to redis value.",
            ),
        ] {
            assert!(
                matches!(
                    from_fred(FredError::new(kind, details)),
                    StoreError::Unexpected(_)
                ),
                "{details}"
            );
        }
    }
}
