"""Many small runs, short TTLs: nothing a run leaves in Redis outlives it (see docs/keys.md).

40 runs (a dynamic task, a parallel group on half of them, a deferred checkpoint to a
``redis://`` location under the pool's prefix) with ``GRAFLOW_SESSION_TTL=3``,
``GRAFLOW_GRAPH_TTL=5`` and ``GRAFLOW_CHECKPOINT_TTL=4`` on workers and producer. Once
they are over, every key under the prefix must carry a TTL; once the TTLs have passed,
the prefix holds as many keys as before the runs and no rq job of theirs is left.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import foflows as flows
import pytest
import redis
from fohelpers import FoPool

pytestmark = [pytest.mark.redis, pytest.mark.slow]

RUNS = 40
TTLS = {"GRAFLOW_SESSION_TTL": "3", "GRAFLOW_GRAPH_TTL": "5", "GRAFLOW_CHECKPOINT_TTL": "4", "GRAFLOW_FINISHED_JOB_TTL": "2"}


def _prefix_keys(client: Any, prefix: str) -> list[bytes]:
    """Keys under the prefix, but the reaper's lock (held for a moment every heartbeat/3)."""
    lock = f"{prefix}:reaper:".encode()
    return sorted(k for k in client.scan_iter(match=f"{prefix}*", count=1000) if not k.startswith(lock))


def _job_keys(client: Any, sessions: set[str]) -> list[bytes]:
    return [k for k in client.scan_iter(match="rq:*gf-*", count=1000)
            if any(s in k.decode(errors="replace") for s in sessions)]  # fmt: skip


def test_short_ttls_leave_nothing_behind(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in TTLS.items():  # the producer's side (graph upload, job failure TTL)
        monkeypatch.setenv(name, value)
    prefix = f"gfsoak{uuid.uuid4().hex[:10]}"
    with FoPool(redis_url, 2, prefix=prefix, FO_CKPT=f"{redis_url}/{prefix}/ck", **TTLS) as pool:
        client = redis.Redis.from_url(redis_url)
        baseline = _prefix_keys(client, prefix)
        runs = [pool.submit(flows.small(i)) for i in range(RUNS)]
        for run in runs:
            run.wait(timeout=60)
        statuses = [run.status() for run in runs]
        assert all(s.state == "completed" and s.last_checkpoint for s in statuses)
        assert [s.completed for s in statuses[:2]] == [6, 3]  # begin, extra, (x, y, group), save
        sessions = {run.session_id for run in runs}
        # Every key under the prefix, and every rq key of these runs, has a TTL.
        keys = _prefix_keys(client, pool.prefix) + _job_keys(client, sessions)
        assert len(keys) > RUNS
        no_ttl = [k.decode() for k in keys if client.ttl(k) == -1]
        assert not no_ttl, f"keys without a TTL: {no_ttl}"
        # Once the TTLs have passed, nothing is left but what was there before: wait as long
        # as the longest TTL still running (rq's bookkeeping of a lease, lease + 60 s, may
        # outlive the short TTLs set here), never for a key without one.
        t0 = time.monotonic()
        deadline = t0 + 12
        while True:
            left = [k for k in _prefix_keys(client, pool.prefix) if k not in baseline]
            left += _job_keys(client, sessions)
            if not left:
                break
            ttls = {k.decode(errors="replace"): client.ttl(k) for k in left}
            if all(t > 0 for t in ttls.values()):
                deadline = max(deadline, min(time.monotonic() + max(ttls.values()) + 2, t0 + 150))
            assert time.monotonic() < deadline, f"still there after their TTLs (key: ttl): {dict(list(ttls.items())[:20])}"
            time.sleep(0.05)
        print(f"{RUNS} runs: {len(keys)} keys, all expired {time.monotonic() - t0:.1f} s after the last run")
        client.close()
