#pragma once
// The Lua scripts of the Redis queue (redis_queue.cc). Each runs atomically on the server,
// so every state change is one script: no read-modify-write spans two round trips.
//
// KEYS[1] is the provider's base "<ns>:{<provider>}"; every key a script touches starts with
// it, so all of them share the provider's hash slot. ARGV[1] is the caller's clock in ms, or ""
// for the server clock (TIME), so nodes with skewed clocks agree.
//
// Keys under the base:
//   :c:<chunk>   hash   task idx payload state attempts crashes owner token deadline err avail gen
//                       leased_at (when the current or last lease began) updated_at (last change);
//                       a chunk written before they were kept lacks them (read as 0)
//   :ready       zset   ready chunks with no crash mark, scored by available_at
//   :suspect     zset   ready chunks with crashes > 0, scored by available_at
//   :leased      zset   leased chunks, scored by lease deadline
//   :tc:<task>   zset   the task's chunk ids, scored by idx
//   :tn:<task>   hash   the task's chunk count per state
//   :n           hash   the provider's chunk count per state (Depths in O(1)); `done` only grows
//   :gen         string the provider's lease generation sequence
//   :wake        channel published when a chunk becomes ready
//
// Retention (QueueOptions::done_retention_ms, passed to Ack): Ack gives the done chunk's hash a
// TTL, and when the task then has no ready, leased, dead or cancelled chunk left in the provider,
// its :tc and :tn get the same TTL. Done is final (Cancel and Retry pass done chunks by), so a
// done chunk never needs its TTL removed; the task's keys do when Enqueue adds a chunk to a
// finished task (PERSIST). Dead and cancelled chunks never get a TTL, nor does a task holding
// one (dead letters stay inspectable and retryable). While its task lives, an expired done chunk
// is still listed in :tc: Enqueue does not bring it back and List reports it done.
namespace kg::redis_queue {

inline constexpr const char* kPrelude = R"lua(
local K = KEYS[1]
local T = redis.call('TIME')
local NOW_US = tonumber(T[1]) * 1000000 + tonumber(T[2])
local NOW = math.floor(NOW_US / 1000)
if ARGV[1] ~= '' then NOW = tonumber(ARGV[1]) end
local function ck(id) return K .. ':c:' .. id end
local function count(task, from, to)
  if from then
    redis.call('HINCRBY', K .. ':n', from, -1)
    redis.call('HINCRBY', K .. ':tn:' .. task, from, -1)
  end
  if to then
    redis.call('HINCRBY', K .. ':n', to, 1)
    redis.call('HINCRBY', K .. ':tn:' .. task, to, 1)
  end
end
local woke = false
local function wake()
  if not woke then
    redis.call('PUBLISH', K .. ':wake', '1')
    woke = true
  end
end
local function to_ready(id, avail, crashes)
  if (tonumber(crashes) or 0) > 0 then
    redis.call('ZADD', K .. ':suspect', avail, id)
  else
    redis.call('ZADD', K .. ':ready', avail, id)
  end
  wake()
end
local function unready(id)
  redis.call('ZREM', K .. ':ready', id)
  redis.call('ZREM', K .. ':suspect', id)
end
-- The task's chunk index and counts expire after `ms` once every chunk of the task in this
-- provider is done (nothing ready, leased, dead or cancelled).
local function retire_if_finished(task, ms)
  local tn = K .. ':tn:' .. task
  local open = redis.call('HMGET', tn, 'ready', 'leased', 'dead', 'cancelled')
  for _, v in ipairs(open) do
    if (tonumber(v) or 0) ~= 0 then return end
  end
  redis.call('PEXPIRE', tn, ms)
  redis.call('PEXPIRE', K .. ':tc:' .. task, ms)
end
-- Expired leases (deadline < NOW), at most `limit`: a failed attempt each; out of attempts
-- they are dead-lettered, else ready at once.
local function reclaim(max_attempts, limit)
  local ids = redis.call('ZRANGEBYSCORE', K .. ':leased', '-inf', string.format('(%d', NOW), 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    local c = ck(id)
    local f = redis.call('HMGET', c, 'attempts', 'task', 'crashes')
    local attempts = tonumber(f[1]) or 0
    redis.call('ZREM', K .. ':leased', id)
    if attempts >= max_attempts then
      redis.call('HSET', c, 'state', 'dead', 'owner', '', 'token', '', 'deadline', 0,
                 'err', 'lease expired after ' .. attempts .. ' attempts', 'updated_at', NOW)
      count(f[2], 'leased', 'dead')
    else
      redis.call('HSET', c, 'state', 'ready', 'owner', '', 'token', '', 'deadline', 0, 'avail', NOW,
                 'err', 'lease expired', 'updated_at', NOW)
      count(f[2], 'leased', 'ready')
      to_ready(id, NOW, f[3])
    end
  end
  return #ids
end
)lua";

// ARGV: now, then (id, task, idx, payload) per item. Returns how many were new. A chunk is
// known while its hash lives or its task still lists it (a done chunk whose hash expired).
// A new chunk in a finished task takes its keys' TTL away: the task is open again.
inline constexpr const char* kEnqueue = R"lua(
local added = 0
for k = 2, #ARGV, 4 do
  local id, task = ARGV[k], ARGV[k + 1]
  local c, tc = ck(id), K .. ':tc:' .. task
  if redis.call('EXISTS', c) == 0 and not redis.call('ZSCORE', tc, id) then
    redis.call('HSET', c, 'task', task, 'idx', ARGV[k + 2], 'payload', ARGV[k + 3], 'state', 'ready',
               'attempts', 0, 'crashes', 0, 'owner', '', 'token', '', 'deadline', 0, 'err', '', 'avail', NOW, 'gen', 0,
               'leased_at', 0, 'updated_at', NOW)
    redis.call('ZADD', K .. ':ready', NOW, id)
    redis.call('ZADD', tc, tonumber(ARGV[k + 2]), id)
    count(task, nil, 'ready')
    redis.call('PERSIST', tc)
    redis.call('PERSIST', K .. ':tn:' .. task)
    added = added + 1
  end
end
if added > 0 then wake() end
return added
)lua";

