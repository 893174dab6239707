"""Retries with backoff, and what happens when they run out.

    python examples/retries.py

Tasks may run again (retries, failover, resume), so they keep their state in the
run's channel, never in globals: on a worker pool each attempt may be another process.
"""

from graflow import RetryPolicy, TaskExecutionContext, task, workflow
from graflow.exceptions import RetryLimitExceededError

with workflow("retries") as wf:

    @task(inject_context=True, retry_policy=RetryPolicy(max_retries=3, initial_interval=0.1))
    def flaky(ctx: TaskExecutionContext) -> str:
        calls = ctx.get_channel().atomic_add("calls")  # survives the failed attempts
        if calls < 3:
            raise ConnectionError(f"attempt {ctx.attempt} failed")
        return f"ok on attempt {ctx.attempt}"  # retries wait 0.1 s, then 0.2 s

    @task
    def use(flaky: str) -> str:
        return flaky.upper()

    flaky >> use
    assert wf.execute() == "OK ON ATTEMPT 3"

with workflow("exhausted") as wf2:

    @task(max_retries=1)
    def broken() -> None:
        raise ValueError("bad input")

    try:
        wf2.execute()
    except RetryLimitExceededError as exc:
        assert exc.task_id == "broken" and exc.max_retries == 1
        assert isinstance(exc.cause, ValueError)
        print("gave up:", exc)
print("retries: ok")
