"""Differential test: random workflows run by both drivers end the same way.

The in-process engine applies the rules of a run in Python; the pool applies the same rules
through the session's Lua steps. A seeded generator builds random workflows (chains,
diamonds, nested parallel groups under each group policy, retries, ``next_iteration``
loops, dynamic ``next_task``, goto, checkpoints, terminate/cancel, step limits); each runs on both
drivers, and what a user can observe must agree: the error type, the result, the completed
tasks in order, every run of a task in order, the step count, the stop reason and whether
the step limit was reached, and the checkpoints written (at which step, by which task).
The pool has one worker here, so it runs ready tasks one at a
time in queue order, as the in-process engine does: any difference in the order rule
("dynamic tasks first", a join's arrival, a group's members) shows.

``GRAFLOW_FUZZ_GRAPHS`` sets how many graphs (``make fuzz`` runs 5,000); the suite runs 200.
A failing seed is reproduced with ``GRAFLOW_FUZZ_SEED=<seed>``.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from graflow import parallel, task, workflow
from graflow.core.handlers.group_policy import AtLeastNGroupPolicy, CriticalGroupPolicy

GRAPHS = int(os.environ.get("GRAFLOW_FUZZ_GRAPHS") or 200)
FIRST_SEED = int(os.environ.get("GRAFLOW_FUZZ_SEED") or 0)
SEEDS = range(FIRST_SEED, FIRST_SEED + (1 if os.environ.get("GRAFLOW_FUZZ_SEED") else GRAPHS))


# --------------------------------------------------------------------------- plans
@dataclass
class Step:
    """One task of a plan and what it does when it runs."""

    name: str
    kind: str = "plain"  # plain | fail | loop | dyn | goto | terminate | cancel | checkpoint
    fails: int = 0  # "fail": attempts that raise before one succeeds
    retries: int = 0  # max_retries of the task
    loops: int = 0  # "loop": extra iterations
    target: str = ""  # "goto": the task it jumps to


@dataclass
class Group:
    """A parallel group: members are chains (lists of Step or Group)."""

    members: list[list[Any]]
    policy: str = "strict"  # strict | best_effort | at_least | critical
    need: int = 1
    critical: list[str] = field(default_factory=list)


@dataclass
class Plan:
    stages: list[Any]  # Step or Group, run in sequence
    max_steps: int = 10000


class _Names:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"


def plan_for(seed: int) -> Plan:
    """A random plan; deterministic in ``seed``."""
    rng = random.Random(seed)
    names = _Names()
    uses_groups = rng.random() < 0.6

    def step(in_group: bool) -> Step:
        kinds = ["plain"] * 5 + ["fail"] * 2 + ["loop", "dyn", "checkpoint"]
        if not in_group and not uses_groups:
            kinds += ["terminate", "cancel"]
        kind = rng.choice(kinds)
        s = Step(names("t"), kind)
        if kind == "fail":
            s.retries = rng.randint(0, 2)
            s.fails = rng.randint(1, s.retries + 1) if rng.random() < 0.8 else 0
            if in_group and s.fails > s.retries:
                s.fails = s.retries + 1  # fails for good: the policy decides
        elif kind == "loop":
            s.loops = rng.randint(1, 3)
        return s

    def group(depth: int) -> Group:
        members: list[list[Any]] = []
        for _ in range(rng.randint(2, 3)):
            chain: list[Any] = [step(True)]
            if rng.random() < 0.3:
                chain.append(step(True))
            if depth < 1 and rng.random() < 0.2:
                chain.append(group(depth + 1))
            members.append(chain)
        g = Group(members, rng.choice(["strict", "best_effort", "at_least", "critical"]))
        if g.policy == "at_least":
            g.need = rng.randint(0, len(members))
        elif g.policy == "critical":
            firsts = [m[0].name for m in members]
            g.critical = rng.sample(firsts, rng.randint(1, len(firsts)))
        return g

    stages: list[Any] = []
    for _ in range(rng.randint(1, 5)):
        stages.append(group(0) if uses_groups and rng.random() < 0.4 else step(False))
    singles = [i for i, s in enumerate(stages) if isinstance(s, Step) and s.kind == "plain"]
    if len(singles) >= 2 and rng.random() < 0.3:  # a goto from an earlier plain step to a later one
        i, j = sorted(rng.sample(singles, 2))
        stages[i].kind, stages[i].target = "goto", stages[j].name
    plan = Plan(stages)
    if not uses_groups and rng.random() < 0.3:
        plan.max_steps = rng.randint(1, 8)
    return plan


# ------------------------------------------------------------------------ building
def _body(s: Step) -> Any:
    """The task function of ``s``: it records each run in the channel, then acts."""
    name, kind, fails, loops, target = s.name, s.kind, s.fails, s.loops, s.target

    def body(ctx: Any) -> str:
        channel = ctx.get_channel()
        channel.append("ran", name)
        if kind == "fail" and channel.atomic_add(f"tries:{name}", 1) <= fails:
            raise ValueError(f"{name} fails")
        if kind == "loop" and ctx.cycle_count <= loops:
            ctx.next_iteration()
        elif kind == "dyn":

            @task(f"{name}_dyn", inject_context=True)
            def extra(ctx: Any) -> str:
                ctx.get_channel().append("ran", f"{name}_dyn")
                return f"{name}_dyn"

            ctx.next_task(extra)
        elif kind == "goto":
            ctx.next_task(ctx.graph.get_node(target), goto=True)
        elif kind == "checkpoint":
            ctx.checkpoint(metadata={"at": name})
        elif kind == "terminate":
            ctx.terminate_workflow(f"{name} is enough")
        elif kind == "cancel":
            ctx.cancel_workflow(f"{name} cancels")
        return name

    return body


def _task(s: Step) -> Any:
    return task(s.name, inject_context=True, max_retries=s.retries)(_body(s))


def _chain(items: list[Any]) -> Any:
    built = [_task(i) if isinstance(i, Step) else _group(i) for i in items]
    head = built[0]
    for nxt in built[1:]:
        head = head >> nxt
    return head


def _group(g: Group) -> Any:
    members = [_chain(m) for m in g.members]
    grp = parallel(*members)
    if g.policy == "at_least":
        return grp.with_execution(policy=AtLeastNGroupPolicy(min_success=g.need))
    if g.policy == "critical":
        return grp.with_execution(policy=CriticalGroupPolicy(g.critical))
    return grp.with_execution(policy=g.policy)


def build(plan: Plan, seed: int) -> Any:
    with workflow(f"fuzz{seed}") as wf:
        _chain(plan.stages)
    return wf


_CYCLE_ID = re.compile(r"(_cycle_\d+)_[0-9a-f]+$")


def checkpoints(directory: Any, session_id: str | None) -> list[tuple[Any, ...]]:
    """The checkpoints a run wrote: (steps, task, cycle, the tasks that asked) of each, in
    step order. A group's checkpoint merges its members' requests in completion order, so
    its ``at`` is the last member's; ``requested_by`` lists them all."""
    import json
    from pathlib import Path

    found = []
    for meta in Path(directory).glob(f"session_{session_id}_*.meta.json"):
        doc = json.loads(meta.read_text())
        user = doc["user_metadata"]
        by = tuple(sorted(user.get("requested_by") or [user.get("task_id")]))
        found.append((doc["steps"], user.get("task_id"), by, user.get("at") if len(by) == 1 else None))
    return sorted(found)


