//! `HttpConfig`: the settings of the HTTP and WebSocket edge, with defaults
//! that suit a single server on a laptop.

use std::time::Duration;

use chat_domain::{DEFAULT_BOT_NAME, RateLimit};

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
    /// How often a connection pings its client and renews its presence.
    pub heartbeat: Duration,
    /// A connection that has sent nothing (not even a pong) for this long is dropped.
    pub idle_timeout: Duration,
    /// How fast one guest connection may talk to the bot; `None`: unlimited.
    pub guest_rate_limit: Option<RateLimit>,
    /// The bot's name as pages show it.
    pub bot_display_name: String,
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
            // Under the 60 s presence TTL with room for two missed beats.
            heartbeat: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(70),
            guest_rate_limit: Some(RateLimit {
                per_second: 1.0,
                burst: 5,
            }),
            bot_display_name: DEFAULT_BOT_NAME.to_owned(),
        }
    }
}
