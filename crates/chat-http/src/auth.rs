//! Who is asking: the `Viewer` extractor, which resolves the session cookie
//! to a domain `Actor`, and the helpers that set and clear that cookie.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use chat_domain::services::SESSION_TTL;
use chat_domain::{Accounts, Actor, SessionId, User};

use crate::error::ApiError;

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "hihichat_session";

/// The caller of a request: a user with the session that proves it, or a guest.
///
/// No, unknown and expired session cookies all make a guest; only a store
/// failure rejects the request (503/500).
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Who the domain sees.
    pub actor: Actor,
    /// The session that made the actor a user; `None` for guests.
    pub session: Option<SessionId>,
}

impl Viewer {
    /// A guest.
    pub fn guest() -> Self {
        Self {
            actor: Actor::Guest,
            session: None,
        }
    }

    /// The user, if logged in.
    pub fn user(&self) -> Option<&User> {
        self.actor.user()
    }

    /// Whether this is a guest.
    pub fn is_guest(&self) -> bool {
        self.actor.is_guest()
    }

    /// The user, or `unauthenticated` (401) for a guest.
    ///
    /// # Errors
    /// [`ApiError`] `unauthenticated` for guests.
    pub fn require_user(&self) -> Result<&User, ApiError> {
        self.user().ok_or_else(ApiError::unauthenticated)
    }

    /// Resolves the session cookie in `headers`.
    ///
    /// # Errors
    /// [`ApiError`] when the session store fails.
    pub async fn from_headers(accounts: &Accounts, headers: &HeaderMap) -> Result<Self, ApiError> {
        let presented = cookie_value(headers, SESSION_COOKIE).and_then(SessionId::parse);
        let actor = accounts.actor(presented.as_ref()).await?;
        let session = match actor {
            Actor::User(_) => presented,
            _ => None,
        };
        Ok(Self { actor, session })
    }
}

impl<S> FromRequestParts<S> for Viewer
where
    Arc<Accounts>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(viewer) = parts.extensions.get::<Viewer>() {
            return Ok(viewer.clone());
        }
        let accounts = Arc::<Accounts>::from_ref(state);
        let viewer = Self::from_headers(&accounts, &parts.headers).await?;
        if let Some(user) = viewer.user() {
            tracing::Span::current().record("user", user.name.as_str());
        }
        // Cached so that a handler extracting it twice (or a middleware and a
        // handler) costs one store read.
        parts.extensions.insert(viewer.clone());
        Ok(viewer)
    }
}

/// The value of cookie `name` among the request's `Cookie` headers.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

fn cookie(name: &str, value: &str, max_age: u64, http_only: bool, secure: bool) -> HeaderValue {
    let mut s = format!("{name}={value}; Path=/; Max-Age={max_age}; SameSite=Lax");
    if http_only {
        s.push_str("; HttpOnly");
    }
    if secure {
        s.push_str("; Secure");
    }
    // Names and values here are ASCII (hex ids, fixed names), so this cannot fail;
    // fall back to an empty cookie rather than panic.
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A `Set-Cookie` value carrying a session: `HttpOnly` (scripts cannot read
/// it), `SameSite=Lax` (not sent on cross-site POSTs), `Path=/`, living as
/// long as the session does.
pub fn session_cookie(id: &SessionId, secure: bool) -> HeaderValue {
    cookie(
        SESSION_COOKIE,
        id.as_str(),
        SESSION_TTL.as_secs(),
        true,
        secure,
    )
}

/// A `Set-Cookie` value that makes the browser forget the session cookie.
pub fn expired_session_cookie(secure: bool) -> HeaderValue {
    cookie(SESSION_COOKIE, "", 0, true, secure)
}

/// A `Set-Cookie` value for any other cookie of this site (for example the
/// CSRF cookie of the forms), with the same attributes as the session cookie.
pub fn site_cookie(
    name: &str,
    value: &str,
    max_age: u64,
    http_only: bool,
    secure: bool,
) -> HeaderValue {
    cookie(name, value, max_age, http_only, secure)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn finds_the_session_among_other_cookies() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; hihichat_session=abc"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie_value(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie_value(&h, "b"), Some("2"));
        assert_eq!(cookie_value(&h, "c"), None);
    }

    #[test]
    fn the_session_cookie_is_http_only_and_lax() {
        let id = SessionId::generate();
        let v = session_cookie(&id, true);
        let s = v.to_str().unwrap();
        assert!(s.starts_with(&format!("hihichat_session={}", id.as_str())));
        for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=", "Secure"] {
            assert!(s.contains(attr), "{s}");
        }
        assert!(
            !session_cookie(&id, false)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
        assert!(
            expired_session_cookie(false)
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
    }
}
