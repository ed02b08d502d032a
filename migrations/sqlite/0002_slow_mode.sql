-- Slow mode per room: a member who does not moderate the room may send one
-- message per `slow_mode_secs` seconds. NULL means off. Set and lifted by
-- the room's moderators; enforced by each node in memory.
ALTER TABLE rooms ADD COLUMN slow_mode_secs INTEGER
    CHECK (slow_mode_secs IS NULL OR slow_mode_secs > 0);
