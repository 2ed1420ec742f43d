-- Rewrite families' histories from a day on, idempotently, one after another
-- (models/history.py runs the same algebra in memory; docs/design.md "History").
-- KEYS: one per family: its segments (zset: score = start day, member = "start|value").
-- ARGV: [1] the prefix of the history hashes (keys.HIST), [2] the block length in days,
--       [3] the cell-key field prefix (models.contract.KEY_PREFIX), [4] n, the number
--       of indicators, [5 … 4+n] their names in order, then three per family: since
--       (day number), the new segments from since on, JSON [[start, "value"], ...]
--       ("value": canonical JSON of the history value, '' = not counted), and the
--       family's record key (models.cellkey.record_key). Every count moves its cell-key
--       field "<prefix><field>" by count × record key on the same day (docs/disclosure.md).
-- A scope's history is a difference array: hash <prefix><scope>:<block> holds
-- "<field>:<day>" -> change on that day, hash <prefix><scope> holds "<field>:<block>" ->
-- the block's total change, so a day's value is the totals of the blocks before it plus
-- the changes of its own block up to it. A family's old segments from since on are read
-- here, inside the same atomic script: writing the same segments again changes nothing,
-- and a family that comes twice reads what the one before it wrote.
-- It runs for every family a batch changes, so it does no work that cancels: the
-- segments old and new begin with are skipped, a value that changes within one area
-- moves only the counts that differ (bench/README.md, session 40), and the families'
-- moves are summed before they reach the hashes, one HINCRBY a field (session 42).
local prefix, block, keyprefix = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local n = tonumber(ARGV[4])
local names = {}
for i = 1, n do names[i] = ARGV[4 + i] end

-- total[hash][field]: the families' summed moves; changed: the scopes any moved
local total, hashes, changed, seen = {}, {}, {}, {}
local function move(hash, field, v)
  local t = total[hash]
  if t == nil then
    t = {}
    total[hash] = t
    hashes[#hashes + 1] = hash
  end
  t[field] = (t[field] or 0) + v
end

-- body -> its value, with its three scopes (see decode below): the same for every family
local decoded = {}

local function split(member)
  local bar = string.find(member, '|', 1, true)
  return tonumber(string.sub(member, 1, bar - 1)), string.sub(member, bar + 1)
end

local function rewrite(fkey, since, new, rk)
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
    return
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

  for _, scope in ipairs(scopes) do
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
          if not seen[scope] then
            seen[scope] = true
            changed[#changed + 1] = scope
          end
        end
      end
    end
  end
end

local first = 5 + n
for i = 0, #KEYS - 1 do
  local a = first + 3 * i
  rewrite(KEYS[i + 1], tonumber(ARGV[a]), cjson.decode(ARGV[a + 1]), tonumber(ARGV[a + 2]))
end

for _, hash in ipairs(hashes) do
  for field, v in pairs(total[hash]) do
    if v ~= 0 and redis.call('HINCRBY', hash, field, v) == 0 then
      redis.call('HDEL', hash, field)
    end
  end
end
return changed
