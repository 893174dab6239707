"""How a parallel group's member outcomes decide the group's success (see docs/execution.md).

Policies travel with the graph (in checkpoints and to workers), so they must pickle.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from graflow.exceptions import ParallelGroupError

if TYPE_CHECKING:
    from graflow.core.handler import TaskResult

logger = logging.getLogger("graflow.engine")


class GroupExecutionPolicy:
    """Base policy: subclasses implement ``on_group_finished`` and raise to fail the group."""

    name = "custom"

    def get_name(self) -> str:
        """The policy's name, as upstream: the class name unless a subclass says otherwise."""
        return type(self).__name__

    def on_group_finished(
        self, group_id: str, tasks: list[Any], results: dict[str, TaskResult], context: Any
    ) -> None:
        """Raise ``ParallelGroupError`` to fail the group; ``tasks`` are the member executables."""
        raise NotImplementedError

    @staticmethod
    def _split(
        group_id: str, tasks: list[Any], results: dict[str, TaskResult]
    ) -> tuple[list[str], list[tuple[str, str]], list[str]]:
        """Check that the result keys equal the member ids; split into failed and ok."""
        ids = [getattr(t, "task_id", t) for t in tasks]
        if set(results) != set(ids):
            raise ParallelGroupError(
                f"group {group_id!r}: result mismatch — members {sorted(ids)}, "
                f"results for {sorted(results)}",
                group_id,
                [],
                [t for t, r in results.items() if r.success],
            )
        failed = [
            (t, results[t].error_message or repr(results[t].error)) for t in ids if not results[t].success
        ]
        ok = [t for t in ids if results[t].success]
        return ids, failed, ok

    def canonical(self) -> str:
        """A stable description used by the graph fingerprint."""
        return f"{type(self).__module__}:{type(self).__qualname__}"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class StrictGroupPolicy(GroupExecutionPolicy):
    """Fails when any member failed (the default)."""

    name = "strict"

    def get_name(self) -> str:
        return "strict"

    def on_group_finished(
        self, group_id: str, tasks: list[Any], results: dict[str, TaskResult], context: Any
    ) -> None:
        ids, failed, ok = self._split(group_id, tasks, results)
        if failed:
            raise ParallelGroupError(
                f"group {group_id!r}: {len(failed)} of {len(ids)} members failed: "
                + ", ".join(f"{t} ({m})" for t, m in failed),
                group_id,
                failed,
                ok,
            )

    def canonical(self) -> str:
        return "strict"


class BestEffortGroupPolicy(GroupExecutionPolicy):
    """Never fails; failed members are logged."""

    name = "best_effort"

    def get_name(self) -> str:
        return "best_effort"

    def on_group_finished(
        self, group_id: str, tasks: list[Any], results: dict[str, TaskResult], context: Any
    ) -> None:
        _, failed, _ = self._split(group_id, tasks, results)
        for task_id, message in failed:
            logger.warning("group %s: member %s failed (best effort): %s", group_id, task_id, message)

    def canonical(self) -> str:
        return "best_effort"


class CriticalGroupPolicy(GroupExecutionPolicy):
    """Fails only when one of ``critical_task_ids`` failed."""

    name = "critical"

    def get_name(self) -> str:
        return "critical"

    def __init__(self, critical_task_ids: list[str]) -> None:
        if not critical_task_ids:
            raise ValueError("CriticalGroupPolicy needs at least one critical task id")
        self.critical_task_ids = list(critical_task_ids)

    def on_group_finished(
        self, group_id: str, tasks: list[Any], results: dict[str, TaskResult], context: Any
    ) -> None:
        ids, failed, ok = self._split(group_id, tasks, results)
        unknown = [t for t in self.critical_task_ids if t not in ids]
        if unknown:
            raise ValueError(
                f"CriticalGroupPolicy on group {group_id!r}: {unknown} are not members "
                f"(members: {sorted(ids)})"
            )
        critical = [(t, m) for t, m in failed if t in self.critical_task_ids]
        if critical:
            raise ParallelGroupError(
                f"group {group_id!r}: critical members failed: "
                + ", ".join(f"{t} ({m})" for t, m in critical),
                group_id,
                failed,
                ok,
            )

    def canonical(self) -> str:
        return f"critical:{sorted(self.critical_task_ids)}"

    def __repr__(self) -> str:
        return f"CriticalGroupPolicy({self.critical_task_ids!r})"


