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

import threading
from typing import Any

from graflow import keys

#: Seconds between two sweeps of one prefix's live-run list (the lock is the rate limit).
SWEEP_EVERY = 60.0

# KEYS[1]: the live-run hash; ARGV: session id, graph key head ("P:graph:"), graph TTL.
# Returns 0 (not listed), 1 (graph still used by another live run) or 2 (TTL started).
_RELEASE = r"""
local h = redis.call('HGET', KEYS[1], ARGV[1])
if not h then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
for _, other in ipairs(redis.call('HVALS', KEYS[1])) do
  if other == h then return 1 end
end
redis.call('EXPIRE', ARGV[2] .. h, tonumber(ARGV[3]))
return 2
"""

# KEYS[1]: the live-run hash; ARGV: session root head ("P:session:{") and tail ("}"),
# graph key head, graph TTL. Releases listed runs that ended or vanished; takes the TTL
# off graphs of runs still live. Returns the number of runs released.
_SWEEP = r"""
local FINAL = {completed = true, failed = true, canceled = true, terminated = true}
local entries = redis.call('HGETALL', KEYS[1])
local live, stale = {}, {}
for i = 1, #entries, 2 do
  local state = redis.call('HGET', ARGV[1] .. entries[i] .. ARGV[2], 'state')
  if state and not FINAL[state] then live[entries[i + 1]] = true else table.insert(stale, i) end
end
for _, i in ipairs(stale) do redis.call('HDEL', KEYS[1], entries[i]) end
for h, _ in pairs(live) do redis.call('PERSIST', ARGV[3] .. h) end
for _, i in ipairs(stale) do
  local h = entries[i + 1]
  if not live[h] then redis.call('EXPIRE', ARGV[3] .. h, tonumber(ARGV[4])) end
end
return #stale
"""

_scripts: dict[str, Any] = {}
_lock = threading.Lock()


def _script(client: Any, source: str) -> Any:
    """The registered script (called with ``client=`` each time, like ``session._script``)."""
    with _lock:
        script = _scripts.get(source)
        if script is None:
            script = _scripts[source] = client.register_script(source)
    return script


def register(pipe: Any, prefix: str, session_id: str, graph_hash: str) -> None:
    """Queue on ``pipe`` (the session's creating transaction) the entry of a live run and
    the removal of its graph's TTL."""
    pipe.hset(keys.live_runs(prefix), session_id, graph_hash)
    pipe.persist(keys.graph(prefix, graph_hash))


def release(client: Any, prefix: str, session_id: str, ttl: int | None = None) -> int:
    """The run ended (or was purged): drop its entry and start its graph's TTL, unless
    another live run uses the same graph. Idempotent."""
    from graflow.core.graph_store import graph_ttl

    ttl = graph_ttl() if ttl is None else ttl
    args = [session_id, keys.graph(prefix, ""), ttl]
    return int(_script(client, _RELEASE)(keys=[keys.live_runs(prefix)], args=args, client=client))


def sweep(client: Any, prefix: str, ttl: int | None = None, *, every: float = SWEEP_EVERY) -> int | None:
    """At most once per ``every`` seconds per prefix (None when skipped): release listed
    runs that ended or vanished and keep the graphs of live ones without TTL."""
    from graflow.core.graph_store import graph_ttl

    if not client.set(keys.live_runs_sweep_lock(prefix), b"1", nx=True, px=max(1, int(every * 1000))):
        return None
    ttl = graph_ttl() if ttl is None else ttl
    head, _, tail = keys.SessionKeys(prefix, "\0").root.partition("\0")
    args = [head, tail, keys.graph(prefix, ""), ttl]
    return int(_script(client, _SWEEP)(keys=[keys.live_runs(prefix)], args=args, client=client))


__all__ = ["SWEEP_EVERY", "register", "release", "sweep"]
