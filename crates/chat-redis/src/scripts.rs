//! The Lua scripts: every change that touches more than one key runs as one
//! script, so Redis applies it atomically and nodes never see half of it.
//!
//! Scripts are loaded once at connect (`SCRIPT LOAD`) and run by hash
//! (`EVALSHA`); a server restarted since then has forgotten them, so a
//! `NOSCRIPT` answer falls back to `EVAL` with the source, which also
//! caches it again. A script that follows an index set to other keys builds
//! those keys from the prefix in `ARGV[1]` exactly as `keys.rs` does; that
//! is why hihichat needs a standalone Redis (or a hash-tagged prefix such as
//! `{hihichat}:` to keep every key in one cluster slot).

/// One Lua script.
#[derive(Debug)]
pub(crate) struct Script {
    /// A short name for logs.
    pub(crate) name: &'static str,
    /// The source.
    pub(crate) lua: &'static str,
}

/// Stores a new user unless the name is taken.
/// KEYS: users, user. ARGV: name, at, perms, pw. Returns 1, or 0 when taken.
pub(crate) const CREATE_USER: Script = Script {
    name: "create_user",
    lua: r#"
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'at', ARGV[2], 'perms', ARGV[3], 'pw', ARGV[4])
return 1
"#,
};

/// Every user. KEYS: users. ARGV: prefix. Returns `name, at, perms` triples.
pub(crate) const ALL_USERS: Script = Script {
    name: "all_users",
    lua: r#"
local out = {}
for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  -- keys.rs user()
  local v = redis.call('HMGET', ARGV[1] .. 'user:' .. n, 'at', 'perms')
  if v[1] then
    out[#out + 1] = n
    out[#out + 1] = v[1]
    out[#out + 1] = v[2] or ''
  end
end
return out
"#,
};

/// Sets one field of an existing user. KEYS: user. ARGV: field, value.
/// Returns the user's `at`, or nil when there is no such user.
pub(crate) const SET_USER_FIELD: Script = Script {
    name: "set_user_field",
    lua: r#"
local at = redis.call('HGET', KEYS[1], 'at')
if not at then return false end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return at
"#,
};

/// Deletes a user with their sessions, memberships, bans and mutes.
/// KEYS: users. ARGV: prefix, name. Returns 1, or 0 when there is no such user.
pub(crate) const DELETE_USER: Script = Script {
    name: "delete_user",
    lua: r#"
local p, n = ARGV[1], ARGV[2]
if redis.call('SREM', KEYS[1], n) == 0 then return 0 end
-- keys.rs user(), user_sessions(), user_rooms(), user_banned(), user_muted(),
-- session(), room_members(), room_banned(), room_mutes()
local u = p .. 'user:' .. n
for _, id in ipairs(redis.call('SMEMBERS', u .. ':sessions')) do
  redis.call('DEL', p .. 'session:' .. id)
end
for _, r in ipairs(redis.call('SMEMBERS', u .. ':rooms')) do
  redis.call('SREM', p .. 'room:' .. r .. ':members', n)
end
for _, r in ipairs(redis.call('SMEMBERS', u .. ':banned')) do
  redis.call('SREM', p .. 'room:' .. r .. ':banned', n)
end
for _, r in ipairs(redis.call('SMEMBERS', u .. ':muted')) do
  redis.call('HDEL', p .. 'room:' .. r .. ':mutes', n)
end
redis.call('DEL', u, u .. ':sessions', u .. ':rooms', u .. ':banned', u .. ':muted')
return 1
"#,
};

/// Stores a session and forgets the user's sessions that Redis has expired.
/// KEYS: session, user sessions. ARGV: prefix, id, user, at, exp, expire-at (ms).
pub(crate) const CREATE_SESSION: Script = Script {
    name: "create_session",
    lua: r#"
redis.call('HSET', KEYS[1], 'user', ARGV[3], 'at', ARGV[4], 'exp', ARGV[5])
redis.call('PEXPIREAT', KEYS[1], ARGV[6])
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  -- keys.rs session()
  if redis.call('EXISTS', ARGV[1] .. 'session:' .. id) == 0 then
    redis.call('SREM', KEYS[2], id)
  end
end
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"#,
};

/// Deletes one session. KEYS: session. ARGV: prefix, id.
pub(crate) const DELETE_SESSION: Script = Script {
    name: "delete_session",
    lua: r#"
local u = redis.call('HGET', KEYS[1], 'user')
redis.call('DEL', KEYS[1])
if u then
  -- keys.rs user_sessions()
  redis.call('SREM', ARGV[1] .. 'user:' .. u .. ':sessions', ARGV[2])
end
return 1
"#,
};

/// Deletes every session of a user but one. KEYS: user sessions.
/// ARGV: prefix, the id to keep (or ''). Returns how many existed and went.
pub(crate) const DELETE_USER_SESSIONS: Script = Script {
    name: "delete_user_sessions",
    lua: r#"
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if id ~= ARGV[2] then
    -- keys.rs session()
    n = n + redis.call('DEL', ARGV[1] .. 'session:' .. id)
    redis.call('SREM', KEYS[1], id)
  end
end
return n
"#,
};

/// Stores a room with its first members unless the name is taken.
/// KEYS: room, rooms. ARGV: prefix, name, desc, vis, by, at, direct ('1'/'0'),
/// members... Returns 1, or 0 when taken.
pub(crate) const CREATE_ROOM: Script = Script {
    name: "create_room",
    lua: r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local p, name = ARGV[1], ARGV[2]
redis.call('HSET', KEYS[1], 'desc', ARGV[3], 'vis', ARGV[4], 'by', ARGV[5], 'at', ARGV[6])
if ARGV[7] == '0' then redis.call('SADD', KEYS[2], name) end
for i = 8, #ARGV do
  -- keys.rs room_members(), user_rooms()
  redis.call('SADD', p .. 'room:' .. name .. ':members', ARGV[i])
  redis.call('SADD', p .. 'user:' .. ARGV[i] .. ':rooms', name)
end
return 1
"#,
};

/// The rooms named in a set. KEYS: the set (`rooms` or a user's rooms).
/// ARGV: prefix. Returns `name, desc, vis, by, at` quintuples.
pub(crate) const ROOMS_IN_SET: Script = Script {
    name: "rooms_in_set",
    lua: r#"
local out = {}
for _, r in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  -- keys.rs room()
  local v = redis.call('HMGET', ARGV[1] .. 'room:' .. r, 'desc', 'vis', 'by', 'at')
  if v[4] then
    out[#out + 1] = r
    out[#out + 1] = v[1] or ''
    out[#out + 1] = v[2] or ''
    out[#out + 1] = v[3] or ''
    out[#out + 1] = v[4]
  end
end
return out
"#,
};

/// Adds or removes a user in a room-side set and the matching user-side set,
/// if the room exists. KEYS: room, room-side set, user-side set.
/// ARGV: user, room, 'add' or 'rem'. Returns -1 when there is no such room,
/// else 1 if the room-side set changed, 0 if not.
pub(crate) const ROOM_USER_SET: Script = Script {
    name: "room_user_set",
    lua: r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if ARGV[3] == 'add' then
  local changed = redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('SADD', KEYS[3], ARGV[2])
  return changed
end
local changed = redis.call('SREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[2])
return changed
"#,
};

/// The members of an existing room. KEYS: room, members.
/// Returns -1 when there is no such room, else the members.
pub(crate) const ROOM_MEMBERS: Script = Script {
    name: "room_members",
    lua: r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('SMEMBERS', KEYS[2])
"#,
};

/// Sets ('set') or lifts ('') a mute if the room exists. KEYS: room, room
/// mutes, user muted. ARGV: user, room, the mute's end in ms or 'inf' or ''.
/// Returns -1 when there is no such room, else 1.
pub(crate) const SET_MUTE: Script = Script {
    name: "set_mute",
    lua: r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('SREM', KEYS[3], ARGV[2])
else
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  redis.call('SADD', KEYS[3], ARGV[2])
end
return 1
"#,
};

/// Sets (or, given '', deletes) one field of an existing room's hash.
/// KEYS: room. ARGV: field, value. Returns 1, or -1 when there is no such room.
pub(crate) const SET_ROOM_FIELD: Script = Script {
    name: "set_room_field",
    lua: r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 1
"#,
};

/// Appends a message: checks the room and the sender's cid, assigns the next
/// seq, stores the message, indexes it by time and records the cid, all in
/// one atomic step, so concurrent appends from any number of nodes get
/// 1, 2, 3, … with no gap or repeat.
///
/// KEYS: room, seq, msgs, cids, msgs-by-ts. ARGV: room name, sender, cid (or
/// ''), ts, body json. Returns `{'missing'}`, `{'dup', member}` or
/// `{'new', member}` where member is `{seq}|{json}`.
pub(crate) const APPEND: Script = Script {
    name: "append",
    lua: r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local field = ARGV[2] .. '|' .. ARGV[3]
if ARGV[3] ~= '' then
  local earlier = redis.call('HGET', KEYS[4], field)
  if earlier then
    local found = redis.call('ZRANGEBYSCORE', KEYS[3], earlier, earlier)
    if found[1] then return {'dup', found[1]} end
  end
end
local seq = redis.call('INCR', KEYS[2])
local member = string.format('%d|%s', seq, ARGV[5])
redis.call('ZADD', KEYS[3], seq, member)
redis.call('ZADD', KEYS[5], ARGV[4], string.format('%s|%d', ARGV[1], seq))
if ARGV[3] ~= '' then redis.call('HSET', KEYS[4], field, seq) end
return {'new', member}
"#,
};

/// Deletes up to ARGV[3] messages stamped before ARGV[2], with their cid
/// entries. KEYS: msgs-by-ts. ARGV: prefix, cutoff (ms), batch.
/// Returns how many went. The seq counters are untouched.
pub(crate) const DELETE_BEFORE: Script = Script {
    name: "delete_before",
    lua: r#"
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0, ARGV[3])
for _, item in ipairs(items) do
  local bar = string.find(item, '|', 1, true)
  local room, seq = string.sub(item, 1, bar - 1), string.sub(item, bar + 1)
  -- keys.rs room_msgs(), room_cids()
  local base = ARGV[1] .. 'room:' .. room
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', base .. ':msgs', seq, seq)) do
    local ok, body = pcall(cjson.decode, string.sub(m, string.find(m, '|', 1, true) + 1))
    if ok and type(body.cid) == 'string' and type(body.from) == 'string' then
      redis.call('HDEL', base .. ':cids', body.from .. '|' .. body.cid)
    end
  end
  redis.call('ZREMRANGEBYSCORE', base .. ':msgs', seq, seq)
  redis.call('ZREM', KEYS[1], item)
end
return #items
"#,
};

/// Records a connection's presence. KEYS: presence room, presence conns,
/// presence due. ARGV: user, conn, expires (ms), `room|user`.
/// Returns 1 when the user had no entry in the room before, else 0.
pub(crate) const PRESENCE_TOUCH: Script = Script {
    name: "presence_touch",
    lua: r#"
local existed = redis.call('EXISTS', KEYS[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')[2]
redis.call('ZADD', KEYS[1], last, ARGV[1])
redis.call('ZADD', KEYS[3], last, ARGV[4])
if existed == 0 then return 1 end
return 0
"#,
};

/// Removes a connection and the user's connections expired at `now`.
/// KEYS: as touch. ARGV: user, conn, now (ms), `room|user`.
/// Returns 1 when the user had entries before and has none left, else 0.
pub(crate) const PRESENCE_REMOVE: Script = Script {
    name: "presence_remove",
    lua: r#"
local before = redis.call('ZCARD', KEYS[2])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
if redis.call('ZCARD', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[4])
  if before > 0 then return 1 end
  return 0
end
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')[2]
redis.call('ZADD', KEYS[1], last, ARGV[1])
redis.call('ZADD', KEYS[3], last, ARGV[4])
return 0
"#,
};

/// Drops every (room, user) whose last connection expired at `now`.
/// KEYS: presence due. ARGV: prefix, now (ms). Returns the `room|user` pairs.
pub(crate) const PRESENCE_EXPIRE: Script = Script {
    name: "presence_expire",
    lua: r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
for _, pair in ipairs(due) do
  local bar = string.find(pair, '|', 1, true)
  local room, user = string.sub(pair, 1, bar - 1), string.sub(pair, bar + 1)
  -- keys.rs presence_room(), presence_conns()
  local base = ARGV[1] .. 'pres:' .. room
  redis.call('DEL', base .. ':' .. user)
  redis.call('ZREM', base, user)
  redis.call('ZREM', KEYS[1], pair)
end
return due
"#,
};

/// Adds question/answer pairs not stored yet, in order. KEYS: corpus list,
/// corpus set. ARGV: encoded pairs. Returns how many were new.
pub(crate) const ADD_PAIRS: Script = Script {
    name: "add_pairs",
    lua: r#"
local n = 0
for i = 1, #ARGV do
  if redis.call('SADD', KEYS[2], ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
"#,
};

/// Records an audit entry, keeping only the newest. KEYS: audit list.
/// ARGV: encoded entry, how many to keep. Returns the list's length.
pub(crate) const RECORD_AUDIT: Script = Script {
    name: "record_audit",
    lua: r#"
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
return redis.call('LLEN', KEYS[1])
"#,
};

/// Every script, loaded at connect.
pub(crate) const ALL: [&Script; 20] = [
    &CREATE_USER,
    &ALL_USERS,
    &SET_USER_FIELD,
    &DELETE_USER,
    &CREATE_SESSION,
    &DELETE_SESSION,
    &DELETE_USER_SESSIONS,
    &CREATE_ROOM,
    &ROOMS_IN_SET,
    &ROOM_USER_SET,
    &ROOM_MEMBERS,
    &SET_MUTE,
    &SET_ROOM_FIELD,
    &APPEND,
    &DELETE_BEFORE,
    &PRESENCE_TOUCH,
    &PRESENCE_REMOVE,
    &PRESENCE_EXPIRE,
    &ADD_PAIRS,
    &RECORD_AUDIT,
];
