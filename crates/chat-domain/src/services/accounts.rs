//! `Accounts`: login, sessions, and the administration of users and permissions.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;
use tracing::{info, instrument};

use super::Auditor;
use crate::clock::{Clock, Timestamp};
use crate::error::{AccountError, LoginError};
use crate::model::{
    AuditAction, AuditEntry, NewUser, PasswordHash, Session, SessionId, User, UserEvent,
};
use crate::names::{PermissionName, Username};
use crate::password::{Password, PasswordHasher};
use crate::policy::{self, Actor};
use crate::ports::{AUDIT_KEPT, AuditLog, RoomEvents, SessionStore, UserRepository};

/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Failed logins for one account within this window count towards throttling.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// How many failed logins within [`LOGIN_WINDOW`] throttle an account.
pub const LOGIN_ATTEMPTS: usize = 5;

/// Recent failed logins per account name, in this process.
///
/// Keyed by the name as typed, so unknown names are throttled exactly like
/// real ones and the answer reveals nothing. A std `Mutex`: the critical
/// section is a few comparisons, never held across an `.await`.
#[derive(Debug, Default)]
struct LoginFailures(Mutex<HashMap<String, VecDeque<Timestamp>>>);

impl LoginFailures {
    /// How long `name` must wait, if it is throttled at `now`.
    fn throttled(&self, name: &str, now: Timestamp) -> Option<Duration> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let recent = map.get_mut(name)?;
        while recent.front().is_some_and(|t| t.plus(LOGIN_WINDOW) <= now) {
            recent.pop_front();
        }
        if recent.len() < LOGIN_ATTEMPTS {
            return None;
        }
        recent.front().map(|first| {
            now.until(first.plus(LOGIN_WINDOW))
                .max(Duration::from_secs(1))
        })
    }

    fn failed(&self, name: &str, now: Timestamp) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            // Bound memory under a spray of random names: old entries matter least.
            map.retain(|_, v| v.back().is_some_and(|t| t.plus(LOGIN_WINDOW) > now));
        }
        let recent = map.entry(name.to_owned()).or_default();
        recent.push_back(now);
        while recent.len() > LOGIN_ATTEMPTS {
            recent.pop_front();
        }
    }

    fn succeeded(&self, name: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }
}

/// What the first start did.
#[derive(Debug)]
pub enum Bootstrap {
    /// Users already existed; nothing was done.
    AlreadyInitialised,
    /// `admin` was created; `generated` holds its password when none was given.
    AdminCreated {
        /// The random password, to be shown once.
        generated: Option<Password>,
    },
}

/// Users, passwords, sessions and permissions.
pub struct Accounts {
    users: Arc<dyn UserRepository>,
    sessions: Arc<dyn SessionStore>,
    events: Arc<dyn RoomEvents>,
    audit: Auditor,
    clock: Arc<dyn Clock>,
    hasher: PasswordHasher,
    dummy_hash: OnceCell<PasswordHash>,
    failures: LoginFailures,
}

