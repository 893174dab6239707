"""The pool driver of the scheduling core: same attempt, different way to apply it.

``PoolEngine`` runs an attempt with the in-process engine's own code (handler,
context binding, tracer, retries decided by the core) and overrides only the two
places where a verdict is applied: ``commit`` turns the core's decision into one
atomic session step, ``_failed`` into a retry (an rq scheduled job) or a failure.
"""

from __future__ import annotations

import hashlib
import logging
import time
import traceback
import uuid
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import msgspec

from graflow.channels.fenced import superseded
from graflow.codec import Purpose, SecretKey, dumps
from graflow.core.engine import WorkflowEngine
from graflow.core.scheduler import CANCEL, TERMINATE
from graflow.core.timeout import AttemptGuard, default_timeout
from graflow.distributed import dispatch
from graflow.distributed.redis_lost import lost_redis
from graflow.distributed.run_writes import flush_writes
from graflow.distributed.spec import TaskSpec as Wire
from graflow.distributed.spec import encode
from graflow.exceptions import ValueTooLargeError
from graflow.limits import check_value_size, max_redeliveries

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext
    from graflow.core.local_queue import LocalTaskQueue
    from graflow.core.queue import TaskSpec
    from graflow.distributed.pool_context import PoolContext
    from graflow.distributed.session import SessionStore

logger = logging.getLogger("graflow.worker")
_VERDICT = {0: "complete", TERMINATE: "terminate", CANCEL: "cancel"}


class Branch:
    """Where new activations of this job belong: (group id, group run, branch id) or none."""

    __slots__ = ("branch_id", "group_id", "run")

    def __init__(self, group_id: str | None, run: str | None, branch_id: str | None) -> None:
        self.group_id = group_id
        self.run = run
        self.branch_id = branch_id

    def control(self) -> list[str] | None:
        return [self.run, self.branch_id] if self.run and self.branch_id else None


