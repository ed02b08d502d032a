-- History is read a room at a time in seq order. Clustering the table on
-- (room, seq) makes a page one range scan of the table itself; as a rowid
-- table each message of a page cost a primary-key index lookup and then a
-- second seek into the table.
CREATE TABLE messages_clustered (
    room   TEXT    NOT NULL REFERENCES rooms (name) ON DELETE CASCADE,
    seq    INTEGER NOT NULL CHECK (seq > 0),
    sender TEXT    NOT NULL,
    text   TEXT    NOT NULL,
    ts     INTEGER NOT NULL,
    cid    TEXT,
    kind   TEXT    NOT NULL CHECK (kind IN ('chat', 'notice')),
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;

INSERT INTO messages_clustered (room, seq, sender, text, ts, cid, kind)
    SELECT room, seq, sender, text, ts, cid, kind FROM messages;

DROP TABLE messages;
ALTER TABLE messages_clustered RENAME TO messages;

-- The same secondary indexes as before (the writer names messages_by_cid).
CREATE UNIQUE INDEX messages_by_cid ON messages (room, sender, cid) WHERE cid IS NOT NULL;
CREATE INDEX messages_by_ts ON messages (ts);
