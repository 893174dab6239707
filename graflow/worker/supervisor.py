"""``--concurrency N``: N worker processes under one supervising parent (§16.7).

Each child is a full ``GraflowWorker`` (its own Redis connections, heartbeat thread
and rq registration) named ``{name}-{i}``, so one crashing job takes down one worker,
not the pool. Children are forked (start method ``fork``): modules loaded by
``--import`` are inherited and start-up stays cheap. The parent forwards SIGTERM and
SIGINT, so one signal to the supervisor is a warm stop for all and a second a cold one.

Exit code: 0 when every child exited 0 (after a signal, or after ``--burst``); 1 when a
child died on its own (fatal: the others are stopped warm, and the orchestrator
decides about restarting) or any child exited non-zero; 3 when every failing child
could not reach Redis. Nothing is restarted.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
from typing import Any

from graflow.cli.common import EXIT_FAILED, EXIT_OK, EXIT_REDIS, CliError, exit_code_for, fail
from graflow.worker.runner import PendingSignals, run_worker
from graflow.worker.settings import WorkerSettings

log = logging.getLogger("graflow.worker")

_child_pending = PendingSignals()


def _stop_with_parent(parent: int) -> None:
    """Ask the kernel for a SIGTERM when the supervisor dies (Linux), so a worker never
    outlives its command: it finishes the task it runs (warm shutdown) and exits."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the supervisor died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _child_main(settings: WorkerSettings, name: str, parent: int) -> None:
    """Body of one child process: the same ``run_worker`` as a single-process worker."""
    _child_pending.install()
    _stop_with_parent(parent)
    try:
        code = run_worker(settings, name, _child_pending)
    except Exception as exc:
        code = exc.code if isinstance(exc, CliError) else exit_code_for(exc)
        fail(str(exc), code, exc, debug=settings.log_level == "DEBUG")
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


class Supervisor:
    """Starts ``settings.concurrency`` children, forwards signals, reports one exit code."""

    def __init__(self, settings: WorkerSettings, pending: list[int] | None = None) -> None:
        self.settings = settings
        self.signals = list(pending or [])
        self.children: list[Any] = []
        self._pid = os.getpid()
        self._fatal = False

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
        ctx = multiprocessing.get_context("fork")
        for name in self.settings.worker_names():
            if self.signals:
                break  # stopped while starting: start no more
            child = ctx.Process(target=_child_main, args=(self.settings, name, os.getpid()), name=name)
            child.start()
            self.children.append(child)
        log.info("supervisor: started %d workers", len(self.children))
        codes = self._wait_all()
        return self._exit_code(codes)

    def _wait_all(self) -> dict[str, int]:
        codes: dict[str, int] = {}
        live = list(self.children)
        while live:
            multiprocessing.connection.wait([c.sentinel for c in live], timeout=1.0)
            for child in [c for c in live if not c.is_alive()]:
                child.join()
                live.remove(child)
                code = child.exitcode if child.exitcode is not None else EXIT_FAILED
                codes[child.name] = code
                self._on_child_exit(child.name, code, still_running=len(live))
        return codes

    def _on_child_exit(self, name: str, code: int, still_running: int) -> None:
        if code == 0:
            log.info("supervisor: worker %s exited", name)
            return
        if self.signals or self.settings.burst or self._fatal:
            log.warning("supervisor: worker %s exited with %s", name, code)
            return
        self._fatal = True
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        log.error(
            "supervisor: worker %s died unexpectedly (%s); stopping the other %d workers",
            name, how, still_running,
        )  # fmt: skip
        self._forward(signal.SIGTERM)

    def _exit_code(self, codes: dict[str, int]) -> int:
        failed = [code for code in codes.values() if code != 0]
        if not failed and not self._fatal:
            return EXIT_OK
        if failed and all(code == EXIT_REDIS for code in failed):
            return EXIT_REDIS
        return EXIT_FAILED


__all__ = ["Supervisor"]
