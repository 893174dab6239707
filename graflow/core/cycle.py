"""Iteration budgets: ``cycle_count`` per base task id."""

from __future__ import annotations

import re

from graflow.exceptions import CycleLimitExceededError

_CYCLE_SUFFIX = re.compile(r"(?:_cycle_\d+_[0-9a-f]{8})+$")


def base_task_id(task_id: str) -> str:
    """The base of an iteration id: trailing ``_cycle_{n}_{hex}`` segments removed."""
    return _CYCLE_SUFFIX.sub("", task_id) if "_cycle_" in task_id else task_id


class CycleController:
    """Counts activations of each base id and bounds ``next_iteration``."""

    def __init__(self, default_max_cycles: int = 100) -> None:
        self.default_max_cycles = default_max_cycles
        self.cycle_counts: dict[str, int] = {}
        self.node_max_cycles: dict[str, int] = {}

    def set_node_max_cycles(self, node_id: str, max_cycles: int) -> None:
        self.node_max_cycles[node_id] = max_cycles

    def get_max_cycles_for_node(self, node_id: str) -> int:
        return self.node_max_cycles.get(node_id, self.default_max_cycles)

    def get_cycle_count(self, node_id: str) -> int:
        return self.cycle_counts.get(node_id, 0)

    def increment(self, node_id: str) -> int:
        count = self.cycle_counts.get(node_id, 0) + 1
        self.cycle_counts[node_id] = count
        return count

    def accept_next_cycle(self, node_id: str) -> bool:
        return self.get_cycle_count(node_id) < self.get_max_cycles_for_node(node_id)

    def check_cycle_limit(self, node_id: str) -> None:
        if not self.accept_next_cycle(node_id):
            raise CycleLimitExceededError(
                node_id, self.get_cycle_count(node_id), self.get_max_cycles_for_node(node_id)
            )


__all__ = ["CycleController", "base_task_id"]
