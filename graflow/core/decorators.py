"""``@task`` in all its forms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, overload

from graflow.core.retry import RetryPolicy
from graflow.core.task import TaskWrapper
from graflow.core.timeout import check_timeout

_OPTIONS = frozenset(
    {"inject_context", "handler", "resolve_keyword_args", "max_cycles", "max_retries", "retry_policy", "timeout"}
)
_NOT_IN_1_0 = frozenset({"inject_llm_client", "inject_llm_agent", "llm_agent", "llm_client"})


def _check_options(opts: dict[str, Any]) -> None:
    for name in opts:
        if name in _NOT_IN_1_0:
            raise TypeError(f"@task option {name!r} (LLM injection) is not in graflow 1.0")
        if name not in _OPTIONS:
            raise TypeError(
                f"@task got an unknown option {name!r}; valid options: {sorted(_OPTIONS)}"
            )
    policy = opts.get("retry_policy")
    if policy is not None and not isinstance(policy, RetryPolicy):
        raise TypeError(f"@task retry_policy must be a RetryPolicy, got {type(policy).__name__}")
    # ``timeout`` is run-time behaviour like max_retries: it travels with the pickled
    # task but is not part of the graph fingerprint (changing it is not a new definition).
    check_timeout(opts.get("timeout"))


def _make(func: Callable[..., Any], task_id: str | None, opts: dict[str, Any]) -> TaskWrapper:
    if not callable(func):
        raise TypeError(f"@task decorates functions, got {type(func).__name__}")
    return TaskWrapper(
        str(task_id or getattr(func, "__name__", "task")),
        func,
        inject_context=bool(opts.get("inject_context", False)),
        handler_type=opts.get("handler"),
        resolve_keyword_args=bool(opts.get("resolve_keyword_args", True)),
        max_cycles=opts.get("max_cycles"),
        max_retries=opts.get("max_retries"),
        retry_policy=opts.get("retry_policy"),
        timeout=check_timeout(opts.get("timeout")),
    )


@overload
def task(id_or_func: Callable[..., Any]) -> TaskWrapper: ...
@overload
def task(
    id_or_func: str | None = None, *, id: str | None = None, **opts: Any
) -> Callable[[Callable[..., Any]], TaskWrapper]: ...


def task(
    id_or_func: Callable[..., Any] | str | None = None, *, id: str | None = None, **opts: Any
) -> TaskWrapper | Callable[[Callable[..., Any]], TaskWrapper]:
    """Turn a function into a task: ``@task``, ``@task()``, ``@task("id", **opts)``, ``@task(id=...)``."""
    _check_options(opts)
    if callable(id_or_func) and not isinstance(id_or_func, str):
        return _make(id_or_func, id, opts)
    if id_or_func is not None and not isinstance(id_or_func, str):
        raise TypeError(f"@task's first argument must be a task id string, got {id_or_func!r}")
    task_id = id_or_func or id

    def decorator(func: Callable[..., Any]) -> TaskWrapper:
        return _make(func, task_id, opts)

    return decorator


__all__ = ["task"]
