"""Submit a run to a worker pool, let the producer go, re-attach from anywhere.

Start workers first, e.g. `graflow worker --url redis://localhost:6379/0 --concurrency 2`
or `docker compose -f deploy/docker-compose.yml up`, then:

    python examples/submit.py

Tasks defined in ``__main__`` travel to the workers by value; tasks in importable modules
must be importable on the workers too, with the same code.
"""

import os

from graflow import task, workflow
from graflow.distributed import WorkflowRun

URL = os.environ.get("GRAFLOW_REDIS_URL", "redis://localhost:6379/0")
PREFIX = os.environ.get("GRAFLOW_KEY_PREFIX", "graflow")  # workers serve queue == prefix

with workflow("remote") as wf:

    @task
    def square(x: int) -> int:
        return x * x

    @task
    def report(square: int) -> str:
        return str(square)

    square >> report
    run = wf.submit(URL, initial_channel={"x": 7}, queue=PREFIX, key_prefix=PREFIX)
    print("submitted", run.session_id)  # the producer may exit here; the pool runs it

# Any process can follow the run by its session id (`graflow status <id>` too).
again = WorkflowRun.attach(run.session_id, redis_url=URL, key_prefix=PREFIX)
assert again.wait(timeout=30) == "49" and again.get_result("square") == 49
status = again.status()
print(status.state, f"{status.completed} tasks completed")  # completed 2 tasks completed
