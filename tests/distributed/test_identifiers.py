"""A session id, key prefix or queue name is data, never a pattern (graflow.identifiers).

Bad ids are refused with ``InvalidIdentifierError`` before anything is written; the
low-level ``SessionStore`` escapes ids in its SCAN patterns and keeps only keys whose hash
tag is exactly its session, so even called directly with ``*`` it leaves other runs alone.
"""

from __future__ import annotations

import uuid
from typing import Any

import dist_flows as flows
import pytest
from conftest import DistPool, graflow, release, session_keys, wait_until

from graflow import keys, task, workflow
from graflow.distributed import WorkflowRun, submit
from graflow.distributed.session import SessionStore
from graflow.exceptions import ConfigError, InvalidIdentifierError
from graflow.identifiers import check_key_prefix, check_queue_name, check_session_id

pytestmark = [pytest.mark.redis, pytest.mark.slow]

#: Glob and hash-tag characters, alone and combined, plus other forms outside the charset.
GLOBBY = ["*", "?", "[", "]", "{", "}", "\\", "[a-z]*", "*}:*", "a}:b", "{*}", "\\*?", "x[", "*\\"]
BAD_SESSION_IDS = [*GLOBBY, "", "a" * 65, "has space", "dot.ted", "co:lon", "ü", "a/b"]
BAD_NAMES = [*GLOBBY, "", "a" * 65, "has space", "a/b", "ü"]


def _small() -> Any:
    with workflow("ids") as wf:

        @task
        def square(x: int) -> int:
            return x * x

    return wf


def test_the_allowed_forms() -> None:
    for good in ("a", "A-b_9", "0" * 64, uuid.uuid4().hex):
        assert check_session_id(good) == good
    for good in ("graflow", "gf.prod:eu-1_x", "q" * 64):
        assert check_key_prefix(good) == good and check_queue_name(good) == good
    for bad in BAD_SESSION_IDS:
        with pytest.raises(InvalidIdentifierError, match=r"session id .* is not allowed; use 1-64 characters"):
            check_session_id(bad)
    for bad in BAD_NAMES:
        with pytest.raises(InvalidIdentifierError, match=r"key prefix .* is not allowed; use 1-64"):
            check_key_prefix(bad)
        with pytest.raises(InvalidIdentifierError, match=r"queue name .* is not allowed; use 1-64"):
            check_queue_name(bad)
    err = InvalidIdentifierError("x")
    assert isinstance(err, ConfigError) and isinstance(err, ValueError)


def test_glob_escape_and_hash_tag() -> None:
    assert keys.glob_escape("a*b?c[d]e\\f{g}") == "a\\*b\\?c\\[d\\]e\\\\f{g}"
    assert keys.session_channel_pattern("p*", "*") == ["p\\*:channel:{\\*}:*", "p\\*:lock:{\\*}:*"]
    assert keys.hash_tag(b"p:channel:{abc}:k") == b"abc"
    assert keys.hash_tag("p:channel:{a}:x}:k") == b"a"
    assert keys.hash_tag(b"p:graph:h") is None and keys.hash_tag(b"p:{}:x") is None


def _prefix_keys(client: Any, token: str) -> list[bytes]:
    return list(client.scan_iter(match=f"*{keys.glob_escape(token)}*", count=1000))


def test_submit_refuses_bad_ids_before_writing_anything(redis_url: str, client: Any) -> None:
    wf = _small()
    prefix = f"gfids{uuid.uuid4().hex[:10]}"
    for bad in BAD_SESSION_IDS:
        with pytest.raises(InvalidIdentifierError, match="session id"):
            submit(wf, redis_url, queue=prefix, key_prefix=prefix, session_id=bad, initial_channel={"x": 3})
    assert _prefix_keys(client, prefix) == []  # no session, channel, graph or rq key
    for bad in [n for n in BAD_NAMES if n]:  # each made part of a name only this test uses
        token = f"gfbad{uuid.uuid4().hex[:10]}"
        with pytest.raises(InvalidIdentifierError, match="key prefix"):
            submit(wf, redis_url, queue=token, key_prefix=bad + token, initial_channel={"x": 3})
        with pytest.raises(InvalidIdentifierError, match="queue name"):
            submit(wf, redis_url, queue=bad + token, key_prefix=token, initial_channel={"x": 3})
        assert _prefix_keys(client, token) == []


def test_attach_and_the_cli_refuse_bad_ids(redis_url: str) -> None:
    for bad in BAD_SESSION_IDS:
        with pytest.raises(InvalidIdentifierError, match="session id"):
            WorkflowRun.attach(bad, redis_url=redis_url)
        with pytest.raises(InvalidIdentifierError, match="session id"):
            WorkflowRun(bad, redis_url=redis_url)
    with pytest.raises(InvalidIdentifierError, match="key prefix"):
        WorkflowRun.attach("abc", redis_url=redis_url, key_prefix="gf*")
    out = graflow("status", "*", "--url", redis_url)
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "session id '*' is not allowed — use 1-64 characters" in lines[0], out.stderr
    out = graflow("status", "abc", "--url", redis_url, "--prefix", "a[b]")
    assert out.returncode == 2 and "key prefix 'a[b]' is not allowed" in out.stderr, out
    out = graflow("worker", "--url", redis_url, "--queue", "q*", "--burst")
    assert out.returncode == 2 and "queue name 'q*' (--queue/GRAFLOW_QUEUE) is not allowed" in out.stderr, out
    out = graflow("submit", "dist_flows:e6", "--url", redis_url, "--prefix", "p?")
    assert out.returncode == 2 and "key prefix 'p?' is not allowed" in out.stderr, out


