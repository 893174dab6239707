"""Leases on the Redis server's clock, renewed by a process the task cannot block.

A running graflow job holds a lease: member ``{job_id}:{execution_id}`` of the sorted set
``keys.leases(P)``, scored with its deadline in the Redis server's time (``TIME`` inside
the scripts). No worker's clock is ever compared with another's, so a host whose clock
is minutes off neither loses its leases nor steals others'. The job's start step writes
the lease (``bookkeeping``); its end removes it (the success step, rq's execution
clean-up, a redelivery).

**Who renews.** The supervisor (another process, with a GIL of its own): every
``heartbeat/3`` seconds one ``PASS`` script renews the leases its worker processes
publish in shared memory (``LeaseSlot``), marks each of them alive
(``keys.worker_alive``, a lease-long TTL), and returns the leases past their deadline and
the jobs stuck between rq's dequeue and their start, for the reaper
(``graflow.worker.failover``). A task that holds the GIL, or a stopped child, cannot
starve it; a child that dies is seen by the supervisor at once and its job handed back.
Only a whole-host loss (or a stopped supervisor) lets a lease run out. One command per
pass: idle or busy, a worker costs the pool one round trip per ``heartbeat/3``.

**Claims.** A pass that returns an expired lease moves its deadline ``CLAIM`` seconds on,
so the passes of other supervisors leave it to this one; if this reaper dies before it
redelivers, the claim runs out and another takes it.

**Outage guard.** No pass under the prefix for a whole lease (Redis unreachable, or the
whole pool stopped) means no lease was renewed either: the first pass after that gives
every expired lease one more lease instead of reaping it, so a Redis restart does not
fail over every running task. A worker that really died is reaped one lease later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graflow import keys
from graflow.redisconn import as_text

#: Seconds an expired lease stays claimed by the pass that returned it.
CLAIM = 5.0
#: Most expired leases one pass returns (the rest come with the next pass).
BATCH = 32
#: Bytes of shared memory per slot for the lease member (``{job_id}:{execution_id}``).
SLOT_BYTES = 256

# KEYS: 1 leases, 2 lease clock, 3 intermediate-seen hash, 4.. rq intermediate lists.
# ARGV: 1 lease s, 2 claim s, 3 stuck-after s, 4 n members to renew, 5..4+n members,
# then worker-alive keys to set. Returns {now, expired members, {list, job id} stuck}.
PASS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local lease, claim, grace = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local n = tonumber(ARGV[4])
for i = 5, 4 + n do redis.call('ZADD', KEYS[1], 'XX', now + lease, ARGV[i]) end
local ms = math.max(1, math.floor(lease * 1000))
for i = 5 + n, #ARGV do redis.call('SET', ARGV[i], '1', 'PX', ms) end
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
redis.call('SET', KEYS[2], string.format('%.6f', now), 'PX', 86400000)
local expired = {}
if now - last > lease then
  -- Nobody passed for a whole lease: an outage, not dead workers. One more lease for all.
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
    redis.call('ZADD', KEYS[1], 'XX', now + lease, m)
  end
else
  expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, BATCH)
  for _, m in ipairs(expired) do redis.call('ZADD', KEYS[1], 'XX', now + claim, m) end
end
local listed, any = {}, false
for i = 4, #KEYS do
  for _, id in ipairs(redis.call('LRANGE', KEYS[i], 0, -1)) do
    if string.sub(id, 1, 3) == 'gf-' then listed[id] = KEYS[i]; any = true end
  end
end
local seen = redis.call('HGETALL', KEYS[3])
for i = 1, #seen, 2 do
  if not listed[seen[i]] then redis.call('HDEL', KEYS[3], seen[i]) end
end
local stuck = {}
for id, list in pairs(listed) do
  local first = redis.call('HGET', KEYS[3], id)
  if not first then
    redis.call('HSET', KEYS[3], id, string.format('%.6f', now))
  elseif now - tonumber(first) >= grace then
    table.insert(stuck, {list, id})
    redis.call('HDEL', KEYS[3], id)
  end
end
if any then redis.call('PEXPIRE', KEYS[3], 3600000) end
return {string.format('%.6f', now), expired, stuck}
""".replace("BATCH", str(BATCH))

