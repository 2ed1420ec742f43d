-- Record a tick of shift detection in one atomic step: the detector's state, the
-- published values of the days it detected on, and the alerts raised.
-- KEYS: [1] state key, [2] alerts zset, [3] alert-id hash, [4] shown-values hash
-- ARGV: [1] state JSON, [2] keep (newest alerts kept), [3] n days, then (day, values
--       JSON) * n, then (id, score, alert JSON)*
-- An id already recorded is skipped, so a replayed tick adds nothing.
-- Returns the number of alerts added.
redis.call('SET', KEYS[1], ARGV[1])
local days = tonumber(ARGV[3])
for i = 4, 3 + 2 * days, 2 do
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
end
local added = 0
for i = 4 + 2 * days, #ARGV, 3 do
  if redis.call('HSETNX', KEYS[3], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('ZADD', KEYS[2], ARGV[i + 1], ARGV[i + 2])
    added = added + 1
  end
end
local keep = tonumber(ARGV[2])
local n = redis.call('ZCARD', KEYS[2])
if n > keep then
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - keep - 1)
end
return added