def _snapshot(client: Any, prefix: str, session_id: str) -> dict[bytes, tuple[int, bytes]]:
    """Every key of the run: its TTL and its serialized value."""
    return {k: (client.pttl(k), client.dump(k)) for k in session_keys(client, prefix, session_id)}


def test_other_ids_never_touch_a_live_run(pool: DistPool, client: Any) -> None:
    run = submit(flows.gated_chain(), pool.redis_url, queue=pool.queue, key_prefix=pool.prefix)
    try:
        wait_until(lambda: run.channel.get("waiting"), 20, "task b to wait at its gate")
        before = _snapshot(client, pool.prefix, run.session_id)
        channel = [k for k in before if b":channel:" in k]
        assert channel and all(ttl == -1 for ttl, _ in before.values()), before
        for bad in GLOBBY:
            with pytest.raises(InvalidIdentifierError):
                WorkflowRun.attach(bad, redis_url=pool.redis_url, key_prefix=pool.prefix)
            # The low-level store, called directly with such an id, acts on that literal id only.
            store = SessionStore(client, pool.prefix, bad)
            store.expire_all(ttl=1)
            store.persist_channel()
            assert store.end_run("canceled", "run_canceled", "x")["status"] == "missing"
            store.purge()
        for bad_prefix in GLOBBY:  # a pattern as the prefix, with the live run's own id
            other = SessionStore(client, bad_prefix, run.session_id)
            other.expire_all(ttl=1)
            other.purge()
        assert _snapshot(client, pool.prefix, run.session_id) == before
        assert run.status().state == "running"
        assert all(SessionStore(client, pool.prefix, bad).channel_keys() == [] for bad in GLOBBY)
    finally:
        release(run)
    assert run.wait(timeout=30) == "c-done"
    assert run.channel.get("ran") == ["a", "b", "c"]


def test_odd_but_allowed_ids_work_end_to_end(redis_url: str, client: Any) -> None:
    prefix = f"gf.odd:p-{uuid.uuid4().hex[:8]}_x"
    session_id = ("Odd_ID-" + uuid.uuid4().hex * 2)[:64]
    with DistPool(redis_url, 1, prefix=prefix) as pool:
        run = submit(flows.e6(), redis_url, queue=pool.queue, key_prefix=prefix, session_id=session_id,
                     initial_channel={"x": 7})  # fmt: skip
        assert run.session_id == session_id and run.wait(timeout=30) == "49"
        again = WorkflowRun.attach(session_id, redis_url=redis_url, key_prefix=prefix)
        assert again.status().state == "completed" and again.get_result("square") == 49
        out = graflow("status", session_id, "--url", redis_url, "--prefix", prefix, "--json")
        assert out.returncode == 0 and '"state": "completed"' in out.stdout, out
        assert session_keys(client, prefix, session_id)
        again.purge()
        assert session_keys(client, prefix, session_id) == []


def test_a_chosen_session_id_that_exists_is_refused_and_the_run_kept(redis_url: str, client: Any) -> None:
    """Submitting under the id of an existing run would overwrite its channel and state."""
    prefix = f"gfdup{uuid.uuid4().hex[:8]}"
    session_id = f"dup-{uuid.uuid4().hex[:8]}"
    first = submit(_small(), redis_url, queue=prefix, key_prefix=prefix, session_id=session_id,
                   initial_channel={"x": 3})  # fmt: skip
    before = _snapshot(client, prefix, session_id)
    with pytest.raises(ConfigError, match=r"session 'dup-.*' already exists under prefix"):
        submit(_small(), redis_url, queue=prefix, key_prefix=prefix, session_id=session_id,
               initial_channel={"x": 4})  # fmt: skip
    assert _snapshot(client, prefix, session_id) == before
    assert first.channel.get("x") == 3 and first.status().state == "queued"
    first.purge(force=True)


def test_in_process_runs_refuse_a_bad_id_before_using_the_pool(redis_url: str, client: Any) -> None:
    """An in-process run may have any session id until it sends work to the pool, where the
    id becomes session keys and rq job ids: refused there before anything is written."""
    import dist_groupflows as groupflows

    from graflow.core.context import ExecutionContext
    from graflow.core.engine import WorkflowEngine
    from graflow.core.queue import TaskSpec
    from graflow.distributed.task_queue import DistributedTaskQueue

    prefix = f"gfids{uuid.uuid4().hex[:10]}"
    ctx = ExecutionContext.create(groupflows.pid_group(prefix).graph, session_id="run*1", channel_backend="redis",
                                  config={"url": redis_url, "key_prefix": prefix})  # fmt: skip
    with pytest.raises(Exception) as info:
        WorkflowEngine().execute(ctx)
    err: BaseException | None = info.value
    while err is not None and not isinstance(err, InvalidIdentifierError):
        err = err.__cause__ or getattr(err, "cause", None)
    assert isinstance(err, InvalidIdentifierError) and "session id 'run*1'" in str(err), info.value
    queue = DistributedTaskQueue(redis_client=client, key_prefix=prefix)
    with pytest.raises(InvalidIdentifierError, match="session id"):
        queue.enqueue(TaskSpec(ctx.graph.task("head"), ctx))
    # The run's own channel data (head ran in-process) is all there is: no session, graph or job.
    left = _prefix_keys(client, prefix)
    assert left and all(b":channel:" in k for k in left), left
    with pytest.raises(InvalidIdentifierError, match="key prefix"):
        DistributedTaskQueue(redis_client=client, key_prefix="p*")
    client.delete(*left)
