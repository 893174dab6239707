"""Server-side Lua for ``RedisChannel``: each read-modify-write is one atomic script.

Values graflow encodes (tag ``0x01``/``0x02``) cannot be decoded exactly in Redis'
Lua (its numbers are doubles), so the scripts ask Python to decode them and then
retry with ``expected`` + replacement arguments: a compare-and-set that stays atomic
and only happens once per key (the key is rewritten in the form Lua understands).
"""

from __future__ import annotations

# Numbers as Python reads them (graflow.channels.encoding mirrors these rules).
_NUM = r"""
local function numkind(s)
  if string.find(s, '^[+-]?%d+$') then return 'i' end
  local l = string.lower(s)
  local c = string.sub(l, 1, 1)
  if c == '+' or c == '-' then l = string.sub(l, 2) end
  if l == 'inf' or l == 'infinity' or l == 'nan' then return 'f' end
  if string.find(l, '^%d+%.?%d*$') or string.find(l, '^%d+%.?%d*e[+-]?%d+$')
     or string.find(l, '^%.%d+$') or string.find(l, '^%.%d+e[+-]?%d+$') then
    return 'f'
  end
  return nil
end
local function tonum(s)
  local l = string.lower(s)
  local sign = 1
  local c = string.sub(l, 1, 1)
  if c == '+' or c == '-' then
    if c == '-' then sign = -1 end
    l = string.sub(l, 2)
  end
  if l == 'inf' or l == 'infinity' then return sign * math.huge end
  if l == 'nan' then return 0 / 0 end
  return tonumber(s)
end
-- Shortest text that reads back as exactly r, always marked as a float.
local function fmtfloat(r)
  if r ~= r then return 'nan' end
  if r == math.huge then return 'inf' end
  if r == -math.huge then return '-inf' end
  local s
  for _, p in ipairs({'%.15g', '%.16g', '%.17g'}) do
    s = string.format(p, r)
    if tonumber(s) == r then break end
  end
  if not string.find(s, '[%.e]') then s = s .. '.0' end
  return s
end
"""

# KEYS[1]; ARGV: amount, 'i'|'f' (amount kind), [expected raw, replacement ascii].
# Returns {'i'|'f', text} | {'decode', raw} | {'wrongtype', type} | {'overflow'}.
ATOMIC_ADD = (
    _NUM
    + r"""
local k = KEYS[1]
local t = redis.call('TYPE', k)['ok']
local cur = nil
if t == 'string' then
  cur = redis.call('GET', k)
  if numkind(cur) == nil then
    if ARGV[3] ~= nil and ARGV[3] == cur then
      cur = ARGV[4]
      redis.call('SET', k, cur, 'KEEPTTL')
    else
      return {'decode', cur}
    end
  end
elseif t ~= 'none' then
  return {'wrongtype', t}
end
local ck = 'i'
if cur ~= nil then ck = numkind(cur) end
if ck == 'i' and ARGV[2] == 'i' then
  local res = redis.pcall('INCRBY', k, ARGV[1])
  if type(res) == 'table' and res['err'] then
    -- forms Redis does not parse ('+5', '007'): exact in doubles below 2^53
    if cur ~= nil and #cur <= 16 and #ARGV[1] <= 16 then
      local r = tonum(cur) + tonum(ARGV[1])
      if math.abs(r) < 9007199254740992 then
        local s = string.format('%.0f', r)
        redis.call('SET', k, s, 'KEEPTTL')
        return {'i', s}
      end
    end
    return {'overflow'}
  end
  return {'i', redis.call('GET', k)}
end
local base = 0
if cur ~= nil then base = tonum(cur) end
local s = fmtfloat(base + tonum(ARGV[1]))
redis.call('SET', k, s, 'KEEPTTL')
return {'f', s}
"""
)

# KEYS[1]; ARGV: 'r'|'l', ttl ms or '', new element, [expected raw, converted elements...].
# Returns {'ok', length} | {'convert', raw} | {'wrongtype', type}.
PUSH = r"""
local k = KEYS[1]
local t = redis.call('TYPE', k)['ok']
local keep = -1
if t == 'string' then
  local cur = redis.call('GET', k)
  if ARGV[4] == nil or ARGV[4] ~= cur then return {'convert', cur} end
  keep = redis.call('PTTL', k)
  redis.call('DEL', k)
  for i = 5, #ARGV, 1000 do
    redis.call('RPUSH', k, unpack(ARGV, i, math.min(i + 999, #ARGV)))
  end
elseif t ~= 'none' and t ~= 'list' then
  return {'wrongtype', t}
end
local n
if ARGV[1] == 'l' then n = redis.call('LPUSH', k, ARGV[3]) else n = redis.call('RPUSH', k, ARGV[3]) end
if ARGV[2] ~= '' then
  redis.call('PEXPIRE', k, ARGV[2])
elseif keep > 0 then
  redis.call('PEXPIRE', k, keep)
end
return {'ok', tostring(n)}
"""

# KEYS[1] -> {'s', value} | {'l', elements...} | {'n'} | {'x', type}: one round trip,
# and a key cannot change type between looking and reading.
GET = r"""
local k = KEYS[1]
local t = redis.call('TYPE', k)['ok']
if t == 'string' then return {'s', redis.call('GET', k)} end
if t == 'list' then
  local r = redis.call('LRANGE', k, 0, -1)
  table.insert(r, 1, 'l')
  return r
end
if t == 'none' then return {'n'} end
return {'x', t}
"""
