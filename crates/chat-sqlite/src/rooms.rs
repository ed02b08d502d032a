//! `RoomRepository` on SQLite: rooms, members, bans and mutes.

use std::time::Duration;

use async_trait::async_trait;
use chat_domain::model::Page;
use chat_domain::{
    Description, Mute, NewRoom, Room, RoomAccess, RoomName, RoomRepository, Seq, Standing,
    StoreError, StoreResult, Timestamp, Username, Visibility,
};
use rusqlite::OptionalExtension as _;
use sqlx::SqliteExecutor;

use crate::SqliteStore;
use crate::error::{parse, store_error, store_error_or_not_found};
use crate::rows::count_from_db;
use crate::tx::WriteTx;

/// A `rooms` row without its counter.
type RoomRow = (String, String, String, String, i64);

/// A query selecting [`RoomRow`]s from `rooms r`, followed by `$rest`.
macro_rules! select_rooms {
    ($rest:literal) => {
        concat!(
            "SELECT r.name, r.description, r.visibility, r.created_by, r.created_at ",
            $rest
        )
    };
}

fn room(row: RoomRow) -> StoreResult<Room> {
    let (name, description, visibility, created_by, created_at) = row;
    Ok(Room {
        name: parse(name, RoomName::parse, "room name")?,
        description: parse(description, Description::parse, "description")?,
        visibility: Visibility::parse(&visibility).ok_or_else(|| {
            StoreError::unexpected(format!("stored visibility {visibility:?} is invalid"))
        })?,
        created_by: parse(created_by, Username::parse, "username")?,
        created_at: Timestamp::from_millis(created_at),
    })
}

fn rooms(rows: Vec<RoomRow>) -> StoreResult<Vec<Room>> {
    rows.into_iter().map(room).collect()
}

/// Whether the room exists; used to tell "no such room" from "no change".
async fn room_exists<'e>(db: impl SqliteExecutor<'e>, name: &RoomName) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM rooms WHERE name = ?1")
        .bind(name.as_str())
        .fetch_optional(db)
        .await
        .map_err(store_error)?;
    Ok(found.is_some())
}

