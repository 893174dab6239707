"""The graph's building blocks and the operators that compose them.

``Executable`` is the base of every node; ``>>`` makes a ``SequentialTask`` (a chain
handle) and ``|`` a ``ParallelGroup`` (a group node). They live in one module because
each operator of the base class builds one of its subclasses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from graflow.core.coordinator import CoordinationBackend
from graflow.core.handlers.group_policy import (
    GroupExecutionPolicy,
    StrictGroupPolicy,
    canonicalize_group_policy,
    resolve_policy,
)
from graflow.core.scope import get_current_workflow_context, operator_workflow, registration_target
from graflow.exceptions import GraflowRuntimeError

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext
    from graflow.core.workflow import WorkflowContext


class Executable(ABC):
    """A node of the graph: has an id, runs, and composes with operators."""

    _execution_context: ExecutionContext | None = None
    handler_type: str = "direct"

    @property
    @abstractmethod
    def task_id(self) -> str:
        """The node id."""

    @abstractmethod
    def run(self) -> Any:
        """Run once."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.run()

    # -- execution context ---------------------------------------------------------
    def set_execution_context(self, context: ExecutionContext | None) -> None:
        self._execution_context = context

    def get_execution_context(self) -> ExecutionContext:
        ctx = self._execution_context
        if ctx is None:
            raise GraflowRuntimeError(
                f"task {self.task_id!r} has no execution context bound; run it inside a "
                "workflow (wf.execute()) or call set_execution_context() first"
            )
        return ctx

    # -- registration --------------------------------------------------------------
    def _register(self, wf: WorkflowContext) -> None:
        """Add this node to ``wf``'s graph if it is not there yet: a task defined outside
        the workflow joins it on its first use in an operator."""
        wf.graph.add_node(self, skip_if_exists=True)

    # -- operators -----------------------------------------------------------------
    def __rshift__(self, other: Executable) -> SequentialTask:
        return link(self, other)

    def __lshift__(self, other: Executable) -> SequentialTask:
        return link(other, self)

    def __or__(self, other: Executable) -> ParallelGroup:
        return combine(self, other)

    def __ror__(self, other: Executable) -> ParallelGroup:
        return combine(other, self)

    def __getstate__(self) -> dict[str, Any]:
        # A bound context (and any Redis client it holds) never travels with a task.
        state = self.__dict__.copy()
        state.pop("_execution_context", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def check_executable(value: object, op: str) -> Executable:
    """Operands of ``>>``/``|`` must be tasks; say which value was not."""
    if not isinstance(value, Executable):
        raise TypeError(
            f"unsupported operand for {op}: {type(value).__name__} {value!r:.60}; "
            "both sides must be tasks (decorate functions with @task)"
        )
    return value


class Task(Executable):
    """A no-op node (placeholder, join point)."""

    def __init__(self, task_id: str, register_to_context: bool = True) -> None:
        self._task_id = task_id
        if register_to_context:
            wf = registration_target()
            if wf is not None:
                wf.graph.add_node(self)

    @property
    def task_id(self) -> str:
        return self._task_id

    def run(self) -> Any:
        return None

    def __repr__(self) -> str:
        return f"Task({self._task_id!r})"


# Its public home is graflow.core.task: pickles and graph fingerprints name it there.
Task.__module__ = "graflow.core.task"


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
    check_executable(left, ">>")
    check_executable(right, ">>")
    wf = operator_workflow()
    left._register(wf)
    right._register(wf)
    wf.graph.add_edge(tail(left).task_id, head(right).task_id)
    parts = left.tasks if isinstance(left, SequentialTask) else [left]
    return SequentialTask([*parts, right])


def _is_connection(value: object) -> bool:
    """A redis-py client, pool or connection: things that hold sockets and locks."""
    return type(value).__module__.split(".")[0] == "redis"


class ParallelGroup(Executable):
    """A group node; its members are in ``tasks`` and are not linked to it by edges."""

    #: A Redis client given in ``backend_config``: this process only, never pickled.
    _backend_client: Any = None
    #: Whether ``with_execution`` named a backend (upstream reports None until then).
    _backend_given = False

    def __init__(
        self, tasks: list[Executable], name: str | None = None, register_to_context: bool = True
    ) -> None:
        """``register_to_context=False`` makes a group outside any workflow's graph (one
        ``GroupExecutor`` runs for its caller)."""
        self.tasks: list[Executable] = [head(check_executable(t, "|")) for t in tasks]
        self._sources: list[Executable] = list(tasks)
        wf = registration_target() if register_to_context else None
        self._task_id = name or (wf.get_next_group_name() if wf else f"ParallelGroup_{id(self):x}")
        self.policy: GroupExecutionPolicy = StrictGroupPolicy()
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
        """Set where branches run and the policy; each None keeps the current value, and
        ``backend_config`` is merged into the current one (as upstream)."""
        if backend is not None:
            self.backend = CoordinationBackend.parse(backend)
            self._backend_given = True
        if backend_config is not None:
            config = dict(backend_config)
            # A live connection (upstream documents passing "redis_client") stays in this
            # process: the group's pickle — sent to workers, kept in checkpoints — holds
            # none. Workers connect on their own; here the coordinator uses it.
            live = {k: config.pop(k) for k in list(config) if _is_connection(config[k])}
            self.backend_config = {**self.backend_config, **config}  # merged, as upstream
            if live:
                self._backend_client = live.get("redis_client") or next(iter(live.values()))
        if policy is not None:
            self.policy = resolve_policy(policy)
        return self

    @property
    def _execution_config(self) -> dict[str, Any]:
        """Upstream's record of ``with_execution`` (read by upstream tests): a copy, built
        from ``backend`` (None until one is named: the default, threads), ``backend_config``
        and ``policy`` (in ``canonicalize_group_policy``'s form)."""
        return {
            "backend": self.backend if self._backend_given else None,
            "backend_config": dict(self.backend_config),
            "policy": canonicalize_group_policy(self.policy),
        }

    @property
    def backend_client(self) -> Any:
        """The Redis client given in ``backend_config`` (this process only; None after a pickle)."""
        return self._backend_client

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_backend_client", None)
        return state

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


__all__ = [
    "Executable", "ParallelGroup", "SequentialTask", "Task", "check_executable", "combine", "head", "link", "tail",
]
