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

# -- fenced writes (graflow.channels.fenced) -------------------------------------------
#: Session states of a run that is over; mirrors graflow.distributed.session.FINAL_STATES
#: (a test keeps the two equal; channels may not import the pool driver).
FINAL_STATES = ("completed", "failed", "canceled", "terminated")

# The first step of every write of an attempt-bound channel. The owner token rides at the
# end of KEYS (the session's running hash, then its root hash) and of ARGV (spec id,
# attempt); it is popped off, so the body that follows sees the KEYS and ARGV of its
# unfenced form. The attempt owns its task while the running entry the session's START
# step wrote for the spec id names this attempt (a completion and a redelivery delete the
# entry, the next attempt's START replaces it), else {'superseded', 'lost'}; and it may
# write while the run is not over (an end leaves the entries of running attempts in
# place) and its session exists (not expired, purged or lost with a Redis restarted
# without persistence), else {'superseded', 'ended'}. Either way nothing is written.
FENCE = (
    "local FINAL = {"
    + ", ".join(f"{s} = true" for s in FINAL_STATES)
    + "}\n"
    + r"""
local fence_attempt = tonumber(table.remove(ARGV))
local fence_spec = table.remove(ARGV)
local fence_root = table.remove(KEYS)
local fence_running = table.remove(KEYS)
local fence_state = redis.call('HGET', fence_root, 'state')
if not fence_state then return {'superseded', 'ended'} end
local fence_entry = redis.call('HGET', fence_running, fence_spec)
if not fence_entry then return {'superseded', 'lost'} end
local fence_ok, fence_doc = pcall(cjson.decode, fence_entry)
if not fence_ok or type(fence_doc) ~= 'table' or tonumber(fence_doc.attempt) ~= fence_attempt then
  return {'superseded', 'lost'}
end
if FINAL[fence_state] then return {'superseded', 'ended'} end
"""
)

# KEYS[1]; ARGV: value, ttl ms or ''. SET replaces a key of any type, as the unfenced SET.
FENCED_SET = FENCE + r"""
if ARGV[2] == '' then redis.call('SET', KEYS[1], ARGV[1]) else redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return {'ok'}
"""

# KEYS: the channel keys to delete (one for delete(), a batch for clear()).
FENCED_UNLINK = FENCE + r"""
return {'ok', redis.call('UNLINK', unpack(KEYS))}
"""

# KEYS[1] the lock; ARGV: token, lease ms or '' (what redis-py's Lock.do_acquire sends).
FENCED_LOCK = FENCE + r"""
local got
if ARGV[2] == '' then got = redis.call('SET', KEYS[1], ARGV[1], 'NX')
else got = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) end
if got then return {'ok', 1} end
return {'ok', 0}
"""

FENCED_PUSH = FENCE + PUSH
FENCED_ADD = FENCE + ATOMIC_ADD
