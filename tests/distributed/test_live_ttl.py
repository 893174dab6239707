"""What a live run reads never expires under it; its TTLs count from its end (graflow.distributed.liveness).

Workers and producer run with ``GRAFLOW_GRAPH_TTL=2`` and ``GRAFLOW_SESSION_TTL=3``; the
run takes more than 6.5 s, and its second task is loaded by a worker that never cached the graph.
"""

from __future__ import annotations

from typing import Any

import pytest
import ttl_flows
from conftest import release, session_keys, wait_until

from graflow import keys
from graflow.distributed import submit
from graflow.distributed.session import SessionStore

pytestmark = [pytest.mark.redis, pytest.mark.slow]

TTLS = {"GRAFLOW_GRAPH_TTL": "2", "GRAFLOW_SESSION_TTL": "3"}


def test_a_run_longer_than_the_graph_ttl_completes_then_expires(
    make_pool: Any, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in TTLS.items():  # the producer uploads the graph
        monkeypatch.setenv(name, value)
    pool = make_pool(2, **TTLS)
    run = submit(ttl_flows.slow_chain(), pool.redis_url, queue=pool.queue, key_prefix=pool.prefix)
    graph_key = keys.graph(pool.prefix, run.status().extra["graph_hash"])
    wait_until(lambda: run.channel.get("pids"), 20, "t1 to start")
    # Live: the graph, the session and the channel carry no TTL, and the run is listed.
    live = [graph_key.encode(), *session_keys(client, pool.prefix, run.session_id)]
    assert all(client.ttl(k) == -1 for k in live), {k: client.ttl(k) for k in live}
    assert client.hget(keys.live_runs(pool.prefix), run.session_id) is not None
    try:
        # Still live after 6.5 s, with a dynamic task stored: still no TTL on anything.
        wait_until(lambda: run.channel.get("waiting") and run.channel.get("extra"), 30, "t3 at its gate, extra done")
        live = [graph_key.encode(), *session_keys(client, pool.prefix, run.session_id)]
        assert any(b":dyn:" in k for k in live) and any(b":channel:" in k for k in live), live
        # the keys t1 and t2 wrote, recorded with their commits
        assert keys.SessionKeys(pool.prefix, run.session_id).writes.encode() in live, live
        assert all(client.ttl(k) == -1 for k in live), {k: client.ttl(k) for k in live}
    finally:
        release(run)
    run.wait(timeout=30)
    assert run.status().state == "completed"
    pids = run.channel.get("pids")
    assert len(pids) == 3 and pids[0] != pids[1]  # t2 ran where the graph was not cached
    # Ended: every key of the run has a TTL (the graph's counts from now), then all are gone.
    # (the worker whose step ended the run gives the graph and channel their TTLs right after
    # that step, which wait() may see first)
    ended = [graph_key.encode(), *session_keys(client, pool.prefix, run.session_id)]
    def timed(k: bytes) -> bool:  # a TTL of at most the configured ones, or already expired
        ttl = client.pttl(k)
        return ttl == -2 or 0 < ttl <= 3000

    wait_until(lambda: all(timed(k) for k in ended), 10, "every key of the ended run to get a TTL")
    assert client.hget(keys.live_runs(pool.prefix), run.session_id) is None
    wait_until(lambda: not any(client.exists(k) for k in ended), 15, "the ended run's keys to expire")


def test_release_keeps_a_graph_another_live_run_uses(redis_url: str, client: Any, key_prefix: str) -> None:
    from graflow.distributed import liveness

    graph = keys.graph(key_prefix, "h1")
    client.set(graph, b"g")
    for sid in ("s1", "s2"):
        pipe = client.pipeline(transaction=True)
        liveness.register(pipe, key_prefix, sid, "h1")
        SessionStore(client, key_prefix, sid).create({"graph_hash": "h1"}, {}, pipeline=pipe)
        pipe.execute()
    assert liveness.release(client, key_prefix, "s1", ttl=100) == 1 and client.ttl(graph) == -1  # s2 still live
    assert liveness.release(client, key_prefix, "s1", ttl=100) == 0  # idempotent
    # s2 ends without its release (its worker died right after the end step): the sweep repairs it.
    client.hset(SessionStore(client, key_prefix, "s2").keys.meta, "state", "completed")
    assert liveness.sweep(client, key_prefix, ttl=100, every=0.001) == 1
    assert 0 < client.ttl(graph) <= 100 and not client.exists(keys.live_runs(key_prefix))
    client.delete(graph, *SessionStore(client, key_prefix, "s1").keys.fixed(),
                  *SessionStore(client, key_prefix, "s2").keys.fixed())  # fmt: skip
