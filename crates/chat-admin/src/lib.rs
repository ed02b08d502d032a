//! chat-admin: hihichat's administration — the admin JSON API and HTML pages
//! (users, passwords, permissions, the audit trail), each user's own
//! account page, each room's member-management page, all mounted into
//! chat-http's router; and the command-line use cases `hihichat
//! user|grant|revoke|bot` run.
//!
//! Every action goes through [`chat_domain::Accounts`] or
//! [`chat_domain::Moderation`], which check the caller themselves, so the
//! pages, the API and the CLI share one set of rules.

mod account;
mod api;
pub mod cli;
mod members;
mod pages;

use axum::Router;
use chat_http::AppState;

pub use api::{AdminViewer, AuditEntryDto, SignedIn, UserDto};

/// chat-admin's routes: `/api/admin/*`, `/api/me/password`, `/admin/*`,
/// `/account` and `/rooms/{room}/members`, for
/// `chat_http::router(state, chat_admin::router())`.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(api::routes())
        .merge(pages::routes())
        .merge(account::routes())
        .merge(members::routes())
}
