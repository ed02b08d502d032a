//! The admin HTML pages: the user list, a new-user form, one user's page
//! (permissions, password reset, deletion with a confirmation step), the
//! permission list and the audit trail. Every form carries the CSRF token and is checked with
//! [`CsrfForm`]; every action goes through [`Accounts`], which refuses
//! anyone but an admin.

use std::collections::{BTreeSet, HashMap};

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse as _, Redirect, Response};
use axum::routing::get;
use chat_domain::{
    AccountError, Accounts, AuditEntry, Coded, ErrorCode, Password, PermissionName, User, Username,
};
use chat_http::AppState;
use chat_http::pages::text::{capitalize, encode_component};
use chat_http::pages::{CsrfForm, PageContext};
use serde::Deserialize;
use std::sync::Arc;

/// `/admin/*` pages.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(|| async { Redirect::to("/admin/users") }))
        .route("/admin/admin.css", get(stylesheet))
        .route("/admin/users", get(users_page))
        .route("/admin/users/new", get(new_user_form).post(create_user))
        .route("/admin/users/{name}", get(user_page))
        .route(
            "/admin/users/{name}/permissions",
            axum::routing::post(save_permissions),
        )
        .route(
            "/admin/users/{name}/password",
            axum::routing::post(reset_password),
        )
        .route(
            "/admin/users/{name}/delete",
            get(confirm_delete).post(delete_user),
        )
        .route(
            "/admin/permissions",
            get(permissions_page).post(define_permission),
        )
        .route("/admin/audit", get(audit_page))
}

/// The admin pages' few extra styles, compiled in.
const ADMIN_CSS: &str = include_str!("../assets/admin.css");

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            // Short: the name carries no version, and it changes with releases.
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        ADMIN_CSS,
    )
        .into_response()
}

/// The form-field prefix of a permission checkbox: `perm:create_room=on`.
/// One field per permission, because the urlencoded form extractor cannot
/// collect repeated keys into a list.
const PERM_FIELD: &str = "perm:";

fn user_href(name: &str) -> String {
    format!("/admin/users/{}", encode_component(name))
}

/// `2026-11-23 10:00 UTC` from a timestamp.
pub(crate) fn short_date(rfc3339: &str) -> String {
    let minutes = rfc3339.get(..16).unwrap_or(rfc3339);
    format!("{} UTC", minutes.replacen('T', " ", 1))
}

/// The answer to a refused admin action that is not a form mistake: guests
/// are sent to log in (GET) or told to (POST), other users get a 403 page,
/// unknown users a 404, store failures a 503/500 page.
pub(crate) fn refusal(page: &PageContext, e: &AccountError, is_get: bool) -> Response {
    match e {
        AccountError::Unauthenticated if is_get => page.redirect(&page.login_href()),
        AccountError::Unauthenticated => page.error(
            StatusCode::UNAUTHORIZED,
            "Log in first",
            "Only admins may manage users. Log in as an admin and try again.",
        ),
        AccountError::Forbidden(why) => {
            page.error(StatusCode::FORBIDDEN, "Not allowed", &capitalize(why))
        }
        AccountError::NotFound => page.not_found(),
        other => failed(page, other, "admin action"),
    }
}

/// The page for any other refused or failed action: 503 when the store is
/// out of reach, 500 (logged) for a fault, else the error's own words with
/// its status.
pub(crate) fn failed<E: Coded + std::fmt::Display>(
    page: &PageContext,
    e: &E,
    action: &str,
) -> Response {
    match e.code() {
        ErrorCode::Unavailable => page.unavailable(),
        ErrorCode::Internal => {
            tracing::error!(error = %e, action, "action failed");
            page.error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The action failed. The error was logged.",
            )
        }
        code => page.error(status_of(code), "Not done", &capitalize(&e.to_string())),
    }
}

fn status_of(code: ErrorCode) -> StatusCode {
    chat_http::error::status_of(code)
}

/// A username from the path; a malformed one cannot exist (the caller answers 404).
fn path_user(raw: &str) -> Option<Username> {
    Username::parse(raw).ok()
}

