"""The ``a → b`` workflow of the cross-version tests, importable by workers and producers.

``b`` adds 3 to ``a``'s ``n``: run with the producer's bytecode on a worker of another
Python minor version, this workflow once completed with 20 instead of 23.
"""

from __future__ import annotations

from graflow import task, workflow
from graflow.core.workflow import WorkflowContext


@task
def a() -> dict[str, int]:
    return {"n": 20}


@task
def b(a: dict[str, int]) -> int:
    return a["n"] + 3


def build() -> WorkflowContext:
    with workflow("xver") as wf:
        a >> b
    return wf
