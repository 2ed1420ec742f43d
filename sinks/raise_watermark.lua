-- Raise the watermark W; it never moves back. ARGV[1]: a YYYY-MM-DD date.
local cur = redis.call('GET', 'tk:wm')
if cur == false or ARGV[1] > cur then
  redis.call('SET', 'tk:wm', ARGV[1])
  return ARGV[1]
end
return cur
