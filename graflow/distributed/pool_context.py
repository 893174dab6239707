"""An ``ExecutionContext`` bound to one pooled session for the length of one attempt.

The task sees the ordinary API (channel, results, ``next_task``, iterations,
checkpoints). What differs is where state lives: results are buffered and written
by the atomic commit, cycle and retry counts come from the session, and tasks added
by other workers are found in the session's dynamic-task store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graflow.codec import Purpose, SecretKey, loads
from graflow.core.context import ExecutionContext
from graflow.distributed.session import SessionStore

if TYPE_CHECKING:
    from graflow.channels.redis_channel import RedisChannel
    from graflow.core.executable import Executable
    from graflow.core.graph import TaskGraph
    from graflow.core.queue import TaskSpec
    from graflow.core.task_context import TaskExecutionContext


class PoolContext(ExecutionContext):
    """The run's context as one worker sees it while it runs one activation.

    ``graph`` is the worker's cached graph, shared with other activations: it is
    copied on the first change (a dynamic task added or loaded), not per activation.
    """

    def __init__(
        self,
        graph: TaskGraph,
        meta: dict[str, str],
        store: SessionStore,
        channel: RedisChannel,
        secret_key: SecretKey,
    ) -> None:
        super().__init__(
            graph,
            None,
            max_steps=int(meta.get("max_steps") or 10000),
            default_max_cycles=int(meta.get("default_max_cycles") or 10),
            default_max_retries=int(meta.get("default_max_retries") or 0),
            steps=int(meta.get("steps") or 0),
            channel_backend="redis",
            config={"key_prefix": store.prefix},
            session_id=store.session_id,
            trace_id=meta.get("trace_id") or store.session_id,
        )
        self.start_node = meta.get("start_node") or None
        self.graph_hash = meta.get("graph_hash") or None
        self.workflow_name = meta.get("workflow_name") or "workflow"
        self.store = store
        self.secret_key = secret_key
        self._channel = channel
        self.results: dict[str, Any] = {}
        self.cycle_for_attempt = 0
        self.new_dynamic: dict[str, Executable] = {}
        self._graph_owned = False

    def _own_graph(self) -> TaskGraph:
        """The graph, copied first if it is still the shared one (copy-on-write)."""
        with self._lock:
            if not self._graph_owned:
                self.graph = self.graph.copy()
                self._graph_owned = True
            return self.graph

    # -- state that lives in the session -------------------------------------------
    def count_cycle(self, base: str, spec: TaskSpec | None) -> int:
        """Counted by the session's START step (once per activation, whoever runs it)."""
        self.cycle_controller.cycle_counts[base] = self.cycle_for_attempt
        return self.cycle_for_attempt

    def set_result(self, task_id: str, result: Any) -> None:
        self.results[f"{task_id}.__result__"] = result

    def get_result(self, task_id: str, default: Any = None) -> Any:
        key = f"{task_id}.__result__"
        if key in self.results:
            return self.results[key]
        return self.channel.get(key, default)

    # -- tasks: the graph plus the session's dynamic tasks ----------------------------
    def get_task(self, task_id: str) -> Executable | None:
        task = super().get_task(task_id)
        if task is None:
            task = self.load_dynamic(task_id)
        return task

    def load_dynamic(self, task_id: str, version: str | None = None) -> Executable | None:
        blob = self.store.dynamic_blob(task_id, version)
        if blob is None:
            return None
        task: Executable = loads(
            blob, Purpose.TASK, secret_key=self.secret_key,
            source=f"Redis key {self.store.keys.dynamic_task(task_id)}", from_redis=True,
        )  # fmt: skip
        self._own_graph().set_node(task_id, task)
        self._dynamic.setdefault(task_id, None)
        return task

    def is_known(self, task_id: str) -> bool:
        return task_id in self.graph or self.store.is_known(task_id)

    def is_dynamic(self, task_id: str) -> bool:
        return task_id in self._dynamic or (task_id not in self.graph and self.store.is_known(task_id))

    def add_dynamic(
        self, executable: Executable, parent_task_id: str | None = None, is_iteration: bool = False
    ) -> None:
        self._own_graph()
        super().add_dynamic(executable, parent_task_id, is_iteration)
        self.new_dynamic[executable.task_id] = executable

    def write_immediate_checkpoint(
        self, tc: TaskExecutionContext, metadata: dict[str, Any], path: str | None
    ) -> Any:
        from graflow.distributed.pool_checkpoint import write_pool_checkpoint

        spec = tc.spec
        resuming = spec.group_id if spec is not None and spec.group_id else tc.task_id
        return write_pool_checkpoint(self, path, metadata, resuming_task_id=resuming)


__all__ = ["PoolContext"]
