//! `/account`: where any logged-in user changes their own password (the
//! current one required, the new one twice). Their other sessions end; the
//! one in this browser stays.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use chat_domain::{AccountError, Accounts, Password};
use chat_http::AppState;
use chat_http::pages::text::capitalize;
use chat_http::pages::{CsrfForm, PageContext};
use serde::Deserialize;

use crate::pages::refusal;

/// `/account`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/account", get(account_page).post(change_password))
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    page: &'a PageContext,
    name: String,
    permissions: Vec<String>,
    flash: Option<&'static str>,
    error: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
struct Done {
    done: Option<String>,
}

fn render(
    page: &PageContext,
    status: StatusCode,
    flash: Option<&'static str>,
    error: Option<String>,
) -> Response {
    let Some(user) = page.actor.user() else {
        return refusal(
            page,
            &AccountError::Unauthenticated,
            status == StatusCode::OK,
        );
    };
    page.render(
        status,
        &AccountPage {
            page,
            name: user.name.as_str().to_owned(),
            permissions: user
                .permissions
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
            flash,
            error,
        },
    )
}

async fn account_page(page: PageContext, Query(done): Query<Done>) -> Response {
    let flash = match done.done.as_deref() {
        Some("password") => Some("Password changed. Your other sessions have ended."),
        _ => None,
    };
    render(&page, StatusCode::OK, flash, None)
}

async fn change_password(
    page: PageContext,
    State(accounts): State<Arc<Accounts>>,
    CsrfForm(form): CsrfForm<HashMap<String, String>>,
) -> Response {
    if page.actor.is_guest() {
        return refusal(&page, &AccountError::Unauthenticated, false);
    }
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let fail = |status, why: String| render(&page, status, None, Some(why));
    if field("new") != field("new2") {
        return fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The two new passwords differ. Type the same password twice.".to_owned(),
        );
    }
    let new = match Password::parse(field("new")) {
        Ok(p) => p,
        Err(e) => return fail(StatusCode::UNPROCESSABLE_ENTITY, capitalize(&e.to_string())),
    };
    match accounts
        .change_own_password(&page.actor, page.session.as_ref(), field("old"), new)
        .await
    {
        Ok(()) => page.redirect("/account?done=password"),
        Err(AccountError::WrongPassword) => fail(
            StatusCode::FORBIDDEN,
            "Your current password is not that. Nothing was changed.".to_owned(),
        ),
        Err(e) => refusal(&page, &e, false),
    }
}
