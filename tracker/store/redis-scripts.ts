/**
 * Lua scripts of the Redis store. Each touches only the keys of one swarm (one hash tag),
 * so they run unchanged on Redis Cluster. Peer values are "<owner>|<0|1 complete>".
 */

/**
 * KEYS: peers, seen, counts. ARGV: peerId, owner, complete, nowMs, keyTtlMs, refresh (1/0).
 * Returns {isNew, complete, incomplete, created} or {-1, owner}. A periodic update of a known
 * peer runs HGET, ZADD and HMGET only (4 commands with the EVALSHA): the value is written
 * only when it changes, and the keys' TTLs are set when the swarm is created or when the
 * caller asks for a refresh (it does so once in a while per swarm, not on every announce).
 */
export const UPSERT_PEER = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local isNew = 1
local wasComplete = 0
if cur then
  local sep = string.find(cur, '|', 1, true)
  local owner = string.sub(cur, 1, sep - 1)
  if owner ~= ARGV[2] then return {-1, owner} end
  isNew = 0
  if string.sub(cur, sep + 1, sep + 1) == '1' then wasComplete = 1 end
end
local complete = 0
if ARGV[3] == '1' or wasComplete == 1 then complete = 1 end
local value = ARGV[2] .. '|' .. complete
if cur ~= value then redis.call('HSET', KEYS[1], ARGV[1], value) end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
if isNew == 1 then
  if complete == 1 then redis.call('HINCRBY', KEYS[3], 'complete', 1) else redis.call('HINCRBY', KEYS[3], 'incomplete', 1) end
elseif wasComplete == 0 and complete == 1 then
  redis.call('HINCRBY', KEYS[3], 'complete', 1)
  redis.call('HINCRBY', KEYS[3], 'incomplete', -1)
end
local c = redis.call('HMGET', KEYS[3], 'complete', 'incomplete')
local complete_count = tonumber(c[1]) or 0
local incomplete_count = tonumber(c[2]) or 0
local created = 0
if isNew == 1 and complete_count + incomplete_count == 1 then created = 1 end
if created == 1 or ARGV[6] == '1' then
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
end
return {isNew, complete_count, incomplete_count, created}
`;

/** KEYS: peers, seen, counts. ARGV: peerId, owner. Returns {complete, incomplete, isEmpty} or {-1, owner}. */
export const REMOVE_PEER = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local owner = string.sub(cur, 1, string.find(cur, '|', 1, true) - 1)
  if owner ~= ARGV[2] then return {-1, owner} end
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  local sep = string.find(cur, '|', 1, true)
  if string.sub(cur, sep + 1, sep + 1) == '1' then redis.call('HINCRBY', KEYS[3], 'complete', -1) else redis.call('HINCRBY', KEYS[3], 'incomplete', -1) end
end
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  return {0, 0, 1}
end
local c = redis.call('HMGET', KEYS[3], 'complete', 'incomplete')
return {tonumber(c[1]) or 0, tonumber(c[2]) or 0, 0}
`;

/** KEYS: peers, seen, counts. ARGV: cutoffMs. Returns {dropped, isEmpty}. */
export const PRUNE_SWARM = `
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1], 'LIMIT', 0, 10000)
local dropped = 0
for _, peerId in ipairs(stale) do
  local cur = redis.call('HGET', KEYS[1], peerId)
  redis.call('ZREM', KEYS[2], peerId)
  if cur then
    redis.call('HDEL', KEYS[1], peerId)
    dropped = dropped + 1
    local sep = string.find(cur, '|', 1, true)
    if string.sub(cur, sep + 1, sep + 1) == '1' then redis.call('HINCRBY', KEYS[3], 'complete', -1) else redis.call('HINCRBY', KEYS[3], 'incomplete', -1) end
  end
end
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  return {dropped, 1}
end
return {dropped, 0}
`;

/** KEYS: session. ARGV: expected JSON, new JSON, ttlMs. Compare-and-set. */
export const CAS_SESSION = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
`;
