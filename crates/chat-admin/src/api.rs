//! The admin JSON API of CONTRACT §3: users, their passwords and
//! permissions, permission names and the audit trail; and `PUT
//! /api/me/password`, where any user changes their own password. Thin
//! handlers over [`Accounts`], which makes every permission check itself.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use chat_domain::{
    AUDIT_KEPT, Accounts, Actor, AuditEntry, Password, PermissionName, SessionId, User, Username,
    policy,
};
use chat_http::error::{ApiPath, ApiQuery};
use chat_http::{ApiError, ApiJson, AppState, Viewer};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// `/api/admin/*`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/admin/users", get(list_users).post(create_user))
        .route(
            "/api/admin/users/{name}",
            axum::routing::delete(delete_user).get(show_user),
        )
        .route("/api/admin/users/{name}/password", put(set_password))
        .route("/api/admin/users/{name}/permissions", put(set_permissions))
        .route(
            "/api/admin/permissions",
            get(list_permissions).post(define_permission),
        )
        .route("/api/admin/audit", get(audit))
        .route("/api/me/password", put(change_own_password))
}

/// The caller, known to hold `admin`.
///
/// Taken as the first argument so that guests get 401 and other users 403
/// before a body is even read: a malformed body from a stranger says nothing
/// about what an admin would have been told. The services check again.
pub struct AdminViewer(pub Actor);

impl FromRequestParts<AppState> for AdminViewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let viewer = Viewer::from_request_parts(parts, state).await?;
        if viewer.is_guest() {
            return Err(ApiError::unauthenticated());
        }
        if !policy::may_administer(&viewer.actor) {
            return Err(ApiError::new(
                chat_domain::ErrorCode::Forbidden,
                "only admins may manage users and permissions",
            ));
        }
        Ok(Self(viewer.actor))
    }
}

/// The caller, known to be logged in, with the session that proves it.
///
/// Like [`AdminViewer`], taken first so that a guest gets 401 whatever the
/// body says.
pub struct SignedIn {
    /// Who is asking.
    pub actor: Actor,
    /// Their session (kept when they change their password).
    pub session: Option<SessionId>,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let viewer = Viewer::from_request_parts(parts, state).await?;
        viewer.require_user()?;
        Ok(Self {
            actor: viewer.actor,
            session: viewer.session,
        })
    }
}

/// A user as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct UserDto {
    /// The username.
    pub name: String,
    /// Granted permissions, sorted.
    pub permissions: Vec<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
}

impl From<&User> for UserDto {
    fn from(u: &User) -> Self {
        Self {
            name: u.name.as_str().to_owned(),
            permissions: u
                .permissions
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
            created_at: u.created_at.to_rfc3339(),
        }
    }
}

fn username(raw: &str) -> Result<Username, ApiError> {
    Ok(Username::parse(raw)?)
}

fn permission_set(raw: &[String]) -> Result<BTreeSet<PermissionName>, ApiError> {
    raw.iter()
        .map(|p| PermissionName::parse(p).map_err(ApiError::from))
        .collect()
}

async fn list_users(
    AdminViewer(actor): AdminViewer,
    State(accounts): State<Arc<Accounts>>,
) -> Result<Response, ApiError> {
    let users = accounts.users(&actor).await?;
    let users: Vec<UserDto> = users.iter().map(UserDto::from).collect();
    Ok(ApiJson(json!({ "users": users })).into_response())
}

async fn show_user(
    AdminViewer(actor): AdminViewer,
    State(accounts): State<Arc<Accounts>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    let user = accounts.user(&actor, &username(&name)?).await?;
    Ok(ApiJson(json!({ "user": UserDto::from(&user) })).into_response())
}

/// `POST /api/admin/users`.
#[derive(Debug, Deserialize)]
struct NewUserBody {
    username: String,
    password: String,
    #[serde(default)]
    permissions: Vec<String>,
}

async fn create_user(
    AdminViewer(actor): AdminViewer,
    State(accounts): State<Arc<Accounts>>,
    ApiJson(body): ApiJson<NewUserBody>,
) -> Result<Response, ApiError> {
    let name = username(&body.username)?;
    let password = Password::parse(&body.password)?;
    let perms = permission_set(&body.permissions)?;
    let user = accounts.create_user(&actor, name, password, perms).await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(json!({ "user": UserDto::from(&user) })),
    )
        .into_response())
}

