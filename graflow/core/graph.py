"""The task graph: plain dicts and insertion-ordered adjacency.

Plain dicts keep graph building fast and pickles small; ``nx_graph()`` builds a
networkx view on demand for users who want its algorithms.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from graflow.exceptions import DuplicateTaskError

if TYPE_CHECKING:
    from graflow.core.executable import Executable


class TaskGraph:
    """A directed graph of executables; static cycles are allowed."""

    def __init__(self) -> None:
        self._tasks: dict[str, Executable] = {}
        self._succ: dict[str, dict[str, None]] = {}
        self._pred: dict[str, dict[str, None]] = {}
        #: Bumped on every structural change; lets the scheduling core cache its plan.
        self.version = 0
        #: Join plans by (version, start node); never pickled.
        self.plan_cache: dict[Any, Any] = {}
        #: The three maps are shared with a copy (``copy``): the first change copies them.
        self._shared = False

    def _own(self) -> None:
        """Copy-on-write: take private maps before the first change after ``copy``."""
        if self._shared:
            self._tasks = dict(self._tasks)
            self._succ = {k: dict(v) for k, v in self._succ.items()}
            self._pred = {k: dict(v) for k, v in self._pred.items()}
            self._shared = False

    # -- nodes ---------------------------------------------------------------------
    def add_node(self, task: Executable, task_id: str | None = None, skip_if_exists: bool = False) -> None:
        node_id = task.task_id if task_id is None else task_id
        if node_id in self._tasks:
            if skip_if_exists:
                return
            raise DuplicateTaskError(node_id)
        self._own()
        self._tasks[node_id] = task
        self._succ.setdefault(node_id, {})
        self._pred.setdefault(node_id, {})
        self._touch(task)

    def _bump(self) -> None:
        # A changed graph gets a cache of its own: copies share one only while equal.
        self.version += 1
        self.plan_cache = {}

    def _touch(self, task: Executable) -> None:
        # Join plans depend on edges and group membership only: a plain node
        # added without edges leaves them valid (dynamic tasks stay cheap).
        from graflow.core.group import ParallelGroup

        if isinstance(task, ParallelGroup):
            self._bump()

    def set_node(self, task_id: str, task: Executable) -> None:
        """Replace the executable stored under an existing or new id (no edge change)."""
        self._own()
        if task_id not in self._tasks:
            self._succ.setdefault(task_id, {})
            self._pred.setdefault(task_id, {})
        self._tasks[task_id] = task
        self._touch(task)

    def has_node(self, task_id: str) -> bool:
        return self.find(task_id) is not None

    def get_node(self, task_id: str) -> Executable:
        task = self.find(task_id)
        if task is None:
            raise KeyError(f"no task {task_id!r} in the graph (nodes: {list(self._tasks)[:20]})")
        return task

    def find(self, task_id: str) -> Executable | None:
        """The executable for ``task_id``: a node, or a group member at any depth."""
        task = self._tasks.get(task_id)
        if task is not None:
            return task
        for node in self._tasks.values():
            found = _find_member(node, task_id)
            if found is not None:
                return found
        return None

    def task(self, task_id: str) -> Executable | None:
        """The node's executable (no member search); the hot-path lookup."""
        return self._tasks.get(task_id)

    def remove_node(self, task_id: str) -> None:
        if task_id not in self._tasks:
            raise KeyError(f"no task {task_id!r} in the graph")
        self._own()
        for s in self._succ.pop(task_id):
            self._pred[s].pop(task_id, None)
        for p in self._pred.pop(task_id):
            self._succ[p].pop(task_id, None)
        del self._tasks[task_id]
        self._bump()

    @property
    def nodes(self) -> list[str]:
        return list(self._tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[str]:
        return iter(self._tasks)

    # -- edges ---------------------------------------------------------------------
    def add_edge(self, from_node: str, to_node: str, **_attrs: Any) -> None:
        self._own()
        self._succ.setdefault(from_node, {})[to_node] = None
        self._pred.setdefault(to_node, {})[from_node] = None
        self._succ.setdefault(to_node, {})
        self._pred.setdefault(from_node, {})
        self._bump()

    def remove_edge(self, u: str, v: str) -> None:
        self._own()
        try:
            del self._succ[u][v]
            del self._pred[v][u]
        except KeyError:
            raise KeyError(f"no edge {u!r} -> {v!r}") from None
        self._bump()

    def has_edge(self, u: str, v: str) -> bool:
        return v in self._succ.get(u, {})

    @property
    def edges(self) -> list[tuple[str, str]]:
        return [(u, v) for u, vs in self._succ.items() for v in vs]

    def get_edges(self) -> list[tuple[str, str]]:
        return self.edges

    def successors(self, node: str) -> list[str]:
        return list(self._succ.get(node, ()))

    def predecessors(self, node: str) -> list[str]:
        return list(self._pred.get(node, ()))

    def out_edges(self) -> dict[str, dict[str, None]]:
        """The successor map itself (read-only by convention), for the scheduling core."""
        return self._succ

    # -- structure -----------------------------------------------------------------
    def group_members(self) -> dict[str, list[str]]:
        """Each group node's member ids, for reachability and start detection."""
        from graflow.core.group import ParallelGroup

        out: dict[str, list[str]] = {}
        for node_id, task in self._tasks.items():
            if isinstance(task, ParallelGroup):
                out[node_id] = [m.task_id for m in task.tasks]
        return out

    def get_parallel_group_members(self, group_id: str) -> list[str]:
        from graflow.core.group import ParallelGroup

        task = self.get_node(group_id)
        if not isinstance(task, ParallelGroup):
            raise ValueError(f"{group_id!r} is not a ParallelGroup")
        return [m.task_id for m in task.tasks]

    def all_group_member_ids(self) -> set[str]:
        """Ids that are members of some group node, at any depth."""
        from graflow.core.group import ParallelGroup

        members: set[str] = set()
        stack = [t for t in self._tasks.values() if isinstance(t, ParallelGroup)]
        while stack:
            group = stack.pop()
            for member in group.tasks:
                if member.task_id not in members:
                    members.add(member.task_id)
                    if isinstance(member, ParallelGroup):
                        stack.append(member)
        return members

    def get_start_nodes(self) -> list[str]:
        """Nodes with no incoming edge that are not group members."""
        members = self.all_group_member_ids()
        return [n for n in self._tasks if not self._pred.get(n) and n not in members]

    def detect_cycles(self) -> list[list[str]]:
        """The strongly connected components that contain a cycle."""
        from graflow.core.scheduler import strongly_connected

        comps = strongly_connected(self._tasks.keys(), self._succ)
        return [c for c in comps if len(c) > 1 or (c and c[0] in self._succ.get(c[0], {}))]

    def rename_node(self, old_task_id: str, new_task_id: str) -> None:
        old, new = old_task_id, new_task_id
        if old not in self._tasks:
            raise KeyError(f"no task {old!r} in the graph")
        if new in self._tasks:
            raise ValueError(f"cannot rename {old!r} to {new!r}: that id already exists")
        self._shared = False  # every map is rebuilt below
        self._tasks = {(new if k == old else k): v for k, v in self._tasks.items()}

        def ren(d: dict[str, dict[str, None]]) -> dict[str, dict[str, None]]:
            return {
                (new if k == old else k): {(new if x == old else x): None for x in vs}
                for k, vs in d.items()
            }

        self._succ = ren(self._succ)
        self._pred = ren(self._pred)
        self._bump()

    def clear(self) -> None:
        self._tasks, self._succ, self._pred = {}, {}, {}
        self._shared = False
        self._bump()

    def copy(self) -> TaskGraph:
        """A structural copy for one run; it shares the maps (copied by whichever side
        changes first) and the join-plan cache while unchanged."""
        other = TaskGraph()
        other._tasks, other._succ, other._pred = self._tasks, self._succ, self._pred
        self._shared = other._shared = True
        other.version = self.version
        other.plan_cache = self.plan_cache
        return other

    # -- views ---------------------------------------------------------------------
    def fingerprint(self) -> str:
        from graflow.core.fingerprint import graph_fingerprint

        return graph_fingerprint(self)

    def nx_graph(self) -> Any:
        """A ``networkx.DiGraph`` built now (needs ``graflow[nx]``)."""
        try:
            import networkx as nx
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                "TaskGraph.nx_graph() needs networkx: pip install 'graflow[nx]'"
            ) from exc
        g = nx.DiGraph()
        for node_id, task in self._tasks.items():
            g.add_node(node_id, task=task)
        g.add_edges_from(self.edges)
        return g

    @property
    def _graph(self) -> Any:
        return self.nx_graph()

    def __str__(self) -> str:
        from graflow.core.graph_draw import draw_ascii

        return draw_ascii(self)

    def __repr__(self) -> str:
        return f"TaskGraph(nodes={len(self._tasks)}, edges={len(self.edges)})"

    def __getstate__(self) -> dict[str, Any]:
        return {"tasks": self._tasks, "succ": self._succ, "pred": self._pred}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._tasks = state["tasks"]
        self._succ = state["succ"]
        self._pred = state["pred"]
        self._shared = False
        self.version = 0
        self.plan_cache = {}


def _find_member(node: Executable, task_id: str) -> Executable | None:
    from graflow.core.group import ParallelGroup

    if not isinstance(node, ParallelGroup):
        return None
    for member in node.tasks:
        if member.task_id == task_id:
            return member
        found = _find_member(member, task_id)
        if found is not None:
            return found
    return None


__all__ = ["TaskGraph"]