/// Which flash message a redirect asked for (`?done=…`); only known keys
/// show anything, so a link cannot make the page say arbitrary things.
#[derive(Debug, Deserialize, Default)]
struct Done {
    done: Option<String>,
}

impl Done {
    fn message(&self) -> Option<&'static str> {
        Some(match self.done.as_deref()? {
            "created" => "User created.",
            "deleted" => "User deleted; their sessions have ended.",
            "permissions" => "Permissions saved.",
            "password" => "Password changed; their sessions have ended.",
            "defined" => "Permission defined.",
            _ => return None,
        })
    }
}

// ------------------------------------------------------------------ users

/// One row of the user list.
struct UserRow {
    name: String,
    href: String,
    permissions: Vec<String>,
    created_at: String,
    created_short: String,
}

impl From<&User> for UserRow {
    fn from(u: &User) -> Self {
        let created_at = u.created_at.to_rfc3339();
        Self {
            name: u.name.as_str().to_owned(),
            href: user_href(u.name.as_str()),
            permissions: u
                .permissions
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
            created_short: short_date(&created_at),
            created_at,
        }
    }
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage<'a> {
    page: &'a PageContext,
    users: Vec<UserRow>,
    flash: Option<&'static str>,
}

async fn users_page(
    page: PageContext,
    State(accounts): State<Arc<Accounts>>,
    Query(done): Query<Done>,
) -> Response {
    match accounts.users(&page.actor).await {
        Ok(users) => page.render(
            StatusCode::OK,
            &UsersPage {
                page: &page,
                users: users.iter().map(UserRow::from).collect(),
                flash: done.message(),
            },
        ),
        Err(e) => refusal(&page, &e, true),
    }
}

/// A permission checkbox.
struct PermBox {
    name: String,
    field: String,
    checked: bool,
    builtin: bool,
}

fn perm_boxes(defined: &[PermissionName], checked: &BTreeSet<PermissionName>) -> Vec<PermBox> {
    defined
        .iter()
        .map(|p| PermBox {
            name: p.as_str().to_owned(),
            field: format!("{PERM_FIELD}{p}"),
            checked: checked.contains(p),
            builtin: p.is_builtin(),
        })
        .collect()
}

/// The permissions ticked in a form; a name that is not a permission at all
/// is a forged form and refused.
fn ticked(form: &HashMap<String, String>) -> Result<BTreeSet<PermissionName>, String> {
    form.keys()
        .filter_map(|k| k.strip_prefix(PERM_FIELD))
        .map(|p| PermissionName::parse(p).map_err(|e| capitalize(&e.to_string())))
        .collect()
}

#[derive(Template)]
#[template(path = "admin/user_new.html")]
struct NewUserPage<'a> {
    page: &'a PageContext,
    username: String,
    perms: Vec<PermBox>,
    error: Option<String>,
}

async fn render_new_user(
    page: &PageContext,
    accounts: &Accounts,
    status: StatusCode,
    username: String,
    checked: &BTreeSet<PermissionName>,
    error: Option<String>,
) -> Response {
    match accounts.permissions(&page.actor).await {
        Ok(defined) => page.render(
            status,
            &NewUserPage {
                page,
                username,
                perms: perm_boxes(&defined, checked),
                error,
            },
        ),
        Err(e) => refusal(page, &e, status == StatusCode::OK),
    }
}

async fn new_user_form(page: PageContext, State(accounts): State<Arc<Accounts>>) -> Response {
    render_new_user(
        &page,
        &accounts,
        StatusCode::OK,
        String::new(),
        &[PermissionName::create_room()].into(),
        None,
    )
    .await
}

