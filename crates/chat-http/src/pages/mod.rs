//! The server-rendered HTML pages, the static assets and the avatars.
//!
//! Every page is an askama template (compiled in, auto-escaping) extending
//! `templates/layout.html`; each works without JavaScript, and `chat.js` then
//! makes the chat page live. chat-admin's pages extend the same layout and
//! use [`PageContext`] and [`csrf::CsrfForm`] the same way these do.

pub mod assets;
pub mod avatar;
pub mod csrf;
mod login;
mod rooms;
pub mod text;

use askama::Template;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chat_domain::{Actor, SessionId, policy};

use crate::AppState;
use crate::auth::Viewer;
pub use csrf::{CsrfForm, CsrfToken};

/// The HTML pages, `/static/{file}` and `/avatars/{name}.svg`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/rooms") }))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/rooms", get(rooms::list).post(rooms::create))
        .route("/rooms/{room}", get(rooms::show).post(rooms::send))
        .route("/dms", get(rooms::dms))
        .route("/avatars/{file}", get(avatar::serve))
        .route("/static/{file}", get(assets::serve))
}

/// What every page knows about its request: who is looking, their CSRF
/// token, and where they are. Templates extending `layout.html` need it as a
/// field named `page`.
///
/// Extract it in a handler (`page: PageContext`); answer with
/// [`PageContext::render`], [`PageContext::error`] or
/// [`PageContext::redirect`], which also set the CSRF cookie when this
/// browser did not have one yet.
#[derive(Debug, Clone)]
pub struct PageContext {
    /// Who is looking (pass it to the services).
    pub actor: Actor,
    /// Their session, if logged in.
    pub session: Option<SessionId>,
    /// The logged-in user's name; `None` for guests.
    pub user: Option<String>,
    /// Whether the viewer holds `admin` (shows the admin links).
    pub is_admin: bool,
    /// Whether the viewer may create rooms (shows the form).
    pub may_create_room: bool,
    /// The token every form carries as its `csrf` field.
    pub csrf: CsrfToken,
    /// The path and query of this page (for "log in and come back").
    pub path: String,
    secure_cookies: bool,
}

impl PageContext {
    /// The context of a request by `viewer` with `csrf` at `path`.
    pub fn new(
        viewer: &Viewer,
        csrf: CsrfToken,
        path: impl Into<String>,
        secure_cookies: bool,
    ) -> Self {
        let actor = viewer.actor.clone();
        Self {
            user: actor.user().map(|u| u.name.as_str().to_owned()),
            is_admin: policy::may_administer(&actor),
            may_create_room: policy::may_create_room(&actor) && !actor.is_guest(),
            actor,
            session: viewer.session.clone(),
            csrf,
            path: path.into(),
            secure_cookies,
        }
    }

    /// The URL of an embedded asset by its plain name (`app.css`), under its
    /// cache-busting name.
    pub fn asset(&self, logical: &str) -> String {
        assets::url(logical)
    }

    /// The identicon URL of a user.
    pub fn avatar(&self, name: &str) -> String {
        text::avatar_href(name)
    }

    /// `/login?next=<this page>`.
    pub fn login_href(&self) -> String {
        text::login_href(&self.path)
    }

    /// Whether `path` is the current page's path or under it (for `aria-current`).
    pub fn at(&self, prefix: &str) -> bool {
        let path = self.path.split('?').next().unwrap_or_default();
        path == prefix || path.starts_with(&format!("{prefix}/"))
    }

    /// Renders `template` with `status`; a failing template becomes a 500 page.
    pub fn render<T: Template>(&self, status: StatusCode, template: &T) -> Response {
        match template.render() {
            Ok(html) => self.finish(html_response(status, html)),
            Err(e) => {
                tracing::error!(error = %e, "template failed to render");
                self.error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The page could not be drawn. The error was logged.",
                )
            }
        }
    }

    /// An error page with the site's layout.
    pub fn error(&self, status: StatusCode, title: &str, message: &str) -> Response {
        let page = ErrorPage {
            page: self,
            status: status.as_u16(),
            title,
            message,
        };
        match page.render() {
            Ok(html) => self.finish(html_response(status, html)),
            Err(e) => {
                tracing::error!(error = %e, "error template failed to render");
                (status, message.to_owned()).into_response()
            }
        }
    }

    /// A 303 redirect to a local `location`.
    pub fn redirect(&self, location: &str) -> Response {
        self.finish(see_other(location))
    }

    /// The 503 page for a store that cannot be reached.
    pub fn unavailable(&self) -> Response {
        self.error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Temporarily unavailable",
            "hihichat cannot reach its storage right now. Please try again in a moment.",
        )
    }

    /// The 404 page.
    pub fn not_found(&self) -> Response {
        self.error(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is nothing here, or it is not yours to see.",
        )
    }

    /// Sets the CSRF cookie on `response` when this browser had none.
    pub fn finish(&self, mut response: Response) -> Response {
        if self.csrf.is_fresh() {
            response
                .headers_mut()
                .append(header::SET_COOKIE, self.csrf.cookie(self.secure_cookies));
        }
        response
    }
}

impl FromRequestParts<AppState> for PageContext {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let csrf = match CsrfToken::from_request_parts(parts, state).await {
            Ok(t) => t,
            Err(never) => match never {},
        };
        let path = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
        let secure = state.config.secure_cookies;
        match Viewer::from_request_parts(parts, state).await {
            Ok(viewer) => Ok(Self::new(&viewer, csrf, path, secure)),
            Err(e) => {
                tracing::warn!(error = ?e, "could not resolve the session for a page");
                let page = Self::new(&Viewer::guest(), csrf, path, secure);
                Err(page.unavailable())
            }
        }
    }
}

fn html_response(status: StatusCode, html: String) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            // Pages show who is logged in and carry their CSRF token.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        html,
    )
        .into_response()
}

fn see_other(location: &str) -> Response {
    // `location` is built from encoded names, so it is ASCII; anything else
    // is a bug, and the home page is a safe place to land.
    let value =
        HeaderValue::from_str(location).unwrap_or_else(|_| HeaderValue::from_static("/rooms"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response()
}

/// `templates/error.html`.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    page: &'a PageContext,
    status: u16,
    title: &'a str,
    message: &'a str,
}