impl Accounts {
    /// Wires the service to its ports, hashing with OWASP's argon2id settings.
    /// Every change to users and permissions is written to `audit`.
    pub fn new(
        users: Arc<dyn UserRepository>,
        sessions: Arc<dyn SessionStore>,
        events: Arc<dyn RoomEvents>,
        audit: Arc<dyn AuditLog>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            users,
            sessions,
            events,
            audit: Auditor::new(audit, Arc::clone(&clock)),
            clock,
            hasher: PasswordHasher::owasp(),
            dummy_hash: OnceCell::new(),
            failures: LoginFailures::default(),
        }
    }

    /// Uses another hasher (tests use cheaper parameters).
    #[must_use]
    pub fn with_hasher(mut self, hasher: PasswordHasher) -> Self {
        self.hasher = hasher;
        self
    }

    /// On an empty store, creates `admin` with every built-in permission.
    ///
    /// # Errors
    /// Store failures.
    pub async fn bootstrap(&self, password: Option<Password>) -> Result<Bootstrap, AccountError> {
        if self.users.count_users().await? > 0 {
            return Ok(Bootstrap::AlreadyInitialised);
        }
        let generated = password.is_none().then(Password::generate);
        let chosen = password
            .or_else(|| generated.clone())
            .unwrap_or_else(Password::generate);
        #[allow(clippy::expect_used)]
        let name = Username::parse("admin").expect("`admin` is a valid username");
        match self
            .create_user(
                &Actor::System,
                name,
                chosen,
                PermissionName::builtins().into_iter().collect(),
            )
            .await
        {
            // Another node won the race to initialise: that is fine.
            Err(AccountError::NameTaken) => Ok(Bootstrap::AlreadyInitialised),
            Err(e) => Err(e),
            Ok(_) => Ok(Bootstrap::AdminCreated { generated }),
        }
    }

    /// Checks a name and password and opens a new session.
    ///
    /// A wrong name and a wrong password get the same answer after the same
    /// work: for an unknown name a dummy hash is verified. After
    /// [`LOGIN_ATTEMPTS`] failures for one name within [`LOGIN_WINDOW`],
    /// attempts are refused without hashing until the window has passed; a
    /// successful login clears the count.
    ///
    /// # Errors
    /// `InvalidCredentials` for a wrong name or password; `Throttled`; store failures.
    #[instrument(skip_all, fields(user = %name))]
    pub async fn login(&self, name: &str, password: &str) -> Result<(User, Session), LoginError> {
        let now = self.clock.now();
        if let Some(retry_after) = self.failures.throttled(name, now) {
            return Err(LoginError::Throttled { retry_after });
        }
        match self.check_password(name, password).await {
            Ok(user) => {
                self.failures.succeeded(name);
                let session = Session {
                    id: SessionId::generate(),
                    user: user.name.clone(),
                    created_at: now,
                    expires_at: now.plus(SESSION_TTL),
                };
                self.sessions.create_session(session.clone()).await?;
                info!("login");
                Ok((user, session))
            }
            Err(LoginError::InvalidCredentials) => {
                self.failures.failed(name, now);
                info!("failed login");
                Err(LoginError::InvalidCredentials)
            }
            Err(e) => Err(e),
        }
    }

    async fn check_password(&self, name: &str, password: &str) -> Result<User, LoginError> {
        let offered = Password::offered(password);
        let found = match Username::parse(name) {
            Ok(n) => self.users.password_hash(&n).await?.map(|hash| (n, hash)),
            Err(_) => None,
        };
        let Some((name, hash)) = found else {
            let dummy = self.dummy_hash().await?;
            let _ = self.hasher.verify(&offered, dummy).await?;
            return Err(LoginError::InvalidCredentials);
        };
        if !self.hasher.verify(&offered, &hash).await? {
            return Err(LoginError::InvalidCredentials);
        }
        self.users
            .user(&name)
            .await?
            .ok_or(LoginError::InvalidCredentials)
    }

    async fn dummy_hash(&self) -> Result<&PasswordHash, LoginError> {
        self.dummy_hash
            .get_or_try_init(|| async {
                self.hasher
                    .hash(&Password::offered("dummy password for timing"))
                    .await
            })
            .await
            .map_err(LoginError::Store)
    }

    /// Who holds this session: the user, or `Guest` for no, unknown or expired sessions.
    ///
    /// # Errors
    /// Store failures.
    pub async fn actor(&self, session: Option<&SessionId>) -> Result<Actor, AccountError> {
        let Some(id) = session else {
            return Ok(Actor::Guest);
        };
        let Some(s) = self.sessions.session(id, self.clock.now()).await? else {
            return Ok(Actor::Guest);
        };
        Ok(match self.users.user(&s.user).await? {
            Some(u) => Actor::User(u),
            None => Actor::Guest,
        })
    }

    /// Ends a session; the user's live connections on it close at once
    /// (the others re-check theirs and stay).
    ///
    /// # Errors
    /// Store failures.
    pub async fn logout(&self, session: &SessionId) -> Result<(), AccountError> {
        let owner = self.sessions.session(session, self.clock.now()).await?;
        self.sessions.delete_session(session).await?;
        if let Some(owner) = owner {
            self.notify(&owner.user, UserEvent::SessionsEnded).await;
        }
        Ok(())
    }

    fn require_admin(actor: &Actor) -> Result<(), AccountError> {
        match actor {
            Actor::Guest => Err(AccountError::Unauthenticated),
            _ if policy::may_administer(actor) => Ok(()),
            _ => Err(AccountError::Forbidden("only admins may manage users")),
        }
    }

    async fn check_defined(&self, perms: &BTreeSet<PermissionName>) -> Result<(), AccountError> {
        let defined = self.users.permissions().await?;
        match perms.iter().find(|p| !defined.contains(p)) {
            Some(p) => Err(AccountError::UnknownPermission(p.clone())),
            None => Ok(()),
        }
    }

    /// Creates a user (admins and the CLI only).
    ///
    /// # Errors
    /// `Unauthenticated`/`Forbidden`; `NameTaken`; `UnknownPermission`; store failures.
    #[instrument(skip_all, fields(user = %name))]
    pub async fn create_user(
        &self,
        actor: &Actor,
        name: Username,
        password: Password,
        permissions: BTreeSet<PermissionName>,
    ) -> Result<User, AccountError> {
        Self::require_admin(actor)?;
        self.check_defined(&permissions).await?;
        let password_hash = self.hasher.hash(&password).await?;
        let user = self
            .users
            .create_user(NewUser {
                name,
                password_hash,
                permissions,
                created_at: self.clock.now(),
            })
            .await?;
        info!("user created");
        self.audit
            .record(
                actor,
                AuditAction::UserCreated,
                user.name.as_str(),
                format!("permissions: {}", perm_list(&user.permissions)),
            )
            .await;
        Ok(user)
    }

    /// Every user, sorted by name (admins only).
    ///
    /// # Errors
    /// `Unauthenticated`/`Forbidden`; store failures.
    pub async fn users(&self, actor: &Actor) -> Result<Vec<User>, AccountError> {
        Self::require_admin(actor)?;
        Ok(self.users.users().await?)
    }

    /// One user (admins only).
    ///
    /// # Errors
    /// `Unauthenticated`/`Forbidden`; `NotFound`; store failures.
    pub async fn user(&self, actor: &Actor, name: &Username) -> Result<User, AccountError> {
        Self::require_admin(actor)?;
        self.users.user(name).await?.ok_or(AccountError::NotFound)
    }

    /// Deletes a user; their sessions end and their live connections close.
    /// An admin cannot delete their own account (that could lock everyone out).
    ///
    /// # Errors
    /// `Unauthenticated`/`Forbidden`; `NotFound`; store failures.
    #[instrument(skip_all, fields(user = %name))]
    pub async fn delete_user(&self, actor: &Actor, name: &Username) -> Result<(), AccountError> {
        Self::require_admin(actor)?;
        if actor.user().is_some_and(|u| &u.name == name) {
            return Err(AccountError::Forbidden(
                "you cannot delete your own account",
            ));
        }
        self.users.delete_user(name).await?;
        self.sessions.delete_user_sessions(name, None).await?;
        self.notify(name, UserEvent::SessionsEnded).await;
        info!("user deleted");
        self.audit
            .record(
                actor,
                AuditAction::UserDeleted,
                name.as_str(),
                "their sessions ended".to_owned(),
            )
            .await;
        Ok(())
    }

    /// Sets another user's password; all their sessions end.
    ///
    /// # Errors
    /// `Unauthenticated`/`Forbidden`; `NotFound`; store failures.
    #[instrument(skip_all, fields(user = %name))]
    pub async fn set_password(
        &self,
        actor: &Actor,
        name: &Username,
        password: Password,
    ) -> Result<(), AccountError> {
        Self::require_admin(actor)?;
        let hash = self.hasher.hash(&password).await?;
        self.users.set_password_hash(name, hash).await?;
        self.sessions.delete_user_sessions(name, None).await?;
        self.notify(name, UserEvent::SessionsEnded).await;
        self.audit
            .record(
                actor,
                AuditAction::PasswordReset,
                name.as_str(),
                "their sessions ended".to_owned(),
            )
            .await;
        Ok(())
    }

    /// Changes the caller's own password given the current one; the caller's
    /// other sessions end, `current` stays.
    ///
    /// # Errors
    /// `Unauthenticated`; `WrongPassword`; store failures.
    pub async fn change_own_password(
        &self,
        actor: &Actor,
        current: Option<&SessionId>,
        old: &str,
        new: Password,
    ) -> Result<(), AccountError> {
        let user = actor.user().ok_or(AccountError::Unauthenticated)?;
        let hash = self
            .users
            .password_hash(&user.name)
            .await?
            .ok_or(AccountError::NotFound)?;
        if !self.hasher.verify(&Password::offered(old), &hash).await? {
            return Err(AccountError::WrongPassword);
        }
        let hash = self.hasher.hash(&new).await?;
        self.users.set_password_hash(&user.name, hash).await?;
        let ended = self
            .sessions
            .delete_user_sessions(&user.name, current)
            .await?;
        if ended > 0 {
            // Someone who changes their password because it leaked wants the
            // other sockets gone now, not at their next session check.
            self.notify(&user.name, UserEvent::SessionsEnded).await;
        }
        self.audit
            .record(
                actor,
                AuditAction::PasswordChanged,
                user.name.as_str(),
                format!("{ended} other session(s) ended"),
            )
            .await;
        Ok(())
    }

    /// Replaces a user's permissions with `permissions` (every one must be
    /// defined). An admin cannot remove their own `admin`.
    ///
    /// # Errors
    /// `Unauthenticated`/`Forbidden`; `NotFound`; `UnknownPermission`; store failures.
    #[instrument(skip_all, fields(user = %name))]
    pub async fn set_permissions(
        &self,
        actor: &Actor,
        name: &Username,
        permissions: BTreeSet<PermissionName>,
    ) -> Result<User, AccountError> {
        Self::require_admin(actor)?;
        if actor.user().is_some_and(|u| &u.name == name)
            && !permissions.contains(&PermissionName::admin())
        {
            return Err(AccountError::Forbidden(
                "you cannot remove your own admin permission",
            ));
        }
        self.check_defined(&permissions).await?;
        let before = self.users.user(name).await?.ok_or(AccountError::NotFound)?;
        let user = self.users.set_permissions(name, &permissions).await?;
        self.notify(name, UserEvent::PermissionsChanged).await;
        self.audit
            .record(
                actor,
                AuditAction::PermissionsSet,
                name.as_str(),
                format!(
                    "{} → {}",
                    perm_list(&before.permissions),
                    perm_list(&user.permissions)
                ),
            )
            .await;
        Ok(user)
    }

    /// Adds one permission to a user.
    ///
    /// # Errors
    /// As [`Accounts::set_permissions`].
    pub async fn grant(
        &self,
        actor: &Actor,
        name: &Username,
        perm: PermissionName,
    ) -> Result<User, AccountError> {
        let mut perms = self.user(actor, name).await?.permissions;
        perms.insert(perm);
        self.set_permissions(actor, name, perms).await
    }

    /// Removes one permission from a user.
    ///
    /// # Errors
    /// As [`Accounts::set_permissions`].
    pub async fn revoke(
        &self,
        actor: &Actor,
        name: &Username,
        perm: &PermissionName,
    ) -> Result<User, AccountError> {
        let mut perms = self.user(actor, name).await?.permissions;
        perms.remove(perm);
        self.set_permissions(actor, name, perms).await
    }

    /// Defines a new permission name.
    ///
    /// # Errors
    /// `Unauthenticated`/`Forbidden`; `PermissionExists`; store failures.
    pub async fn define_permission(
        &self,
        actor: &Actor,
        name: &PermissionName,
    ) -> Result<(), AccountError> {
        Self::require_admin(actor)?;
        self.users
            .define_permission(name)
            .await
            .map_err(|e| match e {
                crate::ports::StoreError::Conflict => AccountError::PermissionExists,
                other => other.into(),
            })?;
        self.audit
            .record(
                actor,
                AuditAction::PermissionDefined,
                name.as_str(),
                String::new(),
            )
            .await;
        Ok(())
    }

    /// The newest `limit` lines of the audit trail (at most
    /// [`AUDIT_KEPT`]), newest first (admins only).
    ///
    /// # Errors
    /// `Unauthenticated`/`Forbidden`; store failures.
    pub async fn audit(
        &self,
        actor: &Actor,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, AccountError> {
        Self::require_admin(actor)?;
        Ok(self.audit.recent(limit.min(AUDIT_KEPT)).await?)
    }

    /// Every defined permission (admins only).
    ///
    /// # Errors
    /// `Unauthenticated`/`Forbidden`; store failures.
    pub async fn permissions(&self, actor: &Actor) -> Result<Vec<PermissionName>, AccountError> {
        Self::require_admin(actor)?;
        Ok(self.users.permissions().await?)
    }

    async fn notify(&self, user: &Username, event: UserEvent) {
        if let Err(e) = self.events.publish_user(user, event).await {
            // Sessions are already gone from the store; a socket that misses
            // this notice is refused at its next session check.
            tracing::warn!(error = %e, "could not notify the user's connections");
        }
    }
}

/// `admin, create_room`, or `none`.
fn perm_list(perms: &BTreeSet<PermissionName>) -> String {
    if perms.is_empty() {
        return "none".to_owned();
    }
    perms
        .iter()
        .map(PermissionName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}
