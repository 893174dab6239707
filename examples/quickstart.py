"""The in-process demo: a pipeline with a parallel fan-out, a loop and a checkpoint.

    python examples/quickstart.py

No Redis needed. Writes its checkpoint under a temporary directory and resumes it.
"""

from __future__ import annotations

import tempfile

from graflow import TaskExecutionContext, parallel, task, workflow
from graflow.core.checkpoint import CheckpointManager
from graflow.core.engine import WorkflowEngine


def main() -> None:
    ckdir = tempfile.mkdtemp(prefix="graflow-demo-")
    with workflow("quickstart") as wf:

        @task
        def load(n: int) -> list[int]:
            return list(range(1, n + 1))

        @task(inject_context=True)
        def square(ctx: TaskExecutionContext, load: list[int]) -> None:
            ctx.get_channel().append("parts", sum(x * x for x in load))

        @task(inject_context=True)
        def cube(ctx: TaskExecutionContext, load: list[int]) -> None:
            ctx.get_channel().append("parts", sum(x**3 for x in load))

        @task(inject_context=True)
        def combine(ctx: TaskExecutionContext) -> int:
            total = sum(ctx.get_channel().get("parts"))
            ctx.checkpoint(path=f"{ckdir}/combined", metadata={"stage": "combined"})
            return total

        @task(inject_context=True, max_cycles=10)
        def refine(ctx: TaskExecutionContext, data: int | None = None) -> int:
            # Each iteration receives the previous value as its first argument.
            value = (data or ctx.get_result("combine")) // 2
            if value > 100:
                ctx.next_iteration(value)
            return value

        @task
        def report(refine: int) -> str:
            return f"refined to {refine}"

        load >> parallel(square, cube) >> combine >> refine >> report
        print(wf.graph)
        result, ctx = wf.execute(initial_channel={"n": 10}, ret_context=True)
        print("result:", result)
        print("completed:", ctx.completed_tasks)

    resumed, meta = CheckpointManager.resume_from_checkpoint(f"{ckdir}/combined")
    print(f"resumed checkpoint {meta.checkpoint_id} at step {meta.steps}: {meta.user_metadata['stage']}")
    print("resumed result:", WorkflowEngine().execute(resumed))


if __name__ == "__main__":
    main()
