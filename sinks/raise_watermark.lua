-- Raise the watermark W; it never moves back.
-- KEYS[1]: the watermark key (keys.WATERMARK). ARGV[1]: a YYYY-MM-DD date.
local cur = redis.call('GET', KEYS[1])
if cur == false or ARGV[1] > cur then
  redis.call('SET', KEYS[1], ARGV[1])
  return ARGV[1]
end
return cur