async fn delete_user(
    AdminViewer(actor): AdminViewer,
    State(accounts): State<Arc<Accounts>>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let name = username(&name)?;
    // 404 for a name that does not exist, whatever the store does on delete.
    accounts.user(&actor, &name).await?;
    accounts.delete_user(&actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /api/admin/users/{name}/password`.
#[derive(Debug, Deserialize)]
struct PasswordBody {
    password: String,
}

async fn set_password(
    AdminViewer(actor): AdminViewer,
    State(accounts): State<Arc<Accounts>>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<PasswordBody>,
) -> Result<StatusCode, ApiError> {
    let name = username(&name)?;
    let password = Password::parse(&body.password)?;
    accounts.user(&actor, &name).await?;
    accounts.set_password(&actor, &name, password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /api/admin/users/{name}/permissions`.
#[derive(Debug, Deserialize)]
struct PermissionsBody {
    permissions: Vec<String>,
}

async fn set_permissions(
    AdminViewer(actor): AdminViewer,
    State(accounts): State<Arc<Accounts>>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<PermissionsBody>,
) -> Result<Response, ApiError> {
    let name = username(&name)?;
    let perms = permission_set(&body.permissions)?;
    let user = accounts.set_permissions(&actor, &name, perms).await?;
    Ok(ApiJson(json!({ "user": UserDto::from(&user) })).into_response())
}

async fn list_permissions(
    AdminViewer(actor): AdminViewer,
    State(accounts): State<Arc<Accounts>>,
) -> Result<Response, ApiError> {
    let perms: Vec<String> = accounts
        .permissions(&actor)
        .await?
        .into_iter()
        .map(PermissionName::into_string)
        .collect();
    Ok(ApiJson(json!({ "permissions": perms })).into_response())
}

/// `POST /api/admin/permissions`.
#[derive(Debug, Deserialize)]
struct PermissionBody {
    name: String,
}

async fn define_permission(
    AdminViewer(actor): AdminViewer,
    State(accounts): State<Arc<Accounts>>,
    ApiJson(body): ApiJson<PermissionBody>,
) -> Result<Response, ApiError> {
    let perm = PermissionName::parse(&body.name)?;
    accounts.define_permission(&actor, &perm).await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(json!({ "permission": perm.as_str(), "name": perm.as_str() })),
    )
        .into_response())
}

/// One line of the audit trail as the API shows it.
#[derive(Debug, Serialize)]
pub struct AuditEntryDto {
    /// RFC 3339, UTC, with milliseconds.
    pub at: String,
    /// Who did it (a username, or `system` for the command line).
    pub actor: String,
    /// What was done, e.g. `user_created`, `muted`.
    pub action: &'static str,
    /// To whom or what.
    pub target: String,
    /// The particulars.
    pub detail: String,
}

impl From<&AuditEntry> for AuditEntryDto {
    fn from(e: &AuditEntry) -> Self {
        Self {
            at: e.at.to_rfc3339(),
            actor: e.actor.clone(),
            action: e.action.as_str(),
            target: e.target.clone(),
            detail: e.detail.clone(),
        }
    }
}

/// How many audit entries a `GET /api/admin/audit` without `limit` returns.
const DEFAULT_AUDIT_LIMIT: usize = 100;

/// `GET /api/admin/audit?limit=N`.
#[derive(Debug, Deserialize)]
struct AuditQuery {
    limit: Option<usize>,
}

async fn audit(
    AdminViewer(actor): AdminViewer,
    State(accounts): State<Arc<Accounts>>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    let limit = match query.limit {
        None => DEFAULT_AUDIT_LIMIT,
        Some(0) => return Err(ApiError::invalid("limit must be at least 1")),
        Some(n) => n.min(AUDIT_KEPT),
    };
    let entries = accounts.audit(&actor, limit).await?;
    let entries: Vec<AuditEntryDto> = entries.iter().map(AuditEntryDto::from).collect();
    Ok(ApiJson(json!({ "entries": entries })).into_response())
}

/// `PUT /api/me/password`.
#[derive(Debug, Deserialize)]
struct OwnPasswordBody {
    old: String,
    new: String,
}

/// Changes the caller's password given the current one: 204; the caller's
/// other sessions end, this one stays. 403 for a wrong current password.
async fn change_own_password(
    me: SignedIn,
    State(accounts): State<Arc<Accounts>>,
    ApiJson(body): ApiJson<OwnPasswordBody>,
) -> Result<StatusCode, ApiError> {
    let new = Password::parse(&body.new)?;
    accounts
        .change_own_password(&me.actor, me.session.as_ref(), &body.old, new)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
