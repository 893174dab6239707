"""Function-backed tasks and the composition helpers."""

from __future__ import annotations

import copy
import inspect
import sys
import types
import uuid
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from graflow.core.cycle import base_task_id
from graflow.core.executable import (
    Executable,
    ParallelGroup,
    SequentialTask,
    Task,
    check_executable,
    link,
)
from graflow.core.scope import operator_workflow, registration_target

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext
    from graflow.core.retry import RetryPolicy
    from graflow.core.workflow import WorkflowContext

_MISSING: Any = object()


# A function's parameter analysis belongs to the function: every task (and every
# iteration or instance) made from it shares one, computed on first use.
_ANALYSED: weakref.WeakKeyDictionary[Callable[..., Any], dict[bool, tuple[tuple[str, str, str], ...]]] = (
    weakref.WeakKeyDictionary()
)


def resolvable_parameters(func: Callable[..., Any], inject_context: bool) -> tuple[tuple[str, str, str], ...]:
    """The parameters the engine fills from the channel: (name, "name.__result__", kind)."""
    plain = type(func) is types.FunctionType  # a hashable, weak-referenceable identity
    if plain:
        known = _ANALYSED.get(func)
        if known is not None and inject_context in known:
            return known[inject_context]
    params = list(inspect.signature(func).parameters.values())
    if inject_context and params and params[0].kind in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        params = params[1:]  # the injected context is never resolved
    found = tuple(
        (p.name, f"{p.name}.__result__", p.kind.name)
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    )
    if plain:
        _ANALYSED.setdefault(func, {})[inject_context] = found
    return found


