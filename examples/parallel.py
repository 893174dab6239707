"""Parallel groups: fan-out and fan-in, a shared channel, group policies and backends.

    python examples/parallel.py
"""

from graflow import TaskExecutionContext, parallel, task, workflow
from graflow.core.handlers.group_policy import AtLeastNGroupPolicy
from graflow.exceptions import ParallelGroupError


@task(inject_context=True)
def fetch(ctx: TaskExecutionContext, source: str) -> str:
    """A template: each instance below gets its own id and bound ``source``."""
    if source == "flaky":
        raise ConnectionError(f"{source} is down")
    ctx.get_channel().append("rows", source)  # members share the run's channel
    return source


# Fan-out, fan-in: merge runs once, after every member; 2 of 3 must succeed.
with workflow("fan") as wf:
    api, db, flaky = (fetch(task_id=s, source=s) for s in ("api", "db", "flaky"))

    @task(inject_context=True)
    def merge(ctx: TaskExecutionContext) -> list[str]:
        return sorted(ctx.get_channel().get("rows"))

    group = parallel(api, db, flaky).with_execution(policy=AtLeastNGroupPolicy(min_success=2))
    group >> merge
    assert wf.execute() == ["api", "db"]

# The default policy is strict: any failed member fails the group.
with workflow("strict") as wf2:
    members = [fetch(task_id=s, source=s) for s in ("api", "flaky")]
    parallel(*members).with_execution(backend="direct")  # one after another, this thread
    try:
        wf2.execute()
    except ParallelGroupError as exc:
        assert exc.failed_tasks[0][0] == "flaky" and exc.successful_tasks == ["api"]
    else:
        raise AssertionError("the strict policy should have failed the group")

# "best_effort" never fails the group; the `|` operator builds the same kind of group.
with workflow("best_effort") as wf3:
    a, b = fetch(task_id="a", source="api"), fetch(task_id="b", source="flaky")

    @task(inject_context=True)
    def report(ctx: TaskExecutionContext) -> str:
        return f"{len(ctx.get_channel().get('rows'))} of 2 sources answered"

    (a | b).with_execution(policy="best_effort") >> report
    assert wf3.execute() == "1 of 2 sources answered"
print("parallel groups: ok")