def observed(out: Any, ordered: bool) -> dict[str, Any]:
    """What a user sees of one run, in a form both drivers can match (an iteration's task
    id ends in a random suffix: ``t4_cycle_1_8594c7a1``)."""
    ran = out.channel.get("ran") or []
    completed = [_CYCLE_ID.sub(r"\1", t) for t in out.completed_tasks]
    if not ordered:  # parallel members: the engine runs them depth first, the queue breadth first
        completed, ran = sorted(completed), sorted(ran)
    return {
        "error": type(out.error).__name__ if out.error is not None else None,
        "result": out.result,
        "completed": completed,
        "ran": ran,
        "steps": out.steps,
        "stop_reason": out.stop_reason,
        "max_steps_reached": out.max_steps_reached,
    }


@pytest.mark.redis
@pytest.mark.parametrize("seed", SEEDS)
def test_both_drivers_end_a_random_workflow_the_same_way(
    seed: int, drivers_in_lockstep: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    local_driver, pool_driver = drivers_in_lockstep
    plan = plan_for(seed)
    ordered = not any(isinstance(stage, Group) for stage in plan.stages)
    monkeypatch.setenv("GRAFLOW_CHECKPOINT_DIR", str(tmp_path))
    ran = local_driver.run(build(plan, seed), max_steps=plan.max_steps)
    local = {**observed(ran, ordered), "checkpoints": checkpoints(tmp_path, ran.session_id)}
    ran = pool_driver.run(build(plan, seed), max_steps=plan.max_steps)
    pool = {**observed(ran, ordered), "checkpoints": checkpoints(pool_driver.pool.checkpoint_dir, ran.session_id)}
    assert pool == local, f"seed {seed}: {plan}"
