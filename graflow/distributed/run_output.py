"""Writing a run's task output stream (``P:session:{S}:output``, see docs/keys.md).

The worker's capture (``graflow.worker.capture``) sends each flush of an attempt as one
call of ``APPEND``: every entry of the flush in one round trip, each ``XADD``ed with
``MAXLEN ~`` so a chatty run cannot grow Redis without bound. The last attempt's final
flush comes after its commit ended the run, when ``finish`` (scripts.py) has already given
the session's keys their TTL: so the script gives the stream the session's remaining TTL
whenever the session has one, and writes nothing for a session that is gone (expired or
purged), so no key is ever left without a TTL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from graflow import keys
from graflow.defaults import LOG_STREAM_MAXLEN
from graflow.redisconn import registered_script

#: What an attempt's output entries name besides their text (their field order).
LABELS = ("task_id", "spec_id", "attempt", "worker")

# KEYS: session root, output stream. ARGV[1]: MAXLEN; ARGV[2]: "1" when the last entry is an
# attempt's end entry (it gets field ``run``, the run's state as it is written); then per
# entry its field count N and N field/value pairs. Returns the entries written, -1 when the
# session does not exist.
APPEND = r"""
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return -1 end
local i, n = 3, 0
while i <= #ARGV do
  local count = tonumber(ARGV[i])
  local last = i + 2 * count
  local args = {'XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*'}
  for j = i + 1, last do args[#args + 1] = ARGV[j] end
  if ARGV[2] == '1' and last >= #ARGV then
    args[#args + 1] = 'run'
    args[#args + 1] = state
  end
  redis.call(unpack(args))
  i = last + 1
  n = n + 1
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return n
"""

def encode(text: str) -> bytes:
    """Text as UTF-8; what cannot be encoded (a lone surrogate) becomes U+FFFD."""
    return text.encode("utf-8", "replace")


def append_output(
    client: Any,
    prefix: str,
    session_id: str,
    labels: Sequence[Any],
    entries: Sequence[tuple[str, str]],
    end: dict[str, Any] | None = None,
    maxlen: int = LOG_STREAM_MAXLEN,
) -> int:
    """Append ``entries`` ((stream, text) pairs) of one attempt, then its ``end`` entry
    (outcome, dropped) when given, in one round trip. ``labels``: the values of ``LABELS``.
    Returns the entries written (-1: the session is gone, nothing written)."""
    k = keys.SessionKeys(prefix, session_id)
    head: list[Any] = []
    for name, value in zip(LABELS, labels, strict=True):
        head += [name, value]
    argv: list[Any] = [maxlen, "1" if end is not None else "0"]
    for stream, text in entries:
        argv += [len(LABELS) + 2, *head, "stream", stream, "text", encode(text)]
    if end is not None:
        extra = [x for item in end.items() for x in item]
        argv += [len(LABELS) + 2 + len(end), *head, "stream", "end", "text", "", *extra]
    if len(argv) == 2:
        return 0
    return int(registered_script(client, APPEND)(keys=[k.root, k.output], args=argv, client=client))


__all__ = ["APPEND", "LABELS", "append_output", "encode"]