// ARGV: now, max, lease_ms, allow_suspect (0/1), max_attempts, owner, token_1..token_max.
// Reclaims up to 256 expired leases of the provider first. Returns {now, then per lease: id,
// task, idx, payload, attempt, crashes, generation}.
inline constexpr const char* kLease = R"lua(
local max, lease_ms = tonumber(ARGV[2]), tonumber(ARGV[3])
reclaim(tonumber(ARGV[5]), 256)
local ids = {}
if ARGV[4] == '1' then
  ids = redis.call('ZRANGEBYSCORE', K .. ':suspect', '-inf', NOW, 'LIMIT', 0, 1)
end
if #ids == 0 then
  ids = redis.call('ZRANGEBYSCORE', K .. ':ready', '-inf', NOW, 'LIMIT', 0, max)
end
local out = {NOW}
if #ids == 0 then return out end
-- One draw covers the batch: the first is max(last + 1, now in us), never below the clock.
local floor_us = math.max(NOW_US, NOW * 1000)
local gen = math.max(tonumber(redis.call('GET', K .. ':gen') or '0'), floor_us - 1)
redis.call('SET', K .. ':gen', string.format('%d', gen + #ids))
local deadline = NOW + lease_ms
for i, id in ipairs(ids) do
  local c = ck(id)
  unready(id)
  local attempt = redis.call('HINCRBY', c, 'attempts', 1)
  redis.call('HSET', c, 'state', 'leased', 'owner', ARGV[6], 'token', ARGV[6 + i], 'deadline', deadline,
             'gen', string.format('%d', gen + i), 'leased_at', NOW, 'updated_at', NOW)
  redis.call('ZADD', K .. ':leased', deadline, id)
  local f = redis.call('HMGET', c, 'task', 'idx', 'payload', 'crashes')
  count(f[1], 'ready', 'leased')
  table.insert(out, id)
  table.insert(out, f[1])
  table.insert(out, f[2])
  table.insert(out, f[3])
  table.insert(out, attempt)
  table.insert(out, tonumber(f[4]))
  table.insert(out, gen + i)
end
return out
)lua";

// ARGV: now, id, token, lease_ms. 1 renewed, 0 stale.
inline constexpr const char* kRenew = R"lua(
local id = ARGV[2]
local c = ck(id)
local f = redis.call('HMGET', c, 'state', 'token', 'deadline')
if f[1] ~= 'leased' or f[2] ~= ARGV[3] or tonumber(f[3]) < NOW then return 0 end
local deadline = NOW + tonumber(ARGV[4])
redis.call('HSET', c, 'deadline', deadline, 'updated_at', NOW)
redis.call('ZADD', K .. ':leased', deadline, id)
return 1
)lua";

