-- Apply families' new contributions to the aggregates, idempotently, one after another.
-- KEYS: [1] the areas hash, [2] the updated hash, then two per family: [2i+1] its
--       contribution, [2i+2] its partition's due zset (names from sinks/keys.py).
-- ARGV: [1] now (ISO), [2] the prefix of the scopes' count hashes (keys.AGG): a scope's
--       hash is named by the contribution it moves, which only this script reads, [3] the
--       cell-key field prefix (models.contract.KEY_PREFIX), then three per family:
--       [3i+1] its pseudonym, [3i+2] its new contribution JSON ('' = not counted),
--       [3i+3] its record key (models.cellkey.record_key).
-- Every count field moves its cell-key field "<prefix><field>" by count × record key
-- too (docs/disclosure.md): exact sums, like the counts; a cell key back at 0 is deleted.
-- The old contribution is read here, inside the same atomic script, so replaying the
-- same contribution (at-least-once delivery, a restarted worker) changes nothing. A
-- family may come twice: each reads what the one before it wrote.
-- Family-type fields ("t<type id>", models.contract.type_field) move like any count
-- but are not a change of the picture: a scope whose only moves are type counts keeps
-- its tk:updated time and is not announced, and a type count back at 0 is deleted
-- (a re-base gives every type a fresh id: the old ids' fields do not pile up).
-- The families' moves are summed before they reach the hashes, one HINCRBY a field:
-- the families of a batch share most fields of 'all' and their municipality's, and the
-- sum leaves every hash as the moves one by one would (bench/README.md, session 42).
local areaskey, updatedkey = KEYS[1], KEYS[2]
local now, aggprefix, keyprefix = ARGV[1], ARGV[2], ARGV[3]

-- total[hash][field]: the summed move; kept[hash][field]: a count field some family
-- moved (one by one it would exist, at 0 too; type and cell-key fields at 0 do not)
local total, hashes, kept, moved, order = {}, {}, {}, {}, {}

local function add(scope, name, v, rk)
  local hash = aggprefix .. scope
  local t = total[hash]
  if t == nil then
    t = {}
    total[hash] = t
    kept[hash] = {}
    hashes[#hashes + 1] = hash
  end
  t[name] = (t[name] or 0) + v
  if not string.match(name, '^t%d+$') then
    kept[hash][name] = true
    if not moved[scope] then
      moved[scope] = true
      order[#order + 1] = scope
    end
  end
  local kv = v * rk
  if kv ~= 0 then
    local kname = keyprefix .. name
    t[kname] = (t[kname] or 0) + kv
  end
end

local function scopes(c)
  return {'all', 'm:' .. c.municipality, 'a:' .. c.area}
end

local function apply(fkey, duekey, fam, new, rk)
  local old = redis.call('GET', fkey)
  if (old == false and new == '') or old == new then
    return
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
  -- A family that stays in its area moves the same counts in its three scopes, only
  -- those that differ.
  if oldc ~= nil and newc ~= nil and oldc.area == newc.area
      and oldc.municipality == newc.municipality then
    local diff = {}
    for name, v in pairs(newc.counts) do diff[name] = v - (oldc.counts[name] or 0) end
    for name, v in pairs(oldc.counts) do
      if newc.counts[name] == nil then diff[name] = -v end
    end
    for _, scope in ipairs(scopes(newc)) do
      for name, v in pairs(diff) do
        if v ~= 0 then add(scope, name, v, rk) end
      end
    end
    return
  end
  -- Elsewhere: out of the old scopes, into the new; a scope both share moves by the
  -- difference, as above.
  local d = {}
  local function count(c, sign)
    for _, scope in ipairs(scopes(c)) do
      local s = d[scope]
      if s == nil then
        s = {}
        d[scope] = s
      end
      for name, v in pairs(c.counts) do s[name] = (s[name] or 0) + sign * v end
    end
  end
  if oldc ~= nil then count(oldc, -1) end
  if newc ~= nil then count(newc, 1) end
  for scope, s in pairs(d) do
    for name, v in pairs(s) do
      if v ~= 0 then add(scope, name, v, rk) end
    end
  end
end

for i = 0, (#KEYS - 2) / 2 - 1 do
  apply(KEYS[2 * i + 3], KEYS[2 * i + 4], ARGV[3 * i + 4], ARGV[3 * i + 5], tonumber(ARGV[3 * i + 6]))
end

for _, hash in ipairs(hashes) do
  local keep = kept[hash]
  for field, v in pairs(total[hash]) do
    if v ~= 0 then
      local now_v = redis.call('HINCRBY', hash, field, v)
      if now_v == 0 and not keep[field] then redis.call('HDEL', hash, field) end
    elseif keep[field] then
      redis.call('HINCRBY', hash, field, 0)
    end
  end
end

for _, scope in ipairs(order) do
  redis.call('HSET', updatedkey, scope, now)
end
return order
