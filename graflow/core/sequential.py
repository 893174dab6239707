"""``SequentialTask``: what ``>>`` returns. It is a chain handle, not a graph node."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graflow.core.executable import Executable, check_executable


class SequentialTask(Executable):
    """An ordered chain of executables whose ends link to other nodes."""

    def __init__(self, tasks: list[Executable]) -> None:
        if not tasks:
            raise ValueError("SequentialTask needs at least one task")
        self.tasks = list(tasks)

    @property
    def task_id(self) -> str:
        return self.leftmost.task_id

    @property
    def leftmost(self) -> Executable:
        first = self.tasks[0]
        return first.leftmost if isinstance(first, SequentialTask) else first

    @property
    def rightmost(self) -> Executable:
        last = self.tasks[-1]
        return last.rightmost if isinstance(last, SequentialTask) else last

    def run(self) -> Any:
        return self.leftmost.run()

    def _register(self, wf: Any) -> None:
        for t in self.tasks:
            t._register(wf)

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, index: int) -> Executable:
        return self.tasks[index]

    def __iter__(self) -> Iterator[Executable]:
        return iter(self.tasks)

    def __repr__(self) -> str:
        return "SequentialTask(" + " >> ".join(t.task_id for t in self.tasks) + ")"


def head(x: Executable) -> Executable:
    """The node an incoming edge attaches to."""
    return x.leftmost if isinstance(x, SequentialTask) else x


def tail(x: Executable) -> Executable:
    """The node an outgoing edge leaves from."""
    return x.rightmost if isinstance(x, SequentialTask) else x


def link(left: Executable, right: Executable) -> SequentialTask:
    """``left >> right``: register both, add the edge ``tail(left) -> head(right)``."""
    from graflow.core.workflow import operator_workflow

    check_executable(left, ">>")
    check_executable(right, ">>")
    wf = operator_workflow()
    left._register(wf)
    right._register(wf)
    wf.graph.add_edge(tail(left).task_id, head(right).task_id)
    parts = left.tasks if isinstance(left, SequentialTask) else [left]
    return SequentialTask([*parts, right])


__all__ = ["SequentialTask", "head", "link", "tail"]
