"""Server-side steps of a pooled run: each one atomic, each one idempotent.

The scheduling core (``graflow.core.scheduler``) decides in Python what an attempt
means: whether it completes, which successors it offers and with what join
requirement. These scripts only *apply* such a decision to the session state in
Redis, in one step: the done marker (first commit wins), the completion, the
arrival sets, the newly ready activations, branch and group accounting, and the
end of the run. ``KEYS[1]`` is the session root (``P:session:{S}``); other session
keys are derived as ``root .. ':' .. name`` exactly like ``graflow.keys.SessionKeys``.

docs/life-of-a-task.md walks through the steps in order; docs/keys.md lists the keys.
"""

from __future__ import annotations

PRELUDE = r"""
local root = KEYS[1]
local function k(name) return root .. ':' .. name end
local FINAL = {completed = true, failed = true, canceled = true, terminated = true}
local function enc(t) return cjson.encode(t) end
local function event(kind, data)
  local payload = enc(data)
  redis.call('XADD', k('log'), 'MAXLEN', '~', 1000, '*', 'event', kind, 'data', payload)
  redis.call('PUBLISH', k('events'), enc({event = kind, data = data}))
end
local function finish(state, reason, now, ttl)
  redis.call('HSET', root, 'state', state, 'stop_reason', reason, 'updated_at', now, 'finished_at', now)
  local names = {'', ':pending', ':running', ':done', ':completed', ':cycles', ':retries', ':joins',
                 ':known', ':cycled', ':groups', ':handover', ':log', ':dynkeys', ':workers', ':output',
                 ':shape', ':parents', ':checkpoints', ':writes'}
  for _, name in ipairs(names) do redis.call('EXPIRE', root .. name, ttl) end
  for _, t in ipairs(redis.call('SMEMBERS', k('known'))) do redis.call('EXPIRE', k('dyn:' .. t), ttl) end
  for _, name in ipairs(redis.call('SMEMBERS', k('dynkeys'))) do redis.call('EXPIRE', name, ttl) end
  for _, g in ipairs(redis.call('SMEMBERS', k('groups'))) do redis.call('EXPIRE', k('group:' .. g), ttl) end
  event('finished', {state = state, stop_reason = reason})
end
local function snapshot()
  return {
    steps = tonumber(redis.call('HGET', root, 'steps') or '0'),
    completed = redis.call('ZRANGE', k('completed'), 0, -1),
    cycles = redis.call('HGETALL', k('cycles')),
    retries = redis.call('HGETALL', k('retries')),
    joins = redis.call('HGETALL', k('joins')),
    known = redis.call('SMEMBERS', k('known')),
    pending = redis.call('HVALS', k('pending')),
    running = redis.call('HVALS', k('running')),
    state = redis.call('HGET', root, 'state'),
  }
end
-- The session's state while it is live; else nil and the reply that ends this step
-- (an attempt of a finished run leaves :running, nothing else changes).
local function live(spec_id)
  local state = redis.call('HGET', root, 'state')
  if not state then return nil, enc({status = 'missing'}) end
  if FINAL[state] then
    redis.call('HDEL', k('running'), spec_id)
    return nil, enc({status = 'final', state = state})
  end
  return state, nil
end
-- Another attempt of this activation owns it: one started after this one, or a redelivery
-- waiting to run. Steps of a late attempt (a worker that stalled past its lease) are
-- refused, as its channel writes are (graflow.channels.fenced): one owner's effects only.
local function attempt_of(raw)
  if not raw then return nil end
  local ok, doc = pcall(cjson.decode, raw)
  if not ok or type(doc) ~= 'table' then return nil end
  return tonumber(doc.attempt or 1)
end
local function superseded(spec_id, attempt)
  local r = attempt_of(redis.call('HGET', k('running'), spec_id))
  if r then return r ~= attempt end
  local p = attempt_of(redis.call('HGET', k('pending'), spec_id))
  return p ~= nil and p > attempt
end
local function handover_of(spec_id)
  local out = {}
  local ho = redis.call('HGET', k('handover'), spec_id)
  if ho then
    for _, id in ipairs(cjson.decode(ho)) do
      local sp = redis.call('HGET', k('pending'), id)
      if sp then table.insert(out, sp) end
    end
  end
  return out
end
-- Branch bookkeeping of a parallel group run: returns the finalizer spec when the
-- last branch has just finished.
local function branch_done(run, branch, outcome, finalize)
  local g = k('group:' .. run)
  if redis.call('HEXISTS', g, 'closed:' .. branch) == 1 then return nil end
  redis.call('HSET', g, 'closed:' .. branch, 1, 'res:' .. branch, outcome)
  local fin = redis.call('HINCRBY', g, 'finished', 1)
  if fin >= tonumber(redis.call('HGET', g, 'branches')) then
    -- ``finalize`` is cjson.null (truthy userdata, not nil) for producer-driven groups:
    -- their producer waits on the group's own channel (SessionKeys.group_done).
    if finalize and finalize ~= cjson.null then
      redis.call('HSET', k('pending'), finalize[1], finalize[2])
      return finalize[2]
    end
    redis.call('PUBLISH', g .. ':done', fin)
  end
  return nil
end
"""

