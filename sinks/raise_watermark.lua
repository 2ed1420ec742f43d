-- Raise the watermark W (it never moves back), lower the first day of data and the
-- day the registers went live.
-- KEYS: [1] the watermark key (keys.WATERMARK), [2] the first day key (keys.FIRST_DAY),
--       [3] the live-from key (keys.LIVE_FROM).
-- ARGV: [1] the latest YYYY-MM-DD date of a batch, [2] its earliest, [3] its earliest
--       recorded_at day ("" for none).
local cur = redis.call('GET', KEYS[1])
local first = redis.call('GET', KEYS[2])
if first == false or ARGV[2] < first then
  redis.call('SET', KEYS[2], ARGV[2])
end
if ARGV[3] ~= '' then
  local live = redis.call('GET', KEYS[3])
  if live == false or ARGV[3] < live then
    redis.call('SET', KEYS[3], ARGV[3])
  end
end
if cur == false or ARGV[1] > cur then
  redis.call('SET', KEYS[1], ARGV[1])
  return ARGV[1]
end
return cur
