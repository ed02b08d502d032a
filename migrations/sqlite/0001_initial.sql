-- hihichat's first schema.
--
-- Names are TEXT compared with SQLite's default BINARY collation, which
-- orders UTF-8 byte-wise: the same order as Rust's `String`, so "sorted by
-- name" means the same thing here as in the domain. Times are INTEGER
-- milliseconds since the Unix epoch (UTC).
--
-- Small, hot-keyed tables are WITHOUT ROWID: their primary key is the only
-- way they are looked up, so a clustered key saves a second b-tree.
-- `messages` keeps its rowid because rows can be large (4,000 characters),
-- which WITHOUT ROWID tables handle poorly, and because retention deletes by
-- rowid.

CREATE TABLE users (
    name          TEXT    NOT NULL PRIMARY KEY,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
) WITHOUT ROWID;

-- The catalogue of permission names; built-ins are rows like any other so
-- that defining one of them again is a plain unique violation.
CREATE TABLE permissions (
    name    TEXT    NOT NULL PRIMARY KEY,
    builtin INTEGER NOT NULL DEFAULT 0 CHECK (builtin IN (0, 1))
) WITHOUT ROWID;

INSERT INTO permissions (name, builtin) VALUES
    ('admin', 1),
    ('create_room', 1),
    ('moderate', 1);

CREATE TABLE user_permissions (
    user       TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    permission TEXT NOT NULL REFERENCES permissions (name) ON DELETE CASCADE,
    PRIMARY KEY (user, permission)
) WITHOUT ROWID;

CREATE TABLE sessions (
    id         TEXT    NOT NULL PRIMARY KEY,
    user       TEXT    NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Revoking every session of a user, and the cascade when a user goes.
CREATE INDEX sessions_by_user ON sessions (user);
-- Expired sessions are swept when new ones are made.
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- `last_seq` is the room's message counter. It lives here rather than being
-- derived from MAX(messages.seq) so that it never goes down when retention
-- deletes the newest-but-old messages of a quiet room.
CREATE TABLE rooms (
    name        TEXT    NOT NULL PRIMARY KEY,
    description TEXT    NOT NULL,
    visibility  TEXT    NOT NULL CHECK (visibility IN ('public', 'private')),
    -- Not a foreign key: a room outlives the account that made it.
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    last_seq    INTEGER NOT NULL DEFAULT 0 CHECK (last_seq >= 0)
) WITHOUT ROWID;

CREATE TABLE room_members (
    room TEXT NOT NULL REFERENCES rooms (name) ON DELETE CASCADE,
    user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    PRIMARY KEY (room, user)
) WITHOUT ROWID;

-- "Which rooms is this user in", and the cascade when a user goes.
CREATE INDEX room_members_by_user ON room_members (user);

CREATE TABLE room_bans (
    room TEXT NOT NULL REFERENCES rooms (name) ON DELETE CASCADE,
    user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    PRIMARY KEY (room, user)
) WITHOUT ROWID;

CREATE INDEX room_bans_by_user ON room_bans (user);

-- `until` NULL means until lifted.
CREATE TABLE room_mutes (
    room  TEXT    NOT NULL REFERENCES rooms (name) ON DELETE CASCADE,
    user  TEXT    NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    until INTEGER,
    PRIMARY KEY (room, user)
) WITHOUT ROWID;

CREATE INDEX room_mutes_by_user ON room_mutes (user);

-- History. `sender` is deliberately not a foreign key: a deleted user's
-- messages stay in the rooms they were said in.
CREATE TABLE messages (
    room   TEXT    NOT NULL REFERENCES rooms (name) ON DELETE CASCADE,
    seq    INTEGER NOT NULL CHECK (seq > 0),
    sender TEXT    NOT NULL,
    text   TEXT    NOT NULL,
    ts     INTEGER NOT NULL,
    cid    TEXT,
    kind   TEXT    NOT NULL CHECK (kind IN ('chat', 'notice')),
    PRIMARY KEY (room, seq)
);

-- Idempotent sends: one message per (room, sender, client id).
CREATE UNIQUE INDEX messages_by_cid ON messages (room, sender, cid) WHERE cid IS NOT NULL;

-- Retention sweeps the oldest messages first.
CREATE INDEX messages_by_ts ON messages (ts);

-- The bot's question/answer pairs; the rowid keeps insertion order.
CREATE TABLE bot_corpus (
    id       INTEGER PRIMARY KEY,
    question TEXT NOT NULL,
    answer   TEXT NOT NULL,
    UNIQUE (question, answer)
);

-- The audit trail of admin and moderation actions. The rowid is the order
-- of recording, which is what "newest first" means (timestamps of
-- different nodes may disagree). Names are plain text, not references: the
-- trail must outlive the users and rooms it names. No CHECK on `action`, so
-- new kinds of action need no migration.
CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY,
    at     INTEGER NOT NULL,
    actor  TEXT    NOT NULL,
    action TEXT    NOT NULL,
    target TEXT    NOT NULL,
    detail TEXT    NOT NULL
);
