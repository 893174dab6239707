"""What a live pooled run reads never expires; its TTLs start counting when it ends.

A run's session, dynamic-task and channel keys carry no TTL until the run's end step
(``scripts.finish`` and ``SessionStore.expire_all``). The graph is shared by every run
of one definition and workers cache it, so a sliding TTL refreshed on load is not
enough: a run longer than ``GRAFLOW_GRAPH_TTL`` whose workers all hit their cache would
lose it. So each live run is listed in ``keys.live_runs(P)`` (session id -> graph hash),
written in the transaction that creates (or resumes) the session, and the graph of a
listed run has no TTL. The run's end removes its entry and gives the graph its TTL, unless
another listed run still uses it (one atomic script). The reaper's occasional ``sweep``
repairs what a crash between a run's end and that release left behind.
"""

from __future__ import annotations

import time
from typing import Any

from graflow import keys
from graflow.redisconn import registered_script

#: Seconds between two sweeps of one prefix's live-run list (the lock is the rate limit).
SWEEP_EVERY = 60.0

# The run index (KEYS[2], KEYS[3]). ``expire_index`` drops the runs whose keys have expired
# (at most 200 per call: the next call takes the rest), then, given a session and its keys'
# TTL, records when that ended run's keys expire. ``settle_ttl``: with no live run left
# (KEYS[1] empty), both sets expire with the last run they list, so an idle prefix keeps
# nothing; a new run takes the TTL off (``register``).
_INDEX = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function settle_ttl()
  if redis.call('HLEN', KEYS[1]) > 0 then return end
  local last = redis.call('ZREVRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  if #last == 0 then
    if redis.call('ZCARD', KEYS[2]) == 0 then redis.call('DEL', KEYS[2], KEYS[3]) end
    return
  end
  local ttl = math.ceil(tonumber(last[2]) - now) + 1
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('EXPIRE', KEYS[3], ttl)
end
local function expire_index(session, ttl)
  local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 200)
  if #gone > 0 then
    redis.call('ZREM', KEYS[2], unpack(gone))
    redis.call('ZREM', KEYS[3], unpack(gone))
  end
  if session and redis.call('ZSCORE', KEYS[2], session) then
    redis.call('ZADD', KEYS[3], now + tonumber(ttl), session)
  end
end
"""

# KEYS: the live-run hash, the run index, its expiry; ARGV: session id, graph key head
# ("P:graph:"), graph TTL, session TTL. Returns 0 (not listed), 1 (graph still used by
# another live run) or 2 (TTL started).
_RELEASE = _INDEX + r"""
expire_index(ARGV[1], ARGV[4])
local h = redis.call('HGET', KEYS[1], ARGV[1])
if not h then
  settle_ttl()
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
settle_ttl()
for _, other in ipairs(redis.call('HVALS', KEYS[1])) do
  if other == h then return 1 end
end
redis.call('EXPIRE', ARGV[2] .. h, tonumber(ARGV[3]))
return 2
"""

# KEYS: the live-run hash, the run index, its expiry; ARGV: session root head
# ("P:session:{") and tail ("}"), graph key head, graph TTL, session TTL. Releases listed
# runs that ended or vanished; takes the TTL off graphs of runs still live. Returns the
# number of runs released.
_SWEEP = _INDEX + r"""
local FINAL = {completed = true, failed = true, canceled = true, terminated = true}
local entries = redis.call('HGETALL', KEYS[1])
local live, stale = {}, {}
for i = 1, #entries, 2 do
  local state = redis.call('HGET', ARGV[1] .. entries[i] .. ARGV[2], 'state')
  if state and not FINAL[state] then live[entries[i + 1]] = true else table.insert(stale, i) end
end
expire_index(nil, 0)
for _, i in ipairs(stale) do
  redis.call('HDEL', KEYS[1], entries[i])
  expire_index(entries[i], ARGV[5])
end
settle_ttl()
for h, _ in pairs(live) do redis.call('PERSIST', ARGV[3] .. h) end
for _, i in ipairs(stale) do
  local h = entries[i + 1]
  if not live[h] then redis.call('EXPIRE', ARGV[3] .. h, tonumber(ARGV[4])) end
end
return #stale
"""

def _keys(prefix: str) -> list[str]:
    return [keys.live_runs(prefix), keys.run_index(prefix), keys.run_expiry(prefix)]


def register(pipe: Any, prefix: str, session_id: str, graph_hash: str, created_at: float | None = None) -> None:
    """Queue on ``pipe`` (the session's creating transaction) the entry of a live run, the
    removal of its graph's TTL, and its place in the run index (a resumed run keeps its
    creation time and no longer expires)."""
    pipe.hset(keys.live_runs(prefix), session_id, graph_hash)
    pipe.persist(keys.graph(prefix, graph_hash))
    pipe.zadd(keys.run_index(prefix), {session_id: time.time() if created_at is None else created_at}, nx=True)
    pipe.zrem(keys.run_expiry(prefix), session_id)
    pipe.persist(keys.run_index(prefix))  # listed while it runs, however long
    pipe.persist(keys.run_expiry(prefix))


def _session_ttl() -> int:
    from graflow import settings

    return settings.current().session_ttl


def release(client: Any, prefix: str, session_id: str, ttl: int | None = None) -> int:
    """The run ended (or was purged): drop its entry and start its graph's TTL, unless
    another live run uses the same graph; note when the run leaves the run index. Idempotent."""
    from graflow.core.graph_store import graph_ttl

    ttl = graph_ttl() if ttl is None else ttl
    args = [session_id, keys.graph(prefix, ""), ttl, _session_ttl()]
    return int(registered_script(client, _RELEASE)(keys=_keys(prefix), args=args, client=client))


def forget(client: Any, prefix: str, *session_ids: str) -> None:
    """Take runs whose keys are gone (purged, expired) out of the run index at once."""
    pipe = client.pipeline(transaction=True)
    pipe.zrem(keys.run_index(prefix), *session_ids)
    pipe.zrem(keys.run_expiry(prefix), *session_ids)
    pipe.execute()


def sweep(client: Any, prefix: str, ttl: int | None = None, *, every: float = SWEEP_EVERY) -> int | None:
    """At most once per ``every`` seconds per prefix (None when skipped): release listed
    runs that ended or vanished and keep the graphs of live ones without TTL."""
    from graflow.core.graph_store import graph_ttl

    if not client.set(keys.live_runs_sweep_lock(prefix), b"1", nx=True, px=max(1, int(every * 1000))):
        return None
    ttl = graph_ttl() if ttl is None else ttl
    head, _, tail = keys.SessionKeys(prefix, "\0").root.partition("\0")
    args = [head, tail, keys.graph(prefix, ""), ttl, _session_ttl()]
    return int(registered_script(client, _SWEEP)(keys=_keys(prefix), args=args, client=client))


def prune_index(client: Any, prefix: str) -> None:
    """Drop runs whose keys have expired from the run index (before a listing)."""
    registered_script(client, _INDEX + "expire_index(nil, 0)\nsettle_ttl()")(keys=_keys(prefix), args=[], client=client)


__all__ = ["SWEEP_EVERY", "forget", "prune_index", "register", "release", "sweep"]
