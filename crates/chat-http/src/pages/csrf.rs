//! Cross-site request forgery protection for every HTML form (double submit).
//!
//! A random token lives in the `hihichat_csrf` cookie and is rendered into
//! each form as the hidden field `csrf`. A form POST is accepted only when the
//! field equals the cookie: another site can make a browser send our cookies,
//! but it can neither read the cookie nor the page, so it cannot fill in the
//! field. `SameSite=Lax` on both cookies is a second wall, not the only one.
//!
//! # Using it (chat-admin does)
//!
//! * Take [`PageContext`](super::PageContext) in the page handler: it carries
//!   the [`CsrfToken`] (`page.csrf`) and, when the browser had no token yet,
//!   [`PageContext::render`](super::PageContext::render) sets the cookie on
//!   the response. Templates extending `layout.html` write
//!   `<input type="hidden" name="csrf" value="{{ page.csrf }}">` in each form.
//! * Take [`CsrfForm<T>`] instead of `Form<T>` in the POST handler. A missing
//!   or wrong token is answered with a 403 page before the handler runs.
//!
//! ```text
//! async fn add_user(page: PageContext, CsrfForm(form): CsrfForm<NewUserForm>) -> Response { .. }
//! ```

use std::fmt;

use axum::body::{Body, Bytes};
use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use rand::RngCore;
use serde::de::DeserializeOwned;

use super::PageContext;
use crate::AppState;
use crate::auth::{cookie_value, site_cookie};

/// The name of the cookie holding the token.
pub const CSRF_COOKIE: &str = "hihichat_csrf";
/// The name of the form field carrying the token.
pub const CSRF_FIELD: &str = "csrf";
/// How long the cookie lives: a form rendered just before it expires fails
/// once, so it outlives any realistic open tab.
const COOKIE_MAX_AGE: u64 = 365 * 24 * 3600;
/// Largest form body read (the longest form is a message of 4,000 characters,
/// up to 12 bytes each once percent-encoded).
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The CSRF token of this browser: 256 random bits as hex.
///
/// `Display` writes the token, so `{{ page.csrf }}` in a template is the value
/// of the hidden field.
#[derive(Clone, PartialEq, Eq)]
pub struct CsrfToken {
    value: String,
    fresh: bool,
}

impl CsrfToken {
    /// The browser's token from the request's cookies, or a new one when it
    /// has none (or a malformed one).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        match cookie_value(headers, CSRF_COOKIE).filter(|v| is_token(v)) {
            Some(v) => Self {
                value: v.to_ascii_lowercase(),
                fresh: false,
            },
            None => Self::generate(),
        }
    }

    /// A new random token (its cookie still has to be set).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self {
            value: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            fresh: true,
        }
    }

    /// The token text.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// Whether the token was made for this request, so the response must set
    /// the cookie.
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// The `Set-Cookie` value that stores this token in the browser.
    /// `HttpOnly` is fine: pages carry the token in their forms, scripts
    /// never need it.
    pub fn cookie(&self, secure: bool) -> HeaderValue {
        site_cookie(CSRF_COOKIE, &self.value, COOKIE_MAX_AGE, true, secure)
    }
}

impl fmt::Display for CsrfToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

impl fmt::Debug for CsrfToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A token is a (small) secret: keep it out of logs.
        f.write_str("CsrfToken(..)")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(token) = parts.extensions.get::<CsrfToken>() {
            return Ok(token.clone());
        }
        let token = Self::from_headers(&parts.headers);
        // Cached so that every extractor of one request sees the same new token.
        parts.extensions.insert(token.clone());
        Ok(token)
    }
}

