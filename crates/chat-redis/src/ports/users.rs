//! `UserRepository` on Redis: a hash per user plus the `users` index set.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chat_domain::{
    NewUser, PasswordHash, PermissionName, StoreError, StoreResult, User, UserRepository, Username,
};
use fred::interfaces::{HashesInterface, SetsInterface};

use super::{integer, millis, strings};
use crate::RedisStore;
use crate::codec::corrupt;
use crate::error::from_fred;
use crate::scripts;

/// Permission names contain no spaces, so a space-joined list is unambiguous.
fn join_permissions(permissions: &BTreeSet<PermissionName>) -> String {
    permissions
        .iter()
        .map(PermissionName::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

fn parse_permissions(raw: &str) -> StoreResult<BTreeSet<PermissionName>> {
    raw.split_whitespace()
        .map(|p| PermissionName::parse(p).map_err(corrupt))
        .collect()
}

fn user_from(name: Username, at: &str, perms: &str) -> StoreResult<User> {
    Ok(User {
        name,
        permissions: parse_permissions(perms)?,
        created_at: millis(at)?,
    })
}

#[async_trait]
impl UserRepository for RedisStore {
    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        let created = self
            .run(
                &scripts::CREATE_USER,
                vec![self.keys.users(), self.keys.user(&user.name)],
                vec![
                    user.name.as_str().to_owned(),
                    user.created_at.as_millis().to_string(),
                    join_permissions(&user.permissions),
                    user.password_hash.as_phc().to_owned(),
                ],
            )
            .await?;
        if integer(&created)? == 0 {
            return Err(StoreError::Conflict);
        }
        Ok(User {
            name: user.name,
            permissions: user.permissions,
            created_at: user.created_at,
        })
    }

    async fn user(&self, name: &Username) -> StoreResult<Option<User>> {
        let (at, perms): (Option<String>, Option<String>) = self
            .client
            .hmget(self.keys.user(name), vec!["at", "perms"])
            .await
            .map_err(from_fred)?;
        match at {
            Some(at) => user_from(name.clone(), &at, perms.as_deref().unwrap_or("")).map(Some),
            None => Ok(None),
        }
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        let flat = strings(
            self.run(
                &scripts::ALL_USERS,
                vec![self.keys.users()],
                vec![self.keys.prefix().to_owned()],
            )
            .await?,
        )?;
        let mut users = flat
            .chunks_exact(3)
            .map(|row| {
                let name = Username::parse(&row[0]).map_err(corrupt)?;
                user_from(name, &row[1], &row[2])
            })
            .collect::<StoreResult<Vec<_>>>()?;
        users.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(users)
    }

    async fn count_users(&self) -> StoreResult<u64> {
        self.client
            .scard(self.keys.users())
            .await
            .map_err(from_fred)
    }

    async fn password_hash(&self, name: &Username) -> StoreResult<Option<PasswordHash>> {
        let phc: Option<String> = self
            .client
            .hget(self.keys.user(name), "pw")
            .await
            .map_err(from_fred)?;
        Ok(phc.map(PasswordHash::from_phc))
    }

    async fn set_password_hash(&self, name: &Username, hash: PasswordHash) -> StoreResult<()> {
        let at = self
            .run(
                &scripts::SET_USER_FIELD,
                vec![self.keys.user(name)],
                vec!["pw".to_owned(), hash.as_phc().to_owned()],
            )
            .await?;
        if at.is_null() {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn set_permissions(
        &self,
        name: &Username,
        permissions: &BTreeSet<PermissionName>,
    ) -> StoreResult<User> {
        let at = self
            .run(
                &scripts::SET_USER_FIELD,
                vec![self.keys.user(name)],
                vec!["perms".to_owned(), join_permissions(permissions)],
            )
            .await?;
        let at = at.as_string().ok_or(StoreError::NotFound)?;
        Ok(User {
            name: name.clone(),
            permissions: permissions.clone(),
            created_at: millis(&at)?,
        })
    }

    async fn delete_user(&self, name: &Username) -> StoreResult<()> {
        let deleted = self
            .run(
                &scripts::DELETE_USER,
                vec![self.keys.users()],
                vec![self.keys.prefix().to_owned(), name.as_str().to_owned()],
            )
            .await?;
        if integer(&deleted)? == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn define_permission(&self, name: &PermissionName) -> StoreResult<()> {
        if name.is_builtin() {
            return Err(StoreError::Conflict);
        }
        let added: i64 = self
            .client
            .sadd(self.keys.perms(), name.as_str())
            .await
            .map_err(from_fred)?;
        if added == 0 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    async fn permissions(&self) -> StoreResult<Vec<PermissionName>> {
        let defined: Vec<String> = self
            .client
            .smembers(self.keys.perms())
            .await
            .map_err(from_fred)?;
        let mut all: BTreeSet<PermissionName> = PermissionName::builtins().into();
        for raw in defined {
            all.insert(PermissionName::parse(&raw).map_err(corrupt)?);
        }
        Ok(all.into_iter().collect())
    }
}