async fn create_user(
    page: PageContext,
    State(accounts): State<Arc<Accounts>>,
    CsrfForm(form): CsrfForm<HashMap<String, String>>,
) -> Response {
    if page.actor.is_guest() || !page.is_admin {
        return refusal(&page, &forbidden_for(&page), false);
    }
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let raw_name = field("username").trim().to_owned();
    let checked = ticked(&form);
    let again = |status, error: String, checked: BTreeSet<PermissionName>| {
        let (page, accounts, raw_name) = (&page, &accounts, raw_name.clone());
        async move { render_new_user(page, accounts, status, raw_name, &checked, Some(error)).await }
    };
    let checked = match checked {
        Ok(c) => c,
        Err(why) => return again(StatusCode::UNPROCESSABLE_ENTITY, why, BTreeSet::new()).await,
    };
    let name = match Username::parse(&raw_name) {
        Ok(n) => n,
        Err(e) => {
            return again(
                StatusCode::UNPROCESSABLE_ENTITY,
                capitalize(&e.to_string()),
                checked,
            )
            .await;
        }
    };
    if field("password") != field("password2") {
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The two passwords differ. Type the same password twice.".to_owned(),
            checked,
        )
        .await;
    }
    let password = match Password::parse(field("password")) {
        Ok(p) => p,
        Err(e) => {
            return again(
                StatusCode::UNPROCESSABLE_ENTITY,
                capitalize(&e.to_string()),
                checked,
            )
            .await;
        }
    };
    match accounts
        .create_user(&page.actor, name, password, checked.clone())
        .await
    {
        Ok(user) => page.redirect(&format!("{}?done=created", user_href(user.name.as_str()))),
        Err(AccountError::NameTaken) => {
            again(
                StatusCode::CONFLICT,
                format!("The username “{raw_name}” is taken. Choose another."),
                checked,
            )
            .await
        }
        Err(e @ (AccountError::Invalid(_) | AccountError::UnknownPermission(_))) => {
            again(
                StatusCode::UNPROCESSABLE_ENTITY,
                capitalize(&e.to_string()),
                checked,
            )
            .await
        }
        Err(e) => refusal(&page, &e, false),
    }
}

/// What the services would say to a non-admin, said before reading a form.
fn forbidden_for(page: &PageContext) -> AccountError {
    if page.actor.is_guest() {
        AccountError::Unauthenticated
    } else {
        AccountError::Forbidden("only admins may manage users")
    }
}

// -------------------------------------------------------------- one user

#[derive(Template)]
#[template(path = "admin/user.html")]
struct UserPage<'a> {
    page: &'a PageContext,
    user: UserRow,
    perms: Vec<PermBox>,
    is_self: bool,
    flash: Option<&'static str>,
    perm_error: Option<String>,
    password_error: Option<String>,
}

#[derive(Default)]
struct UserPageErrors {
    perm: Option<String>,
    password: Option<String>,
}

async fn render_user(
    page: &PageContext,
    accounts: &Accounts,
    name: &Username,
    status: StatusCode,
    flash: Option<&'static str>,
    errors: UserPageErrors,
) -> Response {
    let is_get = status == StatusCode::OK;
    let user = match accounts.user(&page.actor, name).await {
        Ok(u) => u,
        Err(e) => return refusal(page, &e, is_get),
    };
    let defined = match accounts.permissions(&page.actor).await {
        Ok(d) => d,
        Err(e) => return refusal(page, &e, is_get),
    };
    page.render(
        status,
        &UserPage {
            page,
            perms: perm_boxes(&defined, &user.permissions),
            is_self: page.user.as_deref() == Some(user.name.as_str()),
            user: UserRow::from(&user),
            flash,
            perm_error: errors.perm,
            password_error: errors.password,
        },
    )
}

async fn user_page(
    page: PageContext,
    State(accounts): State<Arc<Accounts>>,
    Path(name): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    let Some(name) = path_user(&name) else {
        return page.not_found();
    };
    render_user(
        &page,
        &accounts,
        &name,
        StatusCode::OK,
        done.message(),
        UserPageErrors::default(),
    )
    .await
}

