-- Rewrite one family's history from a day on, idempotently (models/history.py runs the
-- same algebra in memory; docs/design.md "History").
-- KEYS: [1] the family's segments (zset: score = start day, member = "start|value").
-- ARGV: [1] since (day number), [2] the new segments from since on, JSON
--       [[start, "value"], ...] ("value": canonical JSON of the history value, '' = not
--       counted), [3] the prefix of the history hashes (keys.HIST), [4] the block length
--       in days, [5] the family's record key (models.cellkey.record_key), [6] the
--       cell-key field prefix (models.contract.KEY_PREFIX), [7...] the indicator names
--       in order. Every count moves its cell-key field "<prefix><field>" by count ×
--       record key on the same day (docs/disclosure.md).
-- A scope's history is a difference array: hash <prefix><scope>:<block> holds
-- "<field>:<day>" -> change on that day, hash <prefix><scope> holds "<field>:<block>" ->
-- the block's total change, so a day's value is the totals of the blocks before it plus
-- the changes of its own block up to it. The family's old segments from since on are read
-- here, inside the same atomic script: writing the same segments again changes nothing.
local fkey = KEYS[1]
local since = tonumber(ARGV[1])
local new = cjson.decode(ARGV[2])
local prefix, block = ARGV[3], tonumber(ARGV[4])
local rk, keyprefix = tonumber(ARGV[5]), ARGV[6]
local names = {}
for i = 7, #ARGV do names[#names + 1] = ARGV[i] end
local n = #names

local function split(member)
  local bar = string.find(member, '|', 1, true)
  return tonumber(string.sub(member, 1, bar - 1)), string.sub(member, bar + 1)
end

local before = ''
local prev = redis.call('ZREVRANGEBYSCORE', fkey, '(' .. since, '-inf', 'LIMIT', 0, 1)
if #prev > 0 then
  local _, body = split(prev[1])
  before = body
end

local delta, scopes = {}, {}
local function bump(scope, name, day, v)
  local d = delta[scope]
  if d == nil then
    d = {}
    delta[scope] = d
    table.insert(scopes, scope)
  end
  local k = name .. ':' .. day
  d[k] = (d[k] or 0) + v
  k = keyprefix .. k
  d[k] = (d[k] or 0) + v * rk
end

local decoded = {}
local function add(body, sign, day)
  if body == '' then return end
  local v = decoded[body]
  if v == nil then
    v = cjson.decode(body)
    decoded[body] = v
  end
  for _, scope in ipairs({'all', 'm:' .. v[2], 'a:' .. v[1]}) do
    for i = 1, n do
      local c = v[2 + i]
      if c ~= 0 then bump(scope, names[i], day, sign * c) end
    end
    local g = v[3 + n]
    if g ~= nil and g ~= 0 then bump(scope, 'g' .. g, day, sign) end
  end
end

-- The change of the difference array a chain of segments after `before` makes.
local function chain(segments, sign)
  local p = before
  for _, s in ipairs(segments) do
    local start, body = s[1], s[2]
    if body ~= p then
      add(p, -sign, start)
      add(body, sign, start)
      p = body
    end
  end
end

local old = {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', fkey, since, '+inf')) do
  local start, body = split(member)
  table.insert(old, {start, body})
end
chain(old, -1)
chain(new, 1)

redis.call('ZREMRANGEBYSCORE', fkey, since, '+inf')
local p = before
for _, s in ipairs(new) do
  if s[2] ~= p then
    redis.call('ZADD', fkey, s[1], s[1] .. '|' .. s[2])
    p = s[2]
  end
end

local changed = {}
for _, scope in ipairs(scopes) do
  local moved = false
  for k, v in pairs(delta[scope]) do
    if v ~= 0 then
      local colon = string.find(k, ':', 1, true)
      local name, day = string.sub(k, 1, colon - 1), tonumber(string.sub(k, colon + 1))
      local b = math.floor(day / block)
      local dkey = prefix .. scope .. ':' .. b
      if redis.call('HINCRBY', dkey, k, v) == 0 then redis.call('HDEL', dkey, k) end
      local bfield = name .. ':' .. b
      if redis.call('HINCRBY', prefix .. scope, bfield, v) == 0 then
        redis.call('HDEL', prefix .. scope, bfield)
      end
      moved = true
    end
  end
  if moved then table.insert(changed, scope) end
end
return changed
