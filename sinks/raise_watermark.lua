-- Raise the watermark W (it never moves back) and lower the first day of data.
-- KEYS: [1] the watermark key (keys.WATERMARK), [2] the first day key (keys.FIRST_DAY).
-- ARGV: [1] the latest YYYY-MM-DD date of a batch, [2] its earliest.
local cur = redis.call('GET', KEYS[1])
local first = redis.call('GET', KEYS[2])
if first == false or ARGV[2] < first then
  redis.call('SET', KEYS[2], ARGV[2])
end
if cur == false or ARGV[1] > cur then
  redis.call('SET', KEYS[1], ARGV[1])
  return ARGV[1]
end
return cur
