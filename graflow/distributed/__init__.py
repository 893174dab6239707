"""Distributed runs on rq workers: submit from an app, workers drive the run.

Importing this package imports redis, rq and msgspec; ``import graflow`` does not.
docs/life-of-a-task.md follows one run through these modules.
"""

from __future__ import annotations

from graflow.distributed.run import RunStatus, WorkflowRun
from graflow.distributed.spec import TaskSpec
from graflow.distributed.submit import submit

__all__ = ["RunStatus", "TaskSpec", "WorkflowRun", "submit"]
