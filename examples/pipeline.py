"""A pipeline whose parameters are resolved from upstream results and the channel.

    python examples/pipeline.py

A parameter named after an upstream task receives that task's result; any other
parameter is read from the channel (``initial_channel``), else takes its default.
"""

from graflow import task, workflow

with workflow("pipeline") as wf:

    @task
    def load(n: int) -> list[int]:  # n comes from the channel
        return list(range(n))

    @task
    def total(load: list[int]) -> int:  # receives load's result
        return sum(load)

    @task
    def double(total: int, factor: int = 2) -> int:  # factor: channel, else the default
        return total * factor

    load >> total >> double
    print(wf.graph)  # an ASCII drawing of the graph

    assert wf.execute(initial_channel={"n": 5}) == 20  # sum(0..4) * 2
    result, ctx = wf.execute(initial_channel={"n": 5, "factor": 10}, ret_context=True)
    assert result == 100 and ctx.completed_tasks == ["load", "total", "double"]
    assert ctx.get_result("total") == 10
    print("result:", result)
