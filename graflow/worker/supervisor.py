"""``--concurrency N``: N worker processes under one supervising parent (see docs/failover.md).

Each child is a full ``GraflowWorker`` (its own Redis connections, heartbeat thread
and rq registration) named ``{name}-{i}``, so one crashing job takes down one worker,
not the pool. Children are forked (start method ``fork``): modules loaded by
``--import`` are inherited and start-up stays cheap. The parent forwards SIGTERM and
SIGINT, so one signal to the supervisor is a warm stop for all and a second a cold one.

The supervisor owns the leases of its children's running jobs: it renews them and reaps
the pool's expired ones, one Redis round trip per ``heartbeat/3`` (``lease_keeper``), so a
task that holds the GIL or stops its process cannot lose its lease.

A child that dies on its own (a task that kills its process, the OOM killer) is
restarted under the same name after a back-off (``restarts.RestartPolicy``). The
moment it dies, the supervisor hands the job it was running back through the
reaper's redelivery path (``takeover``), so the task runs again at once and a poison
task fails its run after ``max_redeliveries`` deaths within seconds, not leases. Only
a crash loop (one slot dying ``crash_loop_deaths`` times within ``crash_loop_window``
seconds without finishing a job) stops the pool: the others are stopped warm and the
supervisor exits 1, naming it. A child that exits 2 (a usage error, such as its name
held by a live worker) is not restarted either. (With ``--fork``, a work horse outlives
its dead worker process and may still finish the task it runs: execution is at least
once, as when the reaper redelivers after a lease.)

The supervisor also kills the process of an attempt stuck past its timeout in code that
holds the GIL (``hard_timeout``): not a crash, so no back-off and no crash-loop count;
its job goes back marked timed out and fails through the task's retry policy.

Exit code: 0 when every child exited 0 (after a signal, or after ``--burst``); 1 after a
crash loop, a usage error in a child, or any child's non-zero exit while stopping or in
``--burst`` mode (which restarts nothing); 3 when every failing child could not reach Redis.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

from graflow.exit_codes import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REDIS,
    EXIT_USAGE,
    CliError,
    exit_code_for,
    fail,
)
from graflow.worker import hard_timeout, leases
from graflow.worker.lease_keeper import LeaseKeeper
from graflow.worker.orphans import stop_with_parent as _stop_with_parent
from graflow.worker.process import PendingSignals, run_worker
from graflow.worker.restarts import SlotHistory
from graflow.worker.settings import WorkerSettings

log = logging.getLogger("graflow.worker")

_child_pending = PendingSignals()


def _child_main(settings: WorkerSettings, name: str, parent: int, shared: Any = None, lease: Any = None) -> None:
    """Body of one child process: the same ``run_worker`` as a single-process worker;
    ``shared``: its slot's memory for attempt deadlines (``hard_timeout``); ``lease``: its
    slot's memory for the lease the supervisor renews (``leases``)."""
    _child_pending.install()
    if shared is not None:
        hard_timeout.install(shared)
    if lease is not None:
        leases.install(lease)
    _stop_with_parent(parent)
    try:
        code = run_worker(settings, name, _child_pending)
    except Exception as exc:
        code = exc.code if isinstance(exc, CliError) else exit_code_for(exc)
        fail(str(exc), code, exc, debug=settings.log_level == "DEBUG")
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


@dataclass
class _Slot:
    """One worker name and the process currently serving it (None while it waits to restart)."""

    name: str
    history: SlotHistory
    process: Any = None
    restart_at: float | None = None
    code: int | None = None
    restarts: int = 0
    #: Deadline memory shared with the process (``hard_timeout``), made before the first fork.
    shared: Any = None
    #: The timeout the supervisor killed this process for (it ran a stuck attempt itself).
    timed_out: float | None = None
    #: The lease its process publishes for the supervisor to renew (``leases.LeaseSlot``).
    lease: Any = None