async fn save_permissions(
    page: PageContext,
    State(accounts): State<Arc<Accounts>>,
    Path(name): Path<String>,
    CsrfForm(form): CsrfForm<HashMap<String, String>>,
) -> Response {
    if page.actor.is_guest() || !page.is_admin {
        return refusal(&page, &forbidden_for(&page), false);
    }
    let Some(name) = path_user(&name) else {
        return page.not_found();
    };
    let fail = |status, why: String| {
        let (page, accounts, name) = (&page, &accounts, name.clone());
        async move {
            render_user(
                page,
                accounts,
                &name,
                status,
                None,
                UserPageErrors {
                    perm: Some(why),
                    password: None,
                },
            )
            .await
        }
    };
    let perms = match ticked(&form) {
        Ok(p) => p,
        Err(why) => return fail(StatusCode::UNPROCESSABLE_ENTITY, why).await,
    };
    match accounts.set_permissions(&page.actor, &name, perms).await {
        Ok(user) => page.redirect(&format!(
            "{}?done=permissions",
            user_href(user.name.as_str())
        )),
        Err(
            e @ (AccountError::Forbidden(_)
            | AccountError::UnknownPermission(_)
            | AccountError::Invalid(_)),
        ) if page.is_admin => fail(status_of(e.code()), capitalize(&e.to_string())).await,
        Err(e) => refusal(&page, &e, false),
    }
}

async fn reset_password(
    page: PageContext,
    State(accounts): State<Arc<Accounts>>,
    Path(name): Path<String>,
    CsrfForm(form): CsrfForm<HashMap<String, String>>,
) -> Response {
    if page.actor.is_guest() || !page.is_admin {
        return refusal(&page, &forbidden_for(&page), false);
    }
    let Some(name) = path_user(&name) else {
        return page.not_found();
    };
    let fail = |why: String| {
        let (page, accounts, name) = (&page, &accounts, name.clone());
        async move {
            render_user(
                page,
                accounts,
                &name,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                UserPageErrors {
                    perm: None,
                    password: Some(why),
                },
            )
            .await
        }
    };
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if field("password") != field("password2") {
        return fail("The two passwords differ. Type the same password twice.".to_owned()).await;
    }
    let password = match Password::parse(field("password")) {
        Ok(p) => p,
        Err(e) => return fail(capitalize(&e.to_string())).await,
    };
    if let Err(e) = accounts.user(&page.actor, &name).await {
        return refusal(&page, &e, false);
    }
    match accounts.set_password(&page.actor, &name, password).await {
        Ok(()) => page.redirect(&format!("{}?done=password", user_href(name.as_str()))),
        Err(e) => refusal(&page, &e, false),
    }
}

#[derive(Template)]
#[template(path = "admin/user_delete.html")]
struct DeletePage<'a> {
    page: &'a PageContext,
    user: UserRow,
    is_self: bool,
}

async fn confirm_delete(
    page: PageContext,
    State(accounts): State<Arc<Accounts>>,
    Path(name): Path<String>,
) -> Response {
    let Some(name) = path_user(&name) else {
        return page.not_found();
    };
    match accounts.user(&page.actor, &name).await {
        Ok(user) => page.render(
            StatusCode::OK,
            &DeletePage {
                page: &page,
                is_self: page.user.as_deref() == Some(user.name.as_str()),
                user: UserRow::from(&user),
            },
        ),
        Err(e) => refusal(&page, &e, true),
    }
}

async fn delete_user(
    page: PageContext,
    State(accounts): State<Arc<Accounts>>,
    Path(name): Path<String>,
    CsrfForm(form): CsrfForm<HashMap<String, String>>,
) -> Response {
    if page.actor.is_guest() || !page.is_admin {
        return refusal(&page, &forbidden_for(&page), false);
    }
    let Some(name) = path_user(&name) else {
        return page.not_found();
    };
    if form.get("confirm").map(String::as_str) != Some("yes") {
        // Only the confirmation page's button says yes.
        return page.redirect(&format!("{}/delete", user_href(name.as_str())));
    }
    if let Err(e) = accounts.user(&page.actor, &name).await {
        return refusal(&page, &e, false);
    }
    match accounts.delete_user(&page.actor, &name).await {
        Ok(()) => page.redirect("/admin/users?done=deleted"),
        Err(e) => refusal(&page, &e, false),
    }
}

// ------------------------------------------------------------ permissions

/// One row of the permission list.
struct PermRow {
    name: String,
    builtin: bool,
    holders: usize,
}

