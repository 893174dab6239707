"""Dynamic control flow: add tasks at run time, iterate a task, jump, stop early.

    python examples/dynamic.py
"""

from graflow import TaskExecutionContext, task, workflow

# next_task: enqueue extra work; the static successors still run (main, extra, after).
with workflow("dyn") as wf:

    @task(inject_context=True)
    def process(ctx: TaskExecutionContext) -> None:
        @task
        def extra() -> None:
            print("extra")

        ctx.next_task(extra)  # a new task: process's successors are kept
        print("main")

    @task
    def after() -> None:
        print("after")

    process >> after
    wf.execute()

# next_iteration: run the same task again with new data; publish runs once, at the end.
with workflow("loops") as wf2:

    @task(inject_context=True, max_cycles=5)
    def refine(ctx: TaskExecutionContext, data: int | None = None) -> int:
        n = (data or 0) + 1
        if n < 3:
            ctx.next_iteration(n)
        return n

    @task
    def publish(refine: int) -> str:
        return f"v{refine}"

    refine >> publish
    assert wf2.execute() == "v3"

# goto: jump to an existing task and skip the static successors; terminate: stop early.
with workflow("route") as wf3:

    @task(inject_context=True)
    def triage(ctx: TaskExecutionContext, severity: str) -> None:
        if severity == "high":
            ctx.next_task(page_oncall, goto=True)  # skips `ticket`

    @task
    def ticket() -> str:
        return "ticket filed"

    @task(inject_context=True)
    def page_oncall(ctx: TaskExecutionContext) -> str:
        ctx.terminate_workflow("paged; nothing else to do")
        return "paged"

    triage >> ticket >> page_oncall
    assert wf3.execute(initial_channel={"severity": "high"}) == "paged"
    _, ctx = wf3.execute(initial_channel={"severity": "low"}, ret_context=True)
    assert ctx.completed_tasks == ["triage", "ticket", "page_oncall"]
    assert ctx.stop_reason == "terminate_workflow"
print("dynamic tasks: ok")