# ARGV: spec_id, worker, attempt, now, base_id, count_cycle ("1"/"0")
START = PRELUDE + r"""
local spec_id, worker, attempt, now, base, count = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local state = redis.call('HGET', root, 'state')
if not state then return enc({status = 'missing'}) end
if FINAL[state] then return enc({status = 'final', state = state}) end
if redis.call('HEXISTS', k('done'), spec_id) == 1 then
  redis.call('HDEL', k('pending'), spec_id)  -- a redelivery of a completed activation: moot
  return enc({status = 'dup', enqueue = handover_of(spec_id)})
end
local later = math.max(attempt_of(redis.call('HGET', k('running'), spec_id)) or 0,
                      attempt_of(redis.call('HGET', k('pending'), spec_id)) or 0)
if later > tonumber(attempt) then
  return enc({status = 'superseded'})  -- a late start of an attempt redelivered meanwhile
end
local sp = redis.call('HGET', k('pending'), spec_id)
redis.call('HDEL', k('pending'), spec_id)
redis.call('HSET', k('running'), spec_id, enc({worker = worker, attempt = tonumber(attempt),
                                              started_at = tonumber(now), spec = sp or cjson.null}))
if state == 'queued' then redis.call('HSET', root, 'state', 'running', 'started_at', now) end
redis.call('HINCRBY', k('workers'), worker, 1)
redis.call('HSET', root, 'updated_at', now)  -- a start changes the run (state, running count)
local cycles
if count == '1' and redis.call('HSETNX', k('cycled'), spec_id, 1) == 1 then
  cycles = redis.call('HINCRBY', k('cycles'), base, 1)
else
  cycles = tonumber(redis.call('HGET', k('cycles'), base) or '0')
end
local retries = tonumber(redis.call('HGET', k('retries'), base) or '0')
local task_id = cjson.null  -- named in the event, so `graflow status` shows what started
if sp then
  local ok, doc = pcall(cjson.decode, sp)
  if ok and type(doc) == 'table' and doc.task_id then task_id = doc.task_id end
end
event('started', {task_id = task_id, spec_id = spec_id, worker = worker, attempt = tonumber(attempt)})
local meta = redis.call('HMGET', root, 'max_steps', 'default_max_cycles', 'default_max_retries',
                        'steps', 'trace_id', 'start_node', 'graph_hash', 'workflow_name', 'queue',
                        'traceparent')
return enc({status = 'ok', cycles = cycles, retries = retries, meta = {
  max_steps = meta[1], default_max_cycles = meta[2], default_max_retries = meta[3], steps = meta[4],
  trace_id = meta[5], start_node = meta[6], graph_hash = meta[7], workflow_name = meta[8],
  queue = meta[9], traceparent = meta[10]}})
"""

