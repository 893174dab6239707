"""The in-process run state the scheduling core mutates: completions, steps, join arrivals."""

from __future__ import annotations

from typing import Any


class LocalRunState:
    """Plain Python state of one run; pickled into checkpoints with the context."""

    __slots__ = ("arrivals", "completed", "completed_set", "last_completed", "steps")

    def __init__(self, steps: int = 0) -> None:
        self.completed: list[str] = []
        self.completed_set: set[str] = set()
        self.steps = steps
        self.arrivals: dict[str, set[str]] = {}
        self.last_completed: str | None = None

    def record_completion(self, task_id: str) -> None:
        if task_id not in self.completed_set:
            self.completed_set.add(task_id)
            self.completed.append(task_id)
        self.steps += 1
        self.last_completed = task_id

    def arrive(self, target: str, pred: str, needed: frozenset[str]) -> bool:
        got = self.arrivals.get(target)
        if got is None:
            got = self.arrivals[target] = set()
        got.add(pred)
        if got >= needed:
            del self.arrivals[target]
            return True
        return False

    def clear_arrivals(self, target: str) -> None:
        if self.arrivals:
            self.arrivals.pop(target, None)

    def waiting(self) -> dict[str, list[str]]:
        """Tasks with partial arrivals (reported when a run ends with them)."""
        return {t: sorted(ps) for t, ps in self.arrivals.items() if ps}

    def __getstate__(self) -> dict[str, Any]:
        return {
            "completed": self.completed,
            "steps": self.steps,
            "arrivals": self.arrivals,
            "last_completed": self.last_completed,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.completed = list(state["completed"])
        self.completed_set = set(self.completed)
        self.steps = state["steps"]
        self.arrivals = {k: set(v) for k, v in state["arrivals"].items()}
        self.last_completed = state["last_completed"]


__all__ = ["LocalRunState"]
