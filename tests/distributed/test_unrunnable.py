"""A task a worker cannot load fails its run visibly, with TaskUnrunnableError; a producer
on another Python minor version gets the right answer or a clear refusal, never a wrong
answer or a crashed worker (real workers, real producers on the pyenv interpreters)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import HERE, DistPool, child_env, graflow
from workerpool import ROOT

from graflow.distributed import WorkflowRun
from graflow.exceptions import TaskUnrunnableError, WorkflowFailedError

pytestmark = [pytest.mark.redis, pytest.mark.slow]

HERE_PY = f"{sys.version_info[0]}.{sys.version_info[1]}"  # the workers' Python

#: A task module only the producer has; ``a`` calls a helper of that module, which any
#: worker would have to import (so even code pickled by value needs the module).
PRODUCER_ONLY = '''
from graflow import task, workflow


def helper():
    return 20


@task
def a():
    return {"n": helper()}


@task
def b(a):
    return a["n"] + 3


def build():
    with workflow("producer-only") as wf:
        a >> b
    return wf
'''

#: Runs under another interpreter: submits ``xver_flows`` (importable everywhere) or the
#: same two tasks defined in ``__main__``, waits, prints what happened as JSON.
PRODUCER = '''
import json, sys

from graflow import task, workflow
from graflow.distributed import submit
from graflow.exceptions import WorkflowFailedError

url, queue, prefix, mode = sys.argv[1:5]
if mode == "module":
    import xver_flows

    wf = xver_flows.build()
else:
    @task
    def a():
        return {"n": 20}

    @task
    def b(a):
        return a["n"] + 3

    with workflow("xver-main") as wf:
        a >> b
run = submit(wf, url, queue=queue, key_prefix=prefix)
out = {"python": "%d.%d" % sys.version_info[:2], "session": run.session_id}
try:
    out["result"] = run.wait(timeout=60)
except WorkflowFailedError as exc:
    out.update(error_type=exc.error_type, error=str(exc))
print(json.dumps(out))
'''


def _events(run: WorkflowRun) -> list[dict[str, Any]]:
    return run.store.events(50)


# ----------------------------------------------------------- module missing on workers


def test_a_task_module_only_the_producer_has_fails_the_run_with_task_unrunnable(
    make_pool: Callable[..., DistPool], tmp_path: Path
) -> None:
    pool = make_pool(1)
    session = _submit_producer_only(pool, tmp_path)
    run = WorkflowRun.attach(session, pool.redis_url, key_prefix=pool.prefix)
    status = run.status()
    assert (status.state, status.stop_reason, status.failed_task) == ("failed", "task_failed", "a")
    assert status.extra["error_type"] == "TaskUnrunnableError"
    assert status.pending == 0 and status.running == 0
    kinds = [e["event"] for e in _events(run)]
    assert kinds.count("unrunnable") == 3 and kinds[-2:] == ["failed", "finished"]  # 3 redeliveries, then the end
    first = next(e["data"] for e in _events(run) if e["event"] == "unrunnable")
    assert first["task_id"] == "a" and "ModuleNotFoundError" in first["error"]
    with pytest.raises(WorkflowFailedError) as info:
        run.wait(timeout=5)
    assert info.value.error_type == "TaskUnrunnableError"
    assert isinstance(info.value.cause, TaskUnrunnableError)
    assert isinstance(info.value.cause.cause, ModuleNotFoundError)

    shown = graflow("status", session, "--url", pool.redis_url, "--prefix", pool.prefix)
    assert shown.returncode == 0, shown.stderr
    assert "a: TaskUnrunnableError: task 'a' cannot be loaded" in shown.stdout
    assert "unrunnable" in shown.stdout
    assert pool.procs[0].poll() is None  # the worker lives on


def test_the_redelivery_limit_of_an_unrunnable_task_is_the_workers_flag(
    make_pool: Callable[..., DistPool], tmp_path: Path
) -> None:
    """``--max-redeliveries`` governs every redelivery the worker decides on, not only lost
    workers: with 1, an unrunnable task is tried twice (no GRAFLOW_MAX_REDELIVERIES set)."""
    pool = make_pool(1, start=False)
    pool.args = [*pool.args, "--max-redeliveries", "1"]
    pool.__enter__()
    session = _submit_producer_only(pool, tmp_path)
    run = WorkflowRun.attach(session, pool.redis_url, key_prefix=pool.prefix)
    kinds = [e["event"] for e in _events(run)]
    assert kinds.count("unrunnable") == 1 and kinds[-2:] == ["failed", "finished"], kinds


def _submit_producer_only(pool: DistPool, tmp_path: Path) -> str:
    """``graflow submit --wait`` of a workflow whose module only the producer has; the
    command fails with TaskUnrunnableError; returns the session id."""
    name = f"gf_producer_only_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(PRODUCER_ONLY)
    env = child_env()
    env.pop("GRAFLOW_MAX_REDELIVERIES", None)
    env["PYTHONPATH"] += os.pathsep + str(tmp_path)  # the producer's path, not the workers'
    out = subprocess.run(
        [sys.executable, "-m", "graflow", "submit", f"{name}:build", "--url", pool.redis_url,
         "--queue", pool.queue, "--prefix", pool.prefix, "--wait"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert "TaskUnrunnableError" in out.stderr and f"ModuleNotFoundError: No module named '{name}'" in out.stderr
    assert "importable on every worker" in out.stderr
    return out.stdout.split()[0]


# ------------------------------------------------------- producers on another Python


def _pyenv_python(minor: str) -> Path:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    found = sorted(root.glob(f"versions/{minor}.*/bin/python"))
    if not found:
        pytest.fail(f"no Python {minor} under {root}/versions; `pyenv install {minor}` (these tests need it)")
    return found[-1]


@pytest.fixture(scope="module")
def producer_python(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Path]]:
    """``producer_python("3.12")``: a throwaway venv of that pyenv Python with graflow's
    dependencies (graflow itself comes from PYTHONPATH). About 15 s each, once per module."""
    made: dict[str, Path] = {}

    def get(minor: str) -> Path:
        if minor not in made:
            venv = tmp_path_factory.mktemp(f"py{minor}")
            subprocess.run([str(_pyenv_python(minor)), "-m", "venv", str(venv)], check=True, timeout=120)
            python = venv / "bin" / "python"
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                 "redis>=5,<9", "rq>=2.12,<3", "cloudpickle>=3.0", "msgspec>=0.18"],
                check=True, timeout=600, capture_output=True,
            )  # fmt: skip
            made[minor] = python
        return made[minor]

    yield get


def _produce(python: Path, pool: DistPool, mode: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRAFLOW_", "PYTHON"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE)])
    out = subprocess.run([str(python), "-c", PRODUCER, pool.redis_url, pool.queue, pool.prefix, mode],
                         env=env, capture_output=True, text=True, timeout=90)  # fmt: skip
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("minor", ["3.12", "3.10"])
def test_a_producer_on_another_python_gets_the_right_answer_or_a_clear_refusal(
    make_pool: Callable[..., DistPool], producer_python: Callable[[str], Path], minor: str
) -> None:
    assert minor != HERE_PY
    python = producer_python(minor)
    pool = make_pool(1)
    pids = pool.worker_pids()

    # Tasks in a module the workers import travel by reference: the worker runs its own code.
    by_reference = _produce(python, pool, "module")
    assert by_reference["python"] == minor
    assert by_reference.get("result") == 23, by_reference

    # Tasks defined in __main__ travel by value: refused, naming both versions and the fix.
    by_value = _produce(python, pool, "main")
    assert "result" not in by_value, by_value
    assert by_value["error_type"] == "TaskUnrunnableError"
    assert f"code pickled by value under Python {minor}" in by_value["error"]
    assert f"this process runs Python {HERE_PY}" in by_value["error"]
    assert "same Python minor version on producers and workers" in by_value["error"]
    run = WorkflowRun.attach(by_value["session"], pool.redis_url, key_prefix=pool.prefix)
    assert "unrunnable" in [e["event"] for e in _events(run)]

    # No payload crashed a worker: the same processes serve the queue.
    assert pool.procs[0].poll() is None and pool.worker_pids() == pids
