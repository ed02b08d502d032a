//! The errors services return, one enum per area, each mapping to a stable
//! [`ErrorCode`] so every door (HTML, JSON, WebSocket, CLI) answers alike.

use std::time::Duration;

use thiserror::Error;

use crate::clock::Timestamp;
use crate::names::{InvalidInput, PermissionName};
use crate::ports::StoreError;

/// The stable, user-facing classification of a failure (the wire `code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Bad input (422).
    Invalid,
    /// Needs a logged-in user (401).
    Unauthenticated,
    /// Not allowed (403).
    Forbidden,
    /// No such thing, or not visible to the caller (404).
    NotFound,
    /// Already exists (409).
    Conflict,
    /// Too big (413).
    TooLarge,
    /// Slow down (429).
    RateLimited,
    /// A store is unreachable; retry later (503).
    Unavailable,
    /// A bug or an unexpected failure (500); details are only logged.
    Internal,
}

impl ErrorCode {
    /// The wire name, e.g. `"not_found"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::TooLarge => "too_large",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }
}

/// Anything with an [`ErrorCode`].
pub trait Coded {
    /// The classification of this failure.
    fn code(&self) -> ErrorCode;
    /// How long the caller should wait before retrying, where that is known.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

impl Coded for StoreError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Conflict => ErrorCode::Conflict,
            Self::NotFound => ErrorCode::NotFound,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Unexpected(_) => ErrorCode::Internal,
        }
    }
}

impl Coded for InvalidInput {
    fn code(&self) -> ErrorCode {
        ErrorCode::Invalid
    }
}

/// Why a login failed.
#[derive(Debug, Error)]
pub enum LoginError {
    /// Wrong name or wrong password: deliberately the same answer for both.
    #[error("wrong username or password")]
    InvalidCredentials,
    /// Too many recent failures for this account.
    #[error("too many failed logins; try again in {} s", retry_after.as_secs().max(1))]
    Throttled {
        /// When the next attempt will be considered.
        retry_after: Duration,
    },
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for LoginError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidCredentials => ErrorCode::Unauthenticated,
            Self::Throttled { .. } => ErrorCode::RateLimited,
            Self::Store(e) => e.code(),
        }
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

/// Why an account operation failed.
#[derive(Debug, Error)]
pub enum AccountError {
    /// The caller is a guest.
    #[error("log in first")]
    Unauthenticated,
    /// The caller lacks the permission.
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such user.
    #[error("no such user")]
    NotFound,
    /// The username is taken.
    #[error("that username is taken")]
    NameTaken,
    /// The permission is already defined.
    #[error("that permission already exists")]
    PermissionExists,
    /// A named permission is not defined.
    #[error("no such permission: {0}")]
    UnknownPermission(PermissionName),
    /// The old password given for a change was wrong.
    #[error("the current password is wrong")]
    WrongPassword,
    /// Bad input.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// A store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            StoreError::Conflict => Self::NameTaken,
            other => Self::Store(other),
        }
    }
}

impl Coded for AccountError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Unauthenticated => ErrorCode::Unauthenticated,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound => ErrorCode::NotFound,
            Self::NameTaken | Self::PermissionExists => ErrorCode::Conflict,
            Self::UnknownPermission(_) | Self::Invalid(_) => ErrorCode::Invalid,
            Self::WrongPassword => ErrorCode::Forbidden,
            Self::Store(e) => e.code(),
        }
    }
}

/// Why a room operation (list, create, open, join, read, moderate) failed.
#[derive(Debug, Error)]
pub enum RoomError {
    /// The caller is a guest and this needs a user.
    #[error("log in first")]
    Unauthenticated,
    /// The caller may see the room but not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such room, or one the caller may not see (private rooms answer
    /// "not found" to outsiders so that they cannot be discovered).
    #[error("no such room")]
    NotFound,
    /// The target user does not exist.
    #[error("no such user")]
    NoSuchUser,
    /// The room name is taken.
    #[error("a room with that name exists")]
    NameTaken,
    /// Bad input.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// A store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for RoomError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            StoreError::Conflict => Self::NameTaken,
            other => Self::Store(other),
        }
    }
}

impl Coded for RoomError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Unauthenticated => ErrorCode::Unauthenticated,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound | Self::NoSuchUser => ErrorCode::NotFound,
            Self::NameTaken => ErrorCode::Conflict,
            Self::Invalid(_) => ErrorCode::Invalid,
            Self::Store(e) => e.code(),
        }
    }
}

/// Why a send failed. Nothing was stored or broadcast.
#[derive(Debug, Error)]
pub enum SendError {
    /// The caller may not send here.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The caller is muted in this room.
    #[error("{}", muted_message(*until))]
    Muted {
        /// When the mute ends; `None`: until lifted.
        until: Option<Timestamp>,
        /// Time left at the moment of the refusal.
        left: Option<Duration>,
    },
    /// No such room, or not visible to the caller.
    #[error("no such room")]
    NotFound,
    /// Direct message to a user that does not exist.
    #[error("no such user")]
    NoSuchUser,
    /// Sending too fast.
    #[error("slow down: try again in {:.1} s", retry_after.as_secs_f64())]
    RateLimited {
        /// When the next send will be accepted.
        retry_after: Duration,
    },
    /// Bad input.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// A store failed; nothing was acked.
    #[error(transparent)]
    Store(StoreError),
}

fn muted_message(until: Option<Timestamp>) -> String {
    match until {
        Some(t) => format!("you are muted in this room until {t}"),
        None => "you are muted in this room until a moderator lifts it".to_owned(),
    }
}

impl From<StoreError> for SendError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            other => Self::Store(other),
        }
    }
}

impl From<RoomError> for SendError {
    fn from(e: RoomError) -> Self {
        match e {
            RoomError::Unauthenticated => Self::Forbidden("log in to send messages"),
            RoomError::Forbidden(why) => Self::Forbidden(why),
            RoomError::NotFound | RoomError::NameTaken => Self::NotFound,
            RoomError::NoSuchUser => Self::NoSuchUser,
            RoomError::Invalid(e) => Self::Invalid(e),
            RoomError::Store(e) => Self::Store(e),
        }
    }
}

impl Coded for SendError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Forbidden(_) | Self::Muted { .. } => ErrorCode::Forbidden,
            Self::NotFound | Self::NoSuchUser => ErrorCode::NotFound,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Invalid(_) => ErrorCode::Invalid,
            Self::Store(e) => e.code(),
        }
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => Some(*retry_after),
            Self::Muted { left, .. } => *left,
            _ => None,
        }
    }
}