@dataclass(frozen=True)
class PassResult:
    """What one pass found: the Redis time, expired leases (now claimed), stuck jobs."""

    now: float
    expired: list[str]
    stuck: list[tuple[str, str]]


class LeasePass:
    """Renews leases and finds the expired ones, one ``PASS`` per call."""

    def __init__(self, connection: Any, prefix: str, queues: list[str], lease_seconds: float,
                 stuck_after: float) -> None:  # fmt: skip
        from graflow.distributed.rqapi import layout

        self.connection = connection
        self.prefix = prefix
        self.lease_seconds = float(lease_seconds)
        self.stuck_after = float(stuck_after)
        self.keys = [keys.leases(prefix), keys.lease_clock(prefix), keys.intermediate_seen(prefix)]
        self.keys += [layout.intermediate_key(q) for q in dict.fromkeys(queues)]
        self._script = connection.register_script(PASS)

    def run(self, members: list[str], alive: list[str]) -> PassResult:
        """Renew ``members`` (leases held by live worker processes), mark the workers
        named in ``alive`` alive, and return what expired."""
        args: list[Any] = [repr(self.lease_seconds), repr(CLAIM), repr(self.stuck_after), len(members)]
        args += members
        args += [keys.worker_alive(self.prefix, name) for name in alive]
        reply = self._script(keys=self.keys, args=args)
        return PassResult(
            now=float(as_text(reply[0])),
            expired=[as_text(m) for m in reply[1]],
            stuck=[(as_text(pair[0]), as_text(pair[1])) for pair in reply[2]],
        )


def mark_alive(connection: Any, prefix: str, name: str, lease_seconds: float) -> None:
    """Worker ``name`` is alive for one lease (at registration, before any pass)."""
    connection.set(keys.worker_alive(prefix, name), b"1", px=max(1, int(lease_seconds * 1000)))


def is_alive(connection: Any, prefix: str, name: str) -> bool:
    return bool(connection.exists(keys.worker_alive(prefix, name)))


# ------------------------------------------------------------ shared memory
class LeaseSlot:
    """One worker process's published lease member, in memory shared with its supervisor.

    Made by the supervisor before it forks (``new``); the worker process writes the
    member of the job it starts and clears it when the job ends. A torn read (the
    supervisor reading while the worker writes) renews a member that does not exist:
    ``ZADD XX`` writes nothing, and the next pass reads it whole.
    """

    def __init__(self, memory: Any) -> None:
        self.memory = memory

    @classmethod
    def new(cls, ctx: Any) -> LeaseSlot:
        return cls(ctx.RawArray("c", SLOT_BYTES))

    def publish(self, member: str | None) -> None:
        raw = (member or "").encode()[: SLOT_BYTES - 1]
        self.memory[0] = b"\0"  # first: a reader sees nothing rather than a mix
        self.memory[1 : len(raw)] = raw[1:]
        self.memory[len(raw)] = b"\0"
        if raw:
            self.memory[0] = raw[:1]  # last: the member is whole from here on

    def read(self) -> str | None:
        raw = bytes(self.memory.raw).split(b"\0", 1)[0]
        return raw.decode(errors="replace") if raw else None


#: This worker process's slot (None outside a supervised worker: it renews its own lease).
_slot: LeaseSlot | None = None


def install(slot: LeaseSlot) -> None:
    """In a supervised worker process: publish the leases of the jobs it starts to ``slot``."""
    global _slot
    _slot = slot


def installed() -> LeaseSlot | None:
    """The slot this process publishes to, if its supervisor renews its leases."""
    return _slot


__all__ = ["BATCH", "CLAIM", "LeasePass", "LeaseSlot", "PassResult", "install", "installed", "is_alive", "mark_alive"]
