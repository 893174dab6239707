"""A task a worker cannot load fails its attempt visibly, with ``TaskUnrunnableError``.

Loading a graph or a dynamic task unpickles the tasks' code: by reference (the worker
imports the task's module) or by value (bytecode, which the codec refuses when the
producer ran another Python minor version). When that fails -- the module is missing
on this worker, the function was renamed, the payload was refused -- the attempt fails:
the run's events show ``unrunnable`` with the error, and the activation is redelivered
(another worker may have the module) until the redelivery limit, after which the run
fails with the error. Before this, such a run stayed ``queued`` for ever and the reason
was only in a worker's log.
"""

from __future__ import annotations

import logging
import sys
import time

import msgspec

from graflow.codec import SecretKey
from graflow.distributed import dispatch
from graflow.distributed.session import SessionStore, with_retry
from graflow.distributed.spec import TaskSpec as Wire
from graflow.distributed.spec import encode
from graflow.exceptions import GraflowError, PayloadError, TaskUnrunnableError

logger = logging.getLogger("graflow.worker")

_IMPORT_ERRORS = (ImportError, AttributeError)


def unrunnable_error(exc: BaseException, wire: Wire, worker: str) -> TaskUnrunnableError:
    """``exc`` (raised while loading the task's code) as the attempt's error, saying what to do."""
    here = f"worker {worker or 'unknown'} (Python {sys.version_info[0]}.{sys.version_info[1]})"
    what = f"task {wire.task_id!r} cannot be loaded on {here}"
    root = exc.cause if isinstance(exc, GraflowError) and exc.cause is not None else exc
    if isinstance(root, _IMPORT_ERRORS):
        return TaskUnrunnableError(
            f"{what}: its code does not import there; make the task's module importable on "
            "every worker (install it, or add its directory to the workers' PYTHONPATH), or "
            "define the task in the submitting script so that it travels by value",
            task_id=wire.task_id,
            cause=root,
        )
    if isinstance(exc, PayloadError) and exc.cause is None:
        # Refused before unpickling (code by value from another Python); the message
        # names both versions and the fix.
        return TaskUnrunnableError(f"{what}: {exc}", task_id=wire.task_id)
    return TaskUnrunnableError(
        f"{what}; run the same graflow and Python minor version on producers and workers, "
        "with the tasks' modules importable on every worker",
        task_id=wire.task_id,
        cause=root,
    )


def fail_attempt(store: SessionStore, wire: Wire, worker: str, exc: BaseException, secret_key: SecretKey) -> TaskUnrunnableError:
    """Record an attempt that could not load its task; returns the error (the caller raises it).

    Under the redelivery limit the activation goes back to the queue as attempt + 1
    (event ``unrunnable``); at the limit the run (or its branch) fails with the error.
    """
    from graflow.distributed.pool_engine import fail_activation, max_redeliveries

    error = unrunnable_error(exc, wire, worker)
    if wire.redeliveries < max_redeliveries():
        nxt = msgspec.structs.replace(wire, attempt=wire.attempt + 1, redeliveries=wire.redeliveries + 1,
                                      enqueued_at=time.time(), not_before=0.0)  # fmt: skip
        detail = {"task_id": wire.task_id, "error": f"{type(error).__name__}: {error}"}
        outcome = store.redeliver(wire.spec_id, wire.attempt, encode(nxt), worker or "unknown", unrunnable=detail)
        enqueue = outcome.get("enqueue") or []
        if enqueue:
            with_retry(lambda: dispatch.enqueue(store.client, enqueue, secret_key=secret_key, skip_existing=True),
                       "hand-over to rq")  # fmt: skip
        logger.error("task %s (session %s, attempt %d) cannot run here: %s; %s", wire.task_id, wire.session_id[:8],
                     wire.attempt, error, f"re-enqueued as attempt {nxt.attempt}" if enqueue
                     else f"redelivery {outcome.get('status')}")  # fmt: skip
    else:
        outcome = fail_activation(store, wire, error, secret_key)
        logger.error("task %s (session %s) cannot run after %d attempts: %s (%s)", wire.task_id,
                     wire.session_id[:8], wire.attempt, error, outcome.get("status"))  # fmt: skip
    return error


__all__ = ["fail_attempt", "unrunnable_error"]