/// `Ok(())` for an existing room, `NotFound` otherwise.
async fn require_room<'e>(db: impl SqliteExecutor<'e>, name: &RoomName) -> StoreResult<()> {
    if room_exists(db, name).await? {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

/// The `access` statement: the room, its slow mode, and the user's
/// standing and active mute. A guest binds NULL as `?2`, which matches no
/// row; `?3` is now.
const ACCESS: &str = select_rooms!(
    ", r.slow_mode_secs, \
     EXISTS (SELECT 1 FROM room_members WHERE room = r.name AND user = ?2), \
     EXISTS (SELECT 1 FROM room_bans WHERE room = r.name AND user = ?2), \
     m.user IS NOT NULL, m.until \
     FROM rooms r \
     LEFT JOIN room_mutes m ON m.room = r.name AND m.user = ?2 \
         AND (m.until IS NULL OR m.until > ?3) \
     WHERE r.name = ?1"
);

/// A row of [`ACCESS`]: the room, slow mode, member, barred, muted,
/// mute end.
type AccessRow = (
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    bool,
    bool,
    bool,
    Option<i64>,
);

fn room_access(row: AccessRow) -> StoreResult<RoomAccess> {
    let (name, description, visibility, created_by, created_at, slow, member, banned, muted, until) =
        row;
    Ok(RoomAccess {
        room: room((name, description, visibility, created_by, created_at))?,
        standing: Standing { member, banned },
        mute: muted.then(|| Mute {
            until: until.map(Timestamp::from_millis),
        }),
        slow_mode: slow_mode_from_db(slow)?,
    })
}

/// How many room names one keyed read binds: well under SQLite's limit of
/// 32,766 parameters, and small enough that one statement stays quick.
const NAMES_PER_READ: usize = 500;

impl SqliteStore {
    /// The row of the `access` statement, if the room exists: on a hot
    /// reader (no thread hand-off: this runs on every send), or on the pool
    /// in memory.
    async fn access_row(
        &self,
        room: &RoomName,
        user: Option<&Username>,
        now: Timestamp,
    ) -> StoreResult<Option<AccessRow>> {
        let user = user.map(Username::as_str);
        match &self.readers {
            Some(readers) => readers.checks.read(|c| {
                c.prepare_cached(ACCESS)?
                    .query_row(
                        rusqlite::params![room.as_str(), user, now.as_millis()],
                        |r| AccessRow::try_from(r),
                    )
                    .optional()
            }),
            None => sqlx::query_as(ACCESS)
                .bind(room.as_str())
                .bind(user)
                .bind(now.as_millis())
                .fetch_optional(&self.pool)
                .await
                .map_err(store_error),
        }
    }

    /// One integer per room of `rooms`, in their order, from `select`, a
    /// statement that answers `(room name, value)` rows for the names bound
    /// into its trailing `IN (`, closed by `then`; 0 where it has no row
    /// (no members, no messages, no room). One statement per
    /// [`NAMES_PER_READ`] rooms, not one per room: listings call this.
    pub(crate) async fn keyed_integers(
        &self,
        select: &str,
        then: &str,
        rooms: &[RoomName],
    ) -> StoreResult<Vec<i64>> {
        let mut found = std::collections::HashMap::with_capacity(rooms.len());
        for chunk in rooms.chunks(NAMES_PER_READ) {
            let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(select);
            let mut names = query.separated(", ");
            for room in chunk {
                names.push_bind(room.as_str());
            }
            names.push_unseparated(then);
            let rows: Vec<(String, i64)> = query
                .build_query_as()
                .fetch_all(&self.pool)
                .await
                .map_err(store_error)?;
            found.extend(rows);
        }
        Ok(rooms
            .iter()
            .map(|room| found.get(room.as_str()).copied().unwrap_or(0))
            .collect())
    }
}

#[async_trait]
impl RoomRepository for SqliteStore {
    async fn create_room(&self, new: NewRoom) -> StoreResult<Room> {
        let mut tx = WriteTx::begin(&self.pool).await.map_err(store_error)?;
        let result = async {
            let r = &new.room;
            sqlx::query(
                "INSERT INTO rooms (name, description, visibility, created_by, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .bind(r.name.as_str())
            .bind(r.description.as_str())
            .bind(r.visibility.as_str())
            .bind(r.created_by.as_str())
            .bind(r.created_at.as_millis())
            .execute(&mut *tx.conn())
            .await
            .map_err(store_error)?;
            for member in &new.members {
                sqlx::query(
                    "INSERT INTO room_members (room, user) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                )
                .bind(r.name.as_str())
                .bind(member.as_str())
                .execute(&mut *tx.conn())
                .await
                .map_err(store_error)?;
            }
            Ok(new.room)
        }
        .await;
        tx.finish(result).await
    }

    async fn room(&self, name: &RoomName) -> StoreResult<Option<Room>> {
        let row: Option<RoomRow> = sqlx::query_as(select_rooms!("FROM rooms r WHERE r.name = ?1"))
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.map(room).transpose()
    }

    async fn rooms(&self) -> StoreResult<Vec<Room>> {
        // Direct rooms are the ones named `@a+b`; no ordinary name starts with '@'.
        let rows: Vec<RoomRow> = sqlx::query_as(select_rooms!(
            "FROM rooms r WHERE substr(r.name, 1, 1) <> '@' ORDER BY r.name"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rooms(rows)
    }

    async fn rooms_of(&self, user: &Username) -> StoreResult<Vec<Room>> {
        let rows: Vec<RoomRow> = sqlx::query_as(select_rooms!(
            "FROM room_members m JOIN rooms r ON r.name = m.room \
             WHERE m.user = ?1 ORDER BY r.name"
        ))
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rooms(rows)
    }

    async fn add_member(&self, room: &RoomName, user: &Username) -> StoreResult<bool> {
        // A missing room (or user) fails the foreign key: NotFound.
        let done = sqlx::query(
            "INSERT INTO room_members (room, user) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )
        .bind(room.as_str())
        .bind(user.as_str())
        .execute(&self.pool)
        .await
        .map_err(store_error_or_not_found)?;
        Ok(done.rows_affected() == 1)
    }

    async fn remove_member(&self, room: &RoomName, user: &Username) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM room_members WHERE room = ?1 AND user = ?2")
            .bind(room.as_str())
            .bind(user.as_str())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        if done.rows_affected() == 0 {
            require_room(&self.pool, room).await?;
            return Ok(false);
        }
        Ok(true)
    }

    async fn members(&self, room: &RoomName) -> StoreResult<Vec<Username>> {
        // The LEFT JOIN yields one row with a NULL user for an empty room
        // and no row at all for a missing one, in a single read.
        let rows: Vec<Option<String>> = sqlx::query_scalar(
            "SELECT m.user FROM rooms r LEFT JOIN room_members m ON m.room = r.name \
             WHERE r.name = ?1 ORDER BY m.user",
        )
        .bind(room.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        if rows.is_empty() {
            return Err(StoreError::NotFound);
        }
        rows.into_iter()
            .flatten()
            .map(|u| parse(u, Username::parse, "username"))
            .collect()
    }

    async fn member_count(&self, room: &RoomName) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM room_members WHERE room = ?1")
            .bind(room.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        count_from_db(n)
    }

    async fn member_counts(&self, rooms: &[RoomName]) -> StoreResult<Vec<u64>> {
        self.keyed_integers(
            "SELECT room, COUNT(*) FROM room_members WHERE room IN (",
            ") GROUP BY room",
            rooms,
        )
        .await?
        .into_iter()
        .map(count_from_db)
        .collect()
    }

    async fn is_member(&self, room: &RoomName, user: &Username) -> StoreResult<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM room_members WHERE room = ?1 AND user = ?2")
                .bind(room.as_str())
                .bind(user.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(store_error)?;
        Ok(found.is_some())
    }

    async fn set_banned(&self, room: &RoomName, user: &Username, banned: bool) -> StoreResult<()> {
        if banned {
            sqlx::query(
                "INSERT INTO room_bans (room, user) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )
            .bind(room.as_str())
            .bind(user.as_str())
            .execute(&self.pool)
            .await
            // A missing room (or user) fails the foreign key; an
            // existing ban implies the room exists.
            .map_err(store_error_or_not_found)?;
            return Ok(());
        }
        let done = sqlx::query("DELETE FROM room_bans WHERE room = ?1 AND user = ?2")
            .bind(room.as_str())
            .bind(user.as_str())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        if done.rows_affected() == 0 {
            require_room(&self.pool, room).await?;
        }
        Ok(())
    }

    async fn is_banned(&self, room: &RoomName, user: &Username) -> StoreResult<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM room_bans WHERE room = ?1 AND user = ?2")
                .bind(room.as_str())
                .bind(user.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(store_error)?;
        Ok(found.is_some())
    }

    async fn set_mute(
        &self,
        room: &RoomName,
        user: &Username,
        mute: Option<Mute>,
    ) -> StoreResult<()> {
        let Some(mute) = mute else {
            let done = sqlx::query("DELETE FROM room_mutes WHERE room = ?1 AND user = ?2")
                .bind(room.as_str())
                .bind(user.as_str())
                .execute(&self.pool)
                .await
                .map_err(store_error)?;
            if done.rows_affected() == 0 {
                require_room(&self.pool, room).await?;
            }
            return Ok(());
        };
        sqlx::query(
            "INSERT INTO room_mutes (room, user, until) VALUES (?1, ?2, ?3) \
             ON CONFLICT (room, user) DO UPDATE SET until = excluded.until",
        )
        .bind(room.as_str())
        .bind(user.as_str())
        .bind(mute.until.map(Timestamp::as_millis))
        .execute(&self.pool)
        .await
        .map_err(store_error_or_not_found)?;
        Ok(())
    }

    async fn mute(
        &self,
        room: &RoomName,
        user: &Username,
        now: Timestamp,
    ) -> StoreResult<Option<Mute>> {
        let row: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT until FROM room_mutes \
             WHERE room = ?1 AND user = ?2 AND (until IS NULL OR until > ?3)",
        )
        .bind(room.as_str())
        .bind(user.as_str())
        .bind(now.as_millis())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(row.map(|until| Mute {
            until: until.map(Timestamp::from_millis),
        }))
    }

    async fn mutes(&self, room: &RoomName, now: Timestamp) -> StoreResult<Vec<(Username, Mute)>> {
        let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
            "SELECT user, until FROM room_mutes \
             WHERE room = ?1 AND (until IS NULL OR until > ?2) ORDER BY user",
        )
        .bind(room.as_str())
        .bind(now.as_millis())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.into_iter()
            .map(|(user, until)| {
                Ok((
                    parse(user, Username::parse, "username")?,
                    Mute {
                        until: until.map(Timestamp::from_millis),
                    },
                ))
            })
            .collect()
    }

    async fn set_slow_mode(&self, room: &RoomName, interval: Option<Duration>) -> StoreResult<()> {
        let secs = interval
            .map(|d| i64::try_from(d.as_secs()))
            .transpose()
            .map_err(StoreError::unexpected)?;
        let done = sqlx::query("UPDATE rooms SET slow_mode_secs = ?2 WHERE name = ?1")
            .bind(room.as_str())
            .bind(secs)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn access(
        &self,
        room: &RoomName,
        user: Option<&Username>,
        now: Timestamp,
    ) -> StoreResult<Option<RoomAccess>> {
        self.access_row(room, user, now)
            .await?
            .map(room_access)
            .transpose()
    }

    async fn access_with_page(
        &self,
        room: &RoomName,
        user: Option<&Username>,
        now: Timestamp,
        before: Option<Seq>,
        limit: usize,
    ) -> StoreResult<Option<(RoomAccess, Option<Page>)>> {
        // A missing room has no row, so no page is read.
        let Some(access) = self.access(room, user, now).await? else {
            return Ok(None);
        };
        let page = self.page_before(room, before, limit).await?;
        Ok(Some((access, Some(page))))
    }

    async fn slow_mode(&self, room: &RoomName) -> StoreResult<Option<Duration>> {
        let secs: Option<Option<i64>> =
            sqlx::query_scalar("SELECT slow_mode_secs FROM rooms WHERE name = ?1")
                .bind(room.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(store_error)?;
        slow_mode_from_db(secs.flatten())
    }
}

/// A stored slow-mode interval (whole seconds, NULL when off).
fn slow_mode_from_db(secs: Option<i64>) -> StoreResult<Option<Duration>> {
    secs.map(|s| {
        u64::try_from(s)
            .map(Duration::from_secs)
            .map_err(|_| StoreError::unexpected(format!("stored slow mode {s} is invalid")))
    })
    .transpose()
}
