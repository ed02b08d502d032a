//! One WebSocket client connection of the load generator: connect with a
//! session cookie, send text frames, read text frames and the close code.

use futures::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Why a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The WebSocket layer failed (connect, handshake, I/O).
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// The session cookie cannot be a header value.
    #[error("the session cookie is not a valid header value")]
    Cookie,
}

/// Who a connection logs in as: a user's session cookie, or nothing (the
/// baseline server has no accounts).
#[derive(Debug, Clone, Default)]
pub struct Credential {
    /// The user's name (for reports and logs).
    pub name: String,
    /// `hihichat_session=…`, sent as the `Cookie` header of the upgrade.
    pub cookie: Option<String>,
}

/// What [`Conn::next`] returns.
#[derive(Debug)]
pub enum Event {
    /// A text frame.
    Text(Utf8Bytes),
    /// The server closed the connection (with its close code, if any) or the
    /// stream ended.
    Closed(Option<u16>),
}

/// One open WebSocket.
#[derive(Debug)]
pub struct Conn {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// Small buffers: thousands of these live in one process, and the frames
/// are small. The read buffer is still large enough to take a burst of
/// deliveries in one read.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
}

impl Conn {
    /// Opens `url` (`ws://host:port/ws`) as `credential`. No `Origin`
    /// header is sent: this is not a browser.
    ///
    /// # Errors
    /// When the TCP connection or the upgrade fails.
    pub async fn connect(url: &str, credential: &Credential) -> Result<Conn, ClientError> {
        let mut request = url.into_client_request()?;
        if let Some(cookie) = &credential.cookie {
            let value = HeaderValue::from_str(cookie).map_err(|_| ClientError::Cookie)?;
            request.headers_mut().insert("cookie", value);
        }
        let (ws, _) =
            tokio_tungstenite::connect_async_with_config(request, Some(config()), true).await?;
        Ok(Conn { ws })
    }

    /// Sends one text frame and flushes it.
    ///
    /// # Errors
    /// When the connection is broken.
    pub async fn send(&mut self, text: String) -> Result<(), ClientError> {
        self.ws.send(Message::text(text)).await?;
        Ok(())
    }

    /// The next text frame or the end of the connection; pings are
    /// answered by the WebSocket layer while reading.
    ///
    /// # Errors
    /// When reading fails other than by a close.
    pub async fn next(&mut self) -> Result<Event, ClientError> {
        loop {
            match self.ws.next().await {
                None => return Ok(Event::Closed(None)),
                Some(Ok(Message::Text(text))) => return Ok(Event::Text(text)),
                Some(Ok(Message::Close(frame))) => {
                    return Ok(Event::Closed(frame.map(|f| u16::from(f.code))));
                }
                Some(Ok(_)) => {}
                Some(Err(
                    tokio_tungstenite::tungstenite::Error::ConnectionClosed
                    | tokio_tungstenite::tungstenite::Error::AlreadyClosed,
                )) => return Ok(Event::Closed(None)),
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// Closes the connection politely, without waiting long for the answer.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), self.ws.close(None)).await;
    }
}