class Supervisor:
    """Starts ``settings.concurrency`` children, restarts the ones that die, forwards
    signals, reports one exit code."""

    def __init__(self, settings: WorkerSettings, pending: list[int] | None = None) -> None:
        self.settings = settings
        self.signals = list(pending or [])
        self.slots = [
            _Slot(name, SlotHistory(settings.restart)) for name in settings.worker_names()
        ]
        self._pid = os.getpid()
        self._fatal = False
        self._redis: Any = None
        self._ctx: Any = None
        #: ``--metrics-port``: the ``metrics_server.MetricsServer`` of this command.
        self.metrics: Any = None
        self.keeper = LeaseKeeper(self._connection, queues=list(settings.queues), prefix=settings.prefix,
                                  heartbeat=settings.heartbeat, max_redeliveries=settings.max_redeliveries,
                                  name=f"{settings.name or 'worker'}-supervisor")  # fmt: skip

    def _connection(self) -> Any:
        if self._redis is None:
            self._redis = self.settings.connect()
        return self._redis

    @property
    def children(self) -> list[Any]:
        """The child processes started and not yet seen to exit."""
        return [slot.process for slot in self.slots if slot.process is not None]

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if os.getpid() != self._pid:
            # A child forked but not yet past its own handler installation.
            _child_pending(signum, _frame)
            return
        self.signals.append(signum)
        log.info(
            "supervisor: %s, forwarding to %d workers",
            signal.Signals(signum).name,
            len(self.children),
        )
        self._forward(signum)

    def _forward(self, signum: int) -> None:
        for child in self.children:
            if child.pid and child.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signum)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self._ctx = multiprocessing.get_context("fork")
        try:
            if self.settings.metrics_port:  # before the first fork: the children inherit it
                from graflow.worker.metrics_server import MetricsServer

                self.metrics = MetricsServer(self.settings, lambda: len(self.children))
                self.metrics.start()
            for slot in self.slots:
                if self.signals:
                    break  # stopped while starting: start no more
                self._start(slot)
            log.info("supervisor: started %d workers", len(self.children))
            self._watch()
        finally:
            if self._redis is not None:
                self._redis.close()
            if self.metrics is not None:
                self.metrics.close()
        return self._exit_code({s.name: s.code for s in self.slots if s.code is not None})

    def _start(self, slot: _Slot) -> None:
        slot.restart_at = None
        slot.timed_out = None
        if slot.shared is None:
            slot.shared = hard_timeout.new_slot(self._ctx)
            slot.lease = leases.LeaseSlot.new(self._ctx)
        hard_timeout.clear(slot.shared)
        slot.lease.publish(None)
        child = self._ctx.Process(
            target=_child_main, args=(self.settings, slot.name, os.getpid(), slot.shared, slot.lease),
            name=slot.name,
        )
        child.start()
        slot.process = child
        slot.history.started()

    def _watch(self) -> None:
        """Until no child runs and none waits for its restart."""
        while True:
            if self.signals or self._fatal:
                for slot in self.slots:
                    if slot.restart_at is not None and not self._fatal:
                        slot.code = None  # its death was dealt with; the stop is what ends it
                    slot.restart_at = None  # stopping: restart nothing
            live = [s for s in self.slots if s.process is not None]
            waiting = [s for s in self.slots if s.restart_at is not None]
            if not live and not waiting:
                return
            self.keeper.maybe_pass([(s.name, s.lease) for s in live])
            timeout = min(1.0, self.keeper.due_in())
            if waiting:  # short naps: a signal must not wait for a back-off to end
                due = min(s.restart_at for s in waiting if s.restart_at is not None)
                timeout = max(0.0, min(timeout, 0.1, due - time.monotonic()))
            if live:
                multiprocessing.connection.wait([s.process.sentinel for s in live], timeout=timeout)
            else:
                time.sleep(timeout)
            for slot in live:
                if slot.process.is_alive():
                    self._check_deadline(slot)
                    continue
                slot.process.join()
                code = slot.process.exitcode
                if self.metrics is not None:
                    self.metrics.process_died(slot.process.pid)
                slot.process = None
                slot.code = code if code is not None else EXIT_FAILED
                self._on_child_exit(slot, slot.code)
            moment = time.monotonic()
            for slot in self.slots:
                if (
                    slot.restart_at is not None
                    and slot.restart_at <= moment
                    and not (self.signals or self._fatal)
                ):
                    slot.restarts += 1
                    log.info(
                        "supervisor: restarting worker %s (restart %d)", slot.name, slot.restarts
                    )
                    self._start(slot)

    def _check_deadline(self, slot: _Slot) -> None:
        """Kill the process of an attempt stuck past its timeout (``hard_timeout``)."""
        if slot.shared is None:
            return
        kill = hard_timeout.check(slot.shared, slot.process.pid)
        if kill is None:
            return
        log.error("supervisor: worker %s: its task ran past its timeout of %g s and did not stop "
                  "(code holding the GIL?); killing process %d", slot.name, kill.timeout, kill.pid)  # fmt: skip
        if kill.pid == slot.process.pid:  # in-process: the worker process itself dies
            slot.timed_out = kill.timeout

    def _on_timeout_kill(self, slot: _Slot, timed_out: float) -> None:
        """A worker process killed for its task's timeout: not a crash. Its job goes back
        marked timed out (it fails through the task's retry policy) and the process is
        restarted at once, outside the crash-loop count."""
        why = f"was killed: its task ran past its timeout of {timed_out:g} s and did not stop"
        self._hand_back(slot.name, "", why=why, timed_out=timed_out)
        slot.code = None  # not a failure of the worker
        if self.signals or self._fatal or self.settings.burst:
            return
        slot.restart_at = time.monotonic()

    def _on_child_exit(self, slot: _Slot, code: int) -> None:
        name = slot.name
        if slot.timed_out is not None and code != 0:
            self._on_timeout_kill(slot, slot.timed_out)
            return
        if code == 0:
            log.info("supervisor: worker %s exited", name)
            return
        if self.signals or self._fatal:
            log.warning("supervisor: worker %s exited with %s", name, code)
            return
        how = _describe(code)
        still = len(self.children)
        log.error("supervisor: worker %s died unexpectedly (%s)", name, how)
        finished = self._hand_back(name, how)
        if self.settings.burst:
            log.warning("supervisor: --burst: worker %s is not restarted", name)
            return
        if code == EXIT_USAGE:
            self._fatal = True
            log.error("supervisor: worker %s cannot start (a usage error, see above); stopping the other %d workers",
                      name, still)  # fmt: skip
            self._forward(signal.SIGTERM)
            return
        delay = slot.history.died(finished)
        if delay is None:
            self._fatal = True
            policy = slot.history.policy
            log.error(
                "supervisor: crash loop: worker %s died %d times within %g s without finishing a job "
                "(last: %s); giving up, stopping the other %d workers",
                name, len(slot.history.deaths), policy.window, how, still,
            )  # fmt: skip
            self._forward(signal.SIGTERM)
            return
        slot.restart_at = time.monotonic() + delay
        log.warning("supervisor: restarting worker %s in %.1f s", name, delay)

    def _hand_back(self, name: str, how: str, *, why: str = "", timed_out: float | None = None) -> int:
        """Give the dead child's running jobs back at once (the reaper would only after its
        lease), and free its name for the restart; returns the jobs it had finished."""
        from graflow.worker.takeover import drop_registration, hand_back_jobs, read_registration

        settings = self.settings
        try:
            self._connection()
            held = read_registration(self._redis, name)
            queues = [*settings.queues, *(held.queues if held else [])]
            hand_back_jobs(self._redis, name, queues, prefix=settings.prefix,
                           max_redeliveries=settings.max_redeliveries, why=why or f"died ({how})",
                           by=settings.name or name, stopping=lambda: bool(self.signals),
                           timed_out=timed_out)  # fmt: skip
            drop_registration(self._redis, name, queues)
            return held.finished_jobs if held else 0
        except Exception as exc:
            log.warning("supervisor: could not hand back the job of worker %s (%s); the reaper will, "
                        "once its lease expires", name, exc)  # fmt: skip
            return 0

    def _exit_code(self, codes: dict[str, int]) -> int:
        failed = [code for code in codes.values() if code != 0]
        if not failed and not self._fatal:
            return EXIT_OK
        if failed and all(code == EXIT_REDIS for code in failed):
            return EXIT_REDIS
        return EXIT_FAILED


def _describe(code: int) -> str:
    return f"signal {-code}" if code < 0 else f"exit code {code}"


__all__ = ["Supervisor"]
