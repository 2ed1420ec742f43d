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
-- It runs for every family a batch changes, so it does no work that cancels: the
-- segments old and new begin with are skipped, and a value that changes within one area
-- moves only the counts that differ (bench/README.md, session 40).
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

local old = {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', fkey, since, '+inf')) do
  local start, body = split(member)
  old[#old + 1] = {start, body}
end

-- The segments both chains begin with move nothing (each is taken out as it was put
-- in): the chains start after them. The same segments again (a replay, or a write that
-- changed nothing from since) change nothing at all.
local k = 0
while k < #old and k < #new and old[k + 1][1] == new[k + 1][1] and old[k + 1][2] == new[k + 1][2] do
  k = k + 1
end
if k == #old and k == #new then
  return {}
end
local from = before
if k > 0 then from = old[k][2] end

-- delta[scope][name][day]: the change of a count on a day (the cell-key field moves by
-- the same times the record key)
local delta, scopes = {}, {}
local function bump(scope, name, day, v)
  local d = delta[scope]
  if d == nil then
    d = {}
    delta[scope] = d
    scopes[#scopes + 1] = scope
  end
  local days = d[name]
  if days == nil then
    days = {}
    d[name] = days
  end
  days[day] = (days[day] or 0) + v
end

local function valid(g)
  return g ~= nil and g ~= 0
end

local decoded = {}  -- body -> its value, with its three scopes (see decode below)
local function add(body, sign, day)
  if body == '' then return end
  local v = decoded[body]
  local g = v[3 + n]
  for _, scope in ipairs(v.scopes) do
    for i = 1, n do
      local c = v[2 + i]
      if c ~= 0 then bump(scope, names[i], day, sign * c) end
    end
    if valid(g) then bump(scope, 'g' .. g, day, sign) end
  end
end

-- From value `a` to value `b` on `day`: in the same area, only what differs moves.
local function step(a, b, sign, day)
  if a == '' or b == '' then
    add(a, -sign, day)
    add(b, sign, day)
    return
  end
  local va, vb = decoded[a], decoded[b]
  if va[1] ~= vb[1] or va[2] ~= vb[2] then
    add(a, -sign, day)
    add(b, sign, day)
    return
  end
  local ga, gb = va[3 + n], vb[3 + n]
  for _, scope in ipairs(va.scopes) do
    for i = 1, n do
      local d = vb[2 + i] - va[2 + i]
      if d ~= 0 then bump(scope, names[i], day, sign * d) end
    end
    if ga ~= gb then
      if valid(ga) then bump(scope, 'g' .. ga, day, -sign) end
      if valid(gb) then bump(scope, 'g' .. gb, day, sign) end
    end
  end
end

local function decode(body)
  if body ~= '' and decoded[body] == nil then
    local v = cjson.decode(body)
    v.scopes = {'all', 'm:' .. v[2], 'a:' .. v[1]}
    decoded[body] = v
  end
end

-- The change of the difference array a chain of segments after `from` makes.
local function chain(segments, sign)
  local p = from
  decode(p)
  for j = k + 1, #segments do
    local start, body = segments[j][1], segments[j][2]
    if body ~= p then
      decode(body)
      step(p, body, sign, start)
      p = body
    end
  end
end

chain(old, -1)
chain(new, 1)

-- The segments from the first that differs (those before it are stored as they are).
if k > 0 then
  redis.call('ZREMRANGEBYSCORE', fkey, '(' .. old[k][1], '+inf')
else
  redis.call('ZREMRANGEBYSCORE', fkey, since, '+inf')
end
local p = from
for j = k + 1, #new do
  local s = new[j]
  if s[2] ~= p then
    redis.call('ZADD', fkey, s[1], s[1] .. '|' .. s[2])
    p = s[2]
  end
end

local function move(hash, field, v)
  if redis.call('HINCRBY', hash, field, v) == 0 then redis.call('HDEL', hash, field) end
end

local changed = {}
for _, scope in ipairs(scopes) do
  local moved = false
  local totals = prefix .. scope
  for name, days in pairs(delta[scope]) do
    local kname = keyprefix .. name
    for day, v in pairs(days) do
      if v ~= 0 then
        local b = math.floor(day / block)
        local dkey = prefix .. scope .. ':' .. b
        move(dkey, name .. ':' .. day, v)
        move(totals, name .. ':' .. b, v)
        local kv = v * rk
        if kv ~= 0 then
          move(dkey, kname .. ':' .. day, kv)
          move(totals, kname .. ':' .. b, kv)
        end
        moved = true
      end
    end
  end
  if moved then changed[#changed + 1] = scope end
end
return changed