# ARGV[1]: the control document (JSON); ARGV[2..]: binary values it refers to by index.
COMMIT = PRELUDE + r"""
local c = cjson.decode(ARGV[1])
local state = redis.call('HGET', root, 'state')
if not state then return enc({status = 'missing'}) end
local reason = redis.call('HGET', root, 'stop_reason')
local late = FINAL[state] and reason == 'max_steps'
if FINAL[state] and not late then
  redis.call('HDEL', k('running'), c.spec_id)
  return enc({status = 'final', state = state})
end
if redis.call('HEXISTS', k('done'), c.spec_id) == 1 then
  return enc({status = 'dup', enqueue = handover_of(c.spec_id)})
end
if not late and superseded(c.spec_id, c.attempt) then return enc({status = 'superseded'}) end
redis.call('HSETNX', k('done'), c.spec_id, c.attempt)
redis.call('HDEL', k('running'), c.spec_id)
-- A redelivery of this activation waiting to run (its first attempt, thought lost, finished
-- first) is moot: dropped in this step, so the run's end below does not wait for it.
redis.call('HDEL', k('pending'), c.spec_id)
redis.call('HSET', root, 'updated_at', c.now)
if c.verdict == 'cancel' and c.branch == cjson.null then
  redis.call('HSET', root, 'error', c.message, 'failed_task', c.cancel_task, 'error_type', 'GraflowWorkflowCanceledError')
  finish('canceled', 'cancel_workflow', c.now, c.ttl)
  return enc({status = 'finished', state = 'canceled'})
end
for _, r in ipairs(c.results) do redis.call('SET', r[1], ARGV[r[2] + 1]) end
if c.record then
  local n = redis.call('HINCRBY', root, 'seq', 1)
  redis.call('ZADD', k('completed'), 'NX', n, c.task_id)
  redis.call('HINCRBY', root, 'steps', 1)
  redis.call('HSET', root, 'last_task', c.task_id)
end
local ready = {}
-- Activations the task scheduled come first, in call order; then static successors.
for _, d in ipairs(c.dynamic) do
  redis.call('SADD', k('known'), d[1])
  redis.call('HSET', k('parents'), d[1], c.task_id)
  if d[4] > 0 then
    redis.call('SET', k('dyn:' .. d[1]), ARGV[d[4] + 1])
    local versioned = k('dyn:' .. d[1] .. '@' .. d[5])
    redis.call('SET', versioned, ARGV[d[4] + 1])
    redis.call('SADD', k('dynkeys'), versioned)
  end
  redis.call('HDEL', k('joins'), d[1])
  table.insert(ready, {d[3], d[2]})
end
for _, o in ipairs(c.offers) do
  local target, needed, ok = o[1], o[2], false
  if needed == cjson.null or needed == false then
    redis.call('HDEL', k('joins'), target)
    ok = true
  elseif #needed == 1 then
    ok = true
  else
    local cur = redis.call('HGET', k('joins'), target)
    local arr = cur and cjson.decode(cur) or {}
    local seen = {}
    for _, a in ipairs(arr) do seen[a] = true end
    if not seen[c.pred] then table.insert(arr, c.pred); seen[c.pred] = true end
    ok = true
    for _, need in ipairs(needed) do if not seen[need] then ok = false; break end end
    if ok then redis.call('HDEL', k('joins'), target) else redis.call('HSET', k('joins'), target, enc(arr)) end
  end
  if ok then table.insert(ready, {o[4], o[3]}) end
end
for _, r in ipairs(ready) do redis.call('HSET', k('pending'), r[1], r[2]) end
local enqueue = {}
for _, r in ipairs(ready) do table.insert(enqueue, r[2]) end
if c.branch ~= cjson.null then
  local g = k('group:' .. c.branch[1])
  if c.verdict ~= 'complete' and redis.call('HEXISTS', g, 'end') == 0 then
    redis.call('HSET', g, 'end', enc({c.verdict, c.cancel_task, c.message}))
  end
  if c.request ~= cjson.null then
    local cur = redis.call('HGET', g, 'requests')
    local arr = cur and cjson.decode(cur) or {}
    table.insert(arr, c.request)
    redis.call('HSET', g, 'requests', enc(arr))
  end
  if redis.call('HEXISTS', g, 'closed:' .. c.branch[2]) == 0 then
    local left = redis.call('HINCRBY', g, 'out:' .. c.branch[2], #ready - 1)
    if left <= 0 then
      local fin = branch_done(c.branch[1], c.branch[2], 'ok', c.finalize)
      if fin then table.insert(enqueue, fin) end
    end
  end
end
if #enqueue > 0 then
  local ids = {}
  for _, r in ipairs(ready) do table.insert(ids, r[1]) end
  if c.finalize ~= cjson.null then table.insert(ids, c.finalize[1]) end
  redis.call('HSET', k('handover'), c.spec_id, enc(ids))
end
event('completed', {task_id = c.task_id, spec_id = c.spec_id, attempt = c.attempt, ready = #enqueue})
local snap = cjson.null
if c.snapshot then
  snap = snapshot()
  -- The worker writes the checkpoint after this step; until it has (or has failed),
  -- WorkflowRun.wait() does not report the run as over (see pool_checkpoint.py).
  redis.call('HSET', root, 'checkpointing', c.now)
  -- What to write, kept until it is written: if this worker dies first, the attempt's
  -- redelivery writes it (failover.redeliver), so wait() does not hang on the flag.
  if type(c.checkpoint) == 'string' then redis.call('HSET', root, 'checkpoint_request', c.checkpoint) end
end
if late then return enc({status = 'final', state = state, snapshot = snap}) end
if c.verdict == 'terminate' and c.branch == cjson.null then
  finish('terminated', 'terminate_workflow', c.now, c.ttl)
  return enc({status = 'finished', state = 'terminated', snapshot = snap})
end
local steps = tonumber(redis.call('HGET', root, 'steps') or '0')
local max = tonumber(redis.call('HGET', root, 'max_steps') or '0')
local pending = redis.call('HLEN', k('pending'))
if steps >= max and pending > 0 then
  finish('terminated', 'max_steps', c.now, c.ttl)
  return enc({status = 'finished', state = 'terminated', snapshot = snap})
end
if pending == 0 and redis.call('HLEN', k('running')) == 0 then
  finish('completed', 'drained', c.now, c.ttl)
  return enc({status = 'finished', state = 'completed', snapshot = snap})
end
return enc({status = 'ok', enqueue = enqueue, snapshot = snap})
"""

