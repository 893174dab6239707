"""Which channel keys each task of a pooled run wrote (``P:session:{S}:writes``, docs/keys.md).

Why: a run's dashboard shows, for a task, the channel keys it wrote. The attempt-bound
channel notes them in memory (``graflow.channels.written``); ``record_writes`` sends one
attempt's keys in one round trip, none when it wrote nothing. The script merges them into
the task's entry (a JSON list: keys in the order first written, by all of the task's
attempts), so concurrent attempts of other tasks, or a retry of the same one, never lose
an update. At most ``WRITTEN_KEYS_CAP`` keys per task, then ``MORE`` as the last item.

The engine's own writes are not listed: a completion's result goes with its commit,
not through the channel, and the exception a failed task leaves as its result is left
out (``WrittenKeys.unnoted``). As ``run_output``, the script gives the hash the session's
remaining TTL when the session has one (an attempt may end after the run did) and writes
nothing for a session that is gone, so the key never outlives its run.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from graflow import keys
from graflow.defaults import WRITTEN_KEYS_CAP
from graflow.redisconn import as_text, registered_script

__all__ = ["MORE", "RECORD", "flush_writes", "record_writes", "task_writes"]

logger = logging.getLogger("graflow.worker")

#: The last item of a task's list when it wrote more keys than are kept.
MORE = "…"

# KEYS: session root, writes hash. ARGV: task id, cap, marker, JSON list of new keys,
# "1" when more were written than sent. Returns the task's entries now (-1: no session).
RECORD = r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local cap, marker = tonumber(ARGV[2]), ARGV[3]
local list, seen, more = {}, {}, ARGV[5] == '1'
local function add(key)
  if type(key) ~= 'string' or seen[key] then return end
  if key == marker then more = true return end
  if #list >= cap then more = true return end
  seen[key] = true
  list[#list + 1] = key
end
local old = redis.call('HGET', KEYS[2], ARGV[1])
if old then
  local ok, doc = pcall(cjson.decode, old)
  if ok and type(doc) == 'table' then for _, key in ipairs(doc) do add(key) end end
end
for _, key in ipairs(cjson.decode(ARGV[4])) do add(key) end
if more then list[#list + 1] = marker end
if #list == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(list))
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return #list
"""


def _text(key: str) -> str:
    """A key as valid UTF-8 (a key made of undecodable bytes gets U+FFFD for them)."""
    return key.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def record_writes(
    client: Any, prefix: str, session_id: str, task_id: str, written: list[str], more: bool = False,
    cap: int = WRITTEN_KEYS_CAP,
) -> int:  # fmt: skip
    """Add ``written`` (and the marker if ``more``) to ``task_id``'s entry, in one round trip;
    none when there is nothing to add. Returns the entry's length (-1: the session is gone)."""
    if not written and not more:
        return 0
    k = keys.SessionKeys(prefix, session_id)
    doc = json.dumps([_text(key) for key in written], ensure_ascii=False).encode("utf-8")
    args = [task_id, cap, MORE, doc, "1" if more else "0"]
    return int(registered_script(client, RECORD)(keys=[k.root, k.writes], args=args, client=client))


def flush_writes(client: Any, channel: Any) -> None:
    """Send what ``channel`` (an attempt's ``FencedRedisChannel``) noted since the last
    flush: one round trip, none when it noted nothing. Never raises: the record is for
    people and must not fail the attempt (what a failed send carried is dropped, logged at
    DEBUG)."""
    written = getattr(channel, "written", None)
    if not written:
        return
    noted, more = written.take()
    try:
        record_writes(client, channel.namespace, channel.name, channel.task_id, noted, more)
    except Exception:
        logger.debug("channel keys written by %s dropped", channel.task_id, exc_info=True)


def task_writes(client: Any, prefix: str, session_id: str) -> dict[str, list[str]]:
    """Task id -> the channel keys its attempts wrote, in the order first written (``MORE``
    last when some were not kept). A task that wrote nothing has no entry."""
    out: dict[str, list[str]] = {}
    for field, value in client.hgetall(keys.SessionKeys(prefix, session_id).writes).items():
        try:
            doc = json.loads(as_text(value))
        except ValueError:
            continue
        if isinstance(doc, list):
            out[as_text(field)] = [str(key) for key in doc]
    return out
