//! `UserRepository` on SQLite: users, their permissions and the catalogue.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chat_domain::{
    NewUser, PasswordHash, PermissionName, StoreError, StoreResult, Timestamp, User,
    UserRepository, Username,
};
use sqlx::SqliteConnection;

use crate::SqliteStore;
use crate::error::{parse, store_error};
use crate::rows::count_from_db;
use crate::tx::WriteTx;

#[async_trait]
impl UserRepository for SqliteStore {
    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        let mut tx = WriteTx::begin(&self.pool).await.map_err(store_error)?;
        let result = async {
            sqlx::query("INSERT INTO users (name, password_hash, created_at) VALUES (?1, ?2, ?3)")
                .bind(user.name.as_str())
                .bind(user.password_hash.as_phc())
                .bind(user.created_at.as_millis())
                .execute(&mut *tx.conn())
                .await
                .map_err(store_error)?;
            grant(tx.conn(), &user.name, &user.permissions).await?;
            Ok(User {
                name: user.name,
                permissions: user.permissions,
                created_at: user.created_at,
            })
        }
        .await;
        tx.finish(result).await
    }

    async fn user(&self, name: &Username) -> StoreResult<Option<User>> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        load_user(&mut conn, name).await
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        let rows: Vec<(String, i64, Option<String>)> = sqlx::query_as(
            "SELECT u.name, u.created_at, p.permission \
             FROM users u LEFT JOIN user_permissions p ON p.user = u.name \
             ORDER BY u.name, p.permission",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        let mut users: Vec<User> = Vec::new();
        for (name, created_at, permission) in rows {
            let same = users.last().is_some_and(|u| u.name.as_str() == name);
            if !same {
                users.push(User {
                    name: parse(name, Username::parse, "username")?,
                    permissions: BTreeSet::new(),
                    created_at: Timestamp::from_millis(created_at),
                });
            }
            if let (Some(permission), Some(user)) = (permission, users.last_mut()) {
                user.permissions
                    .insert(parse(permission, PermissionName::parse, "permission")?);
            }
        }
        Ok(users)
    }

    async fn count_users(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        count_from_db(n)
    }

    async fn password_hash(&self, name: &Username) -> StoreResult<Option<PasswordHash>> {
        let hash: Option<String> =
            sqlx::query_scalar("SELECT password_hash FROM users WHERE name = ?1")
                .bind(name.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(store_error)?;
        Ok(hash.map(PasswordHash::from_phc))
    }

    async fn set_password_hash(&self, name: &Username, hash: PasswordHash) -> StoreResult<()> {
        let done = sqlx::query("UPDATE users SET password_hash = ?2 WHERE name = ?1")
            .bind(name.as_str())
            .bind(hash.as_phc())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn set_permissions(
        &self,
        name: &Username,
        permissions: &BTreeSet<PermissionName>,
    ) -> StoreResult<User> {
        let mut tx = WriteTx::begin(&self.pool).await.map_err(store_error)?;
        let result = async {
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM users WHERE name = ?1")
                .bind(name.as_str())
                .fetch_optional(&mut *tx.conn())
                .await
                .map_err(store_error)?;
            if exists.is_none() {
                return Err(StoreError::NotFound);
            }
            sqlx::query("DELETE FROM user_permissions WHERE user = ?1")
                .bind(name.as_str())
                .execute(&mut *tx.conn())
                .await
                .map_err(store_error)?;
            grant(tx.conn(), name, permissions).await?;
            load_user(tx.conn(), name)
                .await?
                .ok_or(StoreError::NotFound)
        }
        .await;
        tx.finish(result).await
    }

    async fn delete_user(&self, name: &Username) -> StoreResult<()> {
        // Sessions, memberships, bans, mutes and grants go with the user by
        // ON DELETE CASCADE; messages do not reference users and stay.
        let done = sqlx::query("DELETE FROM users WHERE name = ?1")
            .bind(name.as_str())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn define_permission(&self, name: &PermissionName) -> StoreResult<()> {
        sqlx::query("INSERT INTO permissions (name) VALUES (?1)")
            .bind(name.as_str())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn permissions(&self) -> StoreResult<Vec<PermissionName>> {
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM permissions ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        names
            .into_iter()
            .map(|n| parse(n, PermissionName::parse, "permission"))
            .collect()
    }
}

/// Grants `permissions` to `user` (who must exist) inside an open transaction.
async fn grant(
    conn: &mut SqliteConnection,
    user: &Username,
    permissions: &BTreeSet<PermissionName>,
) -> StoreResult<()> {
    for permission in permissions {
        sqlx::query("INSERT INTO user_permissions (user, permission) VALUES (?1, ?2)")
            .bind(user.as_str())
            .bind(permission.as_str())
            .execute(&mut *conn)
            .await
            .map_err(store_error)?;
    }
    Ok(())
}

/// A user with their permissions.
async fn load_user(conn: &mut SqliteConnection, name: &Username) -> StoreResult<Option<User>> {
    let created_at: Option<i64> =
        sqlx::query_scalar("SELECT created_at FROM users WHERE name = ?1")
            .bind(name.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(store_error)?;
    let Some(created_at) = created_at else {
        return Ok(None);
    };
    let permissions: Vec<String> = sqlx::query_scalar(
        "SELECT permission FROM user_permissions WHERE user = ?1 ORDER BY permission",
    )
    .bind(name.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(store_error)?;
    Ok(Some(User {
        name: name.clone(),
        permissions: permissions
            .into_iter()
            .map(|p| parse(p, PermissionName::parse, "permission"))
            .collect::<StoreResult<_>>()?,
        created_at: Timestamp::from_millis(created_at),
    }))
}