class AtLeastNGroupPolicy(GroupExecutionPolicy):
    """Fails when fewer than ``min_success`` members succeeded."""

    name = "at_least_n"

    def get_name(self) -> str:
        return f"at_least_{self.min_success}"

    def __init__(self, min_success: int) -> None:
        if min_success < 0:
            raise ValueError(f"AtLeastNGroupPolicy.min_success must be >= 0, got {min_success}")
        self.min_success = min_success

    def on_group_finished(
        self, group_id: str, tasks: list[Any], results: dict[str, TaskResult], context: Any
    ) -> None:
        ids, failed, ok = self._split(group_id, tasks, results)
        if self.min_success > len(ids):
            raise ValueError(
                f"AtLeastNGroupPolicy on group {group_id!r}: min_success={self.min_success} "
                f"exceeds the member count {len(ids)}"
            )
        if len(ok) < self.min_success:
            raise ParallelGroupError(
                f"group {group_id!r}: {len(ok)} of {len(ids)} members succeeded, "
                f"at least {self.min_success} required",
                group_id,
                failed,
                ok,
            )

    def canonical(self) -> str:
        return f"at_least:{self.min_success}"

    def __repr__(self) -> str:
        return f"AtLeastNGroupPolicy({self.min_success})"


def resolve_policy(policy: str | GroupExecutionPolicy) -> GroupExecutionPolicy:
    """Turn ``"strict"``/``"best_effort"`` or a policy object into a policy object."""
    if isinstance(policy, GroupExecutionPolicy):
        return policy
    if isinstance(policy, str):
        key = policy.strip().lower()
        if key == "strict":
            return StrictGroupPolicy()
        if key in ("best_effort", "best-effort", "besteffort"):
            return BestEffortGroupPolicy()
    raise ValueError(
        f"invalid group policy {policy!r}: use 'strict', 'best_effort' or a GroupExecutionPolicy"
    )


def canonicalize_group_policy(policy: str | GroupExecutionPolicy) -> str | dict[str, Any]:
    """Upstream's plain form of a policy: a name for strict and best effort, a dict for the
    others (a custom policy is kept as the object under ``"policy"``)."""
    if isinstance(policy, str):
        return policy
    if isinstance(policy, StrictGroupPolicy | BestEffortGroupPolicy):
        return policy.get_name()
    if isinstance(policy, CriticalGroupPolicy):
        return {"type": "critical", "critical_task_ids": sorted(policy.critical_task_ids)}
    if isinstance(policy, AtLeastNGroupPolicy):
        return {"type": "at_least_n", "min_success": policy.min_success}
    if isinstance(policy, GroupExecutionPolicy):
        return {"type": "__custom__", "policy": policy}
    raise TypeError(f"unsupported group policy {policy!r}; pass a name or a GroupExecutionPolicy")


def resolve_group_policy(policy: str | Mapping[str, Any] | GroupExecutionPolicy) -> GroupExecutionPolicy:
    """The policy object for a name, a ``canonicalize_group_policy`` form, or a policy."""
    if isinstance(policy, GroupExecutionPolicy | str):
        return resolve_policy(policy)
    if not isinstance(policy, Mapping):
        raise TypeError(f"unsupported group policy {policy!r}; pass a name, a dict or a GroupExecutionPolicy")
    kind = policy.get("type")
    if not isinstance(kind, str):
        raise ValueError(f"serialized group policy {dict(policy)!r} has no string 'type'; use the "
                         "form canonicalize_group_policy returns")  # fmt: skip
    kind = kind.lower()
    if kind == "critical":
        ids = policy.get("critical_task_ids")
        if not isinstance(ids, list):
            raise ValueError("a 'critical' group policy needs 'critical_task_ids' as a list of task ids")
        return CriticalGroupPolicy(ids)
    if kind == "at_least_n":
        n = policy.get("min_success")
        if not isinstance(n, int):
            raise ValueError("an 'at_least_n' group policy needs 'min_success' as an integer")
        return AtLeastNGroupPolicy(n)
    if kind == "__custom__":
        instance = policy.get("policy")
        if not isinstance(instance, GroupExecutionPolicy):
            raise ValueError("a '__custom__' group policy needs the GroupExecutionPolicy under 'policy'")
        return instance
    return resolve_policy(kind)


__all__ = [
    "AtLeastNGroupPolicy",
    "BestEffortGroupPolicy",
    "CriticalGroupPolicy",
    "GroupExecutionPolicy",
    "StrictGroupPolicy",
    "canonicalize_group_policy",
    "resolve_group_policy",
    "resolve_policy",
]