// ARGV: now, id, token, retention_ms. 1 done, 0 stale. The payload of a done chunk is dropped
// (never re-run); with retention_ms > 0 the chunk expires after it, and so do the task's keys
// when this was its last open chunk.
inline constexpr const char* kAck = R"lua(
local id = ARGV[2]
local c = ck(id)
local f = redis.call('HMGET', c, 'state', 'token', 'task')
if f[1] ~= 'leased' or f[2] ~= ARGV[3] then return 0 end
redis.call('ZREM', K .. ':leased', id)
redis.call('HSET', c, 'state', 'done', 'owner', '', 'token', '', 'deadline', 0, 'updated_at', NOW)
redis.call('HDEL', c, 'payload')
count(f[3], 'leased', 'done')
local ms = tonumber(ARGV[4])
if ms > 0 then
  redis.call('PEXPIRE', c, ms)
  retire_if_finished(f[3], ms)
end
return 1
)lua";

// ARGV: now, id, token, error, retryable (0/1), max_attempts, backoff_base_ms, backoff_max_ms,
// jitter, unit_random. The backoff is BackoffMs (queue.h) computed here. 1 done, 0 stale.
inline constexpr const char* kNack = R"lua(
local id = ARGV[2]
local c = ck(id)
local f = redis.call('HMGET', c, 'state', 'token', 'task', 'attempts', 'crashes')
if f[1] ~= 'leased' or f[2] ~= ARGV[3] then return 0 end
local attempts = tonumber(f[4])
local retryable = ARGV[5] == '1'
redis.call('ZREM', K .. ':leased', id)
if not retryable or attempts >= tonumber(ARGV[6]) then
  local err = ARGV[4]
  if retryable then err = err .. ' (after ' .. attempts .. ' attempts)' end
  redis.call('HSET', c, 'state', 'dead', 'owner', '', 'token', '', 'deadline', 0, 'avail', NOW, 'err', err,
             'updated_at', NOW)
  count(f[3], 'leased', 'dead')
else
  local base = math.min(tonumber(ARGV[7]) * 2 ^ math.max(0, attempts - 1), tonumber(ARGV[8]))
  local factor = 1.0 + tonumber(ARGV[9]) * (2.0 * tonumber(ARGV[10]) - 1.0)
  local avail = NOW + math.floor(base * factor)
  redis.call('HSET', c, 'state', 'ready', 'owner', '', 'token', '', 'deadline', 0, 'avail', avail, 'err', ARGV[4],
             'updated_at', NOW)
  count(f[3], 'leased', 'ready')
  to_ready(id, avail, f[5])
end
return 1
)lua";

// ARGV: now, id, token. Gives the chunk back at once without spending the attempt. 1 / 0 stale.
inline constexpr const char* kRelease = R"lua(
local id = ARGV[2]
local c = ck(id)
local f = redis.call('HMGET', c, 'state', 'token', 'task', 'attempts', 'crashes')
if f[1] ~= 'leased' or f[2] ~= ARGV[3] then return 0 end
redis.call('ZREM', K .. ':leased', id)
redis.call('HSET', c, 'state', 'ready', 'owner', '', 'token', '', 'deadline', 0, 'avail', NOW,
           'attempts', math.max(tonumber(f[4]) - 1, 0), 'updated_at', NOW)
count(f[3], 'leased', 'ready')
to_ready(id, NOW, f[5])
return 1
)lua";

// ARGV: now, mode ('owner' | 'prefix'), owner or prefix, crashed (0/1), reason, poison_crashes,
// max_attempts. Walks the provider's leases (what is in flight, not the queue). Returns the count.
inline constexpr const char* kReleaseOwner = R"lua(
local by_prefix, who, crashed = ARGV[2] == 'prefix', ARGV[3], ARGV[4] == '1'
local poison_k, max_attempts = tonumber(ARGV[6]), tonumber(ARGV[7])
local n = 0
for _, id in ipairs(redis.call('ZRANGE', K .. ':leased', 0, -1)) do
  local c = ck(id)
  local f = redis.call('HMGET', c, 'owner', 'task', 'attempts', 'crashes')
  local mine
  if by_prefix then mine = string.sub(f[1], 1, #who) == who else mine = f[1] == who end
  if mine then
    n = n + 1
    redis.call('ZREM', K .. ':leased', id)
    local attempts, crashes = tonumber(f[3]), tonumber(f[4])
    if crashed then
      crashes = crashes + 1
      if crashes >= poison_k or attempts >= max_attempts then
        redis.call('HSET', c, 'state', 'dead', 'owner', '', 'token', '', 'deadline', 0, 'crashes', crashes,
                   'err', 'poison: ' .. poison_k .. ' workers died holding this chunk; last: ' .. ARGV[5],
                   'updated_at', NOW)
        count(f[2], 'leased', 'dead')
      else
        redis.call('HSET', c, 'state', 'ready', 'owner', '', 'token', '', 'deadline', 0, 'crashes', crashes,
                   'avail', NOW, 'err', 'worker died: ' .. ARGV[5], 'updated_at', NOW)
        count(f[2], 'leased', 'ready')
        to_ready(id, NOW, crashes)
      end
    else
      redis.call('HSET', c, 'state', 'ready', 'owner', '', 'token', '', 'deadline', 0, 'avail', NOW,
                 'attempts', math.max(attempts - 1, 0), 'updated_at', NOW)
      count(f[2], 'leased', 'ready')
      to_ready(id, NOW, crashes)
    end
  end
end
return n
)lua";

