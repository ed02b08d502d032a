//! `GET/POST /login` and `POST /logout`: the HTML side of sessions.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use chat_domain::LoginError;
use serde::Deserialize;

use super::csrf::CsrfForm;
use super::{PageContext, text};
use crate::AppState;
use crate::auth::{expired_session_cookie, session_cookie};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    page: &'a PageContext,
    username: &'a str,
    next: &'a str,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct NextQuery {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

/// The `next` to honour: a local path, else the room list.
fn destination(next: &str) -> &str {
    if text::is_local_path(next) && !next.starts_with("/login") {
        next
    } else {
        "/rooms"
    }
}

/// `GET /login`.
pub(super) async fn form(page: PageContext, Query(q): Query<NextQuery>) -> Response {
    let next = q.next.unwrap_or_default();
    let next = if text::is_local_path(&next) {
        next
    } else {
        String::new()
    };
    page.render(
        StatusCode::OK,
        &LoginPage {
            page: &page,
            username: "",
            next: &next,
            error: None,
        },
    )
}

/// `POST /login`: checks the password, starts a new session (never reusing
/// one the browser brought along) and goes where the visitor was heading.
pub(super) async fn submit(
    page: PageContext,
    State(state): State<AppState>,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Response {
    let again = |status: StatusCode, error: String| {
        page.render(
            status,
            &LoginPage {
                page: &page,
                username: &form.username,
                next: if text::is_local_path(&form.next) {
                    &form.next
                } else {
                    ""
                },
                error: Some(error),
            },
        )
    };
    match state
        .accounts
        .login(form.username.trim(), &form.password)
        .await
    {
        Ok((_, session)) => {
            if let Some(old) = &page.session {
                // A fresh id at every login; the old session ends here.
                if let Err(e) = state.accounts.logout(old).await {
                    tracing::warn!(error = %e, "could not end the previous session");
                }
            }
            let mut response = page.redirect(destination(&form.next));
            response.headers_mut().append(
                header::SET_COOKIE,
                session_cookie(&session.id, state.config.secure_cookies),
            );
            response
        }
        Err(LoginError::InvalidCredentials) => again(
            StatusCode::UNAUTHORIZED,
            "Login failed: wrong username or password.".to_owned(),
        ),
        Err(LoginError::Throttled { retry_after }) => {
            let secs = retry_after.as_secs().max(1);
            let mut response = again(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many failed attempts for this account. Wait {secs} second{} and try again.",
                    if secs == 1 { "" } else { "s" }
                ),
            );
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response
        }
        Err(LoginError::Store(e)) => {
            tracing::error!(error = %e, "login failed on the store");
            again(
                StatusCode::SERVICE_UNAVAILABLE,
                "Logging in is not possible right now. Please try again in a moment.".to_owned(),
            )
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct NoFields {}

/// `POST /logout`: ends the session and forgets the cookie.
pub(super) async fn logout(
    page: PageContext,
    State(state): State<AppState>,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Response {
    if let Some(session) = &page.session {
        if let Err(e) = state.accounts.logout(session).await {
            tracing::error!(error = %e, "logout failed on the store");
            return page.error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Could not log out",
                "hihichat cannot reach its storage right now. Please try again in a moment.",
            );
        }
    }
    let mut response = page.redirect("/login");
    response.headers_mut().append(
        header::SET_COOKIE,
        expired_session_cookie(state.config.secure_cookies),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::destination;

    #[test]
    fn only_local_destinations_are_followed() {
        assert_eq!(destination("/rooms/x"), "/rooms/x");
        assert_eq!(destination("//evil.example"), "/rooms");
        assert_eq!(destination("https://evil.example"), "/rooms");
        assert_eq!(destination(""), "/rooms");
        assert_eq!(destination("/login?next=/x"), "/rooms");
    }
}
