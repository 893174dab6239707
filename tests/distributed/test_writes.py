"""Which channel keys each task of a pooled run wrote (graflow.channels.written,
graflow.distributed.run_writes), on real workers and against real Redis."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import write_flows
from conftest import SESSION_TTL, DistPool, release, session_keys, wait_until

from graflow import keys
from graflow.channels.written import WrittenKeys
from graflow.defaults import WRITTEN_KEYS_CAP
from graflow.distributed import WorkflowRun, submit
from graflow.distributed.run_writes import MORE, record_writes, task_writes
from graflow.distributed.scripts import PRELUDE
from graflow.distributed.session import SessionStore
from graflow.exceptions import WorkflowFailedError
from graflow.settings import Settings, using

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture(scope="module")
def pool(redis_url: str) -> Iterator[DistPool]:
    with DistPool(redis_url, 2) as p:
        yield p


def _submit(pool: DistPool, wf: Any) -> WorkflowRun:
    return submit(wf, pool.redis_url, queue=pool.queue, key_prefix=pool.prefix)


def _writes(client: Any, pool: DistPool, run: WorkflowRun) -> dict[str, list[str]]:
    return task_writes(client, pool.prefix, run.session_id)


def test_each_task_lists_the_keys_it_wrote(pool: DistPool, client: Any) -> None:
    run = _submit(pool, write_flows.writers())
    with pytest.raises(WorkflowFailedError, match="failing after a write"):
        run.wait(timeout=60)
    # Each attempt's keys are recorded before its session step: all there once the run ended.
    writes = _writes(client, pool, run)
    assert writes == {
        "setter": ["a", "list", "count", "tmp"],
        "left": ["shared", "left.only"],
        "right": ["shared", "right.thread"],  # the key of a thread the task started counts
        "flaky": ["flaky.attempts", "flaky.1", "flaky.2"],  # both attempts, merged
        "doomed": ["doomed.before"],  # not "doomed.__result__", the engine's write
    }, writes
    assert "quiet" not in writes  # wrote nothing: no entry, and no group or finish entry
    # The run's keys all have its TTL, the new hash among them.
    names = session_keys(client, pool.prefix, run.session_id)
    assert keys.SessionKeys(pool.prefix, run.session_id).writes.encode() in names
    for name in names:
        assert 0 < client.pttl(name) <= SESSION_TTL * 1000, name


def test_at_most_the_cap_then_a_marker(pool: DistPool, client: Any) -> None:
    run = _submit(pool, write_flows.many())
    assert run.wait(timeout=60) == write_flows.MANY
    listed = _writes(client, pool, run)["lots"]
    assert listed == [f"k{i:03d}" for i in range(WRITTEN_KEYS_CAP)] + [MORE]


def test_keys_recorded_after_the_run_ended_get_its_ttl(pool: DistPool, client: Any) -> None:
    run = _submit(pool, write_flows.late_writer())
    try:
        wait_until(lambda: run.channel.get("waiting"), 30, "slow at its gate")
        k = keys.SessionKeys(pool.prefix, run.session_id)
        assert not client.exists(k.writes)  # nothing recorded while the attempt runs
        assert run.cancel(wait=True, timeout=30)
    finally:
        release(run)
    # Recorded before the step that took the attempt off the running set: there now.
    assert _writes(client, pool, run) == {"slow": ["slow.key", "waiting"]}
    # The run's remaining TTL (the cancel, by this process, gave it the default TTL).
    written, root = client.pttl(k.writes), client.pttl(k.root)
    assert written > 0 and abs(written - root) < 10_000, (written, root)


def test_record_merges_caps_and_follows_the_session_ttl(redis_client: Any, redis_url: str, key_prefix: str) -> None:
    k = keys.SessionKeys(key_prefix, "s1")
    assert record_writes(redis_client, key_prefix, "s1", "t", ["x"]) == -1  # no session: nothing
    assert not redis_client.exists(k.writes)
    store = SessionStore(redis_client, key_prefix, "s1")
    store.create({"queue": key_prefix}, {})
    assert record_writes(redis_client, key_prefix, "s1", "t", []) == 0  # nothing to send
    assert record_writes(redis_client, key_prefix, "s1", "t", ["b", "a", "ü/\"q\""]) == 3
    assert record_writes(redis_client, key_prefix, "s1", "t", ["a", "c"]) == 4
    assert record_writes(redis_client, key_prefix, "s1", "u", ["a"], cap=2) == 1
    assert redis_client.pttl(k.writes) == -1  # a live run's keys have no TTL
    # The cap over attempts: what is kept stays, the marker says there was more, once.
    assert record_writes(redis_client, key_prefix, "s1", "u", ["b", "c"], cap=2) == 3
    assert record_writes(redis_client, key_prefix, "s1", "u", ["d"], more=True, cap=2) == 3
    expected = {"t": ["b", "a", "ü/\"q\"", "c"], "u": ["a", "b", MORE]}
    assert task_writes(redis_client, key_prefix, "s1") == expected
    import redis

    with redis.Redis.from_url(redis_url, decode_responses=True) as text_client:  # a dashboard's client
        assert task_writes(text_client, key_prefix, "s1") == expected
    with using(Settings(session_ttl=60)):
        store.end_run("completed", "drained")
    assert 0 < redis_client.pttl(k.writes) <= 60_000  # finish gave it the run's TTL
    redis_client.delete(k.writes)  # as if nothing was written before the run ended
    assert record_writes(redis_client, key_prefix, "s1", "late", ["z"]) == 1
    assert 0 < redis_client.pttl(k.writes) <= 60_000  # a write after the end takes the run's TTL
    assert store.purge() > 0 and not redis_client.exists(k.writes)


def test_finish_expires_every_fixed_key() -> None:
    """The Lua ``finish`` and ``SessionKeys.fixed()`` name the same session keys."""
    listed = re.search(r"local names = \{(.*?)\}", PRELUDE, re.S)
    assert listed is not None
    suffixes = set(re.findall(r"'([^']*)'", listed.group(1)))
    k = keys.SessionKeys("P", "S")
    assert {name[len(k.root) :] for name in k.fixed()} == suffixes


def test_written_keys_dedupe_cap_take_and_unnoted() -> None:
    w = WrittenKeys(cap=3)
    assert not w
    for key in ("a", "b", "a", "c", "d", "c"):
        w.add(key)
    assert w and list(w.keys) == ["a", "b", "c"] and w.more
    assert w.take() == (["a", "b", "c"], True)
    assert not w and w.take() == ([], False)
    w.add("r")
    with w.unnoted("r"):  # written by the task already: stays
        w.add("r")
    with w.unnoted("t.__result__"):  # the machinery's write: not noted
        w.add("t.__result__")
    assert w.take() == (["r"], False)