class TaskWrapper(Executable):
    """A task backed by a plain function."""

    def __init__(
        self,
        task_id: str,
        func: Callable[..., Any],
        inject_context: bool = False,
        register_to_context: bool = True,
        handler_type: str | None = None,
        resolve_keyword_args: bool = True,
        max_cycles: int | None = None,
        max_retries: int | None = None,
        retry_policy: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> None:
        if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError(
                f"@task does not support async functions ({getattr(func, '__qualname__', func)!r}); "
                "write a plain function (run async code with asyncio.run inside it)"
            )
        self._task_id = task_id
        self.func = func
        self.inject_context = inject_context
        self.register_to_context = register_to_context
        self.handler_type = handler_type or "direct"
        self.resolve_keyword_args = resolve_keyword_args
        self.max_cycles = max_cycles
        # As upstream: a retry policy decides the attempts, and the attribute says so.
        self.max_retries = retry_policy.max_retries if retry_policy is not None else max_retries
        self.retry_policy = retry_policy
        #: Seconds one attempt may run before it fails with TaskTimeoutError (None: no limit).
        self.timeout = timeout
        self.base_id = base_task_id(task_id)
        self.result_key = f"{task_id}.__result__"
        self._bound_kwargs: dict[str, Any] = {}
        self._positional: tuple[Any, ...] = ()
        self._params: tuple[tuple[str, str, str], ...] | None = None
        for attr in ("__name__", "__doc__", "__module__", "__qualname__"):
            if hasattr(func, attr):
                setattr(self, attr, getattr(func, attr))
        self.__annotations__ = dict(getattr(func, "__annotations__", {}))
        self.__wrapped__ = func
        if register_to_context:
            wf = registration_target()
            if wf is not None:
                wf.graph.add_node(self)

    @property
    def task_id(self) -> str:
        return self._task_id

    # -- calling -------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        ctx = self._execution_context
        if ctx is not None:
            return self._invoke(ctx, args, kwargs)
        if kwargs:
            if args:
                raise TypeError(
                    f"{self._task_id}(...): creating a task instance takes keyword arguments only"
                )
            return self._new_instance(**kwargs)
        if not args and self.inject_context:
            return self.run()
        return self.func(*args)

    def run(self, **kwargs: Any) -> Any:
        ctx = self._execution_context
        if ctx is not None:
            return self._invoke(ctx, (), kwargs)
        from graflow.core.context import ExecutionContext
        from graflow.core.graph import TaskGraph

        temp = ExecutionContext(TaskGraph(), channel_backend="memory")
        self._execution_context = temp
        try:
            return self._invoke(temp, (), kwargs)
        finally:
            self._execution_context = None

    def _invoke(self, ctx: ExecutionContext, args: tuple[Any, ...], call_kwargs: dict[str, Any]) -> Any:
        positional = self._positional + args if args else self._positional
        kwargs: dict[str, Any]
        if self.resolve_keyword_args:
            params = self._params if self._params is not None else self._analyse()
            kwargs = {}
            if params:
                get = ctx.channel.get
                skip = len(positional)
                for name, result_key, _ in params[skip:] if skip else params:
                    value = get(result_key, _MISSING)
                    if value is _MISSING:
                        value = get(name, _MISSING)
                    if value is not _MISSING:
                        kwargs[name] = value
            if self._bound_kwargs:
                kwargs.update(self._bound_kwargs)
            if call_kwargs:
                kwargs.update(call_kwargs)
        else:
            kwargs = {**self._bound_kwargs, **call_kwargs} if self._bound_kwargs else call_kwargs
        if self.inject_context:
            tc = ctx.current_task_context
            if tc is None or tc.task_id != self._task_id:
                tc = ctx.create_task_context(self._task_id)
            return self.func(tc, *positional, **kwargs)
        return self.func(*positional, **kwargs)

    def _analyse(self) -> tuple[tuple[str, str, str], ...]:
        """Resolvable parameters in order: (name, "name.__result__", kind)."""
        self._params = resolvable_parameters(self.func, self.inject_context)
        return self._params

    # -- instances and iterations ----------------------------------------------------
    def _new_instance(self, task_id: str | None = None, **bound: Any) -> TaskWrapper:
        new_id = task_id or f"{getattr(self.func, '__name__', 'task')}_{uuid.uuid4().hex[:8]}"
        clone = TaskWrapper(
            new_id,
            self.func,
            inject_context=self.inject_context,
            register_to_context=self.register_to_context,
            handler_type=self.handler_type,
            resolve_keyword_args=self.resolve_keyword_args,
            max_cycles=self.max_cycles,
            max_retries=self.max_retries,
            retry_policy=self.retry_policy,
            timeout=getattr(self, "timeout", None),
        )
        clone._bound_kwargs = {**self._bound_kwargs, **bound}
        return clone

    def derive(self, task_id: str, positional: tuple[Any, ...] = ()) -> TaskWrapper:
        """A copy under another id (iterations), sharing function and settings."""
        clone = copy.copy(self)
        clone._task_id = task_id
        clone.base_id = base_task_id(task_id)
        clone.result_key = f"{task_id}.__result__"
        clone._positional = positional
        clone._execution_context = None
        return clone

    @property
    def bound_kwargs(self) -> dict[str, Any]:
        return dict(self._bound_kwargs)

    def _register(self, wf: WorkflowContext) -> None:
        wf.graph.add_node(self, skip_if_exists=True)

    def __getstate__(self) -> dict[str, Any]:
        # The signature analysis is a cache: leaving it out keeps a graph's pickle (and
        # so its content hash) the same before and after its tasks have run.
        state = super().__getstate__()
        state["_params"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._params = None

    # -- pickling: by reference when the function can be imported ---------------------
    def __reduce_ex__(self, protocol: Any) -> Any:
        """A task whose function is importable as ``module.qualname`` pickles as that name
        plus its own state (id, bound arguments, options): the worker imports the code,
        so it runs the worker's bytecode, never the producer's. Anything else (functions
        in ``__main__``, closures, lambdas, modules registered with cloudpickle's
        ``register_pickle_by_value``) pickles by value, as before."""
        ref = self._reference()
        if ref is None:
            return super().__reduce_ex__(protocol)
        state = self.__getstate__()
        for name in _FROM_FUNCTION:
            state.pop(name, None)
        # The state goes in the third slot (set after the object is memoised), so a
        # bound argument that refers back to this task still pickles.
        return (_task_by_reference, (type(self), ref[0], ref[1]), state)

    def __copy__(self) -> TaskWrapper:
        # ``copy.copy`` would use ``__reduce_ex__``; a copy needs no import by name.
        clone = object.__new__(type(self))
        clone.__setstate__(self.__getstate__())
        return clone

    def _reference(self) -> tuple[str, str] | None:
        """(module, qualname) when that name resolves, in this process, to this task's
        function or to a task wrapping it; None when the function must travel by value."""
        func = self.__dict__.get("func")
        module = getattr(func, "__module__", None)
        qualname = getattr(func, "__qualname__", None)
        if not isinstance(module, str) or not isinstance(qualname, str):
            return None
        if module == "__main__" or "<" in qualname:  # <locals>, <lambda>: not importable
            return None
        target: Any = sys.modules.get(module)
        if target is None or _pickled_by_value(target):
            return None
        try:
            for part in qualname.split("."):
                target = getattr(target, part)
        except Exception:  # not there (or a module __getattr__ that raises): by value
            return None
        if target is func or (isinstance(target, TaskWrapper) and target.__dict__.get("func") is func):
            return module, qualname
        return None

    def __repr__(self) -> str:
        return f"TaskWrapper({self._task_id!r})"


#: Attributes a task rebuilt by reference takes from its imported function.
_FROM_FUNCTION = ("func", "__wrapped__", "__annotations__")


def _pickled_by_value(module: Any) -> bool:
    """Whether the user asked cloudpickle to ship ``module`` by value."""
    try:
        from cloudpickle import cloudpickle as cp

        return bool(cp._is_registered_pickle_by_value(module))
    except Exception:  # another cloudpickle: no such registry
        return False


def _task_by_reference(cls: type[TaskWrapper], module: str, qualname: str) -> TaskWrapper:
    """Unpickle a task that travelled by reference: import its function here (the
    pickle then sets the rest of its state with ``__setstate__``).

    An import that fails raises as usual (``ModuleNotFoundError``, ``AttributeError``);
    the worker reports it as the attempt's ``TaskUnrunnableError``.
    """
    import importlib

    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    func = target.__dict__["func"] if isinstance(target, TaskWrapper) else target
    task = cls.__new__(cls)
    task.func = func
    task.__wrapped__ = func
    task.__annotations__ = dict(getattr(func, "__annotations__", {}))
    return task


def chain(*tasks: Executable) -> SequentialTask:
    """Fold ``>>`` over the tasks."""
    if not tasks:
        raise ValueError("chain() needs at least one task")
    first = check_executable(tasks[0], "chain")
    if len(tasks) == 1:
        first._register(operator_workflow())
        return first if isinstance(first, SequentialTask) else SequentialTask([first])
    result = link(first, tasks[1])
    for t in tasks[2:]:
        result = link(result, t)
    return result


def parallel(*tasks: Executable) -> ParallelGroup:
    """Fold ``|`` over the tasks."""
    if len(tasks) < 2:
        raise ValueError(f"parallel() needs at least 2 tasks, got {len(tasks)}")
    result = tasks[0] | tasks[1]
    for t in tasks[2:]:
        result = result | t
    return result


__all__ = [
    "Executable",
    "ParallelGroup",
    "SequentialTask",
    "Task",
    "TaskWrapper",
    "base_task_id",
    "chain",
    "parallel",
]
