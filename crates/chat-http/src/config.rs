//! `HttpConfig`: the settings of the HTTP and WebSocket edge, with defaults
//! that suit a single server on a laptop.

use std::time::Duration;

use chat_domain::{PRESENCE_TTL, RateLimit};

/// Settings for the HTTP server, the JSON API and the WebSocket gateway.
///
/// `chat-server` builds this from its settings; tests usually start from
/// `HttpConfig::default()` and change a field or two.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Extra origins (`https://chat.example.com`) allowed to open a WebSocket,
    /// beyond the server's own `http(s)://{Host}`.
    pub allowed_origins: Vec<String>,
    /// Mark cookies `Secure` (set when served over HTTPS).
    pub secure_cookies: bool,
    /// Largest WebSocket frame and JSON body that is processed (64 KiB);
    /// bigger ones get `too_large`.
    pub max_frame_bytes: usize,
    /// How many frames may wait for a slow WebSocket client before it is
    /// disconnected with 1013.
    pub outbound_queue: usize,
    /// How often a connection pings its client and renews its presence;
    /// MUST be well under the presence TTL (see [`HttpConfig::for_presence_ttl`]).
    pub heartbeat: Duration,
    /// A connection that has sent nothing (not even a pong) for this long is
    /// dropped (checked at each heartbeat), and its user leaves its rooms.
    pub idle_timeout: Duration,
    /// How fast one guest connection may talk to the bot; `None`: unlimited.
    pub guest_rate_limit: Option<RateLimit>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            secure_cookies: false,
            max_frame_bytes: 64 * 1024,
            // Enough for a burst of a busy room while a client's TCP window
            // recovers, small enough that 15,000 sockets cannot hoard memory.
            outbound_queue: 256,
            heartbeat: heartbeat_for(PRESENCE_TTL),
            idle_timeout: idle_timeout_for(PRESENCE_TTL),
            guest_rate_limit: Some(RateLimit {
                per_second: 1.0,
                burst: 5,
            }),
        }
    }
}

impl HttpConfig {
    /// The same settings with the heartbeat and idle timeout that fit a
    /// presence TTL of `ttl` (the domain's `ServiceConfig::presence_ttl`):
    /// a ping and a presence renewal every third of it, so a live connection
    /// renews its presence twice more before the last renewal could run
    /// out; and a connection silent for five sixths of it (two and a half
    /// beats: one missed pong is forgiven, two are not) is dropped at the
    /// next beat, so a client that stopped answering goes offline about
    /// `ttl` after it was last heard from, announced once by the close.
    #[must_use]
    pub fn for_presence_ttl(mut self, ttl: Duration) -> Self {
        self.heartbeat = heartbeat_for(ttl);
        self.idle_timeout = idle_timeout_for(ttl);
        self
    }
}

fn heartbeat_for(ttl: Duration) -> Duration {
    ttl / 3
}

fn idle_timeout_for(ttl: Duration) -> Duration {
    ttl - heartbeat_for(ttl) / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heartbeat_and_idle_timeout_follow_the_presence_ttl() {
        let c = HttpConfig::default();
        assert_eq!(c.heartbeat, Duration::from_secs(20));
        assert_eq!(c.idle_timeout, Duration::from_secs(50));
        let c = HttpConfig::default().for_presence_ttl(Duration::from_secs(3));
        assert_eq!(c.heartbeat, Duration::from_secs(1));
        assert_eq!(c.idle_timeout, Duration::from_millis(2500));
        // One missed pong is forgiven; a silent client is dropped within the TTL.
        assert!(c.idle_timeout > 2 * c.heartbeat);
        assert!(c.idle_timeout < Duration::from_secs(3));
    }
}
