"""The scheduling core: the rules of a run (see docs/execution.md), with no I/O.

Both drivers apply these rules: the in-process ``WorkflowEngine`` (state in Python
objects) and the distributed driver on rq workers (state in Redis, applied in one
transaction per completion). A driver reports what an attempt did; the core decides
what completes, what becomes ready, when the run ends and when a checkpoint is due.

Join rule. Reachability uses the static graph plus an edge from each group
node to its members. ``B(T)`` are the predecessors reachable from ``T`` (loop-closing
edges): since ``p -> T`` is an edge, ``p`` is reachable from ``T`` exactly when both
lie in one strongly connected component, so one Tarjan pass answers it for all nodes.
``F(T)`` are the other predecessors that the start node reaches; ``T`` is ready once
all of them have arrived.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from graflow.exceptions import GraflowRuntimeError, RetryLimitExceededError

# Verdict kinds for a successful attempt.
COMPLETE = 0
TERMINATE = 1
CANCEL = 2
# Outcomes of draining a queue, besides the verdicts COMPLETE/TERMINATE/CANCEL.
DRAINED = 10
MAX_STEPS = 11


class RunEnd(Exception):
    """Internal: a terminate or cancel that must unwind to the run's top level."""

    def __init__(self, verdict: int, task_id: str, message: str | None) -> None:
        super().__init__(message)
        self.verdict = verdict
        self.task_id = task_id
        self.message = message


# Join requirement markers in the plan.
TRIGGER: frozenset[str] | None = None  # loop-closing or unknown edge: ready at once


class RunState(Protocol):
    """The part of a run's state the core reads and writes."""

    def record_completion(self, task_id: str) -> None: ...
    def arrive(self, target: str, pred: str, needed: frozenset[str]) -> bool: ...
    def clear_arrivals(self, target: str) -> None: ...


class AttemptReport(Protocol):
    """What an attempt asked for; a ``TaskExecutionContext`` is one."""

    control: bool
    goto_called: bool
    iterated: bool
    terminate_called: bool
    cancel_called: bool
    checkpoint_request: Any


