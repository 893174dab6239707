"""Checkpoint, crash, resume: the run continues after the last checkpoint.

    python examples/checkpoint.py

``ctx.checkpoint()`` is deferred: the checkpoint is written after the task completes,
so it lists that task as completed and its successors as pending. A resume re-runs
only the pending tasks (each from its start, so tasks must be idempotent).
"""

import os
import tempfile

from graflow import TaskExecutionContext, task, workflow
from graflow.core.checkpoint import CheckpointManager
from graflow.core.engine import WorkflowEngine

workdir = tempfile.mkdtemp(prefix="graflow-checkpoint-")
log = os.path.join(workdir, "ran.log")


def record(name: str) -> None:  # restored tasks are copies: log to a file, not a global
    with open(log, "a") as f:
        f.write(name + "\n")


with workflow("ckpt") as wf:

    @task(inject_context=True)
    def train(ctx: TaskExecutionContext) -> str:
        record("train")
        ctx.checkpoint(path=f"{workdir}/after_train", metadata={"stage": "trained"})
        return "model-v1"

    @task
    def publish(train: str) -> str:
        record("publish")
        if os.environ.get("PUBLISH_DOWN") == "1":
            raise RuntimeError("registry unreachable")
        return f"published {train}"

    train >> publish
    os.environ["PUBLISH_DOWN"] = "1"
    try:
        wf.execute()
    except Exception as exc:
        print("run failed:", exc)

os.environ["PUBLISH_DOWN"] = "0"  # the outage is over
ctx, meta = CheckpointManager.resume_from_checkpoint(f"{workdir}/after_train")
print(f"resuming at step {meta.steps}, completed {ctx.completed_tasks}, {meta.user_metadata}")
assert WorkflowEngine().execute(ctx) == "published model-v1"
with open(log) as f:
    assert f.read().split() == ["train", "publish", "publish"]  # train never ran again
print(sorted(os.listdir(workdir)))  # the three files of one checkpoint, and the log
