"""No lost work at any crash point (listed in graflow/crash.py; see docs/failover.md).

One workflow (a diamond fetch → a, b → join, a parallel group, a task that writes a
deferred checkpoint) runs on two workers with a 1.5 s heartbeat while one crash point
is armed once (``GRAFLOW_CRASH_AT`` + ``GRAFLOW_CRASH_ONCE_FILE`` on both workers). The
crashed worker process is restarted by its supervisor. The run must end exactly like a crash-free
run: same channel data, every task completed exactly once, no body run more than twice.

Repeat 0 arms the point from the start (it fires on the first job to reach it) and
checkpoints to a directory; repeat 1 arms it from inside group member ``p2`` (from
``a`` for ``group.before_handover``, met before ``p2`` exists), so it fires mid-run,
and checkpoints to a ``redis://`` location. After the run the test also waits for the
crashed attempt's lease to be reaped (recorded as "abandoned: …" in rq's failed
registry) and checks that this redelivery changed nothing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import foflows as flows
import pytest
from fohelpers import (
    FoPool,
    abandoned,
    channel_state,
    completed_events,
    done_markers,
    leases,
    orphans,
    ran_counts,
    store_of,
    wait_until,
)

from graflow.core.checkpoint_reader import read_checkpoint

pytestmark = [
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::graflow.exceptions.UnsignedPayloadWarning"),  # reading checkpoints
]

POINTS = [
    "job.dequeued",
    "job.start",
    "group.before_handover",
    "task.before_commit",
    "commit.before_handover",
    "checkpoint.before_handover",
    "job.before_finish",
    "checkpoint.after_pkl",
    "checkpoint.after_state",
]
TASKS = {"fetch", "a", "b", "join", *flows.MEMBERS, "save", "final"}


def _location(redis_url: str, tmp: Path, prefix: str, repeat: int) -> str:
    return str(tmp / "ck") if repeat == 0 else f"{redis_url}/{prefix}/ck"


def _outcome(run: Any) -> dict[str, Any]:
    status = run.status()
    completed = store_of(run).completed()
    return {
        "result": run.wait(timeout=0),
        "state": status.state,
        "completed": completed,
        "status_completed": status.completed,
        "channel": channel_state(run),
        "ran": ran_counts(run),
        "events": completed_events(run),
        "done": done_markers(run),
        "last_checkpoint": status.last_checkpoint,
        "meta": status.extra,
        "checkpoint": _checkpoint_state(status.last_checkpoint),
    }


def _checkpoint_state(location: str | None) -> tuple[set[str], list[str]] | None:
    """(completed, pending) of the run's checkpoint, read and verified as a resume would."""
    if not location:
        return None
    state = read_checkpoint(location).state
    return set(state.completed_tasks), [p.task_id for p in state.pending_tasks]


@pytest.fixture(scope="module")
def baseline(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The crash-free run the crashed ones must match."""
    tmp = tmp_path_factory.mktemp("baseline")
    pool = FoPool(redis_url, 2, FO_CKPT=str(tmp / "ck"))
    with pool:
        run = pool.submit(flows.diamond())
        assert run.wait(timeout=30) == "total=672", pool.logs_text()
        out = _outcome(run)
    assert set(out["completed"]) >= TASKS and all(n == 1 for n in out["ran"].values())
    return out


@pytest.mark.parametrize("repeat", [0, 1])
@pytest.mark.parametrize("point", POINTS)
def test_crash_point_loses_nothing(point: str, repeat: int, baseline: dict[str, Any], redis_url: str,
                                   tmp_path: Path) -> None:  # fmt: skip
    once = tmp_path / "once"
    env = {"GRAFLOW_CRASH_AT": point, "GRAFLOW_CRASH_ONCE_FILE": str(once)}
    if repeat == 1:
        once.write_text("disarmed\n")
        env["FO_ARM_AT"] = "a" if point == "group.before_handover" else "p2"
    pool = FoPool(redis_url, 2, **env)
    pool.env["FO_CKPT"] = _location(redis_url, tmp_path, pool.prefix, repeat)
    t0 = time.monotonic()
    with pool:
        run = pool.submit(flows.diamond())
        try:
            result = run.wait(timeout=40)
        except Exception as exc:
            raise AssertionError(f"{point}/{repeat}: {exc!r}\n{pool.logs_text()}") from exc
        elapsed = time.monotonic() - t0
        fired = once.read_text() if once.exists() else ""
        assert fired.startswith(point), f"crash point {point} never fired ({fired!r})\n{pool.logs_text()}"
        # The crashed attempt's lease must be reaped (also when the run needed nothing
        # from it) and its redelivery must change nothing.
        # ("job.dequeued" holds no lease: its job goes back to the queue as it was.)
        leased = point != "job.dequeued"
        wait_until(lambda: not leases(pool) and (abandoned(pool) or not leased), 15, "the lost lease reaped")
        reasons = list(abandoned(pool).values())
        out = _outcome(run)
        logs = pool.full_logs()
        # The supervisor restarted its dead worker process and serves on ...
        assert "died unexpectedly (exit code 137)" in logs and "restarting worker" in logs, logs
        assert all(p.poll() is None for p in pool.procs), logs
        # ... and nothing of the crashed worker lives on (rq's scheduler process used to)
        wait_until(lambda: not any(orphans(p.pid) for p in pool.procs), 5, "the crashed worker's processes to end")
    assert len(reasons) == leased and all(r.startswith("abandoned: worker ") for r in reasons), reasons
    assert result == baseline["result"] and out["state"] == "completed"
    assert out["channel"] == baseline["channel"], logs
    # exactly-once completion
    assert len(out["completed"]) == len(set(out["completed"]))
    assert set(out["completed"]) == set(baseline["completed"])
    assert out["status_completed"] == baseline["status_completed"]
    assert out["events"] == baseline["events"], f"completions recorded: {out['events']}"
    assert len(out["done"]) == len(baseline["done"])
    # at-least-once execution, at most one re-run
    assert set(out["ran"]) == set(baseline["ran"])
    assert max(out["ran"].values()) <= 2, out["ran"]
    # the checkpoint was written (by the redelivery, when the crash cut its writer short)
    assert out["last_checkpoint"] and "checkpointing" not in out["meta"], out["meta"]
    assert out["checkpoint"] == baseline["checkpoint"] == (TASKS - {"final"} | {"ParallelGroup_1"}, ["final"])
    if repeat == 0:
        assert Path(out["last_checkpoint"]).exists()
    print(f"{point}/{repeat}: run {elapsed:.1f}s, re-ran {[t for t, n in out['ran'].items() if n > 1]}, "
          f"{reasons or 'no lease'}")  # fmt: skip
