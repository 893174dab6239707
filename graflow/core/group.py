"""``ParallelGroup``: a node whose members run as parallel branches (see docs/execution.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graflow.core.executable import Executable, check_executable
from graflow.core.handlers.group_policy import (
    GroupExecutionPolicy,
    StrictGroupPolicy,
    resolve_policy,
)
from graflow.core.sequential import head

if TYPE_CHECKING:
    from graflow.coordination.coordinator import CoordinationBackend
    from graflow.core.workflow import WorkflowContext


class ParallelGroup(Executable):
    """A group node; its members are in ``tasks`` and are not linked to it by edges."""

    def __init__(self, tasks: list[Executable], name: str | None = None) -> None:
        from graflow.core.workflow import registration_target

        self.tasks: list[Executable] = [head(check_executable(t, "|")) for t in tasks]
        self._sources: list[Executable] = list(tasks)
        wf = registration_target()
        self._task_id = name or (wf.get_next_group_name() if wf else f"ParallelGroup_{id(self):x}")
        self.policy: GroupExecutionPolicy = StrictGroupPolicy()
        from graflow.coordination.coordinator import CoordinationBackend

        self.backend: CoordinationBackend = CoordinationBackend.THREADING
        self.backend_config: dict[str, Any] = {}
        if wf is not None:
            self._register(wf)

    @property
    def task_id(self) -> str:
        return self._task_id

    @property
    def member_ids(self) -> list[str]:
        return [t.task_id for t in self.tasks]

    def run(self) -> Any:
        """Groups run through the engine (branches, policy); a bare run runs members in order."""
        for member in self.tasks:
            member.run()
        return None

    def _register(self, wf: WorkflowContext) -> None:
        for source in self._sources:
            source._register(wf)
        wf.graph.add_node(self, skip_if_exists=True)

    def _graph(self) -> Any:
        from graflow.core.workflow import get_current_workflow_context

        wf = get_current_workflow_context()
        return wf.graph if wf is not None else None

    def set_group_name(self, name: str) -> ParallelGroup:
        graph = self._graph()
        if graph is not None and self._task_id in graph:
            if name != self._task_id and name in graph:
                raise ValueError(f"cannot rename group to {name!r}: that id already exists")
            graph.rename_node(self._task_id, name)
        self._task_id = name
        return self

    def with_execution(
        self,
        backend: str | CoordinationBackend | None = None,
        backend_config: dict[str, Any] | None = None,
        policy: str | GroupExecutionPolicy | None = None,
    ) -> ParallelGroup:
        """Set where branches run and the policy; each None keeps the current value."""
        from graflow.coordination.coordinator import CoordinationBackend

        if backend is not None:
            self.backend = CoordinationBackend.parse(backend)
        if backend_config is not None:
            self.backend_config = dict(backend_config)
        if policy is not None:
            self.policy = resolve_policy(policy)
        return self

    def _append(self, x: Executable) -> None:
        self._sources.append(x)
        self.tasks.append(head(x))

    def _prepend(self, x: Executable) -> None:
        self._sources.insert(0, x)
        self.tasks.insert(0, head(x))

    def __repr__(self) -> str:
        return f"ParallelGroup({self._task_id!r}, {self.member_ids})"


def _has_edges(group: ParallelGroup, wf: WorkflowContext) -> bool:
    gid = group.task_id
    return bool(wf.graph.successors(gid) or wf.graph.predecessors(gid)) if gid in wf.graph else False


def combine(left: Executable, right: Executable) -> ParallelGroup:
    """``left | right``: extend a group, merge two edge-free groups, or make a new one."""
    from graflow.core.workflow import operator_workflow

    check_executable(left, "|")
    check_executable(right, "|")
    wf = operator_workflow()
    if isinstance(left, ParallelGroup) and isinstance(right, ParallelGroup):
        if not _has_edges(left, wf) and not _has_edges(right, wf):
            for member in right._sources:
                left._append(member)
            if right.task_id in wf.graph:
                wf.graph.remove_node(right.task_id)
            left._register(wf)
            return left
        return ParallelGroup([left, right])
    if isinstance(left, ParallelGroup):
        left._append(right)
        left._register(wf)
        return left
    if isinstance(right, ParallelGroup):
        right._prepend(left)
        right._register(wf)
        return right
    return ParallelGroup([left, right])


__all__ = ["ParallelGroup", "combine"]