class PoolEngine(WorkflowEngine):
    """Applies one attempt's outcome to the session in Redis."""

    def __init__(self, wire: Wire, branch: Branch, worker: str, retry_of: Wire | None = None) -> None:
        super().__init__()
        self.wire = wire
        #: The activation a retry repeats: this job's, or for a group's finisher, the group's.
        self.retry_of = retry_of or wire
        self.branch = branch
        self.worker = worker
        self.outcome: dict[str, Any] = {}
        #: Which step answered last ("commit", "retry", "fail", "redeliver", "superseded"),
        #: and the error the attempt failed with: ``verdict()`` reads both.
        self.step = ""
        self.error_type = ""

    def verdict(self) -> str:
        """The attempt's outcome as ``AttemptInfo.outcome`` names it."""
        status = self.outcome.get("status")
        if self.step == "superseded" or status == "superseded":
            return "superseded"
        if status in ("final", "missing", "dup") or not self.step:
            return "skipped" if self.step else "error"
        return {"commit": "completed", "retry": "retried", "fail": "failed", "redeliver": "redelivered"}[self.step]

    def attempt_guard(self, task: Any, spec: TaskSpec) -> AttemptGuard:
        """Every pooled attempt is guarded: its timeout (the task's, else the worker's
        ``--task-timeout``) and the end of its run, which the heartbeat thread watches."""
        seconds = getattr(task, "timeout", None)
        w = self.wire
        if w.timed_out > 0:  # the previous attempt's process was killed for its timeout
            return AttemptGuard(task.task_id, w.timed_out, w.attempt - 1, expired=True)
        return AttemptGuard(task.task_id, default_timeout() if seconds is None else seconds, w.attempt,
                            watch=(w.key_prefix, w.session_id))  # fmt: skip

    # -- new activations -------------------------------------------------------------
    def child(self, task_id: str, **fields: Any) -> Wire:
        """A wire spec for an activation made ready by this job (same session, branch, queue)."""
        w = self.wire
        base: dict[str, Any] = {
            "session_id": w.session_id,
            "task_id": task_id,
            "graph_hash": w.graph_hash,
            "trace_id": w.trace_id,
            "spec_id": uuid.uuid4().hex,
            "enqueued_at": time.time(),
            "parent_task_id": w.task_id,
            "group_id": self.branch.group_id,
            "group_run": self.branch.run,
            "branch_id": self.branch.branch_id,
            "driver": w.driver,
            "queue": w.queue,
            "key_prefix": w.key_prefix,
        }
        base.update(fields)
        return Wire(**base)

    def finalizer(self) -> list[str] | None:
        """The spec that finishes the current group run, if this job is in a branch."""
        b = self.branch
        if not b.run or self.wire.driver == "producer":
            return None
        fin = self.child(b.group_id or "", group_run=b.run, branch_id=None, phase="finish")
        return [fin.spec_id, encode(fin).decode()]

    # -- success ---------------------------------------------------------------------
    def commit(
        self,
        ctx: ExecutionContext,
        spec: TaskSpec,
        task_id: str,
        base_id: str,
        report: Any,
        queue: LocalTaskQueue,
        group: Any,
    ) -> None:
        pctx: PoolContext = ctx  # type: ignore[assignment]
        # The channel keys the task wrote go before the step: a completed task's are listed.
        flush_writes(pctx.store.client, pctx.channel)
        if superseded(pctx.channel):  # the task caught the refusal and returned: still late
            self.drop_superseded()
            return
        verdict, record, offer = ctx.core.decide(report)
        blobs: list[bytes] = []
        names: list[str] = []  # what each blob is, for a size error
        results: list[list[Any]] = []
        if verdict != CANCEL:
            from graflow.channels.encoding import encode_value

            prefix = pctx.channel.key_prefix  # type: ignore[attr-defined]
            for key, value in pctx.results.items():
                blobs.append(encode_value(value, secret_key=pctx.secret_key))
                names.append(key)
                results.append([prefix + key, len(blobs)])
        offers: list[list[Any]] = []
        if offer:
            for target, needed in ctx.core.offers(base_id):
                w = self.child(target)
                offers.append([target, sorted(needed) if needed is not None else None, encode(w).decode(), w.spec_id])
        dynamic: list[list[Any]] = []
        if verdict != CANCEL:
            for s in getattr(report, "scheduled", None) or ():
                tid = s.task_id
                blob_idx = 0
                version = None
                new = pctx.new_dynamic.get(tid)
                if new is not None:
                    blob = dumps(new, Purpose.TASK, secret_key=pctx.secret_key)
                    blobs.append(blob)
                    names.append(f"dynamic task {tid}")
                    blob_idx = len(blobs)
                    version = hashlib.sha256(blob).hexdigest()[:16]
                w = self.child(tid, dynamic=pctx.is_dynamic(tid), dyn_version=version)
                dynamic.append([tid, encode(w).decode(), w.spec_id, blob_idx, version or ""])
        request = getattr(report, "checkpoint_request", None)
        in_branch = self.branch.control() is not None
        control = {
            "spec_id": self.wire.spec_id,
            "attempt": self.wire.attempt,
            "task_id": task_id,
            "pred": base_id,
            "record": record,
            "verdict": _VERDICT[verdict],
            "message": getattr(report, "cancel_message" if verdict == CANCEL else "terminate_message", None) or "",
            "cancel_task": getattr(report, "cancel_task_id", None) or task_id,
            "results": results,
            "offers": offers,
            "dynamic": dynamic,
            "branch": self.branch.control(),
            "finalize": self.finalizer() if in_branch else None,
            "request": (
                {"metadata": request.metadata, "path": request.path, "requested_by": request.requested_by}
                if in_branch and request is not None and verdict != CANCEL
                else None
            ),
            "snapshot": request is not None and not in_branch and verdict != CANCEL,
        }
        if control["snapshot"] and request is not None:
            control["checkpoint"] = checkpoint_request_doc(self.wire, task_id, request)
        from graflow.crash import crash_point

        # crash point "task.before_commit": the task body has run (its channel writes are
        # visible), its completion is not recorded. A redelivery runs the body again.
        crash_point("task.before_commit")
        try:
            for name, blob in zip(names, blobs, strict=True):
                check_value_size(name, len(blob))
            self.outcome = pctx.store.commit(control, blobs, names)
            self.step = "commit"
        except ValueTooLargeError as exc:
            # Refused before it was sent (or by Redis's own limit: nothing was applied). The
            # attempt fails as if the task had raised it, so its retry policy applies; it is
            # never taken for a lost Redis and redelivered.
            self._failed(ctx, spec, base_id, getattr(report, "scheduled", None), exc, queue)
            return
        if request is not None and control["snapshot"] and self.outcome.get("snapshot"):
            from graflow.distributed.pool_checkpoint import write_from_snapshot

            failed = write_from_snapshot(
                pctx, request, self.outcome["snapshot"], task_id, self.outcome.get("status") == "finished"
            )
            if failed is not None:  # the write failed and ended the run: hand nothing over
                self.outcome = failed
            # crash point "checkpoint.before_handover": committed and checkpointed; the
            # successors are pending in the session but not yet in rq.
            crash_point("checkpoint.before_handover")
        self.after_step(pctx.store, pctx.secret_key, self.outcome)

    def after_step(self, store: SessionStore, secret_key: SecretKey, outcome: dict[str, Any]) -> None:
        """Hand what the step made ready to rq; give a finished run's channel its TTL."""
        status = outcome.get("status")
        if status == "missing":
            # The session vanished while the task ran (purged, expired, or a Redis that
            # restarted without persistence): nothing to record the completion in.
            logger.warning("session %s does not exist (expired, purged or lost by Redis); the completion "
                           "of %s is dropped", self.wire.session_id, self.wire.task_id)  # fmt: skip
        elif status == "superseded":
            self._log_superseded()
        elif status == "dup":
            logger.info(
                "duplicate commit of %s (attempt %s) ignored: another attempt completed it first",
                self.wire.task_id, self.wire.attempt,
            )  # fmt: skip
        enqueue = outcome.get("enqueue") or []
        if enqueue:
            from graflow.crash import crash_point

            # crash point "commit.before_handover": the commit is durable, the successors
            # are pending in the session but not yet in rq; a redelivery re-drives them.
            crash_point("commit.before_handover")
            from graflow.distributed.session import with_retry

            with_retry(
                lambda: dispatch.enqueue(store.client, enqueue, secret_key=secret_key, skip_existing=status == "dup"),
                "hand-over to rq",
            )
        if status in ("finished", "final", "missing"):
            # "final"/"missing": a task still running when its run ended (cancel, a
            # failed sibling) or was purged may have written channel keys after the
            # run's keys got their TTL (or were deleted): they expire too.
            store.expire_all()

    # -- failure ---------------------------------------------------------------------
    def _failed(
        self,
        ctx: ExecutionContext,
        spec: TaskSpec,
        base_id: str,
        scheduled: list[TaskSpec] | None,
        exc: BaseException,
        queue: LocalTaskQueue,
    ) -> None:
        """The retry rule on the pool: a retry is an rq scheduled job, else the failure is final.

        An attempt cut short because the session's own Redis went away (a restart, a
        fail-over) did not fail on its own: it is redelivered, as if its worker had been
        lost (see docs/failover.md), once Redis answers again.
        """
        pctx: PoolContext = ctx  # type: ignore[assignment]
        self.error_type = type(exc).__name__
        if superseded(pctx.channel, exc):
            flush_writes(pctx.store.client, pctx.channel)
            self.drop_superseded()
            return
        if self.wire.redeliveries < max_redeliveries() and lost_redis(pctx.store.client, exc):
            # The keys written are flushed once Redis is back (graflow.distributed.executor).
            self.redeliver_after_outage(pctx.store, pctx.secret_key, exc)
            return
        flush_writes(pctx.store.client, pctx.channel)
        delay, error = ctx.core.on_failure(spec.task_id, base_id, exc, ctx.retry_controller)
        if delay is None:
            self.fail_final(pctx.store, pctx.secret_key, spec.task_id, error, exc, pctx.channel)
            return
        r = self.retry_of
        retry = msgspec.structs.replace(
            r,
            attempt=r.attempt + 1,
            retry_count=r.retry_count + 1,
            timed_out=0.0,  # the retry runs the body again
            enqueued_at=time.time(),
            not_before=time.time() + delay if delay > 0 else 0.0,
        )
        self.outcome = pctx.store.fail({
            "spec_id": self.wire.spec_id, "attempt": self.wire.attempt, "task_id": spec.task_id,
            "base_id": base_id, "mode": "retry", "retry": encode(retry).decode(), "retry_id": retry.spec_id,
            "error": {"message": str(exc)},
        })  # fmt: skip
        self.step = "retry"
        if self.outcome.get("status") == "retry":
            dispatch.enqueue(pctx.store.client, [retry], secret_key=pctx.secret_key)

    def drop_superseded(self) -> None:
        """An attempt that lost its activation (its channel refused a write) records nothing:
        no retry, failure or result; the job succeeds, so rq counts no failed job for it."""
        self.outcome = {"status": "superseded"}
        self.step = "superseded"
        self._log_superseded()

    def _log_superseded(self) -> None:
        w = self.wire
        logger.warning("task %s (session %s, attempt %d) was superseded: another attempt owns it now; "
                       "nothing recorded", w.task_id, w.session_id[:8], w.attempt)  # fmt: skip

    def redeliver_after_outage(self, store: SessionStore, secret_key: SecretKey, exc: BaseException) -> None:
        """Put this activation back as attempt + 1 (the session's REDELIVER step, which waits
        for Redis), then hand the new attempt to rq."""
        from graflow.distributed.session import with_retry

        w = self.wire
        nxt = msgspec.structs.replace(w, attempt=w.attempt + 1, redeliveries=w.redeliveries + 1,
                                      enqueued_at=time.time(), not_before=0.0)  # fmt: skip
        self.outcome = store.redeliver(w.spec_id, w.attempt, encode(nxt), self.worker or "unknown")
        self.step = "redeliver"
        enqueue = self.outcome.get("enqueue") or []
        if enqueue:
            with_retry(lambda: dispatch.enqueue(store.client, enqueue, secret_key=secret_key, skip_existing=True),
                       "hand-over to rq")  # fmt: skip
        logger.warning("task %s (session %s, attempt %d) lost Redis (%s: %s); %s", w.task_id, w.session_id[:8],
                       w.attempt, type(exc).__name__, exc,
                       f"re-enqueued as attempt {nxt.attempt}" if enqueue else f"redelivery {self.outcome.get('status')}")  # fmt: skip

    def fail_final(
        self, store: SessionStore, secret_key: SecretKey, task_id: str, error: BaseException,
        exc: BaseException, channel: Any = None,
    ) -> None:  # fmt: skip
        """Record a failure that ends the branch (in a group) or the run; no retry."""
        w = self.wire
        try:
            blobs = [dumps(error, Purpose.VALUE, secret_key=secret_key)]
            check_value_size(f"the error of {task_id}", len(blobs[0]))
        except Exception:  # an exception that cannot be pickled (or is too large) is reported by text
            blobs = []
        control: dict[str, Any] = {
            "spec_id": w.spec_id,
            "attempt": w.attempt,
            "task_id": task_id,
            "base_id": task_id,
            "branch": self.branch.control(),
            "finalize": self.finalizer(),
            "stop_reason": "task_failed",
            "mode": "final",
            "error": {
                "type": type(error).__name__,
                "message": str(error),
                "traceback": "".join(traceback.format_exception(exc)),
                "blob": len(blobs),
            },
        }
        if channel is not None:
            key = f"{task_id}.__result__"
            written = getattr(channel, "written", None)
            try:
                with written.unnoted(key) if written is not None else nullcontext():
                    channel.set(key, exc)  # the failing task's result, not a write of the task
            except Exception:
                logger.debug("could not store the exception of %s as its result", task_id, exc_info=True)
        if superseded(channel, exc):  # that write, fenced, found another attempt owning the task
            self.drop_superseded()
            return
        self.outcome = store.fail(control, blobs)
        self.step = "fail"
        self.error_type = self.error_type or type(error).__name__
        self.after_step(store, secret_key, self.outcome)


def checkpoint_request_doc(wire: Wire, task_id: str, request: Any) -> str | None:
    """The deferred request as the commit keeps it for a redelivery (JSON), or None when
    its metadata is not JSON (then a lost writer's checkpoint is only reported)."""
    doc = {"spec_id": wire.spec_id, "task_id": task_id, "path": request.path,
           "metadata": request.metadata, "requested_by": list(request.requested_by or [])}  # fmt: skip
    try:
        return msgspec.json.encode(doc).decode()
    except (TypeError, ValueError, msgspec.EncodeError):
        return None


def fail_activation(store: SessionStore, wire: Wire, error: BaseException, secret_key: SecretKey) -> dict[str, Any]:
    """Fail one activation from outside its attempt (a poison task, see docs/failover.md)."""
    engine = PoolEngine(wire, Branch(wire.group_id, wire.group_run, wire.branch_id), "")
    engine.fail_final(store, secret_key, wire.task_id, error, error)
    return engine.outcome


__all__ = [
    "Branch",
    "PoolEngine",
    "checkpoint_request_doc",
    "fail_activation",
    "max_redeliveries",
]