// ARGV: now, max_attempts, limit. Returns how many expired leases were handled.
inline constexpr const char* kReclaim = R"lua(
return reclaim(tonumber(ARGV[2]), tonumber(ARGV[3]))
)lua";

// ARGV: now, task. Cancels the task's ready and leased chunks; returns the count.
inline constexpr const char* kCancel = R"lua(
local task = ARGV[2]
local n = 0
for _, id in ipairs(redis.call('ZRANGE', K .. ':tc:' .. task, 0, -1)) do
  local c = ck(id)
  local state = redis.call('HGET', c, 'state')
  if state == 'ready' or state == 'leased' then
    unready(id)
    redis.call('ZREM', K .. ':leased', id)
    redis.call('HSET', c, 'state', 'cancelled', 'owner', '', 'token', '', 'deadline', 0, 'err', 'cancelled',
               'updated_at', NOW)
    count(task, state, 'cancelled')
    n = n + 1
  end
end
return n
)lua";

// ARGV: now, task. Revives the task's dead and cancelled chunks with fresh attempts.
inline constexpr const char* kRetry = R"lua(
local task = ARGV[2]
local n = 0
for _, id in ipairs(redis.call('ZRANGE', K .. ':tc:' .. task, 0, -1)) do
  local c = ck(id)
  local state = redis.call('HGET', c, 'state')
  if state == 'dead' or state == 'cancelled' then
    redis.call('HSET', c, 'state', 'ready', 'attempts', 0, 'crashes', 0, 'avail', NOW, 'err', '',
               'updated_at', NOW)
    count(task, state, 'ready')
    to_ready(id, NOW, 0)
    n = n + 1
  end
end
return n
)lua";

// ARGV: now, task, stop (the last rank listed: -1 for all). The task's chunks in idx order (the
// first stop + 1 of them): per chunk id, state, attempts, crashes,
// owner, err, avail, idx, leased_at, updated_at. A listed chunk without a hash was done and has
// expired: 'done' and its idx, no details.
inline constexpr const char* kList = R"lua(
local out = {}
local tc = redis.call('ZRANGE', K .. ':tc:' .. ARGV[2], 0, tonumber(ARGV[3]), 'WITHSCORES')
for i = 1, #tc, 2 do
  local id = tc[i]
  local f = redis.call('HMGET', ck(id), 'state', 'attempts', 'crashes', 'owner', 'err', 'avail', 'idx', 'leased_at',
                       'updated_at')
  if not f[1] then f = {'done'} end
  f[7] = tc[i + 1]
  table.insert(out, id)
  for k = 1, 9 do table.insert(out, f[k] or '') end
end
return out
)lua";

// ARGV: now, include_suspect (0/1). Returns {now, t} with t the earliest moment a chunk may be
// leasable (a ready chunk's available_at, or a lease deadline + 1), or -1 when there is none.
inline constexpr const char* kNextDue = R"lua(
local t = -1
local function consider(key, plus)
  local r = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #r > 0 then
    local v = tonumber(r[2]) + plus
    if t < 0 or v < t then t = v end
  end
end
consider(K .. ':ready', 0)
if ARGV[2] == '1' then consider(K .. ':suspect', 0) end
consider(K .. ':leased', 1)
return {NOW, t}
)lua";

// ARGV: now. Returns the provider's counts {ready, leased, dead, done, delayed}: `ready` counts
// only the chunks leasable now (available_at <= now, as kLease takes them), `delayed` the ready
// ones waiting out a backoff. Reads only.
inline constexpr const char* kDepth = R"lua(
local n = redis.call('HMGET', K .. ':n', 'ready', 'leased', 'dead', 'done')
local later = '(' .. NOW
local delayed = redis.call('ZCOUNT', K .. ':ready', later, '+inf') + redis.call('ZCOUNT', K .. ':suspect', later, '+inf')
local ready = (tonumber(n[1]) or 0) - delayed
return {ready, tonumber(n[2]) or 0, tonumber(n[3]) or 0, tonumber(n[4]) or 0, delayed}
)lua";

}  // namespace kg::redis_queue
