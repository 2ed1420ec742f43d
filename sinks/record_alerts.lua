-- Record trend alerts and the alert state in one atomic step.
-- KEYS: [1] state key, [2] alerts zset, [3] alert-id hash
-- ARGV: [1] state JSON, [2] keep (newest alerts kept), then (id, score, alert JSON)*
-- An id already recorded is skipped, so a replayed tick adds nothing.
-- Returns the number of alerts added.
redis.call('SET', KEYS[1], ARGV[1])
local added = 0
for i = 3, #ARGV, 3 do
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
