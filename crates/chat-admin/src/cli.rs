//! The command-line administration use cases (`hihichat user add`, `grant`,
//! `bot train`, …) as functions over the domain services.
//!
//! They run as [`Actor::System`], the trusted operator, through the same
//! [`Accounts`] methods the web pages use, so the CLI gets the same checks on
//! names, passwords and permissions. Each returns the one line to print.

use std::collections::BTreeSet;

use chat_domain::{
    AccountError, Accounts, Actor, BotCorpus, InvalidInput, Password, PermissionName, StoreError,
    User, Username, parse_corpus,
};
use thiserror::Error;

/// Why a command failed; its `Display` is the one line to print.
#[derive(Debug, Error)]
pub enum CliError {
    /// The account operation was refused.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// A name, password or permission was malformed.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The corpus file was malformed.
    #[error("{file}: {error}")]
    Corpus {
        /// Which file.
        file: String,
        /// What is wrong.
        error: InvalidInput,
    },
}

fn username(raw: &str) -> Result<Username, CliError> {
    Ok(Username::parse(raw)?)
}

fn permissions(raw: &[String]) -> Result<BTreeSet<PermissionName>, CliError> {
    raw.iter()
        .map(|p| PermissionName::parse(p.trim()).map_err(CliError::from))
        .collect()
}

/// The permissions of `user` as `a, b` or `none`.
pub fn describe_permissions(user: &User) -> String {
    if user.permissions.is_empty() {
        "none".to_owned()
    } else {
        user.permissions
            .iter()
            .map(PermissionName::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `hihichat user add NAME [--grant PERM]...`: creates a user.
///
/// # Errors
/// Bad name or password, a taken name, an undefined permission, store failures.
pub async fn add_user(
    accounts: &Accounts,
    name: &str,
    password: &str,
    grants: &[String],
) -> Result<String, CliError> {
    let name = username(name)?;
    let password = Password::parse(password)?;
    let user = accounts
        .create_user(&Actor::System, name, password, permissions(grants)?)
        .await?;
    Ok(format!(
        "created user {} (permissions: {})",
        user.name,
        describe_permissions(&user)
    ))
}

/// `hihichat user passwd NAME`: sets a user's password; their sessions end.
///
/// # Errors
/// Bad name or password, no such user, store failures.
pub async fn set_password(
    accounts: &Accounts,
    name: &str,
    password: &str,
) -> Result<String, CliError> {
    let name = username(name)?;
    let password = Password::parse(password)?;
    // `set_password` alone would not say "no such user" on every store.
    accounts.user(&Actor::System, &name).await?;
    accounts
        .set_password(&Actor::System, &name, password)
        .await?;
    Ok(format!(
        "password of {name} changed; their sessions were ended"
    ))
}

/// `hihichat user del NAME`: deletes a user and ends their sessions.
///
/// # Errors
/// Bad name, no such user, store failures.
pub async fn delete_user(accounts: &Accounts, name: &str) -> Result<String, CliError> {
    let name = username(name)?;
    accounts.user(&Actor::System, &name).await?;
    accounts.delete_user(&Actor::System, &name).await?;
    Ok(format!("deleted user {name}"))
}

/// `hihichat user list`: one line per user: name, permissions, creation time.
///
/// # Errors
/// Store failures.
pub async fn list_users(accounts: &Accounts) -> Result<String, CliError> {
    let users = accounts.users(&Actor::System).await?;
    if users.is_empty() {
        return Ok("no users".to_owned());
    }
    let width = users
        .iter()
        .map(|u| u.name.as_str().chars().count())
        .max()
        .unwrap_or(0);
    Ok(users
        .iter()
        .map(|u| {
            let pad = width - u.name.as_str().chars().count();
            format!(
                "{}{}  {}  {}",
                u.name,
                " ".repeat(pad),
                u.created_at.to_rfc3339(),
                describe_permissions(u)
            )
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

/// `hihichat grant NAME PERM`: adds a permission.
///
/// # Errors
/// Bad names, no such user, an undefined permission, store failures.
pub async fn grant(accounts: &Accounts, name: &str, perm: &str) -> Result<String, CliError> {
    let name = username(name)?;
    let perm = PermissionName::parse(perm.trim())?;
    let user = accounts.grant(&Actor::System, &name, perm).await?;
    Ok(format!(
        "{} now has: {}",
        user.name,
        describe_permissions(&user)
    ))
}

/// `hihichat revoke NAME PERM`: removes a permission.
///
/// # Errors
/// Bad names, no such user, store failures.
pub async fn revoke(accounts: &Accounts, name: &str, perm: &str) -> Result<String, CliError> {
    let name = username(name)?;
    let perm = PermissionName::parse(perm.trim())?;
    let user = accounts.revoke(&Actor::System, &name, &perm).await?;
    Ok(format!(
        "{} now has: {}",
        user.name,
        describe_permissions(&user)
    ))
}

/// `hihichat permission add NAME`: defines a permission.
///
/// # Errors
/// Bad name, already defined, store failures.
pub async fn define_permission(accounts: &Accounts, name: &str) -> Result<String, CliError> {
    let perm = PermissionName::parse(name.trim())?;
    accounts.define_permission(&Actor::System, &perm).await?;
    Ok(format!("defined permission {perm}"))
}

/// `hihichat permission list`: every defined permission, one per line.
///
/// # Errors
/// Store failures.
pub async fn list_permissions(accounts: &Accounts) -> Result<String, CliError> {
    let perms = accounts.permissions(&Actor::System).await?;
    Ok(perms
        .iter()
        .map(PermissionName::as_str)
        .collect::<Vec<_>>()
        .join("\n"))
}

/// `hihichat bot train FILE`: adds the pairs of a corpus file (already read
/// into `text`) to the bot's corpus. `file` names it in messages.
///
/// # Errors
/// A malformed corpus, store failures.
pub async fn train_bot(corpus: &dyn BotCorpus, file: &str, text: &str) -> Result<String, CliError> {
    let pairs = parse_corpus(text).map_err(|error| CliError::Corpus {
        file: file.to_owned(),
        error,
    })?;
    let added = corpus.add_pairs(&pairs).await?;
    let total = corpus.pairs().await?.len();
    Ok(format!(
        "read {} question/answer pairs from {file}: {added} new, {total} in the corpus",
        pairs.len()
    ))
}
