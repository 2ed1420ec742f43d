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

local delta, order = {}, {}
local function add(c, sign)
  for _, scope in ipairs({'all', 'm:' .. c.municipality, 'a:' .. c.area}) do
    if delta[scope] == nil then
      delta[scope] = {}
      table.insert(order, scope)
    end
    for name, v in pairs(c.counts) do
      delta[scope][name] = (delta[scope][name] or 0) + sign * v
      local kname = keyprefix .. name
      delta[scope][kname] = (delta[scope][kname] or 0) + sign * v * rk
    end
  end
end

if old ~= false then add(cjson.decode(old), -1) end
if new ~= '' then
  local c = cjson.decode(new)
  add(c, 1)
  redis.call('SET', fkey, new)
  redis.call('HSET', areaskey, c.area, c.municipality)
  if type(c.due) == 'number' then
    redis.call('ZADD', duekey, c.due, fam)
  else
    redis.call('ZREM', duekey, fam)
  end
else
  redis.call('DEL', fkey)
  redis.call('ZREM', duekey, fam)
end

local changed = {}
for _, scope in ipairs(order) do
  local moved = false
  for name, v in pairs(delta[scope]) do
    if v ~= 0 then
      local now_v = redis.call('HINCRBY', aggprefix .. scope, name, v)
      if string.match(name, '^t%d+$') or string.sub(name, 1, #keyprefix) == keyprefix then
        if now_v == 0 then redis.call('HDEL', aggprefix .. scope, name) end
      else
        moved = true
      end
    end
  end
  if moved then
    redis.call('HSET', updatedkey, scope, now)
    table.insert(changed, scope)
  end
end
return changed
