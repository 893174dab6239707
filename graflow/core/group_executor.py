"""Upstream's ``GroupExecutor`` and ``ThreadingCoordinator``, on the engine's one group path.

Upstream starts a parallel group by handing its members to a coordinator chosen per
call. Here a call builds a ``ParallelGroup`` that belongs to no workflow, configures
it with ``with_execution`` and runs it through the branch code the engine uses for
group nodes (``graflow.core.branches.run_detached``): whichever way a group starts,
one scheduling core decides what its members do.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar

from graflow.core.branches import run_detached
from graflow.core.coordinator import CoordinationBackend, TaskCoordinator
from graflow.core.engine import WorkflowEngine
from graflow.core.executable import Executable, ParallelGroup

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext
    from graflow.core.handlers.group_policy import GroupExecutionPolicy


def run_group_call(
    group_id: str,
    tasks: Sequence[Executable],
    execution_context: ExecutionContext,
    backend: CoordinationBackend,
    backend_config: dict[str, Any],
    policy: str | GroupExecutionPolicy,
    pool: Executor | None = None,
) -> None:
    """Run ``tasks`` as a group named ``group_id`` outside every workflow's graph,
    configured like one inside, through the engine's branch code (``run_detached``)."""
    for member in tasks:
        if not isinstance(member, Executable):
            raise TypeError(
                f"group {group_id!r}: member {member!r:.60} is a {type(member).__name__}, not a task; "
                "pass the @task functions (or other executables) to run"
            )
    group = ParallelGroup(list(tasks), name=group_id, register_to_context=False)
    group.with_execution(backend=backend, backend_config=backend_config, policy=policy)
    run_detached(WorkflowEngine(), execution_context, group, pool)


class GroupExecutor:
    """Runs a parallel group on a backend chosen per call (stateless, like upstream's)."""

    DEFAULT_BACKEND: ClassVar[CoordinationBackend] = CoordinationBackend.THREADING

    @staticmethod
    def _resolve_backend(backend: str | CoordinationBackend | None) -> CoordinationBackend:
        """``None`` means ``DEFAULT_BACKEND``; a name or a member otherwise (``ValueError``)."""
        if backend is None:
            return GroupExecutor.DEFAULT_BACKEND
        return CoordinationBackend.parse(backend)

    @staticmethod
    def execute_parallel_group(
        group_id: str,
        tasks: list[Executable],
        exec_context: ExecutionContext,
        *,
        backend: str | CoordinationBackend | None = None,
        backend_config: dict[str, Any] | None = None,
        policy: str | GroupExecutionPolicy = "strict",
    ) -> None:
        """Run ``tasks`` (and what they schedule) as group ``group_id`` in ``exec_context``,
        then apply ``policy``, which raises ``ParallelGroupError`` to fail the group.

        ``backend_config`` wins over the context's ``config``, as upstream merges them;
        ``thread_count`` sizes the threads, the Redis keys are those of ``with_execution``."""
        resolved = GroupExecutor._resolve_backend(backend)
        config = {**getattr(exec_context, "config", {}), **(backend_config or {})}
        run_group_call(group_id, tasks, exec_context, resolved, config, policy)

    @staticmethod
    def direct_execute(
        group_id: str,
        tasks: list[Executable],
        execution_context: ExecutionContext,
        policy_instance: GroupExecutionPolicy,
    ) -> None:
        """Run the members one after another in the calling thread, then the policy."""
        run_group_call(group_id, tasks, execution_context, CoordinationBackend.DIRECT, {}, policy_instance)


class ThreadingCoordinator(TaskCoordinator):
    """Upstream's thread backend: the members' branches on this coordinator's threads."""

    def __init__(self, thread_count: int | None = None) -> None:
        self.thread_count: int = thread_count or os.cpu_count() or 1
        self._executor: ThreadPoolExecutor | None = None

    def _ensure_executor(self) -> ThreadPoolExecutor:
        """The threads start on first use and serve every group until ``shutdown``."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.thread_count, thread_name_prefix="ThreadingCoordinator"
            )
        return self._executor

    def execute_group(
        self,
        group_id: str,
        tasks: list[Executable],
        execution_context: ExecutionContext,
        policy: GroupExecutionPolicy,
    ) -> None:
        run_group_call(group_id, tasks, execution_context, CoordinationBackend.THREADING,
                       {"thread_count": self.thread_count}, policy, self._ensure_executor())  # fmt: skip

    def shutdown(self) -> None:
        """Stop the threads (waiting for running branches); the next group starts new ones."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


__all__ = ["GroupExecutor", "ThreadingCoordinator", "run_group_call"]
