"""``--metrics-port``: the supervisor serves Prometheus ``/metrics`` for its whole worker command.

One port per ``graflow worker`` command, however many processes it runs. The worker
processes count (``metrics``) in prometheus_client's multiprocess mode: before anything
imports prometheus_client's values and before the first fork, the supervisor makes a
private directory and hands it down as ``PROMETHEUS_MULTIPROC_DIR`` (the library's own
variable, set through ``graflow.settings.export``, never read by graflow). Each scrape adds
up the processes' files (``MultiProcessCollector``) and reads the pool gauges from Redis
(``pool_gauges``). A dead child's live-gauge files go when the supervisor sees it die
(``mark_process_dead``; its counters stay: counters never go down); the directory goes
when the command exits.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from graflow.exit_codes import EXIT_USAGE, CliError
from graflow.settings import export
from graflow.worker.settings import WorkerSettings

log = logging.getLogger("graflow.worker")

_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def require(settings: WorkerSettings) -> None:
    """A usage error (exit 2) when metrics are asked for and prometheus-client is missing."""
    if not settings.metrics_port:
        return
    try:
        found = importlib.util.find_spec("prometheus_client") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise CliError(
            "--metrics-port/GRAFLOW_METRICS_PORT needs prometheus-client, which is not installed — "
            "pip install 'graflow[metrics]', or unset the port",
            EXIT_USAGE,
        )


class MetricsServer:
    """The multiprocess directory, the process metrics and the HTTP server of one command."""

    def __init__(self, settings: WorkerSettings, alive: Callable[[], int]) -> None:
        self.settings = settings
        self.alive = alive
        self.directory = ""
        self._httpd: Any = None
        self._client: Any = None

    def start(self) -> None:
        """Before the first fork: the directory, multiprocess mode, the metrics, the port."""
        require(self.settings)
        self.directory = tempfile.mkdtemp(prefix="graflow-metrics-")
        export(_VARIABLE, self.directory)
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        from prometheus_client import CollectorRegistry, start_http_server, values
        from prometheus_client.multiprocess import MultiProcessCollector

        from graflow.redisconn import client_from
        from graflow.worker import metrics
        from graflow.worker.pool_gauges import SCRAPE_TIMEOUT, PoolCollector

        # Chosen when prometheus_client was first imported: a module given to --import may
        # have imported it before the directory existed.
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        metrics.enable(task_label=self.settings.settings.metrics_task_label)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.directory)  # type: ignore[no-untyped-call]
        self._client = client_from(url=self.settings.url, decode=False, socket_timeout=SCRAPE_TIMEOUT)
        registry.register(PoolCollector(self._client, list(self.settings.queues), self.alive))
        host, port = self.settings.settings.metrics_host, self.settings.metrics_port
        try:
            self._httpd, _thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise CliError(
                f"cannot serve metrics on {host}:{port} ({exc.strerror or exc}) — choose another "
                "--metrics-port/GRAFLOW_METRICS_PORT or --metrics-host/GRAFLOW_METRICS_HOST",
                EXIT_USAGE,
            ) from None
        log.info("supervisor: Prometheus metrics on http://%s:%d/metrics", host, port)

    def process_died(self, pid: int | None) -> None:
        """A worker process exited: its live gauges stop counting (its counters stay)."""
        if not pid or not self.directory:
            return
        try:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, self.directory)  # type: ignore[no-untyped-call]
        except Exception:
            log.debug("metrics: could not retire the files of process %s", pid, exc_info=True)

    def close(self) -> None:
        """Stop serving, forget the directory (and its variable), delete it."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        client, self._client = self._client, None
        if client is not None:
            client.close()
        if self.directory:
            export(_VARIABLE, None)
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = ""


__all__ = ["MetricsServer", "require"]