# ARGV[1]: {spec_id, attempt, task_id, base_id, mode, retry, error, branch, finalize, now, ttl}
FAIL = PRELUDE + r"""
local c = cjson.decode(ARGV[1])
local state, stop = live(c.spec_id)
if stop then return stop end
-- Completed already (a poison verdict or a failure racing a commit): re-drive its hand-over.
if redis.call('HEXISTS', k('done'), c.spec_id) == 1 then return enc({status = 'dup', enqueue = handover_of(c.spec_id)}) end
if superseded(c.spec_id, c.attempt) then return enc({status = 'superseded'}) end
redis.call('HDEL', k('running'), c.spec_id)
-- An activation that never started (its worker could not load the task) is still pending.
redis.call('HDEL', k('pending'), c.spec_id)
redis.call('HSET', root, 'updated_at', c.now)
if c.mode == 'retry' then
  redis.call('HINCRBY', k('retries'), c.base_id, 1)
  redis.call('HSET', k('pending'), c.retry_id, c.retry)
  event('retried', {task_id = c.task_id, spec_id = c.spec_id, attempt = c.attempt, error = c.error.message})
  return enc({status = 'retry'})
end
redis.call('HSETNX', k('done'), c.spec_id, 'failed')
event('failed', {task_id = c.task_id, spec_id = c.spec_id, attempt = c.attempt, error = c.error.message})
if c.branch ~= cjson.null then
  -- A failed branch is over; the group's policy decides once every branch is.
  local fin = branch_done(c.branch[1], c.branch[2], 'fail:' .. c.error.type .. ': ' .. c.error.message, c.finalize)
  if fin then return enc({status = 'ok', enqueue = {fin}}) end
  return enc({status = 'ok', enqueue = {}})
end
redis.call('HSET', root, 'error', c.error.message, 'error_type', c.error.type,
           'failed_task', c.task_id, 'traceback', c.error.traceback)
if c.error.blob > 0 then redis.call('HSET', root, 'error_blob', ARGV[c.error.blob + 1]) end
finish('failed', c.stop_reason, c.now, c.ttl)
return enc({status = 'finished', state = 'failed'})
"""

# ARGV[1]: {spec_id, attempt, group_id, run, members: [[member, spec_id, json]], parent, spec, now}
GROUP_START = PRELUDE + r"""
local c = cjson.decode(ARGV[1])
local state, stop = live(c.spec_id)
if stop then return stop end
local g = k('group:' .. c.run)
if redis.call('EXISTS', g) == 1 then
  -- Started before (a redelivery): the members that run made ready and that have not
  -- started yet, by the spec ids it recorded (this call's own ids are new).
  local out = {}
  for _, id in ipairs(cjson.decode(redis.call('HGET', g, 'member_specs') or '[]')) do
    local sp = redis.call('HGET', k('pending'), id)
    if sp then table.insert(out, sp) end
  end
  redis.call('HDEL', k('running'), c.spec_id)
  return enc({status = 'dup', enqueue = out})
end
redis.call('HDEL', k('running'), c.spec_id)
redis.call('HSET', g, 'group_id', c.group_id, 'branches', #c.members, 'finished', 0,
           'spec', c.spec, 'parent', enc(c.parent), 'driver', c.driver)
redis.call('SADD', k('groups'), c.run)
local out, ids = {}, {}
for _, m in ipairs(c.members) do
  redis.call('HSET', g, 'out:' .. m[1], 1)
  redis.call('HSET', k('pending'), m[2], m[3])
  table.insert(out, m[3])
  table.insert(ids, m[2])
end
redis.call('HSET', g, 'member_specs', enc(ids))
event('group_started', {group_id = c.group_id, run = c.run, branches = #c.members})
return enc({status = 'ok', enqueue = out})
"""

