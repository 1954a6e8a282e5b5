//! The Lua scripts the shared state runs on Redis: each one decision, atomic.

pub(super) static LOOKUP: &str = r"
local v = redis.call('GET', KEYS[1])
local g = redis.call('GET', KEYS[2]) or '0'
local e = redis.call('GET', KEYS[3]) or '0'
local locked = 0
if ARGV[3] == '1' and not v then
  if redis.call('SET', KEYS[4], ARGV[1], 'NX', 'PX', ARGV[2]) then locked = 1 end
end
return {v or '', g, e, locked, redis.call('EXISTS', KEYS[4])}
";

pub(super) static LOCK: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
";

pub(super) static FILL: &str = r"
local ok = (redis.call('GET', KEYS[3]) or '0') == ARGV[1]
if ok then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  for i = 5, #KEYS do
    redis.call('SADD', KEYS[i], KEYS[1])
    if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[3]) then
      redis.call('PEXPIRE', KEYS[i], ARGV[3])
    end
  end
end
if redis.call('GET', KEYS[4]) == ARGV[4] then redis.call('DEL', KEYS[4]) end
if ok then return 1 end
return 0
";

pub(super) static UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
";

pub(super) static INVALIDATE: &str = r"
redis.call('INCR', KEYS[1])
local n = tonumber(ARGV[1])
for i = 2, n + 1 do redis.call('INCR', KEYS[i]) end
for i = n + 2, #KEYS do
  local members = redis.call('SMEMBERS', KEYS[i])
  for _, k in ipairs(members) do redis.call('DEL', k) end
  redis.call('DEL', KEYS[i])
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
";

/// GCRA over one or more rules at once (`redis-cell`'s algorithm): each rule `i` has
/// a theoretical arrival time in KEYS[i]; ARGV: max wait (µs), then per rule its
/// emission interval and its burst tolerance (µs). The call is admitted when every
/// rule admits it within the wait; then every rule's time advances. Returns
/// {admitted, wait or retry-after in µs}. Redis's clock serves every replica.
pub(super) static RESERVE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local max_wait = tonumber(ARGV[1])
local wait = 0
local tats = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i])
  local tolerance = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local allow_at = tat - tolerance
  if allow_at - now > wait then wait = allow_at - now end
  tats[i] = tat + interval
end
if wait > max_wait then return {0, wait} end
for i = 1, #KEYS do
  local ttl = math.ceil((tats[i] - now) / 1000) + 1000
  redis.call('SET', KEYS[i], tats[i], 'PX', ttl)
end
return {1, wait}
";
