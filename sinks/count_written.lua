-- Count one applied batch for each family-topic partition of a transaction
-- (keys.WRITTEN; streams/restore.py compares the counts with the answers).
-- A script, and loaded after the others (redis_sink.py): Redis runs the other commands
-- of a transaction whose EVALSHA fails on NOSCRIPT, so a plain HINCRBY in a transaction
-- sent to a restarted Redis counted the failed attempt as well as the one sent again,
-- and a count that skips past the answers it should repeat hides a loss.
-- KEYS: [1] keys.WRITTEN. ARGV: the partitions. Returns their new counts in order.
local out = {}
for i, p in ipairs(ARGV) do
  out[i] = redis.call('HINCRBY', KEYS[1], p, 1)
end
return out