fn is_token(v: &str) -> bool {
    v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Why a form was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfError {
    /// The browser has no token cookie.
    NoCookie,
    /// The form has no `csrf` field.
    NoField,
    /// The field does not match the cookie.
    Mismatch,
}

/// Checks a submitted token against the browser's cookie, in constant time.
///
/// # Errors
/// [`CsrfError`] when either is missing or they differ.
pub fn verify(headers: &HeaderMap, submitted: Option<&str>) -> Result<(), CsrfError> {
    let cookie = cookie_value(headers, CSRF_COOKIE)
        .filter(|v| is_token(v))
        .ok_or(CsrfError::NoCookie)?;
    let submitted = submitted.ok_or(CsrfError::NoField)?;
    if constant_time_eq(
        cookie.to_ascii_lowercase().as_bytes(),
        submitted.to_ascii_lowercase().as_bytes(),
    ) {
        Ok(())
    } else {
        Err(CsrfError::Mismatch)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The raw value of field `name` in an `application/x-www-form-urlencoded`
/// body. Tokens are hex, so no percent-decoding is needed: an encoded value
/// cannot be a valid token anyway.
fn form_field<'a>(body: &'a [u8], name: &str) -> Option<&'a str> {
    body.split(|&b| b == b'&')
        .filter_map(|pair| {
            let mut it = pair.splitn(2, |&b| b == b'=');
            Some((it.next()?, it.next().unwrap_or_default()))
        })
        .find(|(k, _)| *k == name.as_bytes())
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

/// A form body whose `csrf` field matched the browser's CSRF cookie,
/// deserialized into `T` (which need not declare the `csrf` field).
///
/// Rejections are HTML pages: 403 for a missing or wrong token, 413 for a
/// body over 64 KiB, 400 for a body that is not the expected form.
#[derive(Debug, Clone)]
pub struct CsrfForm<T>(pub T);

impl<T> FromRequest<AppState> for CsrfForm<T>
where
    T: DeserializeOwned + Send,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let bytes: Bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
            Ok(b) => b,
            Err(_) => {
                return Err(error_page(
                    &mut parts,
                    state,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Too large",
                    "That form was too large to accept.",
                )
                .await);
            }
        };
        if let Err(why) = verify(&parts.headers, form_field(&bytes, CSRF_FIELD)) {
            tracing::info!(?why, "form refused: CSRF token missing or wrong");
            return Err(error_page(
                &mut parts,
                state,
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form has expired or did not come from this site. Go back, reload the page and try again.",
            )
            .await);
        }
        // Kept for the error page: the rebuilt request takes `parts`.
        let headers = parts.headers.clone();
        let rebuilt = Request::from_parts(parts, Body::from(bytes));
        match Form::<T>::from_request(rebuilt, state).await {
            Ok(Form(value)) => Ok(Self(value)),
            Err(rejection) => {
                let (mut parts, _) = Request::new(Body::empty()).into_parts();
                parts.headers = headers;
                tracing::info!(error = %rejection, "form refused: malformed");
                Err(error_page(
                    &mut parts,
                    state,
                    StatusCode::BAD_REQUEST,
                    "Bad form",
                    "That form was incomplete or malformed.",
                )
                .await)
            }
        }
    }
}

async fn error_page(
    parts: &mut Parts,
    state: &AppState,
    status: StatusCode,
    title: &str,
    message: &str,
) -> Response {
    match PageContext::from_request_parts(parts, state).await {
        Ok(page) => page.error(status, title, message),
        Err(response) => response,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use axum::http::header;

    use super::*;

    fn with_cookie(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("x=1; {CSRF_COOKIE}={token}")).unwrap(),
        );
        h
    }

    #[test]
    fn a_token_is_read_back_from_the_cookie_and_made_when_absent() {
        let fresh = CsrfToken::from_headers(&HeaderMap::new());
        assert!(fresh.is_fresh());
        assert_eq!(fresh.as_str().len(), 64);
        let again = CsrfToken::from_headers(&with_cookie(fresh.as_str()));
        assert!(!again.is_fresh());
        assert_eq!(again.as_str(), fresh.as_str());
        assert!(CsrfToken::from_headers(&with_cookie("short")).is_fresh());
        assert_ne!(CsrfToken::generate(), CsrfToken::generate());
    }

    #[test]
    fn the_cookie_is_lax_and_site_wide() {
        let t = CsrfToken::generate();
        let c = t.cookie(false);
        let c = c.to_str().unwrap();
        assert!(c.starts_with(&format!("{CSRF_COOKIE}={}", t.as_str())));
        assert!(c.contains("SameSite=Lax") && c.contains("Path=/"), "{c}");
        assert!(t.cookie(true).to_str().unwrap().contains("Secure"));
    }

    #[test]
    fn verification_needs_both_halves_to_match() {
        let t = CsrfToken::generate();
        let h = with_cookie(t.as_str());
        assert_eq!(verify(&h, Some(t.as_str())), Ok(()));
        assert_eq!(verify(&h, None), Err(CsrfError::NoField));
        assert_eq!(
            verify(&h, Some(CsrfToken::generate().as_str())),
            Err(CsrfError::Mismatch)
        );
        assert_eq!(verify(&h, Some("")), Err(CsrfError::Mismatch));
        assert_eq!(
            verify(&HeaderMap::new(), Some(t.as_str())),
            Err(CsrfError::NoCookie)
        );
    }

    #[test]
    fn the_field_is_found_in_a_form_body() {
        let body = b"name=%E9%97%B2&csrf=abc&csrfx=no&description=";
        assert_eq!(form_field(body, "csrf"), Some("abc"));
        assert_eq!(form_field(body, "description"), Some(""));
        assert_eq!(form_field(body, "missing"), None);
        assert_eq!(form_field(b"csrf", "csrf"), Some(""));
    }
}