# ARGV[1]: {spec_id, attempt, spec, worker, now, [unrunnable: {task_id, error}]}: a lost (or
# unrunnable) attempt's activation back to pending.
REDELIVER = PRELUDE + r"""
local c = cjson.decode(ARGV[1])
-- A deferred checkpoint not written yet, whose writer may be the lost attempt (the caller
-- compares the spec id in it): returned with 'final' and 'done'.
local function unwritten()
  if redis.call('HEXISTS', root, 'checkpointing') == 0 then return cjson.null end
  return redis.call('HGET', root, 'checkpoint_request') or cjson.null
end
local state, stop = live(c.spec_id)
if stop then
  local ck = unwritten()
  if ck == cjson.null then return stop end
  local out = cjson.decode(stop)
  out.checkpoint = ck
  return enc(out)
end
if redis.call('HEXISTS', k('done'), c.spec_id) == 1 then
  return enc({status = 'done', enqueue = handover_of(c.spec_id), checkpoint = unwritten()})
end
local p = redis.call('HGET', k('pending'), c.spec_id)
if (attempt_of(p) or 0) > c.attempt then return enc({status = 'requeued', enqueue = {p}}) end
if (attempt_of(redis.call('HGET', k('running'), c.spec_id)) or 0) > c.attempt then
  return enc({status = 'superseded'})
end
redis.call('HDEL', k('running'), c.spec_id)
redis.call('HSET', k('pending'), c.spec_id, c.spec)
redis.call('HSET', root, 'updated_at', c.now)
if type(c.unrunnable) == 'table' then
  -- Not lost: the worker could not load the task's code (TaskUnrunnableError); another may.
  event('unrunnable', {task_id = c.unrunnable.task_id, spec_id = c.spec_id, attempt = c.attempt,
                       worker = c.worker, error = c.unrunnable.error, next_attempt = c.attempt + 1})
else
  local ok, doc = pcall(cjson.decode, c.spec)
  local task_id = (ok and type(doc) == 'table' and doc.task_id) or cjson.null
  event('redelivered', {task_id = task_id, spec_id = c.spec_id, attempt = c.attempt + 1, lost_worker = c.worker})
end
return enc({status = 'ok', enqueue = {c.spec}})
"""

# ARGV: state, stop_reason, message, now, ttl, [fields JSON], [error blob], [force]
# (run-level end from outside a task). The optional fields (error_type, failed_task…) and
# error blob are written only if this ends the run. ``force`` = "1" also ends a run that is
# already final: only the worker whose own step just finished it uses it (a deferred
# checkpoint that could not be written fails the run, see docs/checkpoints.md).
END_RUN = PRELUDE + r"""
local state = redis.call('HGET', root, 'state')
if not state then return enc({status = 'missing'}) end
if FINAL[state] and ARGV[8] ~= '1' then return enc({status = 'final', state = state}) end
if ARGV[3] ~= '' then redis.call('HSET', root, 'error', ARGV[3]) end
if ARGV[6] and ARGV[6] ~= '' then
  for f, v in pairs(cjson.decode(ARGV[6])) do redis.call('HSET', root, f, v) end
end
if ARGV[7] and ARGV[7] ~= '' then redis.call('HSET', root, 'error_blob', ARGV[7]) end
local pending = redis.call('HVALS', k('pending'))
finish(ARGV[1], ARGV[2], ARGV[4], tonumber(ARGV[5]))
return enc({status = 'finished', state = ARGV[1], pending = pending})
"""

# A checkpoint of the session was written: ARGV[1] its location, ARGV[2..] fields to clear
# (a deferred request's markers). Nothing for a session that is gone (expired after it
# ended): a late writer must not bring its hash back without a TTL.
NOTE_CHECKPOINT = PRELUDE + r"""
if redis.call('EXISTS', root) == 0 then return enc({status = 'missing'}) end
redis.call('HSET', root, 'last_checkpoint', ARGV[1])
local t = redis.call('TIME')
redis.call('HSET', k('checkpoints'), ARGV[1], enc({time = tonumber(t[1]) + tonumber(t[2]) / 1e6,
                                                   steps = tonumber(redis.call('HGET', root, 'steps') or '0')}))
-- A checkpoint deferred past the run's end: the list takes the run's remaining TTL.
local left = redis.call('PTTL', root)
if left > 0 then redis.call('PEXPIRE', k('checkpoints'), left) end
event('checkpoint', {location = ARGV[1]})
if #ARGV > 1 then redis.call('HDEL', root, unpack(ARGV, 2)) end
return enc({status = 'ok'})
"""

__all__ = ["COMMIT", "END_RUN", "FAIL", "GROUP_START", "NOTE_CHECKPOINT", "REDELIVER", "START"]