def strongly_connected(nodes: Iterable[str], succ: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (graphs of thousands of nodes must not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    comps: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, Any]] = [(root, iter(succ.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(succ.get(nxt, ()))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                comps.append(comp)
    return comps


class JoinPlan:
    """For every node, its successors and what each one waits for."""

    def __init__(
        self,
        nodes: Iterable[str],
        succ: Mapping[str, Mapping[str, None]],
        groups: Mapping[str, list[str]],
        start_node: str | None,
    ) -> None:
        node_list = list(nodes)
        # Groups add edges to their members; without groups the successor map is used as is.
        augmented: Mapping[str, Iterable[str]] = succ
        if groups:
            extended = {n: list(succ.get(n, ())) for n in node_list}
            for gid, members in groups.items():
                extended.setdefault(gid, []).extend(members)
            augmented = extended
        comp_of = _cyclic_components(augmented)
        reach = _reachable(start_node, augmented) if start_node is not None else None
        pred: dict[str, list[str]] = {}
        for u in node_list:
            targets = succ.get(u)
            if targets and (reach is None or u in reach):  # unreachable predecessors never arrive
                for v in targets:
                    ps = pred.get(v)
                    if ps is None:
                        pred[v] = [u]
                    else:
                        ps.append(u)
        forward: dict[str, frozenset[str]] = {}
        for v, ps in pred.items():
            cv = comp_of.get(v) if comp_of else None
            if cv is None:  # not on any cycle: every reachable predecessor is forward
                forward[v] = frozenset(ps)
            else:
                forward[v] = frozenset(p for p in ps if comp_of.get(p) != cv)
        empty: frozenset[str] = frozenset()
        self.next: dict[str, tuple[tuple[str, frozenset[str] | None], ...]] = {}
        for u in node_list:
            targets = succ.get(u)
            if targets:
                entries = []
                for v in targets:
                    need = forward.get(v, empty)
                    entries.append((v, need if u in need else TRIGGER))
                self.next[u] = tuple(entries)
        self.forward = forward


def _cyclic_components(succ: Mapping[str, Iterable[str]]) -> dict[str, int]:
    """Component ids of the nodes that lie on a cycle; acyclic nodes are left out.

    Kahn's algorithm peels the acyclic part first (cheap); Tarjan runs only on the rest.
    """
    indegree: dict[str, int] = dict.fromkeys(succ, 0)
    for targets in succ.values():
        for v in targets:
            indegree[v] = indegree.get(v, 0) + 1
    todo = [n for n, d in indegree.items() if d == 0]
    while todo:
        for v in succ.get(todo.pop(), ()):
            indegree[v] -= 1
            if indegree[v] == 0:
                todo.append(v)
    rest = [n for n, d in indegree.items() if d > 0]
    if not rest:
        return {}
    # Kahn leaves cycles plus what hangs below them; Tarjan on that remainder
    # separates them again (singleton components without a self-loop are acyclic).
    sub = {n: [v for v in succ.get(n, ()) if indegree.get(v, 0) > 0] for n in rest}
    comp_of: dict[str, int] = {}
    for i, comp in enumerate(strongly_connected(rest, sub)):
        if len(comp) > 1 or comp[0] in sub.get(comp[0], ()):
            for n in comp:
                comp_of[n] = i
    return comp_of


def _reachable(start: str, succ: Mapping[str, Iterable[str]]) -> set[str]:
    seen = {start}
    todo = [start]
    while todo:
        for nxt in succ.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


class SchedulingCore:
    """Applies the rules of a run to its state; holds the join plan of one graph version."""

    def __init__(self, plan: JoinPlan) -> None:
        self.plan = plan
        self._next = plan.next

    def ready_after(self, state: RunState, pred: str) -> list[str]:
        """Static successors of ``pred`` whose join is now satisfied, in edge order."""
        entries = self._next.get(pred)
        if not entries:
            return []
        ready: list[str] = []
        for target, needed in entries:
            if needed is None:  # TRIGGER
                state.clear_arrivals(target)
                ready.append(target)
            elif len(needed) == 1:
                ready.append(target)  # the only forward predecessor: nothing to record
            elif state.arrive(target, pred, needed):
                ready.append(target)
        return ready

    def offers(self, pred: str) -> tuple[tuple[str, frozenset[str] | None], ...]:
        """What ``pred``'s completion offers: (successor, its forward predecessors or None
        for a trigger). A driver whose state lives elsewhere applies these atomically."""
        return self._next.get(pred, ())

    @staticmethod
    def decide(report: AttemptReport | None) -> tuple[int, bool, bool]:
        """Completion steps 1–4 of a successful attempt: (verdict, record it?, offer successors?).

        The steps are those of docs/execution.md, "The completion sequence"."""
        if report is None or not report.control:
            return COMPLETE, True, True
        if report.cancel_called:
            return CANCEL, False, False
        if report.terminate_called:
            return TERMINATE, True, False
        return COMPLETE, True, not (report.goto_called or report.iterated)

    def on_success(
        self, state: RunState, task_id: str, base_id: str, report: AttemptReport | None
    ) -> tuple[int, list[str]]:
        """Apply ``decide`` to in-process state: (verdict, static successors to queue)."""
        if report is None or not report.control:
            state.record_completion(task_id)
            return COMPLETE, self.ready_after(state, base_id)
        verdict, record, offer = self.decide(report)
        if record:
            state.record_completion(task_id)
        return verdict, self.ready_after(state, base_id) if offer else []

    @staticmethod
    def on_failure(
        task_id: str, base_id: str, error: BaseException, retries: Any
    ) -> tuple[float | None, BaseException]:
        """Retries: ``(delay, error)``; a delay means retry, None means the error ends the
        branch or the run."""
        if retries.accept_retry(base_id):
            consumed = retries.get_retry_count(base_id)
            retries.increment(base_id, error)
            return retries.get_delay(base_id, consumed), error
        max_retries = retries.get_max_retries_for_node(base_id)
        if max_retries > 0:
            return None, RetryLimitExceededError(task_id, max_retries + 1, max_retries, error)
        if isinstance(error, GraflowRuntimeError):
            return None, error
        failure = GraflowRuntimeError(f"An error occurred: {error}", cause=error, task_id=task_id)
        return None, failure


__all__ = [
    "CANCEL",
    "COMPLETE",
    "DRAINED",
    "MAX_STEPS",
    "TERMINATE",
    "AttemptReport",
    "JoinPlan",
    "RunEnd",
    "RunState",
    "SchedulingCore",
    "strongly_connected",
]
