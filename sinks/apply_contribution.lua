-- Apply one family's new contribution to the aggregates, idempotently.
-- KEYS: [1] the family's contribution, [2] its partition's due zset, [3] the areas
--       hash, [4] the updated hash (names from sinks/keys.py).
-- ARGV: [1] family pseudonym, [2] new contribution JSON ('' = not counted), [3] now
--       (ISO), [4] the prefix of the scopes' count hashes (keys.AGG): a scope's hash is
--       named by the contribution it moves, which only this script reads, [5] the
--       family's record key (models.cellkey.record_key), [6] the cell-key field prefix
--       (models.contract.KEY_PREFIX).
-- Every count field moves its cell-key field "<prefix><field>" by count × record key
-- too (docs/disclosure.md): exact sums, like the counts; a cell key back at 0 is deleted.
-- The old contribution is read here, inside the same atomic script, so replaying the
-- same contribution (at-least-once delivery, a restarted worker) changes nothing.
-- Family-type fields ("t<type id>", models.contract.type_field) move like any count
-- but are not a change of the picture: a scope whose only moves are type counts keeps
-- its tk:updated time and is not announced, and a type count back at 0 is deleted
-- (a re-base gives every type a fresh id: the old ids' fields do not pile up).
local fkey, duekey, areaskey, updatedkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local fam, new, now, aggprefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local rk, keyprefix = tonumber(ARGV[5]), ARGV[6]
local old = redis.call('GET', fkey)
if (old == false and new == '') or old == new then
  return {}
end

local oldc, newc = nil, nil
if old ~= false then oldc = cjson.decode(old) end
if new ~= '' then
  newc = cjson.decode(new)
  redis.call('SET', fkey, new)
  redis.call('HSET', areaskey, newc.area, newc.municipality)
  if type(newc.due) == 'number' then
    redis.call('ZADD', duekey, newc.due, fam)
  else
    redis.call('ZREM', duekey, fam)
  end
else
  redis.call('DEL', fkey)
  redis.call('ZREM', duekey, fam)
end

-- delta[scope][name]: how a count moves (its cell-key field moves by that times the
-- record key). A family that stays in its area moves the same counts in its three
-- scopes, only those that differ.
local delta, order = {}, {}
local function scopes(c)
  return {'all', 'm:' .. c.municipality, 'a:' .. c.area}
end
local function add(c, sign)
  for _, scope in ipairs(scopes(c)) do
    if delta[scope] == nil then
      delta[scope] = {}
      table.insert(order, scope)
    end
    local d = delta[scope]
    for name, v in pairs(c.counts) do
      d[name] = (d[name] or 0) + sign * v
    end
  end
end

if oldc ~= nil and newc ~= nil and oldc.area == newc.area
    and oldc.municipality == newc.municipality then
  local diff = {}
  for name, v in pairs(newc.counts) do diff[name] = v - (oldc.counts[name] or 0) end
  for name, v in pairs(oldc.counts) do
    if newc.counts[name] == nil then diff[name] = -v end
  end
  for _, scope in ipairs(scopes(newc)) do
    delta[scope] = diff
    table.insert(order, scope)
  end
else
  if oldc ~= nil then add(oldc, -1) end
  if newc ~= nil then add(newc, 1) end
end

local function move(hash, name, v)
  local now_v = redis.call('HINCRBY', hash, name, v)
  if now_v == 0 then redis.call('HDEL', hash, name) end
end

local changed = {}
for _, scope in ipairs(order) do
  local moved = false
  local hash = aggprefix .. scope
  for name, v in pairs(delta[scope]) do
    if v ~= 0 then
      if string.match(name, '^t%d+$') then
        move(hash, name, v)
      else
        redis.call('HINCRBY', hash, name, v)
        moved = true
      end
      local kv = v * rk
      if kv ~= 0 then move(hash, keyprefix .. name, kv) end
    end
  end
  if moved then
    redis.call('HSET', updatedkey, scope, now)
    table.insert(changed, scope)
  end
end
return changed
