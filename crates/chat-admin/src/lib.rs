//! chat-admin: hihichat's administration — the admin JSON API and HTML pages
//! (users, passwords, permissions) mounted into chat-http's router, and the
//! command-line use cases `hihichat user|grant|revoke|bot` run.
//!
//! Every action goes through [`chat_domain::Accounts`], which checks that
//! the caller is an admin, so the pages, the API and the CLI share one set of
//! rules.

mod api;
pub mod cli;
mod pages;

use axum::Router;
use chat_http::AppState;

pub use api::{AdminViewer, UserDto};

/// The admin routes: `/api/admin/*` and `/admin/*`, for
/// `chat_http::router(state, chat_admin::router())`.
pub fn router() -> Router<AppState> {
    Router::new().merge(api::routes()).merge(pages::routes())
}
