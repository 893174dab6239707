"""``ExecutionContext``: one run's identity, settings, state, queue and channel."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from graflow.core.context_file import SavedContext
from graflow.core.current_task import CurrentTask
from graflow.core.cycle import CycleController
from graflow.core.engine import WorkflowEngine
from graflow.core.local_queue import LocalTaskQueue
from graflow.core.queue import TaskSpec
from graflow.core.retry import RetryController
from graflow.core.run_state import LocalRunState
from graflow.core.scope import in_task_body
from graflow.core.task_context import TaskExecutionContext
from graflow.trace.base import Tracer
from graflow.trace.guard import emit, hook_failed
from graflow.trace.noop import SilentTracer

if TYPE_CHECKING:
    from graflow.channels.base import Channel
    from graflow.core.executable import Executable
    from graflow.core.graph import TaskGraph
    from graflow.core.scheduler import SchedulingCore

_CONFIG_SECRET_KEYS = ("redis_client", "password")


class ExecutionContext(CurrentTask, SavedContext):
    """The state of one run; shared by every branch of a parallel group."""

    def __init__(
        self,
        graph: TaskGraph,
        start_node: str | None = None,
        max_steps: int = 10000,
        default_max_cycles: int = 10,
        default_max_retries: int = 0,
        steps: int = 0,
        channel_backend: str = "memory",
        config: dict[str, Any] | None = None,
        session_id: str | None = None,
        trace_id: str | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.graph = graph
        self.start_node = start_node
        self.max_steps = max_steps
        self.default_max_cycles = default_max_cycles
        self.default_max_retries = default_max_retries
        self.session_id = session_id or uuid.uuid4().hex
        self.trace_id = trace_id or self.session_id
        self.channel_backend = str(getattr(channel_backend, "value", channel_backend)).lower()
        raw_config = dict(config or {})
        self._channel_config = raw_config
        self.config = {k: v for k, v in raw_config.items() if k not in _CONFIG_SECRET_KEYS}
        self.tracer: Tracer = tracer or SilentTracer()  # hooks that cost one empty call each
        self.workflow_name = "workflow"
        self.cycle_controller = CycleController(default_max_cycles)
        self.retry_controller = RetryController(default_max_retries)
        self.state = LocalRunState(steps)
        self.stop_reason: str | None = None
        self.max_steps_reached = False
        self.graph_hash: str | None = None
        self.checkpoint_metadata: dict[str, Any] | None = None
        self.last_checkpoint_path: str | None = None
        self.checkpoint_requested = False
        self.checkpoint_request_metadata: dict[str, Any] | None = None
        self.checkpoint_request_path: str | None = None
        self._dynamic: dict[str, str | None] = {}  # dynamic task id -> the task that added it
        self._channel: Channel | None = None
        self._init_runtime()
        self.task_queue = LocalTaskQueue(self, start_node)

    def _init_runtime(self) -> None:
        self._lock = threading.RLock()
        self._local = threading.local()
        self._core: SchedulingCore | None = None
        self._core_key: tuple[int, str | None] | None = None

    @classmethod
    def create(
        cls,
        graph: TaskGraph,
        start_node: str | None = None,
        max_steps: int = 10000,
        default_max_cycles: int = 10,
        default_max_retries: int = 0,
        channel_backend: str = "memory",
        config: dict[str, Any] | None = None,
        session_id: str | None = None,
        trace_id: str | None = None,
        tracer: Tracer | None = None,
    ) -> ExecutionContext:
        """A context with the start node (or the single start candidate) queued."""
        if start_node is None:
            candidates = graph.get_start_nodes()
            if len(candidates) == 1:
                start_node = candidates[0]
        return cls(
            graph,
            start_node,
            max_steps=max_steps,
            default_max_cycles=default_max_cycles,
            default_max_retries=default_max_retries,
            channel_backend=channel_backend,
            config=config,
            session_id=session_id,
            trace_id=trace_id,
            tracer=tracer,
        )

    # -- channel -------------------------------------------------------------------
    @property
    def channel(self) -> Channel:
        ch = self._channel
        if ch is None:
            from graflow.channels.factory import ChannelFactory

            with self._lock:  # branches on threads may ask first; make exactly one
                ch = self._channel
                if ch is None:
                    ch = self._channel = ChannelFactory.create_channel(
                        self.channel_backend, name=self.session_id, **self._channel_config
                    )
        return ch

    @channel.setter
    def channel(self, value: Channel) -> None:
        self._channel = value

    # -- queue and state -------------------------------------------------------------
    @property
    def queue(self) -> LocalTaskQueue:
        return self.task_queue

    @property
    def steps(self) -> int:
        return self.state.steps

    @steps.setter
    def steps(self, value: int) -> None:
        self.state.steps = value

    @property
    def completed_tasks(self) -> list[str]:
        return self.state.completed

    def add_to_queue(self, executable: Executable) -> None:
        self.task_queue.enqueue(TaskSpec(executable, self, trace_id=self.trace_id))
        emit(self.tracer.on_task_queued, executable, self)

    def get_next_task(self) -> str | None:
        return self.task_queue.get_next_task()

    def is_completed(self) -> bool:
        return self.task_queue.is_empty()

    def increment_step(self) -> None:
        with self._lock:
            self.state.steps += 1

    def mark_task_completed(self, task_id: str) -> None:
        with self._lock:
            self.state.record_completion(task_id)

    def set_result(self, task_id: str, result: Any) -> None:
        self.channel.set(f"{task_id}.__result__", result)

    def get_result(self, task_id: str, default: Any = None) -> Any:
        return self.channel.get(f"{task_id}.__result__", default)

    # -- tasks: the graph, grown by next_task/next_iteration during the run --------
    def get_task(self, task_id: str) -> Executable | None:
        graph = self.graph
        return graph.task(task_id) or graph.find(task_id)

    def is_known(self, task_id: str) -> bool:
        """In the known set: a node when the run started, or added during it (docs/execution.md)."""
        return task_id in self.graph

    def is_dynamic(self, task_id: str) -> bool:
        return task_id in self._dynamic

    @property
    def known_dynamic(self) -> list[str]:
        return list(self._dynamic)

    def add_dynamic(
        self, executable: Executable, parent_task_id: str | None = None, is_iteration: bool = False
    ) -> None:
        """Add (or replace) a task created during the run; it joins the known set."""
        task_id = executable.task_id
        with self._lock:
            self.graph.set_node(task_id, executable)
            self._dynamic[task_id] = parent_task_id

    def schedule_dynamic(self, executable: Executable, tc: TaskExecutionContext, dynamic: bool) -> TaskSpec:
        """Queue an activation a running task asked for, on that task's queue."""
        spec = TaskSpec(
            executable, self, trace_id=self.trace_id, parent_task_id=tc.task_id, dynamic=dynamic
        )
        sink = tc.spec.group_id if tc.spec is not None else None
        queue = self._queue_for(tc)
        spec.group_id = sink
        with self._lock:
            self.state.clear_arrivals(executable.task_id)
            queue.enqueue(spec)
        emit(self.tracer.on_task_queued, executable, self)
        return spec

    def _queue_for(self, tc: TaskExecutionContext) -> LocalTaskQueue:
        queue = getattr(self._local, "queue", None)
        return queue if queue is not None else self.task_queue

    @contextlib.contextmanager
    def branch_queue(self, queue: LocalTaskQueue) -> Iterator[None]:
        """Route activations scheduled on this thread to a branch's queue."""
        previous = getattr(self._local, "queue", None)
        self._local.queue = queue
        try:
            yield
        finally:
            self._local.queue = previous

    # -- the scheduling core -----------------------------------------------------------
    @property
    def core(self) -> SchedulingCore:
        """The core for the graph as it is now (rebuilt when edges change)."""
        key = (self.graph.version, self.start_node)
        core = self._core
        if core is None or self._core_key != key:
            from graflow.core.scheduler import JoinPlan, SchedulingCore

            graph = self.graph
            cache = graph.plan_cache
            plan = cache.get(key)
            if plan is None:
                plan = cache[key] = JoinPlan(
                    graph.nodes, graph.out_edges(), graph.group_members(), self.start_node
                )
            core = self._core = SchedulingCore(plan)
            self._core_key = key
        return core

    # -- attempts --------------------------------------------------------------------
    def create_task_context(self, task_id: str) -> TaskExecutionContext:
        from graflow.core.cycle import base_task_id

        return TaskExecutionContext(task_id, self, base_id=base_task_id(task_id))

    def begin_attempt(self, task: Executable, spec: TaskSpec | None) -> TaskExecutionContext:
        """Apply the task's limits, count the cycle, call ``on_task_start``, push and bind a task context.

        The hook runs before the push, as upstream's: ``current_task_id`` is then the
        task that scheduled this one, if it is still running, else None.
        """
        base = getattr(task, "base_id", None) or task.task_id
        max_cycles = getattr(task, "max_cycles", None)
        if max_cycles is not None:
            self.cycle_controller.node_max_cycles[base] = max_cycles
        policy = getattr(task, "retry_policy", None)
        if policy is not None:
            self.retry_controller.node_policies[base] = policy
        else:
            max_retries = getattr(task, "max_retries", None)
            if max_retries is not None:
                self.retry_controller.node_max_retries[base] = max_retries
        count = self.count_cycle(base, spec)
        tc = TaskExecutionContext(task.task_id, self, spec, base, count)
        tracer = self.tracer
        if type(tracer) is not SilentTracer:  # the default: skip the no-op calls
            try:
                tracer.on_task_start(task, self)
            except Exception as exc:
                hook_failed(tracer, "on_task_start", exc)
        self.push_task_context(tc)
        task.set_execution_context(self)
        return tc

    def count_cycle(self, base: str, spec: TaskSpec | None) -> int:
        """The base's cycle count for this attempt: counted on an activation's first attempt."""
        with self._lock:
            if spec is None or (spec.attempt == 1 and not spec.resuming):
                return self.cycle_controller.increment(base)
            return self.cycle_controller.cycle_counts.get(base, 0)

    def end_attempt(self, task: Executable, result: Any = None, error: Exception | None = None) -> None:
        """Call ``on_task_end`` (the task context still pushed, as upstream), then unbind and pop."""
        tracer = self.tracer
        if type(tracer) is not SilentTracer:
            try:
                tracer.on_task_end(task, self, result=result, error=error)
            except Exception as exc:
                hook_failed(tracer, "on_task_end", exc)
        task.set_execution_context(None)
        self.pop_task_context()

    @contextlib.contextmanager
    def executing_task(self, task: Executable, spec: TaskSpec | None = None) -> Iterator[TaskExecutionContext]:
        """Wrap one attempt: limits, cycle count, task context, binding and tracer hooks."""
        tc = self.begin_attempt(task, spec)
        token = in_task_body.set(True)
        error: Exception | None = None
        try:
            yield tc
        except Exception as exc:
            error = exc
            raise
        finally:
            in_task_body.reset(token)
            self.end_attempt(task, error=error)

    # -- checkpoint bookkeeping (files: graflow.core.checkpoint) ------------------------
    def note_checkpoint_request(self, metadata: dict[str, Any], path: str | None) -> None:
        with self._lock:
            self.checkpoint_requested = True
            self.checkpoint_request_metadata = metadata
            self.checkpoint_request_path = path

    def clear_checkpoint_request(self) -> None:
        with self._lock:
            self.checkpoint_requested = False
            self.checkpoint_request_metadata = None
            self.checkpoint_request_path = None

    def get_checkpoint_state(self) -> dict[str, Any]:
        from graflow.core.checkpoint_state import build_state

        return build_state(self)

    def write_immediate_checkpoint(
        self, tc: TaskExecutionContext, metadata: dict[str, Any], path: str | None
    ) -> Any:
        from graflow.core.checkpoint_writer import write_checkpoint

        resuming = tc.spec.group_id if tc.spec is not None and tc.spec.group_id else tc.task_id
        return write_checkpoint(self, path, metadata, resuming, None)

    # -- running, saving --------------------------------------------------------------
    def execute(self) -> Any:
        return WorkflowEngine().execute(self)

    def get_channel(self) -> Channel:
        """The run's channel (upstream has it here too, beside ``TaskExecutionContext``'s)."""
        return self.channel

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_lock", "_local", "_core", "_core_key"):
            state.pop(name, None)
        state["tracer"] = None
        state["_channel_config"] = {
            k: v for k, v in self._channel_config.items() if k not in _CONFIG_SECRET_KEYS
        }
        # The signing key never travels inside a pickle (a checkpoint would hand it out).
        state["_channel_config"].pop("secret_key", None)
        state["config"] = {k: v for k, v in self.config.items() if k != "secret_key"}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.tracer = SilentTracer()
        self.checkpoint_requested = False
        self.checkpoint_request_metadata = None
        self.checkpoint_request_path = None
        self._init_runtime()

    def __repr__(self) -> str:
        return (
            f"ExecutionContext(session_id={self.session_id!r}, steps={self.steps}, "
            f"completed={len(self.completed_tasks)}, queued={self.task_queue.size()})"
        )


def create_execution_context(
    start_node: str = "ROOT", max_steps: int = 10, tracer: Tracer | None = None
) -> ExecutionContext:
    """A context over a one-node placeholder graph (upstream helper)."""
    from graflow.core.executable import Task
    from graflow.core.graph import TaskGraph

    graph = TaskGraph()
    graph.add_node(Task(start_node, register_to_context=False))
    return ExecutionContext(graph, start_node, max_steps=max_steps, tracer=tracer)


def execute_with_cycles(graph: TaskGraph, start_node: str, max_steps: int = 10) -> Any:
    """Run ``graph`` from ``start_node`` (upstream helper)."""
    return WorkflowEngine().execute_with_cycles(graph, start_node, max_steps)


WorkflowEngine.context_factory = ExecutionContext.create


__all__ = [
    "ExecutionContext",
    "TaskExecutionContext",
    "create_execution_context",
    "execute_with_cycles",
]