#[derive(Template)]
#[template(path = "admin/permissions.html")]
struct PermissionsPage<'a> {
    page: &'a PageContext,
    perms: Vec<PermRow>,
    name: String,
    error: Option<String>,
    flash: Option<&'static str>,
}

async fn render_permissions(
    page: &PageContext,
    accounts: &Accounts,
    status: StatusCode,
    name: String,
    error: Option<String>,
    flash: Option<&'static str>,
) -> Response {
    let is_get = status == StatusCode::OK;
    let (defined, users) = match (
        accounts.permissions(&page.actor).await,
        accounts.users(&page.actor).await,
    ) {
        (Ok(d), Ok(u)) => (d, u),
        (Err(e), _) | (_, Err(e)) => return refusal(page, &e, is_get),
    };
    let perms = defined
        .into_iter()
        .map(|p| PermRow {
            holders: users.iter().filter(|u| u.permissions.contains(&p)).count(),
            builtin: p.is_builtin(),
            name: p.into_string(),
        })
        .collect();
    page.render(
        status,
        &PermissionsPage {
            page,
            perms,
            name,
            error,
            flash,
        },
    )
}

async fn permissions_page(
    page: PageContext,
    State(accounts): State<Arc<Accounts>>,
    Query(done): Query<Done>,
) -> Response {
    render_permissions(
        &page,
        &accounts,
        StatusCode::OK,
        String::new(),
        None,
        done.message(),
    )
    .await
}

async fn define_permission(
    page: PageContext,
    State(accounts): State<Arc<Accounts>>,
    CsrfForm(form): CsrfForm<HashMap<String, String>>,
) -> Response {
    if page.actor.is_guest() || !page.is_admin {
        return refusal(&page, &forbidden_for(&page), false);
    }
    let raw = form
        .get("name")
        .map(|s| s.trim())
        .unwrap_or_default()
        .to_owned();
    let again = |status, why: String| {
        let (page, accounts, raw) = (&page, &accounts, raw.clone());
        async move { render_permissions(page, accounts, status, raw, Some(why), None).await }
    };
    let perm = match PermissionName::parse(&raw) {
        Ok(p) => p,
        Err(e) => return again(StatusCode::UNPROCESSABLE_ENTITY, capitalize(&e.to_string())).await,
    };
    match accounts.define_permission(&page.actor, &perm).await {
        Ok(()) => page.redirect("/admin/permissions?done=defined"),
        Err(AccountError::PermissionExists) => {
            again(
                StatusCode::CONFLICT,
                format!("The permission “{perm}” already exists."),
            )
            .await
        }
        Err(e) => refusal(&page, &e, false),
    }
}

// ------------------------------------------------------------------ audit

/// How many of the newest entries the audit page shows.
const AUDIT_PAGE_ROWS: usize = 500;

/// One row of the audit page.
struct AuditRow {
    at: String,
    at_short: String,
    actor: String,
    /// The actor's admin page, when the actor is a user.
    actor_href: Option<String>,
    action: &'static str,
    target: String,
    detail: String,
}

impl From<AuditEntry> for AuditRow {
    fn from(e: AuditEntry) -> Self {
        let at = e.at.to_rfc3339();
        Self {
            // Seconds matter in a trail: `2026-11-23 10:00:05 UTC`.
            at_short: format!("{} UTC", at.get(..19).unwrap_or(&at).replacen('T', " ", 1)),
            at,
            actor_href: (e.actor != AuditEntry::SYSTEM).then(|| user_href(&e.actor)),
            actor: e.actor,
            action: e.action.as_str(),
            target: e.target,
            detail: e.detail,
        }
    }
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage<'a> {
    page: &'a PageContext,
    rows: Vec<AuditRow>,
    limit: usize,
}

async fn audit_page(page: PageContext, State(accounts): State<Arc<Accounts>>) -> Response {
    match accounts.audit(&page.actor, AUDIT_PAGE_ROWS).await {
        Ok(entries) => page.render(
            StatusCode::OK,
            &AuditPage {
                page: &page,
                rows: entries.into_iter().map(AuditRow::from).collect(),
                limit: AUDIT_PAGE_ROWS,
            },
        ),
        Err(e) => refusal(&page, &e, true),
    }
}
