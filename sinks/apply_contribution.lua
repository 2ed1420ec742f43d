-- Apply one family's new contribution to the aggregates, idempotently.
-- ARGV: family pseudonym, new contribution JSON ('' = not counted), now (ISO), due zset key.
-- The old contribution is read here, inside the same atomic script, so replaying the
-- same contribution (at-least-once delivery, a restarted worker) changes nothing.
local fam, new, now, duekey = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local fkey = 'tk:fam:' .. fam
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
    end
  end
end

if old ~= false then add(cjson.decode(old), -1) end
if new ~= '' then
  local c = cjson.decode(new)
  add(c, 1)
  redis.call('SET', fkey, new)
  redis.call('HSET', 'tk:areas', c.area, c.municipality)
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
      redis.call('HINCRBY', 'tk:agg:' .. scope, name, v)
      moved = true
    end
  end
  if moved then
    redis.call('HSET', 'tk:updated', scope, now)
    table.insert(changed, scope)
  end
end
return changed
