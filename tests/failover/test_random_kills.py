"""Workers lost at random moments: nothing lost, nothing completed twice.

A 500-task run (start → a parallel group of 480 members → a chain of 18) runs on three
workers with a 1.5 s heartbeat while the test, playing the orchestrator, SIGKILLs the
whole process group of a random worker every 0.6–1.2 s (6 times at most) and starts a
replacement. A kill can land anywhere: mid-body, mid-commit, between commit and
hand-over, while idle. Whatever it hits, the run must complete with every task
completed exactly once, and no body run more than once per kill beyond its first run.
"""

from __future__ import annotations

import time

import foflows as flows
import pytest
from fohelpers import FoPool, Keeper, done_markers, leases, ran_counts, store_of, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]

MEMBERS, TAIL = 480, 18
KILLS = 6


def test_random_kills_lose_nothing_and_complete_nothing_twice(redis_url: str) -> None:
    expected = {"start", *(f"m{i}" for i in range(MEMBERS)), *(f"t{i}" for i in range(TAIL))}
    with FoPool(redis_url, 3) as pool:
        run = pool.submit(flows.fan(MEMBERS, TAIL, nap=0.02))
        t0 = time.monotonic()
        with Keeper(pool, kills=KILLS, every=(0.6, 1.2)) as keeper:
            try:
                result = run.wait(timeout=90)
            except Exception as exc:
                raise AssertionError(f"{exc!r}; killed {keeper.killed}\n{pool.logs_text()}") from exc
            elapsed = time.monotonic() - t0
            kills = len(keeper.killed)
            status = run.status()
            completed = store_of(run).completed()
            done = done_markers(run)
            ran = ran_counts(run)
            steps = int(status.extra.get("steps", 0))
            wait_until(lambda: not leases(pool), 10, "no lease left behind")
    group = [t for t in completed if t not in expected]
    print(f"500 tasks, {kills} kills, {keeper.restarts} restarts, {elapsed:.1f} s; "
          f"re-ran {sum(n - 1 for n in ran.values())} bodies")  # fmt: skip
    assert result == f"t{TAIL - 1}" and status.state == "completed"
    assert kills >= 3, f"only {kills} kills landed during the run ({elapsed:.1f} s)"
    # zero lost tasks: every task (and the group node) is completed
    assert set(completed) >= expected and len(group) == 1, group
    assert len(completed) == MEMBERS + TAIL + 2 == status.completed
    # zero double completions: one entry, one step and one done marker per activation
    assert len(completed) == len(set(completed)) and steps == len(completed)
    assert len(done) == len(completed) and all(v.isdigit() for v in done.values()), done
    # at-least-once, and at most once more per kill
    assert set(ran) == expected
    assert max(ran.values()) <= 1 + kills, ran.most_common(3)
