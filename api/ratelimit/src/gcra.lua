-- GCRA with the cost as the quantity, over one or two coupled policies, atomically.
-- The same arithmetic as src/gcra.rs (read its module docs for the units).
--
-- KEYS[i]  one key per policy; all share one hash tag, so one Redis Cluster slot.
-- ARGV[1]  "check" (admit if every policy can take the cost, then charge all) or
--          "refund" (give the cost back to every policy)
-- ARGV[2]  the cost, in units
-- ARGV[3]  now in µs since the epoch, or "" to read the Redis server's clock (TIME)
-- ARGV[2 + 2i], ARGV[3 + 2i]  policy i's quota and window in µs
--
-- Each key holds "<tat µs>:<remainder>", the theoretical arrival time us + rem / quota,
-- and expires (PX) when its budget is full again, so idle keys vanish.
--
-- Returns { allowed (0|1), violated policy (1-based, 0 = none), now µs, retry-after µs,
--           then per policy: debt after (µs × quota) }

-- Scripts that write after a non-deterministic command (TIME) need effects replication:
-- the default since Redis 5, and this call makes Redis 3.2-4 do the same.
if redis.replicate_commands then pcall(redis.replicate_commands) end

local function floor_div(a, b)
  local q = math.floor(a / b)
  -- a / b is rounded to a double; correct by one if the rounding crossed an integer.
  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
  return q
end

local function ceil_div(a, b)
  return floor_div(a + b - 1, b)
end

local mode = ARGV[1]
local cost = tonumber(ARGV[2])
local now
if ARGV[3] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[3])
end

local n = #KEYS
local quota, window, debt, after = {}, {}, {}, {}
for i = 1, n do
  quota[i] = tonumber(ARGV[2 + 2 * i])
  window[i] = tonumber(ARGV[3 + 2 * i])
  local d = 0
  local v = redis.call('GET', KEYS[i])
  if v then
    local us, rem = string.match(v, '^(%-?%d+):(%d+)$')
    if us then
      us = tonumber(us)
      if us >= now then d = (us - now) * quota[i] + tonumber(rem) end
    end
  end
  debt[i] = d
end

local allowed, violated, retry = 1, 0, 0
for i = 1, n do
  local limit = quota[i] * window[i]
  if mode == 'refund' then
    after[i] = math.max(debt[i] - cost * window[i], 0)
  else
    after[i] = debt[i] + cost * window[i]
    if after[i] > limit then
      allowed = 0
      local wait = ceil_div(after[i] - limit, quota[i])
      if wait >= retry then retry, violated = wait, i end
    end
  end
end

local out = { allowed, violated, now, retry }
for i = 1, n do
  if allowed == 1 then
    if cost > 0 then
      local d = after[i]
      if d > 0 then
        local us = now + floor_div(d, quota[i])
        local rem = d - (us - now) * quota[i]
        -- Expire when the budget is full again: ceil(debt / quota) µs, in ms, plus 1.
        local ttl = ceil_div(d, quota[i] * 1000) + 1
        redis.call('SET', KEYS[i], string.format('%.0f:%.0f', us, rem), 'PX', ttl)
      else
        redis.call('DEL', KEYS[i])
      end
    end
    out[4 + i] = after[i]
  else
    out[4 + i] = debt[i]
  end
end
return out
